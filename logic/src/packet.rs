// SPDX-License-Identifier: GPL-2.0

//! The network trigger's decisions: whether one UDP payload that arrived for
//! `net_port` resets the machine.
//!
//! Use: at load, [`parse_key`], [`parse_window`] and [`parse_port`] check the
//! `net_key=`, `net_window=` and `net_port=` values and a [`Gate`] is made
//! with [`Gate::new`]; then for each datagram, [`Gate::check`] decides (and
//! counts) it, given the HMAC-SHA256 and a constant-time comparison. The
//! status shows [`format_net_status`].
//!
//! The payload is one line, `ERST1 <command> <time> <nonce> <mac>` with an
//! optional final `\n`, fields separated by single spaces:
//!
//! - `<command>`: `reset`, or `reset-<method>` with a [`Method`] name;
//! - `<time>`: the sender's Unix time in milliseconds: 1 to 20 decimal
//!   digits, no leading zero (but `0` itself), at most `u64::MAX`;
//! - `<nonce>`: 16 lower-case hex digits;
//! - `<mac>`: 64 lower-case hex digits, the HMAC-SHA256 with the key of the
//!   text `ERST1 <command> <time> <nonce> <address> <port>` (see
//!   [`signed_text`]), `<address>` being the destination address as this
//!   machine sees it, `<port>` `net_port`.
//!
//! A packet is accepted only if it parses exactly, its time is within the
//! window of the clock, its MAC matches and its time is later than both the
//! load of the module and the last accepted packet, checked in this order.
//!
//! This file is `core`-only, allocation-free and panic-free on any input. It
//! is built into the module and into the host crate `logic/` (`cargo test`).
//! Its [`Drop`] is the verdict, not the trait: use `core::ops::Drop` for that.

use crate::logic::{
    BufWriter,
    Method, //
};
use core::fmt::{
    self,
    Write as _, //
};
use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};

/// The fewest hex digits a `net_key=` may have (128 bits).
pub const KEY_MIN_HEX: usize = 32;
/// The most hex digits a `net_key=` may have (512 bits, SHA-256's block).
pub const KEY_MAX_HEX: usize = 128;

/// An HMAC key. Wiped when dropped; [`Key::wipe`] wipes it earlier.
pub struct Key {
    bytes: [u8; KEY_MAX_HEX / 2],
    len: usize,
}

impl Key {
    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }

    /// Overwrites the key with zeros (in a way the compiler keeps) and makes it empty.
    pub fn wipe(&mut self) {
        for b in self.bytes.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to a `u8`.
            unsafe { core::ptr::write_volatile(b, 0) };
        }
        self.len = 0;
        core::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
}

impl core::ops::Drop for Key {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl fmt::Debug for Key {
    /// Shows the length only, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} bytes)", self.len)
    }
}

/// Why a `net_key=` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKey {
    /// No key at all.
    Empty,
    /// This many hex digits: fewer than [`KEY_MIN_HEX`], more than
    /// [`KEY_MAX_HEX`], or an odd number.
    Length(usize),
    /// Something other than hex digits.
    NotHex,
}

impl BadKey {
    /// A short description for the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            BadKey::Empty => "empty key",
            BadKey::Length(_) => "key must be an even number of 32 to 128 hex digits",
            BadKey::NotHex => "key must be hex digits only",
        }
    }
}

/// The value of hex digit `c` (either case) and `0xff` if it is one, `0`
/// if not, with no branch on `c`: the key is secret.
const fn hex_digit_ct(c: u8) -> (u8, u8) {
    let c = c as i32;
    let num = c ^ 0x30; // '0'..='9' -> 0..=9
    let num_ok = (num - 10) >> 8; // -1 if num < 10, else 0
    let alpha = (c & !0x20) - 55; // 'A'..='F', 'a'..='f' -> 10..=15
    let alpha_ok = ((alpha - 10) ^ (alpha - 16)) >> 8; // -1 if 10 <= alpha < 16
    let value = (num_ok & num) | (alpha_ok & alpha);
    ((value & 0xf) as u8, ((num_ok | alpha_ok) & 0xff) as u8)
}

/// Parses a `net_key=` value: an even number of 32 to 128 hex digits,
/// either case, and nothing else (no white space, no `0x`).
pub fn parse_key(hex: &[u8]) -> Result<Key, BadKey> {
    if hex.is_empty() {
        return Err(BadKey::Empty);
    }
    let mut key = Key {
        bytes: [0; KEY_MAX_HEX / 2],
        len: 0,
    };
    // Every digit is decoded, valid or not, so that the time taken does not
    // depend on the key; the bytes beyond the buffer are only checked.
    let mut ok = 0xffu8;
    for (i, pair) in hex.chunks(2).enumerate() {
        let (hi, hi_ok) = hex_digit_ct(pair.first().copied().unwrap_or(b'0'));
        let (lo, lo_ok) = hex_digit_ct(pair.get(1).copied().unwrap_or(b'0'));
        ok &= hi_ok & lo_ok;
        if let Some(b) = key.bytes.get_mut(i) {
            *b = (hi << 4) | lo;
        }
    }
    if ok != 0xff {
        return Err(BadKey::NotHex);
    }
    if hex.len() < KEY_MIN_HEX || hex.len() > KEY_MAX_HEX || hex.len() % 2 != 0 {
        return Err(BadKey::Length(hex.len()));
    }
    key.len = hex.len() / 2;
    Ok(key)
}

/// A `net_window=` value out of 1..=86400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadWindow;

/// The longest `net_window=`, in seconds: one day.
pub const WINDOW_MAX_S: u32 = 86_400;

/// Checks a `net_window=` value: seconds a packet's time may differ from the
/// clock, 1 to [`WINDOW_MAX_S`].
pub fn parse_window(secs: i32) -> Result<u32, BadWindow> {
    match u32::try_from(secs) {
        Ok(s) if (1..=WINDOW_MAX_S).contains(&s) => Ok(s),
        _ => Err(BadWindow),
    }
}

/// A `net_port=` value out of 0..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPort;

/// Interprets `net_port=`: 0 is off, 1 to 65535 the UDP port listened to.
pub fn parse_port(port: i32) -> Result<Option<u16>, BadPort> {
    match u16::try_from(port) {
        Ok(0) => Ok(None),
        Ok(p) => Ok(Some(p)),
        Err(_) => Err(BadPort),
    }
}

/// A packet's destination address, as this machine received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addr {
    /// IPv4, in network order.
    V4([u8; 4]),
    /// IPv6, in network order.
    V6([u8; 16]),
}

/// The longest [`Addr`] as text: eight groups of four hex digits.
pub const ADDR_MAX: usize = 8 * 4 + 7;

fn fmt_v4(a: &[u8; 4], f: &mut impl fmt::Write) -> fmt::Result {
    write!(f, "{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

impl fmt::Display for Addr {
    /// Dotted quad for IPv4; RFC 5952 for IPv6, as Rust's `std` prints it:
    /// lower case, no leading zeros, the first longest run of two or more zero
    /// groups as `::`, and IPv4-mapped addresses as `::ffff:a.b.c.d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = match self {
            Addr::V4(a) => return fmt_v4(a, f),
            Addr::V6(a) => a,
        };
        let mut groups = [0u16; 8];
        for (g, pair) in groups.iter_mut().zip(a.chunks_exact(2)) {
            *g = u16::from_be_bytes([pair[0], pair[1]]);
        }
        if groups[..5] == [0; 5] && groups[5] == 0xffff {
            f.write_str("::ffff:")?;
            return fmt_v4(&[a[12], a[13], a[14], a[15]], f);
        }
        // The first longest run of zero groups.
        let (mut run_start, mut run_len) = (0, 0);
        let (mut start, mut len) = (0, 0);
        for (i, &g) in groups.iter().enumerate() {
            if g == 0 {
                if len == 0 {
                    start = i;
                }
                len += 1;
                if len > run_len {
                    (run_start, run_len) = (start, len);
                }
            } else {
                len = 0;
            }
        }
        if run_len < 2 {
            run_len = 0;
        }
        let mut colon = false;
        for (i, &g) in groups.iter().enumerate() {
            if run_len > 0 && i >= run_start && i < run_start + run_len {
                if i == run_start {
                    f.write_str("::")?;
                }
                colon = false;
                continue;
            }
            if colon {
                f.write_str(":")?;
            }
            write!(f, "{g:x}")?;
            colon = true;
        }
        Ok(())
    }
}

/// The first field of every payload.
const MAGIC: &[u8] = b"ERST1";
/// The command without a method.
const RESET: &[u8] = b"reset";
/// What precedes a method's name in a command.
const RESET_PREFIX: &[u8] = b"reset-";
/// The most digits of a time: `u64::MAX` has 20.
const TIME_MAX_DIGITS: usize = 20;
/// The digits of a nonce.
const NONCE_DIGITS: usize = 16;
/// The digits of a MAC.
const MAC_DIGITS: usize = 64;
/// The longest method name.
const METHOD_MAX: usize = {
    let mut max = 0;
    let mut i = 0;
    while i < Method::ALL.len() {
        let n = Method::ALL[i].name().len();
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
};
/// The longest `ERST1 <command> <time> <nonce>`: the part the payload and the
/// signed text share.
const PREFIX_MAX: usize =
    MAGIC.len() + 1 + RESET_PREFIX.len() + METHOD_MAX + 1 + TIME_MAX_DIGITS + 1 + NONCE_DIGITS;

/// The longest acceptable payload, with its newline. Longer ones are
/// [`Drop::Malformed`] before they are looked at.
pub const MAX_PAYLOAD: usize = PREFIX_MAX + 1 + MAC_DIGITS + 1;

/// The longest signed text, `ERST1 <command> <time> <nonce> <address> <port>`.
pub const SIGNED_MAX: usize = PREFIX_MAX + 1 + ADDR_MAX + 1 + 5;

/// A payload that parsed. Its MAC, time and destination are still to be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The method asked for; `None` for plain `reset` (the configured order).
    pub method: Option<Method>,
    /// The sender's Unix time, in milliseconds.
    pub time_ms: u64,
    /// The MAC the packet carries.
    pub mac: [u8; 32],
    /// `ERST1 <command> <time> <nonce>`, from the payload.
    prefix: &'a [u8],
}

impl<'a> Packet<'a> {
    /// `ERST1 <command> <time> <nonce>` as received: how the signed text starts.
    pub fn prefix(&self) -> &'a [u8] {
        self.prefix
    }
}

/// Parses a `<time>` field.
fn parse_time(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > TIME_MAX_DIGITS {
        return None;
    }
    if field.len() > 1 && field.first() == Some(&b'0') {
        return None;
    }
    let mut value: u64 = 0;
    for &c in field {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(value)
}

/// The value of lower-case hex digit `c`.
fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Parses a `<command>` field.
fn parse_command(field: &[u8]) -> Option<Option<Method>> {
    if field == RESET {
        return Some(None);
    }
    let name = field.strip_prefix(RESET_PREFIX)?;
    Method::from_name(name).map(Some)
}

/// Parses a payload. Anything but the exact format is [`Drop::Malformed`].
pub fn parse(payload: &[u8]) -> Result<Packet<'_>, Drop> {
    if payload.len() > MAX_PAYLOAD {
        return Err(Drop::Malformed);
    }
    let line = payload.strip_suffix(b"\n").unwrap_or(payload);
    let mut fields = line.split(|&b| b == b' ');
    let (Some(magic), Some(command), Some(time), Some(nonce), Some(mac), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Drop::Malformed);
    };
    if magic != MAGIC {
        return Err(Drop::Malformed);
    }
    let method = parse_command(command).ok_or(Drop::Malformed)?;
    let time_ms = parse_time(time).ok_or(Drop::Malformed)?;
    if nonce.len() != NONCE_DIGITS || !nonce.iter().all(|&c| lower_hex_digit(c).is_some()) {
        return Err(Drop::Malformed);
    }
    if mac.len() != MAC_DIGITS {
        return Err(Drop::Malformed);
    }
    let mut mac_bytes = [0u8; 32];
    for (b, pair) in mac_bytes.iter_mut().zip(mac.chunks_exact(2)) {
        let hi = pair.first().copied().and_then(lower_hex_digit);
        let lo = pair.get(1).copied().and_then(lower_hex_digit);
        match (hi, lo) {
            (Some(hi), Some(lo)) => *b = (hi << 4) | lo,
            _ => return Err(Drop::Malformed),
        }
    }
    // Everything before the space before the MAC.
    let prefix = line
        .len()
        .checked_sub(MAC_DIGITS + 1)
        .and_then(|n| line.get(..n))
        .ok_or(Drop::Malformed)?;
    Ok(Packet {
        method,
        time_ms,
        mac: mac_bytes,
        prefix,
    })
}

/// Writes into `buf` the text `p`'s MAC must cover when it arrived for
/// `dest`:`port`: `ERST1 <command> <time> <nonce> <address> <port>`.
pub fn signed_text<'b>(
    p: &Packet<'_>,
    dest: Addr,
    port: u16,
    buf: &'b mut [u8; SIGNED_MAX],
) -> &'b [u8] {
    let mut w = BufWriter::new(&mut buf[..]);
    let prefix = core::str::from_utf8(p.prefix).unwrap_or("");
    // Cannot fail: a parsed prefix is at most `PREFIX_MAX` bytes. If it did,
    // the text would be cut short and match no MAC.
    let _ = write!(w, "{prefix} {dest} {port}");
    let len = w.as_bytes().len();
    buf.get(..len).unwrap_or(&[])
}

/// Why a payload was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Not exactly the documented format.
    Malformed,
    /// Its time is further from the clock than `net_window`.
    Window,
    /// Its MAC is not the one the key gives (wrong key, address, port or text).
    BadMac,
    /// Its time is not later than the load of the module or the last
    /// accepted packet: a replay, or an old packet.
    Replay,
}

impl Drop {
    /// Every reason, by [`Drop::index`].
    pub const ALL: [Drop; 4] = [Drop::Malformed, Drop::Window, Drop::BadMac, Drop::Replay];

    /// The position of this reason in [`Drop::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The name in the status (`net_dropped.<name>`) and the log.
    pub const fn name(self) -> &'static str {
        match self {
            Drop::Malformed => "malformed",
            Drop::Window => "window",
            Drop::BadMac => "bad_mac",
            Drop::Replay => "replayed",
        }
    }
}

/// The counts of a [`Gate`]'s verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets accepted.
    pub accepted: u64,
    /// Packets dropped, by [`Drop::index`].
    pub dropped: [u64; 4],
}

/// Decides packets and counts the verdicts; lock-free, for any number of
/// CPUs at once.
pub struct Gate {
    loaded_ms: u64,
    window_s: u32,
    window_ms: u64,
    /// The time of the last accepted packet (0 before the first).
    last_accepted: AtomicU64,
    accepted: AtomicU64,
    dropped: [AtomicU64; 4],
}

impl Gate {
    /// A gate for a module loaded at Unix time `loaded_ms` accepting times
    /// within `window_s` seconds of the clock.
    pub const fn new(loaded_ms: u64, window_s: u32) -> Gate {
        Gate {
            loaded_ms,
            window_s,
            // Cannot overflow: u32::MAX * 1000 < u64::MAX.
            window_ms: window_s as u64 * 1000,
            last_accepted: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            dropped: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
        }
    }

    /// The Unix time of the load, in milliseconds: packets must be later.
    pub fn loaded_ms(&self) -> u64 {
        self.loaded_ms
    }

    /// The window, in seconds.
    pub fn window_s(&self) -> u32 {
        self.window_s
    }

    /// Decides one payload that arrived for `dest`:`port` at real time
    /// `now_ms` (Unix milliseconds); counts the verdict. `Ok(method)` means
    /// reset, with that method or (`None`) the configured order.
    ///
    /// `mac(text)` computes HMAC-SHA256 of the signed text with the key;
    /// `differ(a, b)` compares two MACs in constant time (true = different).
    /// Each is called at most once, `mac` only for a payload that parsed
    /// and is within the window.
    pub fn check(
        &self,
        payload: &[u8],
        dest: Addr,
        port: u16,
        now_ms: u64,
        mac: impl FnOnce(&[u8]) -> [u8; 32],
        differ: impl FnOnce(&[u8; 32], &[u8; 32]) -> bool,
    ) -> Result<Option<Method>, Drop> {
        let verdict = self.decide(payload, dest, port, now_ms, mac, differ);
        let counter = match verdict {
            Ok(_) => Some(&self.accepted),
            Err(why) => self.dropped.get(why.index()),
        };
        if let Some(c) = counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    fn decide(
        &self,
        payload: &[u8],
        dest: Addr,
        port: u16,
        now_ms: u64,
        mac: impl FnOnce(&[u8]) -> [u8; 32],
        differ: impl FnOnce(&[u8; 32], &[u8; 32]) -> bool,
    ) -> Result<Option<Method>, Drop> {
        let p = parse(payload)?;
        if now_ms.abs_diff(p.time_ms) > self.window_ms {
            return Err(Drop::Window);
        }
        let mut buf = [0u8; SIGNED_MAX];
        let expected = mac(signed_text(&p, dest, port, &mut buf));
        if differ(&expected, &p.mac) {
            return Err(Drop::BadMac);
        }
        if p.time_ms <= self.loaded_ms {
            return Err(Drop::Replay);
        }
        // Whoever raises `last_accepted` to this time wins; a copy of the
        // packet on another CPU finds it already there.
        let previous = self.last_accepted.fetch_max(p.time_ms, Ordering::AcqRel);
        if previous >= p.time_ms {
            return Err(Drop::Replay);
        }
        Ok(p.method)
    }

    /// The counts so far.
    pub fn counts(&self) -> Counts {
        let mut c = Counts {
            accepted: self.accepted.load(Ordering::Relaxed),
            dropped: [0; 4],
        };
        for (d, a) in c.dropped.iter_mut().zip(self.dropped.iter()) {
            *d = a.load(Ordering::Relaxed);
        }
        c
    }
}

/// The network trigger's part of the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetStatus {
    /// `net_port`.
    pub port: u16,
    /// `net_window`, in seconds.
    pub window_s: u32,
    /// [`Gate::loaded_ms`].
    pub loaded_ms: u64,
    /// [`Gate::counts`].
    pub counts: Counts,
}

/// Writes the network trigger's status lines, one `key: value` per line,
/// only `net_port: off` when `s` is `None` (no `net_port=`):
///
/// ```text
/// net_port: 5555
/// net_window: 30
/// net_armed_since_ms: 1764590000123
/// net_accepted: 0
/// net_dropped.malformed: 3
/// net_dropped.window: 1
/// net_dropped.bad_mac: 2
/// net_dropped.replayed: 1
/// ```
pub fn format_net_status(s: Option<&NetStatus>, out: &mut impl fmt::Write) -> fmt::Result {
    let Some(s) = s else {
        return out.write_str("net_port: off\n");
    };
    writeln!(out, "net_port: {}", s.port)?;
    writeln!(out, "net_window: {}", s.window_s)?;
    writeln!(out, "net_armed_since_ms: {}", s.loaded_ms)?;
    writeln!(out, "net_accepted: {}", s.counts.accepted)?;
    for (d, n) in Drop::ALL.iter().zip(s.counts.dropped.iter()) {
        writeln!(out, "net_dropped.{}: {n}", d.name())?;
    }
    Ok(())
}
