// SPDX-License-Identifier: GPL-2.0

//! The harness's own verdicts: every QMP input is checked by QEMU's reply, so
//! an input QEMU rejected (a key it does not know, a wrong chardev) cannot
//! pass for one that reached the guest. A guest of several boots knows which
//! boot it is in, and the run counts its resets and ends where it should. The
//! kernel's log read from a stopped guest's RAM at its reset (what a
//! `PREEMPT_RT` kernel's console does not show in time) is the kernel's.

use qemu_tests::{
    run,
    Ending,
    Guest,
    Inputs,
    Vm,
    DRAIN,
    KERNEL_LOG_AT_RESET, //
};
use serde_json::json;
use std::{
    panic::{
        catch_unwind,
        AssertUnwindSafe, //
    },
    time::Duration,
};

#[test]
fn a_qmp_input_qemu_rejects_fails_the_test_with_qemus_message() {
    let inputs = Inputs::from_env();
    let guest = Guest::new("harness_qmp_rejected", &inputs, "echo RER-READY\nsleep 8\n")
        .without_our_module(&inputs);
    let mut vm = Vm::boot(&guest, &inputs);
    assert!(vm.wait_for("RER-READY"), "the guest never got ready");
    for (command, arguments) in [
        (
            "send-key",
            json!({"keys": [{"type": "qcode", "data": "nosuchkey"}]}),
        ),
        ("chardev-send-break", json!({"id": "nosuchchardev"})),
    ] {
        let refused = catch_unwind(AssertUnwindSafe(|| {
            vm.qmp_command(command, arguments.clone())
        }));
        let message = match refused {
            Ok(v) => panic!("QMP {command} {arguments} passed: {v}"),
            Err(e) => e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(no message)".into()),
        };
        assert!(message.contains("QEMU refused it"), "{command}: {message}");
        eprintln!("{command}: {message}");
    }
    // Accepted commands answer, and the guest ran on.
    let status = vm.qmp_command("query-status", json!({}));
    assert_eq!(status["status"], "running", "{status}");
    vm.finish().assert_alive();
}

#[test]
fn a_guest_of_two_boots_knows_its_boot_and_runs_on_after_the_first_reset() {
    let inputs = Inputs::from_env();
    // sysrq-b: emergency_restart(), a guest reset that a healthy guest survives.
    let scenario = format!(
        "case \"$RER_BOOT\" in\n\
         1) echo RER-FIRST; {DRAIN}; echo b > /proc/sysrq-trigger;;\n\
         2) echo RER-SECOND;;\n\
         esac\n"
    );
    let guest = Guest::new("harness_two_boots", &inputs, &scenario)
        .without_our_module(&inputs)
        .boots(2)
        .timeout(Duration::from_secs(120));
    let out = run(&guest, &inputs);
    out.assert_alive();
    // QEMU reports more RESETs: SeaBIOS resets once more (see guest_resets()).
    assert_eq!(out.guest_resets(), 1, "events {:?}", out.events);
    let (first, second) = (out.boot_console(1), out.boot_console(2));
    assert!(
        first.contains("RER-FIRST") && !first.contains("RER-SECOND"),
        "boot 1:\n{first}"
    );
    assert!(
        second.contains("RER-SECOND") && !second.contains("RER-FIRST"),
        "boot 2:\n{second}"
    );
    eprintln!(
        "two boots, one reset: {:.1} s, {} RESET events",
        out.elapsed.as_secs_f64(),
        out.event_times("RESET").len()
    );
}

#[test]
fn a_guest_of_two_boots_that_both_reset_ends_as_a_guest_reset() {
    let inputs = Inputs::from_env();
    let scenario = format!("echo RER-BOOT-$RER_BOOT\n{DRAIN}\necho b > /proc/sysrq-trigger\n");
    let guest = Guest::new("harness_two_resets", &inputs, &scenario)
        .without_our_module(&inputs)
        .boots(2)
        .timeout(Duration::from_secs(120));
    let out = run(&guest, &inputs);
    out.assert_reset();
    assert_eq!(out.guest_resets(), 2, "events {:?}", out.events);
    // The first reset rebooted; the last stopped QEMU as -no-reboot does.
    assert!(!out.event_times("RESET").is_empty(), "{:?}", out.events);
    assert_eq!(
        out.event_times("SHUTDOWN").len(),
        1,
        "events {:?}",
        out.events
    );
    assert!(out.boot_console(1).contains("RER-BOOT-1"));
    assert!(!out.boot_console(1).contains("RER-BOOT-2"));
    assert!(out.boot_console(2).contains("RER-BOOT-2"));
    assert_eq!(out.ending, Ending::GuestReset);
    eprintln!(
        "two boots, two resets: {:.1} s, {} RESET events",
        out.elapsed.as_secs_f64(),
        out.event_times("RESET").len()
    );
}

#[test]
fn rer_scribble_corrupts_the_reserve_mem_region_whose_bytes_survive_a_reset() {
    let inputs = Inputs::from_env();
    let scenario = format!(
        r#"
scribble() {{
	insmod /modules/rer_scribble.ko "$@"
	echo "RER-INSMOD $* rc=$?"
	rmmod rer_scribble
}}
scribble mode=2
if [ "$RER_BOOT" = 1 ]; then
	scribble mode=0
	scribble mode=1 at=65535
	scribble mode=2
fi
dmesg | grep 'rer_scribble: mode' | sed 's/^.*rer_scribble: /RER-SCRIBBLE /'
if [ "$RER_BOOT" = 1 ]; then
	{DRAIN}
	echo b > /proc/sysrq-trigger
fi
"#
    );
    let guest = Guest::new("harness_scribble", &inputs, &scenario)
        .without_our_module(&inputs)
        .with_module(inputs.test_module("rer_scribble"))
        .append("reserve_mem=64K:4096:rer_lw")
        .boots(2)
        .timeout(Duration::from_secs(120));
    let out = run(&guest, &inputs);
    out.assert_alive();
    assert_eq!(out.guest_resets(), 1);
    for line in out.lines_with("RER-INSMOD") {
        assert!(
            line.ends_with(" rc=0"),
            "{line} (log {})",
            out.log.display()
        );
    }
    // "mode N at 0x<start> size 65536 sum 0x<checksum>": (mode and region, checksum).
    let scribbles = |boot: usize| -> Vec<(String, String)> {
        qemu_tests::console::mend(out.boot_console(boot))
            .lines()
            .filter_map(|l| l.strip_prefix("RER-SCRIBBLE "))
            .map(|l| {
                let (what, sum) = l.split_once(" sum ").unwrap_or((l, ""));
                (what.to_string(), sum.to_string())
            })
            .collect()
    };
    let (first, second) = (scribbles(1), scribbles(2));
    assert_eq!(first.len(), 4, "boot 1: {first:?}");
    assert_eq!(second.len(), 1, "boot 2: {second:?}");
    let region = first[0].0.strip_prefix("mode 2 ").unwrap_or("?");
    assert!(region.ends_with(" size 65536"), "{first:?}");
    for (i, mode) in [2, 0, 1, 2].iter().enumerate() {
        assert_eq!(first[i].0, format!("mode {mode} {region}"), "{first:?}");
    }
    assert_eq!(second[0].0, format!("mode 2 {region}"), "{second:?}");
    // Mode 1 flipped a bit of what mode 0 wrote; mode 2 wrote nothing.
    assert_ne!(first[1].1, first[2].1, "{first:?}");
    assert_eq!(first[2].1, first[3].1, "{first:?}");
    // The region came through the reset, SeaBIOS's second one and the next boot intact.
    assert_eq!(
        second[0].1, first[3].1,
        "boot 1 {first:?}, boot 2 {second:?}"
    );
}

/// A guest whose log is read at each reset ([`Guest::log_at_reset`], what
/// every guest on a `PREEMPT_RT` kernel gets), here on any kernel, two boots
/// each ending in a reset: at each reset the harness reads the kernel's log
/// from the stopped guest's RAM into the console, then the guest boots
/// again. What it adds is the kernel's own: a record the console never
/// showed (debug level), once, with the stamp `dmesg` showed for another,
/// and none of the lines the console showed, nor the other boot's records.
#[test]
fn the_log_read_at_each_reset_adds_what_the_console_did_not_show() {
    let inputs = Inputs::from_env();
    let scenario = "insmod /modules/rust_emergency_reset.ko\n\
         echo \"<7>rer-probe-hidden boot=$RER_BOOT\" > /dev/kmsg\n\
         echo \"<7>rer-probe-dmesg boot=$RER_BOOT\" > /dev/kmsg\n\
         dmesg | grep rer-probe-dmesg | tr '[]' '()' | sed 's/^/RER-DMESG /'\n\
         echo reset > /dev/emergency_reset\n";
    let guest = Guest::new("harness_log_at_reset", &inputs, scenario)
        .boots(2)
        .log_at_reset()
        .timeout(Duration::from_secs(120));
    let out = run(&guest, &inputs);
    assert_eq!(out.ending, Ending::GuestReset, "log {}", out.log.display());
    assert_eq!(out.guest_resets(), 2, "log {}", out.log.display());
    for boot in 1..=2 {
        let console = out.boot_console(boot);
        let (shown, read) = console
            .split_once(KERNEL_LOG_AT_RESET)
            .unwrap_or_else(|| panic!("boot {boot}: no log read at its reset"));
        let records = |needle: &str| read.lines().filter(|l| l.contains(needle)).count();
        // The reset line reached the console (this kernel prints it at once): not again.
        assert!(shown.contains("resetting now: trigger /dev/emergency_reset, method kbd"));
        assert_eq!(records("resetting now"), 0, "boot {boot}:{read}");
        let hidden = format!("] rer-probe-hidden boot={boot}");
        assert!(!shown.contains(&hidden), "the console showed a debug line");
        assert_eq!(records(&hidden), 1, "boot {boot}:{read}");
        let stamp = shown
            .lines()
            .find_map(|l| l.strip_prefix("RER-DMESG ("))
            .and_then(|l| l.split(')').next())
            .unwrap_or_else(|| panic!("boot {boot}: no dmesg line"));
        let dmesg = format!("[{stamp}] rer-probe-dmesg boot={boot}");
        assert_eq!(records(&dmesg), 1, "boot {boot}: {dmesg} not in:{read}");
    }
    assert_eq!(out.serial.matches("rer-probe-hidden boot=1").count(), 1);
}
