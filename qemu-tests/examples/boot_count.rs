// SPDX-License-Identifier: GPL-2.0

//! Boots the kernel under test N times under each TCG mode, two guests at a
//! time, the modes in ABBA order, and counts the boots that failed: an
//! `Oops: int3` (a vCPU ran a stale translation of code another vCPU had
//! patched), any other Oops or panic, or no `/init`. With FLIPS, each guest
//! also loads `rer_text_poke` (the test module that flips a static key FLIPS
//! times on CPU 0 while CPU 1 runs its branch); else no module is loaded.
//! The evidence for [`qemu_tests::ACCEL`] (README.md, "QEMU").
//!
//! ```sh
//! export RER_KERNEL=$(scripts/debian-kdir.sh --vmlinuz 7.3.4+deb13-amd64) \
//!        RER_KERNEL_NAME=7.3.4+deb13-amd64 RER_KDIR=/nonexistent \
//!        RER_MODULE=$PWD/Makefile RER_TEST_MODULES=$PWD/qemu-tests/modules  # from the top
//! cd qemu-tests && cargo run --release --example boot_count -- 200 [FLIPS]
//! ```

use qemu_tests::{
    Guest,
    Inputs,
    Vm,
    BOOTED, //
};
use std::{
    sync::{
        Arc,
        Mutex, //
    },
    thread,
    time::{
        Duration,
        Instant, //
    },
};

const MODES: [&str; 2] = ["tcg,thread=multi", "tcg,thread=single"];

#[derive(Default)]
struct Count {
    boots: u32,
    int3: u32,
    other: u32,
    no_init: u32,
    /// Seconds from QEMU's start to `/init`, of the boots that got there.
    to_init: Vec<f64>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let flips: u32 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let scenario = match flips {
        0 => "echo RER-UP\n".to_string(),
        n => format!("taskset 1 insmod /modules/rer_text_poke.ko flips={n}\n"),
    };
    let base = Inputs::from_env();
    // ABBA: each pair of runs has both modes, their order alternating.
    let jobs: Vec<(u32, &str)> = (0..n)
        .flat_map(|i| {
            let (a, b) = if i % 2 == 0 { (0, 1) } else { (1, 0) };
            [(i, MODES[a]), (i, MODES[b])]
        })
        .collect();
    let jobs = Arc::new(Mutex::new(jobs.into_iter()));
    let counts = Arc::new(Mutex::new([Count::default(), Count::default()]));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (jobs, counts, base) = (jobs.clone(), counts.clone(), base.clone());
            let scenario = scenario.clone();
            thread::spawn(move || loop {
                let Some((i, mode)) = jobs.lock().unwrap().next() else {
                    return;
                };
                let mut inputs = base.clone();
                inputs.accel = mode.to_string();
                let name = format!("boot_count_{}_{i}", mode.replace([',', '='], "_"));
                let mut guest = Guest::new(&name, &inputs, &scenario)
                    .without_our_module(&inputs)
                    .timeout(Duration::from_secs(120));
                if flips > 0 {
                    guest = guest.with_module(inputs.test_module("rer_text_poke"));
                }
                let start = Instant::now();
                let mut vm = Vm::start(&guest, &inputs);
                let up = vm.wait_for(BOOTED);
                let to_init = start.elapsed().as_secs_f64();
                let console = vm.finish().serial;
                let mut c = counts.lock().unwrap();
                let c = &mut c[MODES.iter().position(|m| *m == mode).unwrap()];
                c.boots += 1;
                if console.contains("Oops: int3") {
                    c.int3 += 1;
                    eprintln!("{name}: Oops: int3");
                } else if console.contains("Oops") || console.contains("Kernel panic") {
                    c.other += 1;
                    eprintln!("{name}: another Oops or panic");
                } else if !up {
                    c.no_init += 1;
                    eprintln!("{name}: never reached /init");
                } else {
                    c.to_init.push(to_init);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    println!(
        "{:<20} {:>6} {:>10} {:>12} {:>10} {:>16} {:>18}",
        "accel", "boots", "int3 Oops", "other Oops", "no /init", "to /init median", "p10-p90"
    );
    for (mode, c) in MODES.iter().zip(counts.lock().unwrap().iter_mut()) {
        c.to_init.sort_by(f64::total_cmp);
        println!(
            "{:<20} {:>6} {:>10} {:>12} {:>10} {:>14.2} s {:>8.2}-{:.2} s",
            mode,
            c.boots,
            c.int3,
            c.other,
            c.no_init,
            percentile(&c.to_init, 0.5),
            percentile(&c.to_init, 0.1),
            percentile(&c.to_init, 0.9)
        );
    }
}
