// SPDX-License-Identifier: GPL-2.0

//! The guest kernel's log as it was in its RAM when it reset, for a kernel
//! whose console prints from a thread ([`Guest`](crate::Guest) on a
//! `PREEMPT_RT` kernel): there, the lines the reset path logs are in the
//! printk ring buffer but seldom on the console, whose printer thread never
//! runs again (linux 7.2's 8250 console prints only from its thread under
//! `PREEMPT_RT`, even in a panic; 7.3's, an nbcon console, may be owned by
//! its preempted printer thread). QEMU stops the guest at its reset instead
//! of resetting it (the VM's concern, [`Vm`](crate::Vm)), and this reads the
//! ring out of the stopped guest's RAM: where it is ([`RingAddrs`], from the
//! guest's [`PRINTK_RING`] line), and its records ([`read_log`]), printed as
//! the console prints them (`[    1.234567] text`).
//!
//! The layout read here is linux 7.x's `kernel/printk/printk_ringbuffer.h`
//! (`struct printk_ringbuffer`, `prb_desc`, `printk_info`): what the ring
//! says of itself is checked ([`read_log`] refuses a ring whose sizes do not
//! fit together), so a changed layout fails the test that reads it, with
//! that reason, and never yields made-up lines.

/// The line the guest's `/init` prints, on a kernel whose log is read at a
/// reset, with where the ring is: `RER-PRINTK-RING prb=<virt>
/// page_offset_base=<virt> _text=<virt> code=<phys>` (from `/proc/kallsyms`
/// and `/proc/iomem`).
pub const PRINTK_RING: &str = "RER-PRINTK-RING ";

/// The line the harness writes into the console before the records it read
/// at a reset, which follow as the console prints them.
pub const KERNEL_LOG_AT_RESET: &str =
    "[harness] the kernel's log in the guest's RAM at its reset, where the console lags";

/// Where the kernel's log is: enough to turn the kernel's virtual addresses
/// into the guest's physical ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingAddrs {
    /// `prb`: the pointer to the ring in use.
    prb: u64,
    /// `page_offset_base`: the variable holding where the direct map starts.
    page_offset_base: u64,
    /// `_text`, and where it is in physical memory ("Kernel code").
    text_virt: u64,
    code_phys: u64,
}

/// The start of the kernel image's mapping (`__START_KERNEL_map`).
const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

impl RingAddrs {
    /// Reads the guest's [`PRINTK_RING`] line (with or without its prefix);
    /// `None` when a field is missing or zero (`kptr_restrict` hides them).
    pub fn parse(line: &str) -> Option<RingAddrs> {
        let line = line.trim().strip_prefix(PRINTK_RING.trim()).unwrap_or(line);
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| u64::from_str_radix(v, 16).ok())
                .filter(|&v| v != 0)
        };
        Some(RingAddrs {
            prb: field("prb")?,
            page_offset_base: field("page_offset_base")?,
            text_virt: field("_text")?,
            code_phys: field("code")?,
        })
    }
}

/// One record of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub ts_nsec: u64,
    pub text: String,
}

impl Record {
    /// The record as the console prints it: each of its lines after the
    /// `[seconds.microseconds] ` stamp.
    pub fn console_lines(&self) -> Vec<String> {
        let stamp = format!(
            "[{:5}.{:06}] ",
            self.ts_nsec / 1_000_000_000,
            self.ts_nsec % 1_000_000_000 / 1000
        );
        self.text.lines().map(|l| format!("{stamp}{l}")).collect()
    }
}

// struct prb_desc_ring { unsigned int count_bits; struct prb_desc *descs;
// struct printk_info *infos; atomic_long_t head_id, tail_id,
// last_finalized_seq; } then struct prb_data_ring { unsigned int size_bits;
// char *data; atomic_long_t head_lpos, tail_lpos; }.
const RING_SIZE: usize = 80;
const COUNT_BITS: usize = 0;
const DESCS: usize = 8;
const INFOS: usize = 16;
const SIZE_BITS: usize = 48;
const DATA: usize = 56;
// struct prb_desc { atomic_long_t state_var; struct prb_data_blk_lpos
// { unsigned long begin, next; } text_blk_lpos; }.
const DESC_SIZE: usize = 24;
/// The size of `struct printk_info { u64 seq; u64 ts_nsec; u16 text_len; u8
/// facility; u8 flags:5, level:3; u32 caller_id; [CONFIG_PRINTK_EXECUTION_CTX:
/// u32 caller_id2; char comm[16];] struct dev_printk_info dev_info (char
/// subsystem[16], device[48]); }` (aligned to 8), by the kernel's
/// `CONFIG_PRINTK_EXECUTION_CTX`.
pub fn info_size(execution_ctx: bool) -> usize {
    if execution_ctx {
        112
    } else {
        88
    }
}
// The descriptor's state is in the top two bits of state_var: 1 committed,
// 2 finalized (the record is whole); the rest is its id.
const STATE_SHIFT: u32 = 62;
const ID_MASK: u64 = (1 << STATE_SHIFT) - 1;
// A text block's lpos with bit 0 set has no data (FAILED_LPOS, NO_LPOS).
const NO_DATA: u64 = 1;

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// The guest's log records, in order, read with `read(physical address,
/// length)` (the stopped guest's RAM), its `struct printk_info` being
/// `info_size` bytes ([`info_size`]). An error says what did not fit: a
/// ring whose sizes do not fit together, or a record whose sequence number
/// is not its descriptor's (the kernel gives descriptor `i` only numbers
/// `i` modulo the count).
pub fn read_log(
    addrs: &RingAddrs,
    info_size: usize,
    mut read: impl FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Result<Vec<Record>, String> {
    let direct_map = {
        let p = phys(addrs, addrs.page_offset_base, 0)?;
        u64_at(&read(p, 8).ok_or("page_offset_base unreadable")?, 0)
    };
    let mut get = |virt: u64, len: usize, what: &str| {
        let p = phys(addrs, virt, direct_map)?;
        read(p, len).ok_or_else(|| format!("{what} at {virt:#x} (physical {p:#x}) unreadable"))
    };
    let prb = u64_at(&get(addrs.prb, 8, "prb")?, 0);
    let ring = get(prb, RING_SIZE, "the ring")?;
    let count_bits = u32::from_le_bytes(ring[COUNT_BITS..COUNT_BITS + 4].try_into().unwrap());
    let size_bits = u32::from_le_bytes(ring[SIZE_BITS..SIZE_BITS + 4].try_into().unwrap());
    // The kernel sizes its rings at 2^5 bytes of text per record on average
    // (PRB_AVGBITS), from 4 KiB up: anything else is another layout.
    if !(7..=25).contains(&count_bits) || size_bits != count_bits + 5 {
        return Err(format!(
            "the ring at {prb:#x} has {count_bits} descriptor bits and {size_bits} text bits: \
             not linux 7.x's printk_ringbuffer layout"
        ));
    }
    let count = 1usize << count_bits;
    let size = 1u64 << size_bits;
    let descs = get(u64_at(&ring, DESCS), count * DESC_SIZE, "the descriptors")?;
    let infos = get(
        u64_at(&ring, INFOS),
        count * info_size,
        "the records' infos",
    )?;
    let data = get(u64_at(&ring, DATA), size as usize, "the text")?;
    let mut records = Vec::new();
    for i in 0..count {
        let d = &descs[i * DESC_SIZE..(i + 1) * DESC_SIZE];
        let (state_var, begin, next) = (u64_at(d, 0), u64_at(d, 8), u64_at(d, 16));
        let id = state_var & ID_MASK;
        if !matches!(state_var >> STATE_SHIFT, 1 | 2) || begin & NO_DATA != 0 {
            continue;
        }
        let info = &infos[i * info_size..(i + 1) * info_size];
        let seq = u64_at(info, 0);
        if seq as usize % count != i {
            return Err(format!(
                "record {seq} is in descriptor {i} of {count}: not a {info_size}-byte printk_info"
            ));
        }
        let text_len = u16::from_le_bytes(info[16..18].try_into().unwrap()) as usize;
        // A block that wraps around the end of the text ring is whole at its
        // start (get_data() in printk_ringbuffer.c).
        let (index, len) = if begin >> size_bits == next >> size_bits {
            (begin & (size - 1), next.wrapping_sub(begin))
        } else {
            (0, next & (size - 1))
        };
        let (index, len) = (index as usize, len as usize);
        if len < 8 || index + len > data.len() || u64_at(&data, index) != id {
            continue;
        }
        let text = &data[index + 8..index + len];
        let text = &text[..text_len.min(text.len())];
        records.push(Record {
            seq,
            ts_nsec: u64_at(info, 8),
            text: String::from_utf8_lossy(text).into_owned(),
        });
    }
    records.sort_by_key(|r| r.seq);
    Ok(records)
}

/// The physical address of kernel virtual address `virt`: in the kernel
/// image, or in the direct map (from `direct_map`, once known).
fn phys(addrs: &RingAddrs, virt: u64, direct_map: u64) -> Result<u64, String> {
    if virt >= START_KERNEL_MAP {
        virt.checked_sub(addrs.text_virt)
            .map(|off| addrs.code_phys + off)
            .ok_or_else(|| format!("{virt:#x} is below _text"))
    } else if direct_map != 0 && virt >= direct_map {
        Ok(virt - direct_map)
    } else {
        Err(format!(
            "{virt:#x} is neither in the kernel image nor in the direct map"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_VIRT: u64 = 0xffff_ffff_9000_0000;
    const CODE_PHYS: u64 = 0x0200_0000;
    const DIRECT: u64 = 0xffff_9000_0000_0000;

    /// A guest RAM holding a ring of 2^7 descriptors and 4 KiB of text, its
    /// pointer in the image and the ring itself in the direct map, with
    /// `records` (seq, ts_nsec, text) in it, the last one wrapping around the
    /// end of the text ring.
    fn ram(records: &[(u64, u64, &str)]) -> (RingAddrs, Vec<u8>) {
        let mut ram = vec![0u8; 0x0300_0000];
        let put = |ram: &mut Vec<u8>, at: u64, bytes: &[u8]| {
            ram[at as usize..at as usize + bytes.len()].copy_from_slice(bytes);
        };
        let (prb_var, pob_var) = (TEXT_VIRT + 0x1000, TEXT_VIRT + 0x2000);
        let (ring_p, descs_p, infos_p, data_p) = (0x10_0000u64, 0x11_0000, 0x12_0000, 0x14_0000);
        put(
            &mut ram,
            CODE_PHYS + 0x1000,
            &(DIRECT + ring_p).to_le_bytes(),
        );
        put(&mut ram, CODE_PHYS + 0x2000, &DIRECT.to_le_bytes());
        let (count_bits, size_bits) = (7u32, 12u32);
        put(&mut ram, ring_p, &count_bits.to_le_bytes());
        put(&mut ram, ring_p + 8, &(DIRECT + descs_p).to_le_bytes());
        put(&mut ram, ring_p + 16, &(DIRECT + infos_p).to_le_bytes());
        put(&mut ram, ring_p + 48, &size_bits.to_le_bytes());
        put(&mut ram, ring_p + 56, &(DIRECT + data_p).to_le_bytes());
        let size = 1u64 << size_bits;
        // Three wraps in, as after a long boot; the last record wraps.
        let mut lpos = 3 * size + size - 8 * (records.len() as u64 + 20);
        for (n, &(seq, ts, text)) in records.iter().enumerate() {
            // Seven laps of the descriptors in: the id's index is the sequence number's.
            let id = seq + (7 << count_bits);
            let i = id % (1 << count_bits);
            let len = (8 + text.len() as u64).next_multiple_of(8);
            let mut begin = lpos;
            if n == records.len() - 1 {
                begin = (lpos >> size_bits << size_bits) + size - 8;
            }
            let wraps = begin >> size_bits != (begin + len) >> size_bits;
            let (index, next) = if wraps {
                (0, (((begin >> size_bits) + 1) << size_bits) + len)
            } else {
                (begin & (size - 1), begin + len)
            };
            put(&mut ram, data_p + index, &id.to_le_bytes());
            put(&mut ram, data_p + index + 8, text.as_bytes());
            let d = descs_p + i * DESC_SIZE as u64;
            put(&mut ram, d, &((2 << STATE_SHIFT) | id).to_le_bytes());
            put(&mut ram, d + 8, &begin.to_le_bytes());
            put(&mut ram, d + 16, &next.to_le_bytes());
            let f = infos_p + i * info_size(false) as u64;
            put(&mut ram, f, &seq.to_le_bytes());
            put(&mut ram, f + 8, &ts.to_le_bytes());
            put(&mut ram, f + 16, &(text.len() as u16).to_le_bytes());
            lpos = next;
        }
        let line = format!(
            "RER-PRINTK-RING prb={prb_var:x} page_offset_base={pob_var:x} _text={TEXT_VIRT:x} \
             code={CODE_PHYS:x}"
        );
        (RingAddrs::parse(&line).unwrap(), ram)
    }

    fn reader(ram: &[u8]) -> impl FnMut(u64, usize) -> Option<Vec<u8>> + '_ {
        |at, len| ram.get(at as usize..at as usize + len).map(<[u8]>::to_vec)
    }

    #[test]
    fn records_come_back_in_order_with_their_stamps_the_wrapped_one_too() {
        let (addrs, ram) = ram(&[
            (
                7,
                1_361_911_000,
                "rust_emergency_reset: resetting now: trigger sysrq-x",
            ),
            (5, 900_000_000, "sysrq: Trigger a crash"),
            (9, 2_000_001_000, "two\nlines"),
        ]);
        let log = read_log(&addrs, info_size(false), reader(&ram)).unwrap();
        let lines: Vec<String> = log.iter().flat_map(Record::console_lines).collect();
        assert_eq!(
            lines,
            [
                "[    0.900000] sysrq: Trigger a crash",
                "[    1.361911] rust_emergency_reset: resetting now: trigger sysrq-x",
                "[    2.000001] two",
                "[    2.000001] lines",
            ]
        );
    }

    #[test]
    fn a_reused_or_reserved_descriptor_and_a_stale_block_are_not_records() {
        let (addrs, mut ram) = ram(&[(1, 1, "kept"), (2, 2, "reserved"), (3, 3, "stale")]);
        let descs = 0x11_0000 + 2 * DESC_SIZE;
        ram[descs + 7] &= 0x3f; // state 0: reserved
        let data = 0x14_0000usize;
        let stale = (0..4096 - 8)
            .find(|&i| u64_at(&ram, data + i) == 3 + 7 * 128)
            .unwrap();
        ram[data + stale] ^= 1; // the block's id is another record's
        let log = read_log(&addrs, info_size(false), reader(&ram)).unwrap();
        assert_eq!(
            log.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
            ["kept"]
        );
    }

    #[test]
    fn another_layout_is_refused_with_its_sizes() {
        let (addrs, mut ram) = ram(&[(1, 1, "a")]);
        ram[0x10_0000 + SIZE_BITS] = 13; // text bits no longer descriptor bits + 5
        let err = read_log(&addrs, info_size(false), reader(&ram)).unwrap_err();
        assert!(err.contains("7 descriptor bits and 13 text bits"), "{err}");
    }

    #[test]
    fn infos_of_another_size_are_refused() {
        let (addrs, ram) = ram(&[(1, 1, "a"), (2, 2, "b")]);
        let err = read_log(&addrs, info_size(true), reader(&ram)).unwrap_err();
        assert!(err.contains("not a 112-byte printk_info"), "{err}");
    }

    #[test]
    fn a_hidden_address_is_no_addresses() {
        assert_eq!(
            RingAddrs::parse("RER-PRINTK-RING prb=0 page_offset_base=0 _text=0 code=1000000"),
            None
        );
    }
}
