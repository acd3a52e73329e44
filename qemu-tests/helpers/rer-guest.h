/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rer-guest.h: what every guest helper checks first: that it runs in a test
 * guest (kernel command line rer_guest=1), and nowhere else.
 */
#include <stdio.h>
#include <string.h>

static int in_test_guest(void)
{
	char cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "r");

	if (!f)
		return 0;
	if (!fgets(cmdline, sizeof(cmdline), f))
		cmdline[0] = 0;
	fclose(f);
	return strstr(cmdline, "rer_guest=1") != NULL;
}
