// SPDX-License-Identifier: GPL-2.0

//! Kernel lockdown, as on every Secure Boot machine: why this module exists.
//! Booted with `lockdown=integrity` and with `lockdown=confidentiality`, the
//! kernel refuses seed 000's userspace rescue (`iopl(3)` or `ioperm()` then
//! `outb(0xfe, 0x64)`; 0xFE written to `/dev/port`) and refuses an unsigned
//! module. Run on both kernels: on Debian's, whose keys are Debian's, our
//! module built by `make KRELEASE=` is such an unsigned module.
//!
//! Without lockdown every step here would succeed: the rescues would reset the
//! guest and the module would load, so each assertion fails if lockdown is off.

use qemu_tests::{
    rescue_helper,
    run,
    unsigned_copy,
    Guest,
    Inputs,
    LOCKDOWN_MODES,
    SHOW_LOCKDOWN, //
};

/// Wait out the rate limit of the kernel's `Lockdown:` lines (one call site,
/// 10 lines per 5 s), which Debian's kernel spends at boot in confidentiality
/// mode (tracefs), so that the refusals below are logged.
const RATE_LIMIT_WINDOW: &str = "sleep 6\n";

#[test]
fn lockdown_refuses_the_userspace_rescue_and_an_unsigned_module() {
    let inputs = Inputs::from_env();
    // Seed 000's rescue writes /dev/port; a kernel without it (Debian's cloud
    // flavour) is asked for /dev/mem, which lockdown refuses with the same line.
    let port = if inputs.has_config("CONFIG_DEVPORT") {
        "/dev/port"
    } else {
        "/dev/mem"
    };
    for mode in LOCKDOWN_MODES {
        let name = format!("lockdown_{mode}_refusals");
        let unsigned = unsigned_copy(&inputs.module, &inputs.target_dir("unsigned"));
        // The results go to a file first: the kernel prints its refusal lines on
        // the console asynchronously, and one landing inside a result line
        // would split it. They are printed once those lines have passed.
        let scenario = format!(
            "{SHOW_LOCKDOWN}{RATE_LIMIT_WINDOW}\
             rer-rescue iopl >/tmp/results 2>&1\n\
             rer-rescue ioperm >>/tmp/results 2>&1\n\
             printf '\\376' | dd of={port} bs=1 seek=100 2>/tmp/err\n\
             echo \"RER-DEVPORT rc=$? $(cat /tmp/err)\" >>/tmp/results\n\
             insmod /modules/rust_emergency_reset.ko 2>/tmp/err\n\
             echo \"RER-INSMOD rc=$? $(cat /tmp/err) loaded=$(grep -c rust_emergency_reset /proc/modules)\" >>/tmp/results\n\
             sleep 1\ncat /tmp/results\n\
             dmesg | grep 'Lockdown:' | sed 's/^/RER-KMSG /'\n"
        );
        let guest = Guest::new(&name, &inputs, &scenario)
            .without_our_module(&inputs)
            .with_module(unsigned)
            .with_binary(rescue_helper())
            .append(&format!("lockdown={mode}"));
        let out = run(&guest, &inputs);
        out.assert_lockdown(mode);
        // The guest lived: no rescue reset it, and the module did not load.
        out.assert_alive();
        for how in ["iopl", "ioperm"] {
            assert_eq!(
                out.line_starting(&format!("RER-RESCUE {how} ")),
                format!("RER-RESCUE {how} refused: Operation not permitted"),
                "{name}"
            );
        }
        let devport = out.line_starting("RER-DEVPORT ");
        assert!(
            devport.starts_with("RER-DEVPORT rc=1 ") && devport.contains("Operation not permitted"),
            "{name}: {devport}"
        );
        let insmod = out.line_starting("RER-INSMOD ");
        assert!(
            insmod.starts_with("RER-INSMOD rc=1 ") && insmod.ends_with("loaded=0"),
            "{name}: {insmod}"
        );
        // The kernel's own words for each refusal.
        for what in [
            "raw io port access is restricted",
            "/dev/mem,kmem,port is restricted",
            "unsigned module loading is restricted",
        ] {
            assert!(
                out.lines_with("RER-KMSG").iter().any(|l| l.contains(what)),
                "{name}: no 'Lockdown: ... {what}' (log {})",
                out.log.display()
            );
        }
    }
}
