// SPDX-License-Identifier: GPL-2.0

//! Makes the authenticated UDP packet that tells `rust_emergency_reset` to
//! reset a machine (its `net_port=` trigger).
//!
//! Use: read the key that the target's `net_key=` holds with
//! [`read_key_file`], then build the payload with [`packet`] and send it as
//! one UDP datagram to the target's `net_port`:
//!
//! ```text
//! let key = read_key_file(Path::new("/etc/emergency-reset.key"))?;
//! let payload = packet(&key, "reset", now_ms, &nonce, dest, 5555);
//! ```
//!
//! The payload is one line, `ERST1 <command> <time> <nonce> <mac>\n`, where
//! `<mac>` is the HMAC-SHA256, in lower-case hex, of the text
//! `ERST1 <command> <time> <nonce> <address> <port>` (see [`signed_text`]).
//!
//! This crate is written independently of the module's own parser
//! (`logic/src/packet.rs`), with `std`, so that the tests of that parser can
//! use it as an oracle.

use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// The fewest hex digits a key may have.
pub const KEY_MIN_HEX: usize = 32;
/// The most hex digits a key may have.
pub const KEY_MAX_HEX: usize = 128;

/// The commands the module accepts.
pub const COMMANDS: [&str; 5] = [
    "reset",
    "reset-kbd",
    "reset-acpi",
    "reset-cf9",
    "reset-triple",
];

/// HMAC-SHA256 of `data` with `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `bytes` in lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        write!(s, "{b:02x}").expect("writing to a String");
    }
    s
}

/// Parses a key: 32 to 128 hex digits, either case, an even number of them,
/// with any white space around them (a key file's final newline) ignored.
pub fn parse_hex_key(text: &str) -> Result<Vec<u8>, String> {
    let hex = text.trim();
    if hex.is_empty() {
        return Err("the key is empty".to_string());
    }
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the key must be hex digits only (0-9, a-f)".to_string());
    }
    if hex.len() < KEY_MIN_HEX || hex.len() > KEY_MAX_HEX || hex.len() % 2 != 0 {
        return Err(format!(
            "the key has {} hex digits; it must have an even number from {KEY_MIN_HEX} to {KEY_MAX_HEX}",
            hex.len()
        ));
    }
    Ok(hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).expect("hex digits are ASCII");
            u8::from_str_radix(pair, 16).expect("checked to be hex digits")
        })
        .collect())
}

/// Reads a key file (see [`parse_hex_key`]). Refuses a file that others may
/// read, write or execute: a key anyone can read resets the machine for anyone.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("cannot read key file {shown}: {e}"))?;
    let mode = meta.permissions().mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "key file {shown} is accessible to other users (mode {:03o}); \
             restrict it with: chmod 600 {shown}",
            mode & 0o777
        ));
    }
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read key file {shown}: {e}"))?;
    parse_hex_key(&text).map_err(|e| format!("key file {shown}: {e}"))
}

/// The text the MAC covers: `ERST1 <command> <time> <nonce> <address> <port>`,
/// `<address>` as the target sees the packet's destination address (IPv6 as
/// Rust prints it, which is RFC 5952 form).
pub fn signed_text(command: &str, time_ms: u64, nonce: &str, dest: IpAddr, port: u16) -> String {
    format!("ERST1 {command} {time_ms} {nonce} {dest} {port}")
}

/// The payload for `dest`:`port`, with its final newline:
/// `ERST1 <command> <time> <nonce> <mac>\n`.
pub fn packet(
    key: &[u8],
    command: &str,
    time_ms: u64,
    nonce: &str,
    dest: IpAddr,
    port: u16,
) -> String {
    let text = signed_text(command, time_ms, nonce, dest, port);
    let mac = hmac_sha256(key, text.as_bytes());
    format!("ERST1 {command} {time_ms} {nonce} {}\n", to_hex(&mac))
}

/// A fresh nonce: 16 lower-case hex digits from `/dev/urandom`.
pub fn random_nonce() -> Result<String, String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 8];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(to_hex(&bytes))
}
