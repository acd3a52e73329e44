// SPDX-License-Identifier: GPL-2.0
/*
 * The C side of every declaration the module writes by hand (the kernel
 * crate's bindings lack them): each function's prototype and each callback's
 * type, as the Rust file beside it declares them, asserted against the
 * kernel's own headers; and the layout of each struct the module declares
 * itself, as constants (abi_offsets.rs) the Rust files assert their own
 * layout against. Kbuild compiles this to assembly only, never to an object
 * (see Kbuild). A kernel whose prototype differs fails the build here, with
 * the function's name and the Rust file that declares it, instead of being
 * miscalled; under kCFI a callback of another type would trap at its first
 * call. Pointers to structs the Rust side keeps opaque (struct net, struct
 * sk_buff) are declared with their C type here, as in the Rust declaration
 * of a #[repr(C)] struct of that name, or void * where Rust says *c_void.
 */
#include <linux/kbuild.h>
#include <linux/crash_core.h>
#include <linux/kdebug.h>
#include <linux/kmsg_dump.h>
#include <linux/mm.h>
#include <linux/netfilter.h>
#include <linux/notifier.h>
#include <linux/panic_notifier.h>
#include <linux/sysrq.h>
#include <crypto/utils.h>
#include <asm/nmi.h>

#define SAME_TYPE(a, b) __builtin_types_compatible_p(typeof(a), b)

/* Function FN must have the prototype TYPE (a pointer-to-function type). */
#define PROTOTYPE(fn, type, where)                                             \
	_Static_assert(SAME_TYPE(&fn, type),                                   \
		       #fn ": the prototype in the kernel differs from the one " \
		       where " declares")

/* The member CALLBACK of struct S must have the type TYPE. */
#define CALLBACK(s, callback, type, where)                                     \
	_Static_assert(SAME_TYPE(((struct s *)0)->callback, type),             \
		       "struct " #s "." #callback ": the type in the kernel " \
		       "differs from the one " where " declares")

/* sysrq.rs */
PROTOTYPE(register_sysrq_key, int (*)(u8, const struct sysrq_key_op *), "sysrq.rs");
PROTOTYPE(unregister_sysrq_key, int (*)(u8, const struct sysrq_key_op *), "sysrq.rs");
CALLBACK(sysrq_key_op, handler, void (*const)(u8), "sysrq.rs");

/* nmi.rs */
PROTOTYPE(__register_nmi_handler, int (*)(unsigned int, struct nmiaction *), "nmi.rs");
PROTOTYPE(unregister_nmi_handler, void (*)(unsigned int, const char *), "nmi.rs");
CALLBACK(nmiaction, handler, int (*)(unsigned int, struct pt_regs *), "nmi.rs");

/* oops.rs: the die and panic notifiers (notifier_block is bindgen's). */
PROTOTYPE(register_die_notifier, int (*)(struct notifier_block *), "oops.rs");
PROTOTYPE(unregister_die_notifier, int (*)(struct notifier_block *), "oops.rs");
_Static_assert(SAME_TYPE(panic_notifier_list, struct atomic_notifier_head),
	       "panic_notifier_list: the type in the kernel differs from the one oops.rs declares");
/* oops.rs, with CONFIG_CRASH_DUMP only (it calls it only then). */
#ifdef CONFIG_CRASH_DUMP
PROTOTYPE(kexec_crash_loaded, int (*)(void), "oops.rs");
#endif

/* net.rs */
PROTOTYPE(nf_register_net_hook, int (*)(struct net *, const struct nf_hook_ops *), "net.rs");
PROTOTYPE(nf_unregister_net_hook, void (*)(struct net *, const struct nf_hook_ops *), "net.rs");
PROTOTYPE(__crypto_memneq, unsigned long (*)(const void *, const void *, size_t), "net.rs");
CALLBACK(nf_hook_ops, hook,
	 unsigned int (*)(void *, struct sk_buff *, const struct nf_hook_state *), "net.rs");

/* last_words.rs */
PROTOTYPE(kmsg_dump_rewind, void (*)(struct kmsg_dump_iter *), "last_words.rs");
PROTOTYPE(kmsg_dump_get_buffer,
	  bool (*)(struct kmsg_dump_iter *, bool, char *, size_t, size_t *), "last_words.rs");
PROTOTYPE(reserve_mem_find_by_name,
	  int (*)(const char *, phys_addr_t *, phys_addr_t *), "last_words.rs");
_Static_assert(sizeof(phys_addr_t) == sizeof(u64),
	       "phys_addr_t: not the u64 last_words.rs declares");

/* hw.rs, with CONFIG_TRACE_IRQFLAGS only (it calls them only then). */
#ifdef CONFIG_TRACE_IRQFLAGS
PROTOTYPE(trace_hardirqs_on, void (*)(void), "hw.rs");
PROTOTYPE(trace_hardirqs_off, void (*)(void), "hw.rs");
#endif

void abi_offsets(void);

void abi_offsets(void)
{
	DEFINE(SYSRQ_KEY_OP_SIZE, sizeof(struct sysrq_key_op));
	DEFINE(SYSRQ_KEY_OP_HANDLER, offsetof(struct sysrq_key_op, handler));
	DEFINE(SYSRQ_KEY_OP_HELP_MSG, offsetof(struct sysrq_key_op, help_msg));
	DEFINE(SYSRQ_KEY_OP_ACTION_MSG, offsetof(struct sysrq_key_op, action_msg));
	DEFINE(SYSRQ_KEY_OP_ENABLE_MASK, offsetof(struct sysrq_key_op, enable_mask));
	DEFINE(NMIACTION_SIZE, sizeof(struct nmiaction));
	DEFINE(NMIACTION_HANDLER, offsetof(struct nmiaction, handler));
	DEFINE(NMIACTION_MAX_DURATION, offsetof(struct nmiaction, max_duration));
	DEFINE(NMIACTION_FLAGS, offsetof(struct nmiaction, flags));
	DEFINE(NMIACTION_NAME, offsetof(struct nmiaction, name));
	DEFINE(KMSG_DUMP_ITER_SIZE, sizeof(struct kmsg_dump_iter));
	DEFINE(KMSG_DUMP_ITER_CUR_SEQ, offsetof(struct kmsg_dump_iter, cur_seq));
	DEFINE(KMSG_DUMP_ITER_NEXT_SEQ, offsetof(struct kmsg_dump_iter, next_seq));
}
