// SPDX-License-Identifier: GPL-2.0

//! Last words, in QEMU: a reset leaves its record in reserved RAM, and the
//! module finds it after the reboot.
//!
//! These guests boot twice ([`Guest::boots`]): QEMU runs without
//! `-no-reboot` and keeps guest RAM across the guest's reset, so the second
//! boot, on the same kernel, initramfs and command line, finds what the first
//! left. `$RER_BOOT` tells the scenario which boot it is in. The second boot
//! prints the saved log with each line prefixed `RER-LOG `: a fresh kernel's
//! console never shows the first boot's messages, so any such line can only
//! come from the record.

use qemu_tests::{
    console,
    run,
    Ending,
    Guest,
    Inputs,
    Outcome,
    DRAIN,
    STUCK_REBOOT,
    TRY_WRITE, //
};
use std::{
    process::Command,
    time::{
        Duration,
        SystemTime, //
    },
};

/// The region on the kernel command line, by name.
const RESERVE: &str = "reserve_mem=64K:4096:rer_lw";
/// Our module with that region.
const LOAD: &str = "insmod /modules/rust_emergency_reset.ko mem_name=rer_lw";
/// The region at a fixed address, taken out of System RAM.
const MEMMAP: &str = "memmap=64K$0x8000000";

/// Shell function: `show` prints the last-words lines of the status and the
/// saved log, each log line prefixed `RER-LOG `.
const SHOW: &str = r#"
show() {
	sleep 0.5
	grep -e '^last_words' -e '^previous reset:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
	echo "RER-LOG-NODE $(ls -l /dev/emergency_reset_log | cut -d' ' -f1) bytes=$(wc -c < /dev/emergency_reset_log)"
	sed 's/^/RER-LOG /' /dev/emergency_reset_log
	echo RER-LOG-END
}
"#;

fn inputs() -> Inputs {
    Inputs::from_env()
}

/// `out` with its console mended ([`console::mend`]): the kernel prints
/// asynchronously, and its lines land inside the scenario's now and then
/// (seen splitting a saved-log line). Every check below reads whole lines.
fn mended(mut out: Outcome) -> Outcome {
    out.serial = console::mend(&out.serial);
    out
}

/// A guest of two boots running `first` then `second`, with `params` on the
/// kernel command line.
fn two_boots(name: &str, inputs: &Inputs, params: &str, first: &str, second: &str) -> Guest {
    let scenario = format!(
        "{TRY_WRITE}{SHOW}\ncase \"$RER_BOOT\" in\n1)\n{first}\n;;\n2)\n{second}\n;;\nesac\n"
    );
    Guest::new(name, inputs, &scenario)
        .with_module(inputs.test_module("rer_oops_transition"))
        .with_module(inputs.test_module("rer_scribble"))
        .append(params)
        .boots(2)
        .timeout(Duration::from_secs(150))
}

/// The guest reset once, then ran its second boot to the end.
fn assert_reset_once_then_alive(out: &Outcome) {
    assert_eq!(
        out.ending,
        Ending::Done,
        "the second boot did not finish; log {}",
        out.log.display()
    );
    assert_eq!(
        out.guest_resets(),
        1,
        "the guest must reset exactly once; log {}",
        out.log.display()
    );
}

/// The `previous reset:` line of boot `k`'s status, without its prefix
/// (the last one printed in that boot).
fn previous(out: &Outcome, k: usize) -> String {
    out.boot_console(k)
        .lines()
        .filter_map(|l| l.strip_prefix("RER-STATUS previous reset: "))
        .next_back()
        .unwrap_or_else(|| {
            panic!(
                "boot {k} printed no previous reset line; log {}",
                out.log.display()
            )
        })
        .to_string()
}

/// The saved log as boot `k` printed it.
fn saved_log(out: &Outcome, k: usize) -> Vec<&str> {
    out.boot_console(k)
        .lines()
        .filter_map(|l| l.strip_prefix("RER-LOG "))
        .collect()
}

/// Seconds between the record's time (`YYYY-MM-DD HH:MM:SS UTC` at the start
/// of the line) and now, by GNU date on the host (the guest's clock is the
/// host's, through the emulated RTC).
fn age_of(line: &str) -> u64 {
    let stamp = &line[..line.find(" UTC").expect("a UTC time") + 4];
    let out = Command::new("date")
        .args(["-u", "-d", stamp, "+%s"])
        .output()
        .unwrap();
    let at: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now.abs_diff(at)
}

#[test]
fn seed_scenario_the_second_boot_names_the_device_its_caller_and_the_oops() {
    let inputs = inputs();
    let first = format!(
        "{LOAD}\necho \"RER-FIRST $(grep '^previous reset:' /dev/emergency_reset)\"\n\
         {STUCK_REBOOT}{DRAIN}\n\
         sh -c 'echo \"RER-WRITER-PID $$\"; sleep 0.5; echo reset > /dev/emergency_reset'\n\
         echo RER-WRITE-RETURNED"
    );
    let second = format!("{LOAD}\nshow");
    let out = mended(run(
        &two_boots("lw_seed", &inputs, RESERVE, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    let boot1 = out.boot_console(1);
    // The fault was in place, and nothing was recorded before it.
    assert!(boot1.contains("RER-FIRST previous reset: none"), "{boot1}");
    assert!(boot1.contains("BUG: kernel NULL pointer dereference"));
    assert!(
        boot1.contains("RER-REBOOT-STATE D "),
        "reboot -f was not stuck"
    );
    assert!(!boot1.contains("RER-WRITE-RETURNED"));

    let writer = out
        .lines_with("RER-WRITER-PID ")
        .first()
        .and_then(|l| l.split_whitespace().last())
        .expect("the writer's pid")
        .to_string();
    let line = previous(&out, 2);
    assert!(
        line.contains(", trigger /dev/emergency_reset, methods kbd,acpi,cf9,triple, ")
            && line.contains(&format!(", caller pid {writer} uid 0 comm sh, "))
            && !line.ends_with(", failed"),
        "previous reset: {line}"
    );
    assert!(age_of(&line) < 600, "the record's time is off: {line}");

    let log = saved_log(&out, 2);
    for wanted in [
        "holding system_transition_mutex, oopsing now",
        "BUG: kernel NULL pointer dereference",
        "resetting now: trigger /dev/emergency_reset, method kbd, caller pid",
    ] {
        assert!(
            log.iter().any(|l| l.contains(wanted)),
            "the saved log lacks {wanted:?}; log {}",
            out.log.display()
        );
    }
    // The node is root's, read-only, and as long as the status says.
    let node = out.lines_with("RER-LOG-NODE ");
    assert!(node[0].contains("cr--------"), "{node:?}");
    assert!(line.contains(&format!(
        ", log {} bytes",
        node[0].rsplit('=').next().unwrap()
    )));
}

#[test]
fn sysrq_reset_is_recorded_without_a_caller() {
    let inputs = inputs();
    let first = format!("{LOAD}\n{DRAIN}\necho x > /proc/sysrq-trigger\necho RER-SYSRQ-RETURNED");
    let second = format!("{LOAD}\nshow");
    let out = mended(run(
        &two_boots("lw_sysrq", &inputs, RESERVE, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    let line = previous(&out, 2);
    assert!(
        line.contains(", trigger sysrq-x, methods kbd,acpi,cf9,triple, caller none, "),
        "previous reset: {line}"
    );
    assert!(saved_log(&out, 2)
        .iter()
        .any(|l| l.contains("resetting now: trigger sysrq-x, method kbd")));
}

#[test]
fn on_oops_reset_keeps_the_oops_in_the_saved_log() {
    let inputs = inputs();
    let first = format!(
        "{LOAD} on_oops=1\n{DRAIN}\ninsmod /modules/rer_oops_transition.ko\nsleep 20\necho RER-NO-RESET"
    );
    let second = format!("{LOAD}\nshow");
    let out = mended(run(
        &two_boots("lw_on_oops", &inputs, RESERVE, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    assert!(out
        .boot_console(1)
        .contains("BUG: kernel NULL pointer dereference"));
    let line = previous(&out, 2);
    assert!(
        line.contains(", trigger oops, methods kbd,acpi,cf9,triple, caller none, "),
        "previous reset: {line}"
    );
    let log = saved_log(&out, 2);
    for wanted in [
        "BUG: kernel NULL pointer dereference",
        "resetting now: trigger oops, method kbd",
    ] {
        assert!(
            log.iter().any(|l| l.contains(wanted)),
            "the saved log lacks {wanted:?}; log {}",
            out.log.display()
        );
    }
}

#[test]
fn forget_erases_the_record_and_needs_the_capability() {
    let inputs = inputs();
    let first = format!("{LOAD}\n{DRAIN}\necho reset > /dev/emergency_reset");
    let second = format!(
        "{LOAD}\nshow\nchmod 666 /dev/emergency_reset\n\
         try_write nobody 'forget' nobody\nshow\n\
         try_write forget 'forget'\nshow\n\
         rmmod rust_emergency_reset\n{LOAD}\nshow"
    );
    let out = mended(run(
        &two_boots("lw_forget", &inputs, RESERVE, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    let boot2 = out.boot_console(2);
    let lines: Vec<&str> = boot2
        .lines()
        .filter_map(|l| l.strip_prefix("RER-STATUS previous reset: "))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    // Refused without CAP_SYS_BOOT, and nothing changed.
    let nobody = out.write_result("nobody");
    assert!(
        nobody.contains("rc=1") && nobody.contains("Operation not permitted"),
        "{nobody}"
    );
    assert!(lines[0].contains("trigger /dev/emergency_reset") && lines[1] == lines[0]);
    // Forgotten: none, an empty log, and still none after loading the module again.
    assert!(out.write_result("forget").contains("rc=0"));
    assert_eq!(&lines[2..], ["none", "none"]);
    let sizes = out.lines_with("RER-LOG-NODE ");
    assert!(
        !sizes[0].ends_with("bytes=0") && sizes[2].ends_with("bytes=0"),
        "{sizes:?}"
    );
}

#[test]
fn garbage_and_damaged_records_read_as_none_and_the_region_is_used() {
    let inputs = inputs();
    // Boot 1: random bytes over the region, then a reset through it.
    let first = format!(
        "insmod /modules/rer_scribble.ko mode=0\nrmmod rer_scribble\n{LOAD}\n{DRAIN}\n\
         echo \"RER-FIRST $(grep '^previous reset:' /dev/emergency_reset)\"\n{DRAIN}\n\
         echo reset > /dev/emergency_reset"
    );
    // Boot 2: the record is there; then one bit of its log, then of its
    // version, flipped in RAM.
    let second = format!(
        "{LOAD}\nshow\nrmmod rust_emergency_reset\n\
         insmod /modules/rer_scribble.ko mode=1 at=300\nrmmod rer_scribble\n{LOAD}\nshow\n\
         rmmod rust_emergency_reset\n\
         insmod /modules/rer_scribble.ko mode=1 at=8\nrmmod rer_scribble\n{LOAD}\nshow\n\
         dmesg | grep -e 'last words:' -e rer_scribble | sed 's/^/RER-DMESG /'"
    );
    let out = mended(run(
        &two_boots("lw_garbage", &inputs, RESERVE, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    let boot1 = out.boot_console(1);
    assert!(
        boot1.contains("rer_scribble: mode 0"),
        "the region was not scribbled on"
    );
    assert!(boot1.contains("RER-FIRST previous reset: none"), "{boot1}");
    let lines: Vec<&str> = out
        .boot_console(2)
        .lines()
        .filter_map(|l| l.strip_prefix("RER-STATUS previous reset: "))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].contains("trigger /dev/emergency_reset"),
        "{lines:?}"
    );
    assert_eq!(&lines[1..], ["none", "none"]);
    let dmesg = out.lines_with("RER-DMESG ");
    let said = |what: &str| dmesg.iter().any(|l| l.contains(what));
    assert!(
        said("rer_scribble: mode 1") && said("a record with a bad checksum"),
        "{dmesg:?}"
    );
    assert!(said("a record of unknown format 0"), "{dmesg:?}");
}

#[test]
fn a_region_given_by_address_keeps_the_record_of_a_one_method_reset() {
    let inputs = inputs();
    let load = "insmod /modules/rust_emergency_reset.ko mem_address=0x8000000 mem_size=65536";
    let first = format!("{load}\n{DRAIN}\necho 'reset cf9' > /dev/emergency_reset");
    let second = format!("{load}\nshow");
    let out = mended(run(
        &two_boots("lw_memmap", &inputs, MEMMAP, &first, &second),
        &inputs,
    ));
    assert_reset_once_then_alive(&out);
    assert!(out
        .boot_console(2)
        .contains("RER-STATUS last_words: 65536 bytes at 0x0000000008000000"));
    let line = previous(&out, 2);
    assert!(
        line.contains(", trigger /dev/emergency_reset, methods cf9, caller pid "),
        "previous reset: {line}"
    );
}

#[test]
fn off_without_a_region_and_bad_regions_are_refused_at_load() {
    let inputs = inputs();
    let scenario = format!(
        r#"{TRY_WRITE}
insmod /modules/rust_emergency_reset.ko
grep -e '^last_words' -e '^previous reset:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
echo "RER-LOG-NODE exists=$(test -e /dev/emergency_reset_log && echo yes || echo no)"
try_write forget 'forget'
rmmod rust_emergency_reset
for p in "mem_name=nosuch" "mem_name=rer_small" "mem_address=0x8000000 mem_size=65536" \
		"mem_address=0x20000000 mem_size=65536" \
		"mem_name=rer_lw mem_address=0x8000000 mem_size=65536" "mem_address=0x8000000"; do
	insmod /modules/rust_emergency_reset.ko $p 2>/dev/null
	echo "RER-LOAD $p rc=$?"
done
{LOAD} 2>/dev/null
echo "RER-LOAD good rc=$?"
sleep 0.5
dmesg | grep rust_emergency_reset | sed 's/^/RER-DMESG /'
"#
    );
    // Two regions: a good one and one too small for a record; 0x8000000 is RAM
    // in use, 0x20000000 (512 MiB) lies beyond the guest's 256 MiB.
    let guest = Guest::new("lw_off_and_refusals", &inputs, &scenario)
        .append(&format!("{RESERVE} reserve_mem=2K:4096:rer_small"));
    let out = mended(run(&guest, &inputs));
    out.assert_alive();
    assert!(out.saw("RER-STATUS last_words: off"));
    assert!(out.saw("RER-STATUS previous reset: unknown (last words off)"));
    assert!(out.saw("RER-LOG-NODE exists=no"));
    let forget = out.write_result("forget");
    assert!(
        forget.contains("rc=1") && forget.contains("No such device or address"),
        "{forget}"
    );
    for p in [
        "mem_name=nosuch",
        "mem_name=rer_small",
        "mem_address=0x8000000 mem_size=65536",
        "mem_address=0x20000000 mem_size=65536",
        "mem_name=rer_lw mem_address=0x8000000 mem_size=65536",
        "mem_address=0x8000000",
    ] {
        let line = out.line_starting(&format!("RER-LOAD {p} rc="));
        assert!(!line.ends_with("rc=0"), "loaded with {p}: {line}");
    }
    assert!(out.line_starting("RER-LOAD good rc=").ends_with("rc=0"));
    let dmesg = out.lines_with("RER-DMESG ");
    for why in [
        "mem_name=nosuch: no such region: reserve one with the kernel parameter reserve_mem=64K:4096:nosuch",
        "the region has 2048 bytes, too small for a record (at least 4096)",
        "mem_address=0x8000000 mem_size=65536: the range is System RAM in use",
        "mem_address=0x20000000 mem_size=65536: the range is not reserved memory",
        "give mem_name=, or mem_address= with mem_size=, not both",
    ] {
        assert!(dmesg.iter().any(|l| l.contains(why)), "no {why:?} in {dmesg:?}");
    }
}

#[test]
fn a_failed_attempt_is_recorded_as_failed_with_the_newest_log_that_fits() {
    let inputs = inputs();
    // No 8042 on this machine and `methods=kbd`: the attempt fails with EIO,
    // after saving its record. 2000 lines to /dev/kmsg overflow the region.
    let scenario = format!(
        r#"{TRY_WRITE}
{LOAD} methods=kbd
i=0
while [ $i -lt 2000 ]; do echo "rer-filler line $i" > /dev/kmsg; i=$((i + 1)); done
echo rer-last-line-before-reset > /dev/kmsg
try_write first 'reset'
grep -e '^last_words' -e '^previous reset:' /dev/emergency_reset | sed 's/^/RER-STATUS /'
echo "RER-LOG-BYTES $(wc -c < /dev/emergency_reset_log)"
echo "RER-LOG-FIRST $(head -1 /dev/emergency_reset_log)"
echo "RER-LOG-OLDEST-FILLER $(grep -m1 -o 'rer-filler line [0-9]*' /dev/emergency_reset_log)"
echo "RER-LOG-TAIL $(grep -c -e rer-last-line-before-reset -e 'reset failed: the machine is still running' /dev/emergency_reset_log)"
"#
    );
    let guest = Guest::new("lw_failed", &inputs, &scenario)
        .machine("q35,i8042=off")
        .append(RESERVE);
    let out = mended(run(&guest, &inputs));
    out.assert_alive();
    let write = out.write_result("first");
    assert!(write.contains("Input/output error"), "{write}");
    let line = out.line_starting("RER-STATUS previous reset: ");
    assert!(
        line.contains(", trigger /dev/emergency_reset, methods kbd, caller pid ")
            && line.ends_with(", failed"),
        "{line}"
    );
    // The region's 65536 bytes hold 65376 of log: whole lines, the newest.
    let bytes = out.number_after("RER-LOG-BYTES ");
    assert!((64_000..=65_376).contains(&bytes), "{bytes} bytes of log");
    assert!(
        line.ends_with(&format!(", log {bytes} bytes, failed")),
        "{line}"
    );
    // The oldest lines were left out, and what is kept starts with a whole
    // record: a kernel line may fall among the fillers (seen: the TSC's
    // `clocksource: tsc: mask: ...` at the cut).
    assert!(out.number_after("RER-LOG-OLDEST-FILLER ") > 0);
    let first = out.line_starting("RER-LOG-FIRST ");
    assert!(
        console::is_kernel_record(&first["RER-LOG-FIRST ".len()..]),
        "the kept log does not start with a whole record: {first:?}"
    );
    assert_eq!(out.number_after("RER-LOG-TAIL "), 2);
    let save_us = out.number_after("RER-STATUS last_words_save_us: ");
    assert!(save_us > 0);
    eprintln!(
        "{}: saving the record ({bytes} bytes of log) took {save_us} us",
        inputs.kernel_name
    );
}
