// SPDX-License-Identifier: GPL-2.0

//! Prints where `make check`'s time went; `make check` runs it last, failed
//! or not.
//!
//! ```sh
//! cargo run --bin report       # after make check (reads target/)
//! ```
//!
//! Reads what the run recorded under `target/`: `timings.tsv`, one line per
//! step of each leg (`scripts/timed.sh`: leg, step, seconds, cold or cached,
//! exit status; leg `background`: the Debian kernels' set-up that ran
//! beside the legs, left out of the total); `guest-times.tsv`, one line per QEMU guest (the harness's
//! `Vm::finish`: kernel, test, guest, boot and scenario milliseconds); and
//! `retries.tsv`, one line per boot the harness made again (`Vm::boot`);
//! and `secure-boot-times.tsv`, one line per boot through the firmware
//! (`firmware::boot`: kernel, guest, and the seconds of its phases).
//! Prints four tables: the steps with their total, the 10 slowest tests
//! (their guests' boot and scenario times summed), every retry, and the
//! Secure Boot machine's boots. Exits 0: it reports, it does not judge.

use std::{
    collections::BTreeMap,
    fs,
    path::Path, //
};

/// The tab-separated fields of each line of `target/NAME`, none if missing.
fn rows(name: &str) -> Vec<Vec<String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

fn field(row: &[String], i: usize) -> &str {
    row.get(i).map_or("?", String::as_str)
}

fn millis(row: &[String], i: usize) -> u64 {
    field(row, i).parse().unwrap_or(0)
}

fn seconds(ms: u64) -> String {
    format!("{:.1}", ms as f64 / 1000.0)
}

/// The steps of each leg, in the order they ran, and their total.
fn steps() {
    let steps = rows("timings.tsv");
    println!("check: where the time went (cold: made here; cached: found in the cache)");
    println!(
        "  {:<28} {:<26} {:<7} {:>7}",
        "leg", "step", "state", "seconds"
    );
    let mut total = 0u64;
    for s in &steps {
        let secs: u64 = field(s, 2).parse().unwrap_or(0);
        // The background set-up ran beside the legs (Makefile: check-debian-prep).
        if field(s, 0) != "background" {
            total += secs;
        }
        let failed = if field(s, 4) == "0" { "" } else { "  (failed)" };
        println!(
            "  {:<28} {:<26} {:<7} {:>7}{failed}",
            field(s, 0),
            field(s, 1),
            field(s, 3),
            secs
        );
    }
    println!(
        "  {:<28} {:<26} {:<7} {:>7}",
        "total", "but background", "", total
    );
}

/// The 10 tests whose guests took longest, boot and scenario apart.
fn slowest_tests() {
    // (kernel, test) -> (guests, boot ms, scenario ms)
    let mut tests: BTreeMap<(String, String), (u32, u64, u64)> = BTreeMap::new();
    for g in rows("guest-times.tsv") {
        let t = tests
            .entry((field(&g, 0).to_owned(), field(&g, 1).to_owned()))
            .or_default();
        t.0 += 1;
        t.1 += millis(&g, 3);
        t.2 += millis(&g, 4);
    }
    let guests: u32 = tests.values().map(|t| t.0).sum();
    let mut by_time: Vec<_> = tests.into_iter().collect();
    by_time.sort_by_key(|(_, t)| std::cmp::Reverse(t.1 + t.2));
    println!(
        "check: the 10 slowest tests of {} ({} guests; boot: QEMU's start to /init, \
         scenario: /init to the guest's end)",
        by_time.len(),
        guests
    );
    println!(
        "  {:<22} {:<66} {:>6} {:>8} {:>9}",
        "kernel", "test", "guests", "boot s", "scenario s"
    );
    for ((kernel, test), (n, boot, scenario)) in by_time.iter().take(10) {
        println!(
            "  {:<22} {:<66} {:>6} {:>8} {:>9}",
            kernel,
            test,
            n,
            seconds(*boot),
            seconds(*scenario)
        );
    }
}

/// Every boot the harness made again, and why.
fn retries() {
    let retries = rows("retries.tsv");
    if retries.is_empty() {
        println!("check: retries: none");
        return;
    }
    println!("check: retries: {}", retries.len());
    for r in &retries {
        println!(
            "  {} {} (guest {}): {}; first try's log {}",
            field(r, 0),
            field(r, 1),
            field(r, 2),
            field(r, 3),
            field(r, 4)
        );
    }
}

/// Each boot through the firmware (`tests/secure_boot.rs`), by phase.
fn secure_boots() {
    let boots = rows("secure-boot-times.tsv");
    if boots.is_empty() {
        return;
    }
    println!("check: Secure Boot machine's boots (seconds)");
    println!(
        "  {:<24} {:<28} {:>6} {:>14} {:>5} {:>15} {:>6}",
        "kernel", "guest", "image", "firmware+shim", "grub", "kernel to /init", "total"
    );
    for b in &boots {
        println!(
            "  {:<24} {:<28} {:>6} {:>14} {:>5} {:>15} {:>6}",
            field(b, 0),
            field(b, 1),
            field(b, 2),
            field(b, 3),
            field(b, 4),
            field(b, 5),
            field(b, 6)
        );
    }
}

fn main() {
    steps();
    slowest_tests();
    retries();
    secure_boots();
}
