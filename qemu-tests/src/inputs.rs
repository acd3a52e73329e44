// SPDX-License-Identifier: GPL-2.0

//! Where the tests' inputs are ([`Inputs`]), from the environment `make check`
//! sets: `RER_KDIR` (the tree the modules were built against), `RER_MODULE`
//! (`rust_emergency_reset.ko`), `RER_TEST_MODULES` (the directory of the
//! deliberately broken modules), and for a kernel other than the project's test
//! kernel `RER_KERNEL` (the image to boot) with `RER_KERNEL_NAME` (its release,
//! e.g. `7.3.4+deb13-amd64` for Debian's own). `RER_QEMU` runs another QEMU
//! than the `qemu-system-x86_64` on the PATH ([`qemu_binary`]; for comparing
//! releases, `make check` never sets it), and `RER_ACCEL` another `-accel`
//! than [`ACCEL`] (for measuring multi-threaded TCG against it; `make check`
//! never sets it either). Also the host's static busybox
//! ([`busybox`]) and this crate's `target/` ([`target_dir`]).
//!
//! It reads the environment and finds files; it builds, writes and starts
//! nothing.

use std::{
    fs,
    path::{
        Path,
        PathBuf, //
    },
};

/// QEMU's accelerator for every guest: TCG, single-threaded. One host thread
/// runs every vCPU in turn, so when one vCPU's kernel patches code (a static
/// key, an alternative, `text_poke_bp()`'s int3 and its final byte), QEMU
/// invalidates the translations of that code before any other vCPU runs
/// again. Multi-threaded TCG (QEMU 10.0.2) now and then let another vCPU run
/// a stale translation in the same window: an `Oops: int3` on a finished
/// instruction (README.md, "QEMU").
pub const ACCEL: &str = "tcg,thread=single";

/// Where the inputs of the tests are, from the environment `make check` sets.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// Which kernel that is: `test` for the project's test kernel, else the
    /// release of the kernel (e.g. `7.3.4+deb13-amd64`).
    pub kernel_name: String,
    /// The tree the modules were built against (`RER_KDIR`), with the
    /// kernel's `.config`.
    pub kdir: PathBuf,
    /// `rust_emergency_reset.ko`.
    pub module: PathBuf,
    /// The directory holding the deliberately broken test modules.
    pub test_modules: PathBuf,
    /// The kernel's own modules a guest with a network needs (its virtio
    /// NIC), in load order: none for the test kernel, which has the NIC
    /// built in; for Debian's kernel, from `RER_NET_MODULES` (a directory
    /// with the modules and a file `order` naming them).
    pub net_modules: Vec<PathBuf>,
    /// QEMU's `-accel`: [`ACCEL`], or `RER_ACCEL`.
    pub accel: String,
}

impl Inputs {
    /// Reads the inputs from the environment. Panics with what to do when one is missing.
    pub fn from_env() -> Inputs {
        let var = |name: &str| -> PathBuf {
            match std::env::var_os(name) {
                Some(v) => PathBuf::from(v),
                None => panic!("{name} is not set: run the QEMU tests with `make check`"),
            }
        };
        let (kernel, kernel_name) = match std::env::var_os("RER_KERNEL") {
            Some(image) => (
                PathBuf::from(image),
                std::env::var("RER_KERNEL_NAME").expect("RER_KERNEL_NAME names RER_KERNEL"),
            ),
            None => (
                var("RER_KDIR").join("arch/x86/boot/bzImage"),
                "test".to_string(),
            ),
        };
        let net_modules = match std::env::var_os("RER_NET_MODULES") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                let order = fs::read_to_string(dir.join("order"))
                    .unwrap_or_else(|e| panic!("{}/order: {e}", dir.display()));
                order.split_whitespace().map(|m| dir.join(m)).collect()
            }
            None => Vec::new(),
        };
        let inputs = Inputs {
            kernel,
            kernel_name,
            kdir: var("RER_KDIR"),
            module: var("RER_MODULE"),
            test_modules: var("RER_TEST_MODULES"),
            net_modules,
            accel: std::env::var("RER_ACCEL").unwrap_or_else(|_| ACCEL.to_string()),
        };
        for p in [&inputs.kernel, &inputs.module, &inputs.test_modules] {
            assert!(
                p.exists(),
                "{} does not exist: run `make check`",
                p.display()
            );
        }
        inputs
    }

    /// Whether the kernel under test was built with `option` (`CONFIG_DEVPORT`:
    /// `CONFIG_DEVPORT=y` in its KDIR's `.config`). Panics without a `.config`.
    pub fn has_config(&self, option: &str) -> bool {
        let path = self.kdir.join(".config");
        let config = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}: is RER_KDIR a kernel tree?", path.display()));
        let set = format!("{option}=y");
        config.lines().any(|l| l == set)
    }

    /// Whether the kernel under test is Debian's own (`+debNN-` in its release).
    pub fn is_debian(&self) -> bool {
        self.kernel_name.contains("+deb")
    }

    /// A directory under this crate's `target/` for what runs on this kernel.
    pub fn target_dir(&self, what: &str) -> PathBuf {
        target_dir().join(what).join(&self.kernel_name)
    }

    /// A deliberately broken module from `qemu-tests/modules`, by name.
    pub fn test_module(&self, name: &str) -> PathBuf {
        let p = self.test_modules.join(format!("{name}.ko"));
        assert!(
            p.exists(),
            "{} does not exist: run `make check`",
            p.display()
        );
        p
    }
}

/// `target/` of this crate: where logs and scratch files go.
pub(crate) fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// The QEMU to run: `RER_QEMU`, for comparing releases, or else
/// `qemu-system-x86_64` from the PATH.
pub fn qemu_binary() -> String {
    std::env::var("RER_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
}

/// The static busybox the guest runs.
pub(crate) fn busybox() -> &'static str {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("no static busybox: run scripts/setup.sh (package busybox-static)");
}
