// SPDX-License-Identifier: GPL-2.0

//! Property tests of the parsers against oracles written independently of
//! them: no input other than the documented ones is ever accepted.
//!
//! The number of inputs per property is `RER_FUZZ_ITERATIONS` (default
//! 20 000, what `make check` runs; `make fuzz` runs 2 000 000).

use crate::*;
use std::{
    format,
    vec,
    vec::Vec, //
};

/// The method names as the documentation lists them.
const NAMES: [&str; 4] = ["kbd", "acpi", "cf9", "triple"];

pub(crate) fn iterations() -> u64 {
    std::env::var("RER_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// xorshift64*: deterministic, so a failure is reproducible from its seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(crate) fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Every documented command, spelled out.
fn documented_commands() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"reset".to_vec(),
        b"reset\n".to_vec(),
        b"forget".to_vec(),
        b"forget\n".to_vec(),
    ];
    for n in NAMES {
        v.push(format!("reset {n}").into_bytes());
        v.push(format!("reset {n}\n").into_bytes());
    }
    v
}

/// Bytes that make interesting mutations.
const ALPHABET: &[u8] = b"reset kbdacpicf9triple forget,\n\r\t\0\xffRESETxyz";

/// A random input near the documented ones: a documented command or method
/// list, mutated a few times, or random bytes.
fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = if rng.below(8) == 0 {
        Vec::new()
    } else {
        seeds[rng.below(seeds.len())].clone()
    };
    for _ in 0..rng.below(4) {
        let byte = if rng.below(2) == 0 {
            ALPHABET[rng.below(ALPHABET.len())]
        } else {
            rng.next() as u8
        };
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = byte;
            }
            2 => {
                let other = &seeds[rng.below(seeds.len())];
                v.extend_from_slice(other);
            }
            _ => {
                let i = rng.below(v.len() + 1);
                v.insert(i, byte);
            }
        }
    }
    v
}

#[test]
fn parse_command_accepts_exactly_the_documented_commands() {
    let documented = documented_commands();
    let mut rng = Rng(0x5eed_0001);
    let mut accepted = 0u64;
    for _ in 0..iterations() {
        let v = input(&mut rng, &documented);
        let ok = parse_command(&v).is_ok();
        assert_eq!(ok, documented.contains(&v), "input {v:?}");
        accepted += u64::from(ok);
    }
    // The generator does reach the accepted inputs, so the property is not vacuous.
    assert!(accepted > 0);
}

/// The oracle for `methods=`: non-empty, comma-separated known names, each once.
fn methods_valid(v: &[u8]) -> bool {
    let Ok(s) = core::str::from_utf8(v) else {
        return false;
    };
    let parts: Vec<&str> = s.split(',').collect();
    !s.is_empty()
        && parts.iter().all(|p| NAMES.contains(p))
        && (1..parts.len()).all(|i| !parts[..i].contains(&parts[i]))
}

#[test]
fn parse_methods_accepts_exactly_lists_of_distinct_known_names() {
    let seeds: Vec<Vec<u8>> = vec![
        b"kbd,acpi,cf9,triple".to_vec(),
        b"cf9".to_vec(),
        b"acpi,kbd".to_vec(),
        b"triple,cf9,acpi".to_vec(),
        b",".to_vec(),
    ];
    let mut rng = Rng(0x5eed_0002);
    let mut accepted = 0u64;
    for _ in 0..iterations() {
        let v = input(&mut rng, &seeds);
        let parsed = parse_methods(&v);
        assert_eq!(parsed.is_ok(), methods_valid(&v), "input {v:?}");
        if let Ok(list) = parsed {
            // What was accepted is what was written, in order.
            let names: Vec<&str> = list.as_slice().iter().map(|m| m.name()).collect();
            assert_eq!(names.join(",").as_bytes(), &v[..]);
            accepted += 1;
        }
    }
    assert!(accepted > 0);
}

#[test]
fn parse_sysrq_key_accepts_exactly_one_alphanumeric_or_nothing() {
    for a in 0..=255u8 {
        assert_eq!(parse_sysrq_key(&[a]).is_ok(), a.is_ascii_alphanumeric());
        for b in [b'x', b'\n', 0, a] {
            assert!(parse_sysrq_key(&[a, b]).is_err());
        }
    }
}
