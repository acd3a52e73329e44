// SPDX-License-Identifier: GPL-2.0

//! What the guest gets besides busybox and the scenario: its static helper
//! programs, built from `helpers/*.c` on first use ([`guest_helper`],
//! [`rescue_helper`]), and module files with or without their signature
//! ([`is_signed`], [`unsigned_copy`]).
//!
//! It builds and copies files on the host, under this crate's `target/`; it
//! never runs what it builds (only a guest does) and boots nothing.

use crate::inputs::target_dir;
use std::{
    fs,
    path::{
        Path,
        PathBuf, //
    },
    process::Command,
    sync::Mutex, //
};

/// The marker `scripts/sign-file` appends after a module's signature.
const SIGNATURE_MARKER: &[u8] = b"~Module signature appended~\n";

/// Whether a module file carries an appended signature.
pub fn is_signed(ko: &Path) -> bool {
    fs::read(ko).unwrap().ends_with(SIGNATURE_MARKER)
}

/// A copy of `ko` without its signature (a signed module is the module, the
/// signature, a 12-byte `struct module_signature` whose last 4 bytes are the
/// signature's length, big-endian, and the marker), in `dir`.
pub fn unsigned_copy(ko: &Path, dir: &Path) -> PathBuf {
    let mut data = fs::read(ko).unwrap();
    if data.ends_with(SIGNATURE_MARKER) {
        let info_end = data.len() - SIGNATURE_MARKER.len();
        let info = &data[info_end - 12..info_end];
        let sig_len = u32::from_be_bytes(info[8..12].try_into().unwrap()) as usize;
        data.truncate(info_end - 12 - sig_len);
    }
    fs::create_dir_all(dir).unwrap();
    let copy = dir.join(ko.file_name().unwrap());
    fs::write(&copy, data).unwrap();
    assert!(!is_signed(&copy));
    copy
}

/// `rer-rescue` (`helpers/rer-rescue.c`), seed 000's userspace rescue, built
/// static for the guest on first use: `rer-rescue iopl|ioperm` prints
/// `RER-RESCUE <how> refused: <error>`, or resets the machine.
pub fn rescue_helper() -> PathBuf {
    guest_helper("rer-rescue")
}

/// The guest program `helpers/<name>.c`, built static on first use in this
/// process (`rer-rescue`, the benchmark's `rer-trigger`).
pub fn guest_helper(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, bin)) = built.iter().find(|(n, _)| n == name) {
        return bin.clone();
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("helpers/{name}.c"));
    let dir = target_dir().join("helpers");
    fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(name);
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc (build-essential)");
    assert!(status.success(), "cannot build {}", src.display());
    fs::rename(&tmp, &bin).unwrap();
    built.push((name.to_string(), bin.clone()));
    bin
}
