// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: a reboot notifier that never returns.
//!
//! ```sh
//! insmod rer_hung_reboot_notifier.ko   # in a QEMU test guest only
//! reboot -f                            # hangs in kernel_restart_prepare(), for good
//! ```
//!
//! The stuck driver shutdown of seed 000's footnote: `reboot(2)` calls the
//! reboot notifiers, with `system_transition_mutex` held, before it resets;
//! this one sleeps forever. The module cannot be unloaded.

use kernel::{
    bindings,
    ffi::{
        c_int,
        c_ulong,
        c_void, //
    },
    prelude::*,
};

module! {
    type: HungRebootNotifier,
    name: "rer_hung_reboot_notifier",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: a reboot notifier that never returns",
    license: "GPL",
}

extern "C" {
    fn register_reboot_notifier(nb: *mut bindings::notifier_block) -> c_int;
}

unsafe extern "C" fn never_returns(
    _nb: *mut bindings::notifier_block,
    _action: c_ulong,
    _data: *mut c_void,
) -> c_int {
    pr_emerg!("rer_hung_reboot_notifier: reboot notifier called; sleeping forever\n");
    loop {
        // SAFETY: `msleep()` may sleep: reboot notifiers run in process context.
        unsafe { bindings::msleep(1000) };
    }
}

/// The notifier; the kernel links it into its list, so it must be mutable.
struct Notifier(core::cell::UnsafeCell<bindings::notifier_block>);

// SAFETY: only the notifier chain code touches it, under its own lock.
unsafe impl Sync for Notifier {}

static NOTIFIER: Notifier = Notifier(core::cell::UnsafeCell::new(bindings::notifier_block {
    notifier_call: Some(never_returns),
    next: core::ptr::null_mut(),
    priority: 0,
}));

struct HungRebootNotifier;

impl kernel::Module for HungRebootNotifier {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // SAFETY: `NOTIFIER` is static; the module is pinned below, so it is never unloaded
        // while the notifier is registered.
        kernel::error::to_result(unsafe { register_reboot_notifier(NOTIFIER.0.get()) })?;
        // Never unload: the notifier stays registered for good.
        // SAFETY: `module` is this module; taking a reference to it is always allowed.
        unsafe { bindings::__module_get(module.as_ptr()) };
        pr_emerg!("rer_hung_reboot_notifier: armed\n");
        Ok(HungRebootNotifier)
    }
}
