// SPDX-License-Identifier: GPL-2.0

//! Deliberately broken test module: corrupts a region of physical memory.
//!
//! ```sh
//! insmod rer_scribble.ko               # in a QEMU test guest only: garbage over "rer_lw"
//! rmmod rer_scribble                   # before each further load
//! insmod rer_scribble.ko mode=1 at=200 # flip one bit of the byte at offset 200 of it
//! insmod rer_scribble.ko mode=2        # only print a checksum of the region
//! insmod rer_scribble.ko mode=3 at=256 # only print the byte at offset 256 of it
//! insmod rer_scribble.ko address=0x1000000 size=4096   # garbage over that range instead
//! ```
//!
//! For the tests of what survives a reset in RAM ("last words"): they reserve
//! a region with `reserve_mem=64K:4096:rer_lw`, write a record into it, and
//! corrupt it with this module to see the record refused. Without `address`,
//! the region is the `reserve_mem` one named `rer_lw`; with it, whatever
//! physical range `address` and `size` say, unchecked: only ever in a test
//! guest. Mode 0 fills the region with pseudo-random bytes, mode 1 flips the
//! lowest bit of the byte at offset `at`, mode 2 writes nothing. Each prints
//! `rer_scribble: mode N at 0x<start> size <size> sum 0x<FNV-1a 64 of the
//! region afterwards>` once done.
//!
//! Mode 3 writes nothing either and prints only the byte at offset `at`:
//! `rer_scribble: byte at 0x<start + at> is 0x<two hex digits>`, for the tests
//! of a FADT reset register in memory space (`dead_methods`), which read the
//! byte before and after the reset engine writes it. Their region is MMIO
//! (q35's chipset configuration registers), which `memremap()` maps uncached
//! there: the MTRRs say so.
//!
//! The module then stays loaded, doing nothing, until `rmmod`: its init must
//! not fail, because busybox's `insmod` answers a failed `finit_module()`
//! with a second try through `init_module()`, which would run the init twice
//! (and flip the bit back).

use kernel::{
    bindings,
    ffi::{
        c_ulong,
        c_void, //
    },
    prelude::*,
};

module! {
    type: Scribble,
    name: "rer_scribble",
    authors: ["rust_emergency_reset developers"],
    description: "TEST ONLY: garbage over a region of physical memory, or one bit flipped",
    license: "GPL",
    params: {
        address: u64 {
            default: 0,
            description: "Physical start of the region; 0: the reserve_mem region rer_lw",
        },
        size: u64 {
            default: 0,
            description: "Size of the region in bytes (with address)",
        },
        mode: u32 {
            default: 0,
            description: "0: random bytes over the region; 1: flip a bit at at; 2: checksum only; 3: print the byte at at",
        },
        at: u64 {
            default: 200,
            description: "Modes 1 and 3: the offset in the region of the byte to flip or print",
        },
    },
}

/// A `module!` parameter's value, whichever the series gives (`&T` in linux
/// 7.2, `T` in 7.3).
fn param<T: Copy>(value: impl core::borrow::Borrow<T>) -> T {
    *value.borrow()
}

/// The `reserve_mem=` name the last-words tests reserve.
const REGION: &CStr = c"rer_lw";

/// The region to corrupt: the parameters, or the `reserve_mem` region [`REGION`].
fn region() -> Result<(u64, u64)> {
    let address: u64 = param(module_parameters::address.value());
    let size: u64 = param(module_parameters::size.value());
    if address != 0 {
        return Ok((address, size));
    }
    let mut start: bindings::phys_addr_t = 0;
    let mut found_size: bindings::phys_addr_t = 0;
    // SAFETY: `REGION` is a NUL-terminated string; `start` and `found_size` are valid for
    // writes. The function takes a mutex: module init is process context.
    let found = unsafe {
        bindings::reserve_mem_find_by_name(REGION.as_char_ptr(), &mut start, &mut found_size)
    };
    if found == 0 {
        pr_err!("no reserve_mem region named rer_lw and no address given\n");
        return Err(ENOENT);
    }
    Ok((start, found_size))
}

/// The next value of a xorshift64 generator (never 0 from a nonzero state).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// FNV-1a 64 of the `len` bytes at `p`.
///
/// # Safety
///
/// `p` must be valid for reads of `len` bytes.
unsafe fn checksum(p: *const u8, len: usize) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for i in 0..len {
        // SAFETY: `i < len`, and the caller guarantees `len` readable bytes at `p`.
        hash ^= u64::from(unsafe { p.add(i).read_volatile() });
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

struct Scribble;

impl kernel::Module for Scribble {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let (start, size) = region()?;
        let mode: u32 = param(module_parameters::mode.value());
        let at: u64 = param(module_parameters::at.value());
        let len = usize::try_from(size).map_err(|_| EINVAL)?;
        if len == 0 || mode > 3 || ((mode == 1 || mode == 3) && at >= size) {
            pr_err!("mode {mode}, at {at}, region size {size}: nothing to do\n");
            return Err(EINVAL);
        }
        // SAFETY: maps `len` bytes at physical `start` write-back cacheable; for RAM (the
        // reserve_mem region) this is the kernel's direct map. The result is checked below.
        let map = unsafe {
            bindings::memremap(start, len, bindings::MEMREMAP_WB as c_ulong).cast::<u8>()
        };
        if map.is_null() {
            pr_err!("cannot map 0x{start:x} size {size}\n");
            return Err(ENOMEM);
        }
        if mode == 0 {
            // SAFETY: no preconditions.
            let mut state = unsafe { bindings::get_random_u64() } | 1;
            for i in 0..len {
                // SAFETY: `map` maps `len` bytes and `i < len`. Writing them is this module's
                // purpose: the region belongs to the tests (reserve_mem), not to the kernel.
                unsafe { map.add(i).write_volatile(xorshift(&mut state) as u8) };
            }
        } else if mode == 1 {
            // `at < size` was checked, so it fits in `usize`.
            let i = at as usize;
            // SAFETY: `map` maps `len` bytes and `i < len`; as above, deliberately.
            unsafe {
                let byte = map.add(i);
                byte.write_volatile(byte.read_volatile() ^ 1);
            }
        }
        if mode == 3 {
            // `at < size` was checked, so it fits in `usize`.
            let i = at as usize;
            // SAFETY: `map` maps `len` bytes and `i < len`; a read only.
            let byte = unsafe { map.add(i).read_volatile() };
            // SAFETY: `map` came from `memremap()` and is not used after this.
            unsafe { bindings::memunmap(map.cast::<c_void>()) };
            pr_info!("byte at 0x{:x} is 0x{byte:02x}\n", start + at);
            return Ok(Scribble);
        }
        // SAFETY: `map` maps `len` bytes.
        let sum = unsafe { checksum(map, len) };
        // SAFETY: `map` came from `memremap()` and is not used after this.
        unsafe { bindings::memunmap(map.cast::<c_void>()) };
        // `pr_info!` puts "rer_scribble: " first.
        pr_info!("mode {mode} at 0x{start:x} size {size} sum 0x{sum:016x}\n");
        // Stays loaded: see the module's documentation.
        Ok(Scribble)
    }
}
