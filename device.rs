// SPDX-License-Identifier: GPL-2.0

//! The device trigger: `/dev/emergency_reset`.
//!
//! ```sh
//! echo reset > /dev/emergency_reset        # reset now, methods in order
//! echo 'reset cf9' > /dev/emergency_reset  # reset with one method only
//! echo forget > /dev/emergency_reset       # erase the last words kept from the previous reset
//! cat /dev/emergency_reset                 # status: order, methods, counters, last words, network
//! ```
//!
//! A writer needs `CAP_SYS_BOOT` in the initial user namespace (`EPERM`).
//! Anything but a documented command is refused with `EINVAL`; `forget`
//! without a last-words region with `ENXIO`. Each refusal is counted, and
//! logged at a limited rate. When `reset` returns at all, no method reset the
//! machine: `EIO`. Reading needs only the node's mode.

use core::sync::atomic::{
    AtomicU64,
    Ordering, //
};
use kernel::{
    fs::{
        File,
        Kiocb, //
    },
    iov::{
        IovIterDest,
        IovIterSource, //
    },
    miscdevice::{
        MiscDevice,
        MiscDeviceOptions,
        MiscDeviceRegistration, //
    },
    prelude::*,
};

use crate::{
    emergency_reset, ffi, last_words_region,
    logic::{
        format_status,
        parse_command,
        BufWriter,
        Command,
        RateLimit,
        Status,
        MAX_COMMAND_LEN, //
    },
    net, oops,
    record::{
        format_last_words,
        LastWords, //
    },
    Trigger, ENGINE, TAKEOVERS, TRIGGERS,
};

/// At most 10 lines about refused writes every 5 s.
static REFUSALS_LOG: RateLimit = RateLimit::new(5_000_000_000, 10);
/// Writes refused since load.
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// What registers the node.
pub(crate) fn options() -> MiscDeviceOptions {
    MiscDeviceOptions {
        name: c"emergency_reset",
    }
}

/// Counts a refused write and logs why, at most [`REFUSALS_LOG`]'s rate.
fn refuse(err: Error, why: &str) -> Error {
    REFUSED.fetch_add(1, Ordering::Relaxed);
    if REFUSALS_LOG.allow(ffi::now_ns()) {
        pr_warn!("refused a write from pid {}: {}\n", ffi::current_pid(), why);
    }
    err
}

/// An open `/dev/emergency_reset`. It carries no state.
pub(crate) struct ResetDevice;

#[vtable]
impl MiscDevice for ResetDevice {
    type Ptr = ();

    /// Pins the module while the file is open (see [`ffi::take_module_ref`]).
    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<()> {
        if ffi::take_module_ref() {
            Ok(())
        } else {
            Err(ENODEV)
        }
    }

    fn release(_device: (), _file: &File) {
        // SAFETY: `open` took the reference for this file, which is now released; nothing of
        // this module runs after this but the return to the kernel crate's release wrapper.
        unsafe { ffi::put_module_ref() };
    }

    fn write_iter(_kiocb: Kiocb<'_, ()>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        if !ffi::capable_sys_boot() {
            return Err(refuse(
                EPERM,
                "no CAP_SYS_BOOT in the initial user namespace",
            ));
        }
        let len = iov.len();
        if len > MAX_COMMAND_LEN {
            return Err(refuse(EINVAL, "command too long"));
        }
        let mut buf = [0u8; MAX_COMMAND_LEN];
        if iov.copy_from_iter(&mut buf[..len]) != len {
            return Err(EFAULT);
        }
        match parse_command(&buf[..len]) {
            Ok(Command::Reset(only)) => emergency_reset(Trigger::Device, only).map(|()| len),
            Ok(Command::Forget) => match last_words_region() {
                Some(region) => region.forget().map(|()| len),
                None => Err(refuse(
                    ENXIO,
                    "forget: no last-words region (mem_name=, mem_address=)",
                )),
            },
            Err(e) => Err(refuse(EINVAL, e.as_str())),
        }
    }

    fn read_iter(mut kiocb: Kiocb<'_, ()>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let engine = ENGINE.as_ref().ok_or(EIO)?;
        let status = Status {
            order: engine.order.as_slice(),
            availability: engine.availability,
            reset_register: engine.reset_register,
            sysrq_key: engine.sysrq_key,
            nmi: engine.nmi,
            on_oops: engine.on_oops,
            crash_kernel: oops::crash_kernel_loaded(),
            triggers: TRIGGERS.load(Ordering::Relaxed),
            refused: REFUSED.load(Ordering::Relaxed),
            takeovers: TAKEOVERS.load(Ordering::Relaxed),
        };
        let words = match engine.last_words {
            Some(region) => region.status(),
            None => LastWords::Off,
        };
        let mut buf = [0u8; 2048];
        let mut out = BufWriter::new(&mut buf);
        format_status(&status, &mut out).map_err(|_| EOVERFLOW)?;
        format_last_words(&words, &mut out).map_err(|_| EOVERFLOW)?;
        net::format_status(&mut out).map_err(|_| EOVERFLOW)?;
        iov.simple_read_from_buffer(kiocb.ki_pos_mut(), out.as_bytes())
    }
}
