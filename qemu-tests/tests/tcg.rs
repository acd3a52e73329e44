// SPDX-License-Identifier: GPL-2.0

//! The harness's QEMU runs kernel code that another vCPU has just patched as
//! the kernel patched it: every guest runs under single-threaded TCG
//! ([`qemu_tests::ACCEL`]). Run on Debian's kernel, whose static keys are
//! jump labels patched with `text_poke_bp()` (the test kernel has no
//! `CONFIG_JUMP_LABEL`: its static keys are plain loads, and this would
//! prove nothing there).
//!
//! `rer_text_poke` flips a static key on CPU 0 while CPU 1 runs its branch.
//! Under QEMU 10.0.2's multi-threaded TCG, 6 guests of 7 that flipped it 2000
//! times took `Oops: int3` at `rer_text_poke_spin+0xc` on CPU 1: a stale
//! translation of the int3 that `text_poke_bp()` had already replaced (4 of
//! 4 with `qemu-tests/examples/boot_count.rs`, 2 of 3 with this test made
//! multi-threaded); none of 6 single-threaded. This test flips it 3000 times
//! (about 30 s of guest time single-threaded), so that it fails, with high
//! likelihood if not for certain, should the suite go back to multi-threaded
//! TCG (README.md, "QEMU").

use qemu_tests::{
    run,
    Guest,
    Inputs,
    ACCEL, //
};
use std::time::Duration;

const FLIPS: u32 = 3000;

#[test]
fn a_static_key_flipped_while_another_cpu_runs_its_branch_never_traps() {
    let inputs = Inputs::from_env();
    assert_eq!(
        inputs.accel, ACCEL,
        "RER_ACCEL overrides the suite's TCG mode"
    );
    assert!(
        inputs.has_config("CONFIG_JUMP_LABEL"),
        "a kernel without jump labels patches no code for a static key"
    );
    let guest = Guest::new(
        "tcg_text_poke",
        &inputs,
        &format!("taskset 1 insmod /modules/rer_text_poke.ko flips={FLIPS}\n"),
    )
    .without_our_module(&inputs)
    .with_module(inputs.test_module("rer_text_poke"))
    .timeout(Duration::from_secs(120));
    let out = run(&guest, &inputs);
    out.assert_alive();
    assert!(!out.saw("Oops"), "log {}", out.log.display());
    // The fault's setting was in place: every flip made, while CPU 1 ran the
    // branch (it saw the key on).
    let done = out
        .lines_with(" flips, ")
        .iter()
        .find_map(|l| {
            l.split_once("rer_text_poke: ")
                .map(|(_, rest)| rest.to_string())
        })
        .unwrap_or_default();
    let taken: u64 = done
        .strip_prefix(&format!("{FLIPS} flips, "))
        .and_then(|rest| rest.strip_suffix(" branches taken"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{done:?}; log {}", out.log.display()));
    assert!(
        taken > 0,
        "CPU 1 never ran the branch while it was on: {done}"
    );
}
