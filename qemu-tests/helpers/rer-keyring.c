// SPDX-License-Identifier: GPL-2.0
/*
 * rer-keyring: the keys a kernel keyring holds, for the QEMU tests (built
 * static, run in the guest only; busybox has no keyctl).
 *
 *   rer-keyring ID       ID: the keyring's serial as /proc/keys shows it (hex)
 *
 * Prints the serial of each key in the keyring (KEYCTL_READ), in hex as
 * /proc/keys shows them, on one line; exits 1 with the error when the kernel
 * refuses. It refuses to run anywhere but a test guest (rer_guest=1).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rer-guest.h"

#define KEYCTL_READ 11

int main(int argc, char **argv)
{
	int32_t keys[256];
	long n, i;

	if (!in_test_guest()) {
		fprintf(stderr, "rer-keyring: not a test guest (no rer_guest=1); refusing to run\n");
		return 3;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: rer-keyring ID\n");
		return 2;
	}
	n = syscall(SYS_keyctl, KEYCTL_READ, (int32_t)strtoul(argv[1], NULL, 16), keys,
		    sizeof(keys));
	if (n < 0) {
		printf("rer-keyring: %s\n", strerror(errno));
		return 1;
	}
	if ((size_t)n > sizeof(keys))
		n = sizeof(keys);
	for (i = 0; i < n / (long)sizeof(keys[0]); i++)
		printf("%s%08x", i ? " " : "", (unsigned int)keys[i]);
	printf("\n");
	return 0;
}
