// SPDX-License-Identifier: GPL-2.0

//! The one place where `rust_emergency_reset` calls C that the `kernel` crate
//! does not wrap, or relies on a C layout: string module parameters, the
//! sysrq key, NMI handlers, the die notifier, a kernel thread, the panic CPU
//! slot, the FADT, `ioremap`, credentials and time.
//!
//! Every declaration here was checked against linux 7.3's headers:
//! `include/linux/sysrq.h` (`struct sysrq_key_op`, `register_sysrq_key`),
//! `include/linux/moduleparam.h` (`struct kparam_string`, `param_ops_string`),
//! `arch/x86/include/asm/nmi.h` (`struct nmiaction`, NMI types),
//! `arch/x86/include/asm/kdebug.h` (`DIE_OOPS`),
//! `kernel/panic.c` (`panic_try_start`, `panic_reset`),
//! `include/acpi/actbl.h` (`struct acpi_table_fadt`, packed).

use core::{
    cell::UnsafeCell,
    ptr, //
};
use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int, //
    },
    prelude::*,
    str::CStr, //
};

use crate::logic::ResetRegister;

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

/// Declares a read-only (0444) string module parameter backed by `$buf`, with
/// `modinfo` entries, as C's `module_param_string()` + `MODULE_PARM_DESC()` do.
/// The `kernel::module!` macro supports only integers and booleans.
macro_rules! string_param {
    ($buf:ident, $name:literal, $len:literal, $default:literal, $desc:literal) => {
        static $buf: crate::ffi::ParamBuf<$len> = crate::ffi::ParamBuf::new($default);
        const _: () = {
            static KPS: crate::ffi::KparamString =
                crate::ffi::KparamString(kernel::bindings::kparam_string {
                    maxlen: $len,
                    string: $buf.as_ptr(),
                });
            #[link_section = "__param"]
            #[used(compiler)]
            static PARAM: kernel::module_param::KernelParam =
                kernel::module_param::KernelParam::new(kernel::bindings::kernel_param {
                    name: concat!($name, "\0").as_ptr().cast(),
                    // `__this_module` is set up by the module loader and outlives every
                    // parameter of this module; only addresses are taken here.
                    mod_: core::ptr::addr_of!(kernel::bindings::__this_module).cast_mut(),
                    ops: core::ptr::addr_of!(kernel::bindings::param_ops_string),
                    perm: 0o444,
                    level: -1,
                    flags: 0,
                    __bindgen_anon_1: kernel::bindings::kernel_param__bindgen_ty_1 {
                        str_: core::ptr::addr_of!(KPS.0),
                    },
                });
            const PARM: &str = concat!("parm=", $name, ":", $desc, "\0");
            const PARMTYPE: &str = concat!("parmtype=", $name, ":string\0");
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARM_INFO: [u8; PARM.len()] = crate::ffi::padded(PARM);
            #[link_section = ".modinfo"]
            #[used(compiler)]
            static PARMTYPE_INFO: [u8; PARMTYPE.len()] = crate::ffi::padded(PARMTYPE);
        };
    };
}
pub(crate) use string_param;

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

/// The current process's pid (its thread group id).
///
/// Read through the kernel's accessor, never from `task_struct` fields:
/// bindgen's layout of `task_struct` does not match C's in this kernel
/// (`pid` and `comm` come out 0x30 bytes early), so the command name is not
/// logged.
pub(crate) fn current_pid() -> i32 {
    kernel::current!().tgid_nr_ns(None)
}

/// This CPU holds the kernel's panic CPU slot until dropped.
///
/// While it does, printk writes to nbcon consoles (the 8250 in linux 7.3)
/// synchronously from this CPU, as during a panic, instead of handing lines to
/// the printer thread that a reset would never let run. It never waits: if
/// another CPU already holds the slot, nothing is claimed and the log line
/// stays best effort.
pub(crate) struct PanicCpuClaim(bool);

impl PanicCpuClaim {
    /// Claims the slot for this CPU. The caller must keep interrupts off until
    /// the claim is dropped, so the task cannot move to another CPU meanwhile.
    pub(crate) fn new(_irqs_off: &crate::hw::IrqsOff) -> PanicCpuClaim {
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
    }
}

/// The FADT fields the ACPI method needs: (revision, flags, reset register).
/// Revision 0 means there is no FADT (ACPI off or absent).
pub(crate) fn fadt() -> (u8, u32, ResetRegister) {
    // SAFETY: `acpi_gbl_FADT` is a static the ACPI core fills once during early boot (zeroed if
    // ACPI is off) and never changes afterwards. The struct is packed, so every field is read
    // unaligned through raw pointers; no reference to a packed field is made.
    unsafe {
        let f = ptr::addr_of!(bindings::acpi_gbl_FADT);
        let reg = ptr::addr_of!((*f).reset_register);
        (
            ptr::addr_of!((*f).header.revision).read_unaligned(),
            ptr::addr_of!((*f).flags).read_unaligned(),
            ResetRegister {
                space: ptr::addr_of!((*reg).space_id).read_unaligned(),
                address: ptr::addr_of!((*reg).address).read_unaligned(),
                value: ptr::addr_of!((*f).reset_value).read_unaligned(),
            },
        )
    }
}

/// A byte of memory-mapped I/O mapped by an [`IoMapping`]: a plain address,
/// copied into the reset engine so the reset path needs no lookup.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MmioByte(*mut kernel::ffi::c_void);

// SAFETY: an MMIO address may be written from any CPU.
unsafe impl Send for MmioByte {}
// SAFETY: as for `Send`; a write is a single store.
unsafe impl Sync for MmioByte {}

impl MmioByte {
    /// Writes `value`: one store, no lock, no sleep.
    pub(crate) fn write(self, value: u8) {
        // SAFETY: `self.0` comes from a live `IoMapping`: the module owns the mapping and drops
        // it only after unregistering every trigger (device, sysrq key), so no reset can run
        // after the unmap. Writing the firmware's reset value to the firmware's reset register
        // is what the caller asked for.
        unsafe { bindings::writeb(value, self.0) };
    }
}

/// A mapping of one byte of physical memory, unmapped when dropped.
pub(crate) struct IoMapping(MmioByte);

impl IoMapping {
    /// Maps the byte at physical address `phys` as the kernel's ACPI code
    /// maps the FADT's registers (`acpi_os_ioremap()`: `ioremap_cache()`, so
    /// that a register in RAM maps too; MMIO stays uncached through the
    /// MTRRs). May sleep: load time only.
    pub(crate) fn map(phys: u64) -> Option<IoMapping> {
        // SAFETY: `ioremap_cache()` may be called from process context; it returns NULL on
        // failure.
        let p = unsafe { bindings::ioremap_cache(phys, 1) };
        // Only a mapping that exists is wrapped: dropping one calls `iounmap()`.
        (!p.is_null()).then(|| IoMapping(MmioByte(p)))
    }

    /// The mapped byte.
    pub(crate) fn byte(&self) -> MmioByte {
        self.0
    }
}

impl Drop for IoMapping {
    fn drop(&mut self) {
        // SAFETY: the address came from `ioremap()` and is unmapped once.
        unsafe { bindings::iounmap(self.0 .0) };
    }
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
    crate::sysrq_reset(key);
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

/// `NMI_HANDLED` / `NMI_DONE` (arch/x86/include/asm/nmi.h).
const NMI_HANDLED: c_int = 1;
const NMI_DONE: c_int = 0;

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
    Linked(UnsafeCell::new([nmi_action(), nmi_action(), nmi_action()]));

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
    if crate::nmi_reset() {
        NMI_HANDLED
    } else {
        NMI_DONE
    }
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
            let action = unsafe { NMI_ACTIONS.0.get().cast::<NmiAction>().add(i) };
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

/// `DIE_OOPS` (arch/x86/include/asm/kdebug.h): `__die()` is reporting an oops.
const DIE_OOPS: kernel::ffi::c_ulong = 1;
/// `NOTIFY_DONE`: the notifier chain goes on.
const NOTIFY_DONE: c_int = 0;

extern "C" {
    fn register_die_notifier(nb: *mut bindings::notifier_block) -> c_int;
    fn unregister_die_notifier(nb: *mut bindings::notifier_block) -> c_int;
}

/// The die notifier.
static DIE_NB: Linked<bindings::notifier_block> =
    Linked(UnsafeCell::new(bindings::notifier_block {
        notifier_call: Some(die_notify),
        next: ptr::null_mut(),
        priority: 0,
    }));

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
        crate::oops_happened();
    }
    NOTIFY_DONE
}

/// Our die notifier, unregistered when dropped.
pub(crate) struct DieNotifier;

impl DieNotifier {
    pub(crate) fn register() -> Result<DieNotifier> {
        // SAFETY: `DIE_NB` is static and unregistered in `drop`.
        kernel::error::to_result(unsafe { register_die_notifier(DIE_NB.0.get()) })?;
        Ok(DieNotifier)
    }
}

impl Drop for DieNotifier {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; the chain waits for running callbacks (RCU).
        unsafe { unregister_die_notifier(DIE_NB.0.get()) };
    }
}

/// A kernel thread calling `crate::oops_watch_tick()` every 100 ms, stopped when dropped.
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
        crate::oops_watch_tick();
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

/// Whether the kernel claimed the PCI configuration ports at 0xCF8 at boot,
/// which it does exactly when it found configuration mechanism #1 or #2 there
/// (arch/x86/pci/direct.c `pci_direct_probe()`, "PCI conf1" / "PCI conf2" in
/// /proc/ioports) and so set its own `port_cf9_safe`, which is not exported.
/// Load time only: the probe claims the ports for a moment when nobody has.
pub(crate) fn pci_config_ports_claimed() -> bool {
    // SAFETY: `ioport_resource` is the kernel's root of I/O port resources; `__request_region()`
    // takes the resource lock and may sleep (process context, load time). A region we obtain
    // is given back at once.
    unsafe {
        let root = ptr::addr_of_mut!(bindings::ioport_resource);
        let r = bindings::__request_region(
            root,
            0xcf8,
            8,
            c"rust_emergency_reset probe".as_char_ptr(),
            0,
        );
        if r.is_null() {
            return true;
        }
        bindings::__release_region(root, 0xcf8, 8);
        false
    }
}

/// `INT_MIN`: our panic notifier runs after every other one.
const LAST_PRIORITY: c_int = c_int::MIN;

extern "C" {
    /// `struct atomic_notifier_head panic_notifier_list` (include/linux/panic_notifier.h).
    static mut panic_notifier_list: bindings::atomic_notifier_head;
}

/// The panic notifier.
static PANIC_NB: Linked<bindings::notifier_block> =
    Linked(UnsafeCell::new(bindings::notifier_block {
        notifier_call: Some(panic_notify),
        next: ptr::null_mut(),
        priority: LAST_PRIORITY,
    }));

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
    crate::oops_panicked();
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
