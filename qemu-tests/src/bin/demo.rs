// SPDX-License-Identifier: GPL-2.0

//! `make demo`: seed 000 in a QEMU guest, narrated.
//!
//! A module oopses while holding `system_transition_mutex`; `reboot -f` hangs
//! behind the dead holder; `echo reset > /dev/emergency_reset` resets the
//! machine anyway. Exits 0 only when QMP reports the guest's reset.

use qemu_tests::{
    Ending,
    Guest,
    Inputs,
    Vm, //
};
use std::{
    process::ExitCode,
    time::Duration, //
};

const SCENARIO: &str = r#"
echo "RER-STEP load"
insmod /modules/rust_emergency_reset.ko
ls -l /dev/emergency_reset
echo "RER-STEP oops"
insmod /modules/rer_oops_transition.ko
echo "RER-STEP reboot"
reboot -f &
REBOOT_PID=$!
sleep 5
echo "reboot -f (pid $REBOOT_PID) after 5 s: state $(cut -d' ' -f3 /proc/$REBOOT_PID/stat), waiting in $(cat /proc/$REBOOT_PID/wchan)"
echo "RER-STEP reset"
sleep 1
echo reset > /dev/emergency_reset
echo "the write returned: $?"
"#;

fn say(text: &str) {
    println!("\n==> {text}\n");
}

fn main() -> ExitCode {
    let inputs = Inputs::from_env();
    let guest = Guest::new("demo", &inputs, SCENARIO)
        .with_module(inputs.test_module("rer_oops_transition"))
        .timeout(Duration::from_secs(90));
    say(
        "Booting the Rust-enabled test kernel in QEMU (q35, TCG, -no-reboot); its console follows.",
    );
    let mut vm = Vm::start(&guest, &inputs);
    vm.echo_console(true);
    let steps = [
        ("RER-STEP load", "Loading rust_emergency_reset.ko: it registers /dev/emergency_reset."),
        (
            "RER-STEP oops",
            "Loading rer_oops_transition.ko: it takes system_transition_mutex (the lock reboot(2) \
             takes first) and oopses. insmod dies holding the lock, as the BKL holder did in seed 000.",
        ),
        (
            "RER-STEP reboot",
            "Running `reboot -f` in the background. It will block on the dead task's mutex.",
        ),
        (
            "RER-STEP reset",
            "reboot -f is stuck (state D). Now: echo reset > /dev/emergency_reset \
             (0xFE to the 8042's port 0x64, no reboot(2), no lock).",
        ),
    ];
    for (marker, text) in steps {
        if !vm.wait_for(marker) {
            break;
        }
        say(text);
    }
    let out = vm.finish();
    println!();
    match out.ending {
        Ending::GuestReset => {
            say(&format!(
                "QMP reported SHUTDOWN reason=guest-reset after {:.1} s: the machine was reset. \
                 Console log: {}",
                out.elapsed.as_secs_f64(),
                out.log.display()
            ));
            ExitCode::SUCCESS
        }
        other => {
            say(&format!(
                "No reset observed ({other:?}). Console log: {}",
                out.log.display()
            ));
            ExitCode::FAILURE
        }
    }
}
