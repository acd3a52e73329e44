// SPDX-License-Identifier: GPL-2.0

//! The NMI trigger, with `nmi=1`: an NMI that no other handler claims (a
//! BMC's or hypervisor's "inject NMI", an external NMI button) resets.
//!
//! ```sh
//! modprobe rust_emergency_reset nmi=1
//! ipmitool chassis power diag      # from another machine: the BMC's NMI
//! virsh inject-nmi GUEST           # a virtual machine's
//! ```
//!
//! The one trigger that reaches a machine whose every CPU spins with
//! interrupts off. The handler runs in NMI context; the kernel offers it only
//! NMIs of the types below that no `NMI_LOCAL` handler (perf, the watchdog,
//! the all-CPU backtrace) claimed.
//!
//! C declarations checked against linux 7.3's `arch/x86/include/asm/nmi.h`
//! (`struct nmiaction`, the NMI types, `NMI_HANDLED`).

use core::ptr;
use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int, //
    },
    prelude::*,
    str::CStr,
};

use crate::{
    emergency_reset,
    ffi::Linked,
    Trigger, //
};

/// `NMI_HANDLED` (arch/x86/include/asm/nmi.h): the NMI was ours.
const NMI_HANDLED: c_int = 1;

/// The NMI types we handle: `NMI_UNKNOWN`, `NMI_SERR`, `NMI_IO_CHECK`
/// (arch/x86/include/asm/nmi.h). Never `NMI_LOCAL`, where perf, the watchdog
/// and the all-CPU backtrace live: the kernel offers the types below only
/// NMIs that no `NMI_LOCAL` handler claimed.
const NMI_TYPES: [u32; 3] = [1, 2, 3];

/// `struct nmiaction` (arch/x86/include/asm/nmi.h); the kernel links `list`.
#[repr(C)]
struct NmiAction {
    list: bindings::list_head,
    handler: unsafe extern "C" fn(u32, *mut bindings::pt_regs) -> c_int,
    max_duration: u64,
    flags: kernel::ffi::c_ulong,
    name: *const c_char,
}

// Our layout is the C compiler's (`abi_offsets.c` checks the handler's type).
const _: () = {
    use crate::ffi::abi_offsets as c;
    use core::mem::{
        offset_of,
        size_of, //
    };
    assert!(size_of::<NmiAction>() == c::NMIACTION_SIZE);
    assert!(offset_of!(NmiAction, handler) == c::NMIACTION_HANDLER);
    assert!(offset_of!(NmiAction, max_duration) == c::NMIACTION_MAX_DURATION);
    assert!(offset_of!(NmiAction, flags) == c::NMIACTION_FLAGS);
    assert!(offset_of!(NmiAction, name) == c::NMIACTION_NAME);
};

const fn nmi_action() -> NmiAction {
    NmiAction {
        list: bindings::list_head {
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
        },
        handler: nmi_handler,
        max_duration: 0,
        flags: 0,
        name: kernel::str::as_char_ptr_in_const_context(NMI_ACTIONS_NAME),
    }
}

/// One action per type of [`NMI_TYPES`]: each is linked into its type's list.
static NMI_ACTIONS: Linked<[NmiAction; 3]> =
    Linked::new([nmi_action(), nmi_action(), nmi_action()]);

extern "C" {
    fn __register_nmi_handler(ty: u32, action: *mut NmiAction) -> c_int;
    fn unregister_nmi_handler(ty: u32, name: *const c_char);
}

/// Called by the kernel in NMI context for an NMI nobody else claimed.
///
/// # Safety
///
/// Only the NMI code calls it, through `NMI_ACTIONS`.
unsafe extern "C" fn nmi_handler(_ty: u32, _regs: *mut bindings::pt_regs) -> c_int {
    // Every NMI that reaches us is ours (we are registered only with `nmi=1`);
    // it resets unless a reset is under way (the first CPU's NMI resets).
    let _ = emergency_reset(Trigger::Nmi, None);
    NMI_HANDLED
}

/// Our handlers for unknown and external NMIs, unregistered when dropped.
pub(crate) struct NmiHandlers(usize);

impl NmiHandlers {
    /// Registers the handlers for every type of [`NMI_TYPES`].
    pub(crate) fn register() -> Result<NmiHandlers> {
        let mut done = NmiHandlers(0);
        for (i, ty) in NMI_TYPES.into_iter().enumerate() {
            // SAFETY: `i` < 3, inside the array; the action is not registered yet, so this
            // module is its only user.
            let action = unsafe { NMI_ACTIONS.get().cast::<NmiAction>().add(i) };
            // SAFETY: as above. `INIT_LIST_HEAD()`: the kernel requires an empty list node.
            unsafe {
                let list = ptr::addr_of_mut!((*action).list);
                (*list).next = list;
                (*list).prev = list;
            }
            // SAFETY: each static action is registered once, for one type, and unregistered in
            // `drop` (by name) before the module's memory goes away.
            let ret = unsafe { __register_nmi_handler(ty, action) };
            kernel::error::to_result(ret)?;
            done.0 = i + 1;
        }
        Ok(done)
    }
}

impl Drop for NmiHandlers {
    fn drop(&mut self) {
        for ty in &NMI_TYPES[..self.0] {
            // SAFETY: registered in `register` under this name; the kernel waits for running
            // handlers (`synchronize_rcu()`) before this returns.
            unsafe { unregister_nmi_handler(*ty, NMI_ACTIONS_NAME.as_char_ptr()) };
        }
    }
}

/// The name our NMI actions are registered under.
const NMI_ACTIONS_NAME: &CStr = c"rust_emergency_reset";

/// Registers the handlers with `nmi=1`.
pub(crate) fn register(on: bool) -> Result<Option<NmiHandlers>> {
    if on {
        NmiHandlers::register().map(Some)
    } else {
        Ok(None)
    }
}
