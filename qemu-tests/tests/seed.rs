// SPDX-License-Identifier: GPL-2.0

//! The seed scenario and the device's refusals, in QEMU.
//!
//! Seed 000: a kernel oopses while holding the lock `reboot(2)` needs; `reboot -f`
//! hangs forever; writing to the 8042 still resets the machine.

use qemu_tests::{
    run,
    Guest,
    Inputs,
    DRAIN,
    STUCK_REBOOT,
    TRY_WRITE, //
};
use std::time::Duration;

fn inputs() -> Inputs {
    Inputs::from_env()
}

#[test]
fn seed_scenario_device_resets_while_reboot_is_stuck() {
    let inputs = inputs();
    let scenario = format!(
        "insmod /modules/rust_emergency_reset.ko\n{STUCK_REBOOT}{DRAIN}\n\
         echo reset > /dev/emergency_reset\necho RER-WRITE-RETURNED rc=$?\n"
    );
    let guest = Guest::new("seed_device_reset", &inputs, &scenario)
        .with_module(inputs.test_module("rer_oops_transition"));
    let out = run(&guest, &inputs);
    assert!(
        out.saw("holding system_transition_mutex, oopsing now"),
        "the oops module did not run"
    );
    assert!(
        out.saw("BUG: kernel NULL pointer dereference"),
        "no oops on the console"
    );
    assert!(
        !out.lines_with("RER-REBOOT-STATE D ").is_empty(),
        "reboot -f was not stuck in D state: {:?}",
        out.lines_with("RER-REBOOT-STATE")
    );
    out.assert_reset();
    assert!(
        out.saw("resetting now: trigger /dev/emergency_reset, method kbd"),
        "no log line naming the trigger and method"
    );
    assert!(!out.saw("RER-WRITE-RETURNED"), "the write returned");
}

#[test]
fn seed_scenario_control_without_module_stays_stuck() {
    let inputs = inputs();
    let scenario = format!(
        "{STUCK_REBOOT}sleep 20\n\
         echo \"RER-STILL $(cut -d' ' -f3 /proc/$REBOOT_PID/stat)\"\n"
    );
    let guest = Guest::new("seed_control", &inputs, &scenario)
        .without_our_module(&inputs)
        .with_module(inputs.test_module("rer_oops_transition"))
        .timeout(Duration::from_secs(90));
    let out = run(&guest, &inputs);
    assert!(out.saw("BUG: kernel NULL pointer dereference"));
    assert!(!out.lines_with("RER-REBOOT-STATE D ").is_empty());
    // 25 s after `reboot -f`, the guest has not reset and the reboot is still blocked.
    out.assert_alive();
    assert!(out.saw("RER-STILL D"), "{:?}", out.lines_with("RER-STILL"));
}

#[test]
fn bad_input_and_unprivileged_writers_are_refused() {
    let inputs = inputs();
    let scenario = format!(
        r#"{TRY_WRITE}
insmod /modules/rust_emergency_reset.ko
try_write hello 'hello
'
try_write upper 'RESET
'
try_write long 'reset reset reset reset reset reset reset'
try_write method 'reset nosuch'
chmod 666 /dev/emergency_reset
try_write nobody 'reset
' nobody
unshare -r sh -c "id -u; echo reset > /dev/emergency_reset" >/tmp/out 2>/tmp/err
echo "RER-WRITE userns rc=$? uid=$(cat /tmp/out) $(cat /tmp/err)"
i=0
while [ $i -lt 50 ]; do echo bad > /dev/emergency_reset 2>/dev/null; i=$((i + 1)); done
echo "RER-REFUSALS-LOGGED $(dmesg | grep -c 'rust_emergency_reset: refused')"
"#
    );
    let out = run(&Guest::new("bad_input", &inputs, &scenario), &inputs);
    out.assert_alive();
    let write = |label: &str| out.write_result(label);
    for label in ["hello", "upper", "long", "method"] {
        let line = write(label);
        assert!(
            line.contains("rc=1") && line.contains("Invalid argument"),
            "{line}"
        );
    }
    let line = write("nobody");
    assert!(
        line.contains("rc=1") && line.contains("Operation not permitted"),
        "{line}"
    );
    let line = write("userns");
    assert!(
        line.contains("uid=0") && line.contains("Operation not permitted"),
        "root in a user namespace must be refused: {line}"
    );
    // Many refusals, few lines: the log is rate limited (10 per 5 s).
    let logged = out.number_after("RER-REFUSALS-LOGGED");
    assert!((1..=10).contains(&logged), "{logged} refusal lines logged");
}
