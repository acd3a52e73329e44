// SPDX-License-Identifier: GPL-2.0

//! A running QEMU ([`Vm`]): [`Vm::start`] (the kernel command line, QEMU's
//! command, which boots the kernel directly or, for a
//! [`Guest::secure_boot`] one, through [`firmware`]'s, the reader threads of
//! the console and QMP), [`Vm::boot`] with its
//! one retry of a kernel that never reached `/init`, the waits on the console
//! ([`Vm::wait_for`], ...), the input to the guest (the serial line,
//! [`Vm::sysrq_chord`]), the reports of the reader threads and the ending
//! ([`Vm::handle`]), and [`Vm::finish`], which makes the [`Outcome`]; [`run`]
//! does it all.
//!
//! A reset is concluded here only from QMP's events, the guest called alive
//! only from [`DONE`] on its console. What the guest runs and its initramfs
//! are [`Guest`]'s, the QMP commands [`qmp`](crate::qmp)'s, the network
//! [`netns`](crate::netns)'s; what a test concludes from the [`Outcome`] is
//! the [`Outcome`]'s.

use crate::{
    console::{
        floor_char,
        print_console, //
    },
    firmware,
    kernel_log::{
        self,
        RingAddrs,
        KERNEL_LOG_AT_RESET,
        PRINTK_RING, //
    },
    netns::make_netns,
    qemu_binary,
    qmp::{
        connect,
        socket_path, //
    },
    Ending,
    Guest,
    Inputs,
    Outcome,
    BOOTED,
    DONE,
    WHICH_BOOT,
    WHICH_BOOT_UNANSWERED, //
};
use serde_json::Value;
use std::{
    ffi::OsString,
    fs,
    io::{
        BufRead,
        BufReader,
        Read,
        Write, //
    },
    os::unix::net::UnixStream,
    path::{
        Path,
        PathBuf, //
    },
    process::{
        Child,
        ChildStdin,
        ChildStdout,
        Command,
        Stdio, //
    },
    sync::mpsc,
    thread,
    time::{
        Duration,
        Instant,
        SystemTime, //
    },
};

/// What the reader threads report.
pub(crate) enum Report {
    Serial(String),
    Qmp(Value),
    SerialClosed,
    QmpClosed,
}

/// A running QEMU, killed when dropped (a failing or panicking test included).
pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    pub(crate) qmp: UnixStream,
    /// QMP's socket ([`socket_path`]), removed with the VM.
    qmp_path: PathBuf,
    pub(crate) reports: mpsc::Receiver<Report>,
    serial: String,
    log: fs::File,
    pub(crate) log_path: PathBuf,
    started: Instant,
    deadline: Instant,
    pub(crate) ending: Option<Ending>,
    dir: PathBuf,
    echo: bool,
    expect_lock_reports: bool,
    expect_cfi_failure: bool,
    /// The kernel is `PREEMPT_RT` (Debian's `rt-amd64`): any `BUG:` line but
    /// the test modules' deliberate oops fails the run.
    preempt_rt: bool,
    /// [`Guest::log_at_reset`]: QEMU stops the guest at each of its resets so
    /// that its log is read from its RAM before it goes on.
    log_at_reset: bool,
    /// A boot of a [`Guest::log_at_reset`] guest reset and stopped, and more boots
    /// follow: its log is to be read and the guest reset and run again
    /// ([`Vm::read_log_and_go_on`]).
    stopped_at_reset: bool,
    /// The kernel's `struct printk_info` size ([`kernel_log::info_size`]).
    printk_info_size: usize,
    /// When `/init` said [`BOOTED`] (the first boot's), for the timings.
    booted_at: Option<Instant>,
    /// The guest's name and what it runs on, for the timings and retries
    /// (`target/guest-times.tsv`, `target/retries.tsv`).
    name: String,
    kernel_name: String,
    events: Vec<(String, SystemTime)>,
    serial_closed: bool,
    pub(crate) qmp_closed: bool,
    /// The last QMP command id sent, and the answers not yet claimed.
    pub(crate) qmp_id: u64,
    pub(crate) answers: Vec<Value>,
    /// [`Guest::boots`].
    boots: u32,
    /// QEMU's timestamps of the guest resets so far ([`Outcome::guest_resets`]).
    guest_reset_times: Vec<SystemTime>,
    /// The [`WHICH_BOOT`] questions answered so far, and where on the console
    /// to look for the next one.
    questions: usize,
    question_scan: usize,
    /// The network namespace of a guest with a network ([`Guest::network`]).
    pub(crate) netns: Option<String>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.qmp_path);
        if let Some(ns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Vm {
    /// Packs the initramfs and boots `guest`.
    pub fn start(guest: &Guest, inputs: &Inputs) -> Vm {
        let dir = inputs
            .target_dir("vms")
            .join(format!("{}-{}", guest.name, std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let logs = inputs.target_dir("serial-logs");
        fs::create_dir_all(&logs).unwrap();
        let log_path = logs.join(format!("{}.log", guest.name));

        let qemu_log = log_path.with_extension("qemu.log");
        let initramfs = dir.join("initramfs.cpio");
        fs::write(&initramfs, guest.initramfs(inputs)).unwrap();

        let qmp_path = socket_path();
        let cmdline = kernel_cmdline(guest);
        // The kernel directly, or through the firmware of a Secure Boot machine.
        let kernel_args: Vec<OsString> = match &guest.secure_boot {
            Some(sb) => firmware::qemu_args(sb, inputs, &dir, &initramfs, &cmdline),
            None => vec![
                "-kernel".into(),
                inputs.kernel.clone().into(),
                "-initrd".into(),
                initramfs.clone().into(),
                "-append".into(),
                cmdline.into(),
            ],
        };
        let netns = guest.net.as_ref().map(|_| make_netns());
        let mut child = qemu_command(guest, inputs, netns.as_deref(), &qmp_path, &kernel_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // QEMU's own messages go next to the serial log.
            .stderr(fs::File::create(&qemu_log).unwrap())
            .spawn()
            .expect("cannot start qemu-system-x86_64: run scripts/setup.sh");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();

        // QEMU waits for the QMP client before it runs the guest: no event is missed.
        let qmp = connect(&qmp_path, &mut child, &qemu_log);
        let reports = spawn_readers(stdout, &qmp);

        let started = Instant::now();
        let mut vm = Vm {
            child,
            stdin,
            qmp,
            qmp_path,
            reports,
            serial: String::new(),
            log: fs::File::create(&log_path).unwrap(),
            log_path,
            started,
            deadline: started + guest.timeout,
            ending: None,
            dir,
            echo: false,
            expect_lock_reports: guest.expect_lock_reports,
            expect_cfi_failure: guest.expect_cfi_failure,
            preempt_rt: inputs.has_config("CONFIG_PREEMPT_RT"),
            log_at_reset: guest.log_at_reset,
            stopped_at_reset: false,
            printk_info_size: kernel_log::info_size(
                inputs.has_config("CONFIG_PRINTK_EXECUTION_CTX"),
            ),
            booted_at: None,
            name: guest.name.clone(),
            kernel_name: inputs.kernel_name.clone(),
            events: Vec::new(),
            serial_closed: false,
            qmp_closed: false,
            qmp_id: 0,
            answers: Vec::new(),
            boots: guest.boots,
            guest_reset_times: Vec::new(),
            questions: 0,
            question_scan: 0,
            netns,
        };
        vm.qmp_command("qmp_capabilities", serde_json::json!({}));
        vm
    }

    /// Starts `guest` and waits until its `/init` runs ([`BOOTED`]).
    ///
    /// For a guest of several boots ([`Guest::boots`]) this is the first boot's
    /// `/init`; what follows applies to the first boot only.
    ///
    /// A kernel that hangs before `/init` is booted once more, and the run
    /// says so (the first try's log stays as `NAME.first-try.log`). Nothing of
    /// this project has run at that point, and TCG on a loaded host does that
    /// now and then: the early PIT calibration of the TSC sometimes fails and
    /// the slower lockdep kernel hangs (seen on microvm). A kernel that panics
    /// before `/init` is not booted again: that is a finding. (Under QEMU 7.2
    /// it was a TCG fault, retried then: Debian's kernel took an `int3` Oops
    /// while patching a static branch during boot, about 1 boot in 200; QEMU
    /// 10 runs such patching right: see the README's "QEMU".)
    pub fn boot(guest: &Guest, inputs: &Inputs) -> Vm {
        let mut vm = Vm::start(guest, inputs);
        vm.wait_until(|serial| serial.contains(BOOTED) || serial.contains("Kernel panic"));
        if vm.serial.contains(BOOTED) || vm.serial.contains("Kernel panic") {
            return vm;
        }
        // The first try's log stays, beside the second's; the retry is counted
        // (make check's report lists it) and named in the test's output.
        let first = vm.log_path.with_extension("first-try.log");
        let _ = fs::rename(&vm.log_path, &first);
        eprintln!(
            "RETRY {} (test {}): the guest kernel never reached /init (log {}); booting once more",
            guest.name,
            test_name(),
            first.display()
        );
        record(
            "retries.tsv",
            &[
                &inputs.kernel_name,
                &test_name(),
                &guest.name,
                "the kernel never reached /init",
                &first.display().to_string(),
            ],
        );
        drop(vm);
        Vm::start(guest, inputs)
    }

    /// Where test module `module`'s code is, from the guest's
    /// [`show_text`](crate::show_text) line (waited for up to 20 s): its
    /// `.text` and the page after (a test module's code is a few hundred
    /// bytes), for [`VCpu::spins_in`](crate::VCpu::spins_in). Fails the test
    /// without that line.
    pub fn module_text(&mut self, module: &str) -> std::ops::Range<u64> {
        let prefix = format!("RER-TEXT {module} 0x");
        self.line_starting_within(&prefix, Duration::from_secs(20))
            .and_then(|l| u64::from_str_radix(&l[prefix.len()..], 16).ok())
            .map(|start| start..start + 0x1000)
            .unwrap_or_else(|| panic!("no {prefix} line; log {}", self.log_path.display()))
    }

    /// Waits up to `limit` for a whole line (ended by its newline) that
    /// starts with `prefix`, and returns it without the newline; `None` if
    /// none came.
    pub fn line_starting_within(&mut self, prefix: &str, limit: Duration) -> Option<String> {
        let whole = |serial: &str| {
            serial
                .split_inclusive('\n')
                .find(|l| l.starts_with(prefix) && l.ends_with('\n'))
                .map(|l| l.trim_end().to_string())
        };
        let saved = self.deadline;
        self.deadline = saved.min(Instant::now() + limit);
        self.wait_until(|serial| whole(serial).is_some());
        self.deadline = saved;
        whole(&self.serial)
    }

    /// Where the serial log is kept.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Alt+SysRq+`key` on the guest's PS/2 keyboard.
    pub fn sysrq_chord(&mut self, key: &str) {
        let keys: Vec<Value> = ["alt", "sysrq", key]
            .iter()
            .map(|k| serde_json::json!({"type": "qcode", "data": k}))
            .collect();
        self.qmp_command(
            "send-key",
            serde_json::json!({ "keys": keys, "hold-time": 200 }),
        );
    }

    /// A break on the serial console, then `key`: sysrq over a serial line.
    pub fn serial_sysrq(&mut self, key: u8) {
        self.qmp_command("chardev-send-break", serde_json::json!({"id": "serial0"}));
        thread::sleep(Duration::from_millis(300));
        self.serial_write(&[key]);
    }

    /// Writes raw bytes to the guest's serial console.
    pub fn serial_write(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(bytes);
            let _ = stdin.flush();
        }
    }

    /// Answers each [`WHICH_BOOT`] question on the console not answered yet
    /// with its number: the `k`-th question is boot `k`'s. The console is
    /// searched from where the last search stopped, less the length of the
    /// question, so that one split across reads is found once it is whole.
    ///
    /// Before it answers the last boot, it has QEMU stop at the next guest
    /// reset instead of rebooting, as `-no-reboot` does (QMP `set-action`).
    /// Not earlier: after a guest reset, the firmware resets once more
    /// ([`Outcome::guest_resets`]), and that must reboot.
    fn answer_which_boot(&mut self) {
        while let Some(i) = self.serial[self.question_scan..].find(WHICH_BOOT) {
            self.question_scan += i + WHICH_BOOT.len();
            self.questions += 1;
            let boot = self.questions;
            // With the log read at a reset, every boot stops at its reset.
            if boot == self.boots as usize || self.log_at_reset {
                self.qmp_send("set-action", serde_json::json!({"reboot": "shutdown"}));
            }
            self.serial_write(format!("{boot}\n").as_bytes());
        }
        let rescan = self.serial.len().saturating_sub(WHICH_BOOT.len() - 1);
        self.question_scan = floor_char(&self.serial, rescan.max(self.question_scan));
    }

    /// Handles one report; sets `ending` when the run ended.
    pub(crate) fn handle(&mut self, report: Report) {
        match report {
            Report::Serial(text) => {
                let _ = self.log.write_all(text.as_bytes());
                if self.echo {
                    print_console(&text);
                }
                self.serial.push_str(&text);
                let tail_start = self
                    .serial
                    .len()
                    .saturating_sub(text.len() + DONE.len().max(BOOTED.len()) + 1);
                let fresh = &self.serial[floor_char(&self.serial, tail_start)..];
                if fresh.lines().any(|l| l.trim_end() == DONE) {
                    self.ending = Some(Ending::Done);
                }
                if self.booted_at.is_none() && fresh.contains(BOOTED) {
                    self.booted_at = Some(Instant::now());
                }
                if self.boots > 1 {
                    self.answer_which_boot();
                }
            }
            Report::Qmp(v) => {
                if v.get("id").is_some() {
                    self.answers.push(v);
                    return;
                }
                let Some(name) = v["event"].as_str() else {
                    return;
                };
                let ts = &v["timestamp"];
                let at = SystemTime::UNIX_EPOCH
                    + Duration::from_secs(ts["seconds"].as_u64().unwrap_or(0))
                    + Duration::from_micros(ts["microseconds"].as_u64().unwrap_or(0));
                self.events.push((name.to_string(), at));
                let reason = v["data"]["reason"].as_str().unwrap_or("").to_string();
                let guest_reset = reason == "guest-reset" && v["data"]["guest"] == true;
                // A guest of several boots rebooted (never with -no-reboot). Only the
                // first reset of a boot that reached /init counts: SeaBIOS's own
                // reset right after a guest reset does not (Outcome::guest_resets).
                if name == "RESET" && guest_reset && self.guest_reset_times.len() < self.questions {
                    self.guest_reset_times.push(at);
                    if self.guest_reset_times.len() >= self.boots as usize {
                        // The last boot rebooted: the set-action came too late. Stop here.
                        self.ending = Some(Ending::GuestReset);
                        self.qmp_send("quit", serde_json::json!({}));
                    }
                }
                // A guest whose log is read at a reset stopped there, boots to go.
                if name == "SHUTDOWN"
                    && guest_reset
                    && self.log_at_reset
                    && self.guest_reset_times.len() + 1 < self.boots as usize
                {
                    self.guest_reset_times.push(at);
                    self.stopped_at_reset = true;
                    return;
                }
                // After the `quit` above, QEMU's own SHUTDOWN changes nothing.
                if name == "SHUTDOWN" && self.ending != Some(Ending::GuestReset) {
                    self.ending = Some(if guest_reset {
                        self.guest_reset_times.push(at);
                        Ending::GuestReset
                    } else {
                        Ending::Shutdown(reason)
                    });
                }
            }
            // QEMU exited. Its last QMP events (SHUTDOWN) may still be on their
            // way when the console closes: decide only once both are closed.
            Report::SerialClosed | Report::QmpClosed => {
                if matches!(report, Report::SerialClosed) {
                    self.serial_closed = true;
                } else {
                    self.qmp_closed = true;
                }
                if self.ending.is_none() && self.serial_closed && self.qmp_closed {
                    let status = self.child.wait().ok().and_then(|s| s.code());
                    self.ending = Some(Ending::Exited(status));
                }
            }
        }
    }

    /// Waits until the console shows `marker` (returns true) or the run ends or
    /// times out (returns false).
    pub fn wait_for(&mut self, marker: &str) -> bool {
        self.wait_until(|serial| serial.contains(marker))
    }

    /// Waits until `done(console so far)` (returns true) or the run ends or
    /// times out (returns false).
    fn wait_until(&mut self, done: impl Fn(&str) -> bool) -> bool {
        loop {
            if done(&self.serial) {
                return true;
            }
            if self.ending.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            match self.reports.recv_timeout(self.deadline - now) {
                Ok(r) => {
                    self.handle(r);
                    self.read_log_and_go_on();
                }
                Err(_) => return false,
            }
        }
    }

    /// After a boot of a [`Guest::log_at_reset`] guest stopped at its reset with more
    /// boots to go: reads its log, then resets the guest and runs it again,
    /// rebooting at the firmware's own reset that follows (see
    /// [`Outcome::guest_resets`]) until the next boot's `/init` asks which
    /// boot it is.
    fn read_log_and_go_on(&mut self) {
        if !std::mem::take(&mut self.stopped_at_reset) {
            return;
        }
        self.read_log_at_reset();
        self.qmp_command("set-action", serde_json::json!({"reboot": "reset"}));
        let resets = |vm: &Vm| vm.events.iter().filter(|(n, _)| n == "RESET").count();
        let before = resets(self);
        self.qmp_command("system_reset", serde_json::json!({}));
        // QEMU resets the machine after it answered, and runs it again only after that.
        let until = Instant::now() + Duration::from_secs(10);
        while resets(self) == before {
            let left = until.checked_duration_since(Instant::now());
            match left.map(|left| self.reports.recv_timeout(left)) {
                Some(Ok(r)) => self.handle(r),
                _ => panic!(
                    "QMP system_reset: no RESET event within 10 s; log {}",
                    self.log_path.display()
                ),
            }
        }
        self.qmp_command("cont", serde_json::json!({}));
    }

    /// Adds to the console, after a line saying so, the records of the
    /// stopped guest's log that the console did not show, as the console
    /// prints them ([`kernel_log`](crate::kernel_log)), so that a test reads
    /// them as it reads the console. Fails the test when the log cannot be
    /// read: on a `PREEMPT_RT` kernel, the reset path's lines are only there.
    fn read_log_at_reset(&mut self) {
        let line = self
            .serial
            .lines()
            .rev()
            .find(|l| l.starts_with(PRINTK_RING));
        let Some(addrs) = line.and_then(RingAddrs::parse) else {
            panic!(
                "log at reset: no {PRINTK_RING:?} line with the log's addresses; log {}",
                self.log_path.display()
            );
        };
        let dump = self.dir.join("ram");
        let size = self.printk_info_size;
        let log = kernel_log::read_log(&addrs, size, |at, len| self.read_ram(at, len, &dump))
            .unwrap_or_else(|e| {
                panic!(
                    "log at reset: the kernel's log in the guest's RAM: {e}; log {}",
                    self.log_path.display()
                )
            });
        let missing: Vec<String> = log
            .iter()
            .flat_map(kernel_log::Record::console_lines)
            .filter(|l| !self.serial.contains(l.as_str()))
            .collect();
        let text = format!(
            "\n{KERNEL_LOG_AT_RESET} ({} records, {} lines the console did not show):\n{}",
            log.len(),
            missing.len(),
            missing.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
        let _ = self.log.write_all(text.as_bytes());
        self.serial.push_str(&text);
    }

    /// The guest's console so far.
    pub fn console(&self) -> &str {
        &self.serial
    }

    /// Copies the guest's console to stdout, each line prefixed with `guest| `.
    pub fn echo_console(&mut self, on: bool) {
        self.echo = on;
    }

    /// Like [`Vm::wait_for`], but gives up after `limit`.
    pub fn wait_for_within(&mut self, marker: &str, limit: Duration) -> bool {
        let saved = self.deadline;
        self.deadline = saved.min(Instant::now() + limit);
        let seen = self.wait_for(marker);
        self.deadline = saved;
        seen
    }

    /// [`Vm::finish`], with the time limit brought forward to `limit` from
    /// now: for a guest whose verdict is what it does (or does not) within
    /// that long after an event the test has seen.
    pub fn finish_within(mut self, limit: Duration) -> Outcome {
        self.deadline = self.deadline.min(Instant::now() + limit);
        self.finish()
    }

    /// Runs until the guest resets, shuts down, prints [`DONE`], or the time limit.
    pub fn finish(mut self) -> Outcome {
        while self.ending.is_none() {
            let now = Instant::now();
            if now >= self.deadline {
                self.ending = Some(Ending::TimedOut);
                break;
            }
            match self.reports.recv_timeout(self.deadline - now) {
                Ok(r) => {
                    self.handle(r);
                    self.read_log_and_go_on();
                }
                Err(mpsc::RecvTimeoutError::Timeout) => self.ending = Some(Ending::TimedOut),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.ending = Some(Ending::Exited(None))
                }
            }
        }
        let elapsed = self.started.elapsed();
        let boot = self.booted_at.map_or(elapsed, |b| b - self.started);
        record(
            "guest-times.tsv",
            &[
                &self.kernel_name,
                &test_name(),
                &self.name,
                &boot.as_millis().to_string(),
                &(elapsed - boot).as_millis().to_string(),
            ],
        );
        // A last reset where QEMU stopped the guest for its log (log_at_reset).
        if self.log_at_reset && self.ending == Some(Ending::GuestReset) {
            self.read_log_at_reset();
        }
        // The ending stays as decided, whatever QMP reports meanwhile.
        let decided = self.ending.clone();
        let vcpus_at_end = match decided {
            Some(Ending::TimedOut | Ending::Done) => self.vcpus_within(Duration::from_secs(3)),
            _ => Vec::new(),
        };
        self.ending = decided;
        if self.ending == Some(Ending::TimedOut) {
            // For the diagnosis of a hung run: QEMU's state and where each vCPU is.
            let wait = Duration::from_secs(3);
            let status = self.qmp_exchange("query-status", &serde_json::json!({}), wait);
            let registers = self.qmp_exchange(
                "human-monitor-command",
                &serde_json::json!({"command-line": "info registers -a"}),
                wait,
            );
            for answer in [status, registers] {
                let text = match answer {
                    None => "QEMU does not answer QMP".to_string(),
                    Some(a) => match a["return"].as_str() {
                        Some(s) => s
                            .lines()
                            .filter(|l| l.starts_with("CPU#") || l.starts_with("RIP="))
                            .collect::<Vec<_>>()
                            .join("\n"),
                        None => a.to_string(),
                    },
                };
                let _ = writeln!(self.log, "\n[harness] timed out; QEMU says:\n{text}");
            }
        }
        // Drain what the console printed before the end (the last log lines),
        // and the QMP events QEMU sent before it was killed (one right before
        // RER-DONE may still be on its way): the ending stays as decided.
        let _ = self.child.kill();
        while let Ok(r) = self.reports.recv_timeout(Duration::from_millis(200)) {
            match r {
                Report::Serial(text) => {
                    let _ = self.log.write_all(text.as_bytes());
                    self.serial.push_str(&text);
                }
                Report::Qmp(v) => {
                    if let Some(name) = v["event"].as_str() {
                        let ts = &v["timestamp"];
                        let at = SystemTime::UNIX_EPOCH
                            + Duration::from_secs(ts["seconds"].as_u64().unwrap_or(0))
                            + Duration::from_micros(ts["microseconds"].as_u64().unwrap_or(0));
                        self.events.push((name.to_string(), at));
                    }
                }
                Report::SerialClosed | Report::QmpClosed => {}
            }
        }
        let out = Outcome {
            ending: self.ending.clone().unwrap(),
            serial: std::mem::take(&mut self.serial),
            log: self.log_path.clone(),
            elapsed,
            events: std::mem::take(&mut self.events),
            guest_reset_times: std::mem::take(&mut self.guest_reset_times),
            vcpus_at_end,
            mended: std::sync::OnceLock::new(),
        };
        assert!(
            !out.saw(WHICH_BOOT_UNANSWERED),
            "the guest's /init got no answer to {WHICH_BOOT}; log {}",
            out.log.display()
        );
        let cfi = out.lines_with("CFI failure at");
        if self.expect_cfi_failure {
            assert!(
                !cfi.is_empty(),
                "expected a CFI failure; log {}",
                out.log.display()
            );
        } else {
            assert!(
                cfi.is_empty(),
                "kCFI: an indirect call's target has the wrong type: {cfi:?}; log {}",
                out.log.display()
            );
        }
        if self.preempt_rt && !self.expect_lock_reports {
            // Under PREEMPT_RT a sleeping lock taken where nothing may sleep shows as
            // a BUG of its own kind; the test modules' oopses are NULL dereferences.
            let bugs: Vec<&str> = out
                .lines_with("BUG:")
                .into_iter()
                .filter(|l| !l.contains("BUG: kernel NULL pointer dereference"))
                .collect();
            assert!(
                bugs.is_empty(),
                "PREEMPT_RT: {bugs:?}; log {}",
                out.log.display()
            );
        }
        if self.expect_lock_reports {
            assert!(
                !out.lock_reports().is_empty(),
                "expected a lockdep report; log {}",
                out.log.display()
            );
        } else {
            let reports = out.lock_reports();
            assert!(
                reports.is_empty(),
                "lockdep / atomic-context reports {reports:?}; log {}",
                out.log.display()
            );
        }
        out
    }
}

/// The test this thread runs: libtest names each test's thread after it
/// (`main` outside a test).
fn test_name() -> String {
    thread::current().name().unwrap_or("main").to_string()
}

/// Appends one line of tab-separated `fields` to `target/NAME`, for `make
/// check`'s report (`src/bin/report.rs`). One `write` of a short line on a
/// file opened to append: the lines of tests running at once do not mix.
pub(crate) fn record(name: &str, fields: &[&str]) {
    let line = fields.join("\t").replace('\n', " ") + "\n";
    if let Ok(mut f) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(crate::inputs::target_dir().join(name))
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// The guest kernel's command line: the serial console, `rer_guest=1` (which
/// `/init` checks), `panic=0`, `tsc=reliable`, `no_timer_check`, then [`Guest::append`]; on
/// microvm also the TSC's rate.
fn kernel_cmdline(guest: &Guest) -> String {
    // `tsc=reliable`: no clocksource watchdog. In 7.3 its cross-CPU skew check waits,
    // interrupts off, for a remote CPU with a timeout read from the timekeeping
    // clocksource; at boot that is still jiffies, which stands still then. When the
    // switch to tsc-early (stop_machine(): every other CPU spins, interrupts off)
    // starts meanwhile, neither side ever goes on. Seen under TCG on a loaded host
    // (QEMU showed CPU 0 in watchdog_check_skew, the others in stop_machine_yield,
    // after "e820: register RAM buffer resource"), about 1 boot in 200; twice in a
    // row once. TCG's TSC is the host's clock: reliable.
    // `no_timer_check`: no check that the IO-APIC timer ticks, as on KVM, where the
    // kernel sets it itself. The check waits a few TSC-timed milliseconds for
    // timer interrupts; a vCPU that TCG runs on a loaded host gets the TSC's time
    // but no ticks meanwhile, and the kernel panics: "IO-APIC + timer doesn't
    // work!" (seen in a cold CI-like run on Debian's kernel, before /init).
    let mut cmdline = format!(
        "console=ttyS0 rer_guest=1 panic=0 tsc=reliable no_timer_check{}",
        guest.append
    );
    if guest.machine.starts_with("microvm") {
        // microvm has neither HPET nor ACPI PM timer: when the PIT calibration of the
        // TSC fails under host load, the kernel marks the TSC unstable, and then
        // calibrate_delay() waits for a tick that never comes, and calibrate_APIC_clock(),
        // with interrupts off and no TSC rate, for a jiffy that never passes (both seen
        // stuck). Give it the TSC's rate (the host's: TCG's TSC runs at it) and the loops
        // per jiffy instead.
        if let Some(mhz) = host_mhz() {
            cmdline += &format!(
                " tsc_early_khz={} lpj={}",
                (mhz * 1e3) as u64,
                (mhz * 1e6 / 250.0) as u64
            );
        }
    }
    cmdline
}

/// QEMU's command for `guest`, without its stdio: TCG, the machine and CPUs,
/// the serial console on stdio, QMP on `qmp_path` (QEMU waits for the client
/// before it runs the guest), `kernel_args` (the kernel with the initramfs and
/// command line, or the firmware that boots them); for a guest with a network,
/// inside the namespace `netns` with a virtio NIC on its tap.
fn qemu_command(
    guest: &Guest,
    inputs: &Inputs,
    netns: Option<&str>,
    qmp_path: &Path,
    kernel_args: &[OsString],
) -> Command {
    let binary = qemu_binary();
    // QEMU runs inside the namespace, where it opens the tap.
    let mut qemu = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, &binary]);
            c.args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]);
            c.args(["-device", "virtio-net-pci,netdev=n0,romfile="]);
            c
        }
        None => Command::new(&binary),
    };
    qemu.args(["-accel", &inputs.accel, "-machine", &guest.machine])
        .args(["-smp", &guest.cpus.to_string()])
        .args(["-m", &format!("{}M", guest.memory_mib)])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        // A guest of several boots reboots at a reset, until its last boot.
        .args(if guest.boots == 1 {
            &["-no-reboot"][..]
        } else {
            &[]
        })
        .args(["-serial", "stdio"])
        // A guest whose log is read at a reset stops there (kernel_log).
        .args(if guest.log_at_reset {
            &["-action", "shutdown=pause"][..]
        } else {
            &[]
        })
        .args(if guest.pvpanic {
            &["-device", "pvpanic"][..]
        } else {
            &[]
        })
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=on", qmp_path.display()))
        .args(kernel_args);
    qemu
}

/// Starts the reader threads, of the console (QEMU's `stdout`) and of QMP (a
/// clone of `qmp`), which report to the receiver returned.
fn spawn_readers(stdout: ChildStdout, qmp: &UnixStream) -> mpsc::Receiver<Report> {
    let (tx, reports) = mpsc::channel();
    let serial_tx = tx.clone();
    thread::spawn(move || read_serial(stdout, serial_tx));
    let qmp_reader = qmp.try_clone().unwrap();
    thread::spawn(move || read_qmp(qmp_reader, tx));
    reports
}

/// The console's reader thread: QEMU's stdout as text, until it closes.
fn read_serial(mut stdout: ChildStdout, serial_tx: mpsc::Sender<Report>) {
    let mut buf = [0u8; 4096];
    loop {
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = serial_tx.send(Report::SerialClosed);
                return;
            }
            Ok(n) => {
                // The guest's tty writes CRLF; tests match on plain lines.
                let text = String::from_utf8_lossy(&buf[..n]).replace('\r', "");
                if serial_tx.send(Report::Serial(text)).is_err() {
                    return;
                }
            }
        }
    }
}

/// QMP's reader thread: each line as JSON, until the socket closes.
fn read_qmp(qmp_reader: UnixStream, tx: mpsc::Sender<Report>) {
    for line in BufReader::new(qmp_reader).lines() {
        let Ok(line) = line else { break };
        if let Ok(v) = serde_json::from_str::<Value>(&line) {
            if tx.send(Report::Qmp(v)).is_err() {
                return;
            }
        }
    }
    let _ = tx.send(Report::QmpClosed);
}

/// The host's clock rate in MHz, from /proc/cpuinfo: a TCG guest's TSC runs
/// at it. Both kernels under test have `CONFIG_HZ=250`, so loops per jiffy
/// are this in Hz / 250.
fn host_mhz() -> Option<f64> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Boots `guest` and runs it to its end ([`Vm::boot`], [`Vm::finish`]).
pub fn run(guest: &Guest, inputs: &Inputs) -> Outcome {
    Vm::boot(guest, inputs).finish()
}
