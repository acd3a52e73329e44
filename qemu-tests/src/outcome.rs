// SPDX-License-Identifier: GPL-2.0

//! The result of a run: how it ended ([`Ending`]) and what it left
//! ([`Outcome`]: the console, QMP's events and reset times, the vCPUs at the
//! end), with what a test asks of it ([`Outcome::saw_line`],
//! [`Outcome::line_starting`], [`Outcome::lock_reports`], ...) and its
//! assertions ([`Outcome::assert_reset_by`], [`Outcome::assert_alive`], ...).
//!
//! It only reads what [`Vm::finish`](crate::Vm::finish) collected: the VM is
//! gone by then, and nothing here talks to QEMU or the guest. Mending the
//! console is [`console`]'s.

use crate::{
    console,
    console::tail,
    VCpu,
    WHICH_BOOT, //
};
use std::{
    path::PathBuf,
    time::{
        Duration,
        SystemTime, //
    },
};

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// QMP reported `SHUTDOWN` with `guest: true` and `reason: guest-reset`;
    /// for a guest of several boots ([`Guest::boots`](crate::Guest::boots)),
    /// its last boot reset.
    GuestReset,
    /// QMP reported another `SHUTDOWN` (reason given).
    Shutdown(String),
    /// The guest printed [`DONE`](crate::DONE): the scenario ran to its end and
    /// the guest is alive.
    Done,
    /// Nothing of the above before the time limit: the VM was killed.
    TimedOut,
    /// QEMU exited on its own without a SHUTDOWN event (status given).
    Exited(Option<i32>),
}

/// The result of a run.
#[derive(Debug)]
pub struct Outcome {
    /// How it ended.
    pub ending: Ending,
    /// Everything the guest printed on its serial console.
    pub serial: String,
    /// Where the serial log was kept.
    pub log: PathBuf,
    /// From the start of QEMU to the ending.
    pub elapsed: Duration,
    /// QMP events by name, with QEMU's timestamps, in order.
    pub events: Vec<(String, SystemTime)>,
    /// QEMU's timestamps of the guest's resets, in order (see
    /// [`Outcome::guest_resets`]).
    pub guest_reset_times: Vec<SystemTime>,
    /// QEMU's view of the vCPUs when the run ended with the VM still running
    /// ([`Ending::TimedOut`], [`Ending::Done`]); empty otherwise, or when QEMU
    /// did not answer.
    pub vcpus_at_end: Vec<VCpu>,
    /// [`Outcome::serial`] mended ([`console::mend`]), made on first use.
    pub(crate) mended: std::sync::OnceLock<String>,
}

impl Outcome {
    /// QEMU's timestamps of the QMP events called `name`.
    pub fn event_times(&self, name: &str) -> Vec<SystemTime> {
        self.events
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, t)| *t)
            .collect()
    }

    /// From the guest's first [`MARK`](crate::MARK) to QMP's `SHUTDOWN` event
    /// of a guest reset, both timestamped by QEMU itself.
    pub fn reset_latency(&self) -> Option<Duration> {
        self.reset_latency_from("GUEST_CRASHLOADED")
    }

    /// From the first QMP event `mark` (e.g. `RTC_CHANGE` for
    /// [`RTC_MARK`](crate::RTC_MARK)) to QMP's `SHUTDOWN` event of a guest
    /// reset (the reset that ended the run).
    pub fn reset_latency_from(&self, mark: &str) -> Option<Duration> {
        if self.ending != Ending::GuestReset {
            return None;
        }
        let mark = *self.event_times(mark).first()?;
        self.guest_reset_times.last()?.duration_since(mark).ok()
    }

    /// How many times the guest reset, whatever QEMU did next: the resets after
    /// which the guest booted again ([`Guest::boots`](crate::Guest::boots); QMP
    /// `RESET` with `guest: true, reason: guest-reset`), plus the one that
    /// ended the run, if one did ([`Ending::GuestReset`]; QMP `SHUTDOWN`, same
    /// data). So a 1-boot guest that reset counts 1, as does a 2-boot guest
    /// whose second boot finished its scenario; a 2-boot guest whose both boots
    /// reset counts 2. Resets by the host (`guest: false`) do not count.
    ///
    /// In a guest of several boots, only the first reset of a boot whose
    /// `/init` asked [`WHICH_BOOT`] counts, so [`Outcome::events`] shows more
    /// `RESET`s than this: SeaBIOS (1.16, q35 and pc) answers every guest
    /// reset with a second one of its own some 20 ms later. QEMU does not map
    /// the BIOS ROM back at a reset, so SeaBIOS finds its shadow copy marked
    /// as having run POST, takes the resume path ("In 32bit resume",
    /// "Attempting a hard reboot" on its debug port), restores the ROM and
    /// resets the machine again. A boot that resets before its `/init` asks
    /// (a kernel dying at boot) is not counted either.
    pub fn guest_resets(&self) -> usize {
        self.guest_reset_times.len()
    }

    /// The console of boot `k` (from 1) of a guest of several boots
    /// ([`Guest::boots`](crate::Guest::boots)): from the line of the `k`-th
    /// [`WHICH_BOOT`] question to the line of the next one, or to the end for
    /// the last boot. Boot 1 starts at the start of the console, its kernel's
    /// messages included; a 1-boot guest (which asks nothing) is all boot 1.
    ///
    /// A boot's slice ends where the next boot's `/init` asks, so what the
    /// next boot's kernel printed while booting (and what the dying boot
    /// printed after the reset began, if anything got out) falls into the
    /// previous boot's slice: look for that boot's kernel messages there.
    /// Panics when the guest never asked for boot `k`.
    pub fn boot_console(&self, k: usize) -> &str {
        assert!(k >= 1, "boots are numbered from 1");
        let starts: Vec<usize> = self
            .serial
            .match_indices(WHICH_BOOT)
            .map(|(i, _)| self.serial[..i].rfind('\n').map_or(0, |nl| nl + 1))
            .collect();
        let start = if k == 1 {
            0
        } else {
            *starts.get(k - 1).unwrap_or_else(|| {
                panic!(
                    "boot {k}: the guest asked {WHICH_BOOT} {} times (log {})",
                    starts.len(),
                    self.log.display()
                )
            })
        };
        let end = starts.get(k).copied().unwrap_or(self.serial.len());
        &self.serial[start..end]
    }

    /// Whether the console shows `marker`.
    pub fn saw(&self, marker: &str) -> bool {
        self.serial.contains(marker)
    }

    /// Whether the console has `line` as a whole line, or as the whole
    /// message of a kernel line (after its `[    1.234567] ` stamp), once any
    /// kernel lines that landed inside a line were moved out
    /// ([`console::mended_console`]): the kernel prints asynchronously, and one
    /// of its lines sometimes splits a line of the scenario's (seen:
    /// `RER-PANIC-ON-OOPS 1[    1.683216] clocksource: ...`).
    pub fn saw_line(&self, line: &str) -> bool {
        self.mended().lines().any(|l| {
            l == line
                || (l.starts_with('[')
                    && l.split_once("] ")
                        .is_some_and(|(_, message)| message == line))
        })
    }

    /// The console with any kernel lines that landed inside a line moved
    /// out ([`console::mend`]); made once.
    pub fn mended(&self) -> &str {
        self.mended.get_or_init(|| console::mend(&self.serial))
    }

    /// Lines of the mended console ([`Outcome::mended`]) that contain
    /// `needle`: a kernel line that split a scenario's line is not part of it
    /// (seen in a CI run: `RER-INSMOD mode=[    2.029038] rer_scribble: ...`).
    pub fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.mended()
            .lines()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// The console lines that start a report of the kernel's lock and
    /// atomic-context checkers (`CONFIG_PROVE_LOCKING`, `CONFIG_DEBUG_LOCKDEP`,
    /// `CONFIG_DEBUG_ATOMIC_SLEEP`: the test kernel of `make check` has all
    /// three), and any `WARNING:` (every lockdep and RCU-usage report starts
    /// with one, and so does a `WARN_ON()` anywhere, lockdep's own
    /// `DEBUG_LOCKS_WARN_ON()` included). Every run asserts there are none,
    /// unless its guest expects them. RCU stall and soft-lockup reports are
    /// not among them: the fault matrix's spinning CPUs cause them on purpose.
    pub fn lock_reports(&self) -> Vec<&str> {
        const REPORTS: [&str; 5] = [
            "WARNING:",
            "DEBUG_LOCKS_WARN_ON",
            "BUG: sleeping function called from invalid context",
            "BUG: scheduling while atomic",
            "BUG: Invalid wait context",
        ];
        self.serial
            .lines()
            .filter(|l| REPORTS.iter().any(|r| l.contains(r)))
            .collect()
    }

    /// The one `RER-WRITE <label> ...` line of [`TRY_WRITE`](crate::TRY_WRITE).
    pub fn write_result(&self, label: &str) -> String {
        self.line_starting(&format!("RER-WRITE {label} "))
    }

    /// The one console line that starts with `prefix`, or a failed assertion.
    pub fn line_starting(&self, prefix: &str) -> String {
        let lines: Vec<&str> = self
            .serial
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{prefix}: {lines:?} (log {})",
            self.log.display()
        );
        lines[0].to_string()
    }

    /// The number that ends the one console line starting with `prefix`.
    pub fn number_after(&self, prefix: &str) -> i64 {
        let line = self.line_starting(prefix);
        let word = line.rsplit(' ').next().unwrap_or("").trim();
        word.parse()
            .unwrap_or_else(|_| panic!("no number at the end of {line:?}"))
    }

    /// The module's `resetting now: ...` lines, in order.
    pub fn reset_attempts(&self) -> Vec<&str> {
        self.lines_with("rust_emergency_reset: resetting now:")
    }

    /// Asserts that the guest reset and that the last attempt logged was by
    /// `method`, from `trigger`.
    pub fn assert_reset_by(&self, trigger: &str, method: &str) {
        self.assert_reset();
        let last = self.reset_attempts().last().map(|l| l.to_string());
        let want = format!("trigger {trigger}, method {method},");
        assert!(
            last.as_deref().is_some_and(|l| l.contains(&want)),
            "expected the last attempt to be '{want}', got {last:?} (log {})",
            self.log.display()
        );
    }

    /// [`Outcome::assert_reset_by`] for an NMI, which every CPU takes at
    /// once: the reset line is best effort there (the CPU that resets may find
    /// the console owned by the context the NMI interrupted on the other CPU;
    /// seen in about 1 run in 6 on fault 1, and once on a healthy guest in a
    /// CI run). A line that did reach the console must name `trigger` and
    /// `method`; the reset itself is QMP's.
    pub fn assert_reset_by_nmi_best_effort(&self, trigger: &str, method: &str) {
        self.assert_reset();
        let want = format!("trigger {trigger}, method {method},");
        match self.reset_attempts().last() {
            Some(l) => assert!(l.contains(&want), "{l} (log {})", self.log.display()),
            None => eprintln!(
                "reset, its log line did not reach the console (log {})",
                self.log.display()
            ),
        }
    }

    /// Asserts that [`SHOW_LOCKDOWN`](crate::SHOW_LOCKDOWN) showed lockdown
    /// `mode` (`none integrity [confidentiality]`).
    pub fn assert_lockdown(&self, mode: &str) {
        let line = self.line_starting("RER-LOCKDOWN ");
        assert!(
            line.contains(&format!("[{mode}]")),
            "not in lockdown {mode}: {line} (log {})",
            self.log.display()
        );
    }

    /// Asserts what [`lockdown_refusals`](crate::lockdown_refusals) must show
    /// of seed 000's rescue under lockdown (`name` for the messages): `iopl`
    /// and `ioperm` refused with `EPERM`, the write to the port device too,
    /// and the kernel's own `Lockdown:` line for each. Without lockdown every
    /// one of these would succeed (and reset the guest). The modules it tried
    /// are [`Outcome::assert_module_refused`]'s.
    pub fn assert_lockdown_refusals(&self, name: &str) {
        for how in ["iopl", "ioperm"] {
            assert_eq!(
                self.line_starting(&format!("RER-RESCUE {how} ")),
                format!("RER-RESCUE {how} refused: Operation not permitted"),
                "{name}"
            );
        }
        let devport = self.line_starting("RER-DEVPORT ");
        assert!(
            devport.starts_with("RER-DEVPORT rc=1 ") && devport.contains("Operation not permitted"),
            "{name}: {devport}"
        );
        for what in [
            "raw io port access is restricted",
            "/dev/mem,kmem,port is restricted",
        ] {
            assert!(
                self.lines_with("RER-KMSG").iter().any(|l| l.contains(what)),
                "{name}: no 'Lockdown: ... {what}' (log {})",
                self.log.display()
            );
        }
    }

    /// Asserts that the module [`lockdown_refusals`](crate::lockdown_refusals)
    /// tried as `label` did not load: `insmod` failed with `error` (as
    /// `strerror` says it), nothing of ours is in `/proc/modules`, and the
    /// kernel said why in its own `kernel_line` (the console's kernel lines
    /// and the `RER-KMSG` copies of its log both count).
    pub fn assert_module_refused(&self, label: &str, error: &str, kernel_line: &str) {
        let insmod = self.line_starting(&format!("RER-INSMOD {label} "));
        assert!(
            !insmod.starts_with(&format!("RER-INSMOD {label} rc=0 "))
                && insmod.contains(&format!(": {error} "))
                && insmod.ends_with("loaded=0"),
            "{label}: {insmod} (log {})",
            self.log.display()
        );
        assert!(
            !self.lines_with(kernel_line).is_empty(),
            "{label}: the kernel never said {kernel_line:?} (log {})",
            self.log.display()
        );
    }

    /// Asserts what [`Guest::seed_with`](crate::Guest::seed_with) must show:
    /// the module loaded, `reboot -f` stuck in D state, and the reset by the
    /// device's write, with the keyboard controller.
    pub fn assert_seed_reset(&self) {
        assert!(self.saw("RER-LOADED rc=0"), "log {}", self.log.display());
        assert!(
            self.saw("RER-REBOOT-STATE D"),
            "reboot -f not stuck (log {})",
            self.log.display()
        );
        self.assert_reset_by("/dev/emergency_reset", "kbd");
    }

    /// Asserts that the guest reset, naming the log otherwise.
    pub fn assert_reset(&self) {
        assert_eq!(
            self.ending,
            Ending::GuestReset,
            "expected a guest-reset; serial log: {}\n{}",
            self.log.display(),
            tail(&self.serial, 40)
        );
    }

    /// Asserts what [`UNLOAD_WHILE_OPEN`](crate::UNLOAD_WHILE_OPEN) must show:
    /// the open file holds a module reference, so rmmod is refused (busybox
    /// asks with `O_NONBLOCK`, hence `EAGAIN`), the file still reads, and after
    /// the close rmmod works.
    pub fn assert_unload_refused_while_open(&self) {
        assert!(
            self.saw(
                "RER-RMMOD-OPEN rc=1 rmmod: can't unload module 'rust_emergency_reset': \
                 Resource temporarily unavailable"
            ),
            "{:?}",
            self.lines_with("RER-RMMOD-OPEN")
        );
        assert!(self.saw("RER-READ-OPEN order: kbd,acpi,cf9,triple"));
        assert!(self.saw("RER-RMMOD-CLOSED rc=0"));
    }

    /// Asserts that the guest finished its scenario alive, without a reset.
    pub fn assert_alive(&self) {
        assert_eq!(
            self.ending,
            Ending::Done,
            "expected the guest alive at the end of its scenario; serial log: {}\n{}",
            self.log.display(),
            tail(&self.serial, 40)
        );
    }
}
