// SPDX-License-Identifier: GPL-2.0

//! What `rust_emergency_reset` decides without touching the kernel: the
//! commands it accepts, the names of its reset methods, and the rate limit
//! of its log lines.
//!
//! This file is `core`-only and allocation-free. It is built into the module
//! and into the host crate `logic/` (`cargo test`).

use core::sync::atomic::{
    AtomicU32,
    AtomicU64,
    Ordering, //
};

/// A way to reset the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Pulse the reset line through the 8042 keyboard controller: 0xFE to port 0x64.
    Kbd,
}

impl Method {
    /// Every method, in the default order.
    pub const ALL: [Method; 1] = [Method::Kbd];

    /// The name used in commands, parameters and the status.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Kbd => "kbd",
        }
    }

    /// The method called `name`, if any. Names are exact and lower case.
    pub fn from_name(name: &[u8]) -> Option<Method> {
        Method::ALL
            .iter()
            .copied()
            .find(|m| m.name().as_bytes() == name)
    }
}

/// The longest write the device accepts, in bytes. Longer writes are refused
/// before their content is read.
pub const MAX_COMMAND_LEN: usize = 32;

/// A command written to `/dev/emergency_reset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `reset`: every configured method in order. `reset <method>`: that one only.
    Reset(Option<Method>),
}

/// Why a write is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// Longer than [`MAX_COMMAND_LEN`].
    TooLong,
    /// Not a known command word, or malformed.
    Unknown,
    /// `reset <name>` with a name that is no method.
    UnknownMethod,
}

impl CommandError {
    /// A short description for the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommandError::TooLong => "command too long",
            CommandError::Unknown => "unknown command",
            CommandError::UnknownMethod => "unknown method",
        }
    }
}

/// Parses one write to the device.
///
/// Accepted, exactly: `reset` and `reset <method>`, each optionally followed
/// by one `\n` (what `echo` appends). Everything else is an error: no other
/// white space, no case folding, no prefixes.
pub fn parse_command(input: &[u8]) -> Result<Command, CommandError> {
    if input.len() > MAX_COMMAND_LEN {
        return Err(CommandError::TooLong);
    }
    let line = input.strip_suffix(b"\n").unwrap_or(input);
    let (word, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if word != b"reset" {
        return Err(CommandError::Unknown);
    }
    match arg {
        None => Ok(Command::Reset(None)),
        Some(name) => match Method::from_name(name) {
            Some(m) => Ok(Command::Reset(Some(m))),
            None => Err(CommandError::UnknownMethod),
        },
    }
}

/// A lock-free rate limit for log lines: at most `burst` lines in each
/// `interval_ns`, the window starting at the first line after the previous
/// window ended. Safe to call from any context, including NMI.
pub struct RateLimit {
    window_start: AtomicU64,
    used: AtomicU32,
    interval_ns: u64,
    burst: u32,
}

impl RateLimit {
    /// A limit of `burst` lines per `interval_ns`.
    pub const fn new(interval_ns: u64, burst: u32) -> Self {
        RateLimit {
            window_start: AtomicU64::new(0),
            used: AtomicU32::new(0),
            interval_ns,
            burst,
        }
    }

    /// Whether a line may be logged at monotonic time `now_ns`.
    pub fn allow(&self, now_ns: u64) -> bool {
        let start = self.window_start.load(Ordering::Relaxed);
        if self.used.load(Ordering::Relaxed) == 0 || now_ns.wrapping_sub(start) >= self.interval_ns
        {
            // A new window. Only the caller that moves the start resets the count.
            if self
                .window_start
                .compare_exchange(start, now_ns, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.used.store(0, Ordering::Relaxed);
            }
        }
        self.used.fetch_add(1, Ordering::Relaxed) < self.burst
    }
}
