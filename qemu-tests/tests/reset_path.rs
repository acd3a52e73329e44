// SPDX-License-Identifier: GPL-2.0

//! The reset path's edges (issue #12), in QEMU: an oops that becomes a panic
//! still resets with `on_oops=N`; unloading with every trigger armed leaves
//! nothing behind; the keyboard chord obeys `kernel.sysrq`'s boot bit while
//! `/proc/sysrq-trigger` does not; `cf9` is offered only when the kernel
//! claimed the PCI configuration ports; a panic on another CPU during a
//! failing attempt goes ahead.
//!
//! Each test first shows that its fault or precondition is in place (the
//! oops, the panic, the mask, the ports), then the verdict. The harness boots
//! every guest with `panic=0`: a panicked guest that nobody resets stays
//! panicked until the time limit ([`Ending::TimedOut`]).

use qemu_tests::{
    acpi::{
        assert_fadt_override,
        ResetSpace, //
    },
    run,
    show_text,
    Ending,
    Guest,
    Inputs,
    Outcome,
    VCpu,
    Vm,
    DRAIN,
    TRY_WRITE,
    UNLOAD_WHILE_OPEN, //
};
use serde_json::json;
use std::time::{
    Duration,
    Instant, //
};

const INSMOD: &str = "insmod /modules/rust_emergency_reset.ko";
/// The oops line of a NULL dereference (arch/x86/mm/fault.c).
const OOPS: &str = "BUG: kernel NULL pointer dereference";
/// `panic()`'s last line (kernel/panic.c).
const PANIC_END: &str = "---[ end Kernel panic - not syncing: ";
/// `oops_end()`'s panics (arch/x86/kernel/dumpstack.c).
const FATAL: &str = "Kernel panic - not syncing: Fatal exception";
const FATAL_IN_IRQ: &str = "Kernel panic - not syncing: Fatal exception in interrupt";
/// How long a panicked guest must stay unreset to count as wedged.
const WEDGED: Duration = Duration::from_secs(15);
/// The time limit of a guest expected to stay panicked: its boot and its
/// panic (a few seconds), then [`WEDGED`] (the guest ends then).
const WATCH: Duration = Duration::from_secs(35);

fn inputs() -> Inputs {
    Inputs::from_env()
}

/// The printk timestamp, in seconds, of the first console line containing
/// `needle`: the `[ secs.usecs]` nearest before it on that line (another
/// message may have landed at the start of the line).
fn stamp(out: &Outcome, needle: &str) -> f64 {
    let line = out
        .lines_with(needle)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {needle:?} on the console (log {})", out.log.display()));
    let before = &line[..line.find(needle).unwrap()];
    let open = before
        .rfind('[')
        .unwrap_or_else(|| panic!("no timestamp before {needle:?} in {line:?}"));
    let close = open + before[open..].find(']').unwrap();
    before[open + 1..close]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no timestamp before {needle:?} in {line:?}"))
}

/// Where `needle` first shows on the console.
fn position(out: &Outcome, needle: &str) -> usize {
    out.serial
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle:?} on the console (log {})", out.log.display()))
}

/// Asserts that the console shows each of `needles`, in that order.
fn assert_in_order(out: &Outcome, needles: &[&str]) {
    let at: Vec<usize> = needles.iter().map(|n| position(out, n)).collect();
    assert!(
        at.windows(2).all(|w| w[0] < w[1]),
        "expected {needles:?} in this order, found at {at:?} (log {})",
        out.log.display()
    );
}

/// Scenario lines: show `kernel.panic_on_oops` and the module's `on_oops`.
const SHOW_OOPS_SETUP: &str = "echo \"RER-PANIC-ON-OOPS $(cat /proc/sys/kernel/panic_on_oops)\"\n\
     grep '^on_oops:' /dev/emergency_reset | sed 's/^/RER-STATUS /'\n";

/// A guest whose scenario oopses (`fault`, shell lines) after `setup`; it prints
/// `RER-SURVIVED` if it is still running 20 s later.
fn oops_guest(name: &str, inputs: &Inputs, setup: &str, fault: &str) -> Guest {
    let scenario = format!("{setup}\n{DRAIN}\n{fault}\nsleep 20\necho RER-SURVIVED\n");
    Guest::new(name, inputs, &scenario)
        .with_module(inputs.test_module("rer_oops_transition"))
        .with_module(inputs.test_module("rer_oops_irq"))
        .timeout(Duration::from_secs(60))
}

/// Asserts the oops, then `panic`, then the reset with trigger `oops`, and
/// that the reset came at least `secs` after the oops by the guest's printk
/// clock (less 0.1 s: the module counts on another clock,
/// `ktime_get_mono_fast_ns()`). Returns that delay.
fn assert_oops_panic_then_reset_after(out: &Outcome, panic: &str, secs: f64) -> f64 {
    out.assert_reset_by("oops", "kbd");
    assert!(!out.saw("RER-SURVIVED"), "the guest ran on after the oops");
    assert_in_order(out, &[OOPS, panic, "resetting now: trigger oops"]);
    // One attempt, by the panic notifier: the watcher thread never ran again.
    assert_eq!(out.reset_attempts().len(), 1, "{:?}", out.reset_attempts());
    let delay = stamp(out, "resetting now: trigger oops") - stamp(out, OOPS);
    eprintln!(
        "{}: reset {delay:.3} s after the oops (on_oops={secs})",
        out.log.display()
    );
    assert!(
        delay >= secs - 0.1,
        "reset {delay:.3} s after the oops, on_oops={secs} (log {})",
        out.log.display()
    );
    // The wait is a busy loop on the panicking CPU: it ends on time.
    assert!(
        delay < secs + 3.0,
        "reset {delay:.3} s after the oops, on_oops={secs} (log {})",
        out.log.display()
    );
    delay
}

#[test]
fn on_oops_3_resets_3_s_after_an_oops_that_panic_on_oops_made_a_panic() {
    let inputs = inputs();
    let guest = oops_guest(
        "panic_on_oops_on_oops_3",
        &inputs,
        &format!("echo 1 > /proc/sys/kernel/panic_on_oops\n{INSMOD} on_oops=3\n{SHOW_OOPS_SETUP}"),
        "insmod /modules/rer_oops_transition.ko",
    );
    let out = run(&guest, &inputs);
    // The precondition: panic_on_oops is on, our on_oops is 3 s, and the oops became a panic.
    assert!(
        out.saw_line("RER-PANIC-ON-OOPS 1"),
        "{:?}",
        out.lines_with("RER-PANIC-ON-OOPS")
    );
    assert!(
        out.saw_line("RER-STATUS on_oops: 3"),
        "{:?}",
        out.lines_with("RER-STATUS")
    );
    assert!(out.saw("holding system_transition_mutex, oopsing now"));
    assert!(
        out.saw(&format!("{FATAL}\n")),
        "no panic after the oops (log {})",
        out.log.display()
    );
    assert_oops_panic_then_reset_after(&out, FATAL, 3.0);
}

#[test]
fn on_oops_2_resets_2_s_after_an_oops_in_interrupt_context() {
    let inputs = inputs();
    let guest = oops_guest(
        "irq_oops_on_oops_2",
        &inputs,
        &format!("{INSMOD} on_oops=2\n{SHOW_OOPS_SETUP}"),
        "insmod /modules/rer_oops_irq.ko",
    );
    let out = run(&guest, &inputs);
    // panic_on_oops is off: the panic comes from the oops being in an interrupt.
    assert!(
        out.saw_line("RER-PANIC-ON-OOPS 0"),
        "{:?}",
        out.lines_with("RER-PANIC-ON-OOPS")
    );
    assert!(
        out.saw_line("RER-STATUS on_oops: 2"),
        "{:?}",
        out.lines_with("RER-STATUS")
    );
    assert!(out.saw("in a timer interrupt, oopsing now"));
    assert!(
        out.saw(FATAL_IN_IRQ),
        "no panic after the oops (log {})",
        out.log.display()
    );
    assert_oops_panic_then_reset_after(&out, FATAL_IN_IRQ, 2.0);
}

/// Boots `guest`, waits for `panic()`'s last line, and runs it to its time
/// limit: the guest must stay panicked, unreset, for at least [`WEDGED`].
fn assert_stays_panicked(guest: &Guest, inputs: &Inputs, panic: &str) -> Outcome {
    let t0 = Instant::now();
    let mut vm = Vm::boot(guest, inputs);
    let panicked = vm.wait_for(PANIC_END);
    // From QEMU's start (at or after t0) to the end of the panic: at most this.
    let panicked_at = t0.elapsed();
    // Watched for WEDGED after the panic (and a second more: the assertion
    // below counts from QEMU's start), not to the time limit.
    let out = vm.finish_within(WEDGED + Duration::from_secs(1));
    assert!(
        panicked,
        "the guest never finished a panic (log {})",
        out.log.display()
    );
    assert!(out.saw(panic), "no {panic:?} (log {})", out.log.display());
    assert_eq!(
        out.ending,
        Ending::TimedOut,
        "the panicked guest did not stay wedged (log {})",
        out.log.display()
    );
    assert!(
        out.event_times("SHUTDOWN").is_empty() && out.event_times("RESET").is_empty(),
        "QMP: {:?} (log {})",
        out.events,
        out.log.display()
    );
    assert!(
        out.reset_attempts().is_empty(),
        "{:?}",
        out.reset_attempts()
    );
    assert!(!out.saw("RER-SURVIVED"));
    let wedged = out.elapsed.saturating_sub(panicked_at);
    eprintln!(
        "{}: panicked and unreset for {wedged:.1?}",
        out.log.display()
    );
    assert!(
        wedged >= WEDGED,
        "only {wedged:?} watched after the panic (log {})",
        out.log.display()
    );
    out
}

#[test]
fn control_an_oops_that_panic_on_oops_made_a_panic_stays_panicked_without_our_module() {
    let inputs = inputs();
    let guest = oops_guest(
        "panic_on_oops_control",
        &inputs,
        "echo 1 > /proc/sys/kernel/panic_on_oops\n\
         echo \"RER-PANIC-ON-OOPS $(cat /proc/sys/kernel/panic_on_oops)\"",
        "insmod /modules/rer_oops_transition.ko",
    )
    .without_our_module(&inputs)
    .timeout(WATCH);
    let out = assert_stays_panicked(&guest, &inputs, &format!("{FATAL}\n"));
    assert!(out.saw_line("RER-PANIC-ON-OOPS 1"));
    assert!(out.saw(OOPS));
}

#[test]
fn control_an_oops_in_interrupt_context_stays_panicked_with_on_oops_off() {
    let inputs = inputs();
    // Our module loaded, on_oops off: no die or panic notifier of ours.
    let guest = oops_guest(
        "irq_oops_on_oops_off",
        &inputs,
        &format!("{INSMOD} on_oops=-1\n{SHOW_OOPS_SETUP}"),
        "insmod /modules/rer_oops_irq.ko",
    )
    .timeout(WATCH);
    let out = assert_stays_panicked(&guest, &inputs, FATAL_IN_IRQ);
    assert!(
        out.saw_line("RER-STATUS on_oops: off"),
        "{:?}",
        out.lines_with("RER-STATUS")
    );
    assert!(out.saw("in a timer interrupt, oopsing now"));
    assert!(out.saw(OOPS));
}

#[test]
fn control_a_panic_without_an_oops_is_left_to_panic_timeout() {
    let inputs = inputs();
    // sysrq-c panics directly (`panic("sysrq triggered crash")`): no oops came first, and
    // on_oops= leaves the panic to the kernel's panic= (0 here: wait forever).
    let guest = oops_guest(
        "sysrq_c_on_oops_2",
        &inputs,
        &format!("{INSMOD} on_oops=2\n{SHOW_OOPS_SETUP}"),
        "echo c > /proc/sysrq-trigger",
    )
    .timeout(WATCH);
    let out = assert_stays_panicked(
        &guest,
        &inputs,
        "Kernel panic - not syncing: sysrq triggered crash",
    );
    assert!(
        out.saw_line("RER-STATUS on_oops: 2"),
        "{:?}",
        out.lines_with("RER-STATUS")
    );
    assert!(
        !out.saw(OOPS),
        "an oops came first (log {})",
        out.log.display()
    );
}

#[test]
fn unload_with_every_trigger_armed_leaves_no_handler_behind() {
    let inputs = inputs();
    let scenario = format!(
        r#"
P='nmi=1 on_oops=5 sysrq_key=y'
{INSMOD} $P
grep -e '^sysrq_key:' -e '^nmi:' -e '^on_oops:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
echo "RER-WATCHERS-LOADED $(ps | grep -c '[r]er_oops_watch')"
echo h > /proc/sysrq-trigger
sleep 0.3
echo "RER-HELP-LOADED $(dmesg | grep 'HELP : ' | tail -1 | grep -c 'emergency-reset(y)')"
{UNLOAD_WHILE_OPEN}
i=0; fails=0
while [ $i -lt 50 ]; do
	insmod /modules/rust_emergency_reset.ko $P || fails=$((fails + 1))
	rmmod rust_emergency_reset || fails=$((fails + 1))
	i=$((i + 1))
done
echo "RER-CYCLES n=$i fails=$fails"
echo "RER-LOADED $(grep -c rust_emergency_reset /proc/modules) node=$(ls /dev/emergency_reset 2>&1 | grep -c 'No such') watchers=$(ps | grep -c '[r]er_oops_watch')"
helps=$(dmesg | grep -c 'HELP : ')
echo y > /proc/sysrq-trigger
sleep 0.3
echo "RER-SYSRQ-Y helps-before=$helps after=$(dmesg | grep -c 'HELP : ') ours=$(dmesg | grep 'HELP : ' | tail -1 | grep -c 'emergency-reset')"
echo RER-READY
i=0
until dmesg | grep -q 'Uhhuh. NMI received for unknown reason'; do
	i=$((i + 1)); [ $i -ge 150 ] && break; sleep 0.2
done
sleep 1
echo "RER-NMI-SEEN $(dmesg | grep -c 'Uhhuh. NMI received for unknown reason')"
echo RER-ALIVE-AFTER-NMI
"#
    );
    let guest = Guest::new("unload_every_trigger_armed", &inputs, &scenario)
        .timeout(Duration::from_secs(120));
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(
        vm.wait_for("RER-READY"),
        "the guest never got through the cycles"
    );
    vm.qmp_command("inject-nmi", json!({}));
    let out = vm.finish();
    out.assert_alive();
    // Every trigger was armed: the key (in the sysrq help), the NMI handlers, on_oops
    // with its watcher thread.
    for want in ["sysrq_key: y", "nmi: on", "on_oops: 5"] {
        assert!(
            out.saw_line(&format!("RER-STATUS {want}")),
            "{want}: {:?}",
            out.lines_with("RER-STATUS")
        );
    }
    assert!(
        out.saw_line("RER-WATCHERS-LOADED 1"),
        "{:?}",
        out.lines_with("RER-WATCHERS")
    );
    assert!(
        out.saw_line("RER-HELP-LOADED 1"),
        "{:?}",
        out.lines_with("RER-HELP")
    );
    out.assert_unload_refused_while_open();
    assert!(
        out.saw_line("RER-CYCLES n=50 fails=0"),
        "{:?}",
        out.lines_with("RER-CYCLES")
    );
    assert!(
        out.saw_line("RER-LOADED 0 node=1 watchers=0"),
        "{:?}",
        out.lines_with("RER-LOADED")
    );
    // sysrq y reached the sysrq core (one more help line) and found no handler.
    let line = out.line_starting("RER-SYSRQ-Y ");
    let helps: Vec<u32> = line
        .split_whitespace()
        .filter_map(|w| w.split('=').nth(1)?.parse().ok())
        .collect();
    assert!(
        helps.len() == 3 && helps[1] == helps[0] + 1 && helps[2] == 0,
        "{line}"
    );
    // The NMI came, nobody claimed it, the kernel said so and the guest lived on.
    assert!(
        !out.saw("RER-NMI-SEEN 0") && out.saw("RER-NMI-SEEN "),
        "{:?} (log {})",
        out.lines_with("RER-NMI-SEEN"),
        out.log.display()
    );
    assert!(out.saw("RER-ALIVE-AFTER-NMI"));
    assert!(
        out.reset_attempts().is_empty(),
        "{:?}",
        out.reset_attempts()
    );
    let bad: Vec<&str> = out
        .serial
        .lines()
        .filter(|l| l.contains("WARNING:") || l.contains("BUG:") || l.contains("Oops"))
        .collect();
    assert!(bad.is_empty(), "{bad:?} (log {})", out.log.display());
}

#[test]
fn after_unloading_an_oops_that_panics_calls_nothing_of_ours() {
    let inputs = inputs();
    // Loaded and unloaded with every trigger armed (on_oops=1: the die notifier, the
    // watcher thread and the panic notifier); then an oops that panics. A notifier left
    // behind would be called in freed module memory: a second fault inside the panic.
    let guest = oops_guest(
        "unloaded_then_panic_on_oops",
        &inputs,
        &format!(
            r#"
P='nmi=1 on_oops=1 sysrq_key=y'
{INSMOD} $P
grep '^on_oops:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
rmmod rust_emergency_reset
i=0
while [ $i -lt 5 ]; do
	insmod /modules/rust_emergency_reset.ko $P && rmmod rust_emergency_reset
	i=$((i + 1))
done
echo "RER-LOADED $(grep -c rust_emergency_reset /proc/modules)"
echo 1 > /proc/sys/kernel/panic_on_oops
echo "RER-PANIC-ON-OOPS $(cat /proc/sys/kernel/panic_on_oops)"
"#
        ),
        "insmod /modules/rer_oops_transition.ko",
    )
    .timeout(WATCH);
    let out = assert_stays_panicked(&guest, &inputs, &format!("{FATAL}\n"));
    assert!(
        out.saw_line("RER-STATUS on_oops: 1"),
        "{:?}",
        out.lines_with("RER-STATUS")
    );
    assert!(
        out.saw_line("RER-LOADED 0"),
        "{:?}",
        out.lines_with("RER-LOADED")
    );
    assert!(out.saw_line("RER-PANIC-ON-OOPS 1"));
    // One oops, the module's; nothing faulted after it.
    let faults: Vec<&str> = out
        .serial
        .lines()
        .filter(|l| l.contains("BUG:") || l.contains("Oops:") || l.contains("WARNING:"))
        .collect();
    assert!(
        faults.len() == 2 && faults[0].contains(OOPS) && faults[1].contains("Oops:"),
        "{faults:?} (log {})",
        out.log.display()
    );
}

#[test]
fn the_keyboard_chord_obeys_the_sysrq_boot_bit_and_the_trigger_file_does_not() {
    let inputs = inputs();
    // 382 = 0x17e: every function bit but 0x80 (reboot: sysrq-b and our key) and 0x1 (all).
    let scenario = format!(
        r#"
{INSMOD}
echo 382 > /proc/sys/kernel/sysrq
echo "RER-SYSRQ-MASK $(cat /proc/sys/kernel/sysrq)"
grep '^sysrq_key:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
echo RER-READY
i=0
until dmesg | grep -q 'This sysrq operation is disabled'; do
	i=$((i + 1)); [ $i -ge 100 ] && break; sleep 0.2
done
sleep 2
echo "RER-DISABLED-LOGGED $(dmesg | grep -c 'This sysrq operation is disabled')"
echo RER-ALIVE-AFTER-CHORD
{DRAIN}
echo x > /proc/sysrq-trigger
sleep 5
echo RER-NOT-RESET
"#
    );
    let guest = Guest::new("sysrq_mask_without_boot_bit", &inputs, &scenario);
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(vm.wait_for("RER-READY"), "guest never got ready");
    vm.sysrq_chord("x");
    let out = vm.finish();
    assert!(
        out.saw_line("RER-SYSRQ-MASK 382"),
        "{:?}",
        out.lines_with("RER-SYSRQ-MASK")
    );
    assert!(out.saw_line("RER-STATUS sysrq_key: x"));
    // The chord reached the sysrq core, which found our key and refused it by the mask.
    assert!(
        out.saw_line("RER-DISABLED-LOGGED 1"),
        "{:?} (log {})",
        out.lines_with("RER-DISABLED-LOGGED"),
        out.log.display()
    );
    assert!(out.saw("RER-ALIVE-AFTER-CHORD"));
    // /proc/sysrq-trigger ignores the mask: root resets.
    out.assert_reset_by("sysrq-x", "kbd");
    assert_eq!(out.reset_attempts().len(), 1, "{:?}", out.reset_attempts());
    assert_in_order(
        &out,
        &["RER-ALIVE-AFTER-CHORD", "resetting now: trigger sysrq-x"],
    );
    assert!(!out.saw("RER-NOT-RESET"));
}

/// Scenario: show the PCI configuration ports in /proc/ioports, the status, and try `reset cf9`.
fn cf9_scenario() -> String {
    format!(
        r#"{TRY_WRITE}
echo "RER-CMDLINE $(cat /proc/cmdline)"
grep -i 'PCI conf' /proc/ioports | sed 's/^ */RER-IOPORTS /'
echo "RER-CONF-PORTS $(grep -c 'PCI conf[12]' /proc/ioports)"
{INSMOD}
sed 's/^/RER-STATUS /' /dev/emergency_reset
{DRAIN}
try_write cf9 'reset cf9
'
"#
    )
}

#[test]
fn cf9_is_unavailable_when_the_kernel_claimed_no_pci_configuration_ports() {
    let inputs = inputs();
    // pci=conf2: probe mechanism #2 only (with no checks), which QEMU's q35 lacks: the
    // probe's read-back of 0xcf8/0xcfa fails and nothing is claimed ("PCI: Fatal: No config
    // space access function found"; the kernel boots on, ACPI without PCI config regions).
    // pci=off: no probe at all.
    for param in ["pci=conf2", "pci=off"] {
        let name = format!("cf9_{}", param.replace('=', "_"));
        let guest = Guest::new(&name, &inputs, &cf9_scenario()).append(param);
        let out = run(&guest, &inputs);
        out.assert_alive();
        // On the mended console: a CI run's `tsc: Refined TSC clocksource
        // calibration` line landed inside this one.
        assert!(
            out.saw_line(&format!(
                "RER-CMDLINE console=ttyS0 rer_guest=1 panic=0 tsc=reliable no_timer_check {param}"
            )),
            "{param}: {:?} (log {})",
            out.lines_with("RER-CMDLINE"),
            out.log.display()
        );
        // The precondition: no configuration mechanism claimed at 0xcf8.
        assert!(
            out.saw_line("RER-CONF-PORTS 0"),
            "{param}: {:?} (log {})",
            out.lines_with("RER-IOPORTS"),
            out.log.display()
        );
        assert!(
            out.saw("RER-STATUS method.cf9: unavailable"),
            "{param}: {:?}",
            out.lines_with("method.cf9")
        );
        let line = out.write_result("cf9");
        assert!(
            line.contains("rc=1") && line.contains("Input/output error"),
            "{param}: {line}"
        );
        assert!(
            out.reset_attempts().is_empty(),
            "{:?}",
            out.reset_attempts()
        );
    }
}

#[test]
fn cf9_is_available_when_the_kernel_claimed_pci_conf1() {
    let inputs = inputs();
    let guest = Guest::new("cf9_pci_conf1", &inputs, &cf9_scenario());
    let out = run(&guest, &inputs);
    assert!(
        out.saw_line("RER-IOPORTS 0cf8-0cff : PCI conf1"),
        "{:?}",
        out.lines_with("RER-IOPORTS")
    );
    assert!(
        out.saw_line("RER-STATUS method.cf9: available"),
        "{:?}",
        out.lines_with("method.cf9")
    );
    out.assert_reset_by("/dev/emergency_reset", "cf9");
}

/// A port nothing decodes on q35 (tests/dead_methods.rs: unassigned between the ELCR at
/// 0x4d1 and pvpanic at 0x505): a FADT reset register there is present, valid and dead.
const DEAD_PORT: u64 = 0x504;

#[test]
fn a_panic_on_another_cpu_during_a_failing_attempt_goes_ahead() {
    let inputs = inputs();
    // The only method is a dead ACPI register: the attempt logs its line, writes the port,
    // waits its settle time (50 ms) and would return EIO. rer_panic_later's thread on CPU 1
    // sees the line and panics 10 ms later, while the writer on CPU 0 is in that wait.
    let scenario = format!(
        r#"
{INSMOD} methods=acpi
cat /dev/emergency_reset
insmod /modules/rer_panic_later.ko
sleep 1
{DRAIN}
taskset 1 sh -c 'echo "RER-WRITER-CPU $(cut -d" " -f39 /proc/self/stat)"; sleep 0.5; echo reset > /dev/emergency_reset'
echo "RER-WRITE-RETURNED rc=$?"
sleep 10
echo RER-SURVIVED
"#
    );
    let guest = Guest::new("panic_during_attempt", &inputs, &scenario)
        .with_module(inputs.test_module("rer_panic_later"))
        .timeout(WATCH)
        .fadt_reset(ResetSpace::Io, DEAD_PORT, 0x0f);
    let out = run(&guest, &inputs);
    assert_fadt_override(&out, &guest, &inputs);
    // The setting: the watcher on CPU 1, the writer on CPU 0, one attempt, by acpi.
    assert!(
        out.saw_line("rer_panic_later: watching the kernel log on CPU 1"),
        "{:?}",
        out.lines_with("rer_panic_later")
    );
    assert!(
        out.saw_line("RER-WRITER-CPU 0"),
        "{:?}",
        out.lines_with("RER-WRITER-CPU")
    );
    let attempts = out.reset_attempts();
    assert_eq!(
        attempts.len(),
        1,
        "{attempts:?} (log {})",
        out.log.display()
    );
    assert!(
        attempts[0].contains("trigger /dev/emergency_reset, method acpi,"),
        "{attempts:?}"
    );
    // The panic went ahead to its end, and began while the attempt was under way (no
    // "reset failed" before it).
    let panic =
        "Kernel panic - not syncing: rer_panic_later: panicking on CPU 1 during a reset attempt";
    assert!(
        out.saw(panic),
        "the panic on CPU 1 did not go ahead (log {})\n{}",
        out.log.display(),
        qemu_tests::tail(&out.serial, 20)
    );
    assert!(
        out.saw(&format!("{PANIC_END}rer_panic_later: panicking on CPU 1")),
        "the panic did not finish (log {})",
        out.log.display()
    );
    assert_in_order(
        &out,
        &["resetting now: trigger /dev/emergency_reset", panic],
    );
    if out.saw("reset failed: the machine is still running") {
        assert_in_order(&out, &[panic, "reset failed: the machine is still running"]);
    }
    let after = stamp(&out, panic) - stamp(&out, "resetting now: trigger /dev/emergency_reset");
    eprintln!(
        "{}: the panic began {:.1} ms after the attempt's line",
        out.log.display(),
        after * 1e3
    );
    // The machine stays panicked (panic=0): nobody reset it, the write never returned.
    assert_eq!(out.ending, Ending::TimedOut, "log {}", out.log.display());
    assert!(
        !out.saw("RER-WRITE-RETURNED"),
        "{:?}",
        out.lines_with("RER-WRITE-RETURNED")
    );
    assert!(!out.saw("RER-SURVIVED"));
}

/// A CPU that took the serial console's port lock with interrupts off and
/// never gives it back (`rer_uart_lock`), then a reset from the other CPU:
/// the reset's lines cannot wait for that lock, and the guest is reset. On
/// linux 7.2, whose 8250 console only tries the lock under
/// `oops_in_progress`, the first line hung there before any method (the
/// engine now raises it around its lines, as `panic()` does); on 7.3 the
/// nbcon console never waits for the lock. Under `PREEMPT_RT` the port lock
/// is a sleeping lock, which leaves interrupts on; the console's lines are
/// printed by a thread there, or (7.3's nbcon console) after a handover the
/// spinning owner never grants.
#[test]
fn a_cpu_holding_the_consoles_port_lock_does_not_stop_the_reset() {
    let inputs = inputs();
    // Nothing may print after the lock is taken (1 s after the load): the
    // shell's own output would wait for it too.
    let scenario = format!(
        "{INSMOD}\ntaskset -p 1 $$ >/dev/null\ninsmod /modules/rer_uart_lock.ko cpu=1\n{}\
         sleep 4\necho reset > /dev/emergency_reset\necho RER-WRITE-RETURNED rc=$?\nsleep 4\n",
        show_text("rer_uart_lock")
    );
    let guest = Guest::new("uart_port_lock_held", &inputs, &scenario)
        .with_module(inputs.test_module("rer_uart_lock"));
    let mut vm = Vm::boot(&guest, &inputs);
    let text = vm.module_text("rer_uart_lock");
    // The fault in place before the write (3 s after the lock): QEMU shows CPU 1
    // spinning in the module with interrupts off (on, under PREEMPT_RT), CPU 0 not.
    let interrupts_on = inputs.has_config("CONFIG_PREEMPT_RT");
    let holds = |c: &VCpu| c.runs_in(text.clone()) && c.interrupts_on == interrupts_on;
    let until = Instant::now() + Duration::from_secs(3);
    let mut vcpus = vm.vcpus();
    while !vcpus.iter().any(|c| c.index == 1 && holds(c)) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        vcpus = vm.vcpus();
    }
    let spinning: Vec<usize> = vcpus.iter().filter(|c| holds(c)).map(|c| c.index).collect();
    assert_eq!(spinning, [1], "CPU 1 alone holds the port lock: {vcpus:?}");
    let out = vm.finish();
    out.assert_reset();
    assert!(!out.saw("RER-WRITE-RETURNED"));
}
