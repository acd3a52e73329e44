// SPDX-License-Identifier: GPL-2.0

//! Emergency reset for a wedged x86 machine.
//!
//! ```sh
//! modprobe rust_emergency_reset [methods=kbd,acpi,cf9,triple] [sysrq_key=x] [nmi=1] [on_oops=N] \
//!     [net_port=PORT net_key=HEX [net_window=SECONDS]]
//! echo reset > /dev/emergency_reset        # reset now, methods in order
//! echo 'reset cf9' > /dev/emergency_reset  # reset with one method only
//! cat /dev/emergency_reset                 # status: order, methods, counters
//! echo x > /proc/sysrq-trigger             # the same reset, by sysrq (also Alt+SysRq+x)
//! ```
//!
//! With `nmi=1`, an NMI that nobody else claims (a BMC's or hypervisor's
//! "inject NMI") resets the machine: the one trigger that reaches a machine
//! whose every CPU spins with interrupts off. With `on_oops=N`, an oops resets
//! the machine N seconds later (0: at once), unless a loaded crash kernel
//! (kdump) takes it. With `net_port=`, one UDP
//! datagram authenticated with `net_key=` resets the machine whose userspace
//! is dead but whose network still answers.
//!
//! The machine is reset at once, without syncing or unmounting anything. The
//! reset path never goes through `reboot(2)`, `kernel_restart()` or
//! `emergency_restart()`, takes no lock, sleeps or allocates: it still works
//! when a dead task holds `system_transition_mutex` and `reboot -f` hangs.
//!
//! Methods, tried in the order of `methods=` (each resolved at load; one that
//! is unavailable on this machine is skipped):
//!
//! - `kbd`: 0xFE to the 8042 keyboard controller's port 0x64 (reset line
//!   pulse), 10 times, as the kernel's own `BOOT_KBD`;
//! - `acpi`: the FADT reset register (I/O, memory mapped at load, or bus-0 PCI
//!   config through raw 0xCF8/0xCFC accesses);
//! - `cf9`: the chipset's reset-control register at port 0xCF9, where the
//!   kernel found PCI configuration ports (its `port_cf9_safe`);
//! - `triple`: an empty IDT and `int3`; never returns.
//!
//! This file is the reset engine: the parameters it needs, the probe of the
//! machine at load, and `emergency_reset()`, which every trigger calls. Each
//! trigger lives in a file of its own with its registration, its C
//! declarations and its action: `device.rs` (`/dev/emergency_reset`),
//! `sysrq.rs`, `nmi.rs`, `oops.rs`, `net.rs`; the record of each reset in
//! `last_words.rs`; port and CPU access in `hw.rs`; what they share in
//! `ffi.rs`; the logic that needs no kernel in `logic/` (tested on the host).
//!
//! See `Documentation/admin-guide/emergency-reset.rst`.

use core::{
    fmt,
    sync::atomic::{
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    miscdevice::MiscDeviceRegistration,
    prelude::*,
    str::BStr,
    sync::SetOnce, //
};

mod device;
mod ffi;
mod hw;
#[path = "logic/src/ip.rs"]
pub mod ip;
mod last_words;
#[path = "logic/src/logic.rs"]
pub mod logic;
mod net;
mod nmi;
mod oops;
#[path = "logic/src/packet.rs"]
pub mod packet;
#[path = "logic/src/record.rs"]
pub mod record;
mod sysrq;

use logic::{
    acpi_target,
    parse_methods,
    parse_on_oops,
    AcpiTarget,
    Availability,
    BadOnOops,
    Method,
    MethodList,
    MethodsError,
    ResetRegister,
    Unavailable,
    SETTLE_US, //
};

module! {
    type: EmergencyReset,
    name: "rust_emergency_reset",
    authors: ["rust_emergency_reset developers"],
    description: "Reset a wedged x86 machine without reboot(2) or its locks",
    license: "GPL",
    params: {
        on_oops: i32 {
            default: -1,
            description: "Reset this many seconds after an oops (0: at once; default -1: off); kdump first",
        },
        mem_address: u64 {
            default: 0,
            description: "Last words: physical address of a region reserved with memmap=SIZE$ADDRESS",
        },
        mem_size: u64 {
            default: 0,
            description: "Last words: size in bytes of the region at mem_address",
        },
        net_port: i32 {
            default: 0,
            description: "Network trigger: UDP port of the authenticated reset datagram (default 0: off)",
        },
        net_window: i32 {
            default: 30,
            description: "Network trigger: seconds a datagram's time may differ from this machine's clock",
        },
    },
}

ffi::bool_param!(
    NMI,
    "nmi",
    false,
    "Reset on an NMI no other handler claims (unknown, SERR, IOCHK; default off)"
);

ffi::string_param!(
    METHODS,
    "methods",
    64,
    "kbd,acpi,cf9,triple",
    "Reset methods in the order to try them, comma-separated (default kbd,acpi,cf9,triple)"
);

/// Resets attempted since load.
pub(crate) static TRIGGERS: AtomicU64 = AtomicU64::new(0);
/// When the reset attempt under way started ([`ffi::now_ns`]), 0 when none
/// is: a second trigger (another CPU's NMI, a second writer) does not start
/// another one meanwhile, unless the first stalled (see [`claim`]).
static ATTEMPT_SINCE: AtomicU64 = AtomicU64::new(0);
/// Attempts taken over from one that stalled ([`logic::takes_over`]).
pub(crate) static TAKEOVERS: AtomicU64 = AtomicU64::new(0);

/// How the ACPI method writes its value, resolved at load.
#[derive(Clone, Copy)]
enum AcpiWrite {
    Io(u16),
    Memory(hw::MmioByte),
    PciConfig { address: u32, data_port: u16 },
}

/// Everything the reset path needs, resolved at load and never changed.
#[derive(Clone, Copy)]
pub(crate) struct Engine {
    pub(crate) order: MethodList,
    pub(crate) availability: [Availability; Method::ALL.len()],
    acpi: Option<(AcpiWrite, u8)>,
    pub(crate) reset_register: Option<ResetRegister>,
    pub(crate) sysrq_key: Option<u8>,
    pub(crate) nmi: bool,
    pub(crate) on_oops: Option<u32>,
    pub(crate) last_words: Option<last_words::Region>,
}

/// Set once by `init`, before any trigger is registered.
pub(crate) static ENGINE: SetOnce<Engine> = SetOnce::new();

/// What asked for the reset; named in the log line and the last words.
#[derive(Clone, Copy)]
pub(crate) enum Trigger {
    Device,
    Sysrq(u8),
    Nmi,
    Oops,
    /// An authenticated datagram, from this address.
    Net(packet::Addr),
}

impl Trigger {
    /// The triggers of a machine where nothing else may run again: an NMI,
    /// and an oops (die notifier, panic notifier, or its watch after it).
    /// They take over from an attempt that stalled; the others get `EBUSY`.
    fn may_take_over(&self) -> bool {
        matches!(self, Trigger::Nmi | Trigger::Oops)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Trigger::Device => f.write_str("/dev/emergency_reset"),
            Trigger::Sysrq(k) => write!(f, "sysrq-{}", k as char),
            Trigger::Nmi => f.write_str("nmi"),
            Trigger::Oops => f.write_str("oops"),
            Trigger::Net(from) => write!(f, "udp from {from}"),
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
#[cfg(not(rer_bench_quiet))]
macro_rules! say {
    ($irqs_off:expr, $($arg:tt)*) => {{
        let _claim = ffi::PanicCpuClaim::new($irqs_off);
        pr_emerg!($($arg)*);
    }};
}

/// `make bench`'s build without the lines (Kbuild's `RER_BENCH_QUIET=1`),
/// which measures what printing them costs: the same path and the same
/// claim, nothing printed. Never built for a user.
#[cfg(rer_bench_quiet)]
macro_rules! say {
    ($irqs_off:expr, $($arg:tt)*) => {{
        let _claim = ffi::PanicCpuClaim::new($irqs_off);
        let _ = format_args!($($arg)*);
    }};
}

/// Takes the attempt for this CPU at `now`: `Ok(None)` when none was under
/// way, `Ok(Some(ns))` when `trigger` took over from one under way for `ns`
/// (longer than [`logic::EIO_BOUND_US`]: its CPU stopped), `EBUSY` otherwise.
fn claim(trigger: &Trigger, now: u64) -> Result<Option<u64>> {
    let mut seen = ATTEMPT_SINCE.load(Ordering::Acquire);
    loop {
        let took_over = match seen {
            0 => None,
            since if trigger.may_take_over() && logic::takes_over(since, now) => Some(now - since),
            _ => return Err(EBUSY),
        };
        match ATTEMPT_SINCE.compare_exchange(seen, now, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => return Ok(took_over),
            Err(actual) => seen = actual,
        }
    }
}

/// Resets the machine with `only`, or with every configured method in order.
///
/// Returns `EIO` if the machine is still running afterwards, `EBUSY` if
/// another reset is being attempted at the same time. An NMI or oops
/// trigger takes over from an attempt under way for longer than the bound
/// for `EIO` ([`claim`]), and says so. Runs with local
/// interrupts off; never sleeps, allocates or takes a lock. Each log line is
/// best effort: printed synchronously (see [`say`]), never waiting for a
/// console another CPU holds. With a last-words region, the record is saved
/// right after the first "resetting now" line, before the first method is
/// tried.
pub(crate) fn emergency_reset(trigger: Trigger, only: Option<Method>) -> Result {
    let Some(engine) = ENGINE.as_ref() else {
        return Err(EIO);
    };
    // Interrupts go off before the attempt is taken, and stay off until it is
    // given back: nothing can preempt this CPU while it holds the attempt (a
    // writer preempted there by a real-time hog and never run again would hold
    // it for good), and a CPU that still stops inside it (an SMI storm, a
    // method's write that never completes) is taken over from by `claim`.
    let irqs_off = hw::IrqsOff::new();
    // Never 0, which means "none under way".
    let now = ffi::now_ns().max(1);
    let took_over = claim(&trigger, now)?;
    TRIGGERS.fetch_add(1, Ordering::Relaxed);
    if let Some(ns) = took_over {
        TAKEOVERS.fetch_add(1, Ordering::Relaxed);
        say!(
            &irqs_off,
            "{}: taking over from an attempt stalled for {} ms\n",
            trigger,
            ns / 1_000_000
        );
    }
    let pid = ffi::current_pid();
    let caller = matches!(trigger, Trigger::Device).then(last_words::current_caller);
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
    // Given back only if still ours: a trigger that took over owns it now.
    let _ = ATTEMPT_SINCE.compare_exchange(now, 0, Ordering::Release, Ordering::Relaxed);
    drop(irqs_off);
    Err(EIO)
}

/// The last-words region, for `/dev/emergency_reset_log` (see [`last_words`]).
pub(crate) fn last_words_region() -> Option<last_words::Region> {
    ENGINE.as_ref().and_then(|e| e.last_words)
}

/// What the engine writes through, unmapped when the module goes (after
/// every trigger and device node).
struct Mappings {
    _acpi: Option<hw::IoMapping>,
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
    let on_oops_param: i32 = ffi::param(module_parameters::on_oops.value());
    let on_oops = parse_on_oops(on_oops_param).map_err(|BadOnOops| {
        pr_err!(
            "on_oops={}: must be -1 (off), 0 (at once) or seconds\n",
            on_oops_param
        );
        EINVAL
    })?;
    let sysrq_key = sysrq::key_param()?;

    let mut availability: [Availability; Method::ALL.len()] = [Ok(()); Method::ALL.len()];
    if hw::i8042_status() == 0xff {
        availability[Method::Kbd.index()] = Err(Unavailable::NoI8042);
    }
    if hw::cf9_read() == 0xff {
        availability[Method::Cf9.index()] = Err(Unavailable::NoCf9);
    } else if !hw::pci_config_ports_claimed() {
        availability[Method::Cf9.index()] = Err(Unavailable::NoPciConf);
    }
    let (revision, flags, reg) = hw::fadt();
    let target = acpi_target(revision, flags, &reg);
    let mut mapping = None;
    let acpi = match target {
        Ok(AcpiTarget::Io(port)) => Ok(AcpiWrite::Io(port)),
        Ok(AcpiTarget::PciConfig { address, data_port }) => {
            Ok(AcpiWrite::PciConfig { address, data_port })
        }
        Ok(AcpiTarget::Memory(phys)) => match hw::IoMapping::map(phys) {
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
        ffi::param(module_parameters::mem_address.value()),
        ffi::param(module_parameters::mem_size.value()),
    )?;
    let engine = Engine {
        order,
        availability,
        acpi: acpi.ok().map(|w| (w, reg.value)),
        reset_register: target.is_ok().then_some(reg),
        sysrq_key,
        nmi: NMI.value(),
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
    _net: Option<net::NetHooks>,
    _sysrq: Option<sysrq::SysrqKey>,
    _nmi: Option<nmi::NmiHandlers>,
    _on_oops: Option<oops::OnOops>,
    #[pin]
    _dev: MiscDeviceRegistration<device::ResetDevice>,
    _log: Option<last_words::LogDevice>,
    _mappings: Mappings,
}

impl kernel::InPlaceModule for EmergencyReset {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            _mappings: setup()?,
            _dev <- MiscDeviceRegistration::register(device::options()),
            _log: register_log()?,
            _sysrq: sysrq::register(ENGINE.as_ref().and_then(|e| e.sysrq_key))?,
            _nmi: nmi::register(ENGINE.as_ref().is_some_and(|e| e.nmi))?,
            _on_oops: oops::register(ENGINE.as_ref().and_then(|e| e.on_oops))?,
            _net: net::register(
                ffi::param(module_parameters::net_port.value()),
                ffi::param(module_parameters::net_window.value())
            )?,
        })
    }
}
