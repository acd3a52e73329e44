// SPDX-License-Identifier: GPL-2.0

//! Host build of the kernel-independent logic of `rust_emergency_reset`.
//!
//! `logic.rs` and `record.rs` are compiled twice: into the kernel module (as `mod logic`, see
//! `rust_emergency_reset.rs`) and here, so that `cargo test` exercises the very
//! code the module runs.

#![no_std]

#[cfg(test)]
extern crate std;

#[path = "logic.rs"]
mod logic;
#[path = "record.rs"]
pub mod record;

pub use logic::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod record_tests;

#[cfg(test)]
mod record_fuzz;
