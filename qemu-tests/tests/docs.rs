// SPDX-License-Identifier: GPL-2.0

//! The admin guide is valid reStructuredText, with every file it includes.

use std::{
    path::PathBuf,
    process::Command, //
};

#[test]
fn the_admin_guide_parses_without_warnings() {
    let guide = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../Documentation/admin-guide/emergency-reset.rst");
    let script = "import sys, docutils.core\n\
                  p = sys.argv[1]\n\
                  docutils.core.publish_string(open(p).read(), source_path=p, writer_name='null',\n\
                  settings_overrides={'report_level': 2, 'halt_level': 2})\n";
    // Debian's python3, where scripts/setup.sh installs python3-docutils.
    let python = if PathBuf::from("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .args(["-c", script])
        .arg(&guide)
        .output()
        .expect("python3 (with docutils: scripts/setup.sh installs python3-docutils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
