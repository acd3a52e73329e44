// SPDX-License-Identifier: GPL-2.0

//! The guest's serial console as text: mending the kernel's lines that
//! landed inside a line of userspace output ([`mend`], [`mended_console`]),
//! finding kernel log records ([`is_kernel_record`]), the last lines for a
//! failure message ([`tail`]), the echo on stdout (`print_console`), and char
//! boundaries in it (`floor_char`).
//!
//! It works on the text it is given: it reads no VM, QMP or file, and decides
//! nothing about a run (that is [`Outcome`]'s).

use crate::Outcome;
use std::io::Write;

/// The console of `out`, with each kernel log line that landed inside a line
/// of userspace output (the kernel prints asynchronously: seen splitting the
/// module's status, `acpi_reset_register: pci_confi[    1.155565] clocksource:
/// ...\ng 0x1f0003003c value 0x5a`) moved out of it: the line is whole again,
/// the kernel's lines follow it. Lines that quote a kernel line on purpose
/// after a marker (`RER-KMSG [...] ...`, a saved log's `RER-LOG [...] ...`)
/// are mended after the quoted record. A line cut more than once is mended
/// whole (seen: three kernel lines inside one line of the benchmark's helper).
pub fn mended_console(out: &Outcome) -> String {
    mend(&out.serial)
}

/// [`mended_console`] for any console text, e.g. one boot's
/// ([`Outcome::boot_console`]).
pub fn mend(serial: &str) -> String {
    let mut mended = String::with_capacity(serial.len());
    // A userspace line cut by kernel lines, and those kernel lines.
    let mut cut: Option<(String, String)> = None;
    for line in serial.lines() {
        if let Some((mut head, mut kernel)) = cut.take() {
            if kernel_record_at(line) == Some(0) {
                kernel.push_str(line);
                kernel.push('\n');
                cut = Some((head, kernel));
                continue;
            }
            // The rest of the cut line, which another kernel line may cut again.
            let from = head.len();
            head.push_str(line);
            match cut_at(&head).filter(|&at| at > from) {
                Some(at) => {
                    kernel.push_str(&head[at..]);
                    kernel.push('\n');
                    head.truncate(at);
                    cut = Some((head, kernel));
                }
                None => {
                    mended.push_str(&head);
                    mended.push('\n');
                    mended.push_str(&kernel);
                }
            }
            continue;
        }
        match cut_at(line) {
            Some(at) => {
                cut = Some((line[..at].to_string(), format!("{}\n", &line[at..])));
            }
            _ => {
                mended.push_str(line);
                mended.push('\n');
            }
        }
    }
    if let Some((head, kernel)) = cut {
        mended.push_str(&head);
        mended.push('\n');
        mended.push_str(&kernel);
    }
    mended
}

/// Where a kernel log record cuts `line`: the first record not at its start
/// and not quoted on purpose right after a `RER-MARKER ` word.
fn cut_at(line: &str) -> Option<usize> {
    let marker = line
        .starts_with("RER-")
        .then(|| line.find(' ').map(|i| i + 1))
        .flatten()
        .filter(|&i| kernel_record_at(&line[i..]) == Some(0));
    let from = match marker {
        // Past the quoted record's `] `.
        Some(i) => i + line[i..].find("] ")? + 2,
        None => 1,
    };
    kernel_record_at(line.get(from..)?).map(|at| from + at)
}

/// Whether `line` starts with a kernel log record's time stamp
/// ([`kernel_record_at`]).
pub fn is_kernel_record(line: &str) -> bool {
    kernel_record_at(line) == Some(0)
}

/// Where in `line` a kernel log record starts: `[` spaces digits `.` six
/// digits `] `.
fn kernel_record_at(line: &str) -> Option<usize> {
    line.match_indices('[').map(|(i, _)| i).find(|&i| {
        let rest = line[i + 1..].trim_start_matches(' ');
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let rest = &rest[digits..];
        digits > 0
            && rest.len() >= 9
            && rest.starts_with('.')
            && rest[1..7].bytes().all(|b| b.is_ascii_digit())
            && rest[7..].starts_with("] ")
    })
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Prints console text with a `guest| ` prefix on each line.
pub(crate) fn print_console(text: &str) {
    let mut out = std::io::stdout().lock();
    for piece in text.split_inclusive('\n') {
        let _ = write!(out, "{piece}");
        if piece.ends_with('\n') {
            let _ = write!(out, "    guest| ");
        }
    }
    let _ = out.flush();
}

/// The largest char boundary of `s` at or below `i`.
pub(crate) fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_lines_inside_a_line_are_moved_out() {
        let serial = "method.triple: available\n\
                      acpi_reset_register: pci_confi[    1.155565] clocksource: Watchdog\n\
                      [    1.155600] second\n\
                      g 0x1f0003003c value 0x5a\n\
                      [    2.000000] whole\n\
                      sysrq_key: x\n\
                      RER-KMSG [    1.000000] WARNING: quoted\n\
                      RER-DONE";
        assert_eq!(
            mend(serial),
            "method.triple: available\n\
             acpi_reset_register: pci_config 0x1f0003003c value 0x5a\n\
             [    1.155565] clocksource: Watchdog\n\
             [    1.155600] second\n\
             [    2.000000] whole\n\
             sysrq_key: x\n\
             RER-KMSG [    1.000000] WARNING: quoted\n\
             RER-DONE\n"
        );
        assert_eq!(kernel_record_at("[12345.000001] x"), Some(0));
        assert_eq!(kernel_record_at("a[1] b"), None);
    }

    #[test]
    fn quoted_kernel_lines_are_mended_after_the_quote() {
        // Both seen in CI runs.
        let serial = "RER-PANIC-ON-OOPS 1[    1.683216] clocksource: Switched\n\
                      \n\
                      RER-LOG [    1.361911] rust_emergency_reset: res[    1.485978] tsc: Refined\n\
                      etting now: trigger sysrq-x\n\
                      RER-LOG [    0.000000] Linux version\n";
        assert_eq!(
            mend(serial),
            "RER-PANIC-ON-OOPS 1\n\
             [    1.683216] clocksource: Switched\n\
             RER-LOG [    1.361911] rust_emergency_reset: resetting now: trigger sysrq-x\n\
             [    1.485978] tsc: Refined\n\
             RER-LOG [    0.000000] Linux version\n"
        );
    }

    #[test]
    fn a_line_cut_three_times_is_mended_whole() {
        let serial = "RER-TRIGGER dev-port re[    1.100000] a\n\
                      turned: op[    1.200000] b\n\
                      [    1.300000] c\n\
                      en: Operation not permitted[    1.400000] d\n\
                      \x20(errno 1)\n\
                      RER-DONE\n";
        assert_eq!(
            mend(serial),
            "RER-TRIGGER dev-port returned: open: Operation not permitted (errno 1)\n\
             [    1.100000] a\n\
             [    1.200000] b\n\
             [    1.300000] c\n\
             [    1.400000] d\n\
             RER-DONE\n"
        );
    }
}
