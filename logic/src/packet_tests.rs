// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the network trigger's decisions (`packet.rs`), with the
//! sender crate (`emergency-reset-send`) making the packets and computing the
//! HMACs: each acceptance rule of [`Gate::check`] has a test that fails
//! without it.

use crate::packet::*;
use crate::Method;
use emergency_reset_send as send;
use std::net::{
    IpAddr,
    Ipv4Addr,
    Ipv6Addr, //
};
use std::{
    format,
    string::String,
    string::ToString,
    vec,
    vec::Vec, //
};

/// A 32-byte key.
pub(crate) const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const NONCE: &str = "0123456789abcdef";
const PORT: u16 = 5555;
const WINDOW_S: u32 = 30;
const WINDOW_MS: u64 = WINDOW_S as u64 * 1000;
const LOADED: u64 = 1_764_590_000_123;
const NOW: u64 = LOADED + 600_000;
/// The address the packets arrive for (a documentation address: never sent to).
const DEST: Addr = Addr::V4([192, 0, 2, 7]);

/// `a` as `std` has it.
pub(crate) fn ip(a: Addr) -> IpAddr {
    match a {
        Addr::V4(b) => IpAddr::V4(Ipv4Addr::from(b)),
        Addr::V6(b) => IpAddr::V6(Ipv6Addr::from(b)),
    }
}

/// The HMAC closure `Gate::check` gets, with the sender's HMAC.
pub(crate) fn hmac(key: &[u8]) -> impl FnOnce(&[u8]) -> [u8; 32] + '_ {
    move |text| send::hmac_sha256(key, text)
}

/// A comparison for the tests (constant time does not matter here).
pub(crate) fn differ(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a != b
}

/// A gate as the module makes it at `LOADED`.
fn gate() -> Gate {
    Gate::new(LOADED, WINDOW_S)
}

/// Checks `payload` arriving for `DEST`:`PORT` at `NOW` with `KEY`.
fn check(g: &Gate, payload: &[u8]) -> Result<Option<Method>, Drop> {
    check_at(g, payload, NOW)
}

fn check_at(g: &Gate, payload: &[u8], now: u64) -> Result<Option<Method>, Drop> {
    g.check(payload, DEST, PORT, now, hmac(KEY), differ)
}

/// A valid payload for `DEST`:`PORT` from the sender.
fn valid(command: &str, time_ms: u64) -> String {
    send::packet(KEY, command, time_ms, NONCE, ip(DEST), PORT)
}

/// A payload with the given fields as text, its MAC correct for that text
/// (so that only the parser can refuse it), and `end` after the MAC.
fn signed_raw(command: &str, time: &str, nonce: &str, end: &str) -> String {
    let text = format!("ERST1 {command} {time} {nonce} {} {PORT}", ip(DEST));
    let mac = send::to_hex(&send::hmac_sha256(KEY, text.as_bytes()));
    format!("ERST1 {command} {time} {nonce} {mac}{end}")
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn sizes() {
    assert_eq!(KEY_MIN_HEX, 32);
    assert_eq!(KEY_MAX_HEX, 128);
    // "ERST1 reset-triple " + 20 digits + " " + 16 + " " + 64 + "\n".
    assert_eq!(MAX_PAYLOAD, 6 + 13 + 21 + 17 + 64 + 1);
    // "ERST1 reset-triple " + 20 + " " + 16 + " " + 39 + " " + 5.
    assert_eq!(SIGNED_MAX, 6 + 13 + 21 + 17 + 40 + 5);
}

#[test]
fn valid_packets_are_accepted_with_their_method() {
    let cases = [
        ("reset", None),
        ("reset-kbd", Some(Method::Kbd)),
        ("reset-acpi", Some(Method::Acpi)),
        ("reset-cf9", Some(Method::Cf9)),
        ("reset-triple", Some(Method::Triple)),
    ];
    for (command, method) in cases {
        let g = gate();
        let p = valid(command, NOW);
        assert!(p.ends_with('\n'));
        assert_eq!(check(&g, p.as_bytes()), Ok(method), "{p:?}");
        // Without the newline, a later time.
        let p = valid(command, NOW + 1);
        let p = p.trim_end_matches('\n');
        assert_eq!(check(&g, p.as_bytes()), Ok(method), "{p:?}");
        assert_eq!(g.counts().accepted, 2);
    }
}

#[test]
fn the_longest_packet_and_signed_text_fit() {
    let time = 10_000_000_000_000_000_001u64; // 20 digits
    let dest = Addr::V6([0xff; 16]);
    let port = 65535;
    let p = send::packet(KEY, "reset-triple", time, NONCE, ip(dest), port);
    assert_eq!(p.len(), MAX_PAYLOAD);
    let g = Gate::new(time - 1, 1);
    let mut seen = Vec::new();
    let verdict = g.check(
        p.as_bytes(),
        dest,
        port,
        time,
        |text| {
            seen = text.to_vec();
            send::hmac_sha256(KEY, text)
        },
        differ,
    );
    assert_eq!(verdict, Ok(Some(Method::Triple)));
    assert_eq!(seen.len(), SIGNED_MAX);
    let parsed = parse(p.as_bytes()).unwrap();
    let mut buf = [0; SIGNED_MAX];
    assert_eq!(
        signed_text(&parsed, dest, port, &mut buf),
        send::signed_text("reset-triple", time, NONCE, ip(dest), port).as_bytes()
    );
    // One byte more is refused before it is parsed.
    let mut longer = p.clone().into_bytes();
    longer.push(b'\n');
    assert_eq!(parse(&longer), Err(Drop::Malformed));
    let mut longer = p.into_bytes();
    longer.insert(0, b' ');
    assert_eq!(parse(&longer), Err(Drop::Malformed));
}

#[test]
fn parse_reads_the_fields() {
    let p = valid("reset-cf9", 1234);
    let parsed = parse(p.as_bytes()).unwrap();
    assert_eq!(parsed.method, Some(Method::Cf9));
    assert_eq!(parsed.time_ms, 1234);
    let mac_hex = p.trim_end().rsplit(' ').next().unwrap();
    assert_eq!(send::to_hex(&parsed.mac), mac_hex);
    assert_eq!(
        parsed.prefix(),
        format!("ERST1 reset-cf9 1234 {NONCE}").as_bytes()
    );
}

/// Refused by the parser although correctly signed: each field wrong in each way.
#[test]
fn every_field_is_exact() {
    let t = NOW.to_string();
    let bad_commands = [
        "Reset",
        "RESET",
        "reset-",
        "reset-KBD",
        "reset-nosuch",
        "reset-kbd-",
        "reset-kbd,acpi",
        "resetkbd",
        "reset_kbd",
        "reset-reset",
        "forget",
        "",
        "reset\t",
        "reset-kbd\0",
    ];
    for c in bad_commands {
        let p = signed_raw(c, &t, NONCE, "\n");
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::Malformed), "{p:?}");
    }
    let bad_times = [
        format!("0{t}"),
        format!("00{t}"),
        format!("+{t}"),
        format!("-{t}"),
        format!("{t}.0"),
        format!("{t}\t"),
        format!("0x{:x}", NOW),
        String::new(),
        "00".to_string(),
        "01".to_string(),
        "18446744073709551616".to_string(), // u64::MAX + 1
        "99999999999999999999".to_string(),
        "100000000000000000000".to_string(), // 21 digits
        format!("{t:0>21}"),
        "１".to_string(),
    ];
    for time in &bad_times {
        let p = signed_raw("reset", time, NONCE, "\n");
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::Malformed), "{p:?}");
    }
    let bad_nonces = [
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789ABCDEF",
        "0123456789abcdeF",
        "0123456789abcdeg",
        "0x23456789abcdef",
        "",
        "0123456789abcde ",
    ];
    for nonce in bad_nonces {
        let p = signed_raw("reset", &t, nonce, "\n");
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::Malformed), "{p:?}");
    }
    let bad_magic = ["ERST2", "erst1", "ERST", "ERST1x", "XERST1", ""];
    for magic in bad_magic {
        let p = valid("reset", NOW).replacen("ERST1", magic, 1);
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::Malformed), "{p:?}");
    }
    // The largest time parses (and is far beyond the window); 0 parses too.
    let p = signed_raw("reset", "18446744073709551615", NONCE, "\n");
    assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::Window));
    assert_eq!(parse(p.as_bytes()).unwrap().time_ms, u64::MAX);
    let p = signed_raw("reset", "0", NONCE, "\n");
    assert_eq!(parse(p.as_bytes()).unwrap().time_ms, 0);
    assert_eq!(
        Gate::new(0, 1).check(p.as_bytes(), DEST, PORT, 0, hmac(KEY), differ),
        Err(Drop::Replay)
    );
}

#[test]
fn the_mac_is_exact_lower_case_hex() {
    let p = valid("reset", NOW);
    let (head, mac) = p.trim_end().rsplit_once(' ').unwrap();
    let bad_macs = [
        mac.to_uppercase(),
        format!("{}A", &mac[..63]),
        format!("{}g", &mac[..63]),
        mac[..63].to_string(),
        format!("{mac}0"),
        format!("0x{}", &mac[2..]),
        format!("{} ", &mac[..63]),
        String::new(),
    ];
    for m in &bad_macs {
        let q = format!("{head} {m}\n");
        assert_eq!(check(&gate(), q.as_bytes()), Err(Drop::Malformed), "{q:?}");
    }
}

#[test]
fn spacing_and_line_ends_are_exact() {
    let p = valid("reset-kbd", NOW);
    let line = p.trim_end();
    let mut bad: Vec<String> = vec![
        format!("{line}\r\n"),
        format!("{line}\r"),
        format!("{line}\n\n"),
        format!("{line}\n\0"),
        format!("{line} \n"),
        format!("{line} "),
        format!(" {line}"),
        format!("\n{line}"),
        format!("{line}\0"),
        format!("{line}x"),
        format!("{line}\nERST1"),
        line.replace(' ', "\t"),
        String::new(),
        "\n".to_string(),
    ];
    // A doubled space at each separator.
    for (i, _) in line.match_indices(' ') {
        bad.push(format!("{}  {}\n", &line[..i], &line[i + 1..]));
    }
    // A field twice.
    for field in line.split(' ') {
        bad.push(format!("{line} {field}\n"));
        bad.push(format!("{field} {line}\n"));
    }
    // Every truncation.
    for n in 0..line.len() {
        bad.push(line[..n].to_string());
        bad.push(format!("{}\n", &line[..n]));
    }
    for q in &bad {
        assert_eq!(check(&gate(), q.as_bytes()), Err(Drop::Malformed), "{q:?}");
    }
    // Over-long input, however it starts.
    let mut long = p.clone().into_bytes();
    long.resize(4096, b' ');
    assert_eq!(check(&gate(), &long), Err(Drop::Malformed));
    assert_eq!(check(&gate(), &[b'a'; 65536]), Err(Drop::Malformed));
    // The original is fine.
    assert_eq!(check(&gate(), p.as_bytes()), Ok(Some(Method::Kbd)));
    assert_eq!(check(&gate(), line.as_bytes()), Ok(Some(Method::Kbd)));
}

#[test]
fn the_window_is_inclusive_on_both_sides() {
    // Oldest and newest acceptable times, in increasing order (replay rule).
    let g = gate();
    assert_eq!(
        check(&g, valid("reset", NOW - WINDOW_MS).as_bytes()),
        Ok(None)
    );
    assert_eq!(
        check(&g, valid("reset", NOW + WINDOW_MS).as_bytes()),
        Ok(None)
    );
    // One ms beyond, each side.
    let g = gate();
    let old = valid("reset", NOW - WINDOW_MS - 1);
    assert_eq!(check(&g, old.as_bytes()), Err(Drop::Window));
    let new = valid("reset", NOW + WINDOW_MS + 1);
    assert_eq!(check(&g, new.as_bytes()), Err(Drop::Window));
    // The same packets, one ms later and earlier: now inside.
    assert_eq!(check_at(&g, new.as_bytes(), NOW + 1), Ok(None));
    let g = gate();
    assert_eq!(check_at(&g, old.as_bytes(), NOW - 1), Ok(None));
    // No overflow at the ends of time.
    let far = valid("reset", u64::MAX);
    assert_eq!(check_at(&gate(), far.as_bytes(), 0), Err(Drop::Window));
    assert_eq!(check_at(&gate(), far.as_bytes(), u64::MAX), Ok(None));
    let zero = valid("reset", 0);
    assert_eq!(
        check_at(&gate(), zero.as_bytes(), u64::MAX),
        Err(Drop::Window)
    );
    // The window scales with net_window.
    let g = Gate::new(LOADED - 100_000_000, 86_400);
    assert_eq!(g.window_s(), 86_400);
    let p = valid("reset", NOW - 86_400_000);
    assert_eq!(check(&g, p.as_bytes()), Ok(None));
}

#[test]
fn the_window_is_checked_before_the_mac() {
    let g = gate();
    let mut called = false;
    let p = valid("reset", NOW + WINDOW_MS + 1);
    let v = g.check(
        p.as_bytes(),
        DEST,
        PORT,
        NOW,
        |t| {
            called = true;
            send::hmac_sha256(KEY, t)
        },
        differ,
    );
    assert_eq!(v, Err(Drop::Window));
    assert!(
        !called,
        "the HMAC was computed for a packet out of the window"
    );
    // A malformed packet is not hashed either.
    let v = g.check(b"ERST1", DEST, PORT, NOW, |_| panic!("hashed"), |_, _| true);
    assert_eq!(v, Err(Drop::Malformed));
    // A packet with a wrong MAC and out of the window counts as out of the window.
    let wrong = send::packet(
        b"another key of 16+ bytes",
        "reset",
        NOW + WINDOW_MS + 1,
        NONCE,
        ip(DEST),
        PORT,
    );
    assert_eq!(check(&g, wrong.as_bytes()), Err(Drop::Window));
}

#[test]
fn the_mac_must_match() {
    let t = NOW;
    // Wrong key.
    let p = send::packet(&[0x55; 32], "reset", t, NONCE, ip(DEST), PORT);
    assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::BadMac));
    // A key that differs in its last byte, and one that is a prefix.
    let mut k = KEY.to_vec();
    *k.last_mut().unwrap() ^= 1;
    let p = send::packet(&k, "reset", t, NONCE, ip(DEST), PORT);
    assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::BadMac));
    let p = send::packet(&KEY[..31], "reset", t, NONCE, ip(DEST), PORT);
    assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::BadMac));
    // Signed for another destination address, and for the same one mapped to IPv6.
    let others = [
        IpAddr::from([192, 0, 2, 8]),
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(Ipv4Addr::from([192, 0, 2, 7]).to_ipv6_mapped()),
        "2001:db8::7".parse().unwrap(),
    ];
    for other in others {
        let p = send::packet(KEY, "reset", t, NONCE, other, PORT);
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::BadMac), "{other}");
    }
    // An IPv6 destination: right and wrong.
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    let d6 = Addr::V6(v6.octets());
    let p = send::packet(KEY, "reset", t, NONCE, IpAddr::V6(v6), PORT);
    assert_eq!(
        gate().check(p.as_bytes(), d6, PORT, NOW, hmac(KEY), differ),
        Ok(None)
    );
    assert_eq!(
        gate().check(
            p.as_bytes(),
            Addr::V6([0; 16]),
            PORT,
            NOW,
            hmac(KEY),
            differ
        ),
        Err(Drop::BadMac)
    );
    // Another port.
    for port in [PORT - 1, PORT + 1, 1, 65535] {
        let p = send::packet(KEY, "reset", t, NONCE, ip(DEST), port);
        assert_eq!(check(&gate(), p.as_bytes()), Err(Drop::BadMac), "{port}");
    }
    // Another command, time or nonce under the same MAC.
    let good = valid("reset-kbd", t);
    let mac = good.trim_end().rsplit(' ').next().unwrap();
    for q in [
        format!("ERST1 reset-acpi {t} {NONCE} {mac}"),
        format!("ERST1 reset {t} {NONCE} {mac}"),
        format!("ERST1 reset-kbd {} {NONCE} {mac}", t + 1),
        format!("ERST1 reset-kbd {t} 0123456789abcdee {mac}"),
    ] {
        assert_eq!(check(&gate(), q.as_bytes()), Err(Drop::BadMac), "{q:?}");
    }
    // Each single flipped bit of the MAC.
    let parsed = parse(good.as_bytes()).unwrap();
    for bit in 0..256 {
        let mut m = parsed.mac;
        m[bit / 8] ^= 1 << (bit % 8);
        let q = format!("ERST1 reset-kbd {t} {NONCE} {}\n", send::to_hex(&m));
        assert_eq!(check(&gate(), q.as_bytes()), Err(Drop::BadMac), "bit {bit}");
    }
    assert_eq!(check(&gate(), good.as_bytes()), Ok(Some(Method::Kbd)));
}

#[test]
fn the_comparison_goes_through_differ() {
    let good = valid("reset", NOW);
    let mut args = None;
    let v = gate().check(good.as_bytes(), DEST, PORT, NOW, hmac(KEY), |a, b| {
        args = Some((*a, *b));
        true
    });
    assert_eq!(v, Err(Drop::BadMac));
    let (a, b) = args.unwrap();
    assert_eq!(a, b, "differ got the computed and the received MAC");
    // And what it says goes.
    let forged = send::packet(
        b"not the key, but long enough",
        "reset",
        NOW,
        NONCE,
        ip(DEST),
        PORT,
    );
    let v = gate().check(forged.as_bytes(), DEST, PORT, NOW, hmac(KEY), |_, _| false);
    assert_eq!(v, Ok(None));
}

#[test]
fn the_hmac_covers_the_documented_text() {
    let p = valid("reset-acpi", NOW);
    let mut text = Vec::new();
    let v = gate().check(
        p.as_bytes(),
        DEST,
        PORT,
        NOW,
        |t| {
            text = t.to_vec();
            send::hmac_sha256(KEY, t)
        },
        differ,
    );
    assert_eq!(v, Ok(Some(Method::Acpi)));
    assert_eq!(
        show(&text),
        format!("ERST1 reset-acpi {NOW} {NONCE} 192.0.2.7 5555")
    );
}

#[test]
fn replays_and_old_packets_are_refused() {
    let g = gate();
    let p = valid("reset", NOW);
    assert_eq!(check(&g, p.as_bytes()), Ok(None));
    // The same packet again, and one with the same time.
    assert_eq!(check(&g, p.as_bytes()), Err(Drop::Replay));
    assert_eq!(
        check(&g, valid("reset-kbd", NOW).as_bytes()),
        Err(Drop::Replay)
    );
    // Older than the last accepted, though in the window.
    assert_eq!(
        check(&g, valid("reset", NOW - 1).as_bytes()),
        Err(Drop::Replay)
    );
    assert_eq!(
        check(&g, valid("reset", NOW - WINDOW_MS).as_bytes()),
        Err(Drop::Replay)
    );
    // Newer is fine.
    assert_eq!(check(&g, valid("reset", NOW + 1).as_bytes()), Ok(None));
    assert_eq!(g.counts().dropped[Drop::Replay.index()], 4);
}

#[test]
fn packets_from_before_the_load_are_refused() {
    // Just after the load, packets from within the window before it.
    let now = LOADED + 1000;
    let g = gate();
    let at_load = valid("reset", LOADED);
    assert_eq!(check_at(&g, at_load.as_bytes(), now), Err(Drop::Replay));
    let before = valid("reset", LOADED - 1);
    assert_eq!(check_at(&g, before.as_bytes(), now), Err(Drop::Replay));
    let long_before = valid("reset", LOADED - WINDOW_MS + 1000);
    assert_eq!(check_at(&g, long_before.as_bytes(), now), Err(Drop::Replay));
    assert_eq!(g.counts().accepted, 0);
    let after = valid("reset", LOADED + 1);
    assert_eq!(check_at(&g, after.as_bytes(), now), Ok(None));
    assert_eq!(g.loaded_ms(), LOADED);
}

#[test]
fn refused_packets_do_not_move_the_replay_mark() {
    let g = gate();
    // A newer packet with a bad MAC, or out of the window, changes nothing.
    let forged = send::packet(&[7; 32], "reset", NOW + 10, NONCE, ip(DEST), PORT);
    assert_eq!(check(&g, forged.as_bytes()), Err(Drop::BadMac));
    let far = valid("reset", NOW + WINDOW_MS + 10);
    assert_eq!(check(&g, far.as_bytes()), Err(Drop::Window));
    assert_eq!(check(&g, valid("reset", NOW).as_bytes()), Ok(None));
}

#[test]
fn two_cpus_racing_with_one_packet_reset_once() {
    const THREADS: usize = 4;
    for round in 0..200u64 {
        let g = gate();
        let p = valid("reset-cf9", NOW + round);
        let barrier = std::sync::Barrier::new(THREADS);
        let verdicts: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        check(&g, p.as_bytes())
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let accepted = verdicts.iter().filter(|v| v.is_ok()).count();
        assert_eq!(accepted, 1, "round {round}: {verdicts:?}");
        assert!(verdicts
            .iter()
            .all(|v| *v == Ok(Some(Method::Cf9)) || *v == Err(Drop::Replay)));
        let c = g.counts();
        assert_eq!(c.accepted, 1);
        assert_eq!(c.dropped, [0, 0, 0, THREADS as u64 - 1]);
    }
}

#[test]
fn racing_packets_of_different_times_leave_the_newest_mark() {
    const THREADS: u64 = 4;
    for _ in 0..100 {
        let g = gate();
        let packets: Vec<String> = (0..THREADS).map(|i| valid("reset", NOW + i)).collect();
        let barrier = std::sync::Barrier::new(THREADS as usize);
        std::thread::scope(|s| {
            for p in &packets {
                let (g, barrier) = (&g, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let _ = check(g, p.as_bytes());
                });
            }
        });
        // Whatever was accepted, nothing up to the newest is accepted again.
        let accepted = g.counts().accepted;
        assert!((1..=THREADS).contains(&accepted));
        for p in &packets {
            assert_eq!(check(&g, p.as_bytes()), Err(Drop::Replay));
        }
    }
}

#[test]
fn each_verdict_counts_exactly_its_counter() {
    let g = gate();
    assert_eq!(g.counts(), Counts::default());
    let expect = |accepted: u64, dropped: [u64; 4]| Counts { accepted, dropped };
    assert_eq!(check(&g, b"nonsense"), Err(Drop::Malformed));
    assert_eq!(g.counts(), expect(0, [1, 0, 0, 0]));
    let far = valid("reset", NOW + WINDOW_MS + 1);
    assert_eq!(check(&g, far.as_bytes()), Err(Drop::Window));
    assert_eq!(g.counts(), expect(0, [1, 1, 0, 0]));
    let forged = send::packet(&[1; 32], "reset", NOW, NONCE, ip(DEST), PORT);
    assert_eq!(check(&g, forged.as_bytes()), Err(Drop::BadMac));
    assert_eq!(g.counts(), expect(0, [1, 1, 1, 0]));
    let good = valid("reset", NOW);
    assert_eq!(check(&g, good.as_bytes()), Ok(None));
    assert_eq!(g.counts(), expect(1, [1, 1, 1, 0]));
    assert_eq!(check(&g, good.as_bytes()), Err(Drop::Replay));
    assert_eq!(g.counts(), expect(1, [1, 1, 1, 1]));
    // Parsing alone counts nothing.
    let _ = parse(good.as_bytes());
    assert_eq!(g.counts(), expect(1, [1, 1, 1, 1]));
}

#[test]
fn drop_reasons_have_their_names_and_places() {
    let names: Vec<_> = Drop::ALL.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["malformed", "window", "bad_mac", "replayed"]);
    for (i, d) in Drop::ALL.iter().enumerate() {
        assert_eq!(d.index(), i);
    }
}

#[test]
fn keys() {
    let hex32 = "00112233445566778899aabbccddeeff";
    let k = parse_key(hex32.as_bytes()).unwrap();
    assert_eq!(k.as_bytes(), &send::parse_hex_key(hex32).unwrap()[..]);
    assert_eq!(k.as_bytes().len(), 16);
    // Either case, the same key.
    let upper = parse_key(hex32.to_uppercase().as_bytes()).unwrap();
    assert_eq!(upper.as_bytes(), k.as_bytes());
    // Lengths.
    assert_eq!(parse_key(b"").unwrap_err(), BadKey::Empty);
    for n in 1..=200 {
        let hex: String = "0123456789abcdefABCDEF".chars().cycle().take(n).collect();
        let r = parse_key(hex.as_bytes());
        if (32..=128).contains(&n) && n % 2 == 0 {
            let k = r.unwrap();
            assert_eq!(k.as_bytes(), &send::parse_hex_key(&hex).unwrap()[..]);
        } else {
            assert_eq!(r.unwrap_err(), BadKey::Length(n), "{n}");
        }
    }
    // Nothing else: white space, prefixes, signs.
    for bad in [
        format!("{hex32}\n"),
        format!(" {hex32}"),
        format!("0x{hex32}"),
        format!("{hex32}00 "),
        format!("{}g", &hex32[..31]),
        format!("{hex32}\0\0"),
        format!("-{}", &hex32[..31]),
    ] {
        assert_eq!(
            parse_key(bad.as_bytes()).unwrap_err(),
            BadKey::NotHex,
            "{bad:?}"
        );
    }
    // Every byte in every position of a pair, against std.
    for b in 0..=255u8 {
        for pos in [0, 1, 30, 31] {
            let mut key = hex32.as_bytes().to_vec();
            key[pos] = b;
            let r = parse_key(&key);
            if b.is_ascii_hexdigit() {
                let want = u8::from_str_radix(
                    std::str::from_utf8(&key[pos / 2 * 2..pos / 2 * 2 + 2]).unwrap(),
                    16,
                )
                .unwrap();
                assert_eq!(r.unwrap().as_bytes()[pos / 2], want, "{b:#x}");
            } else {
                assert_eq!(r.unwrap_err(), BadKey::NotHex, "{b:#x}");
            }
        }
    }
    for e in [BadKey::Empty, BadKey::Length(3), BadKey::NotHex] {
        assert!(!e.as_str().is_empty());
    }
}

#[test]
fn a_wiped_key_is_empty_and_debug_hides_it() {
    let mut k = parse_key(b"ffffffffffffffffffffffffffffffff").unwrap();
    assert_eq!(format!("{k:?}"), "Key(16 bytes)");
    k.wipe();
    assert_eq!(k.as_bytes(), b"");
    assert_eq!(format!("{k:?}"), "Key(0 bytes)");
}

#[test]
fn windows_and_ports() {
    assert_eq!(parse_window(1), Ok(1));
    assert_eq!(parse_window(30), Ok(30));
    assert_eq!(parse_window(86_400), Ok(86_400));
    for bad in [0, -1, 86_401, i32::MIN, i32::MAX] {
        assert_eq!(parse_window(bad), Err(BadWindow), "{bad}");
    }
    assert_eq!(parse_port(0), Ok(None));
    assert_eq!(parse_port(1), Ok(Some(1)));
    assert_eq!(parse_port(5555), Ok(Some(5555)));
    assert_eq!(parse_port(65_535), Ok(Some(65_535)));
    for bad in [-1, 65_536, i32::MIN, i32::MAX] {
        assert_eq!(parse_port(bad), Err(BadPort), "{bad}");
    }
}

#[test]
fn net_status_is_formatted_as_documented() {
    let mut s = String::new();
    format_net_status(None, &mut s).unwrap();
    assert_eq!(s, "net_port: off\n");
    let status = NetStatus {
        port: 5555,
        window_s: 30,
        loaded_ms: 1_764_590_000_123,
        counts: Counts {
            accepted: 0,
            dropped: [3, 1, 2, 1],
        },
    };
    let mut s = String::new();
    format_net_status(Some(&status), &mut s).unwrap();
    assert_eq!(
        s,
        "net_port: 5555\n\
         net_window: 30\n\
         net_armed_since_ms: 1764590000123\n\
         net_accepted: 0\n\
         net_dropped.malformed: 3\n\
         net_dropped.window: 1\n\
         net_dropped.bad_mac: 2\n\
         net_dropped.replayed: 1\n"
    );
    // The largest values fit a page, through the module's writer.
    let status = NetStatus {
        port: u16::MAX,
        window_s: u32::MAX,
        loaded_ms: u64::MAX,
        counts: Counts {
            accepted: u64::MAX,
            dropped: [u64::MAX; 4],
        },
    };
    let mut buf = [0u8; 512];
    let mut w = crate::BufWriter::new(&mut buf);
    format_net_status(Some(&status), &mut w).unwrap();
    assert!(show(w.as_bytes()).starts_with("net_port: 65535\n"));
    // A gate's own figures.
    let g = gate();
    let _ = check(&g, b"x");
    let st = NetStatus {
        port: PORT,
        window_s: g.window_s(),
        loaded_ms: g.loaded_ms(),
        counts: g.counts(),
    };
    let mut s = String::new();
    format_net_status(Some(&st), &mut s).unwrap();
    assert!(s.contains("net_dropped.malformed: 1\n"), "{s}");
}

#[test]
fn addresses_print_as_std_does() {
    let v4 = [
        [0, 0, 0, 0],
        [255, 255, 255, 255],
        [192, 0, 2, 7],
        [10, 0, 2, 15],
    ];
    for a in v4 {
        assert_eq!(Addr::V4(a).to_string(), Ipv4Addr::from(a).to_string());
    }
    let v6 = [
        "::",
        "::1",
        "1::",
        "2001:db8::1",
        "2001:db8:0:0:1:0:0:1",
        "2001:db8:0:1:1:1:1:1",
        "fe80::1:2:3:4",
        "::ffff:192.0.2.7",
        "::ffff:0.0.0.0",
        "::192.0.2.7",
        "64:ff9b::192.0.2.7",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "0:0:1::",
        "1:0:0:1:0:0:0:1",
        "::fffe:1:2",
        "0:0:0:0:ffff:0:1:2",
        "1:0:0:0:0:ffff:1:2",
    ];
    for text in v6 {
        let a: Ipv6Addr = text.parse().unwrap();
        assert_eq!(Addr::V6(a.octets()).to_string(), a.to_string(), "{text}");
    }
    assert_eq!(
        Addr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped().octets()).to_string(),
        "::ffff:192.0.2.7"
    );
}
