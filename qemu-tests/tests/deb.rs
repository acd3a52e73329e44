// SPDX-License-Identifier: GPL-2.0

//! The Debian packages `make deb` built (`qemu-tests/target/deb/`), read
//! from the host with `dpkg-deb`, as a reviewer of the packages would: what
//! each one installs, where, with which dependencies and maintainer scripts.
//! Nothing is installed and nothing is loaded; the install itself, with DKMS
//! in a Debian 13 root, is `deb_install.rs`.
//!
//! Run by `make check` in the test kernel's leg, after its `deb` step.

use std::{
    collections::BTreeMap,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
};

const DKMS_PACKAGE: &str = "rust-emergency-reset-dkms";
const SENDER_PACKAGE: &str = "emergency-reset-send";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command that must succeed; its standard output.
fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `PACKAGE_VERSION` of packaging/dkms.conf: the module's version, and
/// the upstream part of the packages' versions.
fn module_version() -> String {
    let conf = std::fs::read_to_string(repo().join("packaging/dkms.conf")).unwrap();
    conf.lines()
        .find_map(|l| l.strip_prefix("PACKAGE_VERSION=\""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("PACKAGE_VERSION in packaging/dkms.conf")
        .to_string()
}

/// The one `.deb` of `package` that `make deb` made.
fn deb(package: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/deb");
    let prefix = format!("{package}_");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make deb` first", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&prefix) && name.ends_with(".deb")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{package}: expected one .deb in {}: {found:?} (run `make deb`)",
        dir.display()
    );
    found.into_iter().next().unwrap()
}

/// A fresh directory under target/deb-test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/deb-test")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every file under `dir`: its path relative to `dir`, its content.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The package's files, unpacked into a scratch directory of the test's
/// own (`cargo nextest` runs the tests at once).
fn unpack(package: &str, test: &str) -> PathBuf {
    let dir = scratch(&format!("{test}/{package}"));
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb(package))
        .arg(&dir));
    dir
}

/// A control field of the package.
fn field(package: &str, name: &str) -> String {
    ok(Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb(package))
        .arg(name))
    .trim()
    .to_string()
}

/// The package names of a dependency field (versions and alternatives aside).
fn names(relations: &str) -> Vec<String> {
    relations
        .split([',', '|'])
        .map(|r| r.split_whitespace().next().unwrap_or("").to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// A maintainer script of the package.
fn maintainer_script(package: &str, script: &str) -> String {
    let dir = scratch(&format!("{package}-{script}"));
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb(package))
        .arg(&dir));
    std::fs::read_to_string(dir.join(script))
        .unwrap_or_else(|e| panic!("{package} has no {script}: {e}"))
}

fn read(root: &Path, path: &str) -> Vec<u8> {
    std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("no {path} in the package: {e}"))
}

#[test]
fn the_dkms_package_installs_exactly_the_tree_make_dkms_source_makes() {
    let version = module_version();
    assert_eq!(field(DKMS_PACKAGE, "Architecture"), "all");
    assert!(
        field(DKMS_PACKAGE, "Version").starts_with(&format!("{version}-")),
        "the package's upstream version is not dkms.conf's {version}"
    );
    let unpacked = unpack(DKMS_PACKAGE, "tree");
    let src = format!("usr/src/rust_emergency_reset-{version}");
    let packaged = files(&unpacked.join(&src));

    // What the upstream Makefile installs for DKMS, byte for byte.
    let staged = scratch("tree/dkms-source");
    ok(Command::new("make")
        .arg("-C")
        .arg(repo())
        .args(["-s", "--no-print-directory", "dkms-source"])
        .arg(format!("DESTDIR={}", staged.display())));
    let made = files(&staged.join(&src));
    let names = |m: &BTreeMap<String, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&packaged),
        names(&made),
        "/{src}: the package's files against make dkms-source's"
    );
    for (path, content) in &made {
        assert!(
            packaged[path] == *content,
            "/{src}/{path} differs from make dkms-source's"
        );
    }
    // DKMS's configuration is the project's, and DKMS finds its build script.
    assert_eq!(
        packaged["dkms.conf"],
        std::fs::read(repo().join("packaging/dkms.conf")).unwrap()
    );
    for needed in [
        "dkms-make.sh",
        "debian-kdir.sh",
        "Kbuild",
        "rust_emergency_reset.rs",
    ] {
        assert!(packaged.contains_key(needed), "/{src} has no {needed}");
    }
}

#[test]
fn the_dkms_package_installs_the_udev_rule_and_the_modprobe_example() {
    let unpacked = unpack(DKMS_PACKAGE, "udev");
    // udev's own directory under /usr (Debian 13 has merged /usr).
    assert_eq!(
        read(&unpacked, "usr/lib/udev/rules.d/60-emergency-reset.rules"),
        std::fs::read(repo().join("packaging/60-emergency-reset.rules")).unwrap()
    );
    assert!(
        !unpacked.join("lib").exists(),
        "files under /lib, not /usr/lib"
    );
    // The example only: an /etc/modprobe.d file would set parameters for the
    // sysadmin.
    assert_eq!(
        read(
            &unpacked,
            "usr/share/doc/rust-emergency-reset-dkms/examples/rust_emergency_reset.conf"
        ),
        std::fs::read(repo().join("packaging/rust_emergency_reset.conf")).unwrap()
    );
    assert!(
        !unpacked.join("etc").exists(),
        "the package installs into /etc"
    );
    // Nothing that was built here: DKMS builds the module on the machine.
    let all = files(&unpacked);
    let built: Vec<&String> = all
        .keys()
        .filter(|p| p.ends_with(".ko") || p.ends_with(".o"))
        .collect();
    assert!(built.is_empty(), "built objects in the package: {built:?}");
}

#[test]
fn the_dkms_package_depends_on_what_debians_rust_kernels_need_to_build_it() {
    let depends = field(DKMS_PACKAGE, "Depends");
    let have = names(&depends);
    // DKMS new enough for dkms.conf's BUILD_EXCLUSIVE_CONFIG (dh_dkms's own
    // dependency), which skips kernels without Rust.
    assert!(depends.contains("dkms (>= 3.0.11)"), "Depends: {depends}");
    // Every package debian-kdir.sh checks for before it builds a Debian
    // kernel's Rust metadata...
    let script = std::fs::read_to_string(repo().join("scripts/debian-kdir.sh")).unwrap();
    let checked = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("for p in "))
        .and_then(|l| l.strip_suffix("; do"))
        .expect("debian-kdir.sh's list of the packages it checks");
    let mut wanted: Vec<String> = checked.split_whitespace().map(String::from).collect();
    // ...and every package the project's own Debian 13 build root, where the
    // suite builds that metadata, installs for it (its compiler: gcc-14);
    // not its certificates, which are for apt.
    let root = std::fs::read_to_string(repo().join("scripts/debian-root.sh")).unwrap();
    let list = root
        .lines()
        .find_map(|l| l.trim().strip_prefix("printf 'rustc "))
        .and_then(|l| l.split_once('\''))
        .map(|(list, _)| format!("rustc {list}"))
        .expect("debian-root.sh's package list");
    wanted.extend(
        list.replace("%s", "gcc-14")
            .replace("\\n", " ")
            .split_whitespace()
            .filter(|p| *p != "ca-certificates")
            .map(String::from),
    );
    for p in &wanted {
        assert!(have.contains(p), "{p} is not in Depends: {depends}");
    }
    // The kernel source the metadata is built from cannot be a Depends (its
    // version must be the kernel's): recommended, and named by dkms-make.sh
    // when missing.
    let recommends = field(DKMS_PACKAGE, "Recommends");
    assert!(
        names(&recommends)
            .iter()
            .any(|r| r.starts_with("linux-source-")),
        "Recommends: {recommends}"
    );
}

#[test]
fn the_dkms_packages_scripts_run_dkms_and_name_the_mok_command() {
    let postinst = maintainer_script(DKMS_PACKAGE, "postinst");
    // dh_dkms's part: DKMS adds, builds and installs for every kernel.
    assert!(
        postinst.contains("/usr/lib/dkms/common.postinst"),
        "{postinst}"
    );
    assert!(
        postinst.contains("DKMS_NAME=rust_emergency_reset"),
        "{postinst}"
    );
    // Ours: under Secure Boot without DKMS's key enrolled, the one command.
    assert!(postinst.contains("mokutil --import $key"), "{postinst}");
    assert!(postinst.contains("key=/var/lib/dkms/mok.pub"), "{postinst}");
    assert!(
        postinst.contains("mok_hint || true"),
        "the hint can fail the install:\n{postinst}"
    );
    // A kernel whose build fails does not leave the package half-configured
    // (DKMS's own script would fail the postinst).
    assert!(
        postinst.contains("[ $rc = 0 ] || configure_each_kernel"),
        "{postinst}"
    );
    let prerm = maintainer_script(DKMS_PACKAGE, "prerm");
    assert!(prerm.contains("dkms remove -m $DKMS_NAME"), "{prerm}");
    let postrm = maintainer_script(DKMS_PACKAGE, "postrm");
    assert!(
        postrm.contains("rm -rf /var/cache/rust_emergency_reset"),
        "{postrm}"
    );
}

#[test]
fn the_sender_package_installs_the_program_and_its_man_page() {
    assert_eq!(field(SENDER_PACKAGE, "Architecture"), "amd64");
    let unpacked = unpack(SENDER_PACKAGE, "sender");
    let program = unpacked.join("usr/bin/emergency-reset-send");
    // The packaged program itself, run on the host: its version is the package's.
    let version = ok(Command::new(&program).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("emergency-reset-send {}", module_version())
    );
    // The man page help2man made from --help: every option is in it.
    let page =
        ok(Command::new("zcat").arg(unpacked.join("usr/share/man/man1/emergency-reset-send.1.gz")));
    assert!(page.contains(".TH EMERGENCY-RESET-SEND \"1\""), "{page}");
    for option in [
        "key\\-file",
        "\\-\\-to",
        "\\-\\-method",
        "\\-\\-as",
        "\\-\\-time",
        "\\-\\-print",
    ] {
        assert!(
            page.contains(option),
            "{option} is not in the man page:\n{page}"
        );
    }
    // Built from Debian's crates, and saying which.
    let built_using = field(SENDER_PACKAGE, "Static-Built-Using");
    for crate_package in ["rust-hmac", "rust-sha2"] {
        assert!(
            names(&built_using).iter().any(|n| n == crate_package),
            "Static-Built-Using: {built_using}"
        );
    }
}
