// SPDX-License-Identifier: GPL-2.0

//! The module on Debian 13's own kernel, as a sysadmin gets it: `make
//! KRELEASE=<release>`, and DKMS (Debian's real `dkms` package, in the Debian
//! 13 build root of `scripts/debian-root.sh`): `dkms install`, the autoinstall
//! that a kernel package's hooks run, and the refusal of a kernel without
//! `CONFIG_RUST`. The DKMS-built module is booted on Debian's signed vmlinuz.
//!
//! Run by `make check` in its pass on Debian's kernel, whose `RER_MODULE` is
//! the `.ko` that `make KRELEASE=<release>` built (the other suites boot it).

use qemu_tests::{
    debian_root::{
        build_root,
        dkms_lock,
        in_build_root,
        installed,
        ok,
        repo,
        VERSION, //
    },
    run,
    Guest,
    Inputs, //
};
use std::{
    path::PathBuf,
    process::Command, //
};

fn modinfo(ko: &PathBuf, field: &str) -> String {
    ok(Command::new("modinfo").args(["-F", field]).arg(ko))
        .trim()
        .to_string()
}

#[test]
fn make_krelease_builds_against_debians_headers_with_rust_metadata() {
    let inputs = Inputs::from_env();
    let release = &inputs.kernel_name;
    assert!(inputs.is_debian(), "run by make check on Debian's kernel");
    // print-kdir names the KDIR the module was built against: Debian's headers
    // with the Rust metadata.
    let kdir = ok(Command::new("make")
        .arg("-C")
        .arg(repo())
        .args(["-s", "--no-print-directory", "print-kdir"])
        .arg(format!("KRELEASE={release}")));
    let kdir = PathBuf::from(kdir.trim());
    assert_eq!(
        kdir,
        PathBuf::from(std::env::var_os("RER_KDIR").unwrap()),
        "make print-kdir KRELEASE={release}"
    );
    for f in [
        "Module.symvers",
        "rust/libkernel.rmeta",
        "scripts/target.json",
    ] {
        assert!(kdir.join(f).exists(), "{} has no {f}", kdir.display());
    }
    // Built for that release...
    let vermagic = modinfo(&inputs.module, "vermagic");
    assert!(
        vermagic.starts_with(&format!("{release} ")),
        "vermagic {vermagic:?}"
    );
    // ...with Debian's crate hashes: every Rust symbol the module imports is one
    // Debian's kernel exports (a metadata of another rustc would mangle others).
    let symvers = std::fs::read_to_string(kdir.join("Module.symvers")).unwrap();
    let exported: std::collections::HashSet<&str> = symvers
        .lines()
        .filter_map(|l| l.split('\t').nth(1))
        .collect();
    let undefined = ok(Command::new("nm")
        .args(["--undefined-only", "--format=posix"])
        .arg(&inputs.module));
    let rust: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|s| s.starts_with("_R"))
        .collect();
    assert!(!rust.is_empty(), "the module imports no Rust symbol");
    for s in &rust {
        assert!(exported.contains(s), "{s} is not exported by {release}");
    }
    // Nothing was written into the headers package's own paths.
    let hdr = build_root().join(format!("usr/src/linux-headers-{release}"));
    assert!(hdr.join(".config").exists(), "{}", hdr.display());
    assert!(
        !hdr.join("rust").exists(),
        "{}/rust was written",
        hdr.display()
    );
    assert!(
        !hdr.join("scripts/target.json").exists(),
        "the kbuild package's scripts/ was written"
    );
}

#[test]
fn dkms_install_builds_and_installs_the_module_that_resets_debians_kernel() {
    let mut one = dkms_lock();
    let inputs = Inputs::from_env();
    let release = inputs.kernel_name.clone();
    let root = one.add();
    let (rc, log) = in_build_root(&format!(
        "dkms install rust_emergency_reset/{VERSION} -k {release}"
    ));
    assert_eq!(rc, Some(0), "dkms install:\n{log}");
    let ko = installed(&root, &release);
    assert!(ko.exists(), "no {}:\n{log}", ko.display());
    let vermagic = modinfo(&ko, "vermagic");
    assert!(
        vermagic.starts_with(&format!("{release} ")),
        "vermagic {vermagic:?}"
    );
    // DKMS signs with its MOK key (what Secure Boot needs once enrolled).
    assert!(
        !modinfo(&ko, "sig_id").is_empty(),
        "DKMS did not sign the module"
    );

    // Debian's vmlinuz loads the DKMS-built module and is reset by it in the seed scenario.
    let guest = Guest::seed_with("debian_dkms_seed", &inputs, ko);
    run(&guest, &inputs).assert_seed_reset();
}

#[test]
fn dkms_autoinstall_on_a_kernel_package_update_builds_the_module() {
    let mut one = dkms_lock();
    let inputs = Inputs::from_env();
    let release = inputs.kernel_name.clone();
    let root = one.add();
    let ko = installed(&root, &release);
    assert!(!ko.exists(), "{} before the update", ko.display());
    // The headers package's postinst runs /etc/kernel/header_postinst.d/dkms,
    // which autoinstalls every DKMS module for that kernel.
    let (rc, log) = in_build_root(&format!(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall linux-headers-{release}"
    ));
    assert_eq!(rc, Some(0), "apt-get install --reinstall:\n{log}");
    assert!(
        ko.exists(),
        "autoinstall did not install {}:\n{log}",
        ko.display()
    );
    assert!(modinfo(&ko, "vermagic").starts_with(&format!("{release} ")));
}

#[test]
fn dkms_refuses_a_kernel_without_rust_and_its_install_goes_on() {
    let mut one = dkms_lock();
    // Debian 13's default kernel (trixie, not backports) has no CONFIG_RUST.
    let (rc, plain) = in_build_root(
        "v=$(apt-cache madison linux-headers-amd64 | awk -F' [|] ' '/ trixie\\// {print $2; exit}')
         r=$(apt-cache depends linux-headers-amd64=$v | sed -n 's/^ *Depends: linux-headers-\\(.*-amd64\\)$/\\1/p')
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
             linux-headers-$r >/dev/null 2>&1 || exit 1
         grep -q '^CONFIG_RUST=y' /usr/src/linux-headers-$r/.config && exit 2
         echo $r",
    );
    assert_eq!(rc, Some(0), "Debian 13's default kernel headers: {plain}");
    let plain = plain.trim().to_string();
    let root = one.add();
    let (rc, log) = in_build_root(&format!(
        "dkms build rust_emergency_reset/{VERSION} -k {plain}"
    ));
    // DKMS's "skipped" status, and its message about dkms.conf's BUILD_EXCLUSIVE.
    assert_eq!(rc, Some(77), "dkms build on {plain}:\n{log}");
    assert!(log.contains("BUILD_EXCLUSIVE"), "{log}");
    // The autoinstall a kernel package runs skips the module and succeeds, so
    // installing a kernel without Rust is not broken by this module.
    let (rc, log) = in_build_root(&format!("/etc/kernel/postinst.d/dkms {plain}"));
    assert_eq!(rc, Some(0), "the kernel's dkms hook:\n{log}");
    assert!(!installed(&root, &plain).exists());
}
