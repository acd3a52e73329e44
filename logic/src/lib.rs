// SPDX-License-Identifier: GPL-2.0

//! Host build of the kernel-independent logic of `rust_emergency_reset`.
//!
//! `logic.rs`, `record.rs`, `packet.rs` and `ip.rs` are compiled twice: into the
//! kernel module (as `mod logic`, see `rust_emergency_reset.rs`) and here, so
//! that `cargo test` exercises the very code the module runs.

#![no_std]

#[cfg(test)]
extern crate std;

#[path = "ip.rs"]
pub mod ip;
#[path = "logic.rs"]
mod logic;
#[path = "packet.rs"]
pub mod packet;
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

#[cfg(test)]
mod packet_tests;

#[cfg(test)]
mod packet_fuzz;

#[cfg(test)]
mod ip_tests;
