// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: sleeps with interrupts off.
//!
//! ```sh
//! insmod rer_atomic_sleep.ko   # in a QEMU test guest only
//! ```
//!
//! Proves that `make check`'s test kernel reports what the reset path must
//! never do: with `CONFIG_DEBUG_ATOMIC_SLEEP` the kernel prints "BUG: sleeping
//! function called from invalid context". Harmless otherwise: the sleep is 1 ms.

use kernel::{
    bindings,
    prelude::*, //
};

module! {
    type: AtomicSleep,
    name: "rer_atomic_sleep",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: msleep() with interrupts off",
    license: "GPL",
}

struct AtomicSleep;

impl kernel::Module for AtomicSleep {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: deliberately wrong: interrupts off around a sleeping call (announced with
        // `might_sleep()`, as every sleeping kernel function does), then back on. Module init
        // ran with interrupts on.
        unsafe {
            core::arch::asm!("cli", options(nomem, nostack));
            kernel::task::might_sleep();
            bindings::msleep(1);
            core::arch::asm!("sti", options(nomem, nostack));
        }
        Ok(AtomicSleep)
    }
}
