// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the last-words record (`record.rs`), against the byte layout
//! in its doc comment, with oracles written from that table rather than from
//! the code: a FNV-1a, a reader of the layout, and values computed with GNU
//! `date`.

use crate::record::*;
use crate::*;
use core::fmt::Write as _;
use std::{
    format,
    string::String,
    vec,
    vec::Vec, //
};

// ---------------------------------------------------------------------------
// Oracles and helpers, shared with `record_fuzz.rs`.
// ---------------------------------------------------------------------------

/// `s`, NUL-padded to `N` bytes.
pub(crate) fn padded<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a[..s.len()].copy_from_slice(s);
    a
}

/// FNV-1a 64 of the concatenation of `pieces`, written from its definition.
pub(crate) fn fnv1a64(pieces: &[&[u8]]) -> u64 {
    let mut h: u64 = 14_695_981_039_346_656_037;
    for piece in pieces {
        for &byte in piece.iter() {
            h ^= byte as u64;
            h = h.wrapping_mul(1_099_511_628_211);
        }
    }
    h
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from(b[at])
        | u32::from(b[at + 1]) << 8
        | u32::from(b[at + 2]) << 16
        | u32::from(b[at + 3]) << 24
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    for i in 0..4 {
        b[at + i] = (v >> (8 * i)) as u8;
    }
}

pub(crate) fn put64(b: &mut [u8], at: usize, v: u64) {
    for i in 0..8 {
        b[at + i] = (v >> (8 * i)) as u8;
    }
}

/// Recomputes and stores the checksum of a region's record by the doc
/// comment: FNV-1a of bytes 24..160, then of the log (as much of it as the
/// region holds, so that a too-long `log_len` still gets a checksum).
pub(crate) fn reseal(region: &mut [u8]) {
    let log_len = le32(region, 28) as usize;
    let end = region.len().min(160usize.saturating_add(log_len));
    let sum = fnv1a64(&[&region[24..160], &region[160..end]]);
    put64(region, 16, sum);
}

/// What `read()` should say of `region`, worked out from the doc comment's
/// table alone: the header's fields at their documented offsets and the log.
pub(crate) fn oracle_read(region: &[u8]) -> Result<(Header, Vec<u8>), RecordError> {
    let r = &region[..region.len().min(1 << 20)];
    if r.len() < 160 {
        return Err(RecordError::Malformed);
    }
    if &r[0..8] != b"RERLAST\0" {
        return Err(RecordError::NoMagic);
    }
    let version = le32(r, 8);
    if version != 1 {
        return Err(RecordError::UnknownVersion(version));
    }
    if le32(r, 12) != 160 {
        return Err(RecordError::Malformed);
    }
    let flags = le32(r, 24);
    if flags > 1 {
        return Err(RecordError::Malformed);
    }
    let log_len = le32(r, 28);
    if log_len as u64 + 160 > r.len() as u64 {
        return Err(RecordError::Malformed);
    }
    // Order: codes 1..=4, distinct, at least one, then only zeros.
    let codes = &r[56..64];
    let n = codes.iter().take_while(|&&c| c != 0).count();
    if n == 0 || codes[n..].iter().any(|&c| c != 0) {
        return Err(RecordError::Malformed);
    }
    let mut seen = [false; 5];
    let mut order = Vec::new();
    for &c in &codes[..n] {
        if !(1..=4).contains(&c) || seen[c as usize] {
            return Err(RecordError::Malformed);
        }
        seen[c as usize] = true;
        order.push(Method::ALL[c as usize - 1]);
    }
    let pid = le32(r, 64) as i32;
    if pid == 0 || pid < -1 {
        return Err(RecordError::Malformed);
    }
    if r[88] == 0 {
        return Err(RecordError::Malformed);
    }
    if r[152..160].iter().any(|&b| b != 0) {
        return Err(RecordError::Malformed);
    }
    let log = &r[160..160 + log_len as usize];
    if fnv1a64(&[&r[24..160], log]) != le64(r, 16) {
        return Err(RecordError::BadChecksum);
    }
    let caller = if pid == -1 {
        None
    } else {
        Some(Caller {
            pid,
            uid: le32(r, 68),
            comm: r[72..88].try_into().unwrap(),
        })
    };
    let header = Header {
        failed: flags == 1,
        log_len,
        boot_id: r[32..48].try_into().unwrap(),
        time_ns: le64(r, 48),
        order: MethodList::from_slice(&order),
        caller,
        trigger: r[88..152].try_into().unwrap(),
    };
    Ok((header, log.to_vec()))
}

/// `read()`, with the log copied out.
pub(crate) fn read_owned(region: &[u8]) -> Result<(Header, Vec<u8>), RecordError> {
    read(region).map(|(h, log)| (h, log.to_vec()))
}

/// A region of `size` bytes of `fill` holding `h` and `log`, written the way
/// the module does: `encode`, the log after it, `seal`.
pub(crate) fn sealed_region(h: &Header, log: &[u8], size: usize, fill: u8) -> Vec<u8> {
    assert_eq!(h.log_len as usize, log.len());
    let mut b = encode(h);
    seal(&mut b, log);
    let mut region = vec![fill; size];
    region[..HEADER_LEN].copy_from_slice(&b);
    region[HEADER_LEN..HEADER_LEN + log.len()].copy_from_slice(log);
    region
}

/// `n` bytes of log-like text: numbered lines.
pub(crate) fn log_text(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 32);
    let mut line = 0u32;
    while v.len() < n {
        v.extend_from_slice(format!("[{line:5}] line {line} of the kernel log\n").as_bytes());
        line += 1;
    }
    v.truncate(n);
    v
}

fn caller(pid: i32, uid: u32, comm: &[u8]) -> Caller {
    Caller {
        pid,
        uid,
        comm: padded(comm),
    }
}

fn header(trigger: &[u8], order: &[Method], caller: Option<Caller>, failed: bool) -> Header {
    Header {
        failed,
        log_len: 0,
        boot_id: [
            0x0f, 0x5c, 0x3a, 0x91, 0x00, 0x7e, 0xab, 0xcd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
            0xde, 0xf0,
        ],
        time_ns: 1_795_600_530_123_456_789,
        order: MethodList::from_slice(order),
        caller,
        trigger: padded(trigger),
    }
}

/// A sealed 4096-byte region with a 100-byte log, the other bytes 0xa5.
fn small_record() -> Vec<u8> {
    let mut h = header(
        b"/dev/emergency_reset",
        &[Method::Cf9, Method::Kbd, Method::Triple],
        Some(caller(4242, 1000, b"sh")),
        false,
    );
    h.log_len = 100;
    sealed_region(&h, &log_text(100), 4096, 0xa5)
}

/// Every order of 1 to 4 distinct methods (64 of them), built by hand.
fn all_orders() -> Vec<Vec<Method>> {
    let mut out: Vec<Vec<Method>> = vec![Vec::new()];
    let mut all = Vec::new();
    for _ in 0..4 {
        let mut next = Vec::new();
        for prefix in &out {
            for m in Method::ALL {
                if !prefix.contains(&m) {
                    let mut p = prefix.clone();
                    p.push(m);
                    next.push(p);
                }
            }
        }
        all.extend(next.iter().cloned());
        out = next;
    }
    all
}

const TRIGGERS: [&[u8]; 4] = [b"/dev/emergency_reset", b"sysrq-x", b"nmi", b"oops"];

// ---------------------------------------------------------------------------
// 1. Round trips.
// ---------------------------------------------------------------------------

#[test]
fn a_sealed_record_reads_back_as_written() {
    let orders: [&[Method]; 5] = [
        &Method::ALL,
        &[Method::Triple],
        &[Method::Acpi, Method::Kbd],
        &[Method::Triple, Method::Cf9, Method::Acpi],
        &[Method::Cf9, Method::Triple, Method::Kbd, Method::Acpi],
    ];
    let callers = [
        None,
        Some(caller(93, 0, b"sh")),
        Some(caller(i32::MAX, u32::MAX, b"0123456789abcdef")),
    ];
    let mut i = 0;
    for size in [4096, 65536] {
        for log_len in [0, 1, size - HEADER_LEN] {
            let log = log_text(log_len);
            for trigger in TRIGGERS {
                for c in callers {
                    for failed in [false, true] {
                        let mut h = header(trigger, orders[i % orders.len()], c, failed);
                        h.log_len = log_len as u32;
                        h.time_ns = (i as u64) * 1_000_000_007;
                        h.boot_id[15] = i as u8;
                        i += 1;
                        let region = sealed_region(&h, &log, size, 0x5a);
                        let (got, got_log) = read(&region).unwrap();
                        assert_eq!(got, h, "size {size} log {log_len}");
                        assert_eq!(got_log, &log[..]);
                        // The log is the region's own bytes right after the header.
                        assert_eq!(got_log.as_ptr(), region[HEADER_LEN..].as_ptr());
                        // And the oracle agrees.
                        assert_eq!(oracle_read(&region), Ok((h, log.clone())));
                    }
                }
            }
        }
    }
}

#[test]
fn every_order_of_distinct_methods_reads_back() {
    let orders = all_orders();
    assert_eq!(orders.len(), 4 + 12 + 24 + 24);
    for order in &orders {
        let mut h = header(b"sysrq-x", order, None, true);
        h.log_len = 37;
        let log = log_text(37);
        let region = sealed_region(&h, &log, 4096, 0);
        let (got, _) = read(&region).unwrap();
        assert_eq!(got.order.as_slice(), &order[..]);
        assert_eq!(got, h);
    }
}

#[test]
fn encode_then_decode_is_the_identity_for_every_trigger_and_caller() {
    for (i, trigger) in TRIGGERS.iter().enumerate() {
        for c in [None, Some(caller(1, 2, b"x"))] {
            let mut h = header(trigger, &all_orders()[i * 13], c, i % 2 == 0);
            h.log_len = 3936;
            assert_eq!(decode(&encode(&h), 4096), Ok(h));
            // decode checks no checksum: sealing does not change what it says.
            let mut b = encode(&h);
            seal(&mut b, &[1, 2, 3]);
            assert_eq!(decode(&b, 4096), Ok(h));
        }
    }
}

#[test]
fn a_trigger_of_all_64_bytes_and_a_comm_of_all_16_read_back() {
    let mut h = header(
        &[b'T'; TRIGGER_LEN],
        &[Method::Kbd],
        Some(caller(7, 7, &[b'c'; COMM_LEN])),
        false,
    );
    h.log_len = 1;
    let region = sealed_region(&h, b"\n", 4096, 0xff);
    assert_eq!(read(&region).unwrap().0, h);
}

#[test]
fn bytes_after_the_log_are_not_part_of_the_record() {
    let mut region = small_record();
    let before = read_owned(&region).unwrap();
    for b in &mut region[HEADER_LEN + 100..] {
        *b ^= 0xff;
    }
    assert_eq!(read_owned(&region), Ok(before));
}

#[test]
fn the_log_can_be_checked_in_pieces() {
    let region = small_record();
    let b: &[u8; HEADER_LEN] = region[..HEADER_LEN].try_into().unwrap();
    let log = &region[HEADER_LEN..HEADER_LEN + 100];
    for piece in [1, 7, 64, 100] {
        let mut sum = header_checksum(b);
        for chunk in log.chunks(piece) {
            sum.update(chunk);
        }
        assert_eq!(check(b, sum), Ok(()));
    }
    // Missing the last byte, or checking the header alone, is a bad checksum.
    let mut sum = header_checksum(b);
    sum.update(&log[..99]);
    assert_eq!(check(b, sum), Err(RecordError::BadChecksum));
    assert_eq!(check(b, header_checksum(b)), Err(RecordError::BadChecksum));
    assert_eq!(stored_checksum(b), fnv1a64(&[&region[24..160], log]));
}

// ---------------------------------------------------------------------------
// 2. The byte layout, by hand.
// ---------------------------------------------------------------------------

#[test]
fn encode_writes_the_documented_byte_layout() {
    let log = log_text(261);
    let h = Header {
        failed: true,
        log_len: 261,
        boot_id: [
            0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d,
            0x1e, 0x1f,
        ],
        time_ns: 0x0123_4567_89ab_cdef,
        order: MethodList::from_slice(&[Method::Cf9, Method::Kbd, Method::Triple]),
        caller: Some(Caller {
            pid: 0x0001_2345,
            uid: 1000,
            comm: padded(b"bash"),
        }),
        trigger: padded(b"sysrq-x"),
    };

    let mut want = [0u8; 160];
    // 0: magic "RERLAST\0"
    want[0..8].copy_from_slice(&[0x52, 0x45, 0x52, 0x4c, 0x41, 0x53, 0x54, 0x00]);
    // 8: version 1
    want[8..12].copy_from_slice(&[1, 0, 0, 0]);
    // 12: header length 160
    want[12..16].copy_from_slice(&[0xa0, 0, 0, 0]);
    // 16: checksum, zero until sealed
    // 24: flags, bit 0: failed
    want[24..28].copy_from_slice(&[1, 0, 0, 0]);
    // 28: log length 261 = 0x105
    want[28..32].copy_from_slice(&[0x05, 0x01, 0, 0]);
    // 32: boot id
    for (i, b) in want[32..48].iter_mut().enumerate() {
        *b = 0x10 + i as u8;
    }
    // 48: time, little-endian
    want[48..56].copy_from_slice(&[0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]);
    // 56: order cf9, kbd, triple: index + 1, then zeros
    want[56..64].copy_from_slice(&[3, 1, 4, 0, 0, 0, 0, 0]);
    // 64: pid 0x12345
    want[64..68].copy_from_slice(&[0x45, 0x23, 0x01, 0x00]);
    // 68: uid 1000 = 0x3e8
    want[68..72].copy_from_slice(&[0xe8, 0x03, 0, 0]);
    // 72: comm, NUL-padded
    want[72..76].copy_from_slice(b"bash");
    // 88: trigger, NUL-padded
    want[88..95].copy_from_slice(b"sysrq-x");
    // 152..160: zero

    assert_eq!(encode(&h), want);
    assert_eq!(decode(&want, 4096), Ok(h));
    assert_eq!(stored_checksum(&want), 0);

    // Sealing fills bytes 16..24, and only them, with FNV-1a of 24..160 and the log.
    let mut sealed = want;
    seal(&mut sealed, &log);
    let sum = fnv1a64(&[&want[24..160], &log]);
    let mut expected = want;
    expected[16..24].copy_from_slice(&sum.to_le_bytes());
    assert_eq!(sealed, expected);
    assert_eq!(stored_checksum(&sealed), sum);

    let mut region = vec![0u8; 4096];
    region[..160].copy_from_slice(&expected);
    region[160..160 + 261].copy_from_slice(&log);
    assert_eq!(read_owned(&region), Ok((h, log)));
}

#[test]
fn encode_writes_no_caller_as_pid_minus_one_and_zeros() {
    let h = Header {
        failed: false,
        log_len: 0,
        boot_id: [0; 16],
        time_ns: 0,
        order: MethodList::from_slice(&[Method::Triple, Method::Cf9, Method::Acpi, Method::Kbd]),
        caller: None,
        trigger: padded(b"nmi"),
    };
    let mut want = [0u8; 160];
    want[0..8].copy_from_slice(b"RERLAST\0");
    want[8] = 1;
    want[12] = 160;
    want[56..60].copy_from_slice(&[4, 3, 2, 1]);
    want[64..68].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    want[88..91].copy_from_slice(b"nmi");
    assert_eq!(encode(&h), want);
    assert_eq!(decode(&want, 160), Ok(h));
}

// ---------------------------------------------------------------------------
// 3. Single-bit flips.
// ---------------------------------------------------------------------------

/// Flips every bit of the header and of the log of `region` in turn; checks
/// `read()` never says Ok, says what the oracle says, and says the obvious
/// error where the field alone decides it.
fn every_bit_flip_is_caught(region: &mut [u8], log_len: usize) {
    assert!(read(region).is_ok());
    for byte in 0..HEADER_LEN + log_len {
        for bit in 0..8 {
            region[byte] ^= 1 << bit;
            let got = read_owned(region);
            assert!(got.is_err(), "byte {byte} bit {bit}: read Ok");
            assert_eq!(got, oracle_read(region), "byte {byte} bit {bit}");
            let got = got.unwrap_err();
            match byte {
                0..=7 => assert_eq!(got, RecordError::NoMagic, "byte {byte} bit {bit}"),
                8..=11 => {
                    let v = 1u32 ^ (1 << (8 * (byte - 8) + bit));
                    assert_eq!(got, RecordError::UnknownVersion(v), "byte {byte} bit {bit}");
                }
                12..=15 | 152..=159 => {
                    assert_eq!(got, RecordError::Malformed, "byte {byte} bit {bit}")
                }
                16..=23 | 32..=55 | 68..=87 | 89..=151 => {
                    assert_eq!(got, RecordError::BadChecksum, "byte {byte} bit {bit}")
                }
                24 if bit == 0 => assert_eq!(got, RecordError::BadChecksum),
                24..=27 => assert_eq!(got, RecordError::Malformed, "byte {byte} bit {bit}"),
                b if b >= HEADER_LEN => {
                    assert_eq!(got, RecordError::BadChecksum, "byte {byte} bit {bit}")
                }
                // log_len, order, pid, trigger[0]: either, as the oracle says.
                _ => assert!(
                    matches!(got, RecordError::Malformed | RecordError::BadChecksum),
                    "byte {byte} bit {bit}: {got:?}"
                ),
            }
            region[byte] ^= 1 << bit;
        }
    }
    assert!(read(region).is_ok());
}

#[test]
fn any_single_bit_flip_in_a_record_makes_it_unreadable() {
    every_bit_flip_is_caught(&mut small_record(), 100);
}

#[test]
fn any_single_bit_flip_in_a_failed_record_without_caller_makes_it_unreadable() {
    let mut h = header(b"oops", &Method::ALL, None, true);
    h.log_len = 120;
    let mut region = sealed_region(&h, &log_text(120), 4096, 0);
    every_bit_flip_is_caught(&mut region, 120);
}

#[test]
fn any_single_bit_flip_in_a_record_filling_its_region_makes_it_unreadable() {
    // log_len is the largest the region allows: any bit set in it is Malformed.
    let mut h = header(b"nmi", &[Method::Acpi], Some(caller(1, 0, b"init")), false);
    h.log_len = 96;
    let mut region = sealed_region(&h, &log_text(96), 256, 0);
    every_bit_flip_is_caught(&mut region, 96);
}

// ---------------------------------------------------------------------------
// 4. Specific errors.
// ---------------------------------------------------------------------------

#[test]
fn an_all_zero_region_holds_no_record() {
    for size in [160, 4096, 65536] {
        assert_eq!(read(&vec![0u8; size]).err(), Some(RecordError::NoMagic));
    }
    assert_eq!(read(&vec![0xffu8; 4096]).err(), Some(RecordError::NoMagic));
    assert_eq!(decode(&[0; HEADER_LEN], 4096), Err(RecordError::NoMagic));
}

#[test]
fn a_forgotten_record_with_only_the_magic_zeroed_holds_no_record() {
    let mut region = small_record();
    region[0..8].fill(0);
    assert_eq!(read(&region).err(), Some(RecordError::NoMagic));
    let mut region = small_record();
    region[7] = b'X'; // "RERLASTX": the NUL belongs to the magic.
    assert_eq!(read(&region).err(), Some(RecordError::NoMagic));
}

#[test]
fn an_unknown_version_is_reported_even_with_a_valid_checksum() {
    for v in [0, 2, 3, 0x100, u32::MAX] {
        let mut region = small_record();
        put32(&mut region, 8, v);
        reseal(&mut region);
        assert_eq!(read(&region).err(), Some(RecordError::UnknownVersion(v)));
    }
}

#[test]
fn a_log_longer_than_the_region_holds_is_malformed() {
    let mut region = small_record();
    // The longest log the region holds, sealed, reads.
    put32(&mut region, 28, 4096 - 160);
    reseal(&mut region);
    assert_eq!(read(&region).unwrap().1.len(), 4096 - 160);
    for len in [4096 - 160 + 1, 4096, 1 << 20, u32::MAX - 159, u32::MAX] {
        put32(&mut region, 28, len);
        reseal(&mut region);
        assert_eq!(read(&region).err(), Some(RecordError::Malformed), "{len}");
    }
    // decode judges by the region length it is given.
    let mut b: [u8; 160] = region[..160].try_into().unwrap();
    put32(&mut b, 28, 100);
    assert!(decode(&b, 260).is_ok());
    assert_eq!(decode(&b, 259), Err(RecordError::Malformed));
    assert_eq!(decode(&b, 0), Err(RecordError::Malformed));
}

#[test]
fn unknown_flag_bits_are_malformed() {
    for bit in 1..32 {
        for failed in [0, 1] {
            let mut region = small_record();
            put32(&mut region, 24, failed | 1 << bit);
            reseal(&mut region);
            assert_eq!(
                read(&region).err(),
                Some(RecordError::Malformed),
                "bit {bit}"
            );
        }
    }
    let mut region = small_record();
    put32(&mut region, 24, FLAG_FAILED);
    reseal(&mut region);
    assert!(read(&region).unwrap().0.failed);
}

#[test]
fn a_bad_method_order_is_malformed() {
    let bad: &[&[u8]] = &[
        &[],                       // empty
        &[1, 1],                   // repeated
        &[1, 2, 3, 2],             // repeated
        &[4, 3, 2, 1, 4],          // a fifth, repeated
        &[4, 3, 2, 1, 0, 0, 0, 1], // a fifth after a zero
        &[5],                      // no such method
        &[1, 5],
        &[0xff],
        &[0, 1],    // a gap: nonzero after zero
        &[1, 0, 2], // a gap
        &[2, 0, 0, 0, 0, 0, 0, 3],
        &[0, 0, 0, 0, 0, 0, 0, 1],
    ];
    for codes in bad {
        let mut region = small_record();
        region[56..64].fill(0);
        region[56..56 + codes.len()].copy_from_slice(codes);
        reseal(&mut region);
        assert_eq!(
            read(&region).err(),
            Some(RecordError::Malformed),
            "{codes:?}"
        );
    }
    let good: &[(&[u8], &[Method])] = &[
        (
            &[4, 3, 2, 1],
            &[Method::Triple, Method::Cf9, Method::Acpi, Method::Kbd],
        ),
        (&[2], &[Method::Acpi]),
        (&[3, 4], &[Method::Cf9, Method::Triple]),
    ];
    for (codes, methods) in good {
        let mut region = small_record();
        region[56..64].fill(0);
        region[56..56 + codes.len()].copy_from_slice(codes);
        reseal(&mut region);
        assert_eq!(read(&region).unwrap().0.order.as_slice(), *methods);
    }
}

#[test]
fn a_pid_of_zero_or_below_minus_one_is_malformed() {
    for pid in [0, -2, -100, i32::MIN] {
        let mut region = small_record();
        put32(&mut region, 64, pid as u32);
        reseal(&mut region);
        assert_eq!(
            read(&region).err(),
            Some(RecordError::Malformed),
            "pid {pid}"
        );
    }
    for pid in [1, 2, i32::MAX] {
        let mut region = small_record();
        put32(&mut region, 64, pid as u32);
        reseal(&mut region);
        let c = read(&region).unwrap().0.caller.unwrap();
        assert_eq!((c.pid, c.uid, c.comm), (pid, 1000, padded(b"sh")));
    }
    let mut region = small_record();
    put32(&mut region, 64, u32::MAX);
    reseal(&mut region);
    assert_eq!(read(&region).unwrap().0.caller, None);
}

#[test]
fn an_empty_trigger_is_malformed() {
    let mut region = small_record();
    region[88..152].fill(0);
    reseal(&mut region);
    assert_eq!(read(&region).err(), Some(RecordError::Malformed));
    // Text after a leading NUL does not count.
    region[89..92].copy_from_slice(b"nmi");
    reseal(&mut region);
    assert_eq!(read(&region).err(), Some(RecordError::Malformed));
}

#[test]
fn a_header_length_other_than_160_is_malformed() {
    for len in [0, 1, 159, 161, 320, 4096, u32::MAX] {
        let mut region = small_record();
        put32(&mut region, 12, len);
        reseal(&mut region);
        assert_eq!(read(&region).err(), Some(RecordError::Malformed), "{len}");
    }
}

#[test]
fn nonzero_reserved_bytes_are_malformed() {
    for i in 152..160 {
        let mut region = small_record();
        region[i] = 1;
        reseal(&mut region);
        assert_eq!(
            read(&region).err(),
            Some(RecordError::Malformed),
            "byte {i}"
        );
    }
}

#[test]
fn a_region_shorter_than_a_header_is_malformed() {
    let region = small_record();
    for len in [0, 1, 8, 12, 159] {
        assert_eq!(
            read(&region[..len]).err(),
            Some(RecordError::Malformed),
            "{len}"
        );
        assert_eq!(
            read(&vec![0u8; len]).err(),
            Some(RecordError::Malformed),
            "{len}"
        );
    }
    // A header alone is a region: with a log of 0 bytes, it reads.
    let mut h = header(b"nmi", &[Method::Kbd], None, false);
    h.log_len = 0;
    let region = sealed_region(&h, &[], HEADER_LEN, 0);
    assert_eq!(read_owned(&region), Ok((h, Vec::new())));
}

#[test]
fn only_the_first_max_region_bytes_of_a_region_count() {
    let size = MAX_REGION + 4096;
    let fits = MAX_REGION - HEADER_LEN;
    let mut h = header(b"/dev/emergency_reset", &Method::ALL, None, false);
    h.log_len = fits as u32;
    let log = log_text(fits);
    let region = sealed_region(&h, &log, size, 0x77);
    let (got, got_log) = read(&region).unwrap();
    assert_eq!(got, h);
    assert_eq!(got_log.len(), fits);

    // One byte more would fit in the larger region, not in the part used.
    let mut longer = region.clone();
    put32(&mut longer, 28, fits as u32 + 1);
    reseal(&mut longer);
    assert_eq!(read(&longer).err(), Some(RecordError::Malformed));
    put32(&mut longer, 28, (size - HEADER_LEN) as u32);
    reseal(&mut longer);
    assert_eq!(read(&longer).err(), Some(RecordError::Malformed));

    // The bytes past MAX_REGION are never looked at.
    let mut changed = region.clone();
    changed[MAX_REGION..].fill(0);
    assert_eq!(read(&changed).unwrap().0, h);
}

// ---------------------------------------------------------------------------
// 6. The checksum.
// ---------------------------------------------------------------------------

fn fnv_of(bytes: &[u8]) -> u64 {
    let mut c = Checksum::new();
    c.update(bytes);
    c.value()
}

#[test]
fn checksum_is_fnv1a_64() {
    // Test vectors of the FNV reference (draft-eastlake-fnv, fnv-1a 64).
    assert_eq!(Checksum::new().value(), 0xcbf2_9ce4_8422_2325);
    assert_eq!(Checksum::default().value(), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv_of(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv_of(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv_of(b"foobar"), 0x8594_4171_f739_67e8);
    // The oracle agrees with the vectors, and with the code on other input.
    assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a64(&[b"foo", b"bar"]), 0x8594_4171_f739_67e8);
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(fnv_of(&all), fnv1a64(&[&all]));
}

#[test]
fn checksum_in_pieces_equals_checksum_at_once() {
    let data = log_text(1000);
    let whole = fnv_of(&data);
    for cut in [0, 1, 2, 500, 999, 1000] {
        let mut c = Checksum::new();
        c.update(&data[..cut]);
        c.update(&[]);
        c.update(&data[cut..]);
        assert_eq!(c.value(), whole, "cut at {cut}");
    }
    let mut c = Checksum::new();
    for b in &data {
        c.update(core::slice::from_ref(b));
    }
    assert_eq!(c.value(), whole);
    // A copy continues independently.
    let mut a = Checksum::new();
    a.update(b"foo");
    let mut b = a;
    b.update(b"bar");
    assert_eq!(a.value(), fnv_of(b"foo"));
    assert_eq!(b.value(), 0x8594_4171_f739_67e8);
}

// ---------------------------------------------------------------------------
// 7. UtcTime, against GNU date.
// ---------------------------------------------------------------------------

/// `date -u -d @SECONDS '+%Y-%m-%d %H:%M:%S UTC'`, run with GNU coreutils.
pub(crate) const GNU_DATE: &[(u64, &str)] = &[
    (0, "1970-01-01 00:00:00 UTC"),
    (59, "1970-01-01 00:00:59 UTC"),
    (86399, "1970-01-01 23:59:59 UTC"),
    (86400, "1970-01-02 00:00:00 UTC"),
    (31535999, "1970-12-31 23:59:59 UTC"),
    (31536000, "1971-01-01 00:00:00 UTC"),
    (68255999, "1972-02-29 23:59:59 UTC"),
    (68256000, "1972-03-01 00:00:00 UTC"),
    (946684799, "1999-12-31 23:59:59 UTC"),
    (946684800, "2000-01-01 00:00:00 UTC"),
    (951782399, "2000-02-28 23:59:59 UTC"),
    (951782400, "2000-02-29 00:00:00 UTC"),
    (951868800, "2000-03-01 00:00:00 UTC"),
    (1078012800, "2004-02-29 00:00:00 UTC"),
    (1234567890, "2009-02-13 23:31:30 UTC"),
    (1700000000, "2023-11-14 22:13:20 UTC"),
    (1795600530, "2026-11-25 09:55:30 UTC"),
    (2147483647, "2038-01-19 03:14:07 UTC"),
    (2147483648, "2038-01-19 03:14:08 UTC"),
    (3981398399, "2096-02-29 23:59:59 UTC"),
    (4102444800, "2100-01-01 00:00:00 UTC"),
    (4107456000, "2100-02-28 00:00:00 UTC"),
    (4107542399, "2100-02-28 23:59:59 UTC"),
    (4107542400, "2100-03-01 00:00:00 UTC"),
    (4294967295, "2106-02-07 06:28:15 UTC"),
    (4294967296, "2106-02-07 06:28:16 UTC"),
    (13569465600, "2400-01-01 00:00:00 UTC"),
    (13574608496, "2400-02-29 12:34:56 UTC"),
    (13574649600, "2400-03-01 00:00:00 UTC"),
    (18446744072, "2554-07-21 23:34:32 UTC"),
    // u64::MAX ns is 18446744073.709551615 s: the last second UtcTime can show.
    (18446744073, "2554-07-21 23:34:33 UTC"),
    // Beyond u64 ns: for the oracle only.
    (253375776000, "9999-02-28 00:00:00 UTC"),
    (253402300799, "9999-12-31 23:59:59 UTC"),
];

/// The date and time of `secs` seconds after the epoch, by walking years and
/// months with the Gregorian leap-year rules.
pub(crate) fn oracle_utc(secs: u64) -> String {
    fn leap(y: u64) -> bool {
        y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
    }
    let mut days = secs / 86_400;
    let rem = secs % 86_400;
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let months = [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while days >= months[month] {
        days -= months[month];
        month += 1;
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        year,
        month + 1,
        days + 1,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[test]
fn utc_time_agrees_with_gnu_date() {
    for &(secs, want) in GNU_DATE {
        assert_eq!(oracle_utc(secs), want, "oracle at {secs}");
        if let Some(ns) = secs.checked_mul(1_000_000_000) {
            assert_eq!(format!("{}", UtcTime(ns)), want, "{secs} s");
            // Nanoseconds are cut off, not rounded.
            if let Some(ns) = ns.checked_add(999_999_999) {
                assert_eq!(format!("{}", UtcTime(ns)), want, "{secs}.999999999 s");
            }
        }
    }
    assert_eq!(format!("{}", UtcTime(u64::MAX)), "2554-07-21 23:34:33 UTC");
    assert_eq!(
        format!("{}", UtcTime(999_999_999)),
        "1970-01-01 00:00:00 UTC"
    );
}

// ---------------------------------------------------------------------------
// 8. BootId.
// ---------------------------------------------------------------------------

#[test]
fn boot_id_is_8_4_4_4_12_lowercase_hex() {
    let id = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    assert_eq!(
        format!("{}", BootId(&id)),
        "00112233-4455-6677-8899-aabbccddeeff"
    );
    assert_eq!(
        format!("{}", BootId(&[0; 16])),
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(
        format!("{}", BootId(&[0xAB; 16])),
        "abababab-abab-abab-abab-abababababab"
    );
    assert_eq!(
        format!(
            "{}",
            BootId(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16])
        ),
        "01020304-0506-0708-090a-0b0c0d0e0f10"
    );
}

// ---------------------------------------------------------------------------
// 9. format_last_words.
// ---------------------------------------------------------------------------

fn last_words_text(lw: &LastWords) -> String {
    let mut s = String::new();
    format_last_words(lw, &mut s).unwrap();
    s
}

fn on(previous: Option<Header>) -> LastWords {
    LastWords::On {
        address: 0x0fff_0000,
        size: 65536,
        previous,
        last_save_ns: None,
    }
}

#[test]
fn last_words_off_says_so() {
    assert_eq!(
        last_words_text(&LastWords::Off),
        "last_words: off\nprevious reset: unknown (last words off)\n"
    );
}

#[test]
fn last_words_without_a_record_say_none() {
    assert_eq!(
        last_words_text(&on(None)),
        "last_words: 65536 bytes at 0x000000000fff0000\nprevious reset: none\n"
    );
    let lw = LastWords::On {
        address: u64::MAX,
        size: MAX_REGION,
        previous: None,
        last_save_ns: None,
    };
    assert_eq!(
        last_words_text(&lw),
        "last_words: 1048576 bytes at 0xffffffffffffffff\nprevious reset: none\n"
    );
    let lw = LastWords::On {
        address: 0,
        size: 4096,
        previous: None,
        last_save_ns: None,
    };
    assert!(last_words_text(&lw).starts_with("last_words: 4096 bytes at 0x0000000000000000\n"));
}

#[test]
fn last_words_with_a_record_describe_it_in_one_line() {
    let mut h = header(
        b"/dev/emergency_reset",
        &Method::ALL,
        Some(caller(93, 0, b"sh")),
        false,
    );
    h.log_len = 8123;
    assert_eq!(
        last_words_text(&on(Some(h))),
        "last_words: 65536 bytes at 0x000000000fff0000\n\
         previous reset: 2026-11-25 09:55:30 UTC, trigger /dev/emergency_reset, \
         methods kbd,acpi,cf9,triple, caller pid 93 uid 0 comm sh, \
         boot 0f5c3a91-007e-abcd-1234-56789abcdef0, log 8123 bytes\n"
    );
}

#[test]
fn last_words_of_a_failed_reset_without_a_caller() {
    let mut h = header(b"sysrq-x", &[Method::Cf9, Method::Acpi], None, true);
    h.log_len = 0;
    h.time_ns = 951_782_400_000_000_000;
    h.boot_id = [0xff; 16];
    assert_eq!(
        last_words_text(&on(Some(h))),
        "last_words: 65536 bytes at 0x000000000fff0000\n\
         previous reset: 2000-02-29 00:00:00 UTC, trigger sysrq-x, methods cf9,acpi, \
         caller none, boot ffffffff-ffff-ffff-ffff-ffffffffffff, log 0 bytes, failed\n"
    );
    h.caller = Some(caller(i32::MAX, u32::MAX, b"0123456789abcdef"));
    h.trigger = padded(b"nmi");
    h.order = MethodList::from_slice(&[Method::Triple]);
    let text = last_words_text(&on(Some(h)));
    assert!(
        text.ends_with(
            ", trigger nmi, methods triple, caller pid 2147483647 uid 4294967295 \
             comm 0123456789abcdef, boot ffffffff-ffff-ffff-ffff-ffffffffffff, \
             log 0 bytes, failed\n"
        ),
        "{text}"
    );
    h.failed = false;
    assert!(last_words_text(&on(Some(h))).ends_with(", log 0 bytes\n"));
}

#[test]
fn last_words_show_unprintable_bytes_as_question_marks() {
    let mut h = header(
        b"sys\x01rq\xff\x7f-\x1b[31m",
        &[Method::Kbd],
        Some(caller(5, 6, b"a\tb\x80c\n")),
        false,
    );
    h.log_len = 1;
    let text = last_words_text(&on(Some(h)));
    assert!(
        text.contains(", trigger sys?rq??-?[31m, methods kbd,"),
        "{text}"
    );
    assert!(
        text.contains(", caller pid 5 uid 6 comm a?b?c?, boot "),
        "{text}"
    );
    // Text ends at its first NUL.
    h.trigger = padded(b"oops\0hidden");
    h.caller = Some(caller(5, 6, b"x\0y"));
    let text = last_words_text(&on(Some(h)));
    assert!(
        text.contains(", trigger oops, methods kbd, caller pid 5 uid 6 comm x, boot "),
        "{text}"
    );
    // A full trigger, no NUL at all, is printed whole.
    h.trigger = [b'~'; TRIGGER_LEN];
    let text = last_words_text(&on(Some(h)));
    assert!(
        text.contains(&format!(", trigger {}, methods ", "~".repeat(64))),
        "{text}"
    );
    // Every line is printable ASCII.
    h.trigger = core::array::from_fn(|i| 0x80 + i as u8);
    h.trigger[0] = 0xc3;
    h.caller = Some(caller(
        5,
        6,
        &core::array::from_fn::<u8, 16, _>(|i| i as u8 + 1),
    ));
    let text = last_words_text(&on(Some(h)));
    assert!(
        text.bytes()
            .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2);
}

#[test]
fn the_longest_last_words_fit_in_512_bytes() {
    let h = Header {
        failed: true,
        log_len: u32::MAX,
        boot_id: [0xff; 16],
        time_ns: u64::MAX,
        order: MethodList::DEFAULT,
        caller: Some(caller(i32::MAX, u32::MAX, &[b'c'; 16])),
        trigger: [b't'; TRIGGER_LEN],
    };
    let lw = LastWords::On {
        address: u64::MAX,
        size: usize::MAX,
        previous: Some(h),
        last_save_ns: Some(u64::MAX),
    };
    let text = last_words_text(&lw);
    assert!(text.len() < 512, "{} bytes: {text}", text.len());
    // And a BufWriter of that size takes it.
    let mut buf = [0u8; 512];
    let mut w = BufWriter::new(&mut buf);
    format_last_words(&lw, &mut w).unwrap();
    assert_eq!(w.as_bytes(), text.as_bytes());
}

#[test]
fn a_save_in_this_boot_adds_its_duration_in_microseconds_rounded_up() {
    let cases = [
        (0, "0"),
        (1, "1"),
        (999, "1"),
        (1000, "1"),
        (1001, "2"),
        (123_456_789, "123457"),
        (u64::MAX, "18446744073709552"),
    ];
    for (ns, us) in cases {
        for previous in [None, Some(header(b"nmi", &[Method::Kbd], None, true))] {
            let lw = LastWords::On {
                address: 0x0fff_0000,
                size: 65536,
                previous,
                last_save_ns: Some(ns),
            };
            let without = last_words_text(&on(previous));
            let (first, rest) = without.split_once('\n').unwrap();
            assert_eq!(
                last_words_text(&lw),
                format!("{first}\nlast_words_save_us: {us}\n{rest}"),
                "{ns} ns"
            );
        }
    }
}

#[test]
fn record_errors_describe_themselves() {
    let text = |e: RecordError| {
        let mut s = String::new();
        write!(s, "{e}").unwrap();
        s
    };
    assert_eq!(text(RecordError::NoMagic), "no record");
    assert_eq!(
        text(RecordError::UnknownVersion(7)),
        "a record of unknown format 7"
    );
    assert_eq!(text(RecordError::Malformed), "a malformed record");
    assert_eq!(
        text(RecordError::BadChecksum),
        "a record with a bad checksum"
    );
}

#[test]
fn until_nul_stops_at_the_first_nul() {
    assert_eq!(until_nul(b"abc\0def\0"), b"abc");
    assert_eq!(until_nul(b"abc"), b"abc");
    assert_eq!(until_nul(b"\0abc"), b"");
    assert_eq!(until_nul(b""), b"");
}

// ---------------------------------------------------------------------------
// 10. forget.
// ---------------------------------------------------------------------------

#[test]
fn forget_is_accepted_with_and_without_newline() {
    assert_eq!(parse_command(b"forget"), Ok(Command::Forget));
    assert_eq!(parse_command(b"forget\n"), Ok(Command::Forget));
}

#[test]
fn forget_takes_no_argument_and_no_other_spelling() {
    let bad: &[&[u8]] = &[
        b"forget x",
        b"forget x\n",
        b"forget ",
        b"forget \n",
        b"forget kbd",
        b"forget\n\n",
        b"Forget",
        b"FORGET\n",
        b" forget",
        b"forget\r\n",
        b"forget\0",
        b"forge",
        b"forgetx",
        b"\nforget",
        b"reset forget",
    ];
    for input in bad {
        let got = parse_command(input);
        assert!(
            got.is_err(),
            "accepted {:?}",
            String::from_utf8_lossy(input)
        );
        if *input != b"reset forget" {
            assert_eq!(
                got,
                Err(CommandError::Unknown),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    assert_eq!(
        parse_command(b"reset forget"),
        Err(CommandError::UnknownMethod)
    );
}
