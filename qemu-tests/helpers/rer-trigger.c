// SPDX-License-Identifier: GPL-2.0
/*
 * rer-trigger: starts one reset trigger for the benchmark (qemu-tests/bench),
 * the same way for every trigger (built static, run in the guest only).
 *
 *   rer-trigger pvpanic|rtc device|sysrq-x|sysrq-b|dev-port|reboot-f
 *
 * Opens the mark's device, then writes the mark and, at once, starts the
 * trigger, both from this one process: nothing forks or execs between the
 * two. The mark makes QEMU emit a QMP event timestamped at the write:
 *
 *   pvpanic   bit 1 to the pvpanic port 0x505 through /dev/port
 *             (GUEST_CRASHLOADED), as qemu_tests::MARK does with dd
 *   rtc       RTC_SET_TIME to the current UTC time (RTC_CHANGE), as
 *             qemu_tests::RTC_MARK does with `hwclock -w -u`; for lockdown,
 *             which refuses /dev/port
 *
 * The triggers, each as the tool an admin uses does it:
 *
 *   device    open /dev/emergency_reset, write "reset"
 *   sysrq-x   open /proc/sysrq-trigger, write "x"
 *   sysrq-b   open /proc/sysrq-trigger, write "b"
 *   dev-port  open /dev/port, seek to 0x64, write 0xfe (seed 000's rescue)
 *   reboot-f  what Debian's busybox 1.35 `reboot -f` does (init/halt.c,
 *             FEATURE_WTMP on): sleep(0), a wtmp record (time, uname,
 *             updwtmpx; the guest has no /var/log/wtmp, so that open
 *             fails as it does for busybox), sync(), reboot(RB_AUTOBOOT)
 *
 * A trigger that works does not return. One that returns (an error, or a
 * reset that did not happen) is followed by the mark once more, so that the
 * time until it returned is measured too, and by the line
 *
 *   RER-TRIGGER <trigger> returned: ok | <step>: <error> (errno N)
 *
 * with exit status 1. It refuses to run anywhere but a test guest (kernel
 * command line rer_guest=1); a usage error or a mark that cannot be written
 * exits 2 before any mark.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/rtc.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "rer-guest.h"
#include <utmpx.h>


/* The mark's device, opened before the first mark. */
static int mark_fd = -1;
static int mark_rtc;

static int open_mark(const char *how)
{
	static const char *const rtcs[] = { "/dev/rtc", "/dev/rtc0", "/dev/misc/rtc" };
	unsigned int i;

	if (!strcmp(how, "pvpanic")) {
		mark_fd = open("/dev/port", O_WRONLY);
		return mark_fd;
	}
	if (strcmp(how, "rtc"))
		return -1;
	mark_rtc = 1;
	/* busybox's rtc_xopen(): the first of these that opens */
	for (i = 0; i < sizeof(rtcs) / sizeof(rtcs[0]) && mark_fd < 0; i++)
		mark_fd = open(rtcs[i], O_WRONLY);
	return mark_fd;
}

static int mark(void)
{
	struct timeval tv;
	struct tm tm;

	if (!mark_rtc)
		return pwrite(mark_fd, "\002", 1, 0x505) == 1 ? 0 : -1;
	/* busybox hwclock's from_sys_clock() with -u */
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	tm.tm_isdst = 0;
	return ioctl(mark_fd, RTC_SET_TIME, &tm);
}

/* Where a trigger failed, for the report. */
static const char *step = "";

static int open_write(const char *path, const char *data, size_t len)
{
	int fd;

	step = "open";
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -1;
	step = "write";
	if (write(fd, data, len) != (ssize_t)len)
		return -1;
	return 0;
}

static int dev_port(void)
{
	int fd;

	step = "open";
	fd = open("/dev/port", O_WRONLY);
	if (fd < 0)
		return -1;
	step = "seek";
	if (lseek(fd, 0x64, SEEK_SET) != 0x64)
		return -1;
	step = "write";
	if (write(fd, "\xfe", 1) != 1)
		return -1;
	return 0;
}

/* busybox 1.35 halt_main() for `reboot -f`, with Debian's FEATURE_WTMP. */
static int reboot_f(void)
{
	struct utmpx ut;
	struct utsname uts;

	sleep(0); /* -d 0 */
	/* write_wtmp() */
	memset(&ut, 0, sizeof(ut));
	ut.ut_tv.tv_sec = time(NULL);
	strcpy(ut.ut_user, "shutdown");
	ut.ut_type = RUN_LVL;
	ut.ut_id[0] = '~';
	ut.ut_id[1] = '~';
	ut.ut_line[0] = '~';
	ut.ut_line[1] = '~';
	uname(&uts);
	snprintf(ut.ut_host, sizeof(ut.ut_host), "%s", uts.release);
	updwtmpx("/var/log/wtmp", &ut);
	sync(); /* no -n */
	step = "reboot";
	return reboot(RB_AUTOBOOT);
}

int main(int argc, char **argv)
{
	const char *trig = argc == 3 ? argv[2] : "";
	int rc, err;

	if (!in_test_guest()) {
		fprintf(stderr, "rer-trigger: not a test guest (no rer_guest=1); refusing to run\n");
		return 3;
	}
	if (strcmp(trig, "device") && strcmp(trig, "sysrq-x") && strcmp(trig, "sysrq-b") &&
	    strcmp(trig, "dev-port") && strcmp(trig, "reboot-f")) {
		fprintf(stderr,
			"usage: rer-trigger pvpanic|rtc device|sysrq-x|sysrq-b|dev-port|reboot-f\n");
		return 2;
	}
	if (open_mark(argv[1]) < 0) {
		fprintf(stderr, "rer-trigger: cannot open the mark's device (%s): %s\n", argv[1],
			strerror(errno));
		return 2;
	}
	if (mark()) {
		fprintf(stderr, "rer-trigger: cannot write the mark (%s): %s\n", argv[1],
			strerror(errno));
		return 2;
	}

	/* The measured interval starts here. */
	if (!strcmp(trig, "device"))
		rc = open_write("/dev/emergency_reset", "reset", 5);
	else if (!strcmp(trig, "sysrq-x"))
		rc = open_write("/proc/sysrq-trigger", "x", 1);
	else if (!strcmp(trig, "sysrq-b"))
		rc = open_write("/proc/sysrq-trigger", "b", 1);
	else if (!strcmp(trig, "dev-port"))
		rc = dev_port();
	else
		rc = reboot_f();
	err = errno;

	mark();
	if (rc)
		printf("RER-TRIGGER %s returned: %s: %s (errno %d)\n", trig, step, strerror(err),
		       err);
	else
		printf("RER-TRIGGER %s returned: ok\n", trig);
	return 1;
}
