// SPDX-License-Identifier: GPL-2.0

//! kdump first: with a crash kernel loaded, `on_oops=0` leaves to kdump the
//! oops the kernel hands to it, and still resets after one it does not.
//!
//! Each guest boots with `crashkernel=`, loads a crash kernel with
//! `rer-kexec` (`kexec_file_load()` with `KEXEC_FILE_ON_CRASH`, as `kexec -p`
//! does: the same kernel, and an initramfs whose `/init` prints
//! `RER-KDUMP` with the size of `/proc/vmcore`), loads our module with
//! `on_oops=0`, then the module that oopses holding the reboot mutex
//! (`rer_oops_transition`). Each first shows its fault in place: the crash
//! kernel loaded (`/sys/kernel/kexec_crash_loaded`), `panic_on_oops` as set,
//! and our status naming the deferral.
//!
//! Needs a kernel with `CONFIG_CRASH_DUMP` and `CONFIG_KEXEC_FILE`: Debian's
//! (the test kernel has neither).

use qemu_tests::{
    Guest,
    Inputs,
    Outcome,
    DRAIN, //
};
use std::time::Duration;

/// The crash kernel's command line (what Debian's kdump-tools gives it, less
/// its own service), with the marks `/init` checks.
const CRASH_CMDLINE: &str =
    "console=ttyS0 rer_guest=1 panic=0 tsc=reliable no_timer_check nr_cpus=1 irqpoll reset_devices";

/// The crash kernel's scenario: the old kernel's memory is there to dump.
const CRASH_SCENARIO: &str = "echo \"RER-KDUMP vmcore=$(stat -c %s /proc/vmcore 2>&1)\"\n";

/// A guest with `crashkernel=` reserved whose scenario loads a crash kernel
/// (if `crash_kernel`), sets `panic_on_oops`, loads our module with
/// `on_oops=0` and oopses.
fn oops_with(name: &str, crash_kernel: bool, panic_on_oops: u32) -> Outcome {
    let inputs = Inputs::from_env();
    assert!(
        inputs.has_config("CONFIG_CRASH_DUMP") && inputs.has_config("CONFIG_KEXEC_FILE"),
        "{}: no CONFIG_CRASH_DUMP or CONFIG_KEXEC_FILE: run on Debian's kernel",
        inputs.kernel_name
    );
    let crash_initrd = Guest::new(&format!("{name}_crash_kernel"), &inputs, CRASH_SCENARIO)
        .without_our_module(&inputs)
        .initramfs(&inputs);
    let load = if crash_kernel {
        format!("rer-kexec /crash/vmlinuz /crash/initrd '{CRASH_CMDLINE}'\n")
    } else {
        String::new()
    };
    let scenario = format!(
        "{load}echo \"RER-CRASH-LOADED $(cat /sys/kernel/kexec_crash_loaded)\"\n\
         echo {panic_on_oops} >/proc/sys/kernel/panic_on_oops\n\
         echo \"RER-PANIC-ON-OOPS $(cat /proc/sys/kernel/panic_on_oops)\"\n\
         insmod /modules/rust_emergency_reset.ko on_oops=0\n\
         grep on_oops /dev/emergency_reset | sed 's/^/RER-STATUS /'\n\
         {DRAIN}\n\
         insmod /modules/rer_oops_transition.ko\n\
         echo RER-OOPS-SURVIVED\nsleep 10\n"
    );
    let guest = Guest::new(name, &inputs, &scenario)
        .with_module(inputs.test_module("rer_oops_transition"))
        .with_binary(qemu_tests::guest_helper("rer-kexec"))
        .with_file("crash/vmlinuz", std::fs::read(&inputs.kernel).unwrap())
        .with_file("crash/initrd", crash_initrd)
        .memory(512)
        .append("crashkernel=192M")
        .timeout(Duration::from_secs(120));
    let out = qemu_tests::run(&guest, &inputs);
    // The fault in place before the oops.
    let loaded = if crash_kernel { "1" } else { "0" };
    assert!(
        out.saw_line(&format!("RER-CRASH-LOADED {loaded}")),
        "{name}: {:?} (log {})",
        out.lines_with("RER-CRASH-LOADED"),
        out.log.display()
    );
    if crash_kernel {
        assert!(
            out.saw_line("RER-KEXEC loaded"),
            "{name}: {:?}",
            out.lines_with("RER-KEXEC")
        );
    }
    assert!(
        out.saw_line(&format!("RER-PANIC-ON-OOPS {panic_on_oops}")),
        "{name}"
    );
    let status = if crash_kernel {
        "RER-STATUS on_oops: 0, deferred to kdump"
    } else {
        "RER-STATUS on_oops: 0"
    };
    assert_eq!(out.line_starting("RER-STATUS "), status, "{name}");
    assert!(out.saw("BUG: kernel NULL pointer dereference"), "{name}");
    out
}

#[test]
fn an_oops_handed_to_kdump_boots_the_crash_kernel_without_a_reset() {
    let out = oops_with("kdump_takes_a_fatal_oops", true, 1);
    assert!(out.saw("oops with a crash kernel loaded: left to kdump"));
    // The crash kernel came up with the dump, and nothing reset the machine.
    let kdump = out.line_starting("RER-KDUMP ");
    let size: u64 = kdump
        .strip_prefix("RER-KDUMP vmcore=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{kdump} (log {})", out.log.display()));
    assert!(size > 0, "{kdump}");
    out.assert_alive();
    assert!(
        out.reset_attempts().is_empty(),
        "{:?}",
        out.reset_attempts()
    );
    assert!(!out.saw("RER-OOPS-SURVIVED"));
    assert!(!out.saw("not kdump's"));
}

#[test]
fn without_a_crash_kernel_the_same_oops_resets_at_once() {
    let out = oops_with("kdump_absent_the_oops_resets", false, 1);
    out.assert_reset_by("oops", "kbd");
    assert!(!out.saw("left to kdump"));
}

#[test]
fn an_oops_kdump_does_not_take_still_resets() {
    let out = oops_with("kdump_leaves_a_nonfatal_oops", true, 0);
    assert!(out.saw("oops with a crash kernel loaded: left to kdump"));
    assert!(out.saw("the kernel let the oopsing task exit: not kdump's"));
    out.assert_reset_by("oops", "kbd");
    assert!(!out.saw("RER-KDUMP"));
}
