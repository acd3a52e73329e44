// SPDX-License-Identifier: GPL-2.0
/*
 * Test module that exercises QEMU, not the kernel: one CPU flips a static
 * key (the kernel patches the branch's instruction with text_poke_bp(): an
 * int3 on its first byte, the rest, the final first byte, an IPI that
 * serializes every CPU after each step) while another CPU runs that branch
 * in a loop. On real hardware, and under an emulator that invalidates the
 * translation of patched code before another vCPU runs it again, nothing
 * happens. An emulator that lets the other vCPU run a stale translation
 * makes it take an int3 that is no longer in memory: "Oops: int3" in
 * rer_text_poke_spin.
 *
 *   insmod rer_text_poke.ko flips=2000    # in a QEMU test guest only
 *
 * Prints "rer_text_poke: N flips, M branches taken" when done, and unloads
 * cleanly after that (qemu-tests/examples/boot_count.rs counts the Oopses).
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/jump_label.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>

static int flips = 2000;
module_param(flips, int, 0400);
MODULE_PARM_DESC(flips, "How many times to flip the key (default 2000)");

static DEFINE_STATIC_KEY_FALSE(rer_key);
static unsigned long taken;
static bool done;
static DECLARE_COMPLETION(spin_done);

static int rer_text_poke_spin(void *unused)
{
	while (!READ_ONCE(done)) {
		if (static_branch_unlikely(&rer_key))
			taken++;
		cond_resched();
	}
	complete(&spin_done);
	return 0;
}

static int __init text_poke_init(void)
{
	struct task_struct *spin;
	int i;

	if (num_online_cpus() < 2)
		return -ENODEV;
	spin = kthread_create_on_cpu(rer_text_poke_spin, NULL, 1, "rer_text_poke/%u");
	if (IS_ERR(spin))
		return PTR_ERR(spin);
	wake_up_process(spin);
	for (i = 0; i < flips; i++) {
		if (i % 2)
			static_branch_disable(&rer_key);
		else
			static_branch_enable(&rer_key);
	}
	static_branch_disable(&rer_key);
	WRITE_ONCE(done, true);
	wait_for_completion(&spin_done);
	pr_info("rer_text_poke: %d flips, %lu branches taken\n", flips, taken);
	return 0;
}
module_init(text_poke_init);

static void __exit text_poke_exit(void)
{
}
module_exit(text_poke_exit);

MODULE_DESCRIPTION("TEST ONLY: flips a static key while another CPU runs its branch");
MODULE_LICENSE("GPL");
