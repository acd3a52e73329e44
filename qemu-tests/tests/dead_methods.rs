// SPDX-License-Identifier: GPL-2.0

//! Present-but-dead methods, in QEMU (issue #11): a FADT whose reset register
//! is there, flagged and valid, but points where nothing resets the machine.
//!
//! The guests get QEMU's own FACP with the reset register replaced, through
//! the kernel's ACPI table upgrade from the initrd ([`Guest::fadt_reset`],
//! `qemu_tests::acpi`). Every test first shows that the override is in place
//! (the kernel's `ACPI: Table Upgrade: override [FACP-...]` line and the
//! module's `acpi_reset_register:` status line), and only then what the
//! `acpi` method did:
//!
//! - it writes exactly the declared register with exactly the declared value,
//!   in each address space: an I/O port (QEMU's pvpanic device, whose QMP
//!   event `GUEST_CRASHLOADED` QEMU timestamps at the write), a byte of PCI
//!   configuration space on bus 0, a byte of MMIO that holds what is written
//!   (q35's chipset configuration registers; see [`RCRB`] for why not RAM);
//! - after a dead method the engine waits its settle time, then goes on with
//!   the next method;
//! - with every configured method dead, the write returns `EIO` within the
//!   documented bound, and the guest lives.

use qemu_tests::{
    acpi::{
        assert_fadt_override,
        pci_config_address,
        ResetSpace, //
    },
    console::mended_console,
    run,
    Guest,
    Inputs,
    Outcome,
    DRAIN,
    MARK,
    RTC_MARK,
    TRY_WRITE, //
};
use std::time::SystemTime;

const INSMOD: &str = "insmod /modules/rust_emergency_reset.ko";

/// QEMU's ISA pvpanic device ([`Guest::pvpanic`]): a write of
/// [`CRASHLOADED`] makes QEMU emit `GUEST_CRASHLOADED` and lets the guest run
/// on. (Bit 0, "panicked", would make QEMU act on a guest panic: not used.)
const PVPANIC_PORT: u64 = 0x505;
/// pvpanic's "crash kernel loaded" event bit.
const CRASHLOADED: u8 = 0x02;
/// The port just below pvpanic's: nothing on q35 decodes it (QEMU's `info
/// mtree`: unassigned between the ELCR at 0x4d1 and pvpanic at 0x505; the
/// guest's /proc/ioports lists nothing there either). A write there is lost.
const UNUSED_PORT: u64 = 0x504;
/// A value pvpanic knows no event for: it logs a guest error (not shown
/// without `-d guest_errors`) and does nothing else. Not 0x04: QEMU 9.0 made
/// that bit "shutdown" (`PVPANIC_SHUTDOWN`), and QEMU 10 powers the guest off.
const NO_EVENT: u8 = 0x08;

/// The PCI function whose Interrupt Line byte the PCI-space tests write: q35's
/// ICH9 SMBus controller, 00:1f.3. No driver binds to it in either kernel's
/// test guest (Debian's `i2c-i801` is a module nobody loads there; the test
/// kernel has none); the byte is a scratch register for software, which QEMU
/// keeps writable (`pci_init_wmask()`) and which routes nothing (q35 routes
/// INTx through the ICH9's PIRQ registers; the kernel reads the byte only
/// while it enumerates the bus). Device 31, function 3: both fields of the
/// generic address are exercised.
const PCI_FUNCTION: &str = "0000:00:1f.3";
const PCI_DEVICE: u8 = 0x1f;
const PCI_FN: u8 = 3;
/// `PCI_INTERRUPT_LINE`.
const INTERRUPT_LINE: u16 = 0x3c;
/// What the tests write to a byte of PCI configuration space or memory: not
/// what the firmware left there (SeaBIOS sets the line to 0x0a; the reserved
/// RAM starts zeroed).
const MARKER: u8 = 0x5a;

/// The memory the memory-space tests write: q35's ICH9 chipset configuration
/// registers (RCRB), 16 KiB of MMIO at 0xFED1C000 where SeaBIOS puts them
/// (LPC config register RCBA, 0xF0, reads 0xFED1C001: enabled). QEMU
/// keeps them as plain storage (`ich9_cc_write()` stores the bytes, reads
/// give them back); only the D25IR-D31IR interrupt routes (0x3140-0x315F) and
/// GCS (0x3410) mean anything to it. The byte at 0x100 means nothing, reads
/// 0 after a reset, and no driver of either guest kernel touches the RCRB
/// (`lpc_ich`, `iTCO_wdt` are not loaded).
///
/// Not RAM reserved with `memmap=`: the kernel's ACPI core maps a
/// memory-space reset register at boot (`acpi_os_initialize()`) with
/// `ioremap_cache()`, which on RAM (MTRR write-back) reserves the page
/// write-back, and the module's own uncached `ioremap()` of it then fails
/// (`ioremap error for 0x8000000-0x8001000, requested 0x2, got 0x0`; the
/// method is "unavailable: cannot map the FADT reset register"). In MMIO,
/// which the MTRRs make uncached, both mappings are UC-.
const RCRB: u64 = 0xfed1_c000;
const RCRB_SIZE: u64 = 0x4000;
const RCRB_OFFSET: u64 = 0x100;

fn inputs() -> Inputs {
    Inputs::from_env()
}

/// A q35 guest whose `udelay()` lasts what it says on every CPU: with the
/// loops per jiffy given on the command line.
///
/// The module's settle time is a `udelay()`, which counts loops calibrated per
/// CPU at boot. QEMU's TCG CPU has no `constant_tsc`, so the second CPU does
/// not take the boot CPU's TSC-based value but measures its own against
/// jiffies, and under TCG on a loaded host gets it wrong: seen at 0.47x (a
/// 50 ms wait of 23 ms) and 1.4x. The TSC of a TCG guest is the host's, so the
/// right value is the host's clock rate / HZ (250 in both kernels), as the
/// harness gives microvm guests.
fn guest(name: &str, inputs: &Inputs, scenario: &str) -> Guest {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let mhz: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .expect("cpu MHz in /proc/cpuinfo");
    Guest::new(name, inputs, scenario).append(&format!("lpj={}", (mhz * 1e6 / 250.0) as u64))
}

/// A [`guest`] with the pvpanic device and a FADT reset register at `port`
/// with `value`.
fn pvpanic_guest(name: &str, inputs: &Inputs, scenario: &str, port: u64, value: u8) -> Guest {
    let mut guest = guest(name, inputs, scenario);
    guest.pvpanic = true;
    guest.fadt_reset(ResetSpace::Io, port, value)
}

/// The `ms=` of a [`TRY_WRITE`] result line.
fn write_ms(line: &str) -> i64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ms= in {line:?}"))
}

/// Asserts that the write labelled `label` failed with EIO, after exactly one
/// attempt, by the ACPI method, and that the guest lived on.
fn assert_one_acpi_attempt_then_eio(out: &Outcome, label: &str) {
    out.assert_alive();
    let line = out.write_result(label);
    assert!(
        line.contains("rc=1") && line.contains("Input/output error"),
        "{line} (log {})",
        out.log.display()
    );
    let attempts = out.reset_attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert!(
        attempts[0].contains("trigger /dev/emergency_reset, method acpi,"),
        "{attempts:?}"
    );
    assert!(out.saw("reset failed: the machine is still running"));
}

/// Runs a pvpanic guest whose FADT reset register is `port` with `value`:
/// it loads the module, shows its status, and writes `reset acpi` between two
/// [`RTC_MARK`]s (QMP `RTC_CHANGE`, which QEMU throttles to one a second:
/// they are 1.5 s apart), then writes [`MARK`] itself, which shows that
/// pvpanic's events reach QMP in this guest. See [`crashloaded`]. It waits a
/// second before it ends: the run ends at the console's `RER-DONE`, and QMP
/// events still on their way then are lost (seen: the last two).
fn io_register(name: &str, port: u64, value: u8) -> (Outcome, Guest, Inputs) {
    let inputs = inputs();
    let scenario = format!(
        "{TRY_WRITE}echo \"RER-TAINTED $(cat /proc/sys/kernel/tainted)\"\n\
         {INSMOD}\ncat /dev/emergency_reset\n{DRAIN}\n{RTC_MARK}\n\
         try_write acpi 'reset acpi\n'\nsleep 1\n{RTC_MARK}\n{MARK}\nsleep 1\n"
    );
    let guest = pvpanic_guest(name, &inputs, &scenario, port, value);
    let out = run(&guest, &inputs);
    (out, guest, inputs)
}

/// QEMU's `GUEST_CRASHLOADED` events of an [`io_register`] run: those
/// between the two RTC marks (during the write), and those after the second
/// (the scenario's own [`MARK`]). There are none before the first.
fn crashloaded(out: &Outcome) -> (Vec<SystemTime>, Vec<SystemTime>) {
    let rtc = out.event_times("RTC_CHANGE");
    assert_eq!(
        rtc.len(),
        2,
        "the two RTC marks around the write: {:?} (log {})",
        out.events,
        out.log.display()
    );
    let crash = out.event_times("GUEST_CRASHLOADED");
    let during: Vec<SystemTime> = crash
        .iter()
        .copied()
        .filter(|t| *t > rtc[0] && *t < rtc[1])
        .collect();
    let after: Vec<SystemTime> = crash.iter().copied().filter(|t| *t > rtc[1]).collect();
    assert_eq!(
        during.len() + after.len(),
        crash.len(),
        "a GUEST_CRASHLOADED before the write: {:?}",
        out.events
    );
    (during, after)
}

#[test]
fn acpi_io_register_is_written_with_the_declared_value() {
    // FADT: reset register = I/O port 0x505 (pvpanic), value 0x02 ("crash loaded").
    let (out, guest, inputs) = io_register("dead_io_pvpanic", PVPANIC_PORT, CRASHLOADED);
    let out = &out;
    // Status: acpi_reset_register: io 0x505 value 0x02
    assert_fadt_override(out, &guest, &inputs);
    // The write failed with EIO after one attempt, and the guest lived on;
    // QEMU saw 0x02 at port 0x505 during the write, once.
    assert_one_acpi_attempt_then_eio(out, "acpi");
    let (during_write, after) = crashloaded(out);
    assert_eq!(
        during_write.len(),
        1,
        "GUEST_CRASHLOADED during `reset acpi`: {:?} (log {})",
        out.events,
        out.log.display()
    );
    assert_eq!(after.len(), 1, "the scenario's own mark");
    // For the record: the table upgrade itself does not taint (Linux 7.3).
    eprintln!("{}", out.line_starting("RER-TAINTED "));
}

/// A control: the FADT declares `port` and `value`, `reset acpi` fails with
/// EIO after one attempt, and pvpanic makes no event of the write (while its
/// events do reach QMP in this guest: the scenario's own mark).
fn assert_pvpanic_sees_nothing(name: &str, port: u64, value: u8) {
    let (out, guest, inputs) = io_register(name, port, value);
    assert_fadt_override(&out, &guest, &inputs);
    assert_one_acpi_attempt_then_eio(&out, "acpi");
    let (during_write, after) = crashloaded(&out);
    assert_eq!(during_write, [], "pvpanic saw the write: {:?}", out.events);
    assert_eq!(after.len(), 1, "{:?}", out.events);
}

#[test]
fn acpi_io_register_next_to_pvpanic_does_not_reach_it() {
    // Control: the same value at the unused port below pvpanic's. A module that
    // wrote anywhere else than the declared port (0xCF9 whatever the FADT says,
    // the port + 1, ...) would be caught by this test or the one above.
    assert_pvpanic_sees_nothing("dead_io_unused_port", UNUSED_PORT, CRASHLOADED);
}

#[test]
fn acpi_io_register_gets_the_declared_value_not_another() {
    // Control: pvpanic's port with a value it makes no event of. A module that
    // wrote another value than the declared one (0x02, or the 0x0F of QEMU's
    // own FADT) would show an event here.
    assert_pvpanic_sees_nothing("dead_io_other_value", PVPANIC_PORT, NO_EVENT);
}

/// The hex bytes after `prefix` on the one console line starting with it.
fn hex_bytes(out: &Outcome, prefix: &str) -> Vec<u8> {
    let console = mended_console(out);
    let lines: Vec<&str> = console.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(
        lines.len(),
        1,
        "{prefix}: {lines:?} (log {})",
        out.log.display()
    );
    lines[0][prefix.len()..]
        .split_whitespace()
        .map(|w| u8::from_str_radix(w, 16).unwrap_or_else(|_| panic!("{w:?} after {prefix}")))
        .collect()
}

#[test]
fn acpi_pci_config_register_is_written_with_the_declared_value() {
    let inputs = inputs();
    // The first 256 bytes of every bus-0 function's configuration space, one
    // line each: `RER-CONFIG <when> <function> <hex bytes>`.
    let scenario = format!(
        r#"{TRY_WRITE}
config() {{
	for d in /sys/bus/pci/devices/*; do
		echo "RER-CONFIG $1 $(basename $d) $(od -An -tx1 -v -N 256 $d/config | tr -s ' \n' '  ')"
	done
}}
echo "RER-DRIVER $(readlink /sys/bus/pci/devices/{PCI_FUNCTION}/driver || echo none)"
{INSMOD}
cat /dev/emergency_reset
config before
{DRAIN}
try_write acpi 'reset acpi
'
config after
"#
    );
    let address = pci_config_address(PCI_DEVICE, PCI_FN, INTERRUPT_LINE);
    let guest = guest("dead_pci_config", &inputs, &scenario).fadt_reset(
        ResetSpace::PciConfig,
        address,
        MARKER,
    );
    let out = run(&guest, &inputs);
    // Status: acpi_reset_register: pci_config 0x1f0003003c value 0x5a
    assert_fadt_override(&out, &guest, &inputs);
    // Nobody else writes the byte: no driver has the function.
    assert!(
        out.saw("RER-DRIVER none"),
        "{:?}",
        out.lines_with("RER-DRIVER")
    );
    let target = format!("RER-CONFIG before {PCI_FUNCTION} ");
    let before = hex_bytes(&out, &target);
    let line = usize::from(INTERRUPT_LINE);
    assert_ne!(before[line], MARKER, "the byte already holds the marker");
    assert_one_acpi_attempt_then_eio(&out, "acpi");
    // After: the declared byte holds the declared value, and nothing else
    // changed in the configuration space of any function on the bus.
    let functions: Vec<String> = mended_console(&out)
        .lines()
        .filter(|l| l.starts_with("RER-CONFIG before "))
        .map(|l| l.split_whitespace().nth(2).unwrap().to_string())
        .collect();
    assert!(
        functions.contains(&PCI_FUNCTION.to_string()),
        "{functions:?}"
    );
    for f in &functions {
        let before = hex_bytes(&out, &format!("RER-CONFIG before {f} "));
        let after = hex_bytes(&out, &format!("RER-CONFIG after {f} "));
        assert_eq!(before.len(), 256, "{f}");
        assert_eq!(after.len(), 256, "{f}");
        let change = |i: usize, from: u8, to: u8| format!("{i:#04x}: {from:#04x} -> {to:#04x}");
        let changed: Vec<String> = (0..256)
            .filter(|&i| before[i] != after[i])
            .map(|i| change(i, before[i], after[i]))
            .collect();
        let want: Vec<String> = if f == PCI_FUNCTION {
            vec![change(line, before[line], MARKER)]
        } else {
            vec![]
        };
        assert_eq!(
            changed,
            want,
            "{f}: bytes changed (offset: before -> after); log {}",
            out.log.display()
        );
    }
    eprintln!(
        "{PCI_FUNCTION} interrupt line: {:#04x} before, {MARKER:#04x} after",
        before[line]
    );
}

#[test]
fn acpi_memory_register_is_written_with_the_declared_value() {
    let inputs = inputs();
    // `read WHEN`: the bytes at RCRB + 0xff, + 0x100 (the register), + 0x101,
    // as the test module reads them (`rer_scribble: byte at 0x... is 0x..`,
    // in the kernel log), then `RER-READ WHEN` once they are out.
    let scenario = format!(
        r#"{TRY_WRITE}
read() {{
	for at in {below} {RCRB_OFFSET} {above}; do
		insmod /modules/rer_scribble.ko address={RCRB:#x} size={RCRB_SIZE} mode=3 at=$at
		rmmod rer_scribble
	done
	sleep 0.2
	echo "RER-READ $1"
}}
echo "RER-RCBA $(od -An -tx1 -j 240 -N 4 /sys/bus/pci/devices/0000:00:1f.0/config)"
read before
{INSMOD}
cat /dev/emergency_reset
{DRAIN}
try_write acpi 'reset acpi
'
read after
"#,
        below = RCRB_OFFSET - 1,
        above = RCRB_OFFSET + 1,
    );
    let address = RCRB + RCRB_OFFSET;
    let guest = guest("dead_memory", &inputs, &scenario)
        .with_module(inputs.test_module("rer_scribble"))
        .fadt_reset(ResetSpace::Memory, address, MARKER);
    let out = run(&guest, &inputs);
    // Status: acpi_reset_register: memory 0xfed1c100 value 0x5a
    assert_fadt_override(&out, &guest, &inputs);
    assert!(
        out.saw_line("RER-RCBA  01 c0 d1 fe"),
        "RCBA: {:?}",
        out.lines_with("RER-RCBA")
    );
    assert_one_acpi_attempt_then_eio(&out, "acpi");
    // The three bytes before and after, in the order of the console: the
    // reads before < the attempt < the reads after.
    let console = mended_console(&out);
    let mark = |m: &str| {
        console
            .find(m)
            .unwrap_or_else(|| panic!("no {m:?}; log {}", out.log.display()))
    };
    let (before_done, attempt) = (
        mark("RER-READ before"),
        mark("resetting now: trigger /dev/emergency_reset, method acpi,"),
    );
    assert!(
        before_done < attempt,
        "the reads before came after the attempt"
    );
    let byte = |at: u64, after: bool| -> u8 {
        let needle = format!("rer_scribble: byte at {:#x} is 0x", RCRB + at);
        let seen: Vec<u8> = console
            .match_indices(&needle)
            .filter(|(i, _)| (*i > attempt) == after)
            .map(|(i, m)| u8::from_str_radix(&console[i + m.len()..i + m.len() + 2], 16).unwrap())
            .collect();
        assert_eq!(
            seen.len(),
            1,
            "{needle} (after: {after}); log {}",
            out.log.display()
        );
        seen[0]
    };
    let before = [0, 1, 2].map(|i| byte(RCRB_OFFSET - 1 + i, false));
    let after = [0, 1, 2].map(|i| byte(RCRB_OFFSET - 1 + i, true));
    eprintln!(
        "bytes at {:#x}..: {before:02x?} before, {after:02x?} after",
        address - 1
    );
    assert_ne!(before[1], MARKER, "the byte already holds the marker");
    assert_eq!(
        after,
        [before[0], MARKER, before[2]],
        "the declared byte, and only it, holds the declared value"
    );
}

#[test]
fn after_a_dead_method_the_next_one_comes_after_the_settle_time() {
    let inputs = inputs();
    let scenario = format!(
        "{INSMOD} methods=acpi,kbd\ncat /dev/emergency_reset\n{DRAIN}\n\
         echo reset > /dev/emergency_reset\necho RER-WRITE-RETURNED rc=$?\n"
    );
    let guest = pvpanic_guest(
        "dead_then_next",
        &inputs,
        &scenario,
        PVPANIC_PORT,
        CRASHLOADED,
    );
    let out = run(&guest, &inputs);
    assert_fadt_override(&out, &guest, &inputs);
    assert!(out.saw_line("order: acpi,kbd"));
    // acpi wrote pvpanic (t1), did not reset; then kbd did (t2).
    out.assert_reset_by("/dev/emergency_reset", "kbd");
    let attempts = out.reset_attempts();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[0].contains("method acpi,"), "{attempts:?}");
    assert!(attempts[1].contains("method kbd,"), "{attempts:?}");
    assert!(!out.saw("RER-WRITE-RETURNED"));
    let crash = out.event_times("GUEST_CRASHLOADED");
    assert_eq!(
        crash.len(),
        1,
        "QEMU did not see the acpi method's write: {:?}",
        out.events
    );
    // t2 - t1, both QEMU's timestamps: the 50 ms settle time (SETTLE_US), then
    // the 8042 pulse. 45 ms allows for the timestamps' granularity. (No upper
    // bound here: a TCG vCPU stalled by a loaded host stretches it; the EIO
    // test below bounds a dead method's time.)
    let gap = out.reset_latency().expect("t1 and t2");
    eprintln!(
        "GUEST_CRASHLOADED (acpi) to guest-reset (kbd): {:.2} ms",
        gap.as_secs_f64() * 1e3
    );
    assert!(gap.as_millis() >= 45, "the next method came after {gap:?}");
}

#[test]
fn every_configured_method_dead_gives_eio_within_the_documented_bound() {
    let inputs = inputs();
    let scenario = format!(
        "{TRY_WRITE}{INSMOD} methods=acpi\ncat /dev/emergency_reset\n{DRAIN}\n\
         try_write all 'reset\n'\ncat /dev/emergency_reset\n"
    );
    let guest = pvpanic_guest(
        "dead_all_eio",
        &inputs,
        &scenario,
        PVPANIC_PORT,
        CRASHLOADED,
    );
    let out = run(&guest, &inputs);
    assert_fadt_override(&out, &guest, &inputs);
    assert!(out.saw_line("order: acpi"));
    assert!(out.saw_line("method.acpi: available"));
    // The only method was tried (QEMU saw its write), did not reset, and the
    // write returned EIO.
    assert_one_acpi_attempt_then_eio(&out, "all");
    assert_eq!(
        out.event_times("GUEST_CRASHLOADED").len(),
        1,
        "QEMU did not see the acpi method's write: {:?}",
        out.events
    );
    assert!(out.saw_line("triggers: 1"));
    // The module's own share, from the kernel's timestamps of its two lines:
    // at least the settle time (49: the loops per jiffy given to udelay() and
    // the kernel's clock may differ by a fraction of a percent), at most the
    // documented bound, which is the module's (for the worst case of the
    // default order: kbd, acpi, cf9 all present and dead).
    let module_ms = kernel_ms_between(&out, ATTEMPT, FAILED);
    // The write's own duration, guest clock (10 ms steps, each end rounded
    // down): the module's share plus the shell's fork and exec under TCG.
    let ms = write_ms(&out.write_result("all"));
    eprintln!(
        "{}: EIO after {ms} ms (guest clock, the write, methods=acpi); {module_ms:.1} ms from \
         the attempt's log line to the failure's",
        inputs.kernel_name
    );
    assert!(
        (49.0..=EIO_BOUND_MS as f64).contains(&module_ms),
        "the module gave up after {module_ms:.1} ms"
    );
    assert!(ms >= 50, "EIO after {ms} ms");
}

/// The module's log lines at the start of an attempt and when all failed.
const ATTEMPT: &str = "rust_emergency_reset: resetting now:";
const FAILED: &str = "rust_emergency_reset: reset failed:";

/// The admin guide's bound: "with every method failing, `reset` returns `EIO`
/// within 250 ms".
const EIO_BOUND_MS: i64 = 250;

/// Milliseconds between the kernel log timestamps of the first console lines
/// containing `from` and `to`.
fn kernel_ms_between(out: &Outcome, from: &str, to: &str) -> f64 {
    let stamp = |needle: &str| -> f64 {
        let line = out
            .lines_with(needle)
            .first()
            .copied()
            .unwrap_or_else(|| panic!("no {needle:?}"));
        let inside = line.split('[').nth(1).and_then(|r| r.split(']').next());
        inside
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("no timestamp in {line:?}"))
    };
    (stamp(to) - stamp(from)) * 1e3
}
