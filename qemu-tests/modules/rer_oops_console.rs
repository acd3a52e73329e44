// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: oopses while holding the console lock.
//!
//! ```sh
//! insmod rer_oops_console.ko   # in a QEMU test guest only
//! ```
//!
//! `console_lock()` is taken and never released: the oops kills `insmod`
//! with it held. Whatever needs the console lock afterwards (legacy console
//! output, console registration, VT switches) waits forever.

use kernel::prelude::*;

module! {
    type: OopsConsole,
    name: "rer_oops_console",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: oops while holding the console lock",
    license: "GPL",
}

extern "C" {
    fn console_lock();
}

struct OopsConsole;

impl kernel::Module for OopsConsole {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_emerg!("rer_oops_console: taking the console lock, oopsing\n");
        // SAFETY: `console_lock()` may sleep: module init is process context. It is never
        // released: that is the point of this module.
        unsafe { console_lock() };
        // SAFETY: not safe at all, deliberately: a load from address 0 faults and oopses, and
        // the oops kills this task with the console lock held. It writes no memory.
        unsafe { core::arch::asm!("mov {0}, qword ptr [0]", out(reg) _, options(nostack)) };
        Ok(OopsConsole)
    }
}
