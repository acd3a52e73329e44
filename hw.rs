// SPDX-License-Identifier: GPL-2.0

//! The one place where `rust_emergency_reset` touches hardware.
//!
//! Every function here is a small safe wrapper around a few port accesses or
//! CPU instructions, with the reason it is sound next to it. None of them
//! sleeps, allocates or takes a lock: they may run with interrupts off, in an
//! NMI, or on a machine whose other CPUs hold every lock. The facts follow
//! `arch/x86/kernel/reboot.c`.

use core::arch::asm;
use kernel::time::{
    delay,
    Delta, //
};

/// The 8042 keyboard controller's status (read) and command (write) port.
const I8042_STATUS_CMD: u16 = 0x64;
/// Status bit 1: the controller's input buffer is full; it will not take a command.
const I8042_STATUS_IBF: u8 = 1 << 1;
/// 8042 command: pulse the output port's bit 0, the CPU reset line.
const I8042_CMD_PULSE_RESET: u8 = 0xfe;

/// The chipset's reset-control register (Intel PIIX/ICH "RST_CNT").
const RST_CNT: u16 = 0xcf9;
/// RST_CNT bit 1: system reset (hard reset when set with bit 3).
const RST_CNT_SYS_RST: u8 = 1 << 1;
/// RST_CNT bits 1-3: full (cold) reset, the kernel's `reboot=pci` value for a cold boot.
const RST_CNT_COLD_RESET: u8 = 0x0e;

/// PCI configuration mechanism #1: address and data ports.
const PCI_CONFIG_ADDRESS: u16 = 0xcf8;

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

/// Writes a doubleword to an I/O port.
///
/// # Safety
///
/// As for [`outb`].
unsafe fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Busy-waits for `us` microseconds. Never sleeps.
pub(crate) fn udelay(us: u32) {
    let mut left = us;
    while left > 0 {
        let step = left.min(1000);
        delay::udelay(Delta::from_micros(i64::from(step)));
        left -= step;
    }
}

/// The 8042 status byte. 0xFF means no controller answers at port 0x64.
pub(crate) fn i8042_status() -> u8 {
    // SAFETY: reading the 8042 status register has no side effect.
    unsafe { inb(I8042_STATUS_CMD) }
}

/// Asks the 8042 to pulse the CPU reset line, after waiting at most
/// `wait_us` microseconds (in 2 µs steps) for its input buffer to empty.
/// The command is sent either way, as the kernel's own `kb_wait()` path does.
pub(crate) fn i8042_pulse_reset(wait_us: u32) {
    for _ in 0..wait_us.div_ceil(2) {
        if i8042_status() & I8042_STATUS_IBF == 0 {
            break;
        }
        udelay(2);
    }
    // SAFETY: 0xFE to port 0x64 is the 8042's "pulse reset line" command: resetting the machine
    // is exactly what the caller asked for.
    unsafe { outb(I8042_STATUS_CMD, I8042_CMD_PULSE_RESET) };
}

/// The reset-control register at 0xCF9. 0xFF means there is none.
pub(crate) fn cf9_read() -> u8 {
    // SAFETY: reading RST_CNT has no side effect; on a machine without it the read floats.
    unsafe { inb(RST_CNT) }
}

/// Requests a hard reset, then performs a cold one, through 0xCF9 (the
/// kernel's `BOOT_CF9` sequence, 50 µs apart).
pub(crate) fn cf9_reset() {
    let cf9 = cf9_read() & !RST_CNT_COLD_RESET;
    // SAFETY: these are the writes `reboot=pci` makes: first arm a hard reset, then trigger
    // a cold reset. Resetting the machine is what the caller asked for.
    unsafe { outb(RST_CNT, cf9 | RST_CNT_SYS_RST) };
    udelay(50);
    // SAFETY: as above.
    unsafe { outb(RST_CNT, cf9 | RST_CNT_COLD_RESET) };
    udelay(50);
}

/// Writes `value` to an I/O port named by the ACPI FADT's reset register.
pub(crate) fn acpi_io_reset(port: u16, value: u8) {
    // SAFETY: the firmware declares this port and value as the machine's reset register; the
    // caller asked for a reset.
    unsafe { outb(port, value) };
}

/// Writes `value` to a bus-0 PCI configuration register through ports
/// 0xCF8/0xCFC directly (not `raw_pci_write()`, which takes `pci_config_lock`).
/// Another CPU's half-done config access may be clobbered: the machine is
/// being reset.
pub(crate) fn pci_config_reset(address: u32, data_port: u16, value: u8) {
    // SAFETY: select the firmware's reset register with configuration mechanism #1, then write
    // its reset value through the data port: exactly the access the firmware describes.
    unsafe {
        outl(PCI_CONFIG_ADDRESS, address);
        outb(data_port, value);
    }
}

/// Loads an empty IDT and raises `int3`: the CPU cannot deliver the
/// exception, nor the double fault that follows, and shuts down (triple
/// fault), which resets a PC. Does not return.
pub(crate) fn triple_fault() -> ! {
    /// The operand of `lidt`: limit 0, base 0.
    #[repr(C, packed)]
    struct Idtr {
        limit: u16,
        base: u64,
    }
    let idtr = Idtr { limit: 0, base: 0 };
    // SAFETY: deliberately destroys this CPU's ability to take interrupts and exceptions: with
    // interrupts off and an empty IDT, `int3` escalates to a triple fault and a reset, as
    // `native_machine_emergency_restart()`'s BOOT_TRIPLE does. Nothing after it runs.
    unsafe {
        asm!(
            "cli",
            "lidt [{0}]",
            "int3",
            in(reg) &idtr,
            options(noreturn)
        )
    }
}

/// Local interrupts off until dropped, then back to what they were.
pub(crate) struct IrqsOff(u64);

impl IrqsOff {
    pub(crate) fn new() -> IrqsOff {
        let flags: u64;
        // SAFETY: saves RFLAGS and clears IF on this CPU. Only the stack slot `pushfq` uses is
        // touched; `drop` restores the saved flags.
        unsafe { asm!("pushfq", "pop {0}", "cli", out(reg) flags, options(nomem)) };
        IrqsOff(flags)
    }
}

impl Drop for IrqsOff {
    fn drop(&mut self) {
        // SAFETY: restores the RFLAGS saved by `new` on this CPU (interrupts stayed off in
        // between, so this is the same CPU), re-enabling interrupts only if they were on.
        unsafe { asm!("push {0}", "popfq", in(reg) self.0, options(nomem)) };
    }
}
