// SPDX-License-Identifier: GPL-2.0

//! Writes `Documentation/kernels.md` from what `make check` asserted on each
//! Debian kernel of the resolved set: one row per kernel (release, flavour,
//! suite, toolchain, the time its KDIR took), one column per core scenario,
//! each cell the verdict of that scenario's test in the kernel's leg.
//!
//! ```sh
//! cargo run --bin kernels      # after make check (reads target/)
//! ```
//!
//! Reads `target/debian-releases` (the resolved set, one release a line),
//! each leg's test output `target/legs/RELEASE.log` (nextest's
//! `PASS [ TIME] (N/M) qemu-tests::BINARY NAME`), and
//! each kernel's `.config` and KDIR build time from its KDIR
//! (`scripts/debian-kdir.sh --print-dir`). A kernel whose leg left no log
//! was not built; the log's `check: not built:` line says why. Exits 1 if a
//! scenario of a built kernel did not pass.

use std::{
    fs,
    path::{
        Path,
        PathBuf, //
    },
    process::{
        Command,
        ExitCode, //
    },
};

/// The core scenarios (the Makefile's `QEMU_TESTS_CORE`), with their column labels.
const SCENARIOS: [(&str, &str); 21] = [
    ("seed_scenario_device_resets_while_reboot_is_stuck", "seed"),
    (
        "seed_scenario_control_without_module_stays_stuck",
        "seed control",
    ),
    (
        "bad_input_and_unprivileged_writers_are_refused",
        "bad input, privileges",
    ),
    ("each_method_forced_alone_resets_q35", "each method alone"),
    (
        "without_an_8042_the_default_order_falls_back_to_acpi",
        "fallback",
    ),
    ("sysrq_trigger_file_resets", "sysrq file"),
    ("keyboard_chord_alt_sysrq_x_resets", "Alt+SysRq+x"),
    ("serial_break_then_x_resets", "serial break"),
    (
        "bad_parameters_fail_the_load_and_change_nothing",
        "bad parameters",
    ),
    ("lockup_all_nmi", "NMI, every CPU spinning"),
    (
        "an_nmi_takes_over_from_an_attempt_whose_cpu_stopped_for_good",
        "NMI takes over a stalled attempt",
    ),
    ("on_oops_0_resets_at_once_from_the_oops", "on_oops=0"),
    ("on_oops_resets_n_seconds_after_the_oops", "on_oops=N"),
    (
        "seed_scenario_the_second_boot_names_the_device_its_caller_and_the_oops",
        "last words",
    ),
    (
        "lockdown_refuses_the_userspace_rescue_and_an_unsigned_module",
        "lockdown",
    ),
    (
        "dead_userspace_is_reset_by_the_sender_over_ipv4",
        "datagram, userspace stopped",
    ),
    (
        "every_datagram_that_must_not_reset_is_dropped_and_counted",
        "wrong key, forged",
    ),
    (
        "a_datagram_replayed_after_the_reset_and_reboot_is_refused",
        "replay",
    ),
    (
        "unload_with_every_trigger_armed_leaves_no_handler_behind",
        "unload, triggers armed",
    ),
    (
        "unloading_while_datagrams_arrive_leaves_no_hook_behind",
        "unload, datagrams arriving",
    ),
    (
        "a_cpu_holding_the_consoles_port_lock_does_not_stop_the_reset",
        "console's port lock held",
    ),
];

const HEADER: &str = "<!-- Written by `cargo run --bin kernels` (qemu-tests) from the verdicts of \
`make check`'s legs, one per Debian kernel. Do not edit by hand. -->\n\n\
# The Debian kernels `make check` boots\n\n\
Each kernel of the set `make check` resolves from the archive (the newest release of each \
flavour, `DEBIAN_FLAVOURS`, in trixie-backports and in forky), booted as Debian signed it (its vmlinuz fetched, never \
installed), with the modules built for it by its own compilers. The first kernel gets the \
whole suite and the fault matrix; every other one the core scenarios below. *pass*: the \
test asserted what its scenario must show (QMP's guest-reset, or the guest alive \
afterwards); *FAILED*: it did not. KDIR: the time `scripts/debian-kdir.sh` took to make \
the kernel's Rust metadata, cold.\n\n";

fn target() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target")
}

/// `CONFIG_NAME="..."` of a `.config`, its value.
fn config_text<'a>(config: &'a str, name: &str) -> &'a str {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=\"")))
        .map_or("?", |v| v.trim_end_matches('"'))
}

/// The KDIR of `release`, if made.
fn kdir(release: &str) -> Option<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(repo.join("scripts/debian-kdir.sh"))
        .args(["--print-dir", release])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join(".config").exists().then_some(dir)
}

fn main() -> ExitCode {
    let releases = fs::read_to_string(target().join("debian-releases")).unwrap_or_default();
    let mut table = String::from(HEADER);
    table += "| kernel | flavour | suite | toolchain | KDIR |";
    for (_, label) in SCENARIOS {
        table += &format!(" {label} |");
    }
    table += "\n|---|---|---|---|---|";
    table += &"---|".repeat(SCENARIOS.len());
    table += "\n";
    let mut failed = false;
    for release in releases.split_whitespace() {
        let flavour = release.split_once('-').map_or("?", |(_, f)| f);
        let suite = if release.contains("+deb13-") {
            "trixie-backports"
        } else {
            "forky"
        };
        let log = fs::read_to_string(target().join("legs").join(format!("{release}.log")));
        let dir = kdir(release);
        let toolchain = dir.as_ref().map_or("?".to_string(), |d| {
            let config = fs::read_to_string(d.join(".config")).unwrap_or_default();
            format!(
                "{}, bindgen {}, {}",
                config_text(&config, "CONFIG_RUSTC_VERSION_TEXT")
                    .split(" (")
                    .next()
                    .unwrap_or("?"),
                config_text(&config, "CONFIG_BINDGEN_VERSION_TEXT").trim_start_matches("bindgen "),
                config_text(&config, "CONFIG_CC_VERSION_TEXT")
                    .split(" (")
                    .next()
                    .unwrap_or("?")
            )
        });
        let kdir_secs = dir
            .and_then(|d| fs::read_to_string(d.join("../build-seconds")).ok())
            .map_or("?".to_string(), |s| format!("{} s", s.trim()));
        table += &format!("| {release} | {flavour} | {suite} | {toolchain} | {kdir_secs} |");
        match log {
            Err(_) => {
                table += &format!(" not built |{}\n", " |".repeat(SCENARIOS.len() - 1));
            }
            Ok(log) => {
                if let Some(why) = log
                    .lines()
                    .find_map(|l| l.strip_prefix("check: not built: "))
                {
                    table += &format!(" not built: {why} |{}\n", " |".repeat(SCENARIOS.len() - 1));
                    continue;
                }
                for (test, _) in SCENARIOS {
                    let ok = log.lines().any(|l| passed(l, test));
                    failed |= !ok;
                    table += if ok { " pass |" } else { " FAILED |" };
                }
                table += "\n";
            }
        }
    }
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Documentation/kernels.md");
    fs::write(&doc, &table).unwrap();
    println!("kernels: {} written", doc.display());
    if failed {
        eprintln!("kernels: a core scenario did not pass on a built kernel (see the table)");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Whether `line` is nextest's report of `test` passing:
/// `PASS [   5.912s] ( 1/21) qemu-tests::engine NAME`.
fn passed(line: &str, test: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(
        words.as_slice(),
        ["PASS", .., binary, name] if binary.starts_with("qemu-tests::") && *name == test
    )
}
