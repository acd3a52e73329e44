// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: hard lockups.
//!
//! ```sh
//! taskset 1 insmod rer_lockup.ko     # 1 s later, every CPU but CPU 0 spins, interrupts off
//! insmod rer_lockup.ko all=1         # 1 s later, every CPU spins, interrupts off
//! cat /sys/module/rer_lockup/sections/.text   # where they spin: a test compares
//!                                              # QEMU's view of each vCPU's RIP
//! ```
//!
//! Without `all`, a kernel thread bound to each CPU but CPU 0 sleeps 1 s (so
//! that the module load, which needs every CPU to answer IPIs, completes) and
//! then spins with interrupts off. With `all=1`, one kernel thread on CPU 0
//! sleeps 1 s (so that the loader can still say where the module sits), then
//! sends the other CPUs into a spinning IPI handler (`smp_call_function()`)
//! and spins too: at once, as CPU 0 keeps the time for the others' sleeps.
//! Only an NMI reaches such a CPU. Never unloadable.

use kernel::{
    bindings,
    ffi::{
        c_int,
        c_void, //
    },
    prelude::*,
};

module! {
    type: Lockup,
    name: "rer_lockup",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: spin with interrupts off on every other CPU, or on every CPU",
    license: "GPL",
    params: {
        // An integer, not a bool: linux 7.2's `module!` has no bool parameters.
        all: i32 {
            default: 0,
            description: "1: also lock up the CPU that loads the module",
        },
    },
}

/// Spins forever with interrupts off.
fn spin_forever() -> ! {
    // SAFETY: deliberately: interrupts off on this CPU, for good.
    unsafe { core::arch::asm!("cli", options(nomem, nostack)) };
    loop {
        core::hint::spin_loop();
    }
}

/// IPI callback (interrupts already off).
unsafe extern "C" fn spin_ipi(_info: *mut c_void) {
    spin_forever();
}

/// Kernel thread on CPU 0 for `all=1`: 1 s of sleep, then every CPU's lockup.
unsafe extern "C" fn spin_all_thread(_data: *mut c_void) -> c_int {
    // SAFETY: a kthread may sleep.
    unsafe { bindings::msleep(1000) };
    // SAFETY: `spin_ipi` is a valid IPI callback (it never returns, deliberately);
    // `wait` is 0, so this CPU does not wait for the others.
    unsafe { bindings::smp_call_function(Some(spin_ipi), core::ptr::null_mut(), 0) };
    spin_forever();
}

/// Kernel thread bound to one CPU: 1 s of sleep, then the lockup.
unsafe extern "C" fn spin_thread(_data: *mut c_void) -> c_int {
    // SAFETY: a kthread may sleep.
    unsafe { bindings::msleep(1000) };
    spin_forever();
}

/// A kernel thread's function.
type SpinThread = unsafe extern "C" fn(*mut c_void) -> c_int;

struct Lockup;

impl kernel::Module for Lockup {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // Never unload: the spinning code lives in this module.
        // SAFETY: `module` is this module; taking a reference to it is always allowed.
        unsafe { bindings::__module_get(module.as_ptr()) };
        // `value()` is `&T` in linux 7.2, `T` in 7.3.
        let all: i32 = *core::borrow::Borrow::borrow(&module_parameters::all.value());
        let all = all != 0;
        // SAFETY: `nr_cpu_ids` is set once during boot.
        let cpus = unsafe { bindings::nr_cpu_ids };
        let (function, on): (SpinThread, core::ops::Range<u32>) = if all {
            (spin_all_thread, 0..1)
        } else {
            (spin_thread, 1..cpus)
        };
        for cpu in on {
            // SAFETY: `function` is a valid thread function; the format has one %u for
            // the CPU number, as `kthread_create_on_cpu()` requires.
            let task = unsafe {
                bindings::kthread_create_on_cpu(
                    Some(function),
                    core::ptr::null_mut(),
                    cpu,
                    c"rer_lockup/%u".as_char_ptr(),
                )
            };
            if task.is_null() || task as usize >= usize::MAX - 4095 {
                return Err(ENOMEM);
            }
            // SAFETY: a freshly created kthread, woken once.
            unsafe { bindings::wake_up_process(task) };
        }
        if all {
            pr_emerg!("rer_lockup: every CPU locks up in 1 s\n");
        } else {
            pr_emerg!("rer_lockup: every CPU but CPU 0 locks up in 1 s\n");
        }
        Ok(Lockup)
    }
}
