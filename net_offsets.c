// SPDX-License-Identifier: GPL-2.0
/*
 * The layout of struct nf_hook_ops as the C compiler lays it out, and the
 * netfilter constants, for net.rs, which declares the struct itself (the kernel crate's bindings have
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
	/* The constants net.rs uses (linux 7.2's bindings do not reach them). */
	DEFINE(NF_DROP_VERDICT, NF_DROP);
	DEFINE(NF_ACCEPT_VERDICT, NF_ACCEPT);
	DEFINE(NF_INET_LOCAL_IN_C, NF_INET_LOCAL_IN);
	DEFINE(NFPROTO_IPV4_C, NFPROTO_IPV4);
	DEFINE(NFPROTO_IPV6_C, NFPROTO_IPV6);
}
