// SPDX-License-Identifier: GPL-2.0

//! QEMU harness for `rust_emergency_reset`.
//!
//! A test describes a guest ([`Guest`]): the machine, the CPUs, and a shell
//! scenario that runs as the guest's `/init` after the boot. The harness packs
//! busybox, the scenario and the modules into an initramfs, boots the test
//! kernel under TCG with `-no-reboot`, records the serial console, and watches
//! QMP. A reset is only ever concluded from QMP's
//! `SHUTDOWN {"guest": true, "reason": "guest-reset"}` event; a guest is only
//! ever called alive from a marker it printed on its console.
//!
//! Modules are loaded only by the guest's `/init`, which refuses to run unless
//! it is PID 1 of a kernel booted with `rer_guest=1`: nothing here loads a
//! module on the host.
//!
//! Inputs come from the environment (`make check` sets them):
//! `RER_KDIR` (the tree the modules were built against), `RER_MODULE`
//! (`rust_emergency_reset.ko`), `RER_TEST_MODULES` (the directory of the
//! deliberately broken modules), and for a kernel other than the project's test
//! kernel `RER_KERNEL` (the image to boot) with `RER_KERNEL_NAME` (its release,
//! e.g. `7.3.4+deb13-amd64` for Debian's own). Serial logs are kept in
//! `target/serial-logs/<kernel>/<test>.log`.

use serde_json::Value;
use std::{
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

mod cpio;
pub mod matrix;

/// The marker the guest prints once `/init` starts running the scenario.
pub const BOOTED: &str = "RER-BOOTED";
/// The marker a scenario prints when it has finished and the guest is alive.
pub const DONE: &str = "RER-DONE";

/// Shell function for scenarios: `try_write LABEL CONTENT [USER]` writes
/// CONTENT to the device (as USER if given) and prints
/// `RER-WRITE LABEL rc=<status> ms=<the write's duration, guest clock> <error
/// message>`; see [`Outcome::write_result`]. It prints only after a pause: the
/// kernel writes the module's refusal line to the console asynchronously, and
/// one landing inside the result line would split it (seen once).
pub const TRY_WRITE: &str = r#"
try_write() {
	t0=$(awk '{ printf "%d", $1 * 1000 }' /proc/uptime)
	if [ -z "$3" ]; then
		sh -c "echo -n '$2' > /dev/emergency_reset" 2>/tmp/err
	else
		su "$3" -s /bin/sh -c "echo -n '$2' > /dev/emergency_reset" 2>/tmp/err
	fi
	rc=$?
	ms=$(( $(awk '{ printf "%d", $1 * 1000 }' /proc/uptime) - t0 ))
	sleep 0.5
	echo "RER-WRITE $1 rc=$rc ms=$ms $(cat /tmp/err)"
}
"#;

/// Guest shell commands for seed 000's fault: load the module that oopses
/// holding `system_transition_mutex`, and leave a `reboot -f` stuck behind
/// the dead lock holder; prints `RER-REBOOT-STATE <state> pid=<pid>` 5 s later
/// (`D`: stuck). `$REBOOT_PID` names the reboot afterwards. Needs the test
/// module `rer_oops_transition` in the guest.
pub const STUCK_REBOOT: &str = r#"
insmod /modules/rer_oops_transition.ko
echo "RER-OOPS-DONE insmod-status=$?"
reboot -f &
REBOOT_PID=$!
sleep 5
echo "RER-REBOOT-STATE $(cut -d' ' -f3 /proc/$REBOOT_PID/stat) pid=$REBOOT_PID"
"#;

/// The lockdown modes a Secure Boot kernel can be in (kernel parameter `lockdown=`).
pub const LOCKDOWN_MODES: [&str; 2] = ["integrity", "confidentiality"];

/// Guest shell commands: mount securityfs and print the lockdown line, for
/// [`Outcome::assert_lockdown`].
pub const SHOW_LOCKDOWN: &str = "mount -t securityfs securityfs /sys/kernel/security\n\
     echo \"RER-LOCKDOWN $(cat /sys/kernel/security/lockdown)\"\n";

/// Guest shell command to run between printing something the test checks and
/// a reset: the console's UART sends what userspace printed from interrupts,
/// and a reset with interrupts off loses what it has not sent yet.
pub const DRAIN: &str = "sleep 0.5";

/// Guest shell command that makes QEMU emit a timestamped QMP event right
/// now: bit 1 ("crash kernel loaded") to the pvpanic device's port 0x505,
/// through /dev/port. QEMU emits `GUEST_CRASHLOADED` in the vCPU thread at the
/// write and lets the guest run on. Needs [`Guest::pvpanic`].
pub const MARK: &str = "printf '\\002' | dd of=/dev/port bs=1 seek=1285 count=1 2>/dev/null";

/// Guest shell command for a timestamped QMP event where [`MARK`] cannot be
/// used (lockdown refuses `/dev/port`): setting the CMOS RTC, which QEMU
/// reports as `RTC_CHANGE` from the vCPU thread.
pub const RTC_MARK: &str = "hwclock -w -u";

/// Where the inputs of the tests are, from the environment `make check` sets.
#[derive(Clone, Debug)]
pub struct Inputs {
    /// The kernel image to boot.
    pub kernel: PathBuf,
    /// Which kernel that is: `test` for the project's test kernel, else the
    /// release of the kernel (e.g. `7.3.4+deb13-amd64`).
    pub kernel_name: String,
    /// `rust_emergency_reset.ko`.
    pub module: PathBuf,
    /// The directory holding the deliberately broken test modules.
    pub test_modules: PathBuf,
}

impl Inputs {
    /// Reads the inputs from the environment. Panics with what to do when one is missing.
    pub fn from_env() -> Inputs {
        let var = |name: &str| -> PathBuf {
            match std::env::var_os(name) {
                Some(v) => PathBuf::from(v),
                None => panic!("{name} is not set: run the QEMU tests with `make check`"),
            }
        };
        let (kernel, kernel_name) = match std::env::var_os("RER_KERNEL") {
            Some(image) => (
                PathBuf::from(image),
                std::env::var("RER_KERNEL_NAME").expect("RER_KERNEL_NAME names RER_KERNEL"),
            ),
            None => (
                var("RER_KDIR").join("arch/x86/boot/bzImage"),
                "test".to_string(),
            ),
        };
        let inputs = Inputs {
            kernel,
            kernel_name,
            module: var("RER_MODULE"),
            test_modules: var("RER_TEST_MODULES"),
        };
        for p in [&inputs.kernel, &inputs.module, &inputs.test_modules] {
            assert!(
                p.exists(),
                "{} does not exist: run `make check`",
                p.display()
            );
        }
        inputs
    }

    /// Whether the kernel under test is Debian's own (`+debNN-` in its release).
    pub fn is_debian(&self) -> bool {
        self.kernel_name.contains("+deb")
    }

    /// A directory under this crate's `target/` for what runs on this kernel.
    pub fn target_dir(&self, what: &str) -> PathBuf {
        target_dir().join(what).join(&self.kernel_name)
    }

    /// A deliberately broken module from `qemu-tests/modules`, by name.
    pub fn test_module(&self, name: &str) -> PathBuf {
        let p = self.test_modules.join(format!("{name}.ko"));
        assert!(
            p.exists(),
            "{} does not exist: run `make check`",
            p.display()
        );
        p
    }
}

/// A guest to boot.
#[derive(Clone, Debug)]
pub struct Guest {
    /// A name for logs: the test's name.
    pub name: String,
    /// `-machine` value, e.g. `q35`, `pc`, `q35,i8042=off`.
    pub machine: String,
    /// `-smp` value.
    pub cpus: u32,
    /// Shell commands run by `/init` (busybox `sh`, `set -x` not on).
    pub scenario: String,
    /// Files put in the guest's `/modules/` under their own names.
    pub modules: Vec<PathBuf>,
    /// Executables put in the guest's `/bin/` under their own names.
    pub binaries: Vec<PathBuf>,
    /// More kernel command line, e.g. `lockdown=integrity`.
    pub append: String,
    /// Hard limit for the whole run; the VM is killed then.
    pub timeout: Duration,
    /// Adds QEMU's ISA pvpanic device, for [`MARK`].
    pub pvpanic: bool,
    /// The scenario provokes a lockdep / atomic-context report on purpose
    /// (otherwise any report fails the run).
    pub expect_lock_reports: bool,
}

impl Guest {
    /// A `q35` guest with 2 CPUs, `rust_emergency_reset.ko` in `/modules` and a 60 s limit.
    pub fn new(name: &str, inputs: &Inputs, scenario: &str) -> Guest {
        Guest {
            name: name.to_string(),
            machine: "q35".to_string(),
            cpus: 2,
            scenario: scenario.to_string(),
            modules: vec![inputs.module.clone()],
            binaries: Vec::new(),
            append: String::new(),
            timeout: Duration::from_secs(60),
            expect_lock_reports: false,
            pvpanic: false,
        }
    }

    /// The same guest on another machine type.
    pub fn machine(mut self, machine: &str) -> Guest {
        self.machine = machine.to_string();
        self
    }

    /// Another number of CPUs.
    pub fn cpus(mut self, cpus: u32) -> Guest {
        self.cpus = cpus;
        self
    }

    /// Adds a module file to `/modules`.
    pub fn with_module(mut self, path: PathBuf) -> Guest {
        self.modules.push(path);
        self
    }

    /// Adds an executable to `/bin`.
    pub fn with_binary(mut self, path: PathBuf) -> Guest {
        self.binaries.push(path);
        self
    }

    /// Adds `param` to the kernel command line.
    pub fn append(mut self, param: &str) -> Guest {
        self.append += " ";
        self.append += param;
        self
    }

    /// The same guest without `rust_emergency_reset.ko`.
    pub fn without_our_module(mut self, inputs: &Inputs) -> Guest {
        self.modules.retain(|m| m != &inputs.module);
        self
    }

    /// Another hard time limit.
    pub fn timeout(mut self, timeout: Duration) -> Guest {
        self.timeout = timeout;
        self
    }
}

/// The guest's `/init`: mounts, the safety check, the scenario, the markers.
const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /etc
/bin/busybox mount -t proc proc /proc
# Never run a scenario anywhere but in a test VM: it loads modules that oops.
if [ "$$" != 1 ] || ! /bin/busybox grep -qw rer_guest=1 /proc/cmdline; then
	echo "rust_emergency_reset test init: not PID 1 of a test guest; refusing to run"
	exit 1
fi
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 'root:x:0:0::/:/bin/sh' > /etc/passwd
echo 'nobody:x:65534:65534::/:/bin/sh' >> /etc/passwd
echo 'root:x:0:' > /etc/group
echo 'nogroup:x:65534:' >> /etc/group
echo "RER-BOOTED cpus=$(nproc)"
. /scenario.sh
# The console trails the kernel log (nbcon printer thread): copy the warnings
# over, so that checks on the console (lock reports) see them all.
dmesg | grep -e 'WARNING:' -e 'BUG:' | sed 's/^/RER-KMSG /'
echo "RER-DONE"
while :; do sleep 1000; done
"#;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// QMP reported `SHUTDOWN` with `guest: true` and `reason: guest-reset`.
    GuestReset,
    /// QMP reported another `SHUTDOWN` (reason given).
    Shutdown(String),
    /// The guest printed [`DONE`]: the scenario ran to its end and the guest is alive.
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

    /// From the guest's first [`MARK`] to QMP's `SHUTDOWN` event of a guest
    /// reset, both timestamped by QEMU itself.
    pub fn reset_latency(&self) -> Option<Duration> {
        self.reset_latency_from("GUEST_CRASHLOADED")
    }

    /// From the first QMP event `mark` (e.g. `RTC_CHANGE` for [`RTC_MARK`]) to
    /// QMP's `SHUTDOWN` event of a guest reset.
    pub fn reset_latency_from(&self, mark: &str) -> Option<Duration> {
        if self.ending != Ending::GuestReset {
            return None;
        }
        let mark = *self.event_times(mark).first()?;
        self.event_times("SHUTDOWN")
            .first()?
            .duration_since(mark)
            .ok()
    }

    /// Whether the console shows `marker`.
    pub fn saw(&self, marker: &str) -> bool {
        self.serial.contains(marker)
    }

    /// Lines of the console that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<&str> {
        self.serial.lines().filter(|l| l.contains(needle)).collect()
    }

    /// The console lines that start a report of the kernel's lock and
    /// atomic-context checkers (`CONFIG_PROVE_LOCKING`, `CONFIG_DEBUG_ATOMIC_SLEEP`;
    /// `make check-lockdep` builds a kernel with both). Every run asserts there
    /// are none, unless its guest expects them.
    pub fn lock_reports(&self) -> Vec<&str> {
        const REPORTS: [&str; 9] = [
            "WARNING: possible circular locking dependency",
            "WARNING: possible recursive locking",
            "WARNING: inconsistent lock state",
            "WARNING: possible irq lock inversion",
            "WARNING: suspicious RCU usage",
            "BUG: sleeping function called from invalid context",
            "BUG: scheduling while atomic",
            "BUG: Invalid wait context",
            "WARNING: lock held when returning to user space",
        ];
        self.serial
            .lines()
            .filter(|l| REPORTS.iter().any(|r| l.contains(r)))
            .collect()
    }

    /// The one `RER-WRITE <label> ...` line of [`TRY_WRITE`].
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

    /// Asserts that [`SHOW_LOCKDOWN`] showed lockdown `mode`
    /// (`none integrity [confidentiality]`).
    pub fn assert_lockdown(&self, mode: &str) {
        let line = self.line_starting("RER-LOCKDOWN ");
        assert!(
            line.contains(&format!("[{mode}]")),
            "not in lockdown {mode}: {line} (log {})",
            self.log.display()
        );
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

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What the reader threads report.
enum Report {
    Serial(String),
    Qmp(Value),
    SerialClosed,
    QmpClosed,
}

/// A running QEMU, killed when dropped (a failing or panicking test included).
pub struct Vm {
    child: Child,
    stdin: Option<ChildStdin>,
    qmp: UnixStream,
    reports: mpsc::Receiver<Report>,
    serial: String,
    log: fs::File,
    log_path: PathBuf,
    started: Instant,
    deadline: Instant,
    ending: Option<Ending>,
    dir: PathBuf,
    echo: bool,
    expect_lock_reports: bool,
    events: Vec<(String, SystemTime)>,
    serial_closed: bool,
    qmp_closed: bool,
    /// The last QMP command id sent, and the answers not yet claimed.
    qmp_id: u64,
    answers: Vec<Value>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `target/` of this crate: where logs and scratch files go.
fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target")
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

        let initramfs = dir.join("initramfs.cpio");
        let mut archive = cpio::Archive::new();
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "modules"] {
            archive.dir(d);
        }
        archive.char_dev("dev/console", 5, 1);
        archive.file("init", 0o755, INIT.as_bytes());
        archive.file("scenario.sh", 0o644, guest.scenario.as_bytes());
        archive.file("bin/busybox", 0o755, &fs::read(busybox()).unwrap());
        for m in &guest.modules {
            let name = m.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("modules/{name}"), 0o644, &fs::read(m).unwrap());
        }
        for b in &guest.binaries {
            let name = b.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("bin/{name}"), 0o755, &fs::read(b).unwrap());
        }
        fs::write(&initramfs, archive.finish()).unwrap();

        let qmp_path = dir.join("qmp.sock");
        let mut cmdline = format!("console=ttyS0 rer_guest=1 panic=0{}", guest.append);
        if guest.machine.starts_with("microvm") {
            // microvm has neither HPET nor ACPI PM timer: when the PIT calibration of the
            // TSC fails under host load, calibrate_delay() waits for a tick that never comes
            // (seen stuck in calibrate_delay_converge). Give it the loops per jiffy instead.
            if let Some(lpj) = host_lpj() {
                cmdline += &format!(" lpj={lpj}");
            }
        }
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-machine", &guest.machine])
            .args(["-smp", &guest.cpus.to_string(), "-m", "256M"])
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .args(["-serial", "stdio"])
            .args(if guest.pvpanic {
                &["-device", "pvpanic"][..]
            } else {
                &[]
            })
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=on", qmp_path.display()))
            .arg("-kernel")
            .arg(&inputs.kernel)
            .arg("-initrd")
            .arg(&initramfs)
            .args(["-append", &cmdline])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // QEMU's own messages go next to the serial log.
            .stderr(fs::File::create(log_path.with_extension("qemu.log")).unwrap())
            .spawn()
            .expect("cannot start qemu-system-x86_64: run scripts/setup.sh");
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().unwrap();

        // QEMU waits for the QMP client before it runs the guest: no event is missed.
        let qmp = connect(&qmp_path, &mut child);
        let (tx, reports) = mpsc::channel();

        let serial_tx = tx.clone();
        thread::spawn(move || {
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
        });
        let qmp_reader = qmp.try_clone().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(qmp_reader).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(Report::Qmp(v)).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(Report::QmpClosed);
        });

        let started = Instant::now();
        let mut vm = Vm {
            child,
            stdin,
            qmp,
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
            events: Vec::new(),
            serial_closed: false,
            qmp_closed: false,
            qmp_id: 0,
            answers: Vec::new(),
        };
        vm.qmp_command("qmp_capabilities", serde_json::json!({}));
        vm
    }

    /// Starts `guest` and waits until its `/init` runs ([`BOOTED`]).
    ///
    /// A kernel that panics or hangs before `/init` is booted once more, and
    /// the run says so. Nothing of this project has run at that point, and
    /// TCG does that now and then: on a loaded host the early PIT calibration
    /// of the TSC sometimes fails and the slower lockdep kernel hangs (seen on
    /// microvm); Debian's kernel once took an `int3` Oops while patching a
    /// static branch in `set_next_task_fair` during boot, not tainted, with
    /// no module loaded (TCG's cross-vCPU code modification, 1 boot in ~200).
    pub fn boot(guest: &Guest, inputs: &Inputs) -> Vm {
        let mut vm = Vm::start(guest, inputs);
        if vm.wait_until(|serial| serial.contains(BOOTED) || serial.contains("Kernel panic"))
            && vm.serial.contains(BOOTED)
        {
            return vm;
        }
        eprintln!(
            "{}: the guest kernel never reached /init (log {}); booting once more",
            guest.name,
            vm.log_path.display()
        );
        drop(vm);
        Vm::start(guest, inputs)
    }

    /// Sends a QMP command and returns QEMU's answer (its `return` value). A
    /// command QEMU rejects fails the test with QEMU's own message, and so does
    /// no answer within 10 s, unless the guest reset meanwhile (the input acted
    /// before QEMU could answer).
    pub fn qmp_command(&mut self, command: &str, arguments: Value) -> Value {
        match self.qmp_exchange(command, &arguments, Duration::from_secs(10)) {
            Some(answer) if answer.get("error").is_some() => panic!(
                "QMP {command} {arguments}: QEMU refused it: {} ({}); log {}",
                answer["error"]["desc"].as_str().unwrap_or("?"),
                answer["error"]["class"].as_str().unwrap_or("?"),
                self.log_path.display()
            ),
            Some(answer) => answer["return"].clone(),
            None if self.ending == Some(Ending::GuestReset) => Value::Null,
            None => panic!(
                "QMP {command} {arguments}: no answer from QEMU (ending {:?}); log {}",
                self.ending,
                self.log_path.display()
            ),
        }
    }

    /// Sends a QMP command with a fresh id and waits up to `wait` for the
    /// answer carrying that id, handling every other report meanwhile.
    fn qmp_exchange(&mut self, command: &str, arguments: &Value, wait: Duration) -> Option<Value> {
        self.qmp_id += 1;
        let id = self.qmp_id;
        let msg = serde_json::json!({"execute": command, "arguments": arguments, "id": id});
        writeln!(self.qmp, "{msg}").ok()?;
        let until = Instant::now() + wait;
        loop {
            if let Some(i) = self.answers.iter().position(|a| a["id"] == id) {
                return Some(self.answers.swap_remove(i));
            }
            if self.qmp_closed {
                return None;
            }
            let left = until.checked_duration_since(Instant::now())?;
            match self.reports.recv_timeout(left) {
                Ok(r) => self.handle(r),
                Err(_) => return None,
            }
        }
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

    /// Handles one report; sets `ending` when the run ended.
    fn handle(&mut self, report: Report) {
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
                    .saturating_sub(text.len() + DONE.len() + 1);
                let fresh = &self.serial[floor_char(&self.serial, tail_start)..];
                if fresh.lines().any(|l| l.trim_end() == DONE) {
                    self.ending = Some(Ending::Done);
                }
            }
            Report::Qmp(v) => {
                if v.get("id").is_some() {
                    self.answers.push(v);
                    return;
                }
                if let Some(name) = v["event"].as_str() {
                    let ts = &v["timestamp"];
                    let at = SystemTime::UNIX_EPOCH
                        + Duration::from_secs(ts["seconds"].as_u64().unwrap_or(0))
                        + Duration::from_micros(ts["microseconds"].as_u64().unwrap_or(0));
                    self.events.push((name.to_string(), at));
                }
                if v["event"] == "SHUTDOWN" {
                    let reason = v["data"]["reason"].as_str().unwrap_or("").to_string();
                    self.ending = Some(if reason == "guest-reset" && v["data"]["guest"] == true {
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
                }
                Err(_) => return false,
            }
        }
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
                }
                Err(mpsc::RecvTimeoutError::Timeout) => self.ending = Some(Ending::TimedOut),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.ending = Some(Ending::Exited(None))
                }
            }
        }
        let elapsed = self.started.elapsed();
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
        // Drain what the console printed before the end (the last log lines).
        let _ = self.child.kill();
        while let Ok(r) = self.reports.recv_timeout(Duration::from_millis(200)) {
            if let Report::Serial(text) = r {
                let _ = self.log.write_all(text.as_bytes());
                self.serial.push_str(&text);
            }
        }
        let out = Outcome {
            ending: self.ending.clone().unwrap(),
            serial: std::mem::take(&mut self.serial),
            log: self.log_path.clone(),
            elapsed,
            events: std::mem::take(&mut self.events),
        };
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

/// Prints console text with a `guest| ` prefix on each line.
fn print_console(text: &str) {
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
fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Loops per jiffy of a TCG guest of the test kernel (`CONFIG_HZ=250`), whose
/// TSC runs at the host's rate: the host's clock rate in Hz / 250.
fn host_lpj() -> Option<u64> {
    let info = fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = info
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some((mhz * 1e6 / 250.0) as u64)
}

/// Connects to QEMU's QMP socket, waiting for QEMU to create it.
fn connect(path: &Path, child: &mut Child) -> UnixStream {
    let start = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("qemu-system-x86_64 exited before QMP was up: {status}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QMP socket never appeared"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The marker `scripts/sign-file` appends after a module's signature.
const SIGNATURE_MARKER: &[u8] = b"~Module signature appended~\n";

/// Whether a module file carries an appended signature.
pub fn is_signed(ko: &Path) -> bool {
    fs::read(ko).unwrap().ends_with(SIGNATURE_MARKER)
}

/// A copy of `ko` without its signature (a signed module is the module, the
/// signature, a 12-byte `struct module_signature` whose last 4 bytes are the
/// signature's length, big-endian, and the marker), in `dir`.
pub fn unsigned_copy(ko: &Path, dir: &Path) -> PathBuf {
    let mut data = fs::read(ko).unwrap();
    if data.ends_with(SIGNATURE_MARKER) {
        let info_end = data.len() - SIGNATURE_MARKER.len();
        let info = &data[info_end - 12..info_end];
        let sig_len = u32::from_be_bytes(info[8..12].try_into().unwrap()) as usize;
        data.truncate(info_end - 12 - sig_len);
    }
    fs::create_dir_all(dir).unwrap();
    let copy = dir.join(ko.file_name().unwrap());
    fs::write(&copy, data).unwrap();
    assert!(!is_signed(&copy));
    copy
}

/// `rer-rescue` (`helpers/rer-rescue.c`), seed 000's userspace rescue, built
/// static for the guest on first use: `rer-rescue iopl|ioperm` prints
/// `RER-RESCUE <how> refused: <error>`, or resets the machine.
pub fn rescue_helper() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("helpers/rer-rescue.c");
            let dir = target_dir().join("helpers");
            fs::create_dir_all(&dir).unwrap();
            let bin = dir.join("rer-rescue");
            let tmp = dir.join(format!("rer-rescue.{}", std::process::id()));
            let status = Command::new("cc")
                .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
                .arg(&tmp)
                .arg(&src)
                .status()
                .expect("cc (build-essential)");
            assert!(status.success(), "cannot build {}", src.display());
            fs::rename(&tmp, &bin).unwrap();
            bin
        })
        .clone()
}

/// The static busybox the guest runs.
fn busybox() -> &'static str {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return p;
        }
    }
    panic!("no static busybox: run scripts/setup.sh (package busybox-static)");
}

/// Boots `guest` and runs it to its end ([`Vm::boot`], [`Vm::finish`]).
pub fn run(guest: &Guest, inputs: &Inputs) -> Outcome {
    Vm::boot(guest, inputs).finish()
}
