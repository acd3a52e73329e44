// SPDX-License-Identifier: GPL-2.0

//! What `rust_emergency_reset` decides without touching the kernel: the
//! commands it accepts, the names of its reset methods, and the rate limit
//! of its log lines.
//!
//! This file is `core`-only and allocation-free. It is built into the module
//! and into the host crate `logic/` (`cargo test`).

use core::fmt;
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
    /// Write the ACPI FADT reset register's value to it.
    Acpi,
    /// The chipset's reset-control register at port 0xCF9.
    Cf9,
    /// Interrupts off, an empty IDT, `int3`: the CPU triple-faults and resets.
    Triple,
}

impl Method {
    /// Every method, in the default order.
    pub const ALL: [Method; 4] = [Method::Kbd, Method::Acpi, Method::Cf9, Method::Triple];

    /// The name used in commands, parameters and the status.
    pub const fn name(self) -> &'static str {
        match self {
            Method::Kbd => "kbd",
            Method::Acpi => "acpi",
            Method::Cf9 => "cf9",
            Method::Triple => "triple",
        }
    }

    /// The position of this method in [`Method::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The method called `name`, if any. Names are exact and lower case.
    pub fn from_name(name: &[u8]) -> Option<Method> {
        Method::ALL
            .iter()
            .copied()
            .find(|m| m.name().as_bytes() == name)
    }
}

/// An order of methods: each at most once, at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MethodList {
    methods: [Method; Method::ALL.len()],
    len: usize,
}

impl MethodList {
    /// The default order: `kbd,acpi,cf9,triple`.
    pub const DEFAULT: MethodList = MethodList {
        methods: Method::ALL,
        len: Method::ALL.len(),
    };

    /// The methods, in order.
    pub fn as_slice(&self) -> &[Method] {
        &self.methods[..self.len]
    }

    /// A list of the first [`Method::ALL`]`.len()` of `methods`, which the
    /// caller has checked to be distinct.
    pub fn from_slice(methods: &[Method]) -> MethodList {
        let mut list = MethodList {
            methods: Method::ALL,
            len: methods.len().min(Method::ALL.len()),
        };
        list.methods[..list.len].copy_from_slice(&methods[..list.len]);
        list
    }
}

/// Why a `methods=` value was refused. Offsets are into the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodsError {
    /// No method at all.
    Empty,
    /// `value[start..end]` names no method (it may be empty: `kbd,,cf9`).
    Unknown {
        /// Start of the bad name.
        start: usize,
        /// End of the bad name.
        end: usize,
    },
    /// A method named twice.
    Repeated(Method),
}

/// Parses a `methods=` value: method names separated by single commas, each
/// at most once, e.g. `acpi,kbd`. No spaces, no trailing comma.
pub fn parse_methods(value: &[u8]) -> Result<MethodList, MethodsError> {
    if value.is_empty() {
        return Err(MethodsError::Empty);
    }
    let mut list = MethodList {
        methods: Method::ALL,
        len: 0,
    };
    let mut start = 0;
    for name in value.split(|&b| b == b',') {
        let end = start + name.len();
        let m = Method::from_name(name).ok_or(MethodsError::Unknown { start, end })?;
        if list.as_slice().contains(&m) {
            return Err(MethodsError::Repeated(m));
        }
        list.methods[list.len] = m;
        list.len += 1;
        start = end + 1;
    }
    Ok(list)
}

/// A `sysrq_key=` value that is neither empty nor one of `0-9a-zA-Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadSysrqKey;

/// An `on_oops=` value below -1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadOnOops;

/// Interprets `on_oops=`: -1 is off, 0 resets at once from the oops, N > 0
/// resets N seconds after it.
pub fn parse_on_oops(value: i32) -> Result<Option<u32>, BadOnOops> {
    match value {
        -1 => Ok(None),
        v => u32::try_from(v).map(Some).map_err(|_| BadOnOops),
    }
}

/// Parses a `sysrq_key=` value: empty (no sysrq key) or one of `0-9a-zA-Z`.
pub fn parse_sysrq_key(value: &[u8]) -> Result<Option<u8>, BadSysrqKey> {
    match value {
        [] => Ok(None),
        [k] if k.is_ascii_alphanumeric() => Ok(Some(*k)),
        _ => Err(BadSysrqKey),
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
    /// `forget`: erase the last words kept from the previous reset.
    Forget,
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
/// Accepted, exactly: `reset`, `reset <method>` and `forget`, each optionally
/// followed by one `\n` (what `echo` appends). Everything else is an error: no other
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
    match (word, arg) {
        (b"reset", _) => {}
        (b"forget", None) => return Ok(Command::Forget),
        _ => return Err(CommandError::Unknown),
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

/// Why a method cannot be used on this machine, found at module load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// Port 0x64 reads 0xFF: no 8042 answers.
    NoI8042,
    /// ACPI is off or the machine has no FADT.
    NoFadt,
    /// The FADT is older than revision 2, which introduced the reset register.
    FadtRevision(u8),
    /// The FADT does not set `ACPI_FADT_RESET_REGISTER`.
    NoResetFlag,
    /// The reset register's address is 0.
    ZeroAddress,
    /// The reset register lives in an address space we do not write (its id).
    AddressSpace(u8),
    /// A PCI-config reset register beyond offset 0xFF, out of reach of type-1 accesses.
    PciOffset(u16),
    /// `ioremap()` of the memory reset register failed.
    MapFailed,
    /// Port 0xCF9 reads 0xFF: no reset-control register.
    NoCf9,
    /// The kernel found no PCI configuration mechanism at ports 0xCF8-0xCFF
    /// at boot (what its own `port_cf9_safe` records): 0xCF9 may then be
    /// another device's port.
    NoPciConf,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Unavailable::NoI8042 => f.write_str("no 8042: port 0x64 reads 0xff"),
            Unavailable::NoFadt => f.write_str("no ACPI FADT"),
            Unavailable::FadtRevision(r) => write!(f, "FADT revision {r} has no reset register"),
            Unavailable::NoResetFlag => f.write_str("FADT does not flag a reset register"),
            Unavailable::ZeroAddress => f.write_str("FADT reset register address is 0"),
            Unavailable::AddressSpace(id) => {
                write!(f, "FADT reset register in unsupported address space {id}")
            }
            Unavailable::PciOffset(o) => {
                write!(f, "FADT reset register at PCI config offset {o:#x} > 0xff")
            }
            Unavailable::MapFailed => f.write_str("cannot map the FADT reset register"),
            Unavailable::NoCf9 => f.write_str("no reset-control register: port 0xcf9 reads 0xff"),
            Unavailable::NoPciConf => f.write_str(
                "no PCI configuration ports claimed at 0xcf8: 0xcf9 may be another device",
            ),
        }
    }
}

/// ACPI generic address space ids (ACPI 6.5, table 5.25).
pub const ACPI_SPACE_MEMORY: u8 = 0;
/// System I/O space.
pub const ACPI_SPACE_IO: u8 = 1;
/// PCI configuration space (segment 0, bus 0).
pub const ACPI_SPACE_PCI_CONFIG: u8 = 2;
/// `ACPI_FADT_RESET_REGISTER`: the FADT's reset register is valid.
pub const ACPI_FADT_RESET_REGISTER: u32 = 1 << 10;

/// The FADT's reset register, as the firmware describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// Generic address space id.
    pub space: u8,
    /// Address within that space.
    pub address: u64,
    /// The value to write.
    pub value: u8,
}

impl fmt::Display for ResetRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.space {
            ACPI_SPACE_MEMORY => f.write_str("memory")?,
            ACPI_SPACE_IO => f.write_str("io")?,
            ACPI_SPACE_PCI_CONFIG => f.write_str("pci_config")?,
            other => write!(f, "space{other}")?,
        }
        write!(f, " {:#x} value {:#04x}", self.address, self.value)
    }
}

/// Where the ACPI method writes the reset value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiTarget {
    /// An I/O port.
    Io(u16),
    /// A physical memory address (mapped at load).
    Memory(u64),
    /// Bus 0 PCI config space through ports 0xCF8/0xCFC: the CF8 value and the data port.
    PciConfig {
        /// The value for the address port 0xCF8.
        address: u32,
        /// 0xCFC plus the byte's offset within the dword.
        data_port: u16,
    },
}

/// Applies the rules of `drivers/acpi/reboot.c` to the FADT's fields: the
/// register counts only from FADT revision 2 on and with the
/// `ACPI_FADT_RESET_REGISTER` flag set. `revision` 0 means there is no FADT.
pub fn acpi_target(
    revision: u8,
    flags: u32,
    reg: &ResetRegister,
) -> Result<AcpiTarget, Unavailable> {
    if revision == 0 {
        return Err(Unavailable::NoFadt);
    }
    if revision < 2 {
        return Err(Unavailable::FadtRevision(revision));
    }
    if flags & ACPI_FADT_RESET_REGISTER == 0 {
        return Err(Unavailable::NoResetFlag);
    }
    if reg.address == 0 {
        return Err(Unavailable::ZeroAddress);
    }
    match reg.space {
        ACPI_SPACE_IO => match u16::try_from(reg.address) {
            Ok(port) => Ok(AcpiTarget::Io(port)),
            Err(_) => Err(Unavailable::AddressSpace(ACPI_SPACE_IO)),
        },
        ACPI_SPACE_MEMORY => Ok(AcpiTarget::Memory(reg.address)),
        ACPI_SPACE_PCI_CONFIG => {
            // ACPI: device in bits 47:32, function in 31:16, offset in 15:0.
            let device = ((reg.address >> 32) & 0x1f) as u32;
            let function = ((reg.address >> 16) & 0x7) as u32;
            let offset = (reg.address & 0xffff) as u16;
            if offset > 0xff {
                return Err(Unavailable::PciOffset(offset));
            }
            Ok(AcpiTarget::PciConfig {
                address: 0x8000_0000 | (device << 11) | (function << 8) | u32::from(offset & 0xfc),
                data_port: 0xcfc + (offset & 3),
            })
        }
        other => Err(Unavailable::AddressSpace(other)),
    }
}

/// Whether a method can be used, and if not, why.
pub type Availability = Result<(), Unavailable>;

/// Everything `read()` on the device reports.
#[derive(Clone, Copy, Debug)]
pub struct Status<'a> {
    /// The configured order.
    pub order: &'a [Method],
    /// For each method of [`Method::ALL`], by [`Method::index`].
    pub availability: [Availability; Method::ALL.len()],
    /// The FADT's reset register, if the FADT has a valid one.
    pub reset_register: Option<ResetRegister>,
    /// The sysrq key, if one is registered.
    pub sysrq_key: Option<u8>,
    /// Whether unknown and external NMIs reset the machine (`nmi=`).
    pub nmi: bool,
    /// Seconds from an oops to the reset, if `on_oops=` is set.
    pub on_oops: Option<u32>,
    /// Whether a crash kernel is loaded: an oops it takes is left to kdump.
    pub crash_kernel: bool,
    /// Resets attempted (each one that returned failed).
    pub triggers: u64,
    /// Writes refused (bad command or missing capability).
    pub refused: u64,
    /// Attempts taken over from one stalled past [`EIO_BOUND_US`].
    pub takeovers: u64,
}

/// Writes the status, one `key: value` per line:
///
/// ```text
/// order: kbd,acpi,cf9,triple
/// method.kbd: available
/// method.acpi: unavailable: FADT revision 1 has no reset register
/// method.cf9: available
/// method.triple: available
/// acpi_reset_register: io 0xcf9 value 0x06
/// sysrq_key: x
/// nmi: off
/// on_oops: off
/// triggers: 0
/// refused: 2
/// takeovers: 0
/// ```
///
/// `acpi_reset_register` and `sysrq_key` say `none` when there is none;
/// `on_oops` is `off` or the delay in seconds, followed by `, deferred to
/// kdump` while a crash kernel is loaded (`on_oops: 0, deferred to kdump`). Keys
/// are never renamed or removed; new keys may be added.
pub fn format_status(s: &Status<'_>, out: &mut impl fmt::Write) -> fmt::Result {
    out.write_str("order: ")?;
    for (i, m) in s.order.iter().enumerate() {
        if i > 0 {
            out.write_str(",")?;
        }
        out.write_str(m.name())?;
    }
    out.write_str("\n")?;
    for m in Method::ALL {
        match s.availability[m.index()] {
            Ok(()) => writeln!(out, "method.{}: available", m.name())?,
            Err(why) => writeln!(out, "method.{}: unavailable: {why}", m.name())?,
        }
    }
    match s.reset_register {
        Some(r) => writeln!(out, "acpi_reset_register: {r}")?,
        None => out.write_str("acpi_reset_register: none\n")?,
    }
    match s.sysrq_key {
        Some(k) => writeln!(out, "sysrq_key: {}", k as char)?,
        None => out.write_str("sysrq_key: none\n")?,
    }
    writeln!(out, "nmi: {}", if s.nmi { "on" } else { "off" })?;
    match s.on_oops {
        Some(secs) if s.crash_kernel => writeln!(out, "on_oops: {secs}, deferred to kdump")?,
        Some(secs) => writeln!(out, "on_oops: {secs}")?,
        None => out.write_str("on_oops: off\n")?,
    }
    writeln!(out, "triggers: {}", s.triggers)?;
    writeln!(out, "refused: {}", s.refused)?;
    writeln!(out, "takeovers: {}", s.takeovers)
}

/// A `fmt::Write` into a fixed buffer; fails rather than truncating.
pub struct BufWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> BufWriter<'a> {
    /// An empty writer over `buf`.
    pub fn new(buf: &'a mut [u8]) -> Self {
        BufWriter { buf, len: 0 }
    }

    /// What was written.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for BufWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Port access and delays for the reset sequences below, so that their logic
/// runs on the host against a model of the hardware.
pub trait ResetPorts {
    /// Reads a byte from `port`.
    fn inb(&mut self, port: u16) -> u8;
    /// Writes `value` to `port`.
    fn outb(&mut self, port: u16, value: u8);
    /// Busy-waits `us` microseconds.
    fn udelay(&mut self, us: u32);
}

/// The 8042's status (read) and command (write) port.
pub const I8042_STATUS_CMD: u16 = 0x64;
/// Status bit 1: the input buffer is full; the controller takes no command.
pub const I8042_STATUS_IBF: u8 = 1 << 1;
/// 8042 command: pulse the output port's bit 0, the CPU reset line.
pub const I8042_CMD_PULSE_RESET: u8 = 0xfe;
/// Pulses sent, as the kernel's `BOOT_KBD`: controllers (and their emulation
/// in server firmware) miss single ones.
pub const I8042_TRIES: u32 = 10;
/// Longest wait for the input buffer to empty before each pulse, in µs, in
/// 2 µs polls. The kernel's `kb_wait()` polls up to 0x10000 times (about
/// 131 ms); a controller that has not taken a command in 5 ms is not
/// waited for longer, so that all methods fail within a bound (see
/// [`WORST_CASE_US`]). The pulse is sent either way, as the kernel does.
pub const I8042_WAIT_US: u32 = 5_000;

/// The 8042 reset as `native_machine_emergency_restart()`'s `BOOT_KBD`:
/// [`I8042_TRIES`] times, wait for the input buffer to empty (at most
/// [`I8042_WAIT_US`]), 50 µs, the pulse command, 50 µs. Returns only if the
/// machine is still running: at most 10 × (5 ms + 100 µs) = 51 ms.
pub fn i8042_reset(p: &mut impl ResetPorts) {
    for _ in 0..I8042_TRIES {
        let mut waited = 0;
        while waited < I8042_WAIT_US && p.inb(I8042_STATUS_CMD) & I8042_STATUS_IBF != 0 {
            p.udelay(2);
            waited += 2;
        }
        p.udelay(50);
        p.outb(I8042_STATUS_CMD, I8042_CMD_PULSE_RESET);
        p.udelay(50);
    }
}

/// The chipset's reset-control register (Intel PIIX/ICH "RST_CNT").
pub const RST_CNT: u16 = 0xcf9;
/// RST_CNT bit 1: system reset.
pub const RST_CNT_SYS_RST: u8 = 1 << 1;
/// RST_CNT bits 1-3: full (cold) reset, the kernel's value for a cold reboot.
pub const RST_CNT_COLD_RESET: u8 = 0x0e;

/// The reset through 0xCF9 as the kernel's `BOOT_CF9_SAFE` for a cold
/// reboot: keep the register's other bits, request a hard reset, 50 µs, the
/// full reset, 50 µs. Returns only if the machine is still running.
pub fn cf9_reset(p: &mut impl ResetPorts) {
    let cf9 = p.inb(RST_CNT) & !RST_CNT_COLD_RESET;
    p.outb(RST_CNT, cf9 | RST_CNT_SYS_RST);
    p.udelay(50);
    p.outb(RST_CNT, cf9 | RST_CNT_COLD_RESET);
    p.udelay(50);
}

/// Time a method gets to take effect before the next one is tried, in µs.
pub const SETTLE_US: u32 = 50_000;

/// The longest a reset attempt takes when every method of the default order
/// is present and none resets (`triple` never returns): the 8042 sequence
/// with its waits, the ACPI write, the 0xCF9 sequence, each followed by
/// [`SETTLE_US`]. About 201 ms; the documented bound for EIO is 250 ms.
pub const WORST_CASE_US: u32 = I8042_TRIES * (I8042_WAIT_US + 100) + 100 + 3 * SETTLE_US;

/// The documented bound for `EIO`: an attempt that has not reset the machine
/// within it has failed, or its CPU stopped making progress.
pub const EIO_BOUND_US: u32 = 250_000;
const _: () = assert!(
    WORST_CASE_US <= EIO_BOUND_US,
    "the documented bound for EIO is 250 ms"
);

/// Whether a trigger that may take over (NMI, die, panic) takes over from the
/// attempt under way since `since_ns` (0: none is), at `now_ns` (both
/// `ktime_get_mono_fast_ns()`): only from one under way longer than
/// [`EIO_BOUND_US`], whose CPU was stopped (preempted for good, held in an
/// SMI, wedged in a method's write) rather than still trying.
pub fn takes_over(since_ns: u64, now_ns: u64) -> bool {
    since_ns != 0 && now_ns.saturating_sub(since_ns) > u64::from(EIO_BOUND_US) * 1000
}
