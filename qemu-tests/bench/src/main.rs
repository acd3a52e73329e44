// SPDX-License-Identifier: GPL-2.0

//! `make bench`: trigger-to-reset latency of `rust_emergency_reset` side by
//! side with the tools admins use today, on the same guests, in one run.
//!
//! ```sh
//! make bench                    # 20 runs per case, writes Documentation/benchmark.{md,png}
//! make bench BENCH_RUNS=40
//! cargo run --release --bin bench -- --smoke   # one run of the healthy cases (make check)
//! ```
//!
//! The measurement, the same for every trigger: right before the trigger the
//! guest writes to QEMU's pvpanic port (see `qemu_tests::MARK`), which makes
//! QEMU emit the QMP event `GUEST_CRASHLOADED`; the reset makes QEMU emit
//! `SHUTDOWN` (reason `guest-reset`). Both events are timestamped by QEMU
//! itself, so the latency is free of the host's pipe and scheduling delays,
//! and it covers exactly the guest's path from the trigger command to the
//! hardware reset. A trigger that has not reset the guest 8 s after the mark
//! counts as a timeout; timeouts are reported, never dropped. Runs are
//! interleaved across cases (round-robin), two VMs at a time, so that host
//! load affects every case alike. This is a benchmark, not a test: nothing
//! here asserts on time.

use plotters::prelude::*;
use qemu_tests::{
    matrix::Fault,
    run,
    Guest,
    Inputs,
    MARK,
    RTC_MARK, //
};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::PathBuf,
    process::Command,
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

/// How long a trigger gets after the mark.
const WINDOW_SECS: u32 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GuestKind {
    Healthy,
    Fault(usize),
    /// Healthy, booted with `lockdown=integrity` (Secure Boot's rules).
    Lockdown,
}

impl GuestKind {
    fn label(self) -> String {
        match self {
            GuestKind::Healthy => "healthy".into(),
            GuestKind::Fault(i) => format!("fault {}", i + 1),
            GuestKind::Lockdown => "lockdown=integrity".into(),
        }
    }
    fn fault(self) -> Option<Fault> {
        match self {
            GuestKind::Healthy | GuestKind::Lockdown => None,
            GuestKind::Fault(i) => Some(Fault::ALL[i]),
        }
    }
    /// The guest's timestamped mark, and the QMP event it makes: lockdown
    /// refuses `/dev/port`, which the usual mark writes.
    fn mark(self) -> (&'static str, &'static str) {
        match self {
            GuestKind::Lockdown => (RTC_MARK, "RTC_CHANGE"),
            _ => (MARK, "GUEST_CRASHLOADED"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Trig {
    Device,
    SysrqX,
    SysrqB,
    DevPort,
    RebootF,
}

impl Trig {
    const ALL: [Trig; 5] = [
        Trig::Device,
        Trig::SysrqX,
        Trig::SysrqB,
        Trig::DevPort,
        Trig::RebootF,
    ];
    fn label(self) -> &'static str {
        match self {
            Trig::Device => "ours: /dev/emergency_reset",
            Trig::SysrqX => "ours: sysrq x (/proc)",
            Trig::SysrqB => "sysrq-b (/proc)",
            Trig::DevPort => "0xfe to /dev/port (seed 000)",
            Trig::RebootF => "reboot -f",
        }
    }
    fn command(self) -> &'static str {
        match self {
            Trig::Device => "echo reset > /dev/emergency_reset",
            Trig::SysrqX => "echo x > /proc/sysrq-trigger",
            Trig::SysrqB => "echo b > /proc/sysrq-trigger",
            // 0xFE (octal 376) to port 0x64 (offset 100), as seed 000 does it.
            Trig::DevPort => "printf '\\376' | dd of=/dev/port bs=1 seek=100 count=1 2>/dev/null",
            Trig::RebootF => "reboot -f",
        }
    }
}

/// One measured configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Case {
    group: u8,
    guest: GuestKind,
    trig: Trig,
    machine: &'static str,
    cpus: u32,
    params: &'static str,
}

impl Case {
    fn label(&self) -> String {
        match self.group {
            0 => format!("{} / {}", self.guest.label(), self.trig.label()),
            1 => format!("{} CPU(s) / {}", self.cpus, self.trig.label()),
            _ => "microvm, every method fails: until EIO".to_string(),
        }
    }

    fn scenario(&self) -> String {
        let mut s = format!("insmod /modules/rust_emergency_reset.ko {}\n", self.params);
        if let Some(f) = self.guest.fault() {
            s += f.setup();
            s += "\nsleep 1\n";
        }
        let (mark, _) = self.guest.mark();
        if self.group == 2 {
            // The failing write, between two marks: no reset; the time to EIO.
            s += &format!("{mark}\n{} 2>/dev/null\n{mark}\n", self.trig.command());
        } else {
            // In the background, so that a trigger that hangs (reboot -f) does not keep the
            // guest from finishing its window; every trigger pays the same fork.
            s += &format!("{mark}\n{} &\nsleep {WINDOW_SECS}\n", self.trig.command());
        }
        s
    }

    /// Whether this case must reset: all but `/dev/port` under lockdown.
    fn must_reset(&self) -> bool {
        !(self.guest == GuestKind::Lockdown && self.trig == Trig::DevPort)
    }
}

/// One run's result: the latency, or `None` for no reset within the window.
type Sample = Option<Duration>;

fn measure(case: &Case, inputs: &Inputs, n: usize) -> Sample {
    let name = format!("bench_{n}");
    let mut guest = Guest::new(&name, inputs, &case.scenario())
        .machine(case.machine)
        .cpus(case.cpus)
        .timeout(Duration::from_secs(30));
    guest.pvpanic = true;
    if let Some(f) = case.guest.fault() {
        guest = guest.with_module(inputs.test_module(f.module()));
    }
    if case.guest == GuestKind::Lockdown {
        guest = guest.append("lockdown=integrity");
    }
    let out = run(&guest, inputs);
    if case.group == 2 {
        let marks = out.event_times("GUEST_CRASHLOADED");
        return match marks[..] {
            [a, b, ..] => b.duration_since(a).ok(),
            _ => None,
        };
    }
    out.reset_latency_from(case.guest.mark().1)
}

fn cases(smoke: bool) -> Vec<Case> {
    let base = |group, guest, trig| Case {
        group,
        guest,
        trig,
        machine: "q35",
        cpus: 2,
        params: "",
    };
    let mut v = Vec::new();
    let guests: &[GuestKind] = if smoke {
        &[GuestKind::Healthy]
    } else {
        &[GuestKind::Healthy, GuestKind::Fault(0), GuestKind::Fault(1)]
    };
    for &g in guests {
        for t in Trig::ALL {
            v.push(base(0, g, t));
        }
    }
    // Secure Boot's lockdown: our device beside seed 000's /dev/port rescue.
    for t in [Trig::Device, Trig::DevPort] {
        v.push(base(0, GuestKind::Lockdown, t));
    }
    if !smoke {
        for cpus in [1, 2, 4] {
            v.push(Case {
                cpus,
                ..base(1, GuestKind::Healthy, Trig::Device)
            });
        }
        v.push(Case {
            machine: "microvm,acpi=off",
            cpus: 1,
            params: "methods=kbd,acpi,cf9",
            ..base(2, GuestKind::Healthy, Trig::Device)
        });
    }
    v
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

struct Stats {
    n: usize,
    ok: usize,
    median: f64,
    p90: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[Sample]) -> Option<Stats> {
    let mut ms: Vec<f64> = samples
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(Stats {
        n: samples.len(),
        ok: ms.len(),
        median: percentile(&ms, 0.5),
        p90: percentile(&ms, 0.9),
        min: ms[0],
        max: ms[ms.len() - 1],
    })
}

/// Times a module rebuild (`touch` + `make`), the median of three.
fn module_rebuild_secs() -> Option<f64> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut t = Vec::new();
    for _ in 0..3 {
        Command::new("touch")
            .arg(repo.join("rust_emergency_reset.rs"))
            .status()
            .ok()?;
        let start = Instant::now();
        let ok = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&repo)
            .arg("modules")
            .output()
            .ok()?
            .status
            .success();
        if !ok {
            return None;
        }
        t.push(start.elapsed().as_secs_f64());
    }
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Some(t[1])
}

/// A duration that `scripts/` recorded: `build-seconds` beside the kernel tree,
/// `setup-seconds` in the cache directory above it.
fn recorded_secs(file: &str) -> Option<String> {
    let kdir = PathBuf::from(std::env::var_os("RER_KDIR")?);
    let dir = kdir.parent()?;
    let dir = if file == "setup-seconds" {
        dir.parent()?
    } else {
        dir
    };
    std::fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn report(results: &BTreeMap<Case, Vec<Sample>>, runs: usize, wall: Duration) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- Written by `make bench` (qemu-tests/bench). Do not edit by hand. -->\n\n\
         Trigger-to-reset latency, from QEMU's timestamp of the guest's mark (a pvpanic \
         write right before the trigger command) to QEMU's timestamp of the reset. q35 \
         unless said, TCG, {runs} runs per case, interleaved, two VMs at a time; one run \
         of {:.0} s in all. *timeouts*: no reset {WINDOW_SECS} s after the mark. Fault 1: \
         oops holding `system_transition_mutex`; fault 2: a reboot notifier that never \
         returns, with a `reboot -f` stuck in it. *lockdown=integrity*: a healthy guest \
         booted in lockdown, as a Secure Boot machine is; its mark is a write of the RTC \
         (QEMU's `RTC_CHANGE`), since lockdown refuses `/dev/port`.\n",
        wall.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| case | runs | timeouts | median ms | p90 ms | min ms | max ms | ours ÷ /dev/port | ours ÷ sysrq-b |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    // None: not measured on that guest; Some(None): measured, never reset.
    let median_of = |guest: GuestKind, trig: Trig| {
        results
            .iter()
            .find(|(c, _)| c.group == 0 && c.guest == guest && c.trig == trig)
            .map(|(_, s)| stats(s).map(|s| s.median))
    };
    for (case, samples) in results {
        let label = case.label();
        let Some(s) = stats(samples) else {
            let _ = writeln!(
                md,
                "| {label} | {} | {} | – | – | – | – | | |",
                samples.len(),
                samples.len()
            );
            continue;
        };
        let ratio = |other: Trig| -> String {
            if case.group != 0 || !matches!(case.trig, Trig::Device | Trig::SysrqX) {
                return String::new();
            }
            match median_of(case.guest, other) {
                Some(Some(m)) => format!("{:.2}", s.median / m),
                Some(None) => "(other never resets)".into(),
                None => String::new(),
            }
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            s.n,
            s.n - s.ok,
            s.median,
            s.p90,
            s.min,
            s.max,
            ratio(Trig::DevPort),
            ratio(Trig::SysrqB)
        );
    }
    md
}

fn costs(md: &mut String) {
    let _ = writeln!(md, "\nDeveloper-facing costs on this machine (2 cores):\n");
    let _ = writeln!(md, "| what | time |\n|---|---|");
    if let Some(s) = recorded_secs("setup-seconds") {
        let _ = writeln!(
            md,
            "| cold set-up (`scripts/setup.sh`, last run that installed) | {s} s |"
        );
    }
    if let Some(s) = recorded_secs("build-seconds") {
        let _ = writeln!(
            md,
            "| test-kernel build (`scripts/build-kernel.sh`, cold) | {s} s |"
        );
    }
    if let Some(s) = module_rebuild_secs() {
        let _ = writeln!(md, "| module rebuild (`touch` + `make`) | {s:.1} s |");
    }
    let _ = writeln!(
        md,
        "| full `make check` | printed by `.ci/run` as `ci: make check took N s` |"
    );
}

fn plot(
    results: &BTreeMap<Case, Vec<Sample>>,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "cannot load DejaVuSans.ttf")?;
    let rows: Vec<(&Case, &Vec<Sample>)> = results.iter().collect();
    let n = rows.len();
    let height = 120 + 34 * n as u32;
    let root = BitMapBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let timeout_ms = f64::from(WINDOW_SECS) * 1000.0 * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Trigger-to-reset latency (QMP timestamps), ms, log scale",
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(430)
        .build_cartesian_2d((0.5f64..timeout_ms).log_scale(), -0.5f64..(n as f64 - 0.5))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&|y| {
            let i = y.round();
            if (y - i).abs() < 0.01 && i >= 0.0 && (i as usize) < n {
                rows[n - 1 - i as usize].0.label()
            } else {
                String::new()
            }
        })
        .x_desc("milliseconds (× at the right edge: no reset within the window)")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (row, (_, samples)) in rows.iter().enumerate() {
        let y = (n - 1 - row) as f64;
        for (k, s) in samples.iter().enumerate() {
            let jitter = ((k * 37) % 11) as f64 / 11.0 * 0.5 - 0.25;
            match s {
                Some(d) => {
                    let x = (d.as_secs_f64() * 1000.0).max(0.5);
                    chart.draw_series(std::iter::once(Circle::new(
                        (x, y + jitter),
                        3,
                        BLUE.mix(0.6).filled(),
                    )))?;
                }
                None => {
                    chart.draw_series(std::iter::once(Cross::new(
                        (timeout_ms * 0.95, y + jitter),
                        4,
                        RED.stroke_width(2),
                    )))?;
                }
            }
        }
        if let Some(st) = stats(samples) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(st.median, y - 0.4), (st.median, y + 0.4)],
                BLACK.stroke_width(3),
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let runs: usize = if smoke {
        1
    } else {
        std::env::var("BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    };
    let inputs = Inputs::from_env();
    let cases = cases(smoke);
    // Round-robin: every case once per round, so slow and fast cases share the host alike.
    let jobs: Vec<(usize, Case)> = (0..runs)
        .flat_map(|r| cases.iter().cloned().map(move |c| (r, c)))
        .collect();
    let total = jobs.len();
    println!(
        "bench: {} cases × {runs} runs = {total} VMs, two at a time",
        cases.len()
    );
    let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate()));
    let results: Arc<Mutex<BTreeMap<Case, Vec<Sample>>>> = Arc::default();
    let start = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, results, inputs) = (queue.clone(), results.clone(), inputs.clone());
            thread::spawn(move || loop {
                let Some((i, (_, case))) = queue.lock().unwrap().next() else {
                    return;
                };
                let sample = measure(&case, &inputs, i);
                eprintln!(
                    "bench: {}/{total} {}: {}",
                    i + 1,
                    case.label(),
                    sample.map_or("timeout".into(), |d| format!(
                        "{:.1} ms",
                        d.as_secs_f64() * 1e3
                    ))
                );
                results
                    .lock()
                    .unwrap()
                    .entry(case)
                    .or_default()
                    .push(sample);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let results = results.lock().unwrap().clone();
    let mut md = report(&results, runs, start.elapsed());
    if smoke {
        print!("{md}");
        // A smoke run checks the machinery, not the figures: every healthy trigger
        // reset, and /dev/port under lockdown did not.
        let failed: Vec<String> = results
            .iter()
            .filter(|(c, s)| s.iter().any(|x| x.is_some() != c.must_reset()))
            .map(|(c, _)| c.label())
            .collect();
        if failed.is_empty() {
            println!("bench smoke: 1 passed, 0 failed");
        } else {
            println!("bench smoke: not as expected: {failed:?}");
            println!("bench smoke: 0 passed, 1 failed");
            std::process::exit(1);
        }
        return;
    }
    costs(&mut md);
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Documentation");
    let png = doc.join("benchmark.png");
    md += "\n![latency per case](benchmark.png)\n";
    std::fs::write(doc.join("benchmark.md"), &md).unwrap();
    if let Err(e) = plot(&results, &png) {
        eprintln!("bench: no plot: {e}");
    }
    print!("{md}");
    println!(
        "bench: wrote {} and {}",
        doc.join("benchmark.md").display(),
        png.display()
    );
}
