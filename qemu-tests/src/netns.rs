// SPDX-License-Identifier: GPL-2.0

//! The network of a guest with one ([`Guest::network`](crate::Guest::network)):
//! the addresses on both ends ([`GUEST_V4`], [`HOST_V4`], ...), the guest's
//! `/net-up.sh` ([`NET_UP_SH`]), the run's own network namespace with its tap
//! ([`make_netns`]), and the host's ways into that namespace
//! ([`Vm::net_command`], [`Vm::net_socket`], and the trigger's sender,
//! [`Vm::sender`]).
//!
//! It makes namespaces and reaches into them; nothing here leaves the
//! namespace. QEMU's NIC and tap options are [`Vm::start`]'s, and the
//! namespace is deleted when its [`Vm`] is dropped (in `vm.rs`).

use crate::Vm;
use std::{
    fs,
    path::PathBuf,
    process::Command,
    thread, //
};

/// The guest's and its network namespace's addresses
/// ([`Guest::network`](crate::Guest::network)): documentation prefixes
/// (RFC 5737, RFC 3849), inside a namespace of the run's own with nothing
/// else on it.
pub const GUEST_V4: &str = "192.0.2.2";
pub const HOST_V4: &str = "192.0.2.1";
pub const GUEST_V6: &str = "2001:db8::2";
pub const HOST_V6: &str = "2001:db8::1";
/// What `/init` prints once the guest's network is up
/// ([`Guest::network`](crate::Guest::network)).
pub const NET_UP: &str = "RER-NET-UP";

/// `/net-up.sh`: the NIC's modules (listed in `/net-modules`), the
/// addresses, and [`NET_UP`] once both addresses are on the link.
pub(crate) const NET_UP_SH: &str = r#"for m in $(cat /net-modules); do insmod /modules/$m || echo "RER-NET-MODULE-FAILED $m"; done
ip link set lo up
# No duplicate address detection (busybox's ip has no nodad): the address is usable at once.
echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
ip -6 addr add 2001:db8::2/64 dev eth0
if ip addr show eth0 | grep -q 'inet 192.0.2.2/24' && ip addr show eth0 | grep -q 'inet6 2001:db8::2/64'; then
	echo "RER-NET-UP"
else
	echo "RER-NET-FAILED"; ip addr
fi
"#;

/// Runs `ip ARGS`; panics with its error when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a tap device `tap0` carrying [`HOST_V4`] and
/// [`HOST_V6`], for one guest ([`Guest::network`](crate::Guest::network)).
pub(crate) fn make_netns() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = format!("rer-{}-{n}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "tuntap", "add", "tap0", "mode", "tap"]);
    ip(&["-n", &ns, "link", "set", "tap0", "up"]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{HOST_V4}/24"),
        "dev",
        "tap0",
    ]);
    ip(&[
        "-n",
        &ns,
        "-6",
        "addr",
        "add",
        &format!("{HOST_V6}/64"),
        "dev",
        "tap0",
        "nodad",
    ]);
    ns
}

impl Vm {
    /// `program` to run inside the guest's network namespace
    /// ([`Guest::network`](crate::Guest::network)).
    pub fn net_command(&self, program: &str) -> Command {
        let ns = self
            .netns
            .as_ref()
            .expect("a guest with a network (Guest::network)");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// A UDP socket inside the guest's network namespace
    /// ([`Guest::network`](crate::Guest::network)), of the family of `peer`,
    /// connected to it.
    pub fn net_socket(&self, peer: std::net::SocketAddr) -> std::net::UdpSocket {
        let ns = self
            .netns
            .clone()
            .expect("a guest with a network (Guest::network)");
        // setns() moves one thread: a thread of its own makes the socket (which stays in the
        // namespace it was made in) and ends.
        thread::spawn(move || {
            let f = fs::File::open(format!("/run/netns/{ns}")).unwrap();
            // SAFETY: `f` is an open network namespace file; only this thread changes namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            let any: std::net::SocketAddr = if peer.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let s = std::net::UdpSocket::bind(any).unwrap();
            s.connect(peer).unwrap();
            s
        })
        .join()
        .unwrap()
    }

    /// The `sender` binary of the network trigger (`sender/`), which `make
    /// check` builds and names in `RER_SENDER`.
    pub fn sender() -> PathBuf {
        let p = PathBuf::from(
            std::env::var_os("RER_SENDER").expect("RER_SENDER is not set: run `make check`"),
        );
        assert!(
            p.exists(),
            "{} does not exist: run `make check`",
            p.display()
        );
        p
    }
}
