// SPDX-License-Identifier: GPL-2.0

//! DKMS in the Debian 13 build root (`scripts/debian-root.sh`), for the tests
//! that install the module as a sysadmin does (`tests/debian.rs`,
//! `tests/secure_boot.rs`): running commands there ([`in_root`], [`ok`],
//! [`output`]), registering the source tree afresh ([`dkms_add`]), where DKMS
//! installs the module ([`installed`]), and the lock that lets one test at a
//! time use the root's DKMS tree ([`dkms_lock`]).
//!
//! It runs commands on the host and in the build root; it boots nothing and
//! loads no module.

use crate::inputs::target_dir;
use std::{
    fs::File,
    path::{
        Path,
        PathBuf, //
    },
    process::Command, //
};

/// The module's version in DKMS (`packaging/dkms.conf`'s `PACKAGE_VERSION`).
pub const VERSION: &str = "0.1.0";

/// The DKMS tests share the build root's DKMS tree: one at a time, across
/// the test processes (`cargo nextest` runs each test in its own). Also the
/// build root's apt lock (the one `scripts/debian-kdir.sh` takes around its
/// `apt-get install`): a kernel headers package that `make check`'s
/// background set-up installs meanwhile runs DKMS's autoinstall, which
/// builds in the same DKMS tree (seen: a `dkms install` whose build
/// directory vanished under it). Held until the returned files are dropped.
pub fn dkms_lock() -> (File, File) {
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let lock = |path: PathBuf| {
        let file = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        file
    };
    let dkms = lock(dir.join("dkms.lock"));
    let mut apt = root().into_os_string();
    apt.push(".apt.lock");
    (dkms, lock(PathBuf::from(apt)))
}

/// The project's clone.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command: its exit status and its stdout and stderr together.
pub fn output(cmd: &mut Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Runs a command that must succeed; its output.
pub fn ok(cmd: &mut Command) -> String {
    let (rc, text) = output(cmd);
    assert_eq!(rc, Some(0), "{cmd:?} failed:\n{text}");
    text
}

/// The Debian 13 build root (made by `make check` before this runs).
pub fn root() -> PathBuf {
    let dir = ok(Command::new(repo().join("scripts/debian-root.sh")).arg("--print-dir"));
    PathBuf::from(dir.trim())
}

/// Runs a shell script inside the build root; its exit status and output.
pub fn in_root(script: &str) -> (Option<i32>, String) {
    output(Command::new(repo().join("scripts/debian-root.sh")).args(["--run", "sh", "-c", script]))
}

/// The DKMS source tree in the build root's /usr/src, registered afresh.
pub fn dkms_add() -> PathBuf {
    let root = root();
    ok(Command::new("make")
        .arg("-C")
        .arg(repo())
        .args(["-s", "--no-print-directory", "dkms-source"])
        .arg(format!("DESTDIR={}", root.display())));
    let (rc, log) = in_root(&format!(
        "dkms remove rust_emergency_reset/{VERSION} --all >/dev/null 2>&1; \
         rm -rf /lib/modules/*/updates/dkms/rust_emergency_reset.ko*; \
         dkms add rust_emergency_reset/{VERSION}"
    ));
    assert_eq!(rc, Some(0), "dkms add:\n{log}");
    root
}

/// Where DKMS installs the module for `release` in the build root.
pub fn installed(root: &Path, release: &str) -> PathBuf {
    root.join(format!(
        "lib/modules/{release}/updates/dkms/rust_emergency_reset.ko"
    ))
}
