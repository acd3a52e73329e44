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
    lockdown_refusals,
    rescue_helper,
    run,
    unsigned_copy,
    Guest,
    Inputs,
    LOCKDOWN_MODES,
    SHOW_LOCKDOWN, //
};

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
        let scenario = format!(
            "{SHOW_LOCKDOWN}{}",
            lockdown_refusals(port, &[("unsigned", "/modules/rust_emergency_reset.ko")])
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
        out.assert_lockdown_refusals(&name);
        out.assert_module_refused(
            "unsigned",
            "Operation not permitted",
            "Lockdown: insmod: unsigned module loading is restricted",
        );
    }
}
