// SPDX-License-Identifier: GPL-2.0
/*
 * The layout of struct nf_hook_ops as the C compiler lays it out, for
 * net.rs, which declares the struct itself (the kernel crate's bindings have
 * no netfilter header). Kbuild compiles this to assembly only (never to an
 * object) and turns each DEFINE() into a Rust constant in net_offsets.rs;
 * net.rs asserts its own layout against them at compile time.
 */
#include <linux/kbuild.h>
#include <linux/netfilter.h>

void net_offsets(void);

void net_offsets(void)
{
	DEFINE(NF_HOOK_OPS_SIZE, sizeof(struct nf_hook_ops));
	DEFINE(NF_HOOK_OPS_HOOK, offsetof(struct nf_hook_ops, hook));
	DEFINE(NF_HOOK_OPS_DEV, offsetof(struct nf_hook_ops, dev));
	DEFINE(NF_HOOK_OPS_PRIV, offsetof(struct nf_hook_ops, priv));
	DEFINE(NF_HOOK_OPS_PF, offsetof(struct nf_hook_ops, pf));
	DEFINE(NF_HOOK_OPS_HOOKNUM, offsetof(struct nf_hook_ops, hooknum));
	DEFINE(NF_HOOK_OPS_PRIORITY, offsetof(struct nf_hook_ops, priority));
}
