// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: oopses while holding `system_transition_mutex`.
//!
//! ```sh
//! insmod rer_oops_transition.ko   # in a QEMU test guest only
//! reboot -f                       # now hangs forever in D state
//! ```
//!
//! Its init takes the mutex through `lock_system_sleep()` (the lock `reboot(2)`
//! takes first) and then dereferences NULL. The oops kills `insmod` with the
//! mutex held: every later `reboot(2)` blocks on it for good. This is seed
//! 000's "oops with the Big Kernel Lock held", as it happens in linux 7.3.

use core::ffi::c_uint;
use kernel::prelude::*;

module! {
    type: OopsTransition,
    name: "rer_oops_transition",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: oops while holding system_transition_mutex",
    license: "GPL",
}

extern "C" {
    /// `kernel/power/main.c`: takes `system_transition_mutex`, returns flags for the unlock.
    fn lock_system_sleep() -> c_uint;
}

struct OopsTransition;

impl kernel::Module for OopsTransition {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `lock_system_sleep()` may be called from process context, which module init
        // is. The mutex is never released: that is the point of this module.
        unsafe { lock_system_sleep() };
        pr_emerg!("rer_oops_transition: holding system_transition_mutex, oopsing now\n");
        // SAFETY: not safe at all, deliberately: a load from address 0 faults and oopses, and
        // the oops kills this task with the mutex held. It writes no memory.
        unsafe { core::arch::asm!("mov {0}, qword ptr [0]", out(reg) _, options(nostack)) };
        Ok(OopsTransition)
    }
}
