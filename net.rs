// SPDX-License-Identifier: GPL-2.0

//! The network trigger, with `net_port=`: one authenticated UDP datagram
//! resets the machine, for when userspace is dead but the network still
//! answers.
//!
//! ```sh
//! openssl rand -hex 32 >/etc/emergency-reset.key; chmod 600 /etc/emergency-reset.key
//! modprobe rust_emergency_reset net_port=5555 net_key=$(cat /etc/emergency-reset.key)
//! emergency-reset-send --key-file KEY --to SERVER:5555    # on another machine
//! cat /dev/emergency_reset                                # net_port, net_accepted, net_dropped.*
//! ```
//!
//! The datagram is one line, `ERST1 <command> <time> <nonce> <mac>`: an
//! HMAC-SHA256 with the key over the command, the sender's time, the nonce,
//! and the address and port the datagram was sent to (`logic/src/packet.rs`,
//! the admin guide's "Network trigger"). It is acted on only when it parses
//! exactly, its time is within `net_window=` seconds of this machine's clock,
//! its MAC matches, and its time is later than both the module's load and the
//! last packet accepted: a captured packet cannot be replayed, not even after
//! the machine came back up. Every other datagram to the port is dropped,
//! counted by reason, and logged at a limited rate.
//!
//! A netfilter hook at `LOCAL_IN` of the initial network namespace, for IPv4
//! and IPv6, first of all hooks there (no firewall rule is needed, and none
//! at `LOCAL_IN` stands in the way), sees every UDP datagram to `net_port`
//! that is delivered to this machine and consumes it (`NF_DROP`): nothing
//! listens on the port. The hook runs in softirq context. It copies the
//! headers and at most [`MAX_PAYLOAD`] + 1 bytes of payload onto its stack
//! (`skb_copy_bits()`), verifies with the kernel's `hmac_sha256()` (the key
//! prepared at load) and `crypto_memneq()`, and calls the reset engine; it
//! never sleeps, allocates or takes a lock. The key's parameter has no sysfs
//! file and is wiped once the key is prepared; the prepared key is wiped
//! when the module goes.
//!
//! C declarations checked against linux 7.3's `include/linux/netfilter.h`
//! (`struct nf_hook_ops`, `nf_hookfn`, `nf_register_net_hook`,
//! `nf_unregister_net_hook`), `include/uapi/linux/netfilter_ipv4.h` and
//! `netfilter_ipv6.h` (`NF_IP_PRI_FIRST`, `NF_IP6_PRI_FIRST`) and
//! `include/crypto/utils.h` (`__crypto_memneq`); the struct's layout against
//! the C compiler's at build time (`net_offsets.c`).

use core::{
    cell::UnsafeCell,
    ffi::c_void,
    fmt,
    mem::{
        offset_of,
        size_of, //
    },
    ptr,
    sync::atomic::{
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    bindings,
    ffi::{
        c_int,
        c_uint, //
    },
    prelude::*,
    sync::SetOnce,
};

use crate::{
    emergency_reset,
    ffi::{
        self,
        Linked, //
    },
    ip::{
        self,
        BadDatagram,
        Family,
        MAX_HEADERS, //
    },
    logic::{
        BufWriter,
        RateLimit, //
    },
    packet::{
        self,
        parse_key,
        parse_port,
        parse_window,
        Addr,
        BadKey,
        Gate,
        NetStatus,
        MAX_PAYLOAD, //
    },
    Trigger,
};

ffi::string_param!(
    NET_KEY,
    "net_key",
    160,
    "",
    "Network trigger: the shared key, 32 to 128 hex digits (no sysfs file; wiped once read)",
    perm = 0
);

/// `offsetof()` and `sizeof()` for `struct nf_hook_ops` from the C compiler,
/// generated at build time from `net_offsets.c` (see `Kbuild`). Used only in
/// the layout assertions below, which rustc 1.85 (Debian's) does not count as
/// uses.
#[allow(dead_code)]
mod net_offsets {
    include!("net_offsets.rs");
}

/// `NF_DROP`, `NF_ACCEPT` (include/uapi/linux/netfilter.h), from the C
/// compiler (`net_offsets.c`): linux 7.2's bindings do not reach them.
const NF_DROP: c_uint = net_offsets::NF_DROP_VERDICT as c_uint;
const NF_ACCEPT: c_uint = net_offsets::NF_ACCEPT_VERDICT as c_uint;
/// `NF_IP_PRI_FIRST` and `NF_IP6_PRI_FIRST`: `INT_MIN`, before every other hook.
const PRIORITY_FIRST: c_int = c_int::MIN;

/// `struct nf_hook_state` (include/linux/netfilter.h), never looked into.
/// kCFI types an indirect call by its C prototype, and encodes a `#[repr(C)]`
/// struct by its name: the hook must take a pointer to a struct of exactly this
/// name, not `*const c_void` (a different type id: netfilter's call would trap
/// on a `CONFIG_CFI` kernel).
#[allow(non_camel_case_types)]
#[repr(C)]
pub(crate) struct nf_hook_state {
    _opaque: [u8; 0],
}

/// `nf_hookfn` (include/linux/netfilter.h): `priv`, the packet, the hook state.
type HookFn =
    unsafe extern "C" fn(*mut c_void, *mut bindings::sk_buff, *const nf_hook_state) -> c_uint;

/// `struct nf_hook_ops` (include/linux/netfilter.h). The kernel owns `list`
/// and `rcu`; `hook_ops_type` is the C bitfield `enum nf_hook_ops_type
/// hook_ops_type:8`, which shares a byte with nothing and stays 0
/// (`NF_HOOK_OP_UNDEFINED`), as in every C user that leaves it unset.
#[repr(C)]
struct NfHookOps {
    list: bindings::list_head,
    rcu: bindings::callback_head,
    hook: Option<HookFn>,
    dev: *mut c_void,
    priv_: *mut c_void,
    pf: u8,
    hook_ops_type: u8,
    hooknum: c_uint,
    priority: c_int,
}

// Our layout is the C compiler's.
const _: () = {
    assert!(size_of::<NfHookOps>() == net_offsets::NF_HOOK_OPS_SIZE);
    assert!(offset_of!(NfHookOps, hook) == net_offsets::NF_HOOK_OPS_HOOK);
    assert!(offset_of!(NfHookOps, dev) == net_offsets::NF_HOOK_OPS_DEV);
    assert!(offset_of!(NfHookOps, priv_) == net_offsets::NF_HOOK_OPS_PRIV);
    assert!(offset_of!(NfHookOps, pf) == net_offsets::NF_HOOK_OPS_PF);
    assert!(offset_of!(NfHookOps, hooknum) == net_offsets::NF_HOOK_OPS_HOOKNUM);
    assert!(offset_of!(NfHookOps, priority) == net_offsets::NF_HOOK_OPS_PRIORITY);
};

extern "C" {
    // `net` is a `struct net *`, opaque here.
    fn nf_register_net_hook(net: *mut c_void, ops: *const NfHookOps) -> c_int;
    fn nf_unregister_net_hook(net: *mut c_void, ops: *const NfHookOps);
    fn __crypto_memneq(a: *const c_void, b: *const c_void, size: usize) -> kernel::ffi::c_ulong;
}

const fn hook_ops(hook: HookFn, pf: u8) -> NfHookOps {
    NfHookOps {
        list: bindings::list_head {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        },
        rcu: bindings::callback_head {
            next: ptr::null_mut(),
            func: None,
        },
        hook: Some(hook),
        dev: ptr::null_mut(),
        priv_: ptr::null_mut(),
        pf,
        hook_ops_type: 0,
        hooknum: net_offsets::NF_INET_LOCAL_IN_C as c_uint,
        priority: PRIORITY_FIRST,
    }
}

/// The IPv4 and IPv6 hooks.
static HOOK_V4: Linked<NfHookOps> =
    Linked::new(hook_ops(hook_v4, net_offsets::NFPROTO_IPV4_C as u8));
static HOOK_V6: Linked<NfHookOps> =
    Linked::new(hook_ops(hook_v6, net_offsets::NFPROTO_IPV6_C as u8));

/// The key prepared for `hmac_sha256()`.
struct PreparedKey(UnsafeCell<bindings::hmac_sha256_key>);

// SAFETY: written only by `register` before any hook is registered, and by `NetHooks::drop` after
// every hook is unregistered and an RCU grace period has passed (hooks run under
// `rcu_read_lock()`); the hooks only read it.
unsafe impl Sync for PreparedKey {}

static KEY: PreparedKey = PreparedKey(UnsafeCell::new(
    // SAFETY: `struct hmac_sha256_key` is two arrays of `u32`: all zeros is a valid value.
    unsafe { core::mem::zeroed() },
));

/// What the hooks read: the port and the acceptance state.
struct Net {
    port: u16,
    gate: Gate,
}

/// Set once by `register`, before the hooks are.
static NET: SetOnce<Net> = SetOnce::new();

/// Datagrams to the port since load, and the nanoseconds the hook spent on them.
static CHECKED: AtomicU64 = AtomicU64::new(0);
static CHECK_NS: AtomicU64 = AtomicU64::new(0);

/// At most 10 lines about dropped packets every 5 s.
static DROPS_LOG: RateLimit = RateLimit::new(5_000_000_000, 10);

/// The kernel's formatting macros take `kernel::fmt::Display`; the shared
/// logic implements `core::fmt::Display`.
impl kernel::fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `&init_net`: the initial network namespace, for the whole life of the kernel.
fn init_net() -> *mut c_void {
    // Only the address of the exported static is taken (safe since Rust 1.82).
    ptr::addr_of_mut!(bindings::init_net).cast()
}

/// The hooks, unregistered when dropped.
pub(crate) struct NetHooks {
    v6: bool,
}

/// Reads `net_port=`, `net_window=` and `net_key=` and, with a port, arms the
/// trigger. A port without a valid key fails the load (`EINVAL`). The key's
/// parameter is wiped whatever happens.
pub(crate) fn register(port: i32, window: i32) -> Result<Option<NetHooks>> {
    let key = parse_key(NET_KEY.value());
    let key_given = !NET_KEY.value().is_empty();
    // SAFETY: called once from `init`; `key` is a copy and no reference into the buffer is alive;
    // the parameter has no sysfs file (`perm = 0`) and no hook is registered yet.
    unsafe { NET_KEY.wipe() };
    let Some(port) = parse_port(port).map_err(|_| {
        pr_err!(
            "net_port={}: must be 0 (off) or a UDP port, 1 to 65535\n",
            port
        );
        EINVAL
    })?
    else {
        if key_given {
            pr_warn!("net_key= is set but net_port= is not: the network trigger is off\n");
        }
        return Ok(None);
    };
    let window = parse_window(window).map_err(|_| {
        pr_err!("net_window={}: must be 1 to 86400 seconds\n", window);
        EINVAL
    })?;
    let mut key = key.map_err(|why| {
        match why {
            BadKey::Length(n) => pr_err!(
                "net_port={} needs net_key=, 32 to 128 hex digits: {} given\n",
                port,
                n
            ),
            _ => pr_err!(
                "net_port={} needs net_key=, 32 to 128 hex digits: {}\n",
                port,
                why.as_str()
            ),
        }
        EINVAL
    })?;
    // SAFETY: no hook is registered yet, so nothing reads `KEY`; the raw key is valid for its
    // length. `hmac_sha256_preparekey()` may be called in any context.
    unsafe {
        bindings::hmac_sha256_preparekey(KEY.0.get(), key.as_bytes().as_ptr(), key.as_bytes().len())
    };
    key.wipe();
    let loaded_ms = ffi::real_time_ns() / 1_000_000;
    if !NET.populate(Net {
        port,
        gate: Gate::new(loaded_ms, window),
    }) {
        wipe_prepared_key();
        return Err(EBUSY);
    }
    // SAFETY: `init_net` lives as long as the kernel; `HOOK_V4` is a static that stays until
    // `NetHooks::drop` unregisters it.
    let v4 = unsafe { nf_register_net_hook(init_net(), HOOK_V4.get()) };
    if v4 != 0 {
        pr_err!("cannot register the IPv4 hook: {}\n", v4);
        wipe_prepared_key();
        return Err(Error::from_errno(v4));
    }
    // SAFETY: as above, for `HOOK_V6`.
    let v6 = unsafe { nf_register_net_hook(init_net(), HOOK_V6.get()) };
    if v6 != 0 {
        pr_warn!(
            "IPv6: no hook ({}): the network trigger listens on IPv4 only\n",
            v6
        );
    }
    let families = if v6 == 0 { "IPv4 and IPv6" } else { "IPv4" };
    pr_info!(
        "network trigger armed: UDP port {}, {}, window {} s\n",
        port,
        families,
        window
    );
    Ok(Some(NetHooks { v6: v6 == 0 }))
}

impl Drop for NetHooks {
    fn drop(&mut self) {
        // SAFETY: `HOOK_V4` (and `HOOK_V6` when `v6`) were registered in `register`, in `init_net`.
        unsafe {
            nf_unregister_net_hook(init_net(), HOOK_V4.get());
            if self.v6 {
                nf_unregister_net_hook(init_net(), HOOK_V6.get());
            }
        }
        // Hooks run under `rcu_read_lock()`: after a grace period none runs any more.
        // SAFETY: process context (module exit), no lock held.
        unsafe { bindings::synchronize_rcu() };
        wipe_prepared_key();
    }
}

/// Overwrites the prepared key with zeros; only while no hook can read it
/// (none registered yet, or all unregistered and a grace period passed).
fn wipe_prepared_key() {
    let p = KEY.0.get().cast::<u8>();
    for i in 0..size_of::<bindings::hmac_sha256_key>() {
        // SAFETY: inside `KEY`, which no hook reads (the callers' condition); volatile, so that
        // the wipe is not optimised away.
        unsafe { p.add(i).write_volatile(0) };
    }
}

/// The status lines (`net_port: off`, or the port, window, counters, and
/// the mean time the hook spent on a datagram to the port).
pub(crate) fn format_status(out: &mut BufWriter<'_>) -> fmt::Result {
    let status = NET.as_ref().map(|n| NetStatus {
        port: n.port,
        window_s: n.gate.window_s(),
        loaded_ms: n.gate.loaded_ms(),
        counts: n.gate.counts(),
    });
    packet::format_net_status(status.as_ref(), out)?;
    if status.is_some() {
        let n = CHECKED.load(Ordering::Relaxed);
        let ns = CHECK_NS.load(Ordering::Relaxed);
        fmt::Write::write_fmt(out, format_args!("net_check_ns_mean: {}\n", ns / n.max(1)))?;
    }
    Ok(())
}

/// Copies `out.len()` bytes of the packet from `offset` (from the network
/// header); false if the packet is shorter.
fn copy(skb: *const bindings::sk_buff, offset: usize, out: &mut [u8]) -> bool {
    let (Ok(offset), Ok(len)) = (c_int::try_from(offset), c_int::try_from(out.len())) else {
        return false;
    };
    // SAFETY: `skb` is the packet the hook was given, alive for the hook's duration; `out` is
    // valid for `len` bytes. `skb_copy_bits()` checks the bounds against `skb->len` and maps
    // paged data atomically: it neither sleeps nor allocates.
    unsafe { bindings::skb_copy_bits(skb, offset, out.as_mut_ptr().cast(), len) == 0 }
}

/// HMAC-SHA256 with the prepared key.
fn mac(text: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // SAFETY: `KEY` was prepared before any hook was registered and is wiped only after every
    // hook is gone; `text` and `out` are valid for their lengths. Any context.
    unsafe { bindings::hmac_sha256(KEY.0.get(), text.as_ptr(), text.len(), out.as_mut_ptr()) };
    out
}

/// Whether two MACs differ, in time independent of where.
fn differ(a: &[u8; 32], b: &[u8; 32]) -> bool {
    // SAFETY: both are valid for 32 bytes.
    unsafe { __crypto_memneq(a.as_ptr().cast(), b.as_ptr().cast(), 32) != 0 }
}

/// # Safety
///
/// Only netfilter calls it, through `HOOK_V4`, with a valid packet.
unsafe extern "C" fn hook_v4(
    _priv: *mut c_void,
    skb: *mut bindings::sk_buff,
    _state: *const nf_hook_state,
) -> c_uint {
    on_packet(Family::V4, skb)
}

/// # Safety
///
/// Only netfilter calls it, through `HOOK_V6`, with a valid packet.
unsafe extern "C" fn hook_v6(
    _priv: *mut c_void,
    skb: *mut bindings::sk_buff,
    _state: *const nf_hook_state,
) -> c_uint {
    on_packet(Family::V6, skb)
}

/// One packet delivered to this machine: anything but UDP to our port goes
/// on untouched; a datagram to our port is checked, counted, and consumed.
fn on_packet(family: Family, skb: *const bindings::sk_buff) -> c_uint {
    let Some(net) = NET.as_ref() else {
        return NF_ACCEPT;
    };
    let mut headers = [0u8; MAX_HEADERS];
    let len = match headers.get_mut(..family.min_header()) {
        Some(ip) => {
            if copy(skb, 0, ip) {
                ip::header_len(family, ip)
            } else {
                None
            }
        }
        None => None,
    };
    let Some(headers) = len.and_then(|n| headers.get_mut(..n)) else {
        return NF_ACCEPT;
    };
    if !copy(skb, 0, headers) {
        return NF_ACCEPT;
    }
    let start = ffi::now_ns();
    let mut payload = [0u8; MAX_PAYLOAD + 1];
    let (source, dest, read) = match ip::udp(family, headers) {
        Err(BadDatagram::NotUdp) => return NF_ACCEPT,
        Err(BadDatagram::BadLength {
            dest_port,
            source,
            dest,
        }) => {
            if dest_port != net.port {
                return NF_ACCEPT;
            }
            // Nothing of the payload can be trusted: checked as empty, it is malformed.
            (source, dest, &payload[..0])
        }
        Ok(d) => {
            if d.dest_port != net.port {
                return NF_ACCEPT;
            }
            let n = d.payload_len.min(payload.len());
            let read = if copy(skb, d.payload_at, &mut payload[..n]) {
                n
            } else {
                0
            };
            (d.source, d.dest, &payload[..read])
        }
    };
    let now_ms = ffi::real_time_ns() / 1_000_000;
    let verdict = net.gate.check(read, dest, net.port, now_ms, mac, differ);
    CHECK_NS.fetch_add(ffi::now_ns().wrapping_sub(start), Ordering::Relaxed);
    CHECKED.fetch_add(1, Ordering::Relaxed);
    match verdict {
        Ok(method) => match emergency_reset(Trigger::Net(source), method) {
            Err(e) if e == EBUSY => {
                pr_emerg!(
                    "network trigger from {}: another reset is under way\n",
                    source
                )
            }
            Err(_) => pr_emerg!(
                "network trigger from {}: reset failed: no method reset the machine\n",
                source
            ),
            Ok(()) => {}
        },
        Err(why) => {
            if DROPS_LOG.allow(ffi::now_ns()) {
                pr_warn!(
                    "network trigger: dropped a datagram from {} to port {}: {}\n",
                    source,
                    net.port,
                    why.name()
                );
            }
        }
    }
    NF_DROP
}
