// SPDX-License-Identifier: GPL-2.0

//! The harness's own verdicts: every QMP input is checked by QEMU's reply, so
//! an input QEMU rejected (a key it does not know, a wrong chardev) cannot
//! pass for one that reached the guest.

use qemu_tests::{
    Guest,
    Inputs,
    Vm, //
};
use serde_json::json;
use std::panic::{
    catch_unwind,
    AssertUnwindSafe, //
};

#[test]
fn a_qmp_input_qemu_rejects_fails_the_test_with_qemus_message() {
    let inputs = Inputs::from_env();
    let guest = Guest::new("harness_qmp_rejected", &inputs, "echo RER-READY\nsleep 8\n")
        .without_our_module(&inputs);
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(vm.wait_for("RER-READY"), "the guest never got ready");
    for (command, arguments) in [
        (
            "send-key",
            json!({"keys": [{"type": "qcode", "data": "nosuchkey"}]}),
        ),
        ("chardev-send-break", json!({"id": "nosuchchardev"})),
    ] {
        let refused = catch_unwind(AssertUnwindSafe(|| {
            vm.qmp_command(command, arguments.clone())
        }));
        let message = match refused {
            Ok(v) => panic!("QMP {command} {arguments} passed: {v}"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(no message)".into()),
        };
        assert!(message.contains("QEMU refused it"), "{command}: {message}");
        eprintln!("{command}: {message}");
    }
    // Accepted commands answer, and the guest ran on.
    let status = vm.qmp_command("query-status", json!({}));
    assert_eq!(status["status"], "running", "{status}");
    vm.finish().assert_alive();
}
