// SPDX-License-Identifier: GPL-2.0

//! The firmware of a Secure Boot machine ([`SecureBoot`],
//! [`Guest::secure_boot`]): Debian 12's OVMF built for Secure Boot with
//! Microsoft's keys enrolled and Secure Boot enforced ([`OVMF_CODE`],
//! [`OVMF_VARS`]), a copy of its variable store for each guest, with DKMS's
//! key in `MokList` or without ([`SecureBoot::mok`]), and the disk the
//! firmware boots: GPT with one EFI system partition holding Debian 13's
//! shim (as `/EFI/BOOT/BOOTX64.EFI`), its MokManager and Debian's signed grub
//! (`scripts/debian-secure-boot.sh`), a `grub.cfg` that boots the kernel
//! under test (Debian's signed vmlinuz, `RER_KERNEL`) with the guest's
//! initramfs and command line. `qemu_args` is what QEMU gets instead of
//! `-kernel`; [`boot`] starts such a guest and times its boot's phases on the
//! console ([`BootTimes`]).
//!
//! It makes files under the VM's directory with Debian's and the ecosystem's
//! tools (sgdisk, mkfs.fat, mtools, virt-firmware's `virt-fw-vars`); what the
//! guest runs is [`Guest`]'s, the QEMU process [`Vm`]'s.

use crate::{
    Guest,
    Inputs,
    Vm,
    BOOTED, //
};
use std::{
    ffi::OsString,
    fs,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
    sync::OnceLock,
    time::{
        Duration,
        Instant, //
    },
};

/// OVMF's code, built with Secure Boot and SMM (package `ovmf`, Debian 12):
/// it enforces Secure Boot when the variable store says so, and only SMM code
/// may write the store (QEMU's `secure` pflash).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd";
/// OVMF's variable store with Microsoft's KEK and db (the UEFI CA that signs
/// shim) enrolled and Secure Boot on: a PC as it ships.
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd";
/// shim's GUID, the owner of `MokList` entries (`mokutil`'s).
pub const SHIM_LOCK_GUID: &str = "605dab50-e046-4300-abb6-3dd810dd8b23";

/// What grub.cfg prints first: grub has read its configuration (a phase's
/// end for [`BootTimes`]).
pub const GRUB_READ: &str = "RER-GRUB-CONFIG";
/// What grub.cfg prints once grub has loaded the kernel (verified through
/// shim) and the initramfs, right before it starts the kernel.
pub const GRUB_BOOTS: &str = "RER-GRUB-BOOTS-THE-KERNEL";

/// How a guest boots through the firmware.
#[derive(Clone, Debug)]
pub struct SecureBoot {
    /// A certificate (DER, like DKMS's `mok.pub`) put into shim's `MokList`
    /// before the first boot, as a completed MokManager enrollment leaves it
    /// (`virt-fw-vars --add-mok`); `None`: no MOK.
    pub mok: Option<PathBuf>,
}

impl Guest {
    /// The guest boots as a Secure Boot machine: `q35` with SMM, OVMF with
    /// Microsoft's keys, shim, grub and Debian's signed kernel from an EFI
    /// system partition ([`firmware`](crate::firmware)); `mok`, if any, is
    /// enrolled. Also 512 MiB (the firmware's share) and a 5 min limit: OVMF
    /// with SMM is slower under TCG than `-kernel` (measured: 8-29 s from
    /// QEMU's start to `/init`, on 2 cores busy with other guests).
    pub fn secure_boot(mut self, mok: Option<PathBuf>) -> Guest {
        self.machine = "q35,smm=on".to_string();
        self.memory_mib = self.memory_mib.max(512);
        self.timeout = Duration::from_secs(300);
        self.secure_boot = Some(SecureBoot { mok });
        self
    }
}

/// QEMU's arguments that boot `initramfs` with `cmdline` through the
/// firmware, instead of `-kernel`: the firmware's code read-only, a copy of
/// its variable store (with the MOK, if any) and the disk, both made in `dir`.
pub(crate) fn qemu_args(
    sb: &SecureBoot,
    inputs: &Inputs,
    dir: &Path,
    initramfs: &Path,
    cmdline: &str,
) -> Vec<OsString> {
    let vars = dir.join("OVMF_VARS.fd");
    fs::copy(OVMF_VARS, &vars)
        .unwrap_or_else(|e| panic!("{OVMF_VARS}: {e}: run scripts/setup.sh (package ovmf)"));
    if let Some(mok) = &sb.mok {
        run(Command::new(virt_fw_vars())
            .arg("--inplace")
            .arg(&vars)
            .args(["--add-mok", SHIM_LOCK_GUID])
            .arg(mok));
    }
    let disk = dir.join("disk.img");
    make_disk(&disk, dir, &inputs.kernel, initramfs, cmdline);
    let mut args: Vec<OsString> = Vec::new();
    for a in [
        "-global",
        "driver=cfi.pflash01,property=secure,value=on",
        // OVMF's advice for SMM builds: S3 off.
        "-global",
        "ICH9-LPC.disable_s3=1",
        "-drive",
        &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
        "-drive",
        &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
        "-drive",
        &format!("if=none,id=esp,format=raw,file={}", disk.display()),
        "-device",
        "virtio-blk-pci,drive=esp",
    ] {
        args.push(a.into());
    }
    args
}

/// The boot disk: GPT (sgdisk) with one EFI system partition, a FAT file
/// system (mkfs.fat) with the files copied in by mtools:
/// - `/EFI/BOOT/BOOTX64.EFI`: shim, which the firmware starts (the removable
///   media path: no boot entry needed), `grubx64.efi` and `mmx64.efi` beside
///   it, which shim starts from its own directory (no `fbx64.efi`: shim goes
///   straight to grub);
/// - `/EFI/debian/grub.cfg`: where Debian's signed grub, a monolithic image
///   whose prefix is `/EFI/debian`, reads its configuration;
/// - `/vmlinuz` and `/initrd.img`.
fn make_disk(disk: &Path, dir: &Path, kernel: &Path, initramfs: &Path, cmdline: &str) {
    let chain = boot_chain();
    let grub_cfg = dir.join("grub.cfg");
    fs::write(
        &grub_cfg,
        format!(
            "set timeout=0\n\
             echo {GRUB_READ}\n\
             linux /vmlinuz {cmdline}\n\
             initrd /initrd.img\n\
             echo {GRUB_BOOTS}\n\
             boot\n"
        ),
    )
    .unwrap();
    let files: Vec<(PathBuf, &str)> = vec![
        (chain.join("shimx64.efi"), "::/EFI/BOOT/BOOTX64.EFI"),
        (chain.join("grubx64.efi"), "::/EFI/BOOT/grubx64.efi"),
        (chain.join("mmx64.efi"), "::/EFI/BOOT/mmx64.efi"),
        (grub_cfg, "::/EFI/debian/grub.cfg"),
        (kernel.to_path_buf(), "::/vmlinuz"),
        (initramfs.to_path_buf(), "::/initrd.img"),
    ];
    // The partition: what it holds and 16 MiB more, at least 64 MiB (FAT32's
    // smallest, as a real ESP is), in whole MiB.
    const MIB: u64 = 1 << 20;
    let bytes: u64 = files
        .iter()
        .map(|(f, _)| fs::metadata(f).unwrap().len())
        .sum();
    let esp_mib = (bytes.div_ceil(MIB) + 16).max(64);
    let esp = dir.join("esp.img");
    let _ = fs::remove_file(&esp);
    run(Command::new("mkfs.fat")
        .args(["-F", "32", "-n", "ESP", "-C"])
        .arg(&esp)
        .arg((esp_mib * 1024).to_string()));
    run(Command::new("mmd")
        .arg("-i")
        .arg(&esp)
        .args(["::/EFI", "::/EFI/BOOT", "::/EFI/debian"]));
    for (from, to) in &files {
        run(Command::new("mcopy").arg("-i").arg(&esp).arg(from).arg(to));
    }
    // The disk: 1 MiB for the GPT and alignment, the partition, 1 MiB for the
    // backup GPT; the partition written at its offset.
    fs::File::create(disk)
        .unwrap()
        .set_len((esp_mib + 2) * MIB)
        .unwrap();
    run(Command::new("sgdisk")
        .args([
            "-n",
            &format!("1:2048:+{esp_mib}M"),
            "-t",
            "1:ef00",
            "-c",
            "1:ESP",
        ])
        .arg(disk));
    run(Command::new("dd")
        .arg(format!("if={}", esp.display()))
        .arg(format!("of={}", disk.display()))
        .args(["bs=1M", "seek=1", "conv=notrunc,fsync", "status=none"]));
    fs::remove_file(&esp).unwrap();
}

/// The directory of Debian's signed shim, MokManager and grub
/// (`scripts/debian-secure-boot.sh`, which fetches them once into the cache).
fn boot_chain() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| PathBuf::from(script_output("debian-secure-boot.sh", &[])))
}

/// virt-firmware's `virt-fw-vars`, in the virtual environment
/// `scripts/setup.sh` made in the cache.
fn virt_fw_vars() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = PathBuf::from(script_output("setup.sh", &["--virt-fw-vars"]));
        assert!(
            bin.exists(),
            "{} does not exist: run scripts/setup.sh",
            bin.display()
        );
        bin
    })
}

/// What `scripts/<script> args` prints, trimmed; it must succeed.
fn script_output(script: &str, args: &[&str]) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs a tool that must succeed.
fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}: run scripts/setup.sh"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How long a firmware boot's phases took, from the host's clock at each
/// marker's arrival on the console.
#[derive(Clone, Copy, Debug)]
pub struct BootTimes {
    /// Making the variable store and the disk, and starting QEMU.
    pub image: Duration,
    /// From QEMU's start to grub's reading its configuration ([`GRUB_READ`]):
    /// the firmware, shim and grub's start.
    pub firmware: Duration,
    /// From there to grub's starting the kernel ([`GRUB_BOOTS`]): reading
    /// and verifying (through shim) the kernel, reading the initramfs.
    pub grub: Duration,
    /// From there to `/init` ([`BOOTED`]): the kernel's boot.
    pub kernel: Duration,
}

impl BootTimes {
    /// From QEMU's start to `/init`.
    pub fn total(&self) -> Duration {
        self.firmware + self.grub + self.kernel
    }
}

/// Starts `guest` (a [`Guest::secure_boot`] one) and waits for its `/init`,
/// timing the phases; they are printed and appended to
/// `target/secure-boot-times.tsv`. Fails the test if a phase never comes.
/// (Unlike [`Vm::boot`], no second try: a firmware boot that hangs is a
/// finding here.)
pub fn boot(guest: &Guest, inputs: &Inputs) -> (Vm, BootTimes) {
    assert!(
        guest.secure_boot.is_some(),
        "{}: not a Secure Boot guest",
        guest.name
    );
    let t0 = Instant::now();
    let mut vm = Vm::start(guest, inputs);
    let started = Instant::now();
    let mut at = Vec::new();
    for marker in [GRUB_READ, GRUB_BOOTS, BOOTED] {
        assert!(
            vm.wait_for(marker),
            "{}: no {marker} on the console (log {})",
            guest.name,
            vm.log_path().display()
        );
        at.push(Instant::now());
    }
    let times = BootTimes {
        image: started - t0,
        firmware: at[0] - started,
        grub: at[1] - at[0],
        kernel: at[2] - at[1],
    };
    let secs = |d: Duration| format!("{:.1}", d.as_secs_f64());
    println!(
        "SECURE-BOOT-TIMES {}: image {} s, firmware+shim to grub.cfg {} s, grub {} s, \
         kernel to /init {} s, total {} s",
        guest.name,
        secs(times.image),
        secs(times.firmware),
        secs(times.grub),
        secs(times.kernel),
        secs(times.total())
    );
    crate::vm::record(
        "secure-boot-times.tsv",
        &[
            &inputs.kernel_name,
            &guest.name,
            &secs(times.image),
            &secs(times.firmware),
            &secs(times.grub),
            &secs(times.kernel),
            &secs(times.total()),
        ],
    );
    (vm, times)
}
