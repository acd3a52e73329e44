// SPDX-License-Identifier: GPL-2.0

//! The one place where `rust_emergency_reset` touches hardware, and finds out
//! at load what the machine has: the FADT, a mapping of a memory reset
//! register, the PCI configuration ports.
//!
//! Every function the reset path calls here is a small safe wrapper around a
//! few port accesses or CPU instructions, with the reason it is sound next to
//! it. None of them sleeps, allocates or takes a lock: they may run with
//! interrupts off, in an NMI, or on a machine whose other CPUs hold every
//! lock. The facts follow `arch/x86/kernel/reboot.c`; the FADT layout is
//! linux 7.3's `include/acpi/actbl.h` (`struct acpi_table_fadt`, packed).

use core::{
    arch::asm,
    ptr, //
};
use kernel::{
    bindings,
    str::CStrExt,
    time::{
        delay,
        Delta, //
    },
};

use crate::logic::{
    self,
    ResetPorts,
    ResetRegister,
    I8042_STATUS_CMD,
    RST_CNT, //
};

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

/// The machine's reset ports, for the sequences in `logic` (which the host
/// tests against a model). Only those sequences use it: each port they touch
/// is one of the reset registers, written with the kernel's own values.
struct Ports;

impl ResetPorts for Ports {
    fn inb(&mut self, port: u16) -> u8 {
        // SAFETY: the sequences read only the 8042's status and RST_CNT, which have no read
        // side effects.
        unsafe { inb(port) }
    }

    fn outb(&mut self, port: u16, value: u8) {
        // SAFETY: the sequences write only the 8042's pulse-reset command and RST_CNT's reset
        // values: resetting the machine is what the caller asked for.
        unsafe { outb(port, value) }
    }

    fn udelay(&mut self, us: u32) {
        udelay(us)
    }
}

/// The 8042 status byte. 0xFF means no controller answers at port 0x64.
pub(crate) fn i8042_status() -> u8 {
    // SAFETY: reading the 8042 status register has no side effect.
    unsafe { inb(I8042_STATUS_CMD) }
}

/// Pulses the CPU reset line through the 8042 as the kernel does
/// ([`logic::i8042_reset`]). Returns only if the machine is still running.
pub(crate) fn i8042_reset() {
    logic::i8042_reset(&mut Ports);
}

/// The reset-control register at 0xCF9. 0xFF means there is none.
pub(crate) fn cf9_read() -> u8 {
    // SAFETY: reading RST_CNT has no side effect; on a machine without it the read floats.
    unsafe { inb(RST_CNT) }
}

/// A cold reset through 0xCF9 as the kernel does ([`logic::cf9_reset`]).
pub(crate) fn cf9_reset() {
    logic::cf9_reset(&mut Ports);
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

/// `X86_EFLAGS_IF`: interrupts are enabled.
const EFLAGS_IF: u64 = 1 << 9;

#[cfg(CONFIG_TRACE_IRQFLAGS)]
extern "C" {
    fn trace_hardirqs_on();
    fn trace_hardirqs_off();
}

/// Local interrupts off until dropped, then back to what they were: C's
/// `local_irq_save()` / `local_irq_restore()`. The same compiler barrier (the
/// asm may touch memory) and, with `CONFIG_TRACE_IRQFLAGS` (lockdep), the same
/// `trace_hardirqs_off()` / `trace_hardirqs_on()` calls, in the same places.
/// The native instructions, as on every x86 machine this module can reset
/// (not a Xen PV guest, whose port writes would not reset anything anyway).
pub(crate) struct IrqsOff(u64);

impl IrqsOff {
    pub(crate) fn new() -> IrqsOff {
        let flags: u64;
        // SAFETY: saves RFLAGS and clears IF on this CPU (`native_save_fl()` +
        // `native_irq_disable()`). Only the stack slot `pushfq` uses is touched; `drop` restores
        // the saved flags. Not `nomem`: like C's `asm volatile(... "memory")`, no memory access
        // moves across it.
        unsafe { asm!("pushfq", "pop {0}", "cli", out(reg) flags) };
        #[cfg(CONFIG_TRACE_IRQFLAGS)]
        // SAFETY: tells lockdep and the irq tracer that this CPU's interrupts are off, as
        // `local_irq_save()` does after `raw_local_irq_save()`; callable in any context.
        unsafe {
            trace_hardirqs_off()
        };
        IrqsOff(flags)
    }
}

impl Drop for IrqsOff {
    fn drop(&mut self) {
        let restore = |flags: u64| {
            // SAFETY: restores the RFLAGS saved by `new` on this CPU (interrupts stayed off in
            // between, so this is the same CPU), re-enabling interrupts only if they were on.
            unsafe { asm!("push {0}", "popfq", in(reg) flags) };
        };
        if self.0 & EFLAGS_IF == 0 {
            restore(self.0);
            #[cfg(CONFIG_TRACE_IRQFLAGS)]
            // SAFETY: as in `new`: interrupts stay off, as `local_irq_restore()` reports.
            unsafe {
                trace_hardirqs_off()
            };
        } else {
            #[cfg(CONFIG_TRACE_IRQFLAGS)]
            // SAFETY: `local_irq_restore()` reports interrupts on before enabling them.
            unsafe {
                trace_hardirqs_on()
            };
            restore(self.0);
        }
    }
}

/// The FADT fields the ACPI method needs: (revision, flags, reset register).
/// Revision 0 means there is no FADT (ACPI off or absent).
pub(crate) fn fadt() -> (u8, u32, ResetRegister) {
    // SAFETY: `acpi_gbl_FADT` is a static the ACPI core fills once during early boot (zeroed if
    // ACPI is off) and never changes afterwards. The struct is packed, so every field is read
    // unaligned through raw pointers; no reference to a packed field is made.
    unsafe {
        let f = ptr::addr_of!(bindings::acpi_gbl_FADT);
        let reg = ptr::addr_of!((*f).reset_register);
        (
            ptr::addr_of!((*f).header.revision).read_unaligned(),
            ptr::addr_of!((*f).flags).read_unaligned(),
            ResetRegister {
                space: ptr::addr_of!((*reg).space_id).read_unaligned(),
                address: ptr::addr_of!((*reg).address).read_unaligned(),
                value: ptr::addr_of!((*f).reset_value).read_unaligned(),
            },
        )
    }
}

/// A byte of memory-mapped I/O mapped by an [`IoMapping`]: a plain address,
/// copied into the reset engine so the reset path needs no lookup.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MmioByte(*mut kernel::ffi::c_void);

// SAFETY: an MMIO address may be written from any CPU.
unsafe impl Send for MmioByte {}
// SAFETY: as for `Send`; a write is a single store.
unsafe impl Sync for MmioByte {}

impl MmioByte {
    /// Writes `value`: one store, no lock, no sleep.
    pub(crate) fn write(self, value: u8) {
        // SAFETY: `self.0` comes from a live `IoMapping`: the module owns the mapping and drops
        // it only after unregistering every trigger (device, sysrq key), so no reset can run
        // after the unmap. Writing the firmware's reset value to the firmware's reset register
        // is what the caller asked for.
        unsafe { bindings::writeb(value, self.0) };
    }
}

/// A mapping of one byte of physical memory, unmapped when dropped.
pub(crate) struct IoMapping(MmioByte);

impl IoMapping {
    /// Maps the byte at physical address `phys` as the kernel's ACPI code
    /// maps the FADT's registers (`acpi_os_ioremap()`: `ioremap_cache()`, so
    /// that a register in RAM maps too; MMIO stays uncached through the
    /// MTRRs). May sleep: load time only.
    pub(crate) fn map(phys: u64) -> Option<IoMapping> {
        // SAFETY: `ioremap_cache()` may be called from process context; it returns NULL on
        // failure.
        let p = unsafe { bindings::ioremap_cache(phys, 1) };
        // Only a mapping that exists is wrapped: dropping one calls `iounmap()`.
        (!p.is_null()).then(|| IoMapping(MmioByte(p)))
    }

    /// The mapped byte.
    pub(crate) fn byte(&self) -> MmioByte {
        self.0
    }
}

impl Drop for IoMapping {
    fn drop(&mut self) {
        // SAFETY: the address came from `ioremap()` and is unmapped once.
        unsafe { bindings::iounmap(self.0 .0) };
    }
}

/// Whether the kernel claimed the PCI configuration ports at 0xCF8 at boot,
/// which it does exactly when it found configuration mechanism #1 or #2 there
/// (arch/x86/pci/direct.c `pci_direct_probe()`, "PCI conf1" / "PCI conf2" in
/// /proc/ioports) and so set its own `port_cf9_safe`, which is not exported.
/// Load time only: the probe claims the ports for a moment when nobody has.
pub(crate) fn pci_config_ports_claimed() -> bool {
    // SAFETY: `ioport_resource` is the kernel's root of I/O port resources; `__request_region()`
    // takes the resource lock and may sleep (process context, load time). A region we obtain
    // is given back at once.
    unsafe {
        let root = ptr::addr_of_mut!(bindings::ioport_resource);
        let r = bindings::__request_region(
            root,
            0xcf8,
            8,
            c"rust_emergency_reset probe".as_char_ptr(),
            0,
        );
        if r.is_null() {
            return true;
        }
        bindings::__release_region(root, 0xcf8, 8);
        false
    }
}
