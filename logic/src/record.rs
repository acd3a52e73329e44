// SPDX-License-Identifier: GPL-2.0

//! Last words: the record `rust_emergency_reset` leaves in reserved RAM at a
//! reset, and reads back after the reboot.
//!
//! A region is a header of [`HEADER_LEN`] bytes followed by the tail of the
//! kernel log. Every field is little-endian:
//!
//! ```text
//! offset size
//!      0    8  magic "RERLAST\0"
//!      8    4  format version (1)
//!     12    4  header length (160)
//!     16    8  checksum: FNV-1a 64 of bytes 24..160 and then of the log
//!     24    4  flags: bit 0, the attempt failed (the machine kept running)
//!     28    4  log length in bytes
//!     32   16  random id of the boot that wrote the record
//!     48    8  wall-clock time of the reset, ns since the Unix epoch
//!     56    8  method order: Method::index() + 1 each, 0 after the last
//!     64    4  caller's pid (-1: no caller)
//!     68    4  caller's uid in the initial user namespace
//!     72   16  caller's command name, NUL-padded
//!     88   64  trigger, NUL-padded text ("/dev/emergency_reset", "sysrq-x", ...)
//!    152    8  zero
//!    160       the log: the newest whole lines that fit, oldest first
//! ```
//!
//! The checksum is for telling a record from what RAM holds after a cold
//! boot or another user of the region; it is no protection against anyone
//! who can write the region.
//!
//! This file is `core`-only and allocation-free, like `logic.rs`.

use core::fmt;

use super::logic::{
    Method,
    MethodList, //
};

/// The first eight bytes of a record.
pub const MAGIC: [u8; 8] = *b"RERLAST\0";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the log.
pub const HEADER_LEN: usize = 160;
/// The smallest region accepted: the header and at least 3936 bytes of log.
pub const MIN_REGION: usize = 4096;
/// The most of a region used; the rest of a larger one is left alone.
pub const MAX_REGION: usize = 1 << 20;
/// Bytes of the trigger text.
pub const TRIGGER_LEN: usize = 64;
/// Bytes of a command name (`TASK_COMM_LEN`).
pub const COMM_LEN: usize = 16;
/// Flag: the reset was attempted and the machine kept running.
pub const FLAG_FAILED: u32 = 1;

const CHECKSUM_AT: usize = 16;
/// The checksum covers the header from here on, then the log.
const CHECKED_FROM: usize = 24;

/// Who asked for the reset, when a process did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Its pid (thread group id).
    pub pid: i32,
    /// Its uid in the initial user namespace.
    pub uid: u32,
    /// Its command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// A record's header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The attempt returned: no method reset the machine.
    pub failed: bool,
    /// Bytes of log after the header.
    pub log_len: u32,
    /// The random id of the boot that wrote it.
    pub boot_id: [u8; 16],
    /// Wall-clock time of the reset, ns since the Unix epoch.
    pub time_ns: u64,
    /// The methods in the order they were to be tried.
    pub order: MethodList,
    /// Who asked, if a process did.
    pub caller: Option<Caller>,
    /// What asked, as text, NUL-padded.
    pub trigger: [u8; TRIGGER_LEN],
}

/// Why a region holds no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// No magic: nothing was ever written, or the record was forgotten.
    NoMagic,
    /// The magic, but a version this code does not know.
    UnknownVersion(u32),
    /// A length or a field that no writer of this version produces.
    Malformed,
    /// The checksum does not match the content.
    BadChecksum,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RecordError::NoMagic => f.write_str("no record"),
            RecordError::UnknownVersion(v) => write!(f, "a record of unknown format {v}"),
            RecordError::Malformed => f.write_str("a malformed record"),
            RecordError::BadChecksum => f.write_str("a record with a bad checksum"),
        }
    }
}

/// FNV-1a, 64 bits, over bytes given in pieces.
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Checksum {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The checksum of nothing.
    pub const fn new() -> Checksum {
        Checksum(Self::OFFSET)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(Self::PRIME);
        }
    }

    /// The value so far.
    pub const fn value(&self) -> u64 {
        self.0
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

/// The header's bytes, checksum field zero (see [`seal`]).
pub fn encode(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    let flags = if h.failed { FLAG_FAILED } else { 0 };
    b[24..28].copy_from_slice(&flags.to_le_bytes());
    b[28..32].copy_from_slice(&h.log_len.to_le_bytes());
    b[32..48].copy_from_slice(&h.boot_id);
    b[48..56].copy_from_slice(&h.time_ns.to_le_bytes());
    for (i, m) in h.order.as_slice().iter().enumerate() {
        b[56 + i] = m.index() as u8 + 1;
    }
    let (pid, uid, comm) = match h.caller {
        Some(c) => (c.pid, c.uid, c.comm),
        None => (-1, 0, [0; COMM_LEN]),
    };
    b[64..68].copy_from_slice(&pid.to_le_bytes());
    b[68..72].copy_from_slice(&uid.to_le_bytes());
    b[72..88].copy_from_slice(&comm);
    b[88..152].copy_from_slice(&h.trigger);
    b
}

/// The checksum of a header's checked part, to be continued over the log.
pub fn header_checksum(b: &[u8; HEADER_LEN]) -> Checksum {
    let mut c = Checksum::new();
    c.update(&b[CHECKED_FROM..]);
    c
}

/// Stores the checksum of `b` and `log` into `b`.
pub fn seal(b: &mut [u8; HEADER_LEN], log: &[u8]) {
    let mut c = header_checksum(b);
    c.update(log);
    b[CHECKSUM_AT..CHECKED_FROM].copy_from_slice(&c.value().to_le_bytes());
}

/// The checksum a header says its record has.
pub fn stored_checksum(b: &[u8; HEADER_LEN]) -> u64 {
    u64_at(b, CHECKSUM_AT)
}

/// Decodes a header found at the start of a region of `region_len` bytes
/// (the part used: at most [`MAX_REGION`]). The checksum is checked apart,
/// since the log may be read in pieces: see [`check`].
pub fn decode(b: &[u8; HEADER_LEN], region_len: usize) -> Result<Header, RecordError> {
    if b[0..8] != MAGIC {
        return Err(RecordError::NoMagic);
    }
    let version = u32_at(b, 8);
    if version != VERSION {
        return Err(RecordError::UnknownVersion(version));
    }
    let log_len = u32_at(b, 28);
    let flags = u32_at(b, 24);
    if u32_at(b, 12) as usize != HEADER_LEN
        || log_len as usize > region_len.saturating_sub(HEADER_LEN)
        || flags & !FLAG_FAILED != 0
        || b[152..160] != [0; 8]
    {
        return Err(RecordError::Malformed);
    }
    // The order: distinct methods, then zeros.
    let mut order = [Method::Kbd; Method::ALL.len()];
    let mut n = 0;
    for &code in &b[56..64] {
        match code {
            0 => break,
            c if usize::from(c) <= Method::ALL.len() && n < order.len() => {
                let m = Method::ALL[usize::from(c) - 1];
                if order[..n].contains(&m) {
                    return Err(RecordError::Malformed);
                }
                order[n] = m;
                n += 1;
            }
            _ => return Err(RecordError::Malformed),
        }
    }
    if n == 0 || b[56 + n..64].iter().any(|&c| c != 0) {
        return Err(RecordError::Malformed);
    }
    let pid = u32_at(b, 64) as i32;
    let mut comm = [0u8; COMM_LEN];
    comm.copy_from_slice(&b[72..88]);
    let caller = match pid {
        -1 => None,
        p if p > 0 => Some(Caller {
            pid: p,
            uid: u32_at(b, 68),
            comm,
        }),
        _ => return Err(RecordError::Malformed),
    };
    let mut trigger = [0u8; TRIGGER_LEN];
    trigger.copy_from_slice(&b[88..152]);
    if trigger[0] == 0 {
        return Err(RecordError::Malformed);
    }
    let mut boot_id = [0u8; 16];
    boot_id.copy_from_slice(&b[32..48]);
    Ok(Header {
        failed: flags & FLAG_FAILED != 0,
        log_len,
        boot_id,
        time_ns: u64_at(b, 48),
        order: MethodList::from_slice(&order[..n]),
        caller,
        trigger,
    })
}

/// Whether `sum` (a [`header_checksum`] continued over the whole log) is the
/// checksum the header stored.
pub fn check(b: &[u8; HEADER_LEN], sum: Checksum) -> Result<(), RecordError> {
    if sum.value() == stored_checksum(b) {
        Ok(())
    } else {
        Err(RecordError::BadChecksum)
    }
}

/// Reads the record of a region held in one slice (at most [`MAX_REGION`]
/// of it is looked at): the header, and the log it describes.
pub fn read(region: &[u8]) -> Result<(Header, &[u8]), RecordError> {
    let region = &region[..region.len().min(MAX_REGION)];
    let Some(b) = region.first_chunk::<HEADER_LEN>() else {
        return Err(RecordError::Malformed);
    };
    let h = decode(b, region.len())?;
    let log = &region[HEADER_LEN..HEADER_LEN + h.log_len as usize];
    let mut sum = header_checksum(b);
    sum.update(log);
    check(b, sum)?;
    Ok((h, log))
}

/// The bytes of `text` up to its first NUL.
pub fn until_nul(text: &[u8]) -> &[u8] {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    &text[..end]
}

/// `text` to its first NUL, with anything but printable ASCII as `?`.
struct Printable<'a>(&'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in until_nul(self.0) {
            let c = if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '?'
            };
            fmt::Write::write_char(f, c)?;
        }
        Ok(())
    }
}

/// A time in ns since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub struct UtcTime(pub u64);

impl fmt::Display for UtcTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// The proleptic Gregorian date `days` days after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A boot id as a UUID-like text, `8-4-4-4-12` lowercase hex digits.
pub struct BootId<'a>(pub &'a [u8; 16]);

impl fmt::Display for BootId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// What the status says about last words.
#[derive(Clone, Copy, Debug)]
pub enum LastWords {
    /// No region configured.
    Off,
    /// A region of `size` bytes at physical `address`; `previous` is the
    /// record it holds, if a valid one.
    On {
        /// Physical address.
        address: u64,
        /// Bytes used (at most [`MAX_REGION`]).
        size: usize,
        /// The record in the region.
        previous: Option<Header>,
        /// How long the last save of a record took, in ns, if one was
        /// saved since load (by a reset that then failed).
        last_save_ns: Option<u64>,
    },
}

/// Writes the status lines about last words:
///
/// ```text
/// last_words: 65536 bytes at 0x000000000fff0000
/// previous reset: 2026-11-24 05:55:30 UTC, trigger /dev/emergency_reset, methods kbd,acpi,cf9,triple, caller pid 93 uid 0 comm sh, boot 0f5c...-..., log 8123 bytes
/// ```
///
/// `last_words: off` and `previous reset: unknown (last words off)` without a
/// region; `previous reset: none` when the region holds no valid record;
/// `caller none` when no process asked (keyboard, NMI, oops); `, failed` at
/// the end when the attempt returned with the machine still running. After a
/// save in this boot (a reset that failed), one more line,
/// `last_words_save_us: N`, says how long writing the record took.
pub fn format_last_words(lw: &LastWords, out: &mut impl fmt::Write) -> fmt::Result {
    let previous = match *lw {
        LastWords::Off => {
            return out.write_str("last_words: off\nprevious reset: unknown (last words off)\n")
        }
        LastWords::On {
            address,
            size,
            previous,
            last_save_ns,
        } => {
            writeln!(out, "last_words: {size} bytes at {address:#018x}")?;
            if let Some(ns) = last_save_ns {
                writeln!(out, "last_words_save_us: {}", ns.div_ceil(1000))?;
            }
            previous
        }
    };
    let Some(h) = previous else {
        return out.write_str("previous reset: none\n");
    };
    write!(
        out,
        "previous reset: {}, trigger {}, methods ",
        UtcTime(h.time_ns),
        Printable(&h.trigger)
    )?;
    for (i, m) in h.order.as_slice().iter().enumerate() {
        if i > 0 {
            out.write_str(",")?;
        }
        out.write_str(m.name())?;
    }
    match h.caller {
        Some(c) => write!(
            out,
            ", caller pid {} uid {} comm {}",
            c.pid,
            c.uid,
            Printable(&c.comm)
        )?,
        None => out.write_str(", caller none")?,
    }
    write!(
        out,
        ", boot {}, log {} bytes",
        BootId(&h.boot_id),
        h.log_len
    )?;
    if h.failed {
        out.write_str(", failed")?;
    }
    out.write_str("\n")
}
