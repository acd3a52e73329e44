// SPDX-License-Identifier: GPL-2.0

//! A real Secure Boot machine, booted as a Debian server boots: UEFI firmware
//! with Microsoft's keys enrolled and Secure Boot enforced (Debian 12's
//! OVMF), Debian 13's shim (signed by Microsoft), Debian's signed grub,
//! Debian's signed kernel (the primary Debian kernel of `make check`), which
//! locks itself down because the firmware says Secure Boot is on, and our
//! module as DKMS built and signed it with its MOK key, accepted because
//! that key is in shim's `MokList` (the machine: `qemu_tests::firmware`).
//!
//! The one step of a sysadmin's not run here is the MokManager screen:
//! `mokutil --import /var/lib/dkms/mok.pub`, then at the next boot shim's
//! MokManager asks to confirm and writes the certificate into `MokList`.
//! The test writes that same variable before the first boot (`virt-fw-vars
//! --add-mok`), which is what a completed enrollment leaves; from there on
//! the firmware, shim, grub and the kernel do everything themselves.
//!
//! Three boots (OVMF with SMM is slow under TCG): with the MOK, the
//! refusals and the seed scenario reset through the device; with the MOK,
//! an injected NMI resets while every CPU spins; without the MOK (the
//! control), the same DKMS-signed module is refused. The test modules that
//! make the faults are signed with the same MOK key, as a sysadmin signs
//! their own modules; the module under test is DKMS's, untouched.
//!
//! Run by `make check` in its pass on Debian's primary kernel.

use qemu_tests::{
    debian_root::{
        dkms_lock,
        in_build_root,
        installed,
        VERSION, //
    },
    firmware,
    guest_helper,
    is_signed,
    lockdown_refusals,
    rescue_helper,
    show_text,
    unsigned_copy,
    Guest,
    Inputs,
    Outcome,
    DRAIN,
    SHOW_LOCKDOWN,
    STUCK_REBOOT, //
};
use serde_json::json;
use std::{
    fs,
    path::{
        Path,
        PathBuf, //
    },
    time::{
        Duration,
        Instant, //
    },
};

/// The subject of DKMS's MOK certificate (`/var/lib/dkms/mok.pub`), which
/// the kernel names the key after.
const DKMS_KEY: &str = "DKMS module signing key";

/// How `insmod` words `EKEYREJECTED`, the error of a module whose signature
/// the kernel does not accept while it enforces signatures.
const KEY_REJECTED: &str = "Key was rejected by service";

/// Guest commands: what the kernel says about Secure Boot and lockdown, its
/// command line, and the keys it holds: DKMS's key's line in `/proc/keys`
/// and the serials of the keys in the `.machine` keyring (`rer-keyring`).
fn show_secure_boot() -> String {
    format!(
        "echo \"RER-CMDLINE $(cat /proc/cmdline)\"\n\
         dmesg | grep -i -e 'secure boot' -e 'locked down' -e 'MokListRT' -e 'X.509 cert' \
         | sed 's/^/RER-KMSG /'\n\
         grep '{DKMS_KEY}' /proc/keys | sed 's/^/RER-DKMS-KEY /'\n\
         m=$(awk '$8 == \"keyring\" && $9 == \".machine:\" {{print $1}}' /proc/keys)\n\
         echo \"RER-MACHINE-KEYRING id=$m keys=$(rer-keyring $m)\"\n"
    )
}

/// What the tests boot with: DKMS's module and its MOK, and the test
/// modules signed with that MOK, in a directory of this test's.
struct Signed {
    /// The module as `dkms install` built, signed and installed it.
    dkms_ko: PathBuf,
    /// DKMS's MOK certificate (DER), which the firmware's MokList gets.
    mok: PathBuf,
    /// The test modules named, signed with DKMS's MOK key.
    test_modules: Vec<PathBuf>,
    dir: PathBuf,
}

/// `dkms install` for the kernel under test, in the build root, as a
/// sysadmin runs it; its module and DKMS's MOK certificate copied out, and
/// `test_modules` signed with DKMS's MOK key by the kernel's `sign-file`.
fn dkms_signed(inputs: &Inputs, test: &str, test_modules: &[&str]) -> Signed {
    let release = &inputs.kernel_name;
    let dir = inputs.target_dir("secure-boot").join(test);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut one = dkms_lock();
    let root = one.add();
    let (rc, log) = in_build_root(&format!(
        "dkms install rust_emergency_reset/{VERSION} -k {release}"
    ));
    assert_eq!(rc, Some(0), "dkms install:\n{log}");
    let dkms_ko = dir.join("rust_emergency_reset.ko");
    fs::copy(installed(&root, release), &dkms_ko).unwrap();
    let mok = dir.join("mok.pub");
    fs::copy(root.join("var/lib/dkms/mok.pub"), &mok).unwrap();
    let key = root.join("var/lib/dkms/mok.key");
    assert!(
        is_signed(&dkms_ko),
        "DKMS did not sign {}",
        dkms_ko.display()
    );
    let test_modules = test_modules
        .iter()
        .map(|m| {
            let ko = unsigned_copy(&inputs.test_module(m), &dir.join("mok-signed"));
            sign(inputs, &ko, &key, &mok);
            ko
        })
        .collect();
    drop(one);
    Signed {
        dkms_ko,
        mok,
        test_modules,
        dir,
    }
}

/// Signs `ko` in place with `key` and `cert` by the kernel's own
/// `scripts/sign-file` (a Debian 13 binary: run in the build root, where
/// the clone and the cache are at the same paths), with the kernel's hash.
fn sign(inputs: &Inputs, ko: &Path, key: &Path, cert: &Path) {
    let config = fs::read_to_string(inputs.kdir.join(".config")).unwrap();
    let hash = config
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .map(|h| h.trim_matches('"').to_string())
        .unwrap_or_else(|| "sha256".to_string());
    let (rc, log) = in_build_root(&format!(
        "'{}/scripts/sign-file' {hash} '{}' '{}' '{}'",
        inputs.kdir.display(),
        key.display(),
        cert.display(),
        ko.display()
    ));
    assert_eq!(rc, Some(0), "sign-file {}:\n{log}", ko.display());
    assert!(is_signed(ko), "{} not signed", ko.display());
}

/// A copy of DKMS's module signed instead with a key made here, which no
/// keyring of the guest's holds (openssl, then the kernel's `sign-file`).
fn signed_with_a_key_not_enrolled(inputs: &Inputs, signed: &Signed) -> PathBuf {
    let dir = signed.dir.join("not-enrolled");
    let ko = unsigned_copy(&signed.dkms_ko, &dir);
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.der"));
    let (rc, log) = in_build_root(&format!(
        "openssl req -new -x509 -nodes -days 1 -subj '/CN=A key nobody enrolled' \
         -newkey rsa:2048 -keyout '{}' -outform DER -out '{}'",
        key.display(),
        cert.display()
    ));
    assert_eq!(rc, Some(0), "openssl:\n{log}");
    sign(inputs, &ko, &key, &cert);
    ko
}

/// The kernel booted under Secure Boot and locked itself down: its own
/// lines say so, lockdown is `integrity`, and no `lockdown=` asked for it.
fn assert_secure_boot_and_lockdown(out: &Outcome) {
    let log = out.log.display();
    let cmdline = out.line_starting("RER-CMDLINE ");
    assert!(cmdline.contains("rer_guest=1"), "{cmdline}");
    assert!(!cmdline.contains("lockdown="), "{cmdline}");
    for line in [
        "Secure boot enabled",
        "Kernel is locked down from EFI Secure Boot",
    ] {
        assert!(
            out.lines_with("RER-KMSG").iter().any(|l| l.contains(line)),
            "the kernel never said {line:?} (log {log})"
        );
    }
    out.assert_lockdown("integrity");
}

/// DKMS's key came from shim's MokList into the kernel's machine keyring.
fn assert_dkms_key_in_the_machine_keyring(out: &Outcome) {
    let (key, machine) = dkms_key_and_machine_keyring(out);
    let key =
        key.unwrap_or_else(|| panic!("no {DKMS_KEY} in /proc/keys (log {})", out.log.display()));
    assert!(
        machine.contains(&key),
        "{DKMS_KEY} ({key}) is not in the machine keyring {machine:?} (log {})",
        out.log.display()
    );
}

/// The serial of DKMS's key in `/proc/keys` and the serials of the keys in
/// the `.machine` keyring, from [`SHOW_SECURE_BOOT`].
fn dkms_key_and_machine_keyring(out: &Outcome) -> (Option<String>, Vec<String>) {
    let key = out.lines_with("RER-DKMS-KEY ").first().map(|l| {
        l["RER-DKMS-KEY ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    });
    let machine = out.line_starting("RER-MACHINE-KEYRING ");
    let keys = machine
        .split_once("keys=")
        .map(|(_, k)| k.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    (key, keys)
}

#[test]
fn secure_boot_with_the_dkms_mok_refuses_the_rescue_and_foreign_modules_and_the_dkms_module_resets()
{
    let inputs = Inputs::from_env();
    let signed = dkms_signed(&inputs, "seed", &["rer_oops_transition"]);
    let unsigned = unsigned_copy(&signed.dkms_ko, &signed.dir.join("unsigned"));
    let foreign = signed_with_a_key_not_enrolled(&inputs, &signed);
    let port = if inputs.has_config("CONFIG_DEVPORT") {
        "/dev/port"
    } else {
        "/dev/mem"
    };
    let refusals = lockdown_refusals(
        port,
        &[
            ("unsigned", "/modules/unsigned/rust_emergency_reset.ko"),
            (
                "not-enrolled",
                "/modules/not-enrolled/rust_emergency_reset.ko",
            ),
        ],
    );
    // The refusals, then DKMS's module and seed 000's fault, then the reset.
    let scenario = format!(
        "{SHOW_LOCKDOWN}{}{refusals}\
         insmod /modules/rust_emergency_reset.ko\necho \"RER-LOADED rc=$?\"\n\
         {STUCK_REBOOT}{DRAIN}\necho reset > /dev/emergency_reset\n",
        show_secure_boot()
    );
    let guest = Guest::new("secure_boot_seed", &inputs, &scenario)
        .without_our_module(&inputs)
        .with_module(signed.dkms_ko.clone())
        .with_module(signed.test_modules[0].clone())
        .with_file(
            "modules/unsigned/rust_emergency_reset.ko",
            fs::read(&unsigned).unwrap(),
        )
        .with_file(
            "modules/not-enrolled/rust_emergency_reset.ko",
            fs::read(&foreign).unwrap(),
        )
        .with_binary(rescue_helper())
        .with_binary(guest_helper("rer-keyring"))
        .secure_boot(Some(signed.mok.clone()));
    let started = Instant::now();
    let (vm, _) = firmware::boot(&guest, &inputs);
    let out = vm.finish();
    println!("secure_boot_seed: {:.0} s", started.elapsed().as_secs_f64());

    assert_secure_boot_and_lockdown(&out);
    assert_dkms_key_in_the_machine_keyring(&out);
    // Refused, with the kernel's own lines, and the guest went on. Under
    // Secure Boot Debian's kernel also enforces module signatures, so a
    // module is refused before lockdown is asked: EKEYREJECTED, not EPERM.
    out.assert_lockdown_refusals("secure_boot_seed");
    out.assert_module_refused(
        "unsigned",
        KEY_REJECTED,
        "Loading of unsigned module is rejected",
    );
    out.assert_module_refused(
        "not-enrolled",
        KEY_REJECTED,
        "Loading of module with unavailable key is rejected",
    );
    // DKMS's module loaded, trusted (no taint line), and reset the guest
    // through the device with reboot -f stuck behind seed 000's oops.
    assert!(
        !out.saw("module verification failed"),
        "log {}",
        out.log.display()
    );
    out.assert_seed_reset();
}

#[test]
fn secure_boot_with_the_dkms_mok_an_nmi_resets_while_every_cpu_spins() {
    let inputs = Inputs::from_env();
    let signed = dkms_signed(&inputs, "nmi", &["rer_lockup"]);
    let scenario = format!(
        "{SHOW_LOCKDOWN}{}\
         insmod /modules/rust_emergency_reset.ko nmi=1\necho \"RER-LOADED rc=$?\"\n\
         echo RER-ARMING\n{DRAIN}\n\
         insmod /modules/rer_lockup.ko all=1\n{}sleep 30\n",
        show_secure_boot(),
        show_text("rer_lockup")
    );
    let guest = Guest::new("secure_boot_nmi", &inputs, &scenario)
        .without_our_module(&inputs)
        .with_module(signed.dkms_ko.clone())
        .with_module(signed.test_modules[0].clone())
        .with_binary(guest_helper("rer-keyring"))
        .secure_boot(Some(signed.mok.clone()));
    let started = Instant::now();
    let (mut vm, _) = firmware::boot(&guest, &inputs);
    assert!(
        vm.wait_for("RER-ARMING"),
        "the guest never armed (log {})",
        vm.log_path().display()
    );
    assert!(
        vm.console().contains("RER-LOADED rc=0"),
        "DKMS's module did not load (log {})",
        vm.log_path().display()
    );
    // The fault in place first: QEMU shows every vCPU spinning in rer_lockup.
    let text = vm.module_text("rer_lockup");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let vcpus = vm.vcpus();
        if vcpus.len() == guest.cpus as usize && vcpus.iter().all(|c| c.spins_in(text.clone())) {
            break;
        }
        assert!(
            Instant::now() < until,
            "QEMU never showed every CPU spinning in rer_lockup {text:x?}: {vcpus:?} (log {})",
            vm.log_path().display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    vm.qmp_command("inject-nmi", json!({}));
    let out = vm.finish_within(Duration::from_secs(60));
    println!("secure_boot_nmi: {:.0} s", started.elapsed().as_secs_f64());

    assert_secure_boot_and_lockdown(&out);
    assert_dkms_key_in_the_machine_keyring(&out);
    assert!(out.saw("RER-LOADED rc=0"), "log {}", out.log.display());
    out.assert_reset_by_nmi_best_effort("nmi", "kbd");
}

#[test]
fn control_secure_boot_without_the_mok_refuses_the_dkms_signed_module() {
    let inputs = Inputs::from_env();
    let signed = dkms_signed(&inputs, "control", &[]);
    let scenario = format!(
        "{SHOW_LOCKDOWN}{}\
         insmod /modules/rust_emergency_reset.ko 2>/tmp/err\n\
         echo \"RER-INSMOD dkms rc=$? $(cat /tmp/err) \
         loaded=$(grep -c rust_emergency_reset /proc/modules)\" >/tmp/results\n\
         sleep 1\ncat /tmp/results\n",
        show_secure_boot()
    );
    let guest = Guest::new("secure_boot_control_no_mok", &inputs, &scenario)
        .without_our_module(&inputs)
        .with_module(signed.dkms_ko.clone())
        .with_binary(guest_helper("rer-keyring"))
        .secure_boot(None);
    let started = Instant::now();
    let (vm, _) = firmware::boot(&guest, &inputs);
    let out = vm.finish();
    println!(
        "secure_boot_control_no_mok: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    assert_secure_boot_and_lockdown(&out);
    // What is missing is in fact missing: no DKMS key in any keyring, the
    // machine keyring read (it holds shim's vendor key, Debian's CA).
    let (key, machine) = dkms_key_and_machine_keyring(&out);
    assert_eq!(
        key,
        None,
        "{DKMS_KEY} without a MOK (log {})",
        out.log.display()
    );
    assert!(
        !machine.is_empty(),
        "the machine keyring was not read (log {})",
        out.log.display()
    );
    // The module DKMS signed is refused, with the kernel's line; the guest lives.
    out.assert_alive();
    out.assert_module_refused(
        "dkms",
        KEY_REJECTED,
        "Loading of module with unavailable key is rejected",
    );
}
