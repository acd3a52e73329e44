// SPDX-License-Identifier: GPL-2.0
/*
 * Deliberately broken test module: one CPU takes the first 8250 UART's port
 * lock, the lock the serial console's write takes, with interrupts off (on,
 * under PREEMPT_RT, where it is a sleeping lock), and never gives it back,
 * as a CPU wedged inside the serial driver would.
 *
 *   insmod rer_uart_lock.ko cpu=1    # in a QEMU test guest only
 *
 * A kthread bound to cpu= waits 1 s (for the test to read where this
 * module's code is), takes the lock and spins. From then on nothing reaches
 * the console through the port's lock: a shell's output blocks, and so does
 * a console line printed the ordinary way on linux 7.2, whose 8250 console
 * only tries the lock when oops_in_progress is set (7.3's nbcon console
 * takes over the port instead). Never unloads.
 */
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/serial_8250.h>
#include <linux/serial_core.h>

/*
 * From drivers/tty/serial/8250/8250.h, which no headers package ships; the
 * same in linux 7.2 and 7.3 (exported, GPL).
 */
struct uart_8250_port *serial8250_get_port(int line);

static int cpu = 1;
module_param(cpu, int, 0400);
MODULE_PARM_DESC(cpu, "The CPU that takes the lock and spins (default 1)");

static int hold_port_lock(void *unused)
{
	struct uart_8250_port *up = serial8250_get_port(0);
	unsigned long flags;

	msleep(1000);
	uart_port_lock_irqsave(&up->port, &flags);
	for (;;)
		cpu_relax();
	return 0;
}

static int __init uart_lock_init(void)
{
	struct task_struct *t;

	t = kthread_create_on_cpu(hold_port_lock, NULL, cpu, "rer_uart_lock/%u");
	if (IS_ERR(t))
		return PTR_ERR(t);
	/* The spinning code lives in this module. */
	__module_get(THIS_MODULE);
	wake_up_process(t);
	pr_emerg("rer_uart_lock: CPU %d takes ttyS0's port lock for good in 1 s\n", cpu);
	return 0;
}
module_init(uart_lock_init);

MODULE_DESCRIPTION("TEST ONLY: holds the 8250 UART's port lock for good");
MODULE_LICENSE("GPL");
