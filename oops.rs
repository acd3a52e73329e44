// SPDX-License-Identifier: GPL-2.0

//! The oops trigger, with `on_oops=N`: an oops resets the machine N seconds
//! later (0: at once, from the oops itself).
//!
//! ```sh
//! modprobe rust_emergency_reset on_oops=10   # reset 10 s after the first oops
//! ```
//!
//! Three parts: a die notifier that notes the time of the first oops (or,
//! with 0, resets there); a kernel thread that looks every 100 ms and resets
//! when the time is up, so that the oops reaches the console and netconsole
//! first; and a panic notifier, the last of the chain, for an oops that
//! becomes a panic (`panic_on_oops=1`, an oops in interrupt context): the
//! panic stops the other CPUs and the thread with them, so the notifier
//! waits out the delay on the panicking CPU and resets.
//!
//! C declarations checked against linux 7.3's `arch/x86/include/asm/kdebug.h`
//! (`DIE_OOPS`), `include/linux/notifier.h` (`NOTIFY_DONE`, the chains),
//! `include/linux/panic_notifier.h` (`panic_notifier_list`) and
//! `include/linux/kthread.h`.

use core::{
    ptr,
    sync::atomic::{
        AtomicU64,
        Ordering, //
    },
};
use kernel::{bindings, ffi::c_int, prelude::*, sync::SetOnce};

use crate::{
    emergency_reset,
    ffi::{
        self,
        Linked, //
    },
    hw, Trigger,
};

/// When the first oops was seen (`ffi::now_ns()`), 0 before; for `on_oops=N > 0`.
static OOPS_AT: AtomicU64 = AtomicU64::new(0);
/// `on_oops=` as parsed at load; read by the callbacks.
static ON_OOPS: SetOnce<u32> = SetOnce::new();

/// The die notifier's action on an oops (in the oopsing context, before the
/// oops' backtrace is printed).
fn oops_happened() {
    match ON_OOPS.as_ref() {
        Some(0) => {
            let _ = emergency_reset(Trigger::Oops, None);
        }
        Some(_) => {
            // The first oops starts the clock; `oops_watch_tick()` resets when it runs out.
            let _ = OOPS_AT.compare_exchange(
                0,
                ffi::now_ns().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        None => {}
    }
}

/// The panic notifier's action (on the panicking CPU; the other CPUs are
/// stopped, so the watcher thread will never run again): a panic that
/// follows an oops (`panic_on_oops=1`, or an oops in interrupt context)
/// resets `on_oops` seconds after the oops, as the watcher would have. A
/// panic without an oops is left to the kernel's `panic=`.
fn oops_panicked() {
    let Some(&secs) = ON_OOPS.as_ref() else {
        return;
    };
    let at = OOPS_AT.load(Ordering::Relaxed);
    if at == 0 {
        return;
    }
    let deadline = at.saturating_add(u64::from(secs) * 1_000_000_000);
    while ffi::now_ns() < deadline {
        hw::udelay(1000);
    }
    let _ = emergency_reset(Trigger::Oops, None);
}

/// Called every 100 ms by the watcher thread (only with `on_oops=N > 0`).
fn oops_watch_tick() {
    let (Some(&secs), at) = (ON_OOPS.as_ref(), OOPS_AT.load(Ordering::Relaxed)) else {
        return;
    };
    if at != 0 && ffi::now_ns().saturating_sub(at) >= u64::from(secs) * 1_000_000_000 {
        // One try per oops: a failed reset is logged, and the machine keeps running.
        OOPS_AT.store(0, Ordering::Relaxed);
        let _ = emergency_reset(Trigger::Oops, None);
    }
}

/// What `on_oops=N` registers: the die notifier, and for N > 0 the watcher
/// thread and the panic notifier (for an oops that becomes a panic).
pub(crate) type OnOops = (DieNotifier, Option<(OopsWatcher, PanicNotifier)>);

/// Registers what `on_oops=` needs: nothing for `None` (-1).
pub(crate) fn register(on_oops: Option<u32>) -> Result<Option<OnOops>> {
    let Some(secs) = on_oops else {
        return Ok(None);
    };
    if !ON_OOPS.populate(secs) {
        return Err(EBUSY);
    }
    let delayed = if secs > 0 {
        Some((OopsWatcher::start()?, PanicNotifier::register()?))
    } else {
        None
    };
    Ok(Some((DieNotifier::register()?, delayed)))
}

/// `DIE_OOPS` (arch/x86/include/asm/kdebug.h): `__die()` is reporting an oops.
const DIE_OOPS: kernel::ffi::c_ulong = 1;
/// `NOTIFY_DONE`: the notifier chain goes on.
const NOTIFY_DONE: c_int = 0;

extern "C" {
    fn register_die_notifier(nb: *mut bindings::notifier_block) -> c_int;
    fn unregister_die_notifier(nb: *mut bindings::notifier_block) -> c_int;
}

/// The die notifier.
static DIE_NB: Linked<bindings::notifier_block> = Linked::new(bindings::notifier_block {
    notifier_call: Some(die_notify),
    next: ptr::null_mut(),
    priority: 0,
});

/// Called on every die event (oops, int3, GPF...), in the context of the fault.
///
/// # Safety
///
/// Only the die notifier chain calls it, through `DIE_NB`.
unsafe extern "C" fn die_notify(
    _nb: *mut bindings::notifier_block,
    event: kernel::ffi::c_ulong,
    _data: *mut kernel::ffi::c_void,
) -> c_int {
    if event == DIE_OOPS {
        oops_happened();
    }
    NOTIFY_DONE
}

/// Our die notifier, unregistered when dropped.
pub(crate) struct DieNotifier;

impl DieNotifier {
    pub(crate) fn register() -> Result<DieNotifier> {
        // SAFETY: `DIE_NB` is static and unregistered in `drop`.
        kernel::error::to_result(unsafe { register_die_notifier(DIE_NB.get()) })?;
        Ok(DieNotifier)
    }
}

impl Drop for DieNotifier {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; the chain waits for running callbacks (RCU).
        unsafe { unregister_die_notifier(DIE_NB.get()) };
    }
}

/// A kernel thread calling [`oops_watch_tick()`] every 100 ms, stopped when dropped.
pub(crate) struct OopsWatcher(*mut bindings::task_struct);

// SAFETY: the task pointer is only used to stop the thread, from any CPU.
unsafe impl Send for OopsWatcher {}
// SAFETY: as for `Send`.
unsafe impl Sync for OopsWatcher {}

/// The watcher thread's body.
///
/// # Safety
///
/// Only `kthread_create_on_node()` calls it, in the new kthread.
unsafe extern "C" fn oops_watch(_data: *mut kernel::ffi::c_void) -> c_int {
    // SAFETY: `kthread_should_stop()` is called from the kthread itself.
    while !unsafe { bindings::kthread_should_stop() } {
        oops_watch_tick();
        // SAFETY: a kthread may sleep; `kthread_stop()` wakes it.
        unsafe { bindings::msleep_interruptible(100) };
    }
    0
}

impl OopsWatcher {
    pub(crate) fn start() -> Result<OopsWatcher> {
        // SAFETY: `oops_watch` is a valid thread function that returns only once asked to
        // stop; the name is a plain format string without conversions.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(oops_watch),
                ptr::null_mut(),
                bindings::NUMA_NO_NODE,
                c"rer_oops_watch".as_char_ptr(),
            )
        };
        // An `ERR_PTR()`: the last page of the address space.
        if task.is_null() || task as usize >= usize::MAX - 4095 {
            return Err(ENOMEM);
        }
        // SAFETY: `task` is a freshly created, not yet running kthread.
        unsafe { bindings::wake_up_process(task) };
        Ok(OopsWatcher(task))
    }
}

impl Drop for OopsWatcher {
    fn drop(&mut self) {
        // SAFETY: the thread was started in `start` and only returns after this call asks it
        // to, so the task is still there.
        unsafe { bindings::kthread_stop(self.0) };
    }
}

/// `INT_MIN`: our panic notifier runs after every other one.
const LAST_PRIORITY: c_int = c_int::MIN;

extern "C" {
    /// `struct atomic_notifier_head panic_notifier_list` (include/linux/panic_notifier.h).
    static mut panic_notifier_list: bindings::atomic_notifier_head;
}

/// The panic notifier.
static PANIC_NB: Linked<bindings::notifier_block> = Linked::new(bindings::notifier_block {
    notifier_call: Some(panic_notify),
    next: ptr::null_mut(),
    priority: LAST_PRIORITY,
});

/// Called by `panic()` on the panicking CPU, after the other CPUs were
/// stopped and the other panic notifiers ran.
///
/// # Safety
///
/// Only the panic notifier chain calls it, through `PANIC_NB`.
unsafe extern "C" fn panic_notify(
    _nb: *mut bindings::notifier_block,
    _event: kernel::ffi::c_ulong,
    _data: *mut kernel::ffi::c_void,
) -> c_int {
    oops_panicked();
    NOTIFY_DONE
}

/// Our panic notifier, unregistered when dropped.
pub(crate) struct PanicNotifier;

impl PanicNotifier {
    pub(crate) fn register() -> Result<PanicNotifier> {
        // SAFETY: `PANIC_NB` is static and unregistered in `drop`; the chain head is the
        // kernel's, registration takes its spinlock.
        kernel::error::to_result(unsafe {
            bindings::atomic_notifier_chain_register(
                ptr::addr_of_mut!(panic_notifier_list),
                PANIC_NB.get(),
            )
        })?;
        Ok(PanicNotifier)
    }
}

impl Drop for PanicNotifier {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; unregistering waits for running callbacks (RCU).
        unsafe {
            bindings::atomic_notifier_chain_unregister(
                ptr::addr_of_mut!(panic_notifier_list),
                PANIC_NB.get(),
            )
        };
    }
}
