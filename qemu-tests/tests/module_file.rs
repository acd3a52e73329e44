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

/// Builds `abi_offsets.c` against the kernel under test, as the module's own
/// build does, after `edit`; returns whether it built and what the compiler said.
fn build_abi_check(name: &str, edit: impl Fn(&str) -> String) -> (bool, String) {
    let inputs = Inputs::from_env();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = inputs.target_dir("abi-check").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string(repo.join("abi_offsets.c")).unwrap();
    std::fs::write(dir.join("abi_offsets.c"), edit(&source)).unwrap();
    // Assembly only, as Kbuild makes abi_offsets.s for the module.
    std::fs::write(
        dir.join("Kbuild"),
        "targets += abi_offsets.s\nalways-y += abi_offsets.s\n",
    )
    .unwrap();
    let make = if inputs.is_debian() {
        Command::new(repo.join("scripts/debian-kdir.sh"))
            .args(["--make", &inputs.kernel_name])
            .arg(format!("M={}", dir.display()))
            .output()
    } else {
        Command::new("make")
            .arg("-C")
            .arg(&inputs.kdir)
            .args(["LLVM=-19", &format!("M={}", dir.display())])
            .output()
    }
    .unwrap();
    let said =
        String::from_utf8_lossy(&make.stdout).to_string() + &String::from_utf8_lossy(&make.stderr);
    (
        make.status.success() && dir.join("abi_offsets.s").exists(),
        said,
    )
}

/// `abi_offsets.c` asserts every hand-declared prototype against the
/// kernel's headers: as shipped it builds; with one declaration made wrong
/// (the sysrq key's type, `u8` to `u32`, as a changed kernel prototype would
/// be), the build fails naming the function and the Rust file.
#[test]
fn a_hand_declared_prototype_that_differs_from_the_kernels_fails_the_build() {
    let (ok, said) = build_abi_check("as-shipped", str::to_string);
    assert!(ok, "abi_offsets.c as shipped must build:\n{said}");
    let wrong = "PROTOTYPE(register_sysrq_key, int (*)(u32, const struct sysrq_key_op *)";
    let (ok, said) = build_abi_check("wrong-prototype", |s| {
        let edited = s.replacen(
            "PROTOTYPE(register_sysrq_key, int (*)(u8, const struct sysrq_key_op *)",
            wrong,
            1,
        );
        assert_ne!(
            edited, s,
            "the declaration to break is not in abi_offsets.c"
        );
        edited
    });
    assert!(!ok, "a wrong prototype built:\n{said}");
    assert!(
        said.contains(
            "register_sysrq_key: the prototype in the kernel differs from the one sysrq.rs declares"
        ),
        "{said}"
    );
}
