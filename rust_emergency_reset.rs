// SPDX-License-Identifier: GPL-2.0

//! Emergency reset for a wedged x86 machine.
//!
//! ```sh
//! modprobe rust_emergency_reset [methods=kbd,acpi,cf9,triple] [sysrq_key=x] [nmi=1] [on_oops=N]
//! echo reset > /dev/emergency_reset        # reset now, methods in order
//! echo 'reset cf9' > /dev/emergency_reset  # reset with one method only
//! cat /dev/emergency_reset                 # status: order, methods, counters
//! echo x > /proc/sysrq-trigger             # the same reset, by sysrq (also Alt+SysRq+x)
//! ```
//!
//! With `nmi=1`, an NMI that nobody else claims (a BMC's or hypervisor's
//! "inject NMI") resets the machine: the one trigger that reaches a machine
//! whose every CPU spins with interrupts off. With `on_oops=N`, an oops resets
//! the machine N seconds later (0: at once).
//!
//! The machine is reset at once, without syncing or unmounting anything. The
//! reset path never goes through `reboot(2)`, `kernel_restart()` or
//! `emergency_restart()`, takes no lock, sleeps or allocates: it still works
//! when a dead task holds `system_transition_mutex` and `reboot -f` hangs.
//!
//! Methods, tried in the order of `methods=` (each resolved at load; one that
//! is unavailable on this machine is skipped):
//!
//! - `kbd`: 0xFE to the 8042 keyboard controller's port 0x64 (reset line pulse);
//! - `acpi`: the FADT reset register (I/O, memory mapped at load, or bus-0 PCI
//!   config through raw 0xCF8/0xCFC accesses);
//! - `cf9`: the chipset's reset-control register at port 0xCF9;
//! - `triple`: an empty IDT and `int3`; never returns.
//!
//! A writer needs `CAP_SYS_BOOT` in the initial user namespace (`-EPERM`).
//! Anything but a documented command is refused with `-EINVAL`. When the write
//! returns at all, no method reset the machine: `-EIO`.
//!
//! See `Documentation/admin-guide/emergency-reset.rst`.

use core::{
    fmt,
    sync::atomic::{
        AtomicBool,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
    str::BStr,
    sync::SetOnce,
};

mod ffi;
mod hw;
mod last_words;
#[path = "logic/src/logic.rs"]
pub mod logic;
#[path = "logic/src/record.rs"]
pub mod record;

use logic::{
    acpi_target,
    format_status,
    parse_command,
    parse_methods,
    parse_on_oops,
    parse_sysrq_key,
    AcpiTarget,
    Availability,
    BadOnOops,
    BadSysrqKey,
    BufWriter,
    Command,
    Method,
    MethodList,
    MethodsError,
    RateLimit,
    ResetRegister,
    Status,
    Unavailable,
    MAX_COMMAND_LEN, //
    SETTLE_US,
};
use record::{
    format_last_words,
    LastWords, //
};

module! {
    type: EmergencyReset,
    name: "rust_emergency_reset",
    authors: ["rust_emergency_reset developers"],
    description: "Reset a wedged x86 machine without reboot(2) or its locks",
    license: "GPL",
    params: {
        nmi: bool {
            default: false,
            description: "Reset on an NMI no other handler claims (unknown, SERR, IOCHK; default off)",
        },
        on_oops: i32 {
            default: -1,
            description: "Reset this many seconds after an oops (0: at once; default -1: off)",
        },
        mem_address: u64 {
            default: 0,
            description: "Last words: physical address of a region reserved with memmap=SIZE$ADDRESS",
        },
        mem_size: u64 {
            default: 0,
            description: "Last words: size in bytes of the region at mem_address",
        },
    },
}

ffi::string_param!(
    METHODS,
    "methods",
    64,
    "kbd,acpi,cf9,triple",
    "Reset methods in the order to try them, comma-separated (default kbd,acpi,cf9,triple)"
);
ffi::string_param!(
    SYSRQ_KEY,
    "sysrq_key",
    8,
    "x",
    "Sysrq key that resets (0-9, a-z, A-Z; default x; empty: no sysrq key)"
);

/// At most 10 lines about refused writes every 5 s.
static REFUSALS_LOG: RateLimit = RateLimit::new(5_000_000_000, 10);
/// Resets attempted since load.
static TRIGGERS: AtomicU64 = AtomicU64::new(0);
/// Writes refused since load.
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// A reset is being attempted: a second trigger (another CPU's NMI, a second
/// writer) does not start another one meanwhile.
static RESETTING: AtomicBool = AtomicBool::new(false);
/// When the first oops was seen (`ffi::now_ns()`), 0 before; for `on_oops=N > 0`.
static OOPS_AT: AtomicU64 = AtomicU64::new(0);

/// How the ACPI method writes its value, resolved at load.
#[derive(Clone, Copy)]
enum AcpiWrite {
    Io(u16),
    Memory(ffi::MmioByte),
    PciConfig { address: u32, data_port: u16 },
}

/// Everything the reset path needs, resolved at load and never changed.
#[derive(Clone, Copy)]
struct Engine {
    order: MethodList,
    availability: [Availability; Method::ALL.len()],
    acpi: Option<(AcpiWrite, u8)>,
    reset_register: Option<ResetRegister>,
    sysrq_key: Option<u8>,
    nmi: bool,
    on_oops: Option<u32>,
    last_words: Option<last_words::Region>,
}

/// Set once by `init`, before the device and the sysrq key are registered.
static ENGINE: SetOnce<Engine> = SetOnce::new();

/// What asked for the reset; named in the last log line.
#[derive(Clone, Copy)]
enum Trigger {
    Device,
    Sysrq(u8),
    Nmi,
    Oops,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trigger::Device => f.write_str("/dev/emergency_reset"),
            Trigger::Sysrq(k) => write!(f, "sysrq-{}", k as char),
            Trigger::Nmi => f.write_str("nmi"),
            Trigger::Oops => f.write_str("oops"),
        }
    }
}

impl kernel::fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The kernel's formatting macros take `kernel::fmt::Display`; the shared
/// logic implements `core::fmt::Display`.
impl kernel::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Tries one method, then gives it [`SETTLE_US`] to act. Returns only if the
/// machine is still running.
fn attempt(engine: &Engine, method: Method) {
    match method {
        Method::Kbd => hw::i8042_reset(),
        Method::Acpi => match engine.acpi {
            Some((AcpiWrite::Io(port), value)) => hw::acpi_io_reset(port, value),
            Some((AcpiWrite::Memory(byte), value)) => byte.write(value),
            Some((AcpiWrite::PciConfig { address, data_port }, value)) => {
                hw::pci_config_reset(address, data_port, value)
            }
            // Not reached: `acpi` is `None` exactly when the method is unavailable.
            None => return,
        },
        Method::Cf9 => hw::cf9_reset(),
        Method::Triple => hw::triple_fault(),
    }
    hw::udelay(SETTLE_US);
}

/// Prints an emergency line from the reset path: synchronously, while this
/// CPU holds the panic slot ([`ffi::PanicCpuClaim`]), and only for as long as
/// that takes, so that a `panic()` on another CPU during a method's settle
/// time goes ahead. Needs interrupts off (an [`hw::IrqsOff`] in scope).
macro_rules! say {
    ($irqs_off:expr, $($arg:tt)*) => {{
        let _claim = ffi::PanicCpuClaim::new($irqs_off);
        pr_emerg!($($arg)*);
    }};
}

/// Resets the machine with `only`, or with every configured method in order.
///
/// Returns `EIO` if the machine is still running afterwards, `EBUSY` if
/// another reset is being attempted at the same time. Runs with local
/// interrupts off; never sleeps, allocates or takes a lock. Each log line is
/// best effort: printed synchronously (see [`say`]), never waiting for a
/// console another CPU holds. With a last-words region, the record is saved
/// right after the first "resetting now" line, before the first method is
/// tried.
fn emergency_reset(trigger: Trigger, only: Option<Method>) -> Result {
    let Some(engine) = ENGINE.as_ref() else {
        return Err(EIO);
    };
    if RESETTING.swap(true, Ordering::Acquire) {
        return Err(EBUSY);
    }
    TRIGGERS.fetch_add(1, Ordering::Relaxed);
    let pid = ffi::current_pid();
    let caller = matches!(trigger, Trigger::Device).then(last_words::current_caller);
    let irqs_off = hw::IrqsOff::new();
    let order = match only {
        Some(ref m) => core::slice::from_ref(m),
        None => engine.order.as_slice(),
    };
    let mut saved = false;
    for &method in order {
        match engine.availability[method.index()] {
            Ok(()) => {
                say!(
                    &irqs_off,
                    "resetting now: trigger {}, method {}, caller pid {}\n",
                    trigger,
                    method.name(),
                    pid
                );
                if let (Some(region), false) = (engine.last_words, saved) {
                    region.save(&trigger, order, caller);
                    saved = true;
                }
                attempt(engine, method);
            }
            Err(why) => say!(&irqs_off, "skipping method {}: {}\n", method.name(), why),
        }
    }
    say!(&irqs_off, "reset failed: the machine is still running\n");
    if let Some(region) = engine.last_words {
        if !saved {
            region.save(&trigger, order, caller);
        }
        region.mark_failed();
    }
    RESETTING.store(false, Ordering::Release);
    drop(irqs_off);
    Err(EIO)
}

/// The last-words region, for `/dev/emergency_reset_log` (see [`last_words`]).
fn last_words_region() -> Option<last_words::Region> {
    ENGINE.as_ref().and_then(|e| e.last_words)
}

/// The sysrq key's action (called from [`ffi`]'s handler, in any context).
fn sysrq_reset(key: u8) {
    let _ = emergency_reset(Trigger::Sysrq(key), None);
}

/// The NMI handler's action (called from [`ffi`], in NMI context, only for
/// NMIs no other handler claimed). Returns whether the NMI was ours: with
/// `nmi=1` every such NMI is; it triggers a reset unless one is under way.
fn nmi_reset() -> bool {
    if !ENGINE.as_ref().is_some_and(|e| e.nmi) {
        return false;
    }
    let _ = emergency_reset(Trigger::Nmi, None);
    true
}

/// The die notifier's action on an oops (called from [`ffi`], in the
/// oopsing context, before the oops' backtrace is printed).
fn oops_happened() {
    match ENGINE.as_ref().and_then(|e| e.on_oops) {
        Some(0) => {
            let _ = emergency_reset(Trigger::Oops, None);
        }
        Some(_) => {
            // The first oops starts the clock; `oops_watch_tick()` resets when it runs out.
            let _ = OOPS_AT.compare_exchange(
                0,
                ffi::now_ns().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        None => {}
    }
}

/// The panic notifier's action (on the panicking CPU; the other CPUs are
/// stopped, so the watcher thread will never run again): a panic that
/// follows an oops (`panic_on_oops=1`, or an oops in interrupt context)
/// resets `on_oops` seconds after the oops, as the watcher would have. A
/// panic without an oops is left to the kernel's `panic=`.
fn oops_panicked() {
    let Some(secs) = ENGINE.as_ref().and_then(|e| e.on_oops) else {
        return;
    };
    let at = OOPS_AT.load(Ordering::Relaxed);
    if at == 0 {
        return;
    }
    let deadline = at.saturating_add(u64::from(secs) * 1_000_000_000);
    while ffi::now_ns() < deadline {
        hw::udelay(1000);
    }
    let _ = emergency_reset(Trigger::Oops, None);
}

/// Called every 100 ms by the oops watcher thread (only with `on_oops=N > 0`).
fn oops_watch_tick() {
    let (Some(engine), at) = (ENGINE.as_ref(), OOPS_AT.load(Ordering::Relaxed)) else {
        return;
    };
    let Some(secs) = engine.on_oops else {
        return;
    };
    if at != 0 && ffi::now_ns().saturating_sub(at) >= u64::from(secs) * 1_000_000_000 {
        // One try per oops: a failed reset is logged, and the machine keeps running.
        OOPS_AT.store(0, Ordering::Relaxed);
        let _ = emergency_reset(Trigger::Oops, None);
    }
}

/// Counts a refused write and logs why, at most [`REFUSALS_LOG`]'s rate.
fn refuse(err: Error, why: &str) -> Error {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    if REFUSALS_LOG.allow(ffi::now_ns()) {
        pr_warn!("refused a write from pid {}: {}\n", ffi::current_pid(), why);
    }
    err
}

/// What the engine writes through, unmapped when the module goes (after
/// every trigger and device node).
struct Mappings {
    _acpi: Option<ffi::IoMapping>,
    _last_words: Option<last_words::Mapping>,
}

/// Parses the parameters and probes the machine. Returns the mappings the
/// engine's ACPI method and last words write through, if they need them.
fn setup() -> Result<Mappings> {
    let order = parse_methods(METHODS.value()).map_err(|e| {
        let value = BStr::from_bytes(METHODS.value());
        match e {
            MethodsError::Empty => pr_err!("methods=: no method given\n"),
            MethodsError::Unknown { start, end } => pr_err!(
                "methods=\"{}\": unknown method \"{}\" (known: kbd, acpi, cf9, triple)\n",
                value,
                BStr::from_bytes(&METHODS.value()[start..end])
            ),
            MethodsError::Repeated(m) => {
                pr_err!("methods=\"{}\": {} named twice\n", value, m.name())
            }
        }
        EINVAL
    })?;
    let on_oops = parse_on_oops(module_parameters::on_oops.value()).map_err(|BadOnOops| {
        pr_err!(
            "on_oops={}: must be -1 (off), 0 (at once) or seconds\n",
            module_parameters::on_oops.value()
        );
        EINVAL
    })?;
    let sysrq_key = parse_sysrq_key(SYSRQ_KEY.value()).map_err(|BadSysrqKey| {
        pr_err!(
            "sysrq_key=\"{}\": not one of 0-9, a-z, A-Z (empty disables)\n",
            BStr::from_bytes(SYSRQ_KEY.value())
        );
        EINVAL
    })?;

    let mut availability: [Availability; Method::ALL.len()] = [Ok(()); Method::ALL.len()];
    if hw::i8042_status() == 0xff {
        availability[Method::Kbd.index()] = Err(Unavailable::NoI8042);
    }
    if hw::cf9_read() == 0xff {
        availability[Method::Cf9.index()] = Err(Unavailable::NoCf9);
    } else if !ffi::pci_config_ports_claimed() {
        availability[Method::Cf9.index()] = Err(Unavailable::NoPciConf);
    }
    let (revision, flags, reg) = ffi::fadt();
    let target = acpi_target(revision, flags, &reg);
    let mut mapping = None;
    let acpi = match target {
        Ok(AcpiTarget::Io(port)) => Ok(AcpiWrite::Io(port)),
        Ok(AcpiTarget::PciConfig { address, data_port }) => {
            Ok(AcpiWrite::PciConfig { address, data_port })
        }
        Ok(AcpiTarget::Memory(phys)) => match ffi::IoMapping::map(phys) {
            Some(m) => {
                let byte = m.byte();
                mapping = Some(m);
                Ok(AcpiWrite::Memory(byte))
            }
            None => Err(Unavailable::MapFailed),
        },
        Err(why) => Err(why),
    };
    availability[Method::Acpi.index()] = acpi.map(|_| ());
    let words = last_words::setup(
        module_parameters::mem_address.value(),
        module_parameters::mem_size.value(),
    )?;
    let engine = Engine {
        order,
        availability,
        acpi: acpi.ok().map(|w| (w, reg.value)),
        reset_register: target.is_ok().then_some(reg),
        sysrq_key,
        nmi: module_parameters::nmi.value(),
        on_oops,
        last_words: words.as_ref().map(|w| w.region()),
    };
    if !ENGINE.populate(engine) {
        return Err(EBUSY);
    }
    for m in Method::ALL {
        match engine.availability[m.index()] {
            Ok(()) => pr_info!("method {}: available\n", m.name()),
            Err(why) => pr_info!("method {}: unavailable: {}\n", m.name(), why),
        }
    }
    Ok(Mappings {
        _acpi: mapping,
        _last_words: words,
    })
}

/// Registers the sysrq key, if one is configured.
fn register_sysrq() -> Result<Option<ffi::SysrqKey>> {
    let Some(key) = ENGINE.as_ref().and_then(|e| e.sysrq_key) else {
        return Ok(None);
    };
    match ffi::SysrqKey::register(key) {
        Some(k) => Ok(Some(k)),
        None => {
            pr_err!(
                "sysrq key '{}' is taken: choose another with sysrq_key=, or none with sysrq_key=\n",
                key as char
            );
            Err(EBUSY)
        }
    }
}

/// Registers the NMI handlers with `nmi=1`.
fn register_nmi() -> Result<Option<ffi::NmiHandlers>> {
    if !ENGINE.as_ref().is_some_and(|e| e.nmi) {
        return Ok(None);
    }
    ffi::NmiHandlers::register().map(Some)
}

/// What `on_oops=N` registers: the die notifier, and for N > 0 the watcher
/// thread and the panic notifier (for an oops that becomes a panic).
type OnOops = (
    ffi::DieNotifier,
    Option<(ffi::OopsWatcher, ffi::PanicNotifier)>,
);

/// Registers what `on_oops=` needs.
fn register_on_oops() -> Result<Option<OnOops>> {
    let Some(secs) = ENGINE.as_ref().and_then(|e| e.on_oops) else {
        return Ok(None);
    };
    let delayed = if secs > 0 {
        Some((ffi::OopsWatcher::start()?, ffi::PanicNotifier::register()?))
    } else {
        None
    };
    Ok(Some((ffi::DieNotifier::register()?, delayed)))
}

/// Registers `/dev/emergency_reset_log` when there is a last-words region.
fn register_log() -> Result<Option<last_words::LogDevice>> {
    match last_words_region() {
        Some(_) => last_words::LogDevice::register().map(Some),
        None => Ok(None),
    }
}

/// The module. Fields drop in declaration order: every trigger and device
/// node goes before the mappings it may write or read through.
#[pin_data]
struct EmergencyReset {
    _sysrq: Option<ffi::SysrqKey>,
    _nmi: Option<ffi::NmiHandlers>,
    _on_oops: Option<OnOops>,
    #[pin]
    _dev: MiscDeviceRegistration<ResetDevice>,
    _log: Option<last_words::LogDevice>,
    _mappings: Mappings,
}

impl kernel::InPlaceModule for EmergencyReset {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _mappings: setup()?,
            _dev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"emergency_reset",
            }),
            _log: register_log()?,
            _sysrq: register_sysrq()?,
            _nmi: register_nmi()?,
            _on_oops: register_on_oops()?,
        })
    }
}

/// An open `/dev/emergency_reset`. It carries no state.
struct ResetDevice;

#[vtable]
impl MiscDevice for ResetDevice {
    type Ptr = ();

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        Ok(())
    }

    fn write_iter(_kiocb: Kiocb<'_, ()>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        if !ffi::capable_sys_boot() {
            return Err(refuse(
                EPERM,
                "no CAP_SYS_BOOT in the initial user namespace",
            ));
        }
        let len = iov.len();
        if len > MAX_COMMAND_LEN {
            return Err(refuse(EINVAL, "command too long"));
        }
        let mut buf = [0u8; MAX_COMMAND_LEN];
        if iov.copy_from_iter(&mut buf[..len]) != len {
            return Err(EFAULT);
        }
        match parse_command(&buf[..len]) {
            Ok(Command::Reset(only)) => emergency_reset(Trigger::Device, only).map(|()| len),
            Ok(Command::Forget) => match last_words_region() {
                Some(region) => region.forget().map(|()| len),
                None => Err(refuse(
                    ENXIO,
                    "forget: no last-words region (mem_name=, mem_address=)",
                )),
            },
            Err(e) => Err(refuse(EINVAL, e.as_str())),
        }
    }

    fn read_iter(mut kiocb: Kiocb<'_, ()>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let engine = ENGINE.as_ref().ok_or(EIO)?;
        let status = Status {
            order: engine.order.as_slice(),
            availability: engine.availability,
            reset_register: engine.reset_register,
            sysrq_key: engine.sysrq_key,
            nmi: engine.nmi,
            on_oops: engine.on_oops,
            triggers: TRIGGERS.load(Ordering::Relaxed),
            refused: REFUSED.load(Ordering::Relaxed),
        };
        let words = match engine.last_words {
            Some(region) => region.status(),
            None => LastWords::Off,
        };
        let mut buf = [0u8; 1024];
        let mut out = BufWriter::new(&mut buf);
        format_status(&status, &mut out).map_err(|_| EOVERFLOW)?;
        format_last_words(&words, &mut out).map_err(|_| EOVERFLOW)?;
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), out.as_bytes())
    }
}
