// SPDX-License-Identifier: GPL-2.0
/*
 * rer-rescue: seed 000's userspace rescue, for the QEMU tests (built static,
 * run in the guest only).
 *
 *   rer-rescue iopl      iopl(3), then 0xFE to port 0x64
 *   rer-rescue ioperm    ioperm(0x64, 1, 1), then 0xFE to port 0x64
 *
 * Prints "RER-RESCUE <how> refused: <error>" and exits 1 when the kernel
 * refuses the port access (lockdown: EPERM). When it allows it, the write
 * pulses the reset line: the machine resets at once. It refuses to run
 * anywhere but a test guest (kernel command line rer_guest=1).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/io.h>
#include <unistd.h>

#include "rer-guest.h"

int main(int argc, char **argv)
{
	const char *how = argc == 2 ? argv[1] : "";
	int rc;

	if (!in_test_guest()) {
		fprintf(stderr, "rer-rescue: not a test guest (no rer_guest=1); refusing to run\n");
		return 3;
	}
	if (!strcmp(how, "iopl"))
		rc = iopl(3);
	else if (!strcmp(how, "ioperm"))
		rc = ioperm(0x64, 1, 1);
	else {
		fprintf(stderr, "usage: rer-rescue iopl|ioperm\n");
		return 2;
	}
	if (rc) {
		printf("RER-RESCUE %s refused: %s\n", how, strerror(errno));
		return 1;
	}
	printf("RER-RESCUE %s allowed: 0xfe to port 0x64\n", how);
	fflush(stdout);
	outb(0xfe, 0x64);
	sleep(5);
	printf("RER-RESCUE %s: the machine is still running\n", how);
	return 1;
}
