// SPDX-License-Identifier: GPL-2.0
/*
 * rer-kexec: loads a crash kernel, as `kexec -p` does, for the QEMU tests
 * (built static, run in the guest only).
 *
 *   rer-kexec KERNEL INITRD CMDLINE
 *
 * kexec_file_load(2) with KEXEC_FILE_ON_CRASH: the kernel boots KERNEL with
 * INITRD and CMDLINE in the memory crashkernel= reserved when it hands an
 * oops or a panic to kdump. Prints "RER-KEXEC loaded" or "RER-KEXEC
 * refused: <error>" (exit 1). It refuses to run anywhere but a test guest
 * (kernel command line rer_guest=1).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kexec.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rer-guest.h"

int main(int argc, char **argv)
{
	int kernel, initrd;

	if (!in_test_guest()) {
		fprintf(stderr, "rer-kexec: not a test guest (no rer_guest=1); refusing to run\n");
		return 3;
	}
	if (argc != 4) {
		fprintf(stderr, "usage: rer-kexec KERNEL INITRD CMDLINE\n");
		return 2;
	}
	kernel = open(argv[1], O_RDONLY | O_CLOEXEC);
	initrd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (kernel < 0 || initrd < 0) {
		printf("RER-KEXEC refused: %s: %s\n", kernel < 0 ? argv[1] : argv[2],
		       strerror(errno));
		return 1;
	}
	/* The command line's length counts its NUL. */
	if (syscall(SYS_kexec_file_load, kernel, initrd, strlen(argv[3]) + 1, argv[3],
		    KEXEC_FILE_ON_CRASH)) {
		printf("RER-KEXEC refused: %s\n", strerror(errno));
		return 1;
	}
	printf("RER-KEXEC loaded\n");
	return 0;
}
