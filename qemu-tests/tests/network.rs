// SPDX-License-Identifier: GPL-2.0

//! The network trigger in QEMU, on a tap link in a network namespace of the
//! test's own ([`Guest::network`]).
//!
//! A guest whose userspace is dead (the seed fault: an oops holding
//! `system_transition_mutex`, and `/init` itself stuck in `reboot -f` behind
//! it) is reset by one authenticated datagram: from the sender and from the
//! admin guide's shell one-liner, over IPv4 and IPv6. A guest lives on after
//! every datagram that must not reset it, and its status counts each one; a
//! captured datagram replayed after the guest reset and booted again resets
//! nothing.

use emergency_reset_send as send;
use qemu_tests::{
    Guest,
    Inputs,
    Vm,
    DONE,
    GUEST_V4,
    GUEST_V6,
    HOST_V4,
    HOST_V6,
    NET_UP,
    STUCK_REBOOT, //
};
use std::{
    collections::BTreeMap,
    fs,
    io::Read,
    net::{
        IpAddr,
        SocketAddr, //
    },
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    thread,
    time::{
        Duration,
        Instant,
        SystemTime, //
    },
};

/// The trigger's port in every guest.
const PORT: u16 = 5555;
/// `net_window=`'s default.
const WINDOW_MS: u64 = 30_000;

/// A key of 32 random bytes, and a file holding it as the sender wants it.
struct Key {
    hex: String,
    bytes: Vec<u8>,
    file: PathBuf,
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Key {
    fn new(inputs: &Inputs, name: &str) -> Key {
        let bytes = random_bytes(32);
        let dir = inputs.target_dir("keys");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.key"));
        let hex = hex(&bytes);
        fs::write(&file, format!("{hex}\n")).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        Key { hex, bytes, file }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn nonce() -> String {
    hex(&random_bytes(8))
}

/// Loads the module with the trigger armed, and says so with the boot's number.
fn arm(key: &Key, more: &str) -> String {
    format!(
        "insmod /modules/rust_emergency_reset.ko net_port={PORT} net_key={}{more}\n\
         echo \"RER-NET-ARMED boot=$RER_BOOT rc=$?\"\n",
        key.hex
    )
}

/// Userspace dies: the seed fault, then `/init` calls `reboot -f` and blocks
/// behind the oops's lock for good. Nothing of userspace runs after.
const USERSPACE_DIES: &str = "echo RER-USERSPACE-DIES\nreboot -f\necho RER-INIT-RETURNED\n";

/// Answers `status N` on the console with the `net_` status lines between
/// `RER-STATUS-BEGIN N` and `RER-STATUS-END N`, until `done`. The kernel's
/// lines go to the log only (`dmesg -n 1`), so that none splits these.
const STATUS_LOOP: &str = r#"dmesg -n 1
echo "RER-READY boot=$RER_BOOT"
while read -r line; do
	case "$line" in
	status*)
		echo "RER-STATUS-BEGIN ${line#status }"
		grep ^net_ /dev/emergency_reset
		echo "RER-STATUS-END ${line#status }"
		;;
	done) break ;;
	esac
done
dmesg | grep 'network trigger' | sed 's/^/RER-DMESG /'
"#;

/// Whether the (mended) console has `line` as a whole line.
fn has_line(console: &str, line: &str) -> bool {
    console.lines().any(|l| l.trim_end() == line)
}

/// The one line of the (mended) console that starts with `prefix`.
fn line_starting(console: &str, prefix: &str) -> String {
    let lines: Vec<&str> = console.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(lines.len(), 1, "{prefix}: {lines:?}");
    lines[0].to_string()
}

/// The `net_` status lines, asked for on the console ([`STATUS_LOOP`]).
fn status(vm: &mut Vm, ask: &mut u32) -> BTreeMap<String, String> {
    *ask += 1;
    let n = *ask;
    vm.serial_write(format!("status {n}\n").as_bytes());
    let end = format!("RER-STATUS-END {n}");
    assert!(
        vm.wait_for_within(&end, Duration::from_secs(30)),
        "no status {n} from the guest:\n{}",
        qemu_tests::tail(vm.console(), 30)
    );
    // The kernel prints asynchronously: a line of its may land inside ours.
    let console = qemu_tests::console::mend(vm.console());
    let begin = console
        .rfind(&format!("RER-STATUS-BEGIN {n}\n"))
        .expect("status begin");
    let stop = console.rfind(&end).unwrap();
    console[begin..stop]
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// The counters of a status: accepted and each drop reason.
fn counters(s: &BTreeMap<String, String>) -> [u64; 5] {
    let get = |k: &str| -> u64 {
        s.get(k)
            .unwrap_or_else(|| panic!("no {k} in the status {s:?}"))
            .parse()
            .unwrap()
    };
    [
        get("net_accepted"),
        get("net_dropped.malformed"),
        get("net_dropped.window"),
        get("net_dropped.bad_mac"),
        get("net_dropped.replayed"),
    ]
}

/// Waits until this machine's clock is 1 s past `armed_ms`, the guest's
/// `net_armed_since_ms`: the guest's clock (from the RTC, under TCG) may run
/// a little ahead of ours, and a datagram must be later than the load.
fn wait_past(armed_ms: u64) {
    while now_ms() < armed_ms + 1_000 {
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `payload` from the guest's network namespace to `to`.
fn send_raw(vm: &Vm, to: SocketAddr, payload: &[u8]) {
    vm.net_socket(to).send(payload).unwrap();
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::new(GUEST_V4.parse().unwrap(), port)
}

fn v6(port: u16) -> SocketAddr {
    SocketAddr::new(GUEST_V6.parse().unwrap(), port)
}

/// A datagram made by the sender's library: `command` at `time`, signed for
/// `dest`:`port` with `key`.
fn datagram(key: &[u8], command: &str, time: u64, dest: &str, port: u16) -> Vec<u8> {
    let dest: IpAddr = dest.parse().unwrap();
    send::packet(key, command, time, &nonce(), dest, port).into_bytes()
}

/// The sender, run in the guest's network namespace.
fn run_sender(vm: &Vm, key: &Key, to: &str) {
    let out = vm
        .net_command(Vm::sender().to_str().unwrap())
        .args(["--key-file", key.file.to_str().unwrap(), "--to", to])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sender --to {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The admin guide's shell one-liner, its first line (the settings) set for
/// this guest, run in the guest's network namespace.
fn run_one_liner(vm: &Vm, key: &Key, to: &str) {
    let guide = fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../Documentation/admin-guide/emergency-reset.rst"),
    )
    .unwrap();
    let begin = guide
        .find(".. net-one-liner-begin")
        .expect("one-liner in the guide");
    let end = guide.find(".. net-one-liner-end").unwrap();
    let block: Vec<&str> = guide[begin..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(".."))
        .collect();
    assert!(
        block[0].starts_with("key_file=") && block.len() >= 3,
        "{block:?}"
    );
    let script = format!(
        "set -e\nkey_file={} to={to} port={PORT}\n{}\n",
        key.file.display(),
        block[1..].join("\n")
    );
    let out = vm.net_command("sh").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "the one-liner failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest whose userspace dies, reset by `send` with the datagram from `from`.
fn dead_userspace_reset(name: &str, from: &str, send: impl FnOnce(&Vm, &Key)) {
    let inputs = Inputs::from_env();
    let key = Key::new(&inputs, name);
    let scenario = format!("{}{STUCK_REBOOT}{USERSPACE_DIES}", arm(&key, ""));
    let guest = Guest::new(name, &inputs, &scenario)
        .network(&inputs)
        .with_module(inputs.test_module("rer_oops_transition"))
        .timeout(Duration::from_secs(120));
    let mut vm = Vm::boot(&guest, &inputs);
    let dies = vm.wait_for("RER-USERSPACE-DIES");
    // Whole lines: a kernel line may have landed inside one of ours.
    let console = qemu_tests::console::mend(vm.console());
    assert!(
        dies,
        "the guest never got to kill its userspace:\n{}",
        qemu_tests::tail(&console, 30)
    );
    // The fault is in place: the oops holding the lock, reboot -f stuck behind it.
    assert!(has_line(&console, NET_UP), "no network");
    assert!(has_line(&console, "RER-NET-ARMED boot=1 rc=0"), "not armed");
    assert!(console.contains("BUG: kernel NULL pointer dereference"));
    assert!(
        console.contains("RER-REBOOT-STATE D "),
        "reboot -f not stuck in D state"
    );
    // /init is now in reboot(2) behind the same mutex.
    thread::sleep(Duration::from_secs(2));
    send(&vm, &key);
    let out = vm.finish();
    out.assert_reset();
    assert!(
        out.saw(&format!(
            "resetting now: trigger udp from {from}, method kbd"
        )),
        "no log line naming the network trigger and its source"
    );
    assert!(!out.saw("RER-INIT-RETURNED"), "/init's reboot returned");
    assert!(!out.saw(DONE));
}

#[test]
fn dead_userspace_is_reset_by_the_sender_over_ipv4() {
    dead_userspace_reset("net_sender_v4", HOST_V4, |vm, key| {
        run_sender(vm, key, &format!("{GUEST_V4}:{PORT}"))
    });
}

#[test]
fn dead_userspace_is_reset_by_the_sender_over_ipv6() {
    dead_userspace_reset("net_sender_v6", HOST_V6, |vm, key| {
        run_sender(vm, key, &format!("[{GUEST_V6}]:{PORT}"))
    });
}

#[test]
fn dead_userspace_is_reset_by_the_one_liner_over_ipv4() {
    dead_userspace_reset("net_one_liner_v4", HOST_V4, |vm, key| {
        run_one_liner(vm, key, GUEST_V4)
    });
}

#[test]
fn dead_userspace_is_reset_by_the_one_liner_over_ipv6() {
    dead_userspace_reset("net_one_liner_v6", HOST_V6, |vm, key| {
        run_one_liner(vm, key, GUEST_V6)
    });
}

/// A guest on which the 8042 does nothing (`i8042=off`): a datagram that is
/// accepted with `reset-kbd` is counted and fails (`EIO`), and the guest
/// lives to show what every other datagram did.
fn alive_guest(name: &str, inputs: &Inputs, key: &Key) -> Vm {
    let scenario = format!("{}{STATUS_LOOP}", arm(key, ""));
    let guest = Guest::new(name, inputs, &scenario)
        .machine("q35,i8042=off")
        .network(inputs)
        .timeout(Duration::from_secs(300));
    let mut vm = Vm::boot(&guest, inputs);
    assert!(
        vm.wait_for("RER-READY boot=1"),
        "the guest never got ready:\n{}",
        qemu_tests::tail(vm.console(), 30)
    );
    let console = qemu_tests::console::mend(vm.console());
    assert!(has_line(&console, NET_UP), "no network");
    assert!(has_line(&console, "RER-NET-ARMED boot=1 rc=0"), "not armed");
    vm
}

/// Sends one datagram and checks that the counters moved by exactly `delta`
/// (accepted, malformed, window, bad_mac, replayed). The guest handles a
/// datagram before it reads the next console line, but the console and the
/// network are separate queues: ask until the counters move or 10 s pass.
fn expect(
    vm: &mut Vm,
    ask: &mut u32,
    before: &mut [u64; 5],
    what: &str,
    to: SocketAddr,
    payload: &[u8],
    delta: [u64; 5],
) {
    send_raw(vm, to, payload);
    let want: Vec<u64> = before.iter().zip(delta).map(|(b, d)| b + d).collect();
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = counters(&status(vm, ask));
        if now.as_slice() == want.as_slice() || Instant::now() > until {
            assert_eq!(
                now.as_slice(),
                want.as_slice(),
                "{what}: counters (accepted, malformed, window, bad_mac, replayed)"
            );
            *before = now;
            return;
        }
        thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn every_datagram_that_must_not_reset_is_dropped_and_counted() {
    let inputs = Inputs::from_env();
    let key = Key::new(&inputs, "net_refusals");
    let mut vm = alive_guest("net_refusals", &inputs, &key);
    let mut ask = 0;
    let first = status(&mut vm, &mut ask);
    assert_eq!(first["net_port"], PORT.to_string(), "{first:?}");
    assert_eq!(first["net_window"], "30", "{first:?}");
    let armed: u64 = first["net_armed_since_ms"].parse().unwrap();
    let mut c = counters(&first);
    assert_eq!(c, [0; 5]);
    wait_past(armed);
    let k = &key.bytes;
    let [a, malformed, window, bad_mac, replayed] = [
        [1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1],
    ];
    let none = [0; 5];

    // Signed before the module was loaded, though within the window: a
    // datagram captured before the last boot.
    let old = datagram(k, "reset-kbd", armed - 1, GUEST_V4, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "before load",
        v4(PORT),
        &old,
        replayed,
    );
    let other_key = random_bytes(32);
    let p = datagram(&other_key, "reset-kbd", now_ms(), GUEST_V4, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "wrong key",
        v4(PORT),
        &p,
        bad_mac,
    );
    let p = datagram(k, "reset-kbd", now_ms(), "192.0.2.99", PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "another address",
        v4(PORT),
        &p,
        bad_mac,
    );
    let p = datagram(k, "reset-kbd", now_ms(), "2001:db8::99", PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "another v6 address",
        v6(PORT),
        &p,
        bad_mac,
    );
    let p = datagram(k, "reset-kbd", now_ms(), GUEST_V4, PORT + 1);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "signed for another port",
        v4(PORT),
        &p,
        bad_mac,
    );
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "to another port",
        v4(PORT + 1),
        &p,
        none,
    );
    let p = datagram(
        k,
        "reset-kbd",
        now_ms() - WINDOW_MS - 15_000,
        GUEST_V4,
        PORT,
    );
    expect(&mut vm, &mut ask, &mut c, "too old", v4(PORT), &p, window);
    let p = datagram(
        k,
        "reset-kbd",
        now_ms() + WINDOW_MS + 15_000,
        GUEST_V4,
        PORT,
    );
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "from the future",
        v4(PORT),
        &p,
        window,
    );
    let good = datagram(k, "reset-kbd", now_ms(), GUEST_V4, PORT);
    let cut = &good[..good.len() - 10];
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "truncated",
        v4(PORT),
        cut,
        malformed,
    );
    let mut long = good.clone();
    long.pop();
    long.extend_from_slice(&[b'0'; 200]);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "over-long",
        v4(PORT),
        &long,
        malformed,
    );
    let upper = String::from_utf8(good.clone()).unwrap().to_uppercase();
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "upper case",
        v4(PORT),
        upper.as_bytes(),
        malformed,
    );
    let bad_method = datagram(k, "reset-nosuch", now_ms(), GUEST_V4, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "unknown method",
        v4(PORT),
        &bad_method,
        malformed,
    );
    expect(&mut vm, &mut ask, &mut c, "empty", v4(PORT), b"", malformed);
    assert!(!vm.console().contains("resetting now"), "a reset was tried");

    // Accepted: the reset is tried (kbd does nothing here: EIO) and counted.
    expect(&mut vm, &mut ask, &mut c, "accepted", v4(PORT), &good, a);
    assert!(
        vm.wait_for_within("reset failed", Duration::from_secs(10)),
        "no attempt"
    );
    // The same bytes again, and an older valid datagram: replays.
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "replayed",
        v4(PORT),
        &good,
        replayed,
    );
    let older = datagram(k, "reset-kbd", now_ms() - 5_000, GUEST_V4, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "older",
        v4(PORT),
        &older,
        replayed,
    );
    // IPv6 too.
    let good6 = datagram(k, "reset-kbd", now_ms(), GUEST_V6, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "accepted over IPv6",
        v6(PORT),
        &good6,
        a,
    );
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "replayed over IPv6",
        v6(PORT),
        &good6,
        replayed,
    );
    // A datagram signed for IPv4 sent over IPv6: another address.
    let p = datagram(k, "reset-kbd", now_ms(), GUEST_V4, PORT);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "v4-signed over IPv6",
        v6(PORT),
        &p,
        bad_mac,
    );

    vm.serial_write(b"done\n");
    let out = vm.finish();
    out.assert_alive();
    // One attempt per accepted datagram, each failed (kbd does nothing here).
    for from in [HOST_V4, HOST_V6] {
        let failed =
            format!("network trigger from {from}: reset failed: no method reset the machine");
        let console = |l: &&&str| !l.starts_with("RER-DMESG");
        assert_eq!(
            out.lines_with(&failed).iter().filter(console).count(),
            1,
            "{failed}"
        );
    }
    assert_eq!(out.lines_with("skipping method kbd: no 8042").len(), 2);
    let logged = out.lines_with("RER-DMESG");
    assert!(
        logged.iter().any(|l| l.contains(&format!(
            "dropped a datagram from {HOST_V4} to port {PORT}: bad_mac"
        ))),
        "{logged:?}"
    );
}

#[test]
fn a_datagram_replayed_after_the_reset_and_reboot_is_refused() {
    let inputs = Inputs::from_env();
    let key = Key::new(&inputs, "net_replay_reboot");
    let scenario = format!(
        "{}if [ \"$RER_BOOT\" = 1 ]; then\n\
         \techo \"RER-READY-1 $(grep net_armed_since_ms /dev/emergency_reset)\"\n\
         \techo RER-READY-1-DONE\n\
         \tsleep 100\nfi\n{STATUS_LOOP}",
        // A window wider than any reboot under TCG (a CI run on a loaded host
        // took Debian's kernel more than the default 30 s from the datagram to
        // the second boot's load, and counted the replay as out of the window).
        arm(&key, " net_window=600")
    );
    let guest = Guest::new("net_replay_reboot", &inputs, &scenario)
        .network(&inputs)
        .boots(2)
        .timeout(Duration::from_secs(240));
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(vm.wait_for("RER-READY-1-DONE"), "boot 1 never got ready");
    // The line is whole once the marker after it is there; a kernel line may have split it.
    let console = qemu_tests::console::mend(vm.console());
    let armed: u64 = console
        .lines()
        .find_map(|l| l.strip_prefix("RER-READY-1 net_armed_since_ms: "))
        .expect("boot 1's load time")
        .trim()
        .parse()
        .unwrap();
    wait_past(armed);
    let captured = datagram(&key.bytes, "reset", now_ms(), GUEST_V4, PORT);
    send_raw(&vm, v4(PORT), &captured);
    assert!(
        vm.wait_for("RER-READY boot=2"),
        "boot 2 never got ready:\n{}",
        qemu_tests::tail(vm.console(), 30)
    );
    let console = qemu_tests::console::mend(vm.console());
    assert!(
        has_line(&console, "RER-NET-ARMED boot=2 rc=0"),
        "boot 2 not armed"
    );
    let mut ask = 0;
    let mut c = counters(&status(&mut vm, &mut ask));
    assert_eq!(c, [0; 5]);
    expect(
        &mut vm,
        &mut ask,
        &mut c,
        "replayed after the reboot",
        v4(PORT),
        &captured,
        [0, 0, 0, 0, 1],
    );
    vm.serial_write(b"done\n");
    let out = vm.finish();
    assert_eq!(out.guest_resets(), 1, "boot 1 reset, boot 2 lives");
    out.assert_alive();
    assert!(out.saw(&format!(
        "resetting now: trigger udp from {HOST_V4}, method kbd"
    )));
}

/// Whether `line` is a well-formed datagram, by the wire format's text
/// written out with std (independent of `logic/src/packet.rs`): its time.
fn well_formed(payload: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(payload).ok()?;
    let text = text.strip_suffix('\n').unwrap_or(text);
    let f: Vec<&str> = text.split(' ').collect();
    let hexlen = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let command_ok = f.get(1).is_some_and(|c| {
        [
            "reset",
            "reset-kbd",
            "reset-acpi",
            "reset-cf9",
            "reset-triple",
        ]
        .contains(c)
    });
    let time = f.get(2)?;
    let time_ok = !time.is_empty()
        && time.bytes().all(|b| b.is_ascii_digit())
        && (time == &"0" || !time.starts_with('0'));
    (f.len() == 5
        && f[0] == "ERST1"
        && command_ok
        && time_ok
        && hexlen(f[3], 16)
        && hexlen(f[4], 64))
    .then(|| time.parse().ok())
    .flatten()
}

/// A small, seeded generator (xorshift), so that a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random bytes, or a valid datagram (of the right key, address and port)
/// with one random mutation that changes it.
fn random_datagram(rng: &mut Rng, key: &[u8]) -> Vec<u8> {
    if rng.below(4) == 0 {
        let n = rng.below(200);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let commands = ["reset", "reset-kbd", "reset-cf9"];
    let time = now_ms() - 5_000 + rng.below(10_000) as u64;
    let good = datagram(key, commands[rng.below(3)], time, GUEST_V4, PORT);
    loop {
        let mut p = good.clone();
        let at = rng.below(p.len());
        match rng.below(5) {
            0 => p[at] ^= 1 << rng.below(8),
            1 => p[at] = b"0123456789abcdef ERSTx\n"[rng.below(23)],
            2 => {
                p.remove(at);
            }
            3 => p.insert(at, rng.next() as u8),
            _ => p.truncate(at),
        }
        // Without its final newline the datagram is the same datagram.
        if p != good && p != good[..good.len() - 1] {
            return p;
        }
    }
}

#[test]
fn ten_thousand_random_and_mutated_datagrams_reset_nothing_and_are_all_counted() {
    let inputs = Inputs::from_env();
    let key = Key::new(&inputs, "net_random");
    let mut vm = alive_guest("net_random", &inputs, &key);
    let seed = now_ms() | 1;
    eprintln!("net_random: seed {seed}");
    let mut rng = Rng(seed);
    let mut ask = 0;
    let (mut malformed, mut other) = (0u64, 0u64);
    let to = v4(PORT);
    let socket = vm.net_socket(to);
    const TOTAL: u64 = 10_000;
    const BATCH: u64 = 250;
    let mut sent = 0;
    while sent < TOTAL {
        for _ in 0..BATCH {
            let p = random_datagram(&mut rng, &key.bytes);
            match well_formed(&p) {
                None => malformed += 1,
                Some(_) => other += 1,
            }
            socket.send(&p).unwrap();
        }
        sent += BATCH;
        // The guest keeps up before the next batch: nothing is lost in a queue.
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let c = counters(&status(&mut vm, &mut ask));
            if c.iter().sum::<u64>() >= sent || Instant::now() > until {
                assert_eq!(c.iter().sum::<u64>(), sent, "datagrams counted: {c:?}");
                break;
            }
            thread::sleep(Duration::from_millis(500));
        }
    }
    let last = status(&mut vm, &mut ask);
    let c = counters(&last);
    // The cost of a whole check (parse, window, HMAC, compare): 1000 datagrams
    // that fail only their MAC, timed by the hook itself.
    let checked = |s: &BTreeMap<String, String>| -> (u64, u64) {
        let mean: u64 = s["net_check_ns_mean"].parse().unwrap();
        let n: u64 = counters(s).iter().sum();
        (n, mean * n)
    };
    let (n0, ns0) = checked(&last);
    let wrong = random_bytes(32);
    for _ in 0..4 {
        for _ in 0..BATCH {
            socket
                .send(&datagram(&wrong, "reset", now_ms(), GUEST_V4, PORT))
                .unwrap();
        }
        thread::sleep(Duration::from_millis(500));
    }
    let until = Instant::now() + Duration::from_secs(60);
    let full = loop {
        let s = status(&mut vm, &mut ask);
        if checked(&s).0 >= n0 + 4 * BATCH || Instant::now() > until {
            break s;
        }
        thread::sleep(Duration::from_millis(500));
    };
    let (n1, ns1) = checked(&full);
    assert_eq!(counters(&full)[3], c[3] + 4 * BATCH, "bad_mac: {full:?}");
    vm.serial_write(b"done\n");
    let out = vm.finish();
    out.assert_alive();
    eprintln!(
        "net_random: {TOTAL} datagrams: malformed {}, window {}, bad_mac {}, replayed {}, \
         accepted {}; the hook's mean time per datagram {} ns",
        c[1], c[2], c[3], c[4], c[0], last["net_check_ns_mean"]
    );
    eprintln!(
        "net_random: a whole check (HMAC included), mean over {} datagrams: {} ns",
        n1 - n0,
        ns1.saturating_sub(ns0) / (n1 - n0).max(1)
    );
    assert_eq!(c[0], 0, "none accepted");
    assert_eq!(c[4], 0, "none replayed (no valid MAC among them)");
    assert_eq!(c[1], malformed, "malformed, as the wire format says");
    assert_eq!(c[2] + c[3], other, "well formed: a bad time or a bad MAC");
    assert!(!out.saw("resetting now"));
}

#[test]
fn bad_parameters_fail_the_load_and_the_key_is_never_shown() {
    let inputs = Inputs::from_env();
    let key = "00112233445566778899aabbccddeeff";
    let try_load = |label: &str, params: &str| {
        format!(
            "insmod /modules/rust_emergency_reset.ko {params} 2>/tmp/err; \
             echo \"RER-LOAD {label} rc=$? $(cat /tmp/err)\"; rmmod rust_emergency_reset 2>/dev/null\n"
        )
    };
    let mut scenario = String::new();
    for (label, params) in [
        ("no-key", "net_port=5555".to_string()),
        ("short-key", format!("net_port=5555 net_key={}", &key[..30])),
        ("odd-key", format!("net_port=5555 net_key={key}0")),
        (
            "not-hex",
            format!("net_port=5555 net_key={}", key.replace('a', "g")),
        ),
        (
            "long-key",
            format!("net_port=5555 net_key={}00", key.repeat(4)),
        ),
        ("port", format!("net_port=70000 net_key={key}")),
        ("negative-port", format!("net_port=-1 net_key={key}")),
        (
            "window",
            format!("net_port=5555 net_key={key} net_window=0"),
        ),
    ] {
        scenario += &try_load(label, &params);
    }
    scenario += &format!(
        "insmod /modules/rust_emergency_reset.ko net_key={key}\n\
         echo \"RER-KEY-ONLY rc=$? $(grep ^net_port /dev/emergency_reset)\"\n\
         rmmod rust_emergency_reset\n\
         insmod /modules/rust_emergency_reset.ko net_port=5555 net_key={key}\n\
         echo \"RER-ARMED rc=$?\"\n\
         echo \"RER-PARAMS $(ls /sys/module/rust_emergency_reset/parameters | tr '\\n' ' ')\"\n\
         echo \"RER-KEY-IN-SYSFS $(grep -rl {key} /sys/module/rust_emergency_reset/ 2>/dev/null | wc -l)\"\n\
         dmesg | grep rust_emergency_reset | sed 's/^/RER-DMESG /'\n"
    );
    let guest = Guest::new("net_bad_parameters", &inputs, &scenario).network(&inputs);
    let out = qemu_tests::run(&guest, &inputs);
    out.assert_alive();
    let console = qemu_tests::console::mended_console(&out);
    for label in [
        "no-key",
        "short-key",
        "odd-key",
        "not-hex",
        "long-key",
        "port",
        "negative-port",
        "window",
    ] {
        let line = line_starting(&console, &format!("RER-LOAD {label} "));
        assert!(
            !line.contains("rc=0 ") && line.contains("Invalid argument"),
            "{label}: {line}"
        );
    }
    let dmesg = out.lines_with("RER-DMESG").join("\n");
    for why in [
        "net_port=5555 needs net_key=, 32 to 128 hex digits",
        "net_port=70000: must be 0 (off) or a UDP port, 1 to 65535",
        "net_port=-1: must be 0 (off) or a UDP port, 1 to 65535",
        "net_window=0: must be 1 to 86400 seconds",
        "net_key= is set but net_port= is not: the network trigger is off",
        "network trigger armed: UDP port 5555",
    ] {
        assert!(dmesg.contains(why), "no \"{why}\" in the log:\n{dmesg}");
    }
    let key_only = line_starting(&console, "RER-KEY-ONLY ");
    assert!(
        key_only.contains("rc=0") && key_only.contains("net_port: off"),
        "{key_only}"
    );
    assert!(out.saw_line("RER-ARMED rc=0"));
    let params = line_starting(&console, "RER-PARAMS ");
    assert!(
        params.contains("methods"),
        "the check sees parameters: {params}"
    );
    assert!(
        !params.contains("net_key"),
        "net_key has a sysfs file: {params}"
    );
    assert!(out.saw_line("RER-KEY-IN-SYSFS 0"));
    assert!(!dmesg.contains(key), "the key reached the kernel log");
}

#[test]
fn unloading_while_datagrams_arrive_leaves_no_hook_behind() {
    let inputs = Inputs::from_env();
    let key = Key::new(&inputs, "net_unload");
    let scenario = format!(
        "dmesg -n 1\necho RER-CYCLES\ni=0\nwhile [ $i -lt 20 ]; do\n\
         \tinsmod /modules/rust_emergency_reset.ko net_port={PORT} net_key={} || echo RER-LOAD-FAILED\n\
         \tsleep 0.2\n\
         \trmmod rust_emergency_reset || echo RER-UNLOAD-FAILED\n\
         \ti=$((i + 1))\ndone\n\
         echo \"RER-CYCLES-DONE loaded=$(grep -c rust_emergency_reset /proc/modules) \
         armed=$(dmesg | grep -c 'network trigger armed') RER-END\"\nsleep 5\n",
        key.hex
    );
    // Two CPUs: each load and unload flips netfilter's static key for LOCAL_IN,
    // which the kernel patches (through an int3) while the other CPU runs
    // ip_local_deliver(). QEMU 7.2's TCG failed this: the other vCPU ran a stale
    // translation with the int3 in it after the patch was done ("Oops: int3" at
    // ip_local_deliver in 8 of 21 runs on Debian's kernel, 0 of 21 on QEMU 10).
    let guest = Guest::new("net_unload", &inputs, &scenario)
        .network(&inputs)
        .timeout(Duration::from_secs(120));
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(vm.wait_for("RER-CYCLES"), "never started");
    // Datagrams that go all the way to the MAC check, while the module comes and goes.
    let socket = vm.net_socket(v4(PORT));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        let wrong = random_bytes(32);
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let p = datagram(&wrong, "reset", now_ms(), GUEST_V4, PORT);
                // While the module is out, the guest answers ICMP port unreachable, which the
                // next send on this socket reports (ECONNREFUSED): the datagram got there.
                if socket.send(&p).is_ok() {
                    n += 1;
                }
                thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    let done = vm.wait_for("RER-END");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = flood.join().unwrap();
    assert!(done, "{}", qemu_tests::tail(vm.console(), 30));
    // The kernel's lines go to the log only (dmesg -n 1): nothing splits this one.
    let cycles = line_starting(vm.console(), "RER-CYCLES-DONE ");
    assert!(
        cycles.contains("loaded=0 armed=20 "),
        "20 loads, each armed, and unloaded at the end: {cycles}"
    );
    // With the module gone, a valid datagram is just a datagram.
    send_raw(
        &vm,
        v4(PORT),
        &datagram(&key.bytes, "reset", now_ms(), GUEST_V4, PORT),
    );
    let out = vm.finish();
    out.assert_alive();
    eprintln!("net_unload: {sent} datagrams during 20 load/unload cycles");
    assert!(sent > 100, "only {sent} datagrams sent");
    assert!(!out.saw("RER-LOAD-FAILED") && !out.saw("RER-UNLOAD-FAILED"));
    assert!(out.reset_attempts().is_empty());
}
