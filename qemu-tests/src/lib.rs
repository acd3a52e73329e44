// SPDX-License-Identifier: GPL-2.0

//! QEMU harness for `rust_emergency_reset`.
//!
//! A test describes a guest ([`Guest`]): the machine, the CPUs, and a shell
//! scenario that runs as the guest's `/init` after the boot. The harness packs
//! busybox, the scenario and the modules into an initramfs, boots the test
//! kernel under TCG with `-no-reboot`, records the serial console, and watches
//! QMP. A reset is only ever concluded from QMP's
//! `SHUTDOWN {"guest": true, "reason": "guest-reset"}` event (or, for a guest
//! that boots again after a reset, [`Guest::boots`], from QMP's `RESET` event
//! with the same data); a guest is only ever called alive from a marker it
//! printed on its console.
//!
//! Modules are loaded only by the guest's `/init`, which refuses to run unless
//! it is PID 1 of a kernel booted with `rer_guest=1`: nothing here loads a
//! module on the host.
//!
//! Inputs come from the environment `make check` sets ([`Inputs`]). Serial
//! logs are kept in `target/serial-logs/<kernel>/<test>.log`.
//!
//! The modules, one concern each (everything a test uses is also here, at the
//! top):
//! - `inputs`: [`Inputs`] from the environment, [`qemu_binary`], the host's
//!   busybox and this crate's `target/`.
//! - `guest`: [`Guest`] and its builder methods, the guest's `/init` and its
//!   markers ([`BOOTED`], [`DONE`], [`WHICH_BOOT`], ...), the shell pieces of
//!   scenarios ([`TRY_WRITE`], [`STUCK_REBOOT`], [`MARK`], ...), the
//!   initramfs.
//! - `cpio`: the writer of the initramfs's cpio archives.
//! - [`acpi`]: the guest FADT's reset register override
//!   ([`Guest::fadt_reset`]).
//! - `vm`: the QEMU process, [`Vm`] (start, boot, the waits on the console,
//!   input, finish), and [`run`].
//! - `qmp`: the QMP connection and commands, and the vCPUs QEMU shows
//!   ([`VCpu`]).
//! - [`console`]: the console as text: mending the kernel's lines inside
//!   userspace lines, [`tail`].
//! - `outcome`: [`Ending`] and [`Outcome`], with its assertions.
//! - `kernel_log`: a `PREEMPT_RT` guest's kernel log, read from its RAM at
//!   its reset (its console prints from a thread that a reset never lets run).
//! - `netns`: the network of [`Guest::network`]: the addresses
//!   ([`GUEST_V4`], ...), the namespace, [`Vm::net_command`],
//!   [`Vm::net_socket`].
//! - `helpers`: the guest's static helper programs ([`guest_helper`],
//!   [`rescue_helper`]) and module signatures ([`is_signed`],
//!   [`unsigned_copy`]).
//! - [`matrix`]: the fault matrix.
//! - [`firmware`]: a Secure Boot machine ([`Guest::secure_boot`]): OVMF and
//!   its variable store with or without a MOK, the EFI system partition with
//!   shim, grub and the kernel, the boot's phases timed.
//! - [`debian_root`]: the Debian 13 build root for the tests that run Debian's
//!   `dkms` and `apt`: commands in it, their lock, the module registered in
//!   its DKMS tree for one test, and a throwaway overlay on it
//!   ([`debian_root::ThrowawayRoot`]).

pub mod acpi;
pub mod console;
mod cpio;
pub mod debian_root;
pub mod firmware;
mod guest;
mod helpers;
mod inputs;
mod kernel_log;
pub mod matrix;
mod netns;
mod outcome;
mod qmp;
mod vm;

pub use console::tail;
pub use guest::{
    lockdown_refusals,
    show_text,
    Guest,
    BOOTED,
    DONE,
    DRAIN,
    LOCKDOWN_MODES,
    MARK,
    RTC_MARK,
    SHOW_LOCKDOWN,
    STUCK_REBOOT,
    TRY_WRITE,
    UNLOAD_WHILE_OPEN,
    WHICH_BOOT,
    WHICH_BOOT_UNANSWERED, //
};
pub use helpers::{
    guest_helper,
    is_signed,
    rescue_helper,
    unsigned_copy, //
};
pub use inputs::{
    qemu_binary,
    Inputs,
    ACCEL, //
};
pub use kernel_log::KERNEL_LOG_AT_RESET;
pub use netns::{
    GUEST_V4,
    GUEST_V6,
    HOST_V4,
    HOST_V6,
    NET_UP, //
};
pub use outcome::{
    Ending,
    Outcome, //
};
pub use qmp::VCpu;
pub use vm::{
    run,
    Vm, //
};
