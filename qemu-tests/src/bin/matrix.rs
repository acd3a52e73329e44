// SPDX-License-Identifier: GPL-2.0

//! Writes `Documentation/fault-matrix.md` from the cells `tests/faults.rs`
//! recorded on each kernel named on the command line (`test` for the
//! project's test kernel, or a release such as `7.3.4+deb13-amd64`). Exits 1
//! if the table changed (commit the new one) or a cell is missing.
//!
//! ```sh
//! cargo run --bin matrix -- test 7.3.4+deb13-amd64
//! ```

use std::{
    fs,
    path::PathBuf,
    process::ExitCode, //
};

const HEADER: &str = "<!-- Written by `cargo run --bin matrix` (qemu-tests) from the cells of \
qemu-tests/tests/faults.rs, each asserted in QEMU by `make check`. Do not edit by hand. -->\n\n\
Each cell: the guest broken as the row says (q35, 2 CPUs, `rust_emergency_reset` loaded with \
`nmi=1`), then the column's trigger. Every cell first shows that the guest booted and loaded the \
module, and that the fault was in place before the trigger: the broken module's line and the \
oops, or the `reboot -f` it holds in D state, or (rows 4 and 5) QEMU showing each locked CPU \
spinning with interrupts off inside the lockup module; every input was answered `return` by QEMU. \
*reset*: QEMU reported the guest's reset (for Alt+SysRq+x and serial break, the guest's sysrq \
code also logged the key). *no reset: stuck*: the trigger was issued and was still in D state \
when the guest, not reset, ended its scenario 8 s later. *impossible*: the trigger could not be \
issued, no CPU ran userspace again, and QEMU showed every CPU still spinning at the end. *no \
reset: alive*: the input was sent, nothing reset the guest, and a CPU still ran (QEMU showed it \
outside the lockup). *no reset: wedged*: the input was sent, nothing reset the guest, and QEMU \
showed every CPU still spinning at the end. Row 4, Alt+SysRq+x and serial break: the input reaches the sysrq code \
only if the guest delivers its IRQ (1: the 8042, 4: the UART) to CPU 0, the one left running; \
each cell reads that CPU from `/proc/irq/N/effective_affinity_list` before the fault. Both kernels \
put both IRQs on CPU 1 (which CPU depends on the order in which drivers take interrupt vectors: \
the test kernel put IRQ 4 on CPU 0 before its configuration grew for lockdown and signing).\n";

/// The heading of a kernel's table.
fn heading(kernel: &str) -> String {
    if kernel == "test" {
        "The project's test kernel (allnoconfig + Rust, lock checking, kCFI, clang 19; `scripts/build-kernel.sh`)".into()
    } else {
        // Not the release itself: trixie-backports moves on, the verdicts should not.
        // `make check` prints the release it tested.
        "Debian 13's stock kernel (Debian's signed vmlinuz of the newest Rust-enabled kernel in \
         trixie-backports; the module built by `make KRELEASE=<release>`)"
            .into()
    }
}

fn main() -> ExitCode {
    let kernels: Vec<String> = std::env::args().skip(1).collect();
    if kernels.is_empty() {
        eprintln!("usage: matrix KERNEL... (test, or a release such as 7.3.4+deb13-amd64)");
        return ExitCode::FAILURE;
    }
    let mut text = HEADER.to_string();
    for kernel in &kernels {
        match qemu_tests::matrix::table(kernel) {
            Ok(t) => text += &format!("\n## {}\n\n{t}", heading(kernel)),
            Err(e) => {
                eprintln!("matrix: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../Documentation/fault-matrix.md");
    print!("{text}");
    let old = fs::read_to_string(&path).unwrap_or_default();
    if old == text {
        println!("matrix: {} is up to date", path.display());
        return ExitCode::SUCCESS;
    }
    fs::write(&path, text).unwrap();
    eprintln!("matrix: {} changed: review and commit it", path.display());
    ExitCode::FAILURE
}
