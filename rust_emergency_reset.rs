// SPDX-License-Identifier: GPL-2.0

//! Emergency reset for a wedged x86 machine.
//!
//! ```sh
//! echo reset > /dev/emergency_reset        # reset now
//! echo 'reset kbd' > /dev/emergency_reset  # reset with one named method only
//! ```
//!
//! The machine is reset at once, without syncing or unmounting anything, by
//! writing 0xFE to the 8042 keyboard controller's command port (0x64), which
//! pulses the CPU reset line. Nothing on that path goes through `reboot(2)`,
//! `kernel_restart()` or `emergency_restart()`, takes a lock, sleeps or
//! allocates: it still works when a dead task holds `system_transition_mutex`
//! and `reboot -f` hangs forever.
//!
//! The writer needs `CAP_SYS_BOOT` in the initial user namespace (`-EPERM`
//! otherwise). Anything but a documented command is refused with `-EINVAL`.
//! When the write returns at all, no method reset the machine: `-EIO`.
//!
//! See `Documentation/admin-guide/emergency-reset.rst`.

use kernel::{
    fs::Kiocb,
    iov::IovIterSource,
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*, //
};

mod hw;
#[path = "logic/src/logic.rs"]
pub mod logic;

use logic::{
    parse_command,
    Command,
    Method,
    RateLimit,
    MAX_COMMAND_LEN, //
};

module! {
    type: EmergencyReset,
    name: "rust_emergency_reset",
    authors: ["rust_emergency_reset developers"],
    description: "Reset a wedged x86 machine through the 8042, without reboot(2) or its locks",
    license: "GPL",
}

/// Longest wait for the 8042 to take a command, in microseconds.
const I8042_WAIT_US: u32 = 10_000;
/// Time a method gets to take effect before the next one is tried, in microseconds.
const SETTLE_US: i64 = 50_000;

/// At most 10 lines about refused writes every 5 s.
static REFUSALS_LOG: RateLimit = RateLimit::new(5_000_000_000, 10);

/// What asked for the reset; named in the last log line.
#[derive(Clone, Copy)]
enum Trigger {
    Device,
}

impl Trigger {
    const fn name(self) -> &'static str {
        match self {
            Trigger::Device => "/dev/emergency_reset",
        }
    }
}

/// Tries one method. Returns only if the machine is still running.
fn attempt(method: Method) {
    match method {
        Method::Kbd => {
            hw::i8042_pulse_reset(I8042_WAIT_US);
        }
    }
    // Give the reset line time to act before declaring failure.
    let mut left = SETTLE_US;
    while left > 0 {
        hw::udelay(left.min(1000));
        left -= 1000;
    }
}

/// Resets the machine with `only`, or with every method in order.
///
/// Returns `EIO` if the machine is still running afterwards. Runs with local
/// interrupts off; never sleeps, allocates or takes a lock. The log line is
/// best effort: printed synchronously while this CPU holds the panic slot
/// (see [`hw::PanicCpuClaim`]), never waiting for a console another CPU holds.
fn emergency_reset(trigger: Trigger, only: Option<Method>) -> Result {
    let pid = hw::current_pid();
    let irqs_off = hw::IrqsOff::new();
    let log_sync = hw::PanicCpuClaim::new(&irqs_off);
    let order: &[Method] = match only {
        Some(ref m) => core::slice::from_ref(m),
        None => &Method::ALL,
    };
    for &method in order {
        pr_emerg!(
            "resetting now: trigger {}, method {}, caller pid {}\n",
            trigger.name(),
            method.name(),
            pid
        );
        attempt(method);
    }
    pr_emerg!("reset failed: the machine is still running\n");
    drop(log_sync);
    drop(irqs_off);
    Err(EIO)
}

/// Logs why a write was refused, at most [`REFUSALS_LOG`]'s rate.
fn refuse(err: Error, why: &str) -> Error {
    if REFUSALS_LOG.allow(hw::now_ns()) {
        pr_warn!("refused a write from pid {}: {}\n", hw::current_pid(), why);
    }
    err
}

#[pin_data]
struct EmergencyReset {
    #[pin]
    _dev: MiscDeviceRegistration<ResetDevice>,
}

impl kernel::InPlaceModule for EmergencyReset {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        pr_info!(
            "/dev/emergency_reset ready (8042 status {:#04x})\n",
            hw::i8042_status()
        );
        try_pin_init!(Self {
            _dev <- MiscDeviceRegistration::register(MiscDeviceOptions {
                name: c"emergency_reset",
            }),
        })
    }
}

/// An open `/dev/emergency_reset`. It carries no state.
struct ResetDevice;

#[vtable]
impl MiscDevice for ResetDevice {
    type Ptr = ();

    fn open(_file: &kernel::fs::File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        Ok(())
    }

    fn write_iter(_kiocb: Kiocb<'_, ()>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        if !hw::capable_sys_boot() {
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
            Err(e) => Err(refuse(EINVAL, e.as_str())),
        }
    }
}
