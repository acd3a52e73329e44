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
//! The measurement, the same for every trigger: one small static helper in
//! the guest, `rer-trigger` (`qemu-tests/helpers/rer-trigger.c`, built here
//! with `cc -static`), starts every trigger, ours and the anchors'. It writes
//! the mark and then at once performs the trigger itself, in the same
//! process, so no case pays for a fork or an exec in the measured interval
//! that another does not. The mark is the write `qemu_tests::MARK` does (bit 1
//! to QEMU's pvpanic port through `/dev/port`), which makes QEMU emit the QMP
//! event `GUEST_CRASHLOADED`; under lockdown, which refuses `/dev/port`, the
//! write `qemu_tests::RTC_MARK` does (`RTC_SET_TIME`, QEMU's `RTC_CHANGE`).
//! The reset makes QEMU emit `SHUTDOWN` (reason `guest-reset`). Both events
//! are timestamped by QEMU itself, so the latency is free of the host's pipe
//! and scheduling delays, and it covers exactly the guest's path from the
//! trigger's first system call to the hardware reset.
//!
//! A trigger that has not reset the guest 3 s after the mark, or that
//! returned without a reset, counts as a timeout; timeouts are reported,
//! never dropped, and so is what a trigger that returned said. Runs are
//! interleaved across cases (round-robin), two VMs at a time, so that host
//! load affects every case alike. The report gives each case's median and
//! spread (p10–p90), and each of our ratios to an anchor with a bootstrap
//! 95 % interval. This is a benchmark, not a test: nothing here asserts on
//! time. `--smoke` checks the machinery only: the helper ran in every guest
//! (its mark came), every trigger that must reset did, and `/dev/port` under
//! lockdown was refused.

use plotters::prelude::*;
use qemu_tests::{
    matrix::Fault,
    run,
    Ending,
    Guest,
    Inputs, //
};
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    path::{
        Path,
        PathBuf, //
    },
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

/// How long a trigger gets after the mark: 50 times the slowest reset yet
/// measured (`reboot -f`, 54 ms), and short, since `reboot -f` on a broken
/// guest waits out the whole window in 40 runs.
const WINDOW_SECS: u32 = 3;

/// How long the guest waits for a reset after the helper's trigger returned.
const GRACE_SECS: u32 = 1;

/// Runs of a case known not to reset ([`Case::runs`]).
const KNOWN_FAILURE_RUNS: usize = 5;

/// Resamples of each bootstrap interval.
const RESAMPLES: usize = 2000;

/// The bootstrap's seed: the same intervals from the same runs.
const SEED: u64 = 0x5eed_0000_0bec_4011;

/// Fewer runs that reset than this on either side: a ratio without an interval.
const MIN_RUNS_FOR_INTERVAL: usize = 5;

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
    /// The helper's mark (its first argument), and the QMP event it makes:
    /// lockdown refuses `/dev/port`, which the usual mark writes.
    fn mark(self) -> (&'static str, &'static str) {
        match self {
            GuestKind::Lockdown => ("rtc", "RTC_CHANGE"),
            _ => ("pvpanic", "GUEST_CRASHLOADED"),
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
    /// The helper's name of the trigger (its second argument).
    fn arg(self) -> &'static str {
        match self {
            Trig::Device => "device",
            Trig::SysrqX => "sysrq-x",
            Trig::SysrqB => "sysrq-b",
            Trig::DevPort => "dev-port",
            Trig::RebootF => "reboot-f",
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
    /// Our module's bench build without the reset path's emergency lines
    /// (`make quiet-module`, `RER_QUIET_MODULE`): what the lines cost.
    quiet: bool,
}

impl Case {
    fn label(&self) -> String {
        match self.group {
            0 if self.quiet => format!(
                "{} / {}, no emergency lines (bench build)",
                self.guest.label(),
                self.trig.label()
            ),
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
        // The helper forks and execs before its mark, so the shell's part is outside the
        // measured interval. The window ends WINDOW_SECS after the helper's start, or
        // GRACE_SECS after its trigger returned; meanwhile the shell only waits, and a
        // trigger that hangs (reboot -f on a broken guest) keeps nothing from ending.
        s += &format!(
            "sleep {WINDOW_SECS} &\n\
             rer_window=$!\n\
             (rer-trigger {mark} {}; sleep {GRACE_SECS}; kill $rer_window 2>/dev/null) &\n\
             wait $rer_window\n",
            self.trig.arg()
        );
        s
    }

    /// Runs of this case, of `runs` per case: at most [`KNOWN_FAILURE_RUNS`]
    /// of an anchor known not to reset (`reboot -f` on a broken guest,
    /// `/dev/port` under lockdown), which has no latency to measure: its runs
    /// only show that it fails every time.
    fn runs(&self, runs: usize) -> usize {
        let known_failure = match self.guest {
            GuestKind::Fault(_) => self.trig == Trig::RebootF,
            GuestKind::Lockdown => self.trig == Trig::DevPort,
            GuestKind::Healthy => false,
        };
        if known_failure {
            runs.min(KNOWN_FAILURE_RUNS)
        } else {
            runs
        }
    }

    /// Whether this case must reset: all but `/dev/port` under lockdown and
    /// the microvm case, whose every method fails.
    fn must_reset(&self) -> bool {
        self.group != 2 && !(self.guest == GuestKind::Lockdown && self.trig == Trig::DevPort)
    }

    /// How the helper's report of a trigger that returned must end, where
    /// the trigger must return: the microvm write fails with EIO, lockdown
    /// refuses `/dev/port` (EPERM).
    fn expected_return(&self) -> Option<&'static str> {
        if self.group == 2 {
            Some("(errno 5)")
        } else if self.must_reset() {
            None
        } else {
            Some("(errno 1)")
        }
    }
}

/// One run's result.
#[derive(Clone, Debug)]
struct Run {
    /// From the mark to the reset (the microvm case: to the helper's second
    /// mark, right after its write returned); `None`: a timeout.
    latency: Option<Duration>,
    /// The guest reset.
    reset: bool,
    /// What the helper said when its trigger returned (`ok`, or the failed
    /// step and its errno); `None`: the trigger never returned.
    returned: Option<String>,
    /// Why the run measured nothing: the helper's mark never came, or its
    /// trigger returned otherwise than the case expects. Such a run is lost,
    /// not a timeout.
    problem: Option<String>,
}

/// `rer-trigger` (`qemu-tests/helpers/rer-trigger.c`), built static for the
/// guest on first use ([`qemu_tests::guest_helper`]).
fn trigger_helper() -> PathBuf {
    qemu_tests::guest_helper("rer-trigger")
}

fn measure(case: &Case, inputs: &Inputs, helper: &Path, n: usize) -> Run {
    let name = format!("bench_{n}");
    let mut guest = Guest::new(&name, inputs, &case.scenario())
        .machine(case.machine)
        .cpus(case.cpus)
        .timeout(Duration::from_secs(30))
        .with_binary(helper.to_path_buf());
    if case.quiet {
        let quiet = std::env::var_os("RER_QUIET_MODULE").expect("RER_QUIET_MODULE (make bench)");
        guest = guest.without_our_module(inputs).with_module(quiet.into());
    }
    guest.pvpanic = true;
    if let Some(f) = case.guest.fault() {
        guest = guest.with_module(inputs.test_module(f.module()));
    }
    if case.guest == GuestKind::Lockdown {
        guest = guest.append("lockdown=integrity");
    }
    let out = run(&guest, inputs);
    let (_, event) = case.guest.mark();
    let marks = out.event_times(event);
    let said = format!("RER-TRIGGER {} returned: ", case.trig.arg());
    let returned = out
        .lines_with(&said)
        .into_iter()
        .find_map(|l| l.split_once(&said))
        .map(|(_, r)| r.trim().to_string());
    let latency = if case.group == 2 {
        match marks[..] {
            [a, b, ..] => b.duration_since(a).ok(),
            _ => None,
        }
    } else {
        out.reset_latency_from(event)
    };
    let problem = if marks.is_empty() {
        Some(format!("no {event}: the helper did not start its trigger"))
    } else {
        case.expected_return().and_then(|want| match &returned {
            Some(r) if r.ends_with(want) => None,
            Some(r) => Some(format!("the trigger returned {r:?}, not {want}")),
            None => Some(format!("the trigger did not return {want}")),
        })
    };
    if let Some(p) = &problem {
        eprintln!(
            "bench: {name} ({}): lost: {p} (log {})",
            case.label(),
            out.log.display()
        );
    }
    Run {
        latency,
        reset: out.ending == Ending::GuestReset,
        returned,
        problem,
    }
}

/// A case on q35 with 2 CPUs and the module's defaults.
fn base_case(group: u8, guest: GuestKind, trig: Trig) -> Case {
    Case {
        group,
        guest,
        trig,
        machine: "q35",
        cpus: 2,
        params: "",
        quiet: false,
    }
}

fn cases(smoke: bool) -> Vec<Case> {
    let mut v = Vec::new();
    let guests: &[GuestKind] = if smoke {
        &[GuestKind::Healthy]
    } else {
        &[GuestKind::Healthy, GuestKind::Fault(0), GuestKind::Fault(1)]
    };
    for &g in guests {
        for t in Trig::ALL {
            v.push(base_case(0, g, t));
        }
    }
    // Secure Boot's lockdown: our device beside seed 000's /dev/port rescue.
    for t in [Trig::Device, Trig::DevPort] {
        v.push(base_case(0, GuestKind::Lockdown, t));
    }
    if !smoke {
        // The same trigger without the emergency lines: what they cost.
        v.push(Case {
            quiet: true,
            ..base_case(0, GuestKind::Healthy, Trig::Device)
        });
        // Two CPUs: the healthy case's own runs (see main).
        for cpus in [1, 4] {
            v.push(Case {
                cpus,
                ..base_case(1, GuestKind::Healthy, Trig::Device)
            });
        }
        v.push(Case {
            machine: "microvm,acpi=off",
            cpus: 1,
            params: "methods=kbd,acpi,cf9",
            ..base_case(2, GuestKind::Healthy, Trig::Device)
        });
    }
    v
}

/// The `p` quantile of `sorted` (ascending, not empty), interpolated
/// linearly between the two nearest ranks.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let x = (sorted.len() - 1) as f64 * p;
    let i = x.floor() as usize;
    match sorted.get(i + 1) {
        Some(next) => sorted[i] + (next - sorted[i]) * x.fract(),
        None => sorted[i],
    }
}

/// SplitMix64 (Steele, Lea and Flood, 2014): deterministic, and plenty for
/// picking resamples; not for anything secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// An index below `n` (the modulo's bias is below 2^-58 for these `n`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The median of a resample (with replacement, same size) of `xs`.
fn resampled_median(xs: &[f64], rng: &mut Rng, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..xs.len()).map(|_| xs[rng.below(xs.len())]));
    buf.sort_by(f64::total_cmp);
    quantile(buf, 0.5)
}

/// The percentile bootstrap's 95 % interval of median(`a`) ÷ median(`b`):
/// each side resampled on its own.
fn ratio_interval(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut rng = Rng(SEED);
    let mut buf = Vec::new();
    let mut ratios: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let ma = resampled_median(a, &mut rng, &mut buf);
            ma / resampled_median(b, &mut rng, &mut buf)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (quantile(&ratios, 0.025), quantile(&ratios, 0.975))
}

/// A ratio of medians for the table: `1.14 (0.85–1.52)`, and whether the
/// interval rules out "the same".
fn ratio_cell(ours: &Stats, other: &Stats) -> String {
    let point = ours.median / other.median;
    if ours.ms.len() < MIN_RUNS_FOR_INTERVAL || other.ms.len() < MIN_RUNS_FOR_INTERVAL {
        return format!("{point:.2} (too few runs for an interval)");
    }
    let (lo, hi) = ratio_interval(&ours.ms, &other.ms);
    let verdict = if lo <= 1.0 && 1.0 <= hi {
        ": no difference measurable"
    } else {
        ""
    };
    format!("{point:.2} ({lo:.2}–{hi:.2}){verdict}")
}

/// A case's figures, over its runs that were not lost.
struct Stats {
    /// Runs not lost.
    n: usize,
    /// Their latencies in ms, ascending (timeouts left out).
    ms: Vec<f64>,
    median: f64,
    p10: f64,
    p90: f64,
}

fn stats(runs: &[Run]) -> Option<Stats> {
    let measured: Vec<&Run> = runs.iter().filter(|r| r.problem.is_none()).collect();
    let mut ms: Vec<f64> = measured
        .iter()
        .filter_map(|r| r.latency)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    Some(Stats {
        n: measured.len(),
        median: quantile(&ms, 0.5),
        p10: quantile(&ms, 0.1),
        p90: quantile(&ms, 0.9),
        ms,
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
    t.sort_by(f64::total_cmp);
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
    fs::read_to_string(dir.join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

fn report(results: &BTreeMap<Case, Vec<Run>>, runs: usize, wall: Duration) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "<!-- Written by `make bench` (qemu-tests/bench). Do not edit by hand. -->\n\n\
         Trigger-to-reset latency. Every trigger, ours and the anchors', is started the same \
         way: one small static helper in the guest (`qemu-tests/helpers/rer-trigger.c`) writes \
         the mark and then at once performs the trigger itself, in the same process: open + \
         write `reset` to `/dev/emergency_reset`; open + write `x` or `b` to \
         `/proc/sysrq-trigger`; open `/dev/port`, seek to 0x64, write 0xfe (seed 000's rescue); \
         for `reboot -f`, what Debian's busybox 1.35 `reboot -f` does (`sleep(0)`, a wtmp \
         record, `sync()`, `reboot(RB_AUTOBOOT)`). So no case pays for a fork or an exec \
         inside the measured interval, which runs from QEMU's timestamp of the mark (a pvpanic \
         port write through `/dev/port`, QMP `GUEST_CRASHLOADED`) to QEMU's timestamp of the \
         reset. q35 unless said, TCG, {runs} runs per case ({KNOWN_FAILURE_RUNS} of an anchor \
         that cannot reset: `reboot -f` on a broken guest, `/dev/port` under lockdown), \
         interleaved round-robin, two VMs at a time; one run of {:.0} s in all.\n\n\
         Medians and spreads are of the runs that reset; *p10–p90*: the middle 80 % of them. \
         A ratio is ours ÷ the anchor's median on the same guest, with its bootstrap 95 % \
         interval ({RESAMPLES} resamples of each case's runs, independently, fixed seed); \
         *no difference measurable*: the interval contains 1. *timeouts*: no reset, either \
         because the trigger was still running {WINDOW_SECS} s after the mark or because it \
         returned (what it said is listed below the table).\n\n\
         Fault 1: oops holding `system_transition_mutex`; fault 2: a reboot notifier that \
         never returns, with a `reboot -f` stuck in it. *lockdown=integrity*: a healthy guest \
         booted in lockdown, as a Secure Boot machine is; its mark is the helper's write of \
         the RTC (`RTC_SET_TIME`, as `hwclock -w -u` does it; QMP `RTC_CHANGE`), since \
         lockdown refuses `/dev/port`. *2 CPU(s)*: the runs of *healthy / ours: \
         /dev/emergency_reset*, the same configuration. *microvm*: the time until the write fails with EIO, \
         from the mark to the helper's second mark, written as soon as the write returned.\n",
        wall.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "| case | runs | timeouts | median ms | p10–p90 ms | min–max ms | ours ÷ /dev/port | ours ÷ sysrq-b |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    // None: not measured on that guest; Some(None): measured, never reset.
    let stats_of = |guest: GuestKind, trig: Trig| {
        results
            .iter()
            .find(|(c, _)| c.group == 0 && !c.quiet && c.guest == guest && c.trig == trig)
            .map(|(_, r)| stats(r))
    };
    let mut notes = Vec::new();
    for (case, runs) in results {
        let label = case.label();
        let lost = runs.iter().filter(|r| r.problem.is_some()).count();
        if lost > 0 {
            notes.push(format!(
                "- {label}: {lost} run(s) lost (not counted): {}",
                runs.iter().find_map(|r| r.problem.clone()).unwrap()
            ));
        }
        let mut said: BTreeMap<String, usize> = BTreeMap::new();
        for r in runs.iter().filter(|r| r.problem.is_none() && !r.reset) {
            let what = match &r.returned {
                Some(s) => format!("returned `{s}`"),
                None => format!("still running {WINDOW_SECS} s after the mark"),
            };
            *said.entry(what).or_default() += 1;
        }
        if !said.is_empty() {
            let list: Vec<String> = said.iter().map(|(w, k)| format!("{w} ({k}×)")).collect();
            notes.push(format!("- {label}: {}", list.join("; ")));
        }
        let Some(s) = stats(runs) else {
            let n = runs.len() - lost;
            let _ = writeln!(md, "| {label} | {n} | {n} | – | – | – | | |");
            continue;
        };
        let ratio = |other: Trig| -> String {
            if case.group != 0 || !matches!(case.trig, Trig::Device | Trig::SysrqX) {
                return String::new();
            }
            match stats_of(case.guest, other) {
                Some(Some(o)) => ratio_cell(&s, &o),
                Some(None) => "(other never resets)".into(),
                None => String::new(),
            }
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {:.1} | {:.1}–{:.1} | {:.1}–{:.1} | {} | {} |",
            s.n,
            s.n - s.ms.len(),
            s.median,
            s.p10,
            s.p90,
            s.ms[0],
            s.ms[s.ms.len() - 1],
            ratio(Trig::DevPort),
            ratio(Trig::SysrqB)
        );
    }
    let quiet = results
        .iter()
        .find(|(c, _)| c.quiet)
        .and_then(|(_, r)| stats(r));
    if let (Some(Some(ours)), Some(quiet)) = (stats_of(GuestKind::Healthy, Trig::Device), quiet) {
        let _ = writeln!(
            md,
            "\nThe emergency lines (\"resetting now: trigger device, method kbd, caller pid N\", \
             printed synchronously to the serial console before the method): healthy / ours with \
             them ÷ the bench build without them (`make quiet-module`, the same path with \
             nothing printed): {}; their share of ours' median: {:.1} of {:.1} ms.",
            ratio_cell(&ours, &quiet),
            ours.median - quiet.median,
            ours.median
        );
    }
    if !notes.is_empty() {
        let any_lost = results.values().flatten().any(|r| r.problem.is_some());
        let also = if any_lost { ", and lost runs" } else { "" };
        let _ = writeln!(md, "\nRuns without a reset{also}:\n");
        for n in notes {
            let _ = writeln!(md, "{n}");
        }
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
    results: &BTreeMap<Case, Vec<Run>>,
    path: &PathBuf,
) -> Result<(), Box<dyn std::error::Error>> {
    let font = fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(font.into_boxed_slice()),
    )
    .map_err(|_| "cannot load DejaVuSans.ttf")?;
    let rows: Vec<(&Case, &Vec<Run>)> = results.iter().collect();
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
        .x_desc("milliseconds (× at the right edge: no reset; bar: median; line: p10–p90)")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (row, (_, runs)) in rows.iter().enumerate() {
        let y = (n - 1 - row) as f64;
        let measured = runs.iter().filter(|r| r.problem.is_none());
        for (k, r) in measured.enumerate() {
            let jitter = ((k * 37) % 11) as f64 / 11.0 * 0.5 - 0.25;
            match r.latency {
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
        if let Some(st) = stats(runs) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(st.p10.max(0.5), y - 0.38), (st.p90.max(0.5), y - 0.38)],
                BLACK.stroke_width(2),
            )))?;
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
    let helper = trigger_helper();
    let cases = cases(smoke);
    // Round-robin: every case once per round, so slow and fast cases share the host alike.
    let jobs: Vec<(usize, Case)> = (0..runs)
        .flat_map(|r| {
            cases
                .iter()
                .filter(move |c| r < c.runs(runs))
                .cloned()
                .map(move |c| (r, c))
        })
        .collect();
    let total = jobs.len();
    println!(
        "bench: {} cases, up to {runs} runs each = {total} VMs, two at a time",
        cases.len()
    );
    let queue = Arc::new(Mutex::new(jobs.into_iter().enumerate()));
    let results: Arc<Mutex<BTreeMap<Case, Vec<Run>>>> = Arc::default();
    let start = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, results, inputs, helper) = (
                queue.clone(),
                results.clone(),
                inputs.clone(),
                helper.clone(),
            );
            thread::spawn(move || loop {
                let Some((i, (_, case))) = queue.lock().unwrap().next() else {
                    return;
                };
                let r = measure(&case, &inputs, &helper, i);
                let latency = r.latency.map_or("timeout".into(), |d| {
                    format!("{:.1} ms", d.as_secs_f64() * 1e3)
                });
                let returned = r
                    .returned
                    .as_ref()
                    .map_or(String::new(), |s| format!(" (returned: {s})"));
                eprintln!(
                    "bench: {}/{total} {}: {latency}{returned}",
                    i + 1,
                    case.label()
                );
                results.lock().unwrap().entry(case).or_default().push(r);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut results = results.lock().unwrap().clone();
    // The scaling rows' 2 CPUs are the healthy case on q35, measured once.
    if !smoke {
        let healthy = base_case(0, GuestKind::Healthy, Trig::Device);
        let two = Case {
            group: 1,
            ..healthy.clone()
        };
        let runs = results[&healthy].clone();
        results.insert(two, runs);
    }
    let mut md = report(&results, runs, start.elapsed());
    if smoke {
        print!("{md}");
        // A smoke run checks the machinery, not the figures: the helper ran in every
        // guest, every healthy trigger reset, and /dev/port under lockdown was refused.
        let failed: Vec<String> = results
            .iter()
            .filter(|(c, r)| {
                r.iter()
                    .any(|x| x.problem.is_some() || x.reset != c.must_reset())
            })
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
    let lost = results
        .values()
        .flatten()
        .filter(|r| r.problem.is_some())
        .count();
    if lost * 4 > total {
        print!("{md}");
        println!("bench: {lost} of {total} runs lost: the helper is broken; no report written");
        std::process::exit(1);
    }
    costs(&mut md);
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../Documentation");
    let png = doc.join("benchmark.png");
    md += "\n![latency per case](benchmark.png)\n";
    fs::write(doc.join("benchmark.md"), &md).unwrap();
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
