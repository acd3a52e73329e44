// SPDX-License-Identifier: GPL-2.0

//! QEMU harness for `rust_emergency_reset`.
//!
//! A test describes a guest ([`Guest`]): the machine, the CPUs, and a shell
//! scenario that runs as the guest's `/init` after the boot. The harness packs
//! busybox, the scenario and the modules into an initramfs, boots the test
//! kernel under TCG with `-no-reboot`, records the serial console, and watches
//! QMP. A reset is only ever concluded from QMP's
//! `SHUTDOWN {"guest": true, "reason": "guest-reset"}` event (or, for a guest
//! that boots again after a reset, [`Guest::boots`], from QMP's `RESET` event
//! with the same data); a guest is only ever called alive from a marker it
//! printed on its console.
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
//! e.g. `7.3.4+deb13-amd64` for Debian's own). `RER_QEMU` runs another QEMU
//! than the `qemu-system-x86_64` on the PATH (for comparing releases; `make
//! check` never sets it). Serial logs are kept in
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
    sync::{
        mpsc,
        Mutex, //
    },
    thread,
    time::{
        Duration,
        Instant,
        SystemTime, //
    },
};

pub mod acpi;
mod cpio;
pub mod matrix;

/// The marker the guest prints once `/init` starts running the scenario.
pub const BOOTED: &str = "RER-BOOTED";
/// The marker a scenario prints when it has finished and the guest is alive.
pub const DONE: &str = "RER-DONE";
/// The question `/init` of a guest of several boots ([`Guest::boots`]) prints
/// on its console after [`BOOTED`]; the harness answers it with the number of
/// the boot (1, 2, ...), which `/init` exports to the scenario as `RER_BOOT`.
pub const WHICH_BOOT: &str = "RER-WHICH-BOOT?";
/// What `/init` prints when no answer to [`WHICH_BOOT`] came within 30 s; it
/// then skips the scenario and prints [`DONE`]. [`Vm::finish`] fails the test
/// when the console shows it.
pub const WHICH_BOOT_UNANSWERED: &str = "RER-WHICH-BOOT-UNANSWERED";

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

/// The guest's and its network namespace's addresses ([`Guest::network`]):
/// documentation prefixes (RFC 5737, RFC 3849), inside a namespace of the
/// run's own with nothing else on it.
pub const GUEST_V4: &str = "192.0.2.2";
pub const HOST_V4: &str = "192.0.2.1";
pub const GUEST_V6: &str = "2001:db8::2";
pub const HOST_V6: &str = "2001:db8::1";
/// What `/init` prints once the guest's network is up ([`Guest::network`]).
pub const NET_UP: &str = "RER-NET-UP";

/// `/net-up.sh`: the NIC's modules (listed in `/net-modules`), the
/// addresses, and [`NET_UP`] once both addresses are on the link.
const NET_UP_SH: &str = r#"for m in $(cat /net-modules); do insmod /modules/$m || echo "RER-NET-MODULE-FAILED $m"; done
ip link set lo up
# No duplicate address detection (busybox's ip has no nodad): the address is usable at once.
echo 0 >/proc/sys/net/ipv6/conf/eth0/accept_dad
ip link set eth0 up
ip addr add 192.0.2.2/24 dev eth0
ip -6 addr add 2001:db8::2/64 dev eth0
if ip addr show eth0 | grep -q 'inet 192.0.2.2/24' && ip addr show eth0 | grep -q 'inet6 2001:db8::2/64'; then
	echo "RER-NET-UP"
else
	echo "RER-NET-FAILED"; ip addr
fi
"#;

/// The lockdown modes a Secure Boot kernel can be in (kernel parameter `lockdown=`).
pub const LOCKDOWN_MODES: [&str; 2] = ["integrity", "confidentiality"];

/// Guest shell commands: mount securityfs and print the lockdown line, for
/// [`Outcome::assert_lockdown`].
pub const SHOW_LOCKDOWN: &str = "mount -t securityfs securityfs /sys/kernel/security\n\
     echo \"RER-LOCKDOWN $(cat /sys/kernel/security/lockdown)\"\n";

/// Guest shell commands, with our module loaded: try to unload it while a
/// file of the device is open, read through that file, close it, unload.
/// See [`Outcome::assert_unload_refused_while_open`].
pub const UNLOAD_WHILE_OPEN: &str = r#"
exec 3</dev/emergency_reset
rmmod rust_emergency_reset 2>/tmp/err; echo "RER-RMMOD-OPEN rc=$? $(cat /tmp/err)"
head -1 <&3 | sed 's/^/RER-READ-OPEN /'
exec 3<&-
rmmod rust_emergency_reset; echo "RER-RMMOD-CLOSED rc=$?"
"#;

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
    /// The kernel's own modules a guest with a network needs (its virtio
    /// NIC), in load order: none for the test kernel, which has the NIC
    /// built in; for Debian's kernel, from `RER_NET_MODULES` (a directory
    /// with the modules and a file `order` naming them).
    pub net_modules: Vec<PathBuf>,
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
        let net_modules = match std::env::var_os("RER_NET_MODULES") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                let order = fs::read_to_string(dir.join("order"))
                    .unwrap_or_else(|e| panic!("{}/order: {e}", dir.display()));
                order.split_whitespace().map(|m| dir.join(m)).collect()
            }
            None => Vec::new(),
        };
        let inputs = Inputs {
            kernel,
            kernel_name,
            module: var("RER_MODULE"),
            test_modules: var("RER_TEST_MODULES"),
            net_modules,
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
    /// How many times the guest boots: 1 but for [`Guest::boots`].
    pub boots: u32,
    /// The FADT reset register the guest's kernel gets instead of QEMU's
    /// ([`Guest::fadt_reset`], [`acpi`]).
    pub fadt_reset: Option<acpi::FadtReset>,
    /// A network ([`Guest::network`]): the modules its NIC needs, in load order.
    pub net: Option<Vec<PathBuf>>,
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
            boots: 1,
            fadt_reset: None,
            net: None,
        }
    }

    /// The guest gets a virtio NIC on a tap device in a network namespace
    /// of this run's own, with nothing else on it: the guest is
    /// [`GUEST_V4`] and [`GUEST_V6`], the namespace [`HOST_V4`] and
    /// [`HOST_V6`]. `/init` brings the link up (loading the kernel's NIC
    /// modules first, on Debian's kernel) and prints [`NET_UP`] before the
    /// scenario runs. Reach the guest with [`Vm::net_command`] and
    /// [`Vm::net_socket`]; nothing leaves the namespace.
    pub fn network(mut self, inputs: &Inputs) -> Guest {
        self.net = Some(inputs.net_modules.clone());
        self
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

    /// A guest that boots up to `n` times, for what survives a reset in RAM.
    ///
    /// With `n` >= 2 QEMU runs without `-no-reboot`: a guest reset (QMP
    /// `RESET`, guest-reset) boots the same kernel, initramfs and command line
    /// again, on the same RAM (QEMU does not clear guest RAM at a reset).
    /// Every boot runs the scenario; `/init` asks the harness which boot it is
    /// ([`WHICH_BOOT`]) and exports the answer as `RER_BOOT` (1, 2, ...), on
    /// which the scenario branches. The run ends as [`Ending::GuestReset`]
    /// when the guest resets the `n`-th time (QEMU then stops as with
    /// `-no-reboot`: the harness sets QMP `set-action reboot=shutdown` when
    /// the last boot's `/init` asks), and as [`Ending::Done`] when any boot
    /// prints [`DONE`]. See [`Outcome::guest_resets`] (what counts as a
    /// reset: SeaBIOS adds one of its own) and [`Outcome::boot_console`].
    ///
    /// `n` = 1, the default, is one boot with `-no-reboot`, where `/init`
    /// asks nothing and `RER_BOOT` is 1. The time limit covers all boots.
    pub fn boots(mut self, n: u32) -> Guest {
        assert!(n >= 1, "a guest boots at least once");
        self.boots = n;
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
# A guest of several boots (Guest::boots: /boots exists) asks the harness on
# the console which boot this is (WHICH_BOOT); one boot is boot 1. Without an
# answer, the scenario is skipped: the run ends at RER-DONE and fails.
RER_BOOT=1
if [ -e /boots ]; then
	echo "RER-WHICH-BOOT?"
	RER_BOOT=
	read -t 30 RER_BOOT
	case "$RER_BOOT" in
	[1-9] | [1-9][0-9]) ;;
	*)
		echo "RER-WHICH-BOOT-UNANSWERED: no boot number on the console within 30 s (read '$RER_BOOT')"
		RER_BOOT=
		;;
	esac
fi
export RER_BOOT
# A guest with a network (Guest::network): its NIC's modules, then the link.
if [ -e /net-up.sh ]; then
	. /net-up.sh
fi
if [ -n "$RER_BOOT" ]; then
	. /scenario.sh
fi
# The console trails the kernel log (nbcon printer thread): copy the warnings
# over, so that checks on the console (lock reports) see them all.
dmesg | grep -e 'WARNING:' -e 'BUG:' | sed 's/^/RER-KMSG /'
echo "RER-DONE"
while :; do sleep 1000; done
"#;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// QMP reported `SHUTDOWN` with `guest: true` and `reason: guest-reset`;
    /// for a guest of several boots ([`Guest::boots`]), its last boot reset.
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
    /// QEMU's timestamps of the guest's resets, in order (see
    /// [`Outcome::guest_resets`]).
    pub guest_reset_times: Vec<SystemTime>,
    /// QEMU's view of the vCPUs when the run ended with the VM still running
    /// ([`Ending::TimedOut`], [`Ending::Done`]); empty otherwise, or when QEMU
    /// did not answer.
    pub vcpus_at_end: Vec<VCpu>,
    /// [`Outcome::serial`] mended ([`acpi::mend`]), made on first use.
    mended: std::sync::OnceLock<String>,
}

/// One vCPU as QEMU's `info registers -a` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VCpu {
    /// QEMU's CPU index (`CPU#n`), the guest's CPU number here.
    pub index: usize,
    /// The instruction pointer.
    pub rip: u64,
    /// `RFLAGS.IF`: whether the CPU takes maskable interrupts.
    pub interrupts_on: bool,
    /// Whether the CPU is halted (`HLT=1`: idle, waiting for an interrupt).
    pub halted: bool,
}

impl VCpu {
    /// Spinning with interrupts off at an address in `text`: the lockup of
    /// `rer_lockup`, seen from outside the guest.
    pub fn spins_in(&self, text: std::ops::Range<u64>) -> bool {
        !self.interrupts_on && !self.halted && text.contains(&self.rip)
    }

    /// The vCPUs in the text of `info registers -a` (`CPU#0` then a line
    /// starting `RIP=ffffffff81000000 RFL=00000246 ... HLT=0`).
    pub fn parse_all(text: &str) -> Vec<VCpu> {
        let mut cpus = Vec::new();
        let mut index = None;
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("CPU#") {
                index = n.trim().parse().ok();
            } else if let (Some(i), Some(rest)) = (index, line.strip_prefix("RIP=")) {
                let field = |name: &str| {
                    rest.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no {name} in QEMU's {line:?}"))
                };
                let hex = |v: &str| {
                    u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("QEMU's {line:?}"))
                };
                let rip = hex(rest.split_whitespace().next().unwrap_or(""));
                cpus.push(VCpu {
                    index: i,
                    rip,
                    interrupts_on: hex(field("RFL=")) & 0x200 != 0,
                    halted: field("HLT=") == "1",
                });
                index = None;
            }
        }
        cpus
    }
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
    /// QMP's `SHUTDOWN` event of a guest reset (the reset that ended the run).
    pub fn reset_latency_from(&self, mark: &str) -> Option<Duration> {
        if self.ending != Ending::GuestReset {
            return None;
        }
        let mark = *self.event_times(mark).first()?;
        self.guest_reset_times.last()?.duration_since(mark).ok()
    }

    /// How many times the guest reset, whatever QEMU did next: the resets
    /// after which the guest booted again ([`Guest::boots`]; QMP `RESET` with
    /// `guest: true, reason: guest-reset`), plus the one that ended the run,
    /// if one did ([`Ending::GuestReset`]; QMP `SHUTDOWN`, same data). So a
    /// 1-boot guest that reset counts 1, as does a 2-boot guest whose second
    /// boot finished its scenario; a 2-boot guest whose both boots reset
    /// counts 2. Resets by the host (`guest: false`) do not count.
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
    /// ([`Guest::boots`]): from the line of the `k`-th [`WHICH_BOOT`] question
    /// to the line of the next one, or to the end for the last boot. Boot 1
    /// starts at the start of the console, its kernel's messages included; a
    /// 1-boot guest (which asks nothing) is all boot 1.
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
    /// ([`acpi::mended_console`]): the kernel prints asynchronously, and one
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
    /// out ([`acpi::mend`]); made once.
    pub fn mended(&self) -> &str {
        self.mended.get_or_init(|| acpi::mend(&self.serial))
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
    /// `CONFIG_DEBUG_ATOMIC_SLEEP`: the lockdep kernel of `make check` has all
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

    /// Asserts what [`UNLOAD_WHILE_OPEN`] must show: the open file holds a
    /// module reference, so rmmod is refused (busybox asks with `O_NONBLOCK`,
    /// hence `EAGAIN`), the file still reads, and after the close rmmod works.
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
    /// [`Guest::boots`].
    boots: u32,
    /// QEMU's timestamps of the guest resets so far ([`Outcome::guest_resets`]).
    guest_reset_times: Vec<SystemTime>,
    /// The [`WHICH_BOOT`] questions answered so far, and where on the console
    /// to look for the next one.
    questions: usize,
    question_scan: usize,
    /// The network namespace of a guest with a network ([`Guest::network`]).
    netns: Option<String>,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(ns) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `ip ARGS`; panics with its error when it fails.
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a tap device `tap0` carrying [`HOST_V4`] and
/// [`HOST_V6`], for one guest ([`Guest::network`]).
fn make_netns() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ns = format!("rer-{}-{n}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    ip(&["netns", "add", &ns]);
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    ip(&["-n", &ns, "tuntap", "add", "tap0", "mode", "tap"]);
    ip(&["-n", &ns, "link", "set", "tap0", "up"]);
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{HOST_V4}/24"),
        "dev",
        "tap0",
    ]);
    ip(&[
        "-n",
        &ns,
        "-6",
        "addr",
        "add",
        &format!("{HOST_V6}/64"),
        "dev",
        "tap0",
        "nodad",
    ]);
    ns
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
        if guest.boots > 1 {
            // Makes `/init` ask which boot it is (INIT, WHICH_BOOT).
            archive.file("boots", 0o644, format!("{}\n", guest.boots).as_bytes());
        }
        archive.file("bin/busybox", 0o755, &fs::read(busybox()).unwrap());
        for m in &guest.modules {
            let name = m.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("modules/{name}"), 0o644, &fs::read(m).unwrap());
        }
        for b in &guest.binaries {
            let name = b.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("bin/{name}"), 0o755, &fs::read(b).unwrap());
        }
        if let Some(net_modules) = &guest.net {
            let mut order = String::new();
            for m in net_modules {
                let name = m.file_name().unwrap().to_str().unwrap();
                archive.file(&format!("modules/{name}"), 0o644, &fs::read(m).unwrap());
                order += name;
                order += "\n";
            }
            archive.file("net-modules", 0o644, order.as_bytes());
            archive.file("net-up.sh", 0o644, NET_UP_SH.as_bytes());
        }
        // A patched FACP goes first, in an archive of its own (acpi::early_cpio).
        let mut image = acpi::early_cpio(guest, inputs);
        image.extend(archive.finish());
        fs::write(&initramfs, image).unwrap();

        let qmp_path = dir.join("qmp.sock");
        // `tsc=reliable`: no clocksource watchdog. In 7.3 its cross-CPU skew check waits,
        // interrupts off, for a remote CPU with a timeout read from the timekeeping
        // clocksource; at boot that is still jiffies, which stands still then. When the
        // switch to tsc-early (stop_machine(): every other CPU spins, interrupts off)
        // starts meanwhile, neither side ever goes on. Seen under TCG on a loaded host
        // (QEMU showed CPU 0 in watchdog_check_skew, the others in stop_machine_yield,
        // after "e820: register RAM buffer resource"), about 1 boot in 200; twice in a
        // row once. TCG's TSC is the host's clock: reliable.
        let mut cmdline = format!(
            "console=ttyS0 rer_guest=1 panic=0 tsc=reliable{}",
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
        let netns = guest.net.as_ref().map(|_| make_netns());
        let binary = qemu_binary();
        // QEMU runs inside the namespace, where it opens the tap.
        let mut qemu = match &netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &binary]);
                c.args(["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no"]);
                c.args(["-device", "virtio-net-pci,netdev=n0,romfile="]);
                c
            }
            None => Command::new(&binary),
        };
        let mut child = qemu
            .args(["-accel", "tcg", "-machine", &guest.machine])
            .args(["-smp", &guest.cpus.to_string(), "-m", "256M"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            // A guest of several boots reboots at a reset, until its last boot.
            .args(if guest.boots == 1 {
                &["-no-reboot"][..]
            } else {
                &[]
            })
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
        // The first try's log stays, beside the second's.
        let first = vm.log_path.with_extension("first-try.log");
        let _ = fs::rename(&vm.log_path, &first);
        eprintln!(
            "{}: the guest kernel never reached /init (log {}); booting once more",
            guest.name,
            first.display()
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

    /// QEMU's view of every vCPU now ([`VCpu`]); empty if the guest reset
    /// meanwhile. A test reads it to show a lockup is in place before it sends
    /// its input, from outside the guest, which a locked-up guest cannot tell.
    pub fn vcpus(&mut self) -> Vec<VCpu> {
        let text = self.qmp_command(
            "human-monitor-command",
            serde_json::json!({"command-line": "info registers -a"}),
        );
        VCpu::parse_all(text.as_str().unwrap_or(""))
    }

    /// [`Vm::vcpus`], but empty when QEMU does not answer within `wait`.
    fn vcpus_within(&mut self, wait: Duration) -> Vec<VCpu> {
        let answer = self.qmp_exchange(
            "human-monitor-command",
            &serde_json::json!({"command-line": "info registers -a"}),
            wait,
        );
        answer
            .and_then(|a| a["return"].as_str().map(VCpu::parse_all))
            .unwrap_or_default()
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

    /// `program` to run inside the guest's network namespace ([`Guest::network`]).
    pub fn net_command(&self, program: &str) -> Command {
        let ns = self
            .netns
            .as_ref()
            .expect("a guest with a network (Guest::network)");
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// A UDP socket inside the guest's network namespace ([`Guest::network`]),
    /// of the family of `peer`, connected to it.
    pub fn net_socket(&self, peer: std::net::SocketAddr) -> std::net::UdpSocket {
        let ns = self
            .netns
            .clone()
            .expect("a guest with a network (Guest::network)");
        // setns() moves one thread: a thread of its own makes the socket (which stays in the
        // namespace it was made in) and ends.
        thread::spawn(move || {
            let f = fs::File::open(format!("/run/netns/{ns}")).unwrap();
            // SAFETY: `f` is an open network namespace file; only this thread changes namespace.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            let any: std::net::SocketAddr = if peer.is_ipv4() {
                "0.0.0.0:0".parse().unwrap()
            } else {
                "[::]:0".parse().unwrap()
            };
            let s = std::net::UdpSocket::bind(any).unwrap();
            s.connect(peer).unwrap();
            s
        })
        .join()
        .unwrap()
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

    /// Sends a QMP command without waiting for its answer, which is left
    /// unclaimed: for [`Vm::handle`], which cannot wait for one.
    fn qmp_send(&mut self, command: &str, arguments: Value) {
        self.qmp_id += 1;
        let msg =
            serde_json::json!({"execute": command, "arguments": arguments, "id": self.qmp_id});
        let _ = writeln!(self.qmp, "{msg}");
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
            if boot == self.boots as usize {
                self.qmp_send("set-action", serde_json::json!({"reboot": "shutdown"}));
            }
            self.serial_write(format!("{boot}\n").as_bytes());
        }
        let rescan = self.serial.len().saturating_sub(WHICH_BOOT.len() - 1);
        self.question_scan = floor_char(&self.serial, rescan.max(self.question_scan));
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
                }
                Err(_) => return false,
            }
        }
    }

    /// The guest's console so far.
    pub fn console(&self) -> &str {
        &self.serial
    }

    /// The `sender` binary of the network trigger (`sender/`), which `make
    /// check` builds and names in `RER_SENDER`.
    pub fn sender() -> PathBuf {
        let p = PathBuf::from(
            std::env::var_os("RER_SENDER").expect("RER_SENDER is not set: run `make check`"),
        );
        assert!(
            p.exists(),
            "{} does not exist: run `make check`",
            p.display()
        );
        p
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
    guest_helper("rer-rescue")
}

/// The guest program `helpers/<name>.c`, built static on first use in this
/// process (`rer-rescue`, the benchmark's `rer-trigger`).
pub fn guest_helper(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap();
    if let Some((_, bin)) = built.iter().find(|(n, _)| n == name) {
        return bin.clone();
    }
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("helpers/{name}.c"));
    let dir = target_dir().join("helpers");
    fs::create_dir_all(&dir).unwrap();
    let bin = dir.join(name);
    let tmp = dir.join(format!("{name}.{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-static", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc (build-essential)");
    assert!(status.success(), "cannot build {}", src.display());
    fs::rename(&tmp, &bin).unwrap();
    built.push((name.to_string(), bin.clone()));
    bin
}

/// The QEMU to run: `RER_QEMU`, for comparing releases, or else
/// `qemu-system-x86_64` from the PATH.
pub fn qemu_binary() -> String {
    std::env::var("RER_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".into())
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
