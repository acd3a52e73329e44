// SPDX-License-Identifier: GPL-2.0

//! The package `make deb` built, installed as a sysadmin installs it: `apt
//! install ./rust-emergency-reset-dkms_*.deb` on a Debian 13 system with
//! Debian's Rust-enabled kernels' headers, then upgraded, then purged; a
//! kernel whose build fails, a kernel without Rust and another Rust kernel,
//! installed beside it; the postinst's word about DKMS's MOK under each
//! answer the firmware (`mokutil`) can give.
//!
//! The system is a [`ThrowawayRoot`]: an overlay on the Debian 13 build root,
//! which stays as it was, given copies of the KDIRs the suite made (the Rust
//! metadata the headers lack) so that DKMS builds the module in seconds. The
//! module DKMS installed is booted on Debian's signed vmlinuz of its kernel
//! and resets it in the seed scenario.
//!
//! Run by `make check` in its pass on Debian's kernel (the primary one,
//! `RER_KERNEL_NAME`, and the other trixie-backports flavour); serialized
//! with `tests/debian.rs`'s DKMS tests, which change the build root this
//! overlays. Each test prints how long its steps took.

use qemu_tests::{
    debian_root::{
        dkms_lock,
        ok,
        repo,
        ThrowawayRoot,
        VERSION, //
    },
    run,
    Guest,
    Inputs, //
};
use std::{
    path::PathBuf,
    process::Command,
    time::{
        Instant,
        SystemTime, //
    },
};

const DKMS_PACKAGE: &str = "rust-emergency-reset-dkms";

/// The `.deb` of `package` that `make deb` made (run before the tests).
fn deb(package: &str) -> PathBuf {
    let dir = ThrowawayRoot::debs();
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make deb` first", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&format!("{package}_")) && name.ends_with(".deb")
        })
        .collect();
    assert_eq!(found.len(), 1, "{package} in {}: {found:?}", dir.display());
    found.into_iter().next().unwrap()
}

/// Debian's two Rust-enabled trixie-backports kernels: the one under test
/// first, then the other flavour's.
fn rust_kernels(inputs: &Inputs) -> Vec<String> {
    let resolved = ok(Command::new(repo().join("scripts/debian-kdir.sh")).args([
        "--resolve",
        "amd64",
        "cloud-amd64",
    ]));
    let mut kernels: Vec<String> = resolved.split_whitespace().map(String::from).collect();
    assert!(
        kernels.contains(&inputs.kernel_name),
        "the kernel under test, {}, is not one of {kernels:?}",
        inputs.kernel_name
    );
    kernels.sort_by_key(|k| *k != inputs.kernel_name);
    kernels
}

/// Leaves on the system only the headers of `kernels`, and nothing of the
/// module: the build root this overlays may hold other kernels' headers and
/// DKMS state that `tests/debian.rs` left there.
fn only_these_kernels(sys: &ThrowawayRoot, kernels: &[String]) {
    let keep: Vec<String> = kernels
        .iter()
        .map(|k| format!("linux-headers-{k}"))
        .collect();
    sys.ok(&format!(
        "set -e
         dkms remove rust_emergency_reset/{VERSION} --all >/dev/null 2>&1 || true
         rm -rf /usr/src/rust_emergency_reset-* /var/lib/dkms/rust_emergency_reset
         find /usr/lib/modules -name 'rust_emergency_reset.ko*' -delete
         others=$(dpkg-query -W -f='${{Package}} ${{Status}}\\n' 'linux-headers-*' |
             awk '$NF != \"not-installed\" && $1 ~ /^linux-headers-[0-9].*-(amd64|cloud-amd64|rt-amd64)$/ {{print $1}}' |
             {{ grep -vxF -e '' {} || true; }})
         [ -z \"$others\" ] || apt-get purge -y -q $others >/dev/null
         for k in {}; do test -f /usr/src/linux-headers-$k/.config; done",
        keep.iter().map(|k| format!("-e {k}")).collect::<Vec<_>>().join(" "),
        kernels.join(" ")
    ));
}

/// `dpkg --audit`: what dpkg finds half-installed or half-configured; empty
/// when every package is in a clean state.
fn assert_dpkg_clean(sys: &ThrowawayRoot, after: &str) {
    let audit = sys.ok("dpkg --audit");
    assert!(
        audit.trim().is_empty(),
        "after {after}, dpkg --audit:\n{audit}"
    );
}

/// The module DKMS installed for `kernel`, as the system's upper layer holds
/// it; `None` when there is none.
fn installed_module(sys: &ThrowawayRoot, kernel: &str) -> Option<PathBuf> {
    let dir = sys.written(&format!("usr/lib/modules/{kernel}/updates/dkms"));
    std::fs::read_dir(&dir).ok()?.find_map(|e| {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        name.starts_with("rust_emergency_reset.ko").then_some(path)
    })
}

fn modinfo(ko: &PathBuf, field: &str) -> String {
    ok(Command::new("modinfo").args(["-F", field]).arg(ko))
        .trim()
        .to_string()
}

fn seconds(since: Instant) -> String {
    format!("{:.0} s", since.elapsed().as_secs_f64())
}

#[test]
fn apt_install_builds_for_every_rust_kernel_upgrade_rebuilds_and_purge_leaves_nothing() {
    let _one = dkms_lock();
    let inputs = Inputs::from_env();
    let kernels = rust_kernels(&inputs);
    let start = Instant::now();
    let sys = ThrowawayRoot::new("install-upgrade-purge", &kernels);
    only_these_kernels(&sys, &kernels);
    eprintln!(
        "deb_install: the system with {kernels:?}: {}",
        seconds(start)
    );

    // Installed as a sysadmin installs it.
    let step = Instant::now();
    let out = sys.ok(&format!("apt install -y {}", deb(DKMS_PACKAGE).display()));
    eprintln!(
        "deb_install: apt install, DKMS building for both: {}",
        seconds(step)
    );
    assert!(!out.contains("not built"), "{out}");
    let status = sys.ok("dkms status");
    for kernel in &kernels {
        let line = format!("rust_emergency_reset/{VERSION}, {kernel}, x86_64: installed");
        assert!(
            status.contains(&line),
            "no {line:?} in dkms status:\n{status}"
        );
        let ko = installed_module(&sys, kernel)
            .unwrap_or_else(|| panic!("no module installed for {kernel}:\n{out}"));
        let vermagic = modinfo(&ko, "vermagic");
        assert!(
            vermagic.starts_with(&format!("{kernel} ")),
            "{}: vermagic {vermagic:?}",
            ko.display()
        );
    }
    assert_dpkg_clean(&sys, "apt install");

    // The module DKMS installed for the kernel under test, booted on that
    // kernel's own vmlinuz: loaded, and it resets the guest whose reboot(2)
    // is stuck behind an oops.
    let step = Instant::now();
    let ko = installed_module(&sys, &kernels[0]).unwrap();
    assert!(
        ko.extension().is_some_and(|e| e == "ko"),
        "{}: compressed (the guest's insmod takes a .ko)",
        ko.display()
    );
    let guest = Guest::seed_with("deb_install_seed", &inputs, ko);
    run(&guest, &inputs).assert_seed_reset();
    eprintln!(
        "deb_install: the seed scenario on {}: {}",
        kernels[0],
        seconds(step)
    );

    // A newer version of the package (the same files, version 0.1.0-2, made
    // with dpkg-deb): DKMS rebuilds the module for every kernel.
    let step = Instant::now();
    sys.ok(&format!(
        "set -e
         dpkg-deb -R {} /root/newer
         sed -i 's/^Version: .*/Version: {VERSION}-2/' /root/newer/DEBIAN/control
         dpkg-deb -b /root/newer /root/rust-emergency-reset-dkms_newer_all.deb
         rm -r /root/newer",
        deb(DKMS_PACKAGE).display()
    ));
    let before = SystemTime::now();
    let out = sys.ok("apt install -y /root/rust-emergency-reset-dkms_newer_all.deb");
    eprintln!(
        "deb_install: the upgrade, DKMS rebuilding for both: {}",
        seconds(step)
    );
    assert_eq!(
        sys.ok("dpkg-query -W -f='${Version}' rust-emergency-reset-dkms"),
        format!("{VERSION}-2")
    );
    let status = sys.ok("dkms status");
    for kernel in &kernels {
        let ko = installed_module(&sys, kernel)
            .unwrap_or_else(|| panic!("no module for {kernel} after the upgrade:\n{out}"));
        let built = std::fs::metadata(&ko).unwrap().modified().unwrap();
        assert!(
            built > before,
            "{}: not rebuilt by the upgrade:\n{out}",
            ko.display()
        );
        assert!(
            status.contains(&format!("{kernel}, x86_64: installed")),
            "{kernel} after the upgrade:\n{status}"
        );
    }
    assert_dpkg_clean(&sys, "the upgrade");

    // Purged: nothing of it is left, and the host's cache is as it was.
    let step = Instant::now();
    sys.ok("apt purge -y rust-emergency-reset-dkms");
    eprintln!("deb_install: apt purge: {}", seconds(step));
    let left = sys.ok(
        "find /usr/src /var/lib/dkms /usr/lib/modules /var/cache -maxdepth 5 \
         -name 'rust_emergency_reset*'
         dkms status | grep rust_emergency_reset || true
         dpkg-query -W -f='${Status}' rust-emergency-reset-dkms 2>/dev/null | grep -v not-installed || true",
    );
    assert!(left.trim().is_empty(), "left behind by apt purge:\n{left}");
    assert_dpkg_clean(&sys, "apt purge");
    for kernel in &kernels {
        let kdir =
            ok(Command::new(repo().join("scripts/debian-kdir.sh")).args(["--print-dir", kernel]));
        let made = PathBuf::from(kdir.trim()).parent().unwrap().to_path_buf();
        assert!(
            made.join(".built").exists(),
            "{}: the host's KDIR",
            made.display()
        );
    }
    eprintln!("deb_install: the whole test: {}", seconds(start));
}

#[test]
fn a_failed_build_leaves_dpkg_clean_and_kernels_installed_later_are_built_or_skipped() {
    let _one = dkms_lock();
    let inputs = Inputs::from_env();
    let kernels = rust_kernels(&inputs);
    let (kernel, later) = (kernels[0].clone(), kernels[1].clone());
    let start = Instant::now();
    let sys = ThrowawayRoot::new("failures", &kernels);
    // A broken KDIR: its Rust metadata for the kernel crate is empty.
    std::fs::write(sys.kdir(&kernel).join("rust/libkernel.rmeta"), b"").unwrap();
    only_these_kernels(&sys, std::slice::from_ref(&kernel));

    // The build fails; the package is installed all the same, and the
    // output names the kernel and DKMS's log.
    let step = Instant::now();
    let (rc, out) = sys.run(&format!("apt install -y {}", deb(DKMS_PACKAGE).display()));
    eprintln!(
        "deb_install: apt install with a broken KDIR: {}",
        seconds(step)
    );
    assert_eq!(rc, Some(0), "apt install:\n{out}");
    let log = format!("/var/lib/dkms/rust_emergency_reset/{VERSION}/build/make.log");
    assert!(
        out.contains(&format!(
            "the module is not built for {kernel} (DKMS's log: {log})"
        )),
        "{out}"
    );
    // The log's end, with the build's error, before the next build replaces it.
    assert!(out.contains("    # exit code:"), "{out}");
    assert_eq!(
        sys.ok("dpkg-query -W -f='${Status}' rust-emergency-reset-dkms"),
        "install ok installed"
    );
    assert!(installed_module(&sys, &kernel).is_none());
    assert_dpkg_clean(&sys, "a failed build");

    // Debian 13's own kernel, 6.12, has no Rust: its headers install, DKMS
    // says in one line why it skips the module, and builds nothing.
    let step = Instant::now();
    let plain = sys
        .ok("v=$(apt-cache madison linux-headers-amd64 | awk -F' [|] ' '/ trixie\\// {print $2; exit}')
             apt-cache depends linux-headers-amd64=$v |
                 sed -n 's/^ *Depends: linux-headers-\\(.*-amd64\\)$/\\1/p'")
        .trim()
        .to_string();
    assert!(
        plain.starts_with("6."),
        "Debian 13's default kernel: {plain:?}"
    );
    let out = sys.ok(&format!("apt-get install -y -q linux-headers-{plain}"));
    eprintln!("deb_install: the headers of {plain}: {}", seconds(step));
    assert!(
        !sys.ok(&format!("cat /usr/src/linux-headers-{plain}/.config"))
            .contains("CONFIG_RUST=y"),
        "{plain} has Rust"
    );
    // The headers depend on the kernel's image: installed with them (unless
    // the build root has it already), its own hook runs DKMS's autoinstall
    // too. Each autoinstall says why in one line.
    let runs = out
        .lines()
        .filter(|l| {
            l.contains(&format!(
                "Autoinstall of module rust_emergency_reset/{VERSION} for kernel {plain}"
            ))
        })
        .count();
    let why = out
        .lines()
        .filter(|l| l.contains("BUILD_EXCLUSIVE"))
        .count();
    assert!(runs >= 1, "no autoinstall for {plain} in:\n{out}");
    assert_eq!(why, runs, "one line saying why per autoinstall, in:\n{out}");
    assert!(installed_module(&sys, &plain).is_none());
    assert_dpkg_clean(&sys, "installing a kernel without Rust");

    // Another Rust kernel's headers, installed after the package: DKMS's
    // autoinstall (the headers' hook) builds and installs the module for it,
    // the broken kernel notwithstanding.
    let step = Instant::now();
    let out = sys.ok(&format!("apt-get install -y -q linux-headers-{later}"));
    eprintln!(
        "deb_install: the headers of {later}, autoinstall: {}",
        seconds(step)
    );
    let status = sys.ok("dkms status");
    let line = format!("rust_emergency_reset/{VERSION}, {later}, x86_64: installed");
    assert!(status.contains(&line), "no {line:?} in:\n{status}\n{out}");
    let ko = installed_module(&sys, &later).unwrap_or_else(|| panic!("no module for {later}"));
    assert!(modinfo(&ko, "vermagic").starts_with(&format!("{later} ")));
    assert!(installed_module(&sys, &kernel).is_none());
    assert_dpkg_clean(&sys, "installing another Rust kernel");
    eprintln!("deb_install: the whole test: {}", seconds(start));
}

/// Installs a `mokutil` that answers `--sb-state` with `sb_state` and
/// `--test-key FILE` with "FILE `test_key`" (what the real one prints), or
/// fails at both when `sb_state` is empty (a machine without EFI variables).
fn firmware_says(sys: &ThrowawayRoot, sb_state: &str, test_key: &str) {
    let body = if sb_state.is_empty() {
        "echo 'EFI variables are not supported on this system' >&2; exit 1".to_string()
    } else {
        format!(
            "case $1 in --sb-state) echo '{sb_state}' ;; --test-key) echo \"$2 {test_key}\" ;; \
             *) exit 1 ;; esac"
        )
    };
    sys.ok(&format!(
        "printf '#!/bin/sh\\n%s\\n' '{}' >/usr/bin/mokutil && chmod 755 /usr/bin/mokutil",
        body.replace('\'', "'\\''")
    ));
}

#[test]
fn the_postinst_names_the_mok_command_only_under_secure_boot_without_the_key() {
    let _one = dkms_lock();
    let start = Instant::now();
    // No Rust kernel: nothing to build, only the postinst's words.
    let sys = ThrowawayRoot::new("mok", &[]);
    only_these_kernels(&sys, &[]);
    sys.ok(&format!(
        "apt install -y --no-install-recommends {}",
        deb(DKMS_PACKAGE).display()
    ));
    // DKMS's own signing key, as its first build would make it.
    sys.ok("test -f /var/lib/dkms/mok.pub || dkms generate_mok");
    let command = "mokutil --import /var/lib/dkms/mok.pub";
    let cases = [
        ("SecureBoot enabled", "is not enrolled", true),
        ("SecureBoot enabled", "is already enrolled", false),
        (
            "SecureBoot enabled",
            "is already in the enrollment request",
            false,
        ),
        ("SecureBoot disabled", "is not enrolled", false),
        ("", "", false),
    ];
    for (sb_state, test_key, hint) in cases {
        firmware_says(&sys, sb_state, test_key);
        // The postinst's configure step again, as dpkg runs it.
        let out = sys.ok("dpkg-reconfigure rust-emergency-reset-dkms");
        assert_eq!(
            out.contains(command),
            hint,
            "firmware {sb_state:?}, key {test_key:?}:\n{out}"
        );
        if hint {
            let line = out.lines().find(|l| l.contains(command)).unwrap();
            assert_eq!(
                line.trim(),
                command,
                "the command on a line of its own:\n{out}"
            );
        }
    }
    assert_dpkg_clean(&sys, "the postinst under every firmware answer");
    eprintln!(
        "deb_install: the MOK hint, five firmware answers: {}",
        seconds(start)
    );
}

#[test]
fn without_the_kernels_source_the_install_says_which_package_to_get() {
    let _one = dkms_lock();
    let inputs = Inputs::from_env();
    let kernel = inputs.kernel_name.clone();
    let start = Instant::now();
    let sys = ThrowawayRoot::new("no-source", std::slice::from_ref(&kernel));
    only_these_kernels(&sys, std::slice::from_ref(&kernel));
    // The source the Rust metadata is made from is a Recommends, which
    // `--no-install-recommends` (or its removal) leaves out.
    let series = kernel.split('.').take(2).collect::<Vec<_>>().join(".");
    sys.ok(&format!("apt-get purge -y -q linux-source-{series}"));
    let (rc, out) = sys.run(&format!(
        "apt install -y --no-install-recommends {}",
        deb(DKMS_PACKAGE).display()
    ));
    assert_eq!(rc, Some(0), "apt install:\n{out}");
    // debian-kdir.sh's one line, through DKMS's log, names the package and
    // its version (the kernel's).
    let version = sys.ok(&format!(
        "dpkg-query -W -f='${{Version}}' linux-headers-{kernel}"
    ));
    let wanted = format!("linux-source-{series}={version} (installed: none)");
    assert!(out.contains(&wanted), "no {wanted:?} in:\n{out}");
    assert!(
        out.contains(&format!("the module is not built for {kernel}")),
        "{out}"
    );
    assert_dpkg_clean(&sys, "an install without the kernel's source");
    eprintln!("deb_install: without linux-source: {}", seconds(start));
}
