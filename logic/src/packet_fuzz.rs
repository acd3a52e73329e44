// SPDX-License-Identifier: GPL-2.0

//! Property tests of the network trigger (`packet.rs`) against an oracle
//! written here with `std` (string splitting, `str::parse`) and the sender
//! crate (`emergency-reset-send`): valid packets are accepted, no mutation
//! of one is, every verdict is the oracle's, and nothing panics.
//!
//! The number of inputs per property is `RER_FUZZ_ITERATIONS` (default
//! 20 000, as `fuzz.rs`).

use crate::fuzz::{
    iterations,
    Rng, //
};
use crate::packet::*;
use crate::packet_tests::{
    differ,
    hmac,
    ip, //
};
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

/// The commands and the method each asks for, as the documentation lists them.
const COMMANDS: [(&str, Option<Method>); 5] = [
    ("reset", None),
    ("reset-kbd", Some(Method::Kbd)),
    ("reset-acpi", Some(Method::Acpi)),
    ("reset-cf9", Some(Method::Cf9)),
    ("reset-triple", Some(Method::Triple)),
];

/// What the oracle knows of a gate.
struct Model {
    loaded_ms: u64,
    window_s: u32,
    last_accepted: Option<u64>,
}

/// The documented rules, spelled out with `std`, independently of `packet.rs`.
fn oracle(
    m: &mut Model,
    payload: &[u8],
    key: &[u8],
    dest: IpAddr,
    port: u16,
    now_ms: u64,
) -> Result<Option<Method>, Drop> {
    let Ok(text) = std::str::from_utf8(payload) else {
        return Err(Drop::Malformed);
    };
    let line = text.strip_suffix('\n').unwrap_or(text);
    let fields: Vec<&str> = line.split(' ').collect();
    let [magic, command, time, nonce, mac] = fields[..] else {
        return Err(Drop::Malformed);
    };
    let lower_hex =
        |s: &str, n: usize| s.len() == n && s.chars().all(|c| "0123456789abcdef".contains(c));
    let method = match COMMANDS.iter().find(|(c, _)| *c == command) {
        Some((_, method)) => *method,
        None => return Err(Drop::Malformed),
    };
    let time_ok = (1..=20).contains(&time.len())
        && time.chars().all(|c| c.is_ascii_digit())
        && (time == "0" || !time.starts_with('0'));
    let time_ms = match time.parse::<u64>() {
        Ok(t) if time_ok => t,
        _ => return Err(Drop::Malformed),
    };
    if magic != "ERST1" || !lower_hex(nonce, 16) || !lower_hex(mac, 64) {
        return Err(Drop::Malformed);
    }
    if (i128::from(now_ms) - i128::from(time_ms)).abs() > i128::from(m.window_s) * 1000 {
        return Err(Drop::Window);
    }
    let expected = send::packet(key, command, time_ms, nonce, dest, port);
    if expected.trim_end().rsplit(' ').next() != Some(mac) {
        return Err(Drop::BadMac);
    }
    if time_ms <= m.loaded_ms || m.last_accepted.is_some_and(|last| time_ms <= last) {
        return Err(Drop::Replay);
    }
    m.last_accepted = Some(time_ms);
    Ok(method)
}

fn random_addr(rng: &mut Rng) -> Addr {
    match rng.below(4) {
        0 => {
            let mut a = [0; 4];
            rng.fill(&mut a);
            Addr::V4(a)
        }
        1 => Addr::V6(Ipv4Addr::from(rng.next() as u32).to_ipv6_mapped().octets()),
        _ => {
            let mask = rng.next() as u8;
            Addr::V6(random_v6(rng, mask))
        }
    }
}

/// An IPv6 address whose groups in `zero_mask` are zero, the others random
/// (often small, sometimes zero too).
fn random_v6(rng: &mut Rng, zero_mask: u8) -> [u8; 16] {
    let mut a = [0u8; 16];
    for g in 0..8 {
        if zero_mask & (1 << g) != 0 {
            continue;
        }
        let v: u16 = match rng.below(4) {
            0 => rng.next() as u16 & 0xf,
            1 => rng.next() as u16 & 0xff,
            2 => 0xffff,
            _ => rng.next() as u16,
        };
        a[2 * g..2 * g + 2].copy_from_slice(&v.to_be_bytes());
    }
    a
}

fn random_key(rng: &mut Rng) -> Vec<u8> {
    let mut key = vec![0; 1 + rng.below(80)];
    rng.fill(&mut key);
    key
}

fn random_nonce(rng: &mut Rng) -> String {
    send::to_hex(&rng.next().to_be_bytes())
}

/// A time: often at the edges of the window or of the load.
fn random_time(rng: &mut Rng, now: u64, loaded: u64, window_ms: u64) -> u64 {
    match rng.below(8) {
        0 => now.saturating_sub(window_ms),
        1 => now.saturating_add(window_ms),
        2 => now.saturating_sub(window_ms + 1),
        3 => now.saturating_add(window_ms + 1),
        4 => loaded.saturating_add(rng.below(3) as u64).saturating_sub(1),
        5 => rng.next() >> rng.below(64),
        _ => now
            .saturating_sub(window_ms)
            .saturating_add(rng.next() % (2 * window_ms + 1)),
    }
}

/// Bytes that make interesting mutations.
const ALPHABET: &[u8] = b"ERST1 reset-kbdacpicf9triple0123456789abcdefABCDEF\n\r\t\0\xff";

/// One random change: flip a bit, replace, insert or delete a byte,
/// truncate, duplicate or drop a field, change case.
fn mutate(rng: &mut Rng, v: &mut Vec<u8>) {
    let pick = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            ALPHABET[rng.below(ALPHABET.len())]
        } else {
            rng.next() as u8
        }
    };
    match rng.below(9) {
        0 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] ^= 1 << rng.below(8);
        }
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = pick(rng);
        }
        2 => {
            let i = rng.below(v.len() + 1);
            let b = pick(rng);
            v.insert(i, b);
        }
        3 if !v.is_empty() => {
            let i = rng.below(v.len());
            v.remove(i);
        }
        4 => {
            let n = rng.below(v.len() + 1);
            v.truncate(n);
        }
        5 | 6 => {
            // Duplicate or drop a field.
            let fields: Vec<Vec<u8>> = v.split(|&b| b == b' ').map(|f| f.to_vec()).collect();
            let i = rng.below(fields.len());
            let mut out = fields.clone();
            if rng.below(2) == 0 {
                out.insert(rng.below(fields.len() + 1), fields[i].clone());
            } else {
                out.remove(i);
            }
            *v = out.join(&b' ');
        }
        7 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = if v[i].is_ascii_lowercase() {
                v[i].to_ascii_uppercase()
            } else {
                v[i].to_ascii_lowercase()
            };
        }
        _ => {
            if v.last() == Some(&b'\n') {
                v.pop();
            } else {
                v.push(b'\n');
            }
        }
    }
}

/// One trial: a random gate, a valid packet from the sender for it, and
/// (with `mutations`) a changed copy; the gate's verdicts equal the
/// oracle's.
fn trial(rng: &mut Rng, mutations: bool) {
    let key = random_key(rng);
    let dest = random_addr(rng);
    let port = 1 + rng.below(65535) as u16;
    let window_s = 1 + rng.below(86_400) as u32;
    let window_ms = u64::from(window_s) * 1000;
    let now = match rng.below(8) {
        0 => u64::MAX - rng.below(1000) as u64,
        1 => rng.below(1000) as u64,
        _ => 1_700_000_000_000 + (rng.next() % 100_000_000_000),
    };
    let loaded = now.saturating_sub(rng.next() % (2 * window_ms));
    let gate = Gate::new(loaded, window_s);
    let mut model = Model {
        loaded_ms: loaded,
        window_s,
        last_accepted: None,
    };
    let (command, method) = COMMANDS[rng.below(COMMANDS.len())];
    let time = random_time(rng, now, loaded, window_ms);
    let nonce = random_nonce(rng);
    let mut payload = send::packet(&key, command, time, &nonce, ip(dest), port).into_bytes();
    if rng.below(2) == 0 {
        payload.pop();
    }
    let run = |model: &mut Model, p: &[u8]| {
        let want = oracle(model, p, &key, ip(dest), port, now);
        let got = gate.check(p, dest, port, now, hmac(&key), differ);
        assert_eq!(
            got,
            want,
            "{:?} for {dest} port {port} at {now} (loaded {loaded}, window {window_s})",
            String::from_utf8_lossy(p)
        );
        got
    };
    if !mutations {
        let in_window = now.abs_diff(time) <= window_ms;
        let got = run(&mut model, &payload);
        if in_window && time > loaded {
            assert_eq!(got, Ok(method));
        }
        assert_eq!(run(&mut model, &payload).ok(), None, "accepted twice");
        return;
    }
    // Sometimes the original first, so that its copies are replays.
    if rng.below(4) == 0 {
        run(&mut model, &payload).ok();
    }
    let mut changed = payload.clone();
    for _ in 0..1 + rng.below(3) {
        mutate(rng, &mut changed);
    }
    let got = run(&mut model, &changed);
    if got.is_ok() {
        // Only the original, or the original with its newline added or removed.
        let bare = |p: &[u8]| p.strip_suffix(b"\n").unwrap_or(p).to_vec();
        assert_eq!(
            bare(&changed),
            bare(&payload),
            "a changed packet was accepted"
        );
    }
}

#[test]
fn valid_packets_from_the_sender_are_accepted() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..iterations() / 4 {
        trial(&mut rng, false);
    }
}

#[test]
fn mutated_packets_get_the_oracles_verdict() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..iterations() / 2 {
        trial(&mut rng, true);
    }
}

#[test]
fn garbage_gets_the_oracles_verdict() {
    let mut rng = Rng(0x5eed_0003);
    let key = [0x42; 32];
    let dest = Addr::V4([127, 0, 0, 1]);
    let words: [&[u8]; 12] = [
        b"ERST1",
        b"reset",
        b"reset-kbd",
        b"reset-",
        b"0",
        b"1764590000123",
        b"18446744073709551615",
        b"0123456789abcdef",
        b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        b" ",
        b"\n",
        b"",
    ];
    for _ in 0..iterations() {
        let mut v = Vec::new();
        if rng.below(2) == 0 {
            v.resize(rng.below(2 * MAX_PAYLOAD), 0);
            rng.fill(&mut v);
        } else {
            for i in 0..rng.below(8) {
                if i > 0 && rng.below(4) != 0 {
                    v.push(b' ');
                }
                v.extend_from_slice(words[rng.below(words.len())]);
            }
        }
        let gate = Gate::new(0, 1);
        let mut model = Model {
            loaded_ms: 0,
            window_s: 1,
            last_accepted: None,
        };
        let now = 1_764_590_000_123;
        let want = oracle(&mut model, &v, &key, ip(dest), 5555, now);
        let got = gate.check(&v, dest, 5555, now, hmac(&key), differ);
        assert_eq!(got, want, "{:?}", String::from_utf8_lossy(&v));
        assert_ne!(got.ok(), Some(None), "garbage accepted");
        let _ = parse(&v);
    }
}

#[test]
fn addresses_print_as_std_does_for_random_ones() {
    let mut rng = Rng(0x5eed_0004);
    // Every pattern of zero groups.
    for mask in 0..=255u8 {
        for _ in 0..16 {
            let a = random_v6(&mut rng, mask);
            let want = Ipv6Addr::from(a).to_string();
            assert_eq!(Addr::V6(a).to_string(), want, "mask {mask:#010b}");
        }
    }
    for _ in 0..iterations() {
        let a = random_addr(&mut rng);
        let want = ip(a).to_string();
        assert_eq!(a.to_string(), want);
        // Through a fixed buffer as the module writes it.
        let mut buf = [0u8; ADDR_MAX];
        let mut w = crate::BufWriter::new(&mut buf);
        core::fmt::Write::write_fmt(&mut w, format_args!("{a}")).unwrap();
        assert_eq!(w.as_bytes(), want.as_bytes());
    }
    for _ in 0..1000 {
        let v4 = Ipv4Addr::from(rng.next() as u32);
        let a = Addr::V6(v4.to_ipv6_mapped().octets());
        assert_eq!(a.to_string(), format!("::ffff:{v4}"));
    }
}

#[test]
fn signed_text_is_the_senders() {
    let mut rng = Rng(0x5eed_0005);
    for _ in 0..iterations() {
        let (command, method) = COMMANDS[rng.below(COMMANDS.len())];
        let time = rng.next() >> rng.below(64);
        let nonce = random_nonce(&mut rng);
        let dest = random_addr(&mut rng);
        let port = rng.next() as u16;
        let payload = send::packet(b"k", command, time, &nonce, ip(dest), port);
        let p = parse(payload.as_bytes()).unwrap();
        assert_eq!((p.method, p.time_ms), (method, time));
        let mut buf = [0u8; SIGNED_MAX];
        let text = signed_text(&p, dest, port, &mut buf);
        let want = send::signed_text(command, time, &nonce, ip(dest), port);
        assert_eq!(String::from_utf8_lossy(text), want);
    }
}
