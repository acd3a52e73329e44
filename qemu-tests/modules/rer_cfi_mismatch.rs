// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: hands the kernel a callback whose type
//! differs from the C prototype.
//!
//! ```sh
//! insmod rer_cfi_mismatch.ko   # in a QEMU test guest only
//! ```
//!
//! The kthread function takes `*mut ThreadData` (a `#[repr(C)]` struct, which
//! kCFI encodes by its name) where `kthread_create_on_node()` wants
//! `int (*)(void *)`: the mistake `net.rs` once made with `nf_hook_state`.
//! On a kernel with `CONFIG_CFI` the kthread's indirect call traps ("CFI
//! failure at kthread+...") and the kthread dies; without kCFI the function
//! runs and prints its line. Proves that the suite's kernel type-checks every
//! callback a module hands it, and that the harness sees a CFI failure.

use kernel::{
    bindings,
    ffi::{
        c_int,
        c_void, //
    },
    prelude::*,
};

module! {
    type: CfiMismatch,
    name: "rer_cfi_mismatch",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: a kthread function of the wrong type",
    license: "GPL",
}

/// What the mistyped function claims to receive.
#[repr(C)]
pub struct ThreadData {
    _opaque: [u8; 0],
}

/// The wrong type: `*mut ThreadData`, not `*mut c_void`.
///
/// # Safety
///
/// Any argument: it is never looked at. Never called on a kCFI kernel.
unsafe extern "C" fn mistyped_thread(_data: *mut ThreadData) -> c_int {
    pr_emerg!("rer_cfi_mismatch: the mistyped function ran (no kCFI)\n");
    0
}

type ThreadFn = unsafe extern "C" fn(*mut c_void) -> c_int;

struct CfiMismatch;

impl kernel::Module for CfiMismatch {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // Never unload: the kthread may still be about to call into this module.
        // SAFETY: `module` is this module; taking a reference to it is always allowed.
        unsafe { bindings::__module_get(module.as_ptr()) };
        // SAFETY: deliberately wrong, and the point of this module: both are `extern "C"`
        // functions of one pointer argument returning `int`, so the call itself is sound at
        // the machine level; only their kCFI types differ.
        let function: ThreadFn = unsafe {
            core::mem::transmute::<unsafe extern "C" fn(*mut ThreadData) -> c_int, ThreadFn>(
                mistyped_thread,
            )
        };
        pr_emerg!("rer_cfi_mismatch: starting a kthread with a mistyped function\n");
        // SAFETY: the format has no conversion; `NUMA_NO_NODE` is -1.
        let task = unsafe {
            bindings::kthread_create_on_node(
                Some(function),
                core::ptr::null_mut(),
                -1,
                c"rer_cfi_mismatch".as_char_ptr(),
            )
        };
        if task.is_null() || task as usize >= usize::MAX - 4095 {
            return Err(ENOMEM);
        }
        // SAFETY: a freshly created kthread, woken once.
        unsafe { bindings::wake_up_process(task) };
        Ok(CfiMismatch)
    }
}
