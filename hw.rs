// SPDX-License-Identifier: GPL-2.0

//! The one place where `rust_emergency_reset` touches hardware or C.
//!
//! Everything here is a small safe wrapper around one port access or one
//! foreign call, with the reason it is sound next to it. None of these
//! functions sleeps, allocates or takes a lock: they may run with interrupts
//! off, in an NMI, or on a machine whose other CPUs hold every lock.

use core::arch::asm;
use kernel::{
    bindings,
    time::{
        delay,
        Delta, //
    },
};

/// The 8042 keyboard controller's status (read) and command (write) port.
const I8042_STATUS_CMD: u16 = 0x64;
/// Status bit 1: the controller's input buffer is full; it will not take a command.
const I8042_STATUS_IBF: u8 = 1 << 1;
/// 8042 command: pulse the output port's bit 0, the CPU reset line.
const I8042_CMD_PULSE_RESET: u8 = 0xfe;

/// Reads a byte from an I/O port.
///
/// # Safety
///
/// `port` must be one whose read has no side effect the caller does not intend.
unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: `in` only reads the port; the caller vouches for the port's side effects. It
    // touches no memory and no flags.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a byte to an I/O port.
///
/// # Safety
///
/// Writing `value` to `port` must be what the caller intends, whatever the device does.
unsafe fn outb(port: u16, value: u8) {
    // SAFETY: `out` only writes the port; the caller vouches for the effect. It touches no
    // memory and no flags.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Busy-waits for `us` microseconds. Never sleeps.
pub(crate) fn udelay(us: i64) {
    delay::udelay(Delta::from_micros(us));
}

/// The 8042 status byte. 0xFF means no controller answers at port 0x64.
pub(crate) fn i8042_status() -> u8 {
    // SAFETY: reading the 8042 status register has no side effect.
    unsafe { inb(I8042_STATUS_CMD) }
}

/// Asks the 8042 to pulse the CPU reset line, after waiting at most
/// `wait_us` microseconds (in 2 µs steps) for its input buffer to empty.
/// Returns whether the buffer emptied in time; the command is sent either
/// way, as the kernel's own `kb_wait()` path does.
pub(crate) fn i8042_pulse_reset(wait_us: u32) -> bool {
    let mut ready = false;
    for _ in 0..wait_us.div_ceil(2) {
        if i8042_status() & I8042_STATUS_IBF == 0 {
            ready = true;
            break;
        }
        udelay(2);
    }
    // SAFETY: 0xFE to port 0x64 is the 8042's "pulse reset line" command: resetting the machine
    // is exactly what the caller asked for. On a machine without an 8042 the write goes nowhere.
    unsafe { outb(I8042_STATUS_CMD, I8042_CMD_PULSE_RESET) };
    ready
}

/// Whether the caller has `CAP_SYS_BOOT` in the initial user namespace.
pub(crate) fn capable_sys_boot() -> bool {
    // SAFETY: `capable()` may be called from any process context; it checks the current task's
    // credentials against `init_user_ns`.
    unsafe { bindings::capable(bindings::CAP_SYS_BOOT as i32) }
}

/// Monotonic nanoseconds, safe to read from any context (even NMI) without a lock.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: `ktime_get_mono_fast_ns()` is lock-free and NMI-safe by design.
    unsafe { bindings::ktime_get_mono_fast_ns() }
}

/// The current process's pid (its thread group id).
///
/// Read through the kernel's own accessor, not from `task_struct` fields:
/// bindgen's layout of `task_struct` does not match C's in this kernel.
pub(crate) fn current_pid() -> i32 {
    kernel::current!().tgid_nr_ns(None)
}

/// Local interrupts off until dropped, then back to what they were.
pub(crate) struct IrqsOff(u64);

impl IrqsOff {
    pub(crate) fn new() -> IrqsOff {
        let flags: u64;
        // SAFETY: saves RFLAGS and clears IF on this CPU. No memory is touched besides the
        // stack slot `pushfq` uses; the saved flags are restored by `drop`.
        unsafe { asm!("pushfq", "pop {0}", "cli", out(reg) flags, options(nomem)) };
        IrqsOff(flags)
    }
}

impl Drop for IrqsOff {
    fn drop(&mut self) {
        // SAFETY: restores the RFLAGS saved by `new` on this CPU (interrupts stay off in
        // between, so this is the same CPU), re-enabling interrupts only if they were on.
        unsafe { asm!("push {0}", "popfq", in(reg) self.0, options(nomem)) };
    }
}

/// This CPU holds the kernel's panic CPU slot until dropped.
///
/// While it does, printk writes to nbcon consoles (the 8250 in linux 7.3) synchronously
/// from this CPU, as during a panic, instead of handing lines to the printer thread
/// that a reset would never let run. It never waits: if another CPU is already
/// panicking, nothing is claimed and the log line stays best effort.
pub(crate) struct PanicCpuClaim(bool);

impl PanicCpuClaim {
    /// Claims the panic CPU slot for this CPU. Call with interrupts off, so that the
    /// task cannot move to another CPU while it holds the slot.
    pub(crate) fn new(_irqs_off: &IrqsOff) -> PanicCpuClaim {
        // SAFETY: `panic_try_start()` is one atomic compare-and-exchange of `panic_cpu`.
        PanicCpuClaim(unsafe { bindings::panic_try_start() })
    }
}

impl Drop for PanicCpuClaim {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: this CPU claimed the slot in `new`; giving it back is one atomic store.
            unsafe { bindings::panic_reset() };
        }
    }
}
