// SPDX-License-Identifier: GPL-2.0

//! What several parts of `rust_emergency_reset` share of the C the `kernel`
//! crate does not wrap: string and bool module parameters, statics the kernel
//! links into its lists, the panic CPU slot, the module's own reference,
//! credentials and time. It is also where what differs between the kernel
//! series the module supports (Kbuild's `RER_SUPPORTED`) is made the same, in
//! forms that need no condition: a `bool` parameter through the kernel's
//! exported `param_ops_bool` (linux 7.2's `module!` has no `bool` type),
//! [`param`] for a `module!` parameter's value (7.2 gives `&T`, 7.3 `T`). Each trigger's
//! own C declarations sit in its file (`sysrq.rs`, `nmi.rs`, `oops.rs`,
//! `last_words.rs`), the hardware's in `hw.rs`.
//!
//! Every declaration here was checked against linux 7.3's headers:
//! `include/linux/moduleparam.h` (`struct kparam_string`, `param_ops_string`),
//! `kernel/panic.c` (`panic_try_start`, `panic_reset`).

use core::cell::UnsafeCell;
use kernel::{
    bindings,
    ffi::c_char,
    str::{
        CStr,
        CStrExt, //
    },
};

/// `offsetof()` and `sizeof()` of the structs sysrq.rs, nmi.rs and
/// last_words.rs declare by hand, from the C compiler, generated at build time
/// from `abi_offsets.c` (see `Kbuild`), whose static assertions also check
/// every hand-declared prototype and callback type. Used only in the layout
/// assertions beside each struct, which rustc 1.85 (Debian's) does not count
/// as uses.
#[allow(dead_code)]
pub(crate) mod abi_offsets {
    include!("abi_offsets.rs");
}

/// `offsetof(struct task_struct, ...)` as the C compiler lays the struct
/// out, generated at build time from `task_offsets.c` (see `Kbuild`):
/// bindgen's layout of `task_struct` does not match C's in linux 7.3
/// (`pid`, `comm` and the size all differ on the test kernel). `comm` for
/// `last_words.rs`, `flags` and `PF_EXITING` for `oops.rs`.
#[allow(dead_code)]
pub(crate) mod task_offsets {
    include!("task_offsets.rs");
}

/// `s` at the start of `N` zero bytes, at compile time (`s` must fit).
pub(crate) const fn padded<const N: usize>(s: &str) -> [u8; N] {
    let src = s.as_bytes();
    assert!(src.len() <= N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < src.len() {
        out[i] = src[i];
        i += 1;
    }
    out
}

/// A static NUL-terminated string the kernel reads: a string module
/// parameter's storage (written by the kernel's parameter parser before `init`
/// runs; the parameters are 0444), or the sysrq help text (written by `init`
/// before the key is registered).
#[repr(transparent)]
pub(crate) struct ParamBuf<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the buffer is written only before `init` publishes it (by the module loader, or by
// `init` itself before registering what points to it), and by nobody after; concurrent reads
// are fine.
unsafe impl<const N: usize> Sync for ParamBuf<N> {}

impl<const N: usize> ParamBuf<N> {
    /// A buffer holding `default` and a terminating NUL.
    pub(crate) const fn new(default: &str) -> Self {
        assert!(default.len() < N);
        ParamBuf(UnsafeCell::new(padded(default)))
    }

    /// The raw buffer, for `struct kparam_string`.
    pub(crate) const fn as_ptr(&self) -> *mut c_char {
        self.0.get().cast()
    }

    /// Overwrites the whole buffer with zeros, for a secret parameter once it
    /// has been read.
    ///
    /// # Safety
    ///
    /// Only `init` may call it, before anything that reads the buffer is
    /// registered, and with no reference from [`ParamBuf::value`] alive; the
    /// parameter must have no sysfs file (`perm = 0`), so the kernel reads it
    /// no more after parsing it.
    pub(crate) unsafe fn wipe(&self) {
        let p = self.0.get().cast::<u8>();
        for i in 0..N {
            // SAFETY: `i < N` stays inside the buffer; the caller guarantees nobody else reads
            // or writes it meanwhile. Volatile, so that the stores are not optimised away.
            unsafe { p.add(i).write_volatile(0) };
        }
    }

    /// The value, up to its NUL.
    pub(crate) fn value(&self) -> &[u8] {
        // SAFETY: the kernel's `param_set_copystring()` always leaves a NUL-terminated string
        // within the `N` bytes (it refuses longer values), and nothing writes the buffer after
        // `init` (see the `Sync` impl).
        unsafe { CStr::from_char_ptr(self.as_ptr()) }.to_bytes()
    }
}

/// `struct kparam_string` for a static: its pointer makes it `!Sync` otherwise.
#[repr(transparent)]
pub(crate) struct KparamString(pub(crate) bindings::kparam_string);

// SAFETY: the kernel reads it during parameter parsing and sysfs reads only.
unsafe impl Sync for KparamString {}

/// The `__param` entry and the `modinfo` lines of one module parameter, as
/// C's `module_param_cb()` + `MODULE_PARM_DESC()` make them: `$ops` the
/// kernel's operations for its type, `$arg` the `kernel_param` union's field.
macro_rules! param_entry {
    ($name:literal, $ty:literal, $desc:literal, $ops:ident, $perm:expr, $arg:ident: $value:expr) => {
        #[link_section = "__param"]
        #[used(compiler)]
        static PARAM: kernel::module_param::KernelParam =
            kernel::module_param::KernelParam::new(kernel::bindings::kernel_param {
                name: concat!($name, "\0").as_ptr().cast(),
                // `__this_module` is set up by the module loader and outlives every
                // parameter of this module; only addresses are taken here.
                mod_: core::ptr::addr_of!(kernel::bindings::__this_module).cast_mut(),
                ops: core::ptr::addr_of!(kernel::bindings::$ops),
                perm: $perm,
                level: -1,
                flags: 0,
                __bindgen_anon_1: kernel::bindings::kernel_param__bindgen_ty_1 { $arg: $value },
            });
        const PARM: &str = concat!("parm=", $name, ":", $desc, "\0");
        const PARMTYPE: &str = concat!("parmtype=", $name, ":", $ty, "\0");
        #[link_section = ".modinfo"]
        #[used(compiler)]
        static PARM_INFO: [u8; PARM.len()] = crate::ffi::padded(PARM);
        #[link_section = ".modinfo"]
        #[used(compiler)]
        static PARMTYPE_INFO: [u8; PARMTYPE.len()] = crate::ffi::padded(PARMTYPE);
    };
}
pub(crate) use param_entry;

/// Declares a read-only (0444) string module parameter backed by `$buf`, with
/// `modinfo` entries, as C's `module_param_string()` + `MODULE_PARM_DESC()` do.
/// The `kernel::module!` macro supports only integers (and, from linux 7.3,
/// booleans). With `perm = 0` the parameter has no file in sysfs at all (a
/// secret).
macro_rules! string_param {
    ($buf:ident, $name:literal, $len:literal, $default:literal, $desc:literal) => {
        crate::ffi::string_param!($buf, $name, $len, $default, $desc, perm = 0o444);
    };
    ($buf:ident, $name:literal, $len:literal, $default:literal, $desc:literal, perm = $perm:literal) => {
        static $buf: crate::ffi::ParamBuf<$len> = crate::ffi::ParamBuf::new($default);
        const _: () = {
            static KPS: crate::ffi::KparamString =
                crate::ffi::KparamString(kernel::bindings::kparam_string {
                    maxlen: $len,
                    string: $buf.as_ptr(),
                });
            crate::ffi::param_entry!(
                $name, "string", $desc, param_ops_string, $perm,
                str_: core::ptr::addr_of!(KPS.0)
            );
        };
    };
}
pub(crate) use string_param;

/// A `bool` module parameter's storage, written by the kernel's parameter
/// parser (`param_set_bool()`) before `init` runs; the parameters are 0444.
#[repr(transparent)]
pub(crate) struct ParamBool(UnsafeCell<bool>);

// SAFETY: written only by the module loader before `init`, read only after.
unsafe impl Sync for ParamBool {}

impl ParamBool {
    pub(crate) const fn new(default: bool) -> Self {
        ParamBool(UnsafeCell::new(default))
    }

    /// The raw storage, for `kernel_param.arg`.
    pub(crate) const fn as_ptr(&self) -> *mut bool {
        self.0.get()
    }

    pub(crate) fn value(&self) -> bool {
        // SAFETY: nothing writes it after `init` (see the `Sync` impl); a `bool` is read whole.
        unsafe { *self.0.get() }
    }
}

/// Declares a read-only (0444) `bool` module parameter `$name` backed by
/// `$storage`, with `modinfo` entries, as C's `module_param()` +
/// `MODULE_PARM_DESC()` do, through the kernel's own `param_ops_bool`.
macro_rules! bool_param {
    ($storage:ident, $name:literal, $default:literal, $desc:literal) => {
        static $storage: crate::ffi::ParamBool = crate::ffi::ParamBool::new($default);
        const _: () = {
            crate::ffi::param_entry!(
                $name, "bool", $desc, param_ops_bool, 0o444,
                arg: $storage.as_ptr().cast()
            );
        };
    };
}
pub(crate) use bool_param;

/// The value of a `module!` parameter, whichever the series gives
/// (`ModuleParamAccess::value()`: `&T` in linux 7.2, `T` in 7.3).
pub(crate) fn param<T: Copy>(value: impl core::borrow::Borrow<T>) -> T {
    *value.borrow()
}

/// Takes a reference to this module, for an open `/dev/emergency_reset`: the
/// kernel crate's misc device sets its file operations' `owner` only from
/// linux 7.3 on (with it, the VFS holds a reference of its own); so that an
/// open file pins the module on every series, `open` takes one and `release`
/// gives it back ([`put_module_ref`]). False while the module is being removed.
pub(crate) fn take_module_ref() -> bool {
    // SAFETY: `__this_module` is this module's, set up by the loader; `try_module_get()`
    // refuses a module whose removal has begun.
    unsafe { bindings::try_module_get(core::ptr::addr_of_mut!(bindings::__this_module)) }
}

/// Gives back a reference [`take_module_ref`] took.
///
/// # Safety
///
/// Once for each `true` of [`take_module_ref`]. Only the few instructions that
/// return from the caller may run after it (on linux 7.3 the VFS's own
/// reference covers even those).
pub(crate) unsafe fn put_module_ref() {
    // SAFETY: the caller took the reference given back here.
    unsafe { bindings::module_put(core::ptr::addr_of_mut!(bindings::__this_module)) };
}

/// Whether the caller has `CAP_SYS_BOOT` in the initial user namespace.
pub(crate) fn capable_sys_boot() -> bool {
    // SAFETY: `capable()` may be called from any process context; it checks the current task's
    // credentials against `init_user_ns`.
    unsafe { bindings::capable(bindings::CAP_SYS_BOOT as i32) }
}

/// Monotonic nanoseconds, safe to read from any context (even NMI) without a lock.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: `ktime_get_mono_fast_ns()` is lock-free and NMI-safe by design.
    unsafe { bindings::ktime_get_mono_fast_ns() }
}

/// Real (wall-clock) nanoseconds since the epoch, safe to read from any
/// context without a lock.
pub(crate) fn real_time_ns() -> u64 {
    // SAFETY: `ktime_get_real_fast_ns()` is lock-free and may be called from any context.
    unsafe { bindings::ktime_get_real_fast_ns() }
}

/// The current process's pid (its thread group id).
///
/// Read through the kernel's accessor, never from `task_struct` fields:
/// bindgen's layout of `task_struct` does not match C's in this kernel
/// (`pid` and `comm` come out 0x30 bytes early), so the command name is not
/// logged.
pub(crate) fn current_pid() -> i32 {
    kernel::current!().tgid_nr_ns(None)
}

/// `oops_in_progress`, which the kernel reads without a lock.
fn oops_in_progress() -> &'static core::sync::atomic::AtomicI32 {
    // SAFETY: `oops_in_progress` is a static `int`, aligned as one, for the kernel's life; the
    // kernel itself changes it with plain increments (`bust_spinlocks()`), and no access here
    // is non-atomic.
    unsafe {
        core::sync::atomic::AtomicI32::from_ptr(core::ptr::addr_of_mut!(bindings::oops_in_progress))
    }
}

/// This CPU holds the kernel's panic CPU slot, and `oops_in_progress` is
/// raised, until dropped: the console state of the kernel's own panic path.
///
/// While it does, printk writes to nbcon consoles (the 8250 in linux 7.3)
/// synchronously from this CPU, as during a panic, instead of handing lines to
/// the printer thread that a reset would never let run; and consoles of the
/// old kind (the 8250 in linux 7.2) only try their port's lock
/// (`serial8250_console_write()` with `oops_in_progress`), so a line never
/// waits for a CPU that holds it and will not give it back. It never waits:
/// if another CPU already holds the panic slot, that is not claimed, and the
/// log line stays best effort.
pub(crate) struct PanicCpuClaim(bool);

impl PanicCpuClaim {
    /// Claims the slot for this CPU. The caller must keep interrupts off until
    /// the claim is dropped, so the task cannot move to another CPU meanwhile.
    pub(crate) fn new(_irqs_off: &crate::hw::IrqsOff) -> PanicCpuClaim {
        oops_in_progress().fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        // SAFETY: `panic_try_start()` is one atomic compare-and-exchange of `panic_cpu`.
        PanicCpuClaim(unsafe { bindings::panic_try_start() })
    }
}

impl Drop for PanicCpuClaim {
    fn drop(&mut self) {
        if self.0 {
            // SAFETY: this CPU claimed the slot in `new`; giving it back is one atomic store.
            unsafe { bindings::panic_reset() };
        }
        oops_in_progress().fetch_sub(1, core::sync::atomic::Ordering::Relaxed);
    }
}

/// A static the kernel links into one of its lists (NMI actions, the die
/// notifier chain, misc devices) or reads through a pointer (file
/// operations), so it must be mutable through a shared reference.
pub(crate) struct Linked<T>(UnsafeCell<T>);

// SAFETY: between register and unregister only the kernel's list code touches it, under its
// own lock; this module writes it only before registering it.
unsafe impl<T> Sync for Linked<T> {}

impl<T> Linked<T> {
    pub(crate) const fn new(value: T) -> Self {
        Linked(UnsafeCell::new(value))
    }

    /// The pointer to give the kernel.
    pub(crate) const fn get(&self) -> *mut T {
        self.0.get()
    }
}
