// SPDX-License-Identifier: GPL-2.0

//! Under lockdown, our module signed with a key the kernel trusts (the test
//! kernel's own build key: `make` signs with it) loads and resets the guest
//! where the userspace rescue is refused (`tests/lockdown.rs`): the seed
//! scenario through the device, `/proc/sysrq-trigger`, and with `nmi=1` an
//! injected NMI while every CPU spins; status and parameters are unchanged.
//! Test kernel only: on Debian's kernel only Debian's keys are trusted.

use qemu_tests::{
    is_signed,
    run,
    Guest,
    Inputs,
    Outcome,
    Vm,
    DRAIN,
    LOCKDOWN_MODES,
    SHOW_LOCKDOWN,
    STUCK_REBOOT,
    TRY_WRITE, //
};
use serde_json::json;
use std::{
    process::Command,
    time::Duration, //
};

/// Guest commands: [`SHOW_LOCKDOWN`], then load our module with the
/// parameters that follow on the same line.
fn lockdown_insmod() -> String {
    format!("{SHOW_LOCKDOWN}insmod /modules/rust_emergency_reset.ko")
}

fn guest(name: &str, inputs: &Inputs, mode: &str, scenario: &str) -> Guest {
    Guest::new(&format!("{name}_{mode}"), inputs, scenario).append(&format!("lockdown={mode}"))
}

/// The guest was in lockdown `mode`, and the module loaded without a
/// signature complaint (a trusted signature taints nothing).
fn assert_lockdown_and_trusted(out: &Outcome, mode: &str) {
    out.assert_lockdown(mode);
    assert!(
        !out.saw("module verification failed"),
        "the module's signature was not trusted (log {})",
        out.log.display()
    );
    assert!(
        out.saw("rust_emergency_reset: method kbd:"),
        "the module did not load (log {})",
        out.log.display()
    );
}

#[test]
fn make_signs_the_modules_with_the_test_kernels_key() {
    let inputs = Inputs::from_env();
    let modules = [
        inputs.module.clone(),
        inputs.test_module("rer_oops_transition"),
        inputs.test_module("rer_lockup"),
    ];
    for ko in modules {
        assert!(is_signed(&ko), "{} is not signed", ko.display());
        let out = Command::new("modinfo")
            .args(["-F", "sig_hashalgo"])
            .arg(&ko)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "sha512");
    }
}

#[test]
fn under_lockdown_the_signed_module_resets_in_the_seed_scenario() {
    let inputs = Inputs::from_env();
    let insmod = lockdown_insmod();
    for mode in LOCKDOWN_MODES {
        let scenario =
            format!("{insmod}\n{STUCK_REBOOT}{DRAIN}\necho reset > /dev/emergency_reset\n");
        let g = guest("lockdown_seed", &inputs, mode, &scenario)
            .with_module(inputs.test_module("rer_oops_transition"));
        let out = run(&g, &inputs);
        assert_lockdown_and_trusted(&out, mode);
        assert!(out.saw("BUG: kernel NULL pointer dereference"));
        assert!(out.saw("RER-REBOOT-STATE D"), "reboot -f not stuck");
        out.assert_reset_by("/dev/emergency_reset", "kbd");
    }
}

#[test]
fn under_lockdown_the_sysrq_trigger_file_resets() {
    let inputs = Inputs::from_env();
    let insmod = lockdown_insmod();
    for mode in LOCKDOWN_MODES {
        let scenario = format!("{insmod}\n{DRAIN}\necho x > /proc/sysrq-trigger\n");
        let out = run(&guest("lockdown_sysrq", &inputs, mode, &scenario), &inputs);
        assert_lockdown_and_trusted(&out, mode);
        out.assert_reset_by("sysrq-x", "kbd");
    }
}

#[test]
fn under_lockdown_an_nmi_resets_while_every_cpu_spins() {
    let inputs = Inputs::from_env();
    let insmod = lockdown_insmod();
    for mode in LOCKDOWN_MODES {
        let scenario = format!(
            "{insmod} nmi=1\necho RER-ARMING\n{DRAIN}\n\
             insmod /modules/rer_lockup.ko all=1\nsleep 30\n"
        );
        let g = guest("lockdown_nmi", &inputs, mode, &scenario)
            .with_module(inputs.test_module("rer_lockup"))
            .timeout(Duration::from_secs(40));
        let mut vm = Vm::boot(&g, &inputs);
        assert!(vm.wait_for("RER-ARMING"), "the guest never armed");
        // Every CPU spins 1 s after the lockup module's insmod returns; the
        // scenario's sleep never ends.
        std::thread::sleep(Duration::from_secs(4));
        vm.qmp_command("inject-nmi", json!({}));
        let out = vm.finish();
        assert_lockdown_and_trusted(&out, mode);
        out.assert_reset_by_nmi_best_effort("nmi", "kbd");
    }
}

#[test]
fn under_lockdown_status_and_parameters_behave_as_without() {
    let inputs = Inputs::from_env();
    let insmod = lockdown_insmod();
    for mode in LOCKDOWN_MODES {
        let scenario = format!(
            "{TRY_WRITE}{insmod} methods=cf9,kbd sysrq_key=y nmi=1 on_oops=5\n\
             cat /dev/emergency_reset\n\
             try_write hello 'hello\n'\n\
             rmmod rust_emergency_reset\n\
             insmod /modules/rust_emergency_reset.ko methods=nosuch 2>/tmp/err\n\
             rc=$?\nsleep 1\necho \"RER-BADPARAM rc=$rc $(cat /tmp/err)\"\n"
        );
        let out = run(&guest("lockdown_status", &inputs, mode, &scenario), &inputs);
        assert_lockdown_and_trusted(&out, mode);
        out.assert_alive();
        for want in [
            "order: cf9,kbd\n",
            "sysrq_key: y\n",
            "nmi: on\n",
            "on_oops: 5\n",
            "method.cf9: available\n",
        ] {
            assert!(out.saw(want), "{mode}: status lacks {want:?}");
        }
        let hello = out.write_result("hello");
        assert!(
            hello.contains("rc=1") && hello.contains("Invalid argument"),
            "{hello}"
        );
        let bad = out.line_starting("RER-BADPARAM ");
        assert!(
            !bad.starts_with("RER-BADPARAM rc=0 ") && bad.contains("Invalid argument"),
            "{bad}"
        );
    }
}
