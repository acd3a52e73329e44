// SPDX-License-Identifier: GPL-2.0

//! Host-side checks of the packaging: `make install` into a staging
//! directory puts the module where `modprobe` finds it, and DKMS builds the
//! module from the tree `make dkms-source` installs. Nothing is loaded, and
//! nothing outside the staging directories is written.

use qemu_tests::Inputs;
use std::{
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kdir() -> PathBuf {
    Inputs::from_env();
    PathBuf::from(std::env::var_os("RER_KDIR").unwrap())
}

fn staging(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/staging")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn release(kdir: &Path) -> String {
    std::fs::read_to_string(kdir.join("include/config/kernel.release"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn make_install_puts_the_module_where_modprobe_finds_it() {
    let kdir = kdir();
    let dest = staging("install");
    run(Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("install")
        .arg(format!("KDIR={}", kdir.display()))
        .arg(format!("DESTDIR={}", dest.display())));
    let rel = release(&kdir);
    let ko = dest.join(format!("lib/modules/{rel}/updates/rust_emergency_reset.ko"));
    assert!(ko.exists(), "{}", ko.display());
    // Signed with the test kernel's key, once (a lockdown kernel needs it).
    let data = std::fs::read(&ko).unwrap();
    let marker = b"~Module signature appended~\n";
    let signatures = data.windows(marker.len()).filter(|w| w == marker).count();
    assert_eq!(signatures, 1, "{}: {signatures} signatures", ko.display());
    // Found by name, through modules.dep, as modprobe looks it up.
    let info = run(Command::new("modinfo").arg("-b").arg(&dest).args([
        "-k",
        &rel,
        "-F",
        "filename",
        "rust_emergency_reset",
    ]));
    assert_eq!(info.trim(), ko.display().to_string());
    let dep = std::fs::read_to_string(dest.join(format!("lib/modules/{rel}/modules.dep"))).unwrap();
    assert!(dep.contains("updates/rust_emergency_reset.ko:"), "{dep}");
    let rule =
        std::fs::read_to_string(dest.join("lib/udev/rules.d/60-emergency-reset.rules")).unwrap();
    assert!(rule.contains(r#"KERNEL=="emergency_reset", SUBSYSTEM=="misc""#));
    assert!(rule.contains(r#"MODE="0600""#));
    assert!(dest
        .join("usr/share/doc/rust_emergency_reset/modprobe.d-example.conf")
        .exists());
}

#[test]
fn dkms_builds_the_module_from_the_installed_source() {
    let kdir = kdir();
    let dest = staging("dkms");
    run(Command::new("make")
        .arg("-C")
        .arg(repo())
        .arg("dkms-source")
        .arg(format!("DESTDIR={}", dest.display())));
    let tree = dest.join("var/lib/dkms");
    std::fs::create_dir_all(&tree).unwrap();
    let rel = release(&kdir);
    let log = run(Command::new("dkms")
        .arg("build")
        .arg("--sourcetree")
        .arg(dest.join("usr/src"))
        .arg("--dkmstree")
        .arg(&tree)
        .args(["-m", "rust_emergency_reset", "-v", "0.1.0", "-k", &rel])
        .arg("--kernelsourcedir")
        .arg(&kdir));
    let ko = tree.join(format!(
        "rust_emergency_reset/0.1.0/{rel}/x86_64/module/rust_emergency_reset.ko"
    ));
    assert!(ko.exists(), "no {}:\n{log}", ko.display());
    let info = run(Command::new("modinfo").args(["-F", "name"]).arg(&ko));
    assert_eq!(info.trim(), "rust_emergency_reset");
}
