// SPDX-License-Identifier: GPL-2.0
/*
 * Offsets into struct task_struct as the C compiler lays it out, for
 * last_words.rs (comm) and oops.rs (flags, PF_EXITING): bindgen's layout of
 * task_struct does not match C's in linux 7.3. Kbuild compiles this to assembly only (never to an object) and
 * turns each DEFINE() into a Rust constant in task_offsets.rs.
 */
#include <linux/kbuild.h>
#include <linux/sched.h>

void task_offsets(void);

void task_offsets(void)
{
	DEFINE(TASK_COMM, offsetof(struct task_struct, comm));
	DEFINE(TASK_COMM_LEN_C, sizeof_field(struct task_struct, comm));
	DEFINE(TASK_FLAGS, offsetof(struct task_struct, flags));
	DEFINE(TASK_FLAGS_SIZE, sizeof_field(struct task_struct, flags));
	DEFINE(PF_EXITING_C, PF_EXITING);
}
