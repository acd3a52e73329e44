// SPDX-License-Identifier: GPL-2.0

//! Last words: at every reset, a record of who reset the machine, how, and
//! the tail of the kernel log, in RAM that survives the reset; read back
//! after the reboot.
//!
//! ```sh
//! # kernel command line, one of:
//! reserve_mem=64K:4096:rer_lw            # then: modprobe rust_emergency_reset mem_name=rer_lw
//! memmap=64K$0x7f000000                  # then: mem_address=0x7f000000 mem_size=65536
//! cat /dev/emergency_reset               # ... "previous reset: <time>, trigger ..., methods ..., caller ..."
//! cat /dev/emergency_reset_log           # the kernel log before that reset
//! echo forget > /dev/emergency_reset     # erase the record
//! ```
//!
//! The record (format in `logic/src/record.rs`) is written by the reset path
//! before the first method is tried: with interrupts off, without sleeping,
//! allocating or taking a lock. The log tail comes from the printk ring
//! buffer's lockless reader (`kmsg_dump_get_buffer()` with an iterator of our
//! own), straight into the region; the cache lines are then written back
//! (`clflush_cache_range()`), since a reset does not flush caches.

use core::{
    fmt, ptr,
    sync::atomic::{
        AtomicBool,
        AtomicU64,
        Ordering, //
    },
};
use kernel::{
    bindings,
    ffi::{
        c_char,
        c_int,
        c_ulong,
        c_void, //
    },
    prelude::*,
    str::BStr,
};

use crate::{
    ffi::{
        self,
        task_offsets,
        Linked, //
    },
    logic::{
        BufWriter,
        Method,
        MethodList, //
    },
    record::{
        self,
        Caller,
        Header,
        LastWords,
        RecordError,
        COMM_LEN,
        HEADER_LEN,
        MAX_REGION,
        MIN_REGION,
        TRIGGER_LEN, //
    },
};

ffi::string_param!(
    MEM_NAME,
    "mem_name",
    16,
    "",
    "Last words: region reserved with reserve_mem=SIZE:ALIGN:NAME (default: none)"
);

/// `MEMREMAP_WB` (include/linux/io.h).
const MEMREMAP_WB: c_ulong = 1;

/// `struct kmsg_dump_iter` (include/linux/kmsg_dump.h).
#[repr(C)]
struct KmsgDumpIter {
    cur_seq: u64,
    next_seq: u64,
}

// Our layout is the C compiler's (`abi_offsets.c` checks the prototypes).
const _: () = {
    use crate::ffi::abi_offsets as c;
    use core::mem::{
        offset_of,
        size_of, //
    };
    assert!(size_of::<KmsgDumpIter>() == c::KMSG_DUMP_ITER_SIZE);
    assert!(offset_of!(KmsgDumpIter, cur_seq) == c::KMSG_DUMP_ITER_CUR_SEQ);
    assert!(offset_of!(KmsgDumpIter, next_seq) == c::KMSG_DUMP_ITER_NEXT_SEQ);
};

extern "C" {
    fn kmsg_dump_rewind(iter: *mut KmsgDumpIter);
    fn kmsg_dump_get_buffer(
        iter: *mut KmsgDumpIter,
        syslog: bool,
        buf: *mut c_char,
        size: usize,
        len_out: *mut usize,
    ) -> bool;
    fn reserve_mem_find_by_name(name: *const c_char, start: *mut u64, size: *mut u64) -> c_int;
}

/// The region, as the reset path and the readers use it: resolved at load,
/// never changed, valid while the [`Mapping`] lives (the module drops it
/// after every trigger and both device nodes).
#[derive(Clone, Copy)]
pub(crate) struct Region {
    virt: *mut u8,
    phys: u64,
    len: usize,
    boot_id: [u8; 16],
}

// SAFETY: the region is plain memory that any CPU may access; every write goes through
// `Region::save` or `Region::forget`, which exclude each other with `WRITING`.
unsafe impl Send for Region {}
// SAFETY: as for `Send`.
unsafe impl Sync for Region {}

/// The region is being written (a reset saving, or `forget`).
static WRITING: AtomicBool = AtomicBool::new(false);
/// How long the last save took, in ns (0: none since load).
static LAST_SAVE_NS: AtomicU64 = AtomicU64::new(0);

/// The mapping of the region, unmapped when dropped.
pub(crate) struct Mapping(Region);

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: mapped by `memremap()` in `map`, unmapped once; nothing uses the region
        // afterwards (see `Region`).
        unsafe { bindings::memunmap(self.0.virt.cast()) };
    }
}

/// Finds and maps the region the parameters name, if any, and reports what
/// it holds. `mem_address`/`mem_size` come from the `module!` parameters.
pub(crate) fn setup(mem_address: u64, mem_size: u64) -> Result<Option<Mapping>> {
    let name = MEM_NAME.value();
    let (phys, size) = match (name.is_empty(), mem_address, mem_size) {
        (true, 0, 0) => return Ok(None),
        (false, 0, 0) => {
            let (mut start, mut size) = (0u64, 0u64);
            // SAFETY: `MEM_NAME` is NUL-terminated (see `ParamBuf::value`); the function
            // writes the two outputs only when it finds the name.
            let found =
                unsafe { reserve_mem_find_by_name(MEM_NAME.as_ptr(), &mut start, &mut size) };
            if found == 0 {
                pr_err!(
                    "mem_name={}: no such region: reserve one with the kernel parameter reserve_mem=64K:4096:{}\n",
                    BStr::from_bytes(name),
                    BStr::from_bytes(name)
                );
                return Err(ENOENT);
            }
            (start, size)
        }
        (true, a, s) if a != 0 && s != 0 => {
            // memmap=SIZE$ADDRESS takes the range out of System RAM, as an E820 "Reserved"
            // range: a range still in System RAM is the kernel's own memory, which we must not
            // write; one outside "Reserved" memory is a hole or a device's registers.
            let refuse = |why: &str| {
                pr_err!(
                    "mem_address={:#x} mem_size={}: the range is {}: reserve it with memmap={}${:#x}\n",
                    a,
                    s,
                    why,
                    s,
                    a
                );
                EINVAL
            };
            if resources(
                a,
                s,
                bindings::IORESOURCE_SYSTEM_RAM,
                bindings::IORES_DESC_NONE,
            ) != bindings::REGION_DISJOINT
            {
                return Err(refuse("System RAM in use"));
            }
            if resources(
                a,
                s,
                bindings::IORESOURCE_MEM,
                bindings::IORES_DESC_RESERVED,
            ) != bindings::REGION_INTERSECTS
            {
                return Err(refuse("not reserved memory"));
            }
            (a, s)
        }
        _ => {
            pr_err!("last words: give mem_name=, or mem_address= with mem_size=, not both\n");
            return Err(EINVAL);
        }
    };
    if size < MIN_REGION as u64 {
        pr_err!(
            "last words: the region has {} bytes, too small for a record (at least {})\n",
            size,
            MIN_REGION
        );
        return Err(EINVAL);
    }
    let len = (size as usize).min(MAX_REGION);
    // SAFETY: load time, process context. The range is reserved (by `reserve_mem=`, or out of
    // System RAM by `memmap=`, checked above), so nothing else in this kernel uses it.
    let virt = unsafe { bindings::memremap(phys, len, MEMREMAP_WB) }.cast::<u8>();
    if virt.is_null() {
        pr_err!("last words: cannot map {} bytes at {:#x}\n", len, phys);
        return Err(ENOMEM);
    }
    let mut boot_id = [0u8; 16];
    // SAFETY: 16 bytes, a local buffer.
    unsafe { bindings::get_random_bytes(boot_id.as_mut_ptr().cast(), boot_id.len()) };
    let region = Region {
        virt,
        phys,
        len,
        boot_id,
    };
    match region.record() {
        Ok(_) => pr_info!(
            "last words: {} bytes at {:#x}, holding the record of a previous reset\n",
            len,
            phys
        ),
        Err(why) => pr_info!("last words: {} bytes at {:#x}, {}\n", len, phys, why),
    }
    Ok(Some(Mapping(region)))
}

/// How `[start, start + size)` lies against the resources of type `flags`
/// and kind `desc` (`region_intersects()`: `REGION_INTERSECTS`, `_DISJOINT`
/// or `_MIXED`).
fn resources(start: u64, size: u64, flags: u32, desc: u32) -> u32 {
    // SAFETY: a read-only walk of the resource tree under its lock, in process context.
    let r = unsafe {
        bindings::region_intersects(start, size as usize, flags as c_ulong, desc as c_ulong)
    };
    r as u32
}

impl Mapping {
    /// The region, for the engine.
    pub(crate) fn region(&self) -> Region {
        self.0
    }
}

/// Reads `n` bytes of the region at `at` into `out`, one volatile load each: a
/// failing reset on another CPU may be writing it meanwhile (the checksum
/// then tells).
fn read_into(region: &Region, at: usize, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: callers keep `at + out.len()` within `region.len`; the mapping is live.
        *b = unsafe { region.virt.add(at + i).read_volatile() };
    }
}

impl Region {
    /// The record the region holds, checked against its checksum.
    pub(crate) fn record(&self) -> Result<Header, RecordError> {
        let mut b = [0u8; HEADER_LEN];
        read_into(self, 0, &mut b);
        let h = record::decode(&b, self.len)?;
        let mut sum = record::header_checksum(&b);
        let mut chunk = [0u8; 256];
        let mut at = HEADER_LEN;
        let end = HEADER_LEN + h.log_len as usize;
        while at < end {
            let n = chunk.len().min(end - at);
            read_into(self, at, &mut chunk[..n]);
            sum.update(&chunk[..n]);
            at += n;
        }
        record::check(&b, sum)?;
        Ok(h)
    }

    /// The status's view of the region.
    pub(crate) fn status(&self) -> LastWords {
        LastWords::On {
            address: self.phys,
            size: self.len,
            previous: self.record().ok(),
            last_save_ns: match LAST_SAVE_NS.load(Ordering::Relaxed) {
                0 => None,
                ns => Some(ns),
            },
        }
    }

    /// Writes the record of a reset about to be attempted: the header and
    /// the newest kernel log lines that fit. Called on the reset path with
    /// interrupts off: no sleep, no allocation, no lock. If `forget` is
    /// writing the region at this very moment, the record is skipped.
    pub(crate) fn save(
        &self,
        trigger: &dyn fmt::Display,
        order: &[Method],
        caller: Option<Caller>,
    ) {
        if WRITING.swap(true, Ordering::Acquire) {
            return;
        }
        let t0 = ffi::now_ns();
        // SAFETY: `WRITING` makes this the region's only writer; the mapping is live. The magic
        // goes first, so a half-written record never looks valid.
        unsafe { ptr::write_bytes(self.virt, 0, record::MAGIC.len()) };
        let mut iter = KmsgDumpIter {
            cur_seq: 0,
            next_seq: 0,
        };
        let mut log_len = 0usize;
        // SAFETY: `iter` is ours. `kmsg_dump_get_buffer()` reads the printk ring buffer
        // locklessly (any context) and writes at most `len - HEADER_LEN` bytes after the header,
        // inside the region.
        unsafe {
            kmsg_dump_rewind(&mut iter);
            kmsg_dump_get_buffer(
                &mut iter,
                false,
                self.virt.add(HEADER_LEN).cast(),
                self.len - HEADER_LEN,
                &mut log_len,
            );
        }
        let mut text = [0u8; TRIGGER_LEN];
        let _ = fmt::write(&mut BufWriter::new(&mut text), format_args!("{trigger}"));
        let header = Header {
            failed: false,
            log_len: log_len.min(self.len - HEADER_LEN) as u32,
            boot_id: self.boot_id,
            time_ns: ffi::real_time_ns(),
            order: MethodList::from_slice(order),
            caller,
            trigger: text,
        };
        self.write_header(&header);
        LAST_SAVE_NS.store(ffi::now_ns().saturating_sub(t0).max(1), Ordering::Relaxed);
        WRITING.store(false, Ordering::Release);
    }

    /// Marks the record just saved as failed: the machine kept running.
    pub(crate) fn mark_failed(&self) {
        if WRITING.swap(true, Ordering::Acquire) {
            return;
        }
        if let Ok(mut h) = self.record() {
            h.failed = true;
            self.write_header(&h);
        }
        WRITING.store(false, Ordering::Release);
    }

    /// Erases the record (`forget`). `EBUSY` while a reset is saving one.
    pub(crate) fn forget(&self) -> Result {
        if WRITING.swap(true, Ordering::Acquire) {
            return Err(EBUSY);
        }
        // SAFETY: `WRITING` makes this the only writer; the mapping is live.
        unsafe { ptr::write_bytes(self.virt, 0, record::MAGIC.len()) };
        self.write_back(record::MAGIC.len());
        WRITING.store(false, Ordering::Release);
        Ok(())
    }

    /// Seals `h` over the log in the region and writes it, magic last. The
    /// caller holds `WRITING`.
    fn write_header(&self, h: &Header) {
        let mut b = record::encode(h);
        // SAFETY: the log was written by this CPU under `WRITING`, which the caller holds, so
        // nothing writes it while this shared view lives; it lies inside the mapped region.
        let log =
            unsafe { core::slice::from_raw_parts(self.virt.add(HEADER_LEN), h.log_len as usize) };
        record::seal(&mut b, log);
        let magic = record::MAGIC.len();
        // SAFETY: the caller holds `WRITING`; both ranges lie inside the region.
        unsafe {
            ptr::copy_nonoverlapping(
                b[magic..].as_ptr(),
                self.virt.add(magic),
                HEADER_LEN - magic,
            );
            ptr::copy_nonoverlapping(b.as_ptr(), self.virt, magic);
        }
        self.write_back(HEADER_LEN + h.log_len as usize);
    }

    /// Writes the first `n` bytes of the region back from the caches to RAM.
    fn write_back(&self, n: usize) {
        // SAFETY: `n` is within the mapped region; `clflush_cache_range()` flushes lines,
        // with fences, and takes no lock.
        unsafe { bindings::clflush_cache_range(self.virt.cast(), n as u32) };
    }

    /// The saved log, for `/dev/emergency_reset_log`: copies what lies at
    /// `pos` to user space. Empty without a valid record.
    fn read_log(&self, buf: *mut c_char, count: usize, pos: &mut i64) -> isize {
        let Ok(h) = self.record() else {
            return 0;
        };
        let Ok(at) = usize::try_from(*pos) else {
            return EINVAL.to_errno() as isize;
        };
        let len = h.log_len as usize;
        if at >= len {
            return 0;
        }
        let n = count.min(len - at);
        // SAFETY: the source lies inside the mapped region; `copy_to_user()` checks the
        // destination and returns how many bytes it could not copy.
        let left = unsafe {
            bindings::copy_to_user(
                buf.cast(),
                self.virt.add(HEADER_LEN + at).cast::<c_void>(),
                n as c_ulong,
            )
        } as usize;
        if left == n {
            return EFAULT.to_errno() as isize;
        }
        *pos += (n - left) as i64;
        (n - left) as isize
    }
}

/// The kernel's formatting macros take `kernel::fmt::Display`.
impl kernel::fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The writing process, for a trigger that has one (a write to the device).
pub(crate) fn current_caller() -> Caller {
    let task = kernel::current!().as_ptr().cast::<u8>();
    // An array of C's size: it is a `Caller::comm` only if C's size is `COMM_LEN`.
    let mut comm = [0u8; task_offsets::TASK_COMM_LEN_C];
    for (i, c) in comm.iter_mut().enumerate() {
        // SAFETY: `comm` is a `char[TASK_COMM_LEN]` inside the current task, at the offset the
        // C compiler gave it; the task outlives this call. A racing `prctl(PR_SET_NAME)` can
        // only mix two names, as `get_task_comm()` can.
        *c = unsafe { task.add(task_offsets::TASK_COMM + i).read_volatile() };
    }
    comm[COMM_LEN - 1] = 0;
    // SAFETY: `current_euid()` reads the current task's credentials, valid for the task's
    // life; `from_kuid()` maps it into the initial user namespace without locking.
    let uid = unsafe {
        bindings::from_kuid(
            ptr::addr_of_mut!(bindings::init_user_ns),
            bindings::current_euid(),
        )
    };
    Caller {
        pid: ffi::current_pid(),
        uid,
        comm,
    }
}

/// The file operations of `/dev/emergency_reset_log`: read and seek.
static LOG_FOPS: Linked<bindings::file_operations> = Linked::new({
    // SAFETY: all-zero is a valid `file_operations`: null pointers and `None`s.
    let mut f: bindings::file_operations = unsafe { core::mem::zeroed() };
    // Only the address of `__this_module` is taken: the module loader sets it up, and it
    // outlives every open file of this module (the VFS holds a module reference through it).
    f.owner = ptr::addr_of!(bindings::__this_module).cast_mut();
    f.read = Some(log_read);
    f.llseek = Some(bindings::default_llseek);
    f
});

/// `/dev/emergency_reset_log`: the log saved with the record, mode 0400.
/// Registered by hand: the `kernel` crate's `MiscDeviceOptions` has no mode.
static LOG_DEV: Linked<bindings::miscdevice> = Linked::new({
    // SAFETY: all-zero is a valid `miscdevice` before registration.
    let mut m: bindings::miscdevice = unsafe { core::mem::zeroed() };
    m.minor = bindings::MISC_DYNAMIC_MINOR as c_int;
    m.name = kernel::str::as_char_ptr_in_const_context(c"emergency_reset_log");
    m.fops = LOG_FOPS.get().cast_const();
    m.mode = 0o400;
    m
});

/// Reads the saved log.
///
/// # Safety
///
/// Only the VFS calls it, through `LOG_FOPS`, with a user buffer of `count`
/// bytes and the file's position.
unsafe extern "C" fn log_read(
    _file: *mut bindings::file,
    buf: *mut c_char,
    count: usize,
    pos: *mut bindings::loff_t,
) -> isize {
    let Some(region) = crate::last_words_region() else {
        return 0;
    };
    // SAFETY: the VFS passes a valid position that only this call uses.
    region.read_log(buf, count, unsafe { &mut *pos })
}

/// `/dev/emergency_reset_log` while registered.
pub(crate) struct LogDevice;

impl LogDevice {
    /// Registers the node (only when there is a region).
    pub(crate) fn register() -> Result<LogDevice> {
        // SAFETY: `LOG_DEV` is static, registered once here and deregistered in `drop`.
        kernel::error::to_result(unsafe { bindings::misc_register(LOG_DEV.get()) })?;
        Ok(LogDevice)
    }
}

impl Drop for LogDevice {
    fn drop(&mut self) {
        // SAFETY: registered in `register`; `misc_deregister()` removes the node, and the
        // module's reference (`owner`) keeps it loaded while a file is open.
        unsafe { bindings::misc_deregister(LOG_DEV.get()) };
    }
}
