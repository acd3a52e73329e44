// SPDX-License-Identifier: GPL-2.0

//! The sysrq trigger: a key of the kernel's sysrq table that resets.
//!
//! ```sh
//! modprobe rust_emergency_reset sysrq_key=x   # the default; sysrq_key= (empty): none
//! echo x > /proc/sysrq-trigger                # root; also Alt+SysRq+x, serial break + x
//! ```
//!
//! The key obeys `kernel.sysrq` as sysrq-b does (its bit 0x80) on keyboards
//! and serial lines; `/proc/sysrq-trigger` is root's and always works. The
//! handler runs in whatever context the sysrq core calls it: the keyboard's
//! or the UART's interrupt, or the writer of `/proc/sysrq-trigger`.
//!
//! C declarations checked against linux 7.3's `include/linux/sysrq.h`
//! (`struct sysrq_key_op`, `register_sysrq_key`, `unregister_sysrq_key`).

use kernel::{
    ffi::{
        c_char,
        c_int, //
    },
    prelude::*,
    str::BStr,
};

use crate::{
    emergency_reset,
    ffi::{
        self,
        ParamBuf, //
    },
    logic::{
        parse_sysrq_key,
        BadSysrqKey, //
    },
    Trigger,
};

ffi::string_param!(
    SYSRQ_KEY,
    "sysrq_key",
    8,
    "x",
    "Sysrq key that resets (0-9, a-z, A-Z; default x; empty: no sysrq key)"
);

/// The `sysrq_key=` parameter: the key, or none.
pub(crate) fn key_param() -> Result<Option<u8>> {
    parse_sysrq_key(SYSRQ_KEY.value()).map_err(|BadSysrqKey| {
        pr_err!(
            "sysrq_key=\"{}\": not one of 0-9, a-z, A-Z (empty disables)\n",
            BStr::from_bytes(SYSRQ_KEY.value())
        );
        EINVAL
    })
}

/// `SYSRQ_ENABLE_BOOT`: the `kernel.sysrq` bit that also governs sysrq-b.
const SYSRQ_ENABLE_BOOT: c_int = 0x80;

/// `struct sysrq_key_op` (include/linux/sysrq.h).
#[repr(C)]
struct SysrqKeyOp {
    handler: unsafe extern "C" fn(u8),
    help_msg: *const c_char,
    action_msg: *const c_char,
    enable_mask: c_int,
}

// Our layout is the C compiler's (`abi_offsets.c` checks the handler's type).
const _: () = {
    use crate::ffi::abi_offsets as c;
    use core::mem::{
        offset_of,
        size_of, //
    };
    assert!(size_of::<SysrqKeyOp>() == c::SYSRQ_KEY_OP_SIZE);
    assert!(offset_of!(SysrqKeyOp, handler) == c::SYSRQ_KEY_OP_HANDLER);
    assert!(offset_of!(SysrqKeyOp, help_msg) == c::SYSRQ_KEY_OP_HELP_MSG);
    assert!(offset_of!(SysrqKeyOp, action_msg) == c::SYSRQ_KEY_OP_ACTION_MSG);
    assert!(offset_of!(SysrqKeyOp, enable_mask) == c::SYSRQ_KEY_OP_ENABLE_MASK);
};

// SAFETY: read-only after `init`; the kernel only reads it.
unsafe impl Sync for SysrqKeyOp {}

extern "C" {
    fn register_sysrq_key(key: u8, op: *const SysrqKeyOp) -> c_int;
    fn unregister_sysrq_key(key: u8, op: *const SysrqKeyOp) -> c_int;
}

/// Help text for `echo h > /proc/sysrq-trigger`: `emergency-reset(K)`; the key is set at `init`.
static SYSRQ_HELP: ParamBuf<20> = ParamBuf::new("emergency-reset(?)");
/// Where the key goes in [`SYSRQ_HELP`].
const SYSRQ_HELP_KEY_AT: usize = "emergency-reset(".len();

static SYSRQ_OP: SysrqKeyOp = SysrqKeyOp {
    handler: sysrq_handler,
    help_msg: SYSRQ_HELP.as_ptr(),
    action_msg: kernel::str::as_char_ptr_in_const_context(c"Emergency reset"),
    enable_mask: SYSRQ_ENABLE_BOOT,
};

/// Called by the sysrq core, in any context (keyboard interrupt, serial
/// interrupt, a writer of `/proc/sysrq-trigger`), under `rcu_read_lock()`.
///
/// # Safety
///
/// Only the sysrq core calls it, through `SYSRQ_OP`; any `key` is fine.
unsafe extern "C" fn sysrq_handler(key: u8) {
    let _ = emergency_reset(Trigger::Sysrq(key), None);
}

/// Our key in the sysrq table, taken out when dropped.
pub(crate) struct SysrqKey(u8);

impl SysrqKey {
    /// Registers `key`; `None` if another handler has it (the sysrq core then
    /// returns -1, whatever the reason: the key is validated beforehand).
    pub(crate) fn register(key: u8) -> Option<SysrqKey> {
        // SAFETY: called once from `init`, before the op is registered: nobody reads the help
        // text yet. The byte replaced is inside the buffer.
        unsafe { *SYSRQ_HELP.as_ptr().add(SYSRQ_HELP_KEY_AT) = key as c_char };
        // SAFETY: `SYSRQ_OP` is a static that outlives the registration (unregistered in
        // `drop`, before the module's memory goes away).
        let ret = unsafe { register_sysrq_key(key, &SYSRQ_OP) };
        (ret == 0).then(|| SysrqKey(key))
    }
}

impl Drop for SysrqKey {
    fn drop(&mut self) {
        // SAFETY: `self.0` was registered with `SYSRQ_OP` in `register`. The sysrq core waits for
        // running handlers (RCU) before this returns.
        unsafe { unregister_sysrq_key(self.0, &SYSRQ_OP) };
    }
}

/// Registers `key`, if one is configured.
pub(crate) fn register(key: Option<u8>) -> Result<Option<SysrqKey>> {
    let Some(key) = key else {
        return Ok(None);
    };
    match SysrqKey::register(key) {
        Some(k) => Ok(Some(k)),
        None => {
            pr_err!(
                "sysrq key '{}' is taken: choose another with sysrq_key=, or none with sysrq_key=\n",
                key as char
            );
            Err(EBUSY)
        }
    }
}
