// SPDX-License-Identifier: GPL-2.0

//! The oops trigger, with `on_oops=N`: an oops resets the machine N seconds
//! later (0: at once, from the oops itself), unless kdump takes it.
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
//! kdump first: while a crash kernel is loaded (`kexec_crash_loaded()`), the
//! die notifier does not reset. The kernel hands an oops to the crash kernel
//! right after the die notifiers (`oops_end()`: `kexec_should_crash()`), or
//! from `panic()` for an oops that becomes one, and the crash kernel keeps the
//! dump. An oops it does not hand over is one whose task the kernel kills and
//! lets exit: the notifier keeps a reference to the oopsing task, and the
//! thread resets (after the delay) once that task has `PF_EXITING`, the first
//! thing `do_exit()` sets. The test is the kernel's own outcome rather than a
//! copy of its rule, whose `panic_on_oops` a module cannot read. An oops of
//! PID 1 or of a task already exiting is left to the kernel (killing PID 1
//! panics after `PF_EXITING`); the panic notifier never resets while a crash
//! kernel is loaded (with `crash_kexec_post_notifiers` it comes first).
//!
//! C declarations checked against linux 7.3's `arch/x86/include/asm/kdebug.h`
//! (`DIE_OOPS`), `include/linux/notifier.h` (`NOTIFY_DONE`, the chains),
//! `include/linux/panic_notifier.h` (`panic_notifier_list`),
//! `include/linux/crash_core.h` (`kexec_crash_loaded`, with
//! `CONFIG_CRASH_DUMP`) and `include/linux/kthread.h`; `PF_EXITING` and
//! `task_struct.flags` come from the C compiler (`task_offsets.c`).

use core::{
    ptr,
    sync::atomic::{
        AtomicPtr,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{bindings, ffi::c_int, prelude::*, sync::SetOnce};

use crate::{
    emergency_reset,
    ffi::{
        self,
        task_offsets,
        Linked, //
    },
    hw, Trigger,
};

/// When the first oops was seen (`ffi::now_ns()`), 0 before; for `on_oops=N > 0`.
static OOPS_AT: AtomicU64 = AtomicU64::new(0);
/// `on_oops=` as parsed at load; read by the callbacks.
static ON_OOPS: SetOnce<u32> = SetOnce::new();

/// The oopsing task, with a reference held, while its oops is left to kdump:
/// [`oops_watch_tick()`] resets once it exits (the kernel did not hand the
/// oops to the crash kernel). Null otherwise.
static LEFT_TO_KDUMP: AtomicPtr<bindings::task_struct> = AtomicPtr::new(ptr::null_mut());

#[cfg(CONFIG_CRASH_DUMP)]
extern "C" {
    fn kexec_crash_loaded() -> c_int;
}

/// Whether a crash kernel is loaded (`kexec -p`): kdump takes the oopses the
/// kernel hands to it.
#[cfg(CONFIG_CRASH_DUMP)]
pub(crate) fn crash_kernel_loaded() -> bool {
    // SAFETY: `kexec_crash_loaded()` reads one pointer, from any context.
    unsafe { kexec_crash_loaded() != 0 }
}

/// Never, on a kernel without `CONFIG_CRASH_DUMP`.
#[cfg(not(CONFIG_CRASH_DUMP))]
pub(crate) fn crash_kernel_loaded() -> bool {
    false
}

const _: () = assert!(task_offsets::TASK_FLAGS_SIZE == core::mem::size_of::<u32>());

/// Whether `task` has `PF_EXITING`: `do_exit()` is under way.
///
/// # Safety
///
/// `task` must be a task the caller holds a reference to.
unsafe fn exiting(task: *mut bindings::task_struct) -> bool {
    // SAFETY: `flags` is an `unsigned int` at the offset the C compiler gave it (asserted
    // above), inside a task the caller holds; the kernel sets its bits with plain stores.
    let flags = unsafe {
        task.cast::<u8>()
            .add(task_offsets::TASK_FLAGS)
            .cast::<u32>()
            .read_volatile()
    };
    flags & task_offsets::PF_EXITING_C as u32 != 0
}

/// Gives back the reference [`oops_happened()`] took, if it is still held.
fn forget_left_task() {
    let task = LEFT_TO_KDUMP.swap(ptr::null_mut(), Ordering::AcqRel);
    if !task.is_null() {
        // SAFETY: `oops_happened()` took this reference with `get_task_struct()`; the swap made
        // this its only holder. Called from the watcher thread or module unload: process context.
        unsafe { bindings::put_task_struct(task) };
    }
}

/// The die notifier's action on an oops (in the oopsing context, before the
/// oops' backtrace is printed).
fn oops_happened() {
    let Some(&secs) = ON_OOPS.as_ref() else {
        return;
    };
    if crash_kernel_loaded() {
        // Only the first oops is watched, as the clock only starts at the first.
        if OOPS_AT.load(Ordering::Relaxed) != 0 {
            return;
        }
        let task = kernel::current!().as_ptr();
        // SAFETY: the current task outlives this call; the reference is given back by
        // `forget_left_task()`.
        let watch = ffi::current_pid() != 1 && !unsafe { exiting(task) };
        if watch {
            // SAFETY: as above; `get_task_struct()` is one atomic increment.
            unsafe { bindings::get_task_struct(task) };
            if LEFT_TO_KDUMP
                .compare_exchange(ptr::null_mut(), task, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                // SAFETY: the reference just taken, which nobody else saw.
                unsafe { bindings::put_task_struct(task) };
                return;
            }
        }
        pr_emerg!(
            "oops with a crash kernel loaded: left to kdump; {}\n",
            if watch {
                "reset only if the kernel lets the oopsing task exit"
            } else {
                "no reset from on_oops"
            }
        );
        if watch {
            let _ = OOPS_AT.compare_exchange(
                0,
                ffi::now_ns().max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        return;
    }
    if secs == 0 {
        let _ = emergency_reset(Trigger::Oops, None);
    } else {
        // The first oops starts the clock; `oops_watch_tick()` resets when it runs out.
        let _ = OOPS_AT.compare_exchange(
            0,
            ffi::now_ns().max(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
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
    // With a crash kernel loaded, kdump has the panic: before the notifiers, or
    // right after them with `crash_kexec_post_notifiers`.
    if at == 0 || crash_kernel_loaded() {
        return;
    }
    let deadline = at.saturating_add(u64::from(secs) * 1_000_000_000);
    while ffi::now_ns() < deadline {
        hw::udelay(1000);
    }
    let _ = emergency_reset(Trigger::Oops, None);
}

/// Called every 100 ms by the watcher thread.
fn oops_watch_tick() {
    let (Some(&secs), at) = (ON_OOPS.as_ref(), OOPS_AT.load(Ordering::Relaxed)) else {
        return;
    };
    if at == 0 || ffi::now_ns().saturating_sub(at) < u64::from(secs) * 1_000_000_000 {
        return;
    }
    let task = LEFT_TO_KDUMP.load(Ordering::Acquire);
    if !task.is_null() {
        // SAFETY: the reference `oops_happened()` took is held until `forget_left_task()`,
        // which only this thread and module unload (after this thread stopped) call.
        if !unsafe { exiting(task) } {
            return;
        }
        pr_emerg!("the kernel let the oopsing task exit: not kdump's\n");
        forget_left_task();
    }
    // One try per oops: a failed reset is logged, and the machine keeps running.
    OOPS_AT.store(0, Ordering::Relaxed);
    let _ = emergency_reset(Trigger::Oops, None);
}

/// What `on_oops=N` registers: the die notifier, the watcher thread (for
/// the delay, and for an oops left to kdump) and, for N > 0, the panic
/// notifier (for an oops that becomes a panic).
pub(crate) type OnOops = (DieNotifier, OopsWatcher, Option<PanicNotifier>);

/// Registers what `on_oops=` needs: nothing for `None` (-1).
pub(crate) fn register(on_oops: Option<u32>) -> Result<Option<OnOops>> {
    let Some(secs) = on_oops else {
        return Ok(None);
    };
    if !ON_OOPS.populate(secs) {
        return Err(EBUSY);
    }
    let watcher = OopsWatcher::start()?;
    let panic = if secs > 0 {
        Some(PanicNotifier::register()?)
    } else {
        None
    };
    Ok(Some((DieNotifier::register()?, watcher, panic)))
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
        // The die notifier is gone already (dropped first): nothing takes a new reference.
        forget_left_task();
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
