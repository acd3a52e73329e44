// SPDX-License-Identifier: GPL-2.0

//! A guest FADT whose reset register points where the test says: the
//! kernel's ACPI table upgrade through the initrd (`CONFIG_ACPI_TABLE_UPGRADE`,
//! `Documentation/admin-guide/acpi/initrd_table_override.rst`).
//!
//! [`Guest::fadt_reset`] asks for it. [`Vm::start`](crate::Vm::start) then
//! prepends to the guest's initramfs a small uncompressed cpio archive holding
//! `kernel/firmware/acpi/FACP.aml`: QEMU's own FACP for that guest's machine
//! (fetched from a guest once, [`firmware_facp`]) with the reset register,
//! the reset value and the `ACPI_FADT_RESET_REGISTER` flag replaced
//! ([`patch_facp`]). The kernel's `acpi_table_upgrade()` finds the file at
//! boot, and `acpi_table_initrd_override()` installs it in place of the
//! firmware's FACP, because it has the same signature, OEM ID and OEM table
//! ID and a higher OEM revision (strictly higher: an equal one is ignored
//! without a word). The kernel logs
//! `ACPI: Table Upgrade: override [FACP-BOCHS -BXPC    ]` ([`upgrade_line`]);
//! [`assert_fadt_override`] checks that line and the module's status line for
//! the register before a test concludes anything. In Linux 7.3 this physical
//! override sets no taint (only the built-in DSDT override taints, with
//! `TAINT_OVERRIDDEN_ACPI_TABLE`); a kernel in lockdown ignores the file
//! ("kernel is locked down, ignoring table override").
//!
//! It owns the FADT override and nothing else: it boots a guest only to
//! fetch QEMU's table (through [`run`]), and the console's mending it relies
//! on is [`console`](crate::console)'s.

use crate::{
    console::mended_console,
    cpio::Archive,
    inputs::target_dir,
    run,
    Guest,
    Inputs,
    Outcome, //
};
use std::{
    fs,
    path::PathBuf,
    process::Command,
    sync::Mutex, //
};

/// Offsets in the FADT (`struct acpi_table_fadt` of `include/acpi/actbl.h`,
/// packed, behind the 36-byte `struct acpi_table_header`).
pub mod fadt {
    /// `header.signature`: "FACP".
    pub const SIGNATURE: usize = 0;
    /// `header.length` (u32).
    pub const LENGTH: usize = 4;
    /// `header.revision`: the reset register exists from revision 2 on.
    pub const REVISION: usize = 8;
    /// `header.checksum`: all bytes of the table sum to 0 mod 256.
    pub const CHECKSUM: usize = 9;
    /// `header.oem_id` (6 bytes).
    pub const OEM_ID: usize = 10;
    /// `header.oem_table_id` (8 bytes).
    pub const OEM_TABLE_ID: usize = 16;
    /// `header.oem_revision` (u32).
    pub const OEM_REVISION: usize = 24;
    /// `flags` (u32).
    pub const FLAGS: usize = 112;
    /// `reset_register`, a 12-byte `struct acpi_generic_address`: `space_id`,
    /// `bit_width`, `bit_offset`, `access_width` (u8 each), `address` (u64).
    pub const RESET_REGISTER: usize = 116;
    /// `reset_value` (u8).
    pub const RESET_VALUE: usize = 128;
    /// `ACPI_FADT_RESET_REGISTER`, bit 10 of `flags`.
    pub const FLAG_RESET_REGISTER: u32 = 1 << 10;
}

/// Where a FADT reset register lives: the ACPI generic address space id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetSpace {
    /// System memory (id 0): the address is physical.
    Memory,
    /// System I/O (id 1): the address is a port.
    Io,
    /// PCI configuration space of segment 0, bus 0 (id 2): the address is
    /// `device << 32 | function << 16 | offset` ([`pci_config_address`]).
    PciConfig,
}

impl ResetSpace {
    /// The generic address space id.
    pub fn id(self) -> u8 {
        match self {
            ResetSpace::Memory => 0,
            ResetSpace::Io => 1,
            ResetSpace::PciConfig => 2,
        }
    }

    /// How the module's status names it (`impl Display for ResetRegister`).
    pub fn status_name(self) -> &'static str {
        match self {
            ResetSpace::Memory => "memory",
            ResetSpace::Io => "io",
            ResetSpace::PciConfig => "pci_config",
        }
    }
}

/// The generic address of a bus-0 PCI configuration register.
pub fn pci_config_address(device: u8, function: u8, offset: u16) -> u64 {
    assert!(
        device < 32 && function < 8,
        "no PCI function {device:02x}.{function}"
    );
    (u64::from(device) << 32) | (u64::from(function) << 16) | u64::from(offset)
}

/// The reset register a guest's FADT declares ([`Guest::fadt_reset`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FadtReset {
    /// Its address space.
    pub space: ResetSpace,
    /// Its address in that space.
    pub address: u64,
    /// The value to write to it.
    pub value: u8,
}

impl FadtReset {
    /// The module's status line for this register, e.g.
    /// `acpi_reset_register: io 0x505 value 0x02`.
    pub fn status_line(&self) -> String {
        format!(
            "acpi_reset_register: {} {:#x} value {:#04x}",
            self.space.status_name(),
            self.address,
            self.value
        )
    }
}

impl Guest {
    /// Gives the guest a FADT whose reset register is `address` in `space`,
    /// with reset value `value` and the `ACPI_FADT_RESET_REGISTER` flag set:
    /// QEMU's own FACP for this guest's machine, patched, installed by the
    /// kernel's ACPI table upgrade from the initrd (see the [module
    /// documentation](self)). Everything else in the table stays QEMU's, so
    /// the machine's other ACPI tables and the rest of the guest are as they
    /// would be. Needs a machine whose FADT has the field (revision 2 or
    /// later: `q35`, `microvm`; not `pc`), and a kernel that is not in
    /// lockdown. Prove the override took with [`assert_fadt_override`].
    ///
    /// [`Vm::start`](crate::Vm::start) takes QEMU's FACP from a guest of the
    /// same machine, CPUs and [`Guest::pvpanic`] ([`firmware_facp`]: booted
    /// once, then cached).
    pub fn fadt_reset(mut self, space: ResetSpace, address: u64, value: u8) -> Guest {
        self.fadt_reset = Some(FadtReset {
            space,
            address,
            value,
        });
        self
    }
}

/// The kernel's log line for the override of the firmware's `facp` by ours
/// (`acpi_table_initrd_override()`, behind `pr_fmt` "ACPI: "), e.g.
/// `ACPI: Table Upgrade: override [FACP-BOCHS -BXPC    ]`.
pub fn upgrade_line(facp: &[u8]) -> String {
    let text = |at: usize, len: usize| String::from_utf8_lossy(&facp[at..at + len]).into_owned();
    format!(
        "ACPI: Table Upgrade: override [{}-{}-{}]",
        text(fadt::SIGNATURE, 4),
        text(fadt::OEM_ID, 6),
        text(fadt::OEM_TABLE_ID, 8)
    )
}

/// Asserts that `guest` ran with its FADT reset register
/// ([`Guest::fadt_reset`]): the console shows the kernel's override line
/// ([`upgrade_line`]) and the module's status line for the register
/// ([`FadtReset::status_line`]; the scenario must `cat /dev/emergency_reset`
/// after loading the module). The first thing a test on a patched FADT
/// checks: without it, nothing else it sees means anything.
pub fn assert_fadt_override(out: &Outcome, guest: &Guest, inputs: &Inputs) {
    let reset = guest
        .fadt_reset
        .expect("assert_fadt_override: the guest has no Guest::fadt_reset");
    let upgrade = upgrade_line(&firmware_facp(guest, inputs));
    assert!(
        out.saw(&upgrade),
        "the kernel did not log {upgrade:?}: the FADT override was not taken; log {}\n{:?}",
        out.log.display(),
        out.lines_with("ACPI")
            .into_iter()
            .filter(|l| l.contains("override") || l.contains("initrd") || l.contains("FACP"))
            .collect::<Vec<_>>()
    );
    let status = reset.status_line();
    assert!(
        mended_console(out).contains(&format!("\n{status}\n")),
        "the module's status does not say {status:?} (got {:?}); log {}",
        out.lines_with("acpi_reset_register:"),
        out.log.display()
    );
}

/// The prefix of the hex dump lines of the FACP-fetching guest.
const DUMP: &str = "RER-FACP";

/// Serializes the fetches of one process: its test threads need the same table.
static FETCH: Mutex<()> = Mutex::new(());

/// QEMU's own FACP for `guest`'s configuration, as the firmware gives it to the
/// kernel (`/sys/firmware/acpi/tables/FACP`).
///
/// Fetched once by booting a guest of the same machine type, CPUs and
/// [`Guest::pvpanic`] (without the module, without an override) that prints
/// the table in hex on its console, then kept in
/// `target/acpi/FACP-<machine>-smp<n>[-pvpanic]-qemu<version>.bin`: the table
/// depends on the machine type and QEMU (the FACS and DSDT addresses in it on
/// where the firmware laid out the tables), not on the kernel. Test threads
/// and processes run in parallel: the file is written under a temporary name
/// and renamed.
pub fn firmware_facp(guest: &Guest, inputs: &Inputs) -> Vec<u8> {
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = target_dir().join("acpi");
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let path = dir.join(format!(
        "FACP-{}-smp{}{}-qemu{}.bin",
        clean(&guest.machine),
        guest.cpus,
        if guest.pvpanic { "-pvpanic" } else { "" },
        clean(&qemu_version())
    ));
    if let Ok(table) = fs::read(&path) {
        check_table(&table).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return table;
    }
    let scenario = format!("od -An -tx1 -v /sys/firmware/acpi/tables/FACP | sed 's/^/{DUMP}/'\n");
    let mut fetch = Guest::new(
        &format!("facp_{}", clean(&guest.machine)),
        inputs,
        &scenario,
    )
    .without_our_module(inputs)
    .machine(&guest.machine)
    .cpus(guest.cpus);
    fetch.pvpanic = guest.pvpanic;
    let out = run(&fetch, inputs);
    out.assert_alive();
    // Mended: a kernel line once landed inside a dump line (a clocksource
    // watchdog message on a loaded host).
    let table = parse_dump(out.mended())
        .and_then(|t| check_table(&t).map(|()| t))
        .unwrap_or_else(|e| panic!("no FACP from the guest: {e}; log {}", out.log.display()));
    fs::create_dir_all(&dir).unwrap();
    let tmp: PathBuf = path.with_extension(format!("tmp.{}", std::process::id()));
    fs::write(&tmp, &table).unwrap();
    fs::rename(&tmp, &path).unwrap();
    table
}

/// The first line of `qemu-system-x86_64 --version`, less its first words:
/// e.g. `7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)`.
fn qemu_version() -> String {
    let out = Command::new(crate::qemu_binary())
        .arg("--version")
        .output()
        .expect("cannot run qemu-system-x86_64: run scripts/setup.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("");
    line.strip_prefix("QEMU emulator version ")
        .unwrap_or(line)
        .trim()
        .to_string()
}

/// The bytes of the `RER-FACP` lines of `od -An -tx1 -v` on the console.
fn parse_dump(serial: &str) -> Result<Vec<u8>, String> {
    let mut table = Vec::new();
    for line in serial.lines().filter_map(|l| l.strip_prefix(DUMP)) {
        for word in line.split_whitespace() {
            let byte = u8::from_str_radix(word, 16).map_err(|_| format!("{word:?} in {line:?}"))?;
            table.push(byte);
        }
    }
    Ok(table)
}

/// Whether `table` is a whole FACP with a good checksum.
fn check_table(table: &[u8]) -> Result<(), String> {
    if table.len() < 36 || &table[fadt::SIGNATURE..4] != b"FACP" {
        return Err(format!("not a FACP ({} bytes)", table.len()));
    }
    let length = u32::from_le_bytes(table[fadt::LENGTH..fadt::LENGTH + 4].try_into().unwrap());
    if length as usize != table.len() {
        return Err(format!("{} bytes, the header says {length}", table.len()));
    }
    if checksum(table) != 0 {
        return Err(format!("bad checksum (sum {:#04x})", checksum(table)));
    }
    Ok(())
}

/// The sum of the bytes mod 256.
fn checksum(table: &[u8]) -> u8 {
    table.iter().fold(0u8, |sum, b| sum.wrapping_add(*b))
}

/// `facp` with the reset register and value of `reset`, the
/// `ACPI_FADT_RESET_REGISTER` flag set, the OEM revision one higher (the
/// kernel upgrades a table only to a strictly higher one), and the checksum
/// fixed. The generic address is `reset.space`, bit width 8, bit offset 0,
/// access width 1 (byte), `reset.address`.
pub fn patch_facp(facp: &[u8], reset: &FadtReset) -> Vec<u8> {
    check_table(facp).unwrap_or_else(|e| panic!("firmware FACP: {e}"));
    let revision = facp[fadt::REVISION];
    assert!(
        revision >= 2 && facp.len() > fadt::RESET_VALUE,
        "this machine's FADT (revision {revision}, {} bytes) has no reset register: \
         use a machine with a revision 2+ FADT (q35)",
        facp.len()
    );
    let mut t = facp.to_vec();
    let reg = fadt::RESET_REGISTER;
    t[reg] = reset.space.id();
    t[reg + 1] = 8;
    t[reg + 2] = 0;
    t[reg + 3] = 1;
    t[reg + 4..reg + 12].copy_from_slice(&reset.address.to_le_bytes());
    t[fadt::RESET_VALUE] = reset.value;
    let flags = u32::from_le_bytes(t[fadt::FLAGS..fadt::FLAGS + 4].try_into().unwrap());
    t[fadt::FLAGS..fadt::FLAGS + 4]
        .copy_from_slice(&(flags | fadt::FLAG_RESET_REGISTER).to_le_bytes());
    let oem_revision = u32::from_le_bytes(
        t[fadt::OEM_REVISION..fadt::OEM_REVISION + 4]
            .try_into()
            .unwrap(),
    );
    t[fadt::OEM_REVISION..fadt::OEM_REVISION + 4]
        .copy_from_slice(&(oem_revision.wrapping_add(1).max(1)).to_le_bytes());
    t[fadt::CHECKSUM] = 0;
    t[fadt::CHECKSUM] = checksum(&t).wrapping_neg();
    debug_assert_eq!(checksum(&t), 0);
    t
}

/// The archive [`Guest::initramfs`] puts before the guest's
/// initramfs: the patched FACP under `kernel/firmware/acpi/`, where
/// `acpi_table_upgrade()` looks (in an uncompressed cpio at the very start of
/// the initrd; the kernel's unpacker takes concatenated archives). Empty
/// without [`Guest::fadt_reset`].
pub(crate) fn early_cpio(guest: &Guest, inputs: &Inputs) -> Vec<u8> {
    let Some(reset) = guest.fadt_reset else {
        return Vec::new();
    };
    let table = patch_facp(&firmware_facp(guest, inputs), &reset);
    let mut archive = Archive::new();
    for d in ["kernel", "kernel/firmware", "kernel/firmware/acpi"] {
        archive.dir(d);
    }
    archive.file("kernel/firmware/acpi/FACP.aml", 0o644, &table);
    archive.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FADT-shaped table of revision 3 with a good checksum.
    fn table() -> Vec<u8> {
        let mut t = vec![0u8; 244];
        t[..4].copy_from_slice(b"FACP");
        t[4..8].copy_from_slice(&244u32.to_le_bytes());
        t[8] = 3;
        t[10..16].copy_from_slice(b"BOCHS ");
        t[16..24].copy_from_slice(b"BXPC    ");
        t[24..28].copy_from_slice(&1u32.to_le_bytes());
        t[112..116].copy_from_slice(&0x84a5u32.to_le_bytes());
        t[9] = checksum(&t).wrapping_neg();
        t
    }

    #[test]
    fn patch_sets_the_register_flag_revision_and_checksum() {
        let reset = FadtReset {
            space: ResetSpace::PciConfig,
            address: pci_config_address(0x1f, 3, 0x3c),
            value: 0x5a,
        };
        let t = patch_facp(&table(), &reset);
        assert_eq!(checksum(&t), 0);
        assert_eq!(&t[116..128], &[2, 8, 0, 1, 0x3c, 0, 3, 0, 0x1f, 0, 0, 0]);
        assert_eq!(t[128], 0x5a);
        assert_eq!(&t[112..116], &(0x84a5u32 | 1 << 10).to_le_bytes());
        assert_eq!(&t[24..28], &2u32.to_le_bytes());
        let before = table();
        for i in (0..t.len())
            .filter(|i| ![9, 24, 112, 113, 116, 117, 119, 120, 122, 124, 128].contains(i))
        {
            assert_eq!(t[i], before[i], "byte {i} changed");
        }
        assert_eq!(
            upgrade_line(&t),
            "ACPI: Table Upgrade: override [FACP-BOCHS -BXPC    ]"
        );
        assert_eq!(
            reset.status_line(),
            "acpi_reset_register: pci_config 0x1f0003003c value 0x5a"
        );
    }

    #[test]
    fn dump_parses() {
        let serial = "boot\nRER-FACP 46 41 43 50\nRER-FACP  05 00\nRER-DONE\n";
        assert_eq!(
            parse_dump(serial).unwrap(),
            vec![0x46, 0x41, 0x43, 0x50, 5, 0]
        );
    }
}
