// SPDX-License-Identifier: GPL-2.0

//! Host-side checks of `rust_emergency_reset.ko` itself: what it imports and
//! what `modinfo` says. Nothing is loaded.

use qemu_tests::Inputs;
use std::process::Command;

/// Functions whose use would put `reboot(2)`'s locks, or PCI's, on our path.
const FORBIDDEN: [&str; 7] = [
    "emergency_restart",
    "kernel_restart",
    "machine_restart",
    "machine_emergency_restart",
    "kernel_power_off",
    "acpi_reboot",
    "raw_pci_write",
];

fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_module_imports_no_reboot_path() {
    let inputs = Inputs::from_env();
    let ko = inputs.module.to_str().unwrap();
    let undefined = output("nm", &["--undefined-only", "--format=posix", ko]);
    let imports: Vec<&str> = undefined
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The check sees real imports.
    assert!(imports.contains(&"misc_register"), "{imports:?}");
    assert!(imports.contains(&"register_sysrq_key"), "{imports:?}");
    for f in FORBIDDEN {
        assert!(!imports.contains(&f), "the module imports {f}");
    }
}

#[test]
fn modinfo_names_license_description_and_every_parameter() {
    let inputs = Inputs::from_env();
    let info = output("modinfo", &[inputs.module.to_str().unwrap()]);
    let field = |name: &str| -> Vec<String> {
        info.lines()
            .filter_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .collect()
    };
    assert_eq!(field("license"), ["GPL"]);
    assert_eq!(field("name"), ["rust_emergency_reset"]);
    assert!(field("description")[0].contains("Reset a wedged x86 machine"));
    let parms = field("parm");
    for p in ["methods:", "sysrq_key:"] {
        let line = parms.iter().find(|l| l.starts_with(p));
        let line = line.unwrap_or_else(|| panic!("no parm {p} in {parms:?}"));
        assert!(
            line.ends_with("(string)") && line.contains("default"),
            "{line}"
        );
    }
}
