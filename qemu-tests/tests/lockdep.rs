// SPDX-License-Identifier: GPL-2.0

//! Run on the test kernel, which `make check` builds with
//! `CONFIG_PROVE_LOCKING`, `CONFIG_DEBUG_LOCKDEP` and `CONFIG_DEBUG_ATOMIC_SLEEP`
//! (`scripts/debug.config`): the harness's check for lock reports (made in
//! every run) does see one when there is one.

use qemu_tests::{
    run,
    Guest,
    Inputs, //
};

#[test]
fn the_lock_checker_reports_a_sleep_with_interrupts_off() {
    let inputs = Inputs::from_env();
    let mut guest = Guest::new(
        "lockdep_detector",
        &inputs,
        "insmod /modules/rer_atomic_sleep.ko\n",
    )
    .without_our_module(&inputs)
    .with_module(inputs.test_module("rer_atomic_sleep"));
    guest.expect_lock_reports = true;
    let out = run(&guest, &inputs);
    out.assert_alive();
    assert!(out.saw("BUG: sleeping function called from invalid context"));
}
