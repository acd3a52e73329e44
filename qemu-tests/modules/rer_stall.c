// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module: the CPU of a reset attempt stops for good
 * inside it, as on a wedged machine (a real-time hog that never lets the
 * writer run again, an SMI storm, a method's write that never completes).
 *
 *   insmod rer_stall.ko          # in a QEMU test guest only
 *   echo 1 > /sys/module/rer_stall/parameters/armed
 *   ash -c 'echo reset > /dev/emergency_reset'
 *
 * A kprobe on rust_helper_task_tgid_nr_ns(), the pid lookup the reset
 * engine makes (for the "caller pid" of its line) once it has taken the
 * attempt and before it tries a method; only Rust code calls it. Once armed,
 * the first call made by a task named writer= (default "ash": busybox's
 * shell run by that name, so that nothing else matches) sets stopped=1
 * (/sys/module/rer_stall/parameters/stopped, for another CPU to read: the
 * console line it also prints may never get out, its CPU never running the
 * irq_work that would print it) and spins there for ever, with interrupts
 * off (a kprobe handler runs so). The attempt is then held by a CPU that will never give
 * it back; only a trigger that takes over from it (an NMI, with nmi=1) can
 * still reset the machine. Never unloads.
 */
#include <linux/kprobes.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/string.h>

static bool armed;
module_param(armed, bool, 0600);
MODULE_PARM_DESC(armed, "Stop the writer's CPU at its next pid lookup (default off)");
static char *writer = "ash";
module_param(writer, charp, 0400);
MODULE_PARM_DESC(writer, "The command name of the writer to stop (default ash)");

static int stopped;
module_param(stopped, int, 0400);
MODULE_PARM_DESC(stopped, "1 once the writer's CPU stopped");

static int stall_pre(struct kprobe *p, struct pt_regs *regs)
{
	if (!READ_ONCE(armed) || strcmp(current->comm, writer) != 0 ||
	    xchg(&stopped, 1))
		return 0;
	pr_emerg("rer_stall: CPU %d stops for good in %s, called from %pS\n",
		 smp_processor_id(), p->symbol_name, (void *)*(unsigned long *)regs->sp);
	for (;;)
		cpu_relax();
	return 0;
}

static struct kprobe stall_kp = {
	.symbol_name = "rust_helper_task_tgid_nr_ns",
	.pre_handler = stall_pre,
};

static int __init stall_init(void)
{
	int err = register_kprobe(&stall_kp);

	if (err)
		return err;
	/* The spinning handler lives in this module. */
	__module_get(THIS_MODULE);
	pr_emerg("rer_stall: armed by /sys/module/rer_stall/parameters/armed; kprobe at %s\n",
		 stall_kp.symbol_name);
	return 0;
}
module_init(stall_init);

MODULE_DESCRIPTION("TEST ONLY: stops the writer's CPU for good inside a reset attempt");
MODULE_LICENSE("GPL");
