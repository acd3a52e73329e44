// SPDX-License-Identifier: GPL-2.0

//! The fault matrix: each deliberately broken guest against each trigger,
//! ours and the anchors (`reboot -f`, sysrq-b). Every cell asserts what
//! really happens, and records it in `target/matrix/`, from which
//! `cargo run --bin matrix` writes `Documentation/fault-matrix.md`.
//!
//! Also: the NMI trigger's and `on_oops=`'s own tests, and the key scenarios
//! on q35 and pc with 1, 2 and 4 CPUs.

use qemu_tests::{
    matrix::{
        record,
        Expect,
        Fault,
        Trigger, //
    },
    Ending,
    Guest,
    Inputs,
    Outcome,
    VCpu,
    Vm, //
};
use serde_json::json;
use std::{
    ops::Range,
    time::{
        Duration,
        Instant, //
    },
};

/// How long a guest gets, after the trigger, to show that nothing happened.
const QUIET_SECS: u32 = 8;

fn inputs() -> Inputs {
    Inputs::from_env()
}

/// The scenario for `fault` then `trigger`, with our module loaded first.
fn scenario(fault: Fault, trigger: Trigger, params: &str) -> String {
    let mut s = format!("insmod /modules/rust_emergency_reset.ko {params}\necho RER-ARMING\n");
    s += fault.setup();
    s += "\necho RER-FAULTED\n";
    match trigger.command() {
        // In the background: a trigger that blocks must not stop the scenario. Its
        // state after the wait tells one blocked in the kernel (D) from one that ended.
        Some(cmd) => {
            s += &format!(
                "echo RER-TRIGGER\n{cmd} &\nsleep {QUIET_SECS}\n\
                 echo \"RER-TRIGGER-STATE $(cut -d' ' -f3 /proc/$!/stat 2>/dev/null)\"\n"
            )
        }
        None => s += &format!("echo RER-READY\nsleep {QUIET_SECS}\n"),
    }
    s
}

/// Sends an input trigger to a running guest; QEMU must answer `return`
/// ([`Vm::qmp_command`] fails the test with QEMU's message otherwise).
fn send(vm: &mut Vm, trigger: Trigger) {
    match trigger {
        Trigger::Keyboard => vm.sysrq_chord("x"),
        Trigger::SerialBreak => vm.serial_sysrq(b'x'),
        Trigger::Nmi => {
            vm.qmp_command("inject-nmi", json!({}));
        }
        _ => unreachable!("{trigger:?} is no input"),
    }
}

/// How far past `.text` the lockup module's spinning CPUs may be: the whole
/// module is a few hundred bytes of code.
const LOCKUP_TEXT: u64 = 0x1000;

/// The lockup module's code, from the guest's `RER-LOCKUP-TEXT 0x...` line.
fn lockup_text(console: &str) -> Option<Range<u64>> {
    let line = console
        .lines()
        .find_map(|l| l.split("RER-LOCKUP-TEXT 0x").nth(1))?;
    let hex: String = line.chars().take_while(char::is_ascii_hexdigit).collect();
    let start = u64::from_str_radix(&hex, 16).ok()?;
    Some(start..start + LOCKUP_TEXT)
}

/// What a cell saw before its trigger.
struct Before {
    /// The guest booted and loaded our module.
    armed: bool,
    /// For a lockup, QEMU's view of the vCPUs once the fault was in place.
    vcpus: Vec<VCpu>,
}

/// Boots `guest`, waits until `fault` is in place (its console signs, and
/// for a lockup every locked CPU seen spinning in the module by QEMU), sends
/// `trigger` if it is an input, and runs the guest to its end.
fn run_cell(guest: Guest, fault: Fault, trigger: Trigger, inputs: &Inputs) -> (Outcome, Before) {
    let (cpus, name) = (guest.cpus as usize, guest.name.clone());
    let mut vm = Vm::boot(&guest, inputs);
    let mut before = Before {
        armed: vm.wait_for("RER-ARMING"),
        vcpus: Vec::new(),
    };
    if !before.armed {
        return (vm.finish(), before);
    }
    for sign in fault.signs() {
        assert!(
            vm.wait_for_within(sign, Duration::from_secs(20)),
            "{name}: the fault never showed {sign:?}: not in place (log {})",
            vm.log_path().display()
        );
    }
    let locked = fault.locked_cpus(cpus);
    if !locked.is_empty() {
        // The sign was only the line's start: the whole address, once its line has ended.
        let text = vm
            .line_starting_within("RER-LOCKUP-TEXT ", Duration::from_secs(10))
            .and_then(|l| lockup_text(&l))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: no whole RER-LOCKUP-TEXT line (log {})",
                    vm.log_path().display()
                )
            });
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let vcpus = vm.vcpus();
            let in_place = vcpus.len() == cpus
                && vcpus
                    .iter()
                    .all(|c| c.spins_in(text.clone()) == locked.contains(&c.index));
            // A command trigger must not have run yet: the lockup is seen before it.
            assert!(
                !vm.console().contains("RER-TRIGGER"),
                "{name}: the trigger ran before QEMU showed the lockup: {vcpus:?}"
            );
            if in_place {
                before.vcpus = vcpus;
                break;
            }
            assert!(
                Instant::now() < until,
                "{name}: QEMU never showed CPUs {locked:?} spinning in {text:x?} (and no other): \
                 {vcpus:?} (log {})",
                vm.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if trigger.command().is_none() {
        // Rows 1-3 and 4 print RER-READY when the scenario sleeps, unless the
        // console is held or its IRQ goes to a locked CPU; row 5 never does.
        if fault != Fault::LockupAll && !vm.wait_for_within("RER-READY", Duration::from_secs(6)) {
            std::thread::sleep(Duration::from_secs(1));
        }
        send(&mut vm, trigger);
    }
    if locked.is_empty() {
        return (vm.finish(), before);
    }
    // A lockup is watched for AFTER_TRIGGER once it is in place and the input
    // sent: the scenario's own wait and its state line fit in it.
    (vm.finish_within(AFTER_TRIGGER), before)
}

/// How long a lockup cell runs after its trigger: the scenario's QUIET_SECS
/// and a margin for a loaded host.
const AFTER_TRIGGER: Duration = Duration::from_secs(QUIET_SECS as u64 + 6);

/// Whether QEMU showed, at the end, every vCPU spinning in the lockup module.
fn wedged(out: &Outcome) -> bool {
    lockup_text(out.mended()).is_some_and(|text| {
        !out.vcpus_at_end.is_empty() && out.vcpus_at_end.iter().all(|c| c.spins_in(text.clone()))
    })
}

/// Whether the guest still ran at the end: its scenario ended, or QEMU showed
/// a vCPU that does not spin in the lockup module.
fn alive(out: &Outcome) -> bool {
    out.ending == Ending::Done
        || lockup_text(out.mended())
            .is_some_and(|text| out.vcpus_at_end.iter().any(|c| !c.spins_in(text.clone())))
}

/// What a cell's outcome shows; a panic where it shows none of the verdicts.
fn observed(out: &Outcome, trigger: Trigger) -> Expect {
    let unproven = |what: &str| -> ! {
        panic!(
            "{what}: ending {:?}, QEMU's vCPUs at the end {:?} (log {})",
            out.ending,
            out.vcpus_at_end,
            out.log.display()
        )
    };
    if out.ending == Ending::GuestReset {
        return Expect::Reset;
    }
    if !matches!(out.ending, Ending::Done | Ending::TimedOut) {
        unproven("neither a reset nor a guest that ran on");
    }
    match (trigger.command().is_some(), out.saw_line("RER-TRIGGER")) {
        (true, true) if out.ending == Ending::Done && out.saw_line("RER-TRIGGER-STATE D") => {
            Expect::Blocked
        }
        (true, true) => unproven("the trigger ran, did not reset, yet was not seen blocked"),
        (true, false) if out.ending == Ending::TimedOut && wedged(out) => Expect::CannotRun,
        (true, false) => unproven("the trigger never ran, yet the guest was not seen wedged"),
        (false, _) if wedged(out) => Expect::IgnoredWedged,
        (false, _) if alive(out) => Expect::IgnoredAlive,
        (false, _) => unproven("no reset, and the guest was seen neither alive nor wedged"),
    }
}

/// Row 4's keyboard and serial cells: the input reaches the sysrq code only if
/// the guest delivers its IRQ (1: the 8042, 4: the UART) to CPU 0, the one left
/// running. Which CPU the kernel picks depends on the order in which drivers
/// take interrupt vectors, so it differs between kernels and configurations
/// (the test kernel put IRQ 4 on CPU 0 until its configuration grew for
/// lockdown and signing; on CPU 1 the UART's output stalls as well). The cell reads the CPU
/// from the guest, printed before the fault, and expects accordingly.
fn by_irq_cpu(out: &Outcome, trigger: Trigger) -> Expect {
    let line = out.line_starting("RER-IRQ-CPUS ");
    let key = if trigger == Trigger::Keyboard {
        "kbd="
    } else {
        "serial="
    };
    let cpus = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in {line:?}"));
    let expect = if cpus == "0" {
        Expect::Reset
    } else {
        Expect::IgnoredAlive
    };
    eprintln!("{trigger:?}: its IRQ goes to CPU {cpus}: expecting {expect:?}");
    expect
}

/// The verdict a cell expects: one, or [`by_irq_cpu`]'s.
macro_rules! want {
    (ByIrqCpu) => {
        None
    };
    ($e:ident) => {
        Some(Expect::$e)
    };
}

/// Where in the mended console `needle` first occurs at or after `from`.
fn find_from(console: &str, needle: &str, from: usize) -> Option<usize> {
    console[from..].find(needle).map(|i| from + i)
}

/// Runs one cell and asserts its verdict, with what shows it: the guest
/// booted, the fault was in place before the trigger, the input reached the
/// guest where the guest can tell, and the verdict's own evidence.
fn cell(fault: Fault, trigger: Trigger, want: Option<Expect>) {
    let inputs = inputs();
    let name = format!("matrix_{}_{}", fault.id(), trigger.id());
    let guest = Guest::new(&name, &inputs, &scenario(fault, trigger, "nmi=1"))
        .with_module(inputs.test_module(fault.module()))
        .timeout(Duration::from_secs(30));
    let (out, before) = run_cell(guest, fault, trigger, &inputs);
    // The guest booted and loaded our module: a guest that never came up (or
    // a QEMU that exited) cannot pass for "no CPU runs userspace".
    assert!(
        before.armed && out.saw(qemu_tests::BOOTED) && out.saw_line("RER-ARMING"),
        "{name}: the guest never booted and loaded the module (ending {:?}, log {})",
        out.ending,
        out.log.display()
    );
    // The fault's signs, all after the module's load and before the trigger's command
    // (in any order: Debian's kernel prints asynchronously, after the shell's next line).
    let console = out.mended();
    let armed_at = console.find("RER-ARMING").unwrap();
    let mut at = armed_at;
    for sign in fault.signs() {
        let found = find_from(console, sign, armed_at).unwrap_or_else(|| {
            panic!(
                "{name}: no {sign:?} after the module's load (log {})",
                out.log.display()
            )
        });
        at = at.max(found);
    }
    if let Some(trigger_at) = console.find("\nRER-TRIGGER\n") {
        assert!(
            at < trigger_at,
            "{name}: the trigger ran before the fault was in place"
        );
    }
    if !fault.locked_cpus(2).is_empty() {
        eprintln!(
            "{name}: the lockup in place, as QEMU showed it: {:?}",
            before.vcpus
        );
    }
    let expect = want.unwrap_or_else(|| by_irq_cpu(&out, trigger));
    let got = observed(&out, trigger);
    assert_eq!(
        got,
        expect,
        "{name}: expected {expect:?}, observed {got:?} (log {})",
        out.log.display()
    );
    if trigger.log_name().is_none() {
        // An anchor's verdict is the anchor's own: our module (armed with nmi=1) did nothing.
        assert!(
            out.reset_attempts().is_empty(),
            "{name}: an anchor cell, yet our module tried a reset: {:?} (log {})",
            out.reset_attempts(),
            out.log.display()
        );
    }
    if got == Expect::Reset {
        if let Some(ours) = trigger.log_name() {
            // The reset line is best effort: on a broken guest another CPU may hold the
            // console when the reset comes (seen once in ~6 runs for the NMI on fault 1,
            // where every CPU takes the NMI at once). A line that did reach the console
            // must name this trigger; the other tests require the line.
            match out.reset_attempts().last() {
                Some(l) => assert!(l.contains(&format!("trigger {ours},")), "{name}: {l}"),
                None => eprintln!("{name}: reset, its log line did not reach the console"),
            }
        }
        if matches!(trigger, Trigger::Keyboard | Trigger::SerialBreak) {
            // The guest's side of the input: the kernel's sysrq code took the key
            // (its own line), or our handler said so.
            assert!(
                out.saw("sysrq: Emergency reset") || !out.reset_attempts().is_empty(),
                "{name}: reset, but the guest never showed the key arriving (log {})",
                out.log.display()
            );
        }
    }
    record(&inputs.kernel_name, fault, trigger, got);
}

macro_rules! cells {
    ($($test:ident: $fault:ident, $trigger:ident => $expect:ident;)*) => {
        $(
            #[test]
            fn $test() {
                cell(Fault::$fault, Trigger::$trigger, want!($expect));
            }
        )*
        /// Every cell, for the table writer's completeness check.
        #[test]
        fn the_matrix_has_every_cell_once() {
            let cells = [$((Fault::$fault, Trigger::$trigger)),*];
            for f in Fault::ALL {
                for t in Trigger::ALL {
                    assert_eq!(cells.iter().filter(|&&c| c == (f, t)).count(), 1, "{f:?} {t:?}");
                }
            }
        }
    };
}

cells! {
    // 1. Oops holding system_transition_mutex: only reboot(2) is stuck.
    oops_mutex_device: OopsMutex, Device => Reset;
    oops_mutex_sysrq_proc: OopsMutex, SysrqProc => Reset;
    oops_mutex_keyboard: OopsMutex, Keyboard => Reset;
    oops_mutex_serial: OopsMutex, SerialBreak => Reset;
    oops_mutex_nmi: OopsMutex, Nmi => Reset;
    oops_mutex_reboot: OopsMutex, RebootF => Blocked;
    oops_mutex_sysrq_b: OopsMutex, SysrqB => Reset;
    // 2. A reboot notifier that never returns, with a `reboot -f` already stuck in it.
    hung_notifier_device: HungNotifier, Device => Reset;
    hung_notifier_sysrq_proc: HungNotifier, SysrqProc => Reset;
    hung_notifier_keyboard: HungNotifier, Keyboard => Reset;
    hung_notifier_serial: HungNotifier, SerialBreak => Reset;
    hung_notifier_nmi: HungNotifier, Nmi => Reset;
    hung_notifier_reboot: HungNotifier, RebootF => Blocked;
    hung_notifier_sysrq_b: HungNotifier, SysrqB => Reset;
    // 3. Oops holding the console lock.
    oops_console_device: OopsConsole, Device => Reset;
    oops_console_sysrq_proc: OopsConsole, SysrqProc => Reset;
    oops_console_keyboard: OopsConsole, Keyboard => Reset;
    oops_console_serial: OopsConsole, SerialBreak => Reset;
    oops_console_nmi: OopsConsole, Nmi => Reset;
    oops_console_reboot: OopsConsole, RebootF => Reset;
    oops_console_sysrq_b: OopsConsole, SysrqB => Reset;
    // 4. Every CPU but CPU 0 spins with interrupts off; the shell stays on CPU 0.
    lockup_others_device: LockupOthers, Device => Reset;
    lockup_others_sysrq_proc: LockupOthers, SysrqProc => Reset;
    // Whether the 8042's IRQ 1 and the UART's IRQ 4 go to the running CPU: see by_irq_cpu.
    lockup_others_keyboard: LockupOthers, Keyboard => ByIrqCpu;
    lockup_others_serial: LockupOthers, SerialBreak => ByIrqCpu;
    lockup_others_nmi: LockupOthers, Nmi => Reset;
    // reboot(2) stops the other CPUs with an NMI when they ignore the reboot IPI.
    lockup_others_reboot: LockupOthers, RebootF => Reset;
    lockup_others_sysrq_b: LockupOthers, SysrqB => Reset;
    // 5. Every CPU spins with interrupts off: only an NMI gets in.
    lockup_all_device: LockupAll, Device => CannotRun;
    lockup_all_sysrq_proc: LockupAll, SysrqProc => CannotRun;
    lockup_all_keyboard: LockupAll, Keyboard => IgnoredWedged;
    lockup_all_serial: LockupAll, SerialBreak => IgnoredWedged;
    lockup_all_nmi: LockupAll, Nmi => Reset;
    lockup_all_reboot: LockupAll, RebootF => CannotRun;
    lockup_all_sysrq_b: LockupAll, SysrqB => CannotRun;
}

#[test]
fn nmi_off_an_nmi_does_not_reset_a_locked_up_guest() {
    let inputs = inputs();
    let guest = Guest::new(
        "nmi_off_lockup_all",
        &inputs,
        &scenario(Fault::LockupAll, Trigger::Nmi, ""),
    )
    .with_module(inputs.test_module(Fault::LockupAll.module()))
    .timeout(Duration::from_secs(20));
    let (out, before) = run_cell(guest, Fault::LockupAll, Trigger::Nmi, &inputs);
    assert!(before.armed, "never booted: log {}", out.log.display());
    assert_eq!(observed(&out, Trigger::Nmi), Expect::IgnoredWedged);
    assert_eq!(out.ending, Ending::TimedOut, "log {}", out.log.display());
}

#[test]
fn nmi_on_no_nmi_and_other_handlers_nmis_do_not_reset() {
    let inputs = inputs();
    // sysrq-l sends NMIs to every CPU for backtraces: NMI_LOCAL, claimed by the
    // kernel's own handler, never offered to ours.
    let scenario =
        "insmod /modules/rust_emergency_reset.ko nmi=1\ngrep nmi: /dev/emergency_reset\n\
                    echo l > /proc/sysrq-trigger\nsleep 8\n\
                    echo \"RER-BACKTRACES $(dmesg | grep -c 'NMI backtrace for cpu')\"\n";
    let out = qemu_tests::run(&Guest::new("nmi_on_quiet", &inputs, scenario), &inputs);
    out.assert_alive();
    assert!(out.saw("nmi: on"));
    assert!(
        !out.saw("RER-BACKTRACES 0"),
        "{:?}",
        out.lines_with("RER-BACKTRACES")
    );
    assert!(out.reset_attempts().is_empty());
}

/// The printk timestamp of the first console line containing `needle`, in seconds.
fn stamp(out: &Outcome, needle: &str) -> f64 {
    let line = out
        .lines_with(needle)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {needle:?} (log {})", out.log.display()));
    let inner = line.split('[').nth(1).and_then(|r| r.split(']').next());
    inner.unwrap().trim().parse().unwrap()
}

fn on_oops(secs: i32) -> Outcome {
    let inputs = inputs();
    let scenario = format!(
        "insmod /modules/rust_emergency_reset.ko on_oops={secs}\n\
         insmod /modules/rer_oops_transition.ko\nsleep {QUIET_SECS}\n"
    );
    let guest = Guest::new(&format!("on_oops_{secs}"), &inputs, &scenario)
        .with_module(inputs.test_module("rer_oops_transition"));
    qemu_tests::run(&guest, &inputs)
}

#[test]
fn on_oops_resets_n_seconds_after_the_oops() {
    let out = on_oops(2);
    out.assert_reset_by("oops", "kbd");
    let delay = stamp(&out, "trigger oops") - stamp(&out, "BUG: kernel NULL pointer dereference");
    // The watcher looks every 100 ms; the margin is generous for TCG.
    assert!(
        (2.0..4.0).contains(&delay),
        "reset {delay:.2} s after the oops"
    );
}

#[test]
fn on_oops_0_resets_at_once_from_the_oops() {
    let out = on_oops(0);
    out.assert_reset_by("oops", "kbd");
    let delay = stamp(&out, "trigger oops") - stamp(&out, "BUG: kernel NULL pointer dereference");
    assert!(delay < 1.0, "reset {delay:.2} s after the oops");
}

#[test]
fn on_oops_off_the_guest_stays_up_after_an_oops() {
    let out = on_oops(-1);
    out.assert_alive();
    assert!(out.saw("BUG: kernel NULL pointer dereference"));
    assert!(out.reset_attempts().is_empty());
}

/// The key scenarios on both machines with 1, 2 and 4 CPUs: the seed (oops
/// holding the reboot mutex, then our device) and the total lockup (NMI).
#[test]
fn key_scenarios_on_q35_and_pc_with_1_2_and_4_cpus() {
    let inputs = inputs();
    for machine in ["q35", "pc"] {
        for cpus in [1, 2, 4] {
            for (fault, trigger) in [
                (Fault::OopsMutex, Trigger::Device),
                (Fault::LockupAll, Trigger::Nmi),
            ] {
                let name = format!("breadth_{machine}_{cpus}_{}_{}", fault.id(), trigger.id());
                let guest = Guest::new(&name, &inputs, &scenario(fault, trigger, "nmi=1"))
                    .with_module(inputs.test_module(fault.module()))
                    .machine(machine)
                    .cpus(cpus)
                    .timeout(Duration::from_secs(40));
                let (out, _) = run_cell(guest, fault, trigger, &inputs);
                assert!(out.saw(&format!("RER-BOOTED cpus={cpus}")), "{name}");
                out.assert_reset();
                let want = trigger.log_name().unwrap();
                assert!(
                    out.reset_attempts()
                        .last()
                        .is_some_and(|l| l.contains(&format!("trigger {want},"))),
                    "{name}: log {}",
                    out.log.display()
                );
            }
        }
    }
}
