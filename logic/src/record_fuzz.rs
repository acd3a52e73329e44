// SPDX-License-Identifier: GPL-2.0

//! Property tests of the last-words record (`record.rs`) against the oracles
//! of `record_tests.rs`, which are written from the doc comment's byte table:
//! nothing but a record that a writer produced, sealed, reads as one.
//!
//! The number of inputs per property is `RER_FUZZ_ITERATIONS` (default
//! 20 000; `make fuzz` runs 10 million).

use crate::fuzz::{
    iterations,
    Rng, //
};
use crate::record::*;
use crate::record_tests::{
    fnv1a64,
    oracle_read,
    oracle_utc,
    put32,
    read_owned,
    reseal,
    sealed_region, //
};
use crate::*;
use std::{
    format,
    string::String,
    vec,
    vec::Vec, //
};

/// `n` random bytes.
fn bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v);
    v
}

/// A header a writer could produce, for a region of `region_len` bytes.
fn random_header(rng: &mut Rng, region_len: usize) -> Header {
    let mut methods = Method::ALL.to_vec();
    // Fisher-Yates, then keep 1 to 4.
    for i in (1..methods.len()).rev() {
        methods.swap(i, rng.below(i + 1));
    }
    methods.truncate(1 + rng.below(4));
    // Text of any bytes but a NUL first, NUL-padded.
    fn text(max: usize, rng: &mut Rng) -> [u8; TRIGGER_LEN] {
        let n = 1 + rng.below(max);
        let mut t = [0u8; TRIGGER_LEN];
        rng.fill(&mut t[..n]);
        t[0] |= 1;
        t
    }
    let trigger = text(TRIGGER_LEN, rng);
    let caller = if rng.below(3) == 0 {
        None
    } else {
        let comm = text(COMM_LEN, rng);
        Some(Caller {
            pid: 1 + rng.below(i32::MAX as usize) as i32,
            uid: rng.next() as u32,
            comm: comm[..COMM_LEN].try_into().unwrap(),
        })
    };
    let mut boot_id = [0u8; 16];
    rng.fill(&mut boot_id);
    Header {
        failed: rng.below(2) == 0,
        log_len: rng.below(region_len - HEADER_LEN + 1) as u32,
        boot_id,
        time_ns: rng.next(),
        order: MethodList::from_slice(&methods),
        caller,
        trigger,
    }
}

/// A sealed region of 160 to 1183 bytes holding a random record.
fn random_record(rng: &mut Rng) -> (Header, Vec<u8>, Vec<u8>) {
    let size = HEADER_LEN + rng.below(1024);
    let h = random_header(rng, size);
    let log = bytes(rng, h.log_len as usize);
    let fill = rng.next() as u8;
    let region = sealed_region(&h, &log, size, fill);
    (h, log, region)
}

#[test]
fn random_regions_never_read_as_a_record() {
    let mut rng = Rng(0x5eed_1001);
    for i in 0..iterations() {
        let size = 160 + rng.below(8192 - 160);
        let region = bytes(&mut rng, size);
        let got = read_owned(&region);
        assert!(got.is_err(), "iteration {i}: read Ok");
        assert_eq!(got, oracle_read(&region), "iteration {i}");
    }
}

#[test]
fn garbage_behind_a_valid_magic_and_version_never_reads_as_a_record() {
    let mut rng = Rng(0x5eed_1002);
    for i in 0..iterations() {
        let size = 160 + rng.below(8192 - 160);
        let mut region = bytes(&mut rng, size);
        region[0..8].copy_from_slice(b"RERLAST\0");
        put32(&mut region, 8, 1);
        let got = read_owned(&region);
        assert!(got.is_err(), "iteration {i}: read Ok");
        assert_eq!(got, oracle_read(&region), "iteration {i}");
    }
}

#[test]
fn well_formed_headers_with_a_random_checksum_never_read_as_a_record() {
    // Everything but the checksum is what a writer produces: only the checksum
    // stands between garbage and a record.
    let mut rng = Rng(0x5eed_1003);
    for i in 0..iterations() {
        let (_, _, mut region) = random_record(&mut rng);
        let sum = rng.next();
        region[16..24].copy_from_slice(&sum.to_le_bytes());
        assert_eq!(
            read(&region).err(),
            Some(RecordError::BadChecksum),
            "iteration {i}"
        );
    }
}

#[test]
fn random_records_read_back_as_written() {
    let mut rng = Rng(0x5eed_1004);
    for i in 0..iterations() {
        let (h, log, region) = random_record(&mut rng);
        assert_eq!(read_owned(&region), Ok((h, log.clone())), "iteration {i}");
        assert_eq!(oracle_read(&region), Ok((h, log)), "iteration {i}");
    }
}

/// Interesting values of a 32-bit field for a region of `size` bytes.
fn interesting_u32(rng: &mut Rng, size: usize) -> u32 {
    let free = (size - HEADER_LEN) as u32;
    let values = [
        0,
        1,
        2,
        3,
        4,
        5,
        159,
        160,
        161,
        free,
        free.wrapping_add(1),
        free.wrapping_sub(1),
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
        u32::MAX - 1,
        rng.next() as u32,
    ];
    values[rng.below(values.len())]
}

#[test]
fn mutated_records_read_as_the_layout_oracle_says() {
    let mut rng = Rng(0x5eed_1005);
    let mut outcomes = [0u64; 5];
    for i in 0..iterations() {
        let (_, _, mut region) = random_record(&mut rng);
        let size = region.len();
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                // A bit anywhere in the header or just past it.
                0 => {
                    let at = rng.below(size.min(HEADER_LEN + 64));
                    region[at] ^= 1 << rng.below(8);
                }
                // A random byte in the header.
                1 => region[rng.below(HEADER_LEN)] = rng.next() as u8,
                // A 32-bit field set to an interesting value.
                2 => {
                    let fields = [8, 12, 24, 28, 64, 68];
                    let at = fields[rng.below(fields.len())];
                    let v = interesting_u32(&mut rng, size);
                    put32(&mut region, at, v);
                }
                // One byte of the order set to a small code.
                3 => region[56 + rng.below(8)] = rng.below(7) as u8,
                // The trigger's first byte, or a reserved byte.
                4 => {
                    let at = [88, 152 + rng.below(8)][rng.below(2)];
                    region[at] = [0, 1, b'x'][rng.below(3)];
                }
                // A byte of the log, or past it.
                _ => {
                    if size > HEADER_LEN {
                        let at = HEADER_LEN + rng.below(size - HEADER_LEN);
                        region[at] ^= 1 + rng.below(255) as u8;
                    }
                }
            }
        }
        // Half the time, a valid checksum over whatever the fields now say,
        // so that the field checks themselves are what is tested.
        if rng.below(2) == 0 {
            reseal(&mut region);
        }
        let got = read_owned(&region);
        let want = oracle_read(&region);
        assert_eq!(
            got,
            want,
            "iteration {i}: region {:?}",
            &region[..HEADER_LEN]
        );
        outcomes[match got {
            Ok(_) => 0,
            Err(RecordError::NoMagic) => 1,
            Err(RecordError::UnknownVersion(_)) => 2,
            Err(RecordError::Malformed) => 3,
            Err(RecordError::BadChecksum) => 4,
        }] += 1;
    }
    // Every outcome is reached, so the property is not vacuous.
    if iterations() >= 20_000 {
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }
}

#[test]
fn decode_agrees_with_the_oracle_on_random_headers_of_valid_fields() {
    // Fields drawn one by one from valid and invalid values, checksum sealed:
    // decode's verdict must be the oracle's, field by field.
    let mut rng = Rng(0x5eed_1006);
    let mut accepted = 0u64;
    for i in 0..iterations() {
        let size = HEADER_LEN + rng.below(512);
        let h = random_header(&mut rng, size);
        let mut region = vec![0u8; size];
        region[..HEADER_LEN].copy_from_slice(&encode(&h));
        if rng.below(4) == 0 {
            let v = interesting_u32(&mut rng, size);
            put32(&mut region, [12, 24, 28, 64][rng.below(4)], v);
        }
        if rng.below(4) == 0 {
            region[56 + rng.below(8)] = rng.below(6) as u8;
        }
        if rng.below(8) == 0 {
            region[88] = 0;
        }
        if rng.below(8) == 0 {
            region[152 + rng.below(8)] = 1;
        }
        reseal(&mut region);
        let b: &[u8; HEADER_LEN] = region[..HEADER_LEN].try_into().unwrap();
        let want = oracle_read(&region).map(|(h, _)| h);
        assert_eq!(decode(b, size), want, "iteration {i}: {b:?}");
        accepted += u64::from(want.is_ok());
    }
    assert!(accepted > 0);
}

#[test]
fn checksum_in_random_pieces_equals_the_oracle() {
    let mut rng = Rng(0x5eed_1007);
    for i in 0..iterations() {
        let n = rng.below(300);
        let data = bytes(&mut rng, n);
        let mut c = Checksum::new();
        let mut at = 0;
        while at < data.len() {
            let n = 1 + rng.below(data.len() - at);
            c.update(&data[at..at + n]);
            at += n;
        }
        assert_eq!(c.value(), fnv1a64(&[&data]), "iteration {i}");
    }
}

#[test]
fn utc_time_agrees_with_a_calendar_oracle() {
    let mut rng = Rng(0x5eed_1008);
    // The last whole second u64 nanoseconds reach.
    let max_secs = u64::MAX / 1_000_000_000;
    for i in 0..iterations() {
        let ns = match rng.below(3) {
            // Anywhere.
            0 => rng.next(),
            // A second and a random fraction.
            1 => {
                let secs = rng.next() % (max_secs + 1);
                let frac = rng.next() % 1_000_000_000;
                secs * 1_000_000_000 + frac.min(u64::MAX - secs * 1_000_000_000)
            }
            // The first or last second of a day.
            _ => {
                let day = rng.next() % (max_secs / 86_400);
                (day * 86_400 + [0, 86_399][rng.below(2)]) * 1_000_000_000
            }
        };
        let want = oracle_utc(ns / 1_000_000_000);
        assert_eq!(format!("{}", UtcTime(ns)), want, "iteration {i}: {ns} ns");
    }
}

/// 8-4-4-4-12 lowercase hex, written digit by digit.
fn oracle_boot_id(id: &[u8; 16]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::new();
    for (i, b) in id.iter().enumerate() {
        if i == 4 || i == 6 || i == 8 || i == 10 {
            s.push('-');
        }
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[test]
fn boot_id_agrees_with_a_hex_oracle() {
    let mut rng = Rng(0x5eed_1009);
    for _ in 0..iterations() {
        let mut id = [0u8; 16];
        rng.fill(&mut id);
        let text = format!("{}", BootId(&id));
        assert_eq!(text, oracle_boot_id(&id));
        assert_eq!(text.len(), 36);
    }
}

#[test]
fn last_words_of_random_records_are_two_printable_lines() {
    let mut rng = Rng(0x5eed_100a);
    for i in 0..iterations() {
        let (h, _, region) = random_record(&mut rng);
        let (read_back, _) = read(&region).unwrap();
        let lw = LastWords::On {
            address: rng.next(),
            size: region.len(),
            previous: Some(read_back),
            last_save_ns: None,
        };
        let mut text = String::new();
        format_last_words(&lw, &mut text).unwrap();
        assert!(
            text.bytes()
                .all(|b| b == b'\n' || (0x20..0x7f).contains(&b)),
            "iteration {i}: {text:?}"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "iteration {i}: {text:?}");
        assert!(text.ends_with('\n'));
        let line = lines[1];
        assert!(line.starts_with("previous reset: "), "{line}");
        assert!(
            line.contains(&format!(", boot {}, ", oracle_boot_id(&h.boot_id))),
            "{line}"
        );
        assert!(
            line.contains(&format!(", log {} bytes", h.log_len)),
            "{line}"
        );
        assert_eq!(line.ends_with(", failed"), h.failed, "{line}");
        let methods: Vec<&str> = h.order.as_slice().iter().map(|m| m.name()).collect();
        assert!(
            line.contains(&format!(", methods {}, caller ", methods.join(","))),
            "{line}"
        );
        // The trigger shows as many characters as it has bytes before its NUL.
        let tlen = h
            .trigger
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(TRIGGER_LEN);
        let after = &line[line.find(", trigger ").unwrap() + ", trigger ".len()..];
        assert!(after[tlen..].starts_with(", methods "), "{line}");
    }
}
