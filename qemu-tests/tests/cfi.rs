// SPDX-License-Identifier: GPL-2.0

//! Run on the test kernel, which `make check` builds with kCFI
//! (`CONFIG_CFI`, `scripts/debug.config`): every indirect call checks that
//! its target has the type of the call's C prototype, and a module's callback
//! of another type traps. The harness fails any run whose console has a
//! `CFI failure at` line; here it must see the one a mistyped callback makes.

use qemu_tests::{
    run,
    Guest,
    Inputs, //
};

#[test]
fn a_callback_of_the_wrong_type_is_caught_by_kcfi() {
    let inputs = Inputs::from_env();
    let mut guest = Guest::new(
        "cfi_mismatch",
        &inputs,
        "insmod /modules/rer_cfi_mismatch.ko\nsleep 1\n",
    )
    .without_our_module(&inputs)
    .with_module(inputs.test_module("rer_cfi_mismatch"));
    guest.expect_cfi_failure = true;
    let out = run(&guest, &inputs);
    out.assert_alive();
    assert!(out.saw("rer_cfi_mismatch: starting a kthread with a mistyped function"));
    // The trap came from the call into the mistyped function, which never ran.
    let failure = out.lines_with("CFI failure at").join("\n");
    assert!(failure.contains("mistyped_thread"), "{failure}");
    assert!(!out.saw("the mistyped function ran"));
}
