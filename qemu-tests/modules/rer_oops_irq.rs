// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: an oops in interrupt context.
//!
//! ```sh
//! insmod rer_oops_irq.ko   # in a QEMU test guest only; 200 ms later the machine panics
//! ```
//!
//! Its init arms a one-shot high-resolution timer in hard-interrupt mode
//! (`HRTIMER_MODE_REL_HARD`) and returns. 200 ms later the timer's callback,
//! running in hard-interrupt context, dereferences NULL. An oops in interrupt
//! context is always fatal: `oops_end()` (arch/x86/kernel/dumpstack.c) calls
//! `panic("Fatal exception in interrupt")`, whatever `panic_on_oops` says.

use core::{
    cell::UnsafeCell,
    mem::MaybeUninit, //
};
use kernel::{
    bindings,
    prelude::*, //
};

module! {
    type: OopsIrq,
    name: "rer_oops_irq",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: oops in a timer interrupt 200 ms after load (a fatal exception)",
    license: "GPL",
}

/// Delay from load to the oops, in nanoseconds.
const DELAY_NS: i64 = 200_000_000;

/// The timer: a static the hrtimer code links into its queue.
struct Timer(UnsafeCell<MaybeUninit<bindings::hrtimer>>);

// SAFETY: written by `hrtimer_setup()` in `init` before it is armed; afterwards only the
// hrtimer core touches it, under its own lock.
unsafe impl Sync for Timer {}

static TIMER: Timer = Timer(UnsafeCell::new(MaybeUninit::zeroed()));

impl Timer {
    fn get(&self) -> *mut bindings::hrtimer {
        self.0.get().cast()
    }
}

/// The timer's callback, in hard-interrupt context.
///
/// # Safety
///
/// Only the hrtimer core calls it, through `TIMER`.
unsafe extern "C" fn oops_now(_timer: *mut bindings::hrtimer) -> bindings::hrtimer_restart {
    pr_emerg!("in a timer interrupt, oopsing now\n");
    // SAFETY: not safe at all, deliberately: a load from address 0 faults and oopses in
    // interrupt context, which panics the machine. It writes no memory.
    unsafe { core::arch::asm!("mov {0}, qword ptr [0]", out(reg) _, options(nostack)) };
    // Not reached. `HRTIMER_NORESTART` is 0 (include/linux/hrtimer_defs.h); bindgen makes
    // `enum hrtimer_restart` a newtype in linux 7.3 and a `u32` in 7.2: zero is both.
    // SAFETY: either type is a plain integer, for which all zeroes is a valid value.
    unsafe { core::mem::zeroed() }
}

struct OopsIrq;

impl kernel::Module for OopsIrq {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `TIMER` is static, zeroed and not armed; `oops_now` has the callback's
        // signature. `hrtimer_start_range_ns()` arms it once, relative, in hard-irq mode.
        unsafe {
            bindings::hrtimer_setup(
                TIMER.get(),
                Some(oops_now),
                bindings::CLOCK_MONOTONIC as bindings::clockid_t,
                bindings::hrtimer_mode_HRTIMER_MODE_REL_HARD,
            );
            bindings::hrtimer_start_range_ns(
                TIMER.get(),
                DELAY_NS,
                0,
                bindings::hrtimer_mode_HRTIMER_MODE_REL_HARD,
            );
        }
        pr_emerg!("timer armed: an oops in interrupt context in 200 ms\n");
        Ok(OopsIrq)
    }
}

impl Drop for OopsIrq {
    fn drop(&mut self) {
        // SAFETY: set up in `init`; cancelling waits for a running callback. (An unload can
        // only come before the timer fired: after it, the machine has panicked.)
        unsafe { bindings::hrtimer_cancel(TIMER.get()) };
    }
}
