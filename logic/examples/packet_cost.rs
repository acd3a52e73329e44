// SPDX-License-Identifier: GPL-2.0

//! What deciding one network-trigger packet costs on this host.
//!
//! Use: `cargo run --release --example packet_cost`. Prints the median, 10th
//! and 90th percentile nanoseconds per packet of `Gate::check` on valid
//! packets (HMAC-SHA256 by the sender crate's RustCrypto code, constant-time
//! comparison), of the HMAC alone, and of refusing malformed packets (parse
//! only, no HMAC).

use emergency_reset_logic::packet::{
    parse,
    signed_text,
    Addr,
    Drop,
    Gate,
    SIGNED_MAX, //
};
use emergency_reset_send as send;
use std::hint::black_box;
use std::net::{
    IpAddr,
    Ipv4Addr, //
};
use std::time::Instant;

const BATCH: usize = 100;
const BATCHES: usize = 300;
const KEY: [u8; 32] = [0x5a; 32];
const PORT: u16 = 5555;
const NOW: u64 = 1_764_590_000_000_000;
const DEST: [u8; 4] = [192, 0, 2, 7];

/// A constant-time comparison, as the kernel's `crypto_memneq`.
fn differ(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut d = 0u8;
    for (x, y) in a.iter().zip(b) {
        d |= x ^ y;
    }
    black_box(d) != 0
}

/// Median, p10 and p90 of `per_packet` in ns.
fn report(what: &str, mut per_packet: Vec<f64>) {
    per_packet.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| per_packet[((per_packet.len() - 1) as f64 * q) as usize];
    println!(
        "{what:<44} median {:>7.0} ns  p10 {:>7.0} ns  p90 {:>7.0} ns  ({BATCHES} batches of {BATCH})",
        at(0.5),
        at(0.1),
        at(0.9)
    );
}

/// Times `BATCHES` batches of `BATCH` calls of `f(i)`, i counting up.
fn measure(mut f: impl FnMut(usize)) -> Vec<f64> {
    let mut i = 0;
    (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                f(i);
                i += 1;
            }
            start.elapsed().as_nanos() as f64 / BATCH as f64
        })
        .collect()
}

fn main() {
    let dest = Addr::V4(DEST);
    let ip = IpAddr::V4(Ipv4Addr::from(DEST));
    let n = BATCH * BATCHES;
    // Valid packets of increasing times, so that none is a replay.
    let packets: Vec<String> = (0..n as u64)
        .map(|i| {
            send::packet(
                &KEY,
                "reset",
                NOW - 1_000_000 + i,
                "0123456789abcdef",
                ip,
                PORT,
            )
        })
        .collect();
    let gate = Gate::new(NOW - 2_000_000, 86_400);
    let valid = measure(|i| {
        let v = gate.check(
            packets[i].as_bytes(),
            dest,
            PORT,
            NOW,
            |t| send::hmac_sha256(&KEY, t),
            differ,
        );
        assert_eq!(v, Ok(None));
    });
    report("Gate::check, valid packet (accepted)", valid);

    let forged: Vec<String> = packets
        .iter()
        .map(|p| p.replacen("0123456789abcdef", "0123456789abcdee", 1))
        .collect();
    let bad_mac = measure(|i| {
        let v = gate.check(
            forged[i].as_bytes(),
            dest,
            PORT,
            NOW,
            |t| send::hmac_sha256(&KEY, t),
            differ,
        );
        assert_eq!(v, Err(Drop::BadMac));
    });
    report("Gate::check, bad MAC (dropped)", bad_mac);

    let text = b"ERST1 reset 1764590000000000 0123456789abcdef 192.0.2.7 5555";
    let hmac = measure(|_| {
        black_box(send::hmac_sha256(&KEY, black_box(text)));
    });
    report("HMAC-SHA256 of a signed text alone", hmac);

    let parse_cost = measure(|i| {
        black_box(parse(black_box(packets[i].as_bytes())).unwrap());
    });
    report("parse alone, valid packet", parse_cost);
    let parsed = parse(packets[0].as_bytes()).unwrap();
    let mut buf = [0u8; SIGNED_MAX];
    let text_cost = measure(|_| {
        black_box(signed_text(black_box(&parsed), dest, PORT, &mut buf));
    });
    report("signed_text alone", text_cost);

    // Malformed: wrong only in the last byte (the whole line is parsed) ...
    let mut late = packets[0].clone().into_bytes();
    let last = late.len() - 2;
    late[last] = b'G';
    let late_cost = measure(|_| {
        let v = gate.check(
            black_box(&late),
            dest,
            PORT,
            NOW,
            |_| unreachable!(),
            differ,
        );
        assert_eq!(v, Err(Drop::Malformed));
    });
    report("Gate::check, malformed at the last byte", late_cost);
    // ... and an over-long datagram, refused by its length.
    let long = vec![b'A'; 1400];
    let long_cost = measure(|_| {
        let v = gate.check(
            black_box(&long),
            dest,
            PORT,
            NOW,
            |_| unreachable!(),
            differ,
        );
        assert_eq!(v, Err(Drop::Malformed));
    });
    report("Gate::check, 1400-byte datagram", long_cost);
    let c = gate.counts();
    println!("counts: accepted {} dropped {:?}", c.accepted, c.dropped);
}
