// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: panics on CPU 1 while a reset attempt is under way.
//!
//! ```sh
//! insmod rer_panic_later.ko                              # in a QEMU test guest only
//! taskset 1 sh -c 'echo reset > /dev/emergency_reset'    # a failing attempt on CPU 0
//! ```
//!
//! Its init starts a kernel thread bound to CPU 1 that reads the kernel log
//! every millisecond (`kmsg_dump_get_line()`, from where the log ended at
//! load). When a line containing `rust_emergency_reset: resetting now:`
//! appears, it waits 10 ms and calls `panic()`: a panic on another CPU while
//! `rust_emergency_reset` tries its methods (each gets 50 ms to act). The
//! panic must go ahead ("Kernel panic - not syncing: rer_panic_later: ..." and
//! its "---[ end Kernel panic" line), not stop silently because the reset
//! holds the panic CPU slot. Unloading stops the thread if it has not fired.

use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int,
        c_void, //
    },
    prelude::*, //
};

module! {
    type: PanicLater,
    name: "rer_panic_later",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: panic on CPU 1 10 ms after rust_emergency_reset logs a reset attempt",
    license: "GPL",
}

/// The CPU the thread is bound to.
const CPU: u32 = 1;
/// What the thread waits for in the log.
const NEEDLE: &[u8] = b"rust_emergency_reset: resetting now:";

/// `struct kmsg_dump_iter` (include/linux/kmsg_dump.h); not in the bindings.
#[repr(C)]
struct KmsgDumpIter {
    cur_seq: u64,
    next_seq: u64,
}

extern "C" {
    /// kernel/printk/printk.c: `cur_seq` = the oldest record, `next_seq` = the next one to come.
    fn kmsg_dump_rewind(iter: *mut KmsgDumpIter);
    /// kernel/printk/printk.c: copies the record at `cur_seq` (text with the
    /// `[time]` prefix, no `<level>` with `syslog` false) and moves past it;
    /// false when there is none yet.
    fn kmsg_dump_get_line(
        iter: *mut KmsgDumpIter,
        syslog: bool,
        line: *mut c_char,
        size: usize,
        len: *mut usize,
    ) -> bool;
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The thread: polls the log until the reset line shows, then panics.
///
/// # Safety
///
/// Only `kthread_create_on_cpu()` calls it, in the new kthread.
unsafe extern "C" fn watch(_data: *mut c_void) -> c_int {
    let mut iter = KmsgDumpIter {
        cur_seq: 0,
        next_seq: 0,
    };
    // SAFETY: `iter` is a valid iterator; rewinding only reads the log's sequence numbers.
    unsafe { kmsg_dump_rewind(&mut iter) };
    // Only lines logged from now on.
    iter.cur_seq = iter.next_seq;
    // SAFETY: a plain read of this CPU's number (the thread is bound to one CPU).
    let cpu = unsafe { bindings::raw_smp_processor_id() };
    pr_emerg!("watching the kernel log on CPU {}\n", cpu);
    let mut line = [0u8; 512];
    // SAFETY: `kthread_should_stop()` is called from the kthread itself.
    while !unsafe { bindings::kthread_should_stop() } {
        let mut len = 0usize;
        // SAFETY: `line` is writable for its length; `len` receives the copied length.
        while unsafe {
            kmsg_dump_get_line(
                &mut iter,
                false,
                line.as_mut_ptr().cast(),
                line.len(),
                &mut len,
            )
        } {
            if contains(&line[..len.min(line.len())], NEEDLE) {
                // SAFETY: a kthread may sleep.
                unsafe { bindings::fsleep(10_000) };
                // SAFETY: the format has no conversion. Deliberately: this panics the machine.
                unsafe {
                    bindings::panic(
                        c"rer_panic_later: panicking on CPU 1 during a reset attempt".as_char_ptr(),
                    )
                };
            }
        }
        // SAFETY: a kthread may sleep; 1 ms (hrtimer-based for delays this short).
        unsafe { bindings::fsleep(1_000) };
    }
    0
}

struct PanicLater(*mut bindings::task_struct);

// SAFETY: the task pointer is only used to stop the thread, from any CPU.
unsafe impl Send for PanicLater {}
// SAFETY: as for `Send`.
unsafe impl Sync for PanicLater {}

impl kernel::Module for PanicLater {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `nr_cpu_ids` is set once during boot.
        if unsafe { bindings::nr_cpu_ids } <= CPU {
            pr_err!("needs CPU {}\n", CPU);
            return Err(EINVAL);
        }
        // SAFETY: `watch` is a valid thread function that returns once asked to stop; the
        // format has one %u for the CPU number, as `kthread_create_on_cpu()` requires.
        let task = unsafe {
            bindings::kthread_create_on_cpu(
                Some(watch),
                core::ptr::null_mut(),
                CPU,
                c"rer_panic_later/%u".as_char_ptr(),
            )
        };
        // An `ERR_PTR()`: the last page of the address space.
        if task.is_null() || task as usize >= usize::MAX - 4095 {
            return Err(ENOMEM);
        }
        // SAFETY: a freshly created kthread, woken once.
        unsafe { bindings::wake_up_process(task) };
        Ok(PanicLater(task))
    }
}

impl Drop for PanicLater {
    fn drop(&mut self) {
        // SAFETY: started in `init`; the thread returns only when asked to, so it is there.
        unsafe { bindings::kthread_stop(self.0) };
    }
}
