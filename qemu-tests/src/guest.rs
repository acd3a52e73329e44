// SPDX-License-Identifier: GPL-2.0

//! What a test boots: the guest ([`Guest`] and its builder methods), the
//! guest's `/init` ([`INIT`]) and the markers it prints ([`BOOTED`],
//! [`DONE`], [`WHICH_BOOT`]), the shell pieces scenarios are made of
//! ([`TRY_WRITE`], [`STUCK_REBOOT`], [`MARK`], [`DRAIN`], ...), and the
//! initramfs that carries it all ([`Guest::initramfs`]).
//!
//! It describes and packs what runs inside the VM; it starts no QEMU and
//! reads no console (that is [`Vm`](crate::Vm)'s). The FADT override's archive,
//! which the initramfs starts with, is [`acpi`]'s; the network's `/net-up.sh`
//! and addresses are [`netns`](crate::netns)'s.

use crate::{
    acpi,
    cpio,
    firmware::SecureBoot,
    inputs::busybox,
    netns::NET_UP_SH,
    Inputs, //
};
use std::{
    fs,
    path::PathBuf,
    time::Duration, //
};

/// The marker the guest prints once `/init` starts running the scenario.
pub const BOOTED: &str = "RER-BOOTED";
/// The marker a scenario prints when it has finished and the guest is alive.
pub const DONE: &str = "RER-DONE";
/// The question `/init` of a guest of several boots ([`Guest::boots`]) prints
/// on its console after [`BOOTED`]; the harness answers it with the number of
/// the boot (1, 2, ...), which `/init` exports to the scenario as `RER_BOOT`.
pub const WHICH_BOOT: &str = "RER-WHICH-BOOT?";
/// What `/init` prints when no answer to [`WHICH_BOOT`] came within 30 s; it
/// then skips the scenario and prints [`DONE`].
/// [`Vm::finish`](crate::Vm::finish) fails the test when the console shows it.
pub const WHICH_BOOT_UNANSWERED: &str = "RER-WHICH-BOOT-UNANSWERED";

/// Shell function for scenarios: `try_write LABEL CONTENT [USER]` writes
/// CONTENT to the device (as USER if given) and prints
/// `RER-WRITE LABEL rc=<status> ms=<the write's duration, guest clock> <error
/// message>`; see [`Outcome::write_result`](crate::Outcome::write_result). It
/// prints only after a pause: the kernel writes the module's refusal line to
/// the console asynchronously, and one landing inside the result line would
/// split it (seen once).
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
/// [`Outcome::assert_lockdown`](crate::Outcome::assert_lockdown).
pub const SHOW_LOCKDOWN: &str = "mount -t securityfs securityfs /sys/kernel/security\n\
     echo \"RER-LOCKDOWN $(cat /sys/kernel/security/lockdown)\"\n";

/// Guest shell commands for lockdown's refusals, for
/// [`Outcome::assert_lockdown_refusals`](crate::Outcome::assert_lockdown_refusals)
/// and [`Outcome::assert_module_refused`](crate::Outcome::assert_module_refused):
/// seed 000's userspace rescue (`rer-rescue iopl` and `ioperm`: needs
/// [`rescue_helper`](crate::rescue_helper) in the guest; 0xFE written to
/// `port`, `/dev/port` or, on a kernel without it, `/dev/mem`), then `insmod`
/// of each of `modules` (a label and the file's path in the guest), then the
/// kernel's `Lockdown:` lines as `RER-KMSG` lines. It first waits out the rate
/// limit of those lines (one call site, 10 lines per 5 s), which Debian's
/// kernel spends at boot in confidentiality mode (tracefs). The results go to
/// a file first and are printed once the kernel's refusal lines have passed:
/// the kernel prints those on the console asynchronously, and one landing
/// inside a result line would split it.
pub fn lockdown_refusals(port: &str, modules: &[(&str, &str)]) -> String {
    let mut s = format!(
        "sleep 6\n\
         rer-rescue iopl >/tmp/results 2>&1\n\
         rer-rescue ioperm >>/tmp/results 2>&1\n\
         printf '\\376' | dd of={port} bs=1 seek=100 2>/tmp/err\n\
         echo \"RER-DEVPORT rc=$? $(cat /tmp/err)\" >>/tmp/results\n"
    );
    for (label, path) in modules {
        s += &format!(
            "insmod {path} 2>/tmp/err\n\
             echo \"RER-INSMOD {label} rc=$? $(cat /tmp/err) \
             loaded=$(grep -c rust_emergency_reset /proc/modules)\" >>/tmp/results\n"
        );
    }
    s + "sleep 1\ncat /tmp/results\n\
         dmesg | grep 'Lockdown:' | sed 's/^/RER-KMSG /'\n"
}

/// Guest shell commands, with our module loaded: try to unload it while a file
/// of the device is open, read through that file, close it, unload. See
/// [`Outcome::assert_unload_refused_while_open`](crate::Outcome::assert_unload_refused_while_open).
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

/// Guest shell command that prints where test module `module`'s code is
/// (`RER-TEXT module 0x...`), for [`Vm::module_text`](crate::Vm::module_text).
pub fn show_text(module: &str) -> String {
    format!("echo \"RER-TEXT {module} $(cat /sys/module/{module}/sections/.text)\"\n")
}

/// Guest shell command for a timestamped QMP event where [`MARK`] cannot be
/// used (lockdown refuses `/dev/port`): setting the CMOS RTC, which QEMU
/// reports as `RTC_CHANGE` from the vCPU thread.
pub const RTC_MARK: &str = "hwclock -w -u";

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
    /// Other files: the guest's path (relative to `/`) and their contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// `-m` value, in MiB.
    pub memory_mib: u32,
    /// More kernel command line, e.g. `lockdown=integrity`.
    pub append: String,
    /// Hard limit for the whole run; the VM is killed then.
    pub timeout: Duration,
    /// Adds QEMU's ISA pvpanic device, for [`MARK`].
    pub pvpanic: bool,
    /// The scenario provokes a lockdep / atomic-context report on purpose
    /// (otherwise any report fails the run).
    pub expect_lock_reports: bool,
    /// The scenario makes a kCFI check fail on purpose (otherwise a `CFI
    /// failure at` line fails the run).
    pub expect_cfi_failure: bool,
    /// How many times the guest boots: 1 but for [`Guest::boots`].
    pub boots: u32,
    /// The FADT reset register the guest's kernel gets instead of QEMU's
    /// ([`Guest::fadt_reset`], [`acpi`]).
    pub fadt_reset: Option<acpi::FadtReset>,
    /// A network ([`Guest::network`]): the modules its NIC needs, in load order.
    pub net: Option<Vec<PathBuf>>,
    /// QEMU stops the guest at each reset, and the harness reads the
    /// kernel's log from its RAM into the console before it goes on
    /// ([`kernel_log`](crate::kernel_log)): on a `PREEMPT_RT` kernel, whose
    /// console prints from a thread, and where [`Guest::log_at_reset`] asks.
    pub log_at_reset: bool,
    /// Booted through the firmware of a Secure Boot machine
    /// ([`Guest::secure_boot`]) rather than by QEMU's `-kernel`.
    pub secure_boot: Option<SecureBoot>,
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
            files: Vec::new(),
            memory_mib: 256,
            append: String::new(),
            timeout: Duration::from_secs(60),
            expect_lock_reports: false,
            expect_cfi_failure: false,
            pvpanic: false,
            boots: 1,
            fadt_reset: None,
            net: None,
            log_at_reset: inputs.has_config("CONFIG_PREEMPT_RT"),
            secure_boot: None,
        }
    }

    /// The kernel's log is read from the guest's RAM at each reset, on any
    /// kernel (see [`Guest::log_at_reset`](field@Guest::log_at_reset)).
    pub fn log_at_reset(mut self) -> Guest {
        self.log_at_reset = true;
        self
    }

    /// The guest gets a virtio NIC on a tap device in a network namespace of
    /// this run's own, with nothing else on it: the guest is
    /// [`GUEST_V4`](crate::GUEST_V4) and [`GUEST_V6`](crate::GUEST_V6), the
    /// namespace [`HOST_V4`](crate::HOST_V4) and [`HOST_V6`](crate::HOST_V6).
    /// `/init` brings the link up (loading the kernel's NIC modules first, on
    /// Debian's kernel) and prints [`NET_UP`](crate::NET_UP) before the
    /// scenario runs. Reach the guest with
    /// [`Vm::net_command`](crate::Vm::net_command) and
    /// [`Vm::net_socket`](crate::Vm::net_socket); nothing leaves the namespace.
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

    /// Adds a file at `path` (relative to `/`, in a directory of its own).
    pub fn with_file(mut self, path: &str, contents: Vec<u8>) -> Guest {
        self.files.push((path.to_string(), contents));
        self
    }

    /// Another amount of memory (default 256 MiB).
    pub fn memory(mut self, mib: u32) -> Guest {
        self.memory_mib = mib;
        self
    }

    /// Adds `param` to the kernel command line.
    pub fn append(mut self, param: &str) -> Guest {
        self.append += " ";
        self.append += param;
        self
    }

    /// Seed 000's scenario with `ko` as the module (one DKMS or a package
    /// installed): loaded, `reboot -f` stuck behind an oops that holds the
    /// reboot mutex, then `reset` written to the device
    /// ([`Outcome::assert_seed_reset`](crate::Outcome::assert_seed_reset)).
    pub fn seed_with(name: &str, inputs: &Inputs, ko: PathBuf) -> Guest {
        let scenario = format!(
            "insmod /modules/rust_emergency_reset.ko\necho \"RER-LOADED rc=$?\"\n\
             {STUCK_REBOOT}{DRAIN}\necho reset > /dev/emergency_reset\n"
        );
        Guest::new(name, inputs, &scenario)
            .without_our_module(inputs)
            .with_module(ko)
            .with_module(inputs.test_module("rer_oops_transition"))
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
    /// again, on the same RAM (QEMU does not clear guest RAM at a reset). Every
    /// boot runs the scenario; `/init` asks the harness which boot it is
    /// ([`WHICH_BOOT`]) and exports the answer as `RER_BOOT` (1, 2, ...), on
    /// which the scenario branches. The run ends as
    /// [`Ending::GuestReset`](crate::Ending::GuestReset) when the guest resets
    /// the `n`-th time (QEMU then stops as with `-no-reboot`: the harness sets
    /// QMP `set-action reboot=shutdown` when the last boot's `/init` asks), and
    /// as [`Ending::Done`](crate::Ending::Done) when any boot prints [`DONE`].
    /// See [`Outcome::guest_resets`](crate::Outcome::guest_resets) (what counts
    /// as a reset: SeaBIOS adds one of its own) and
    /// [`Outcome::boot_console`](crate::Outcome::boot_console).
    ///
    /// `n` = 1, the default, is one boot with `-no-reboot`, where `/init`
    /// asks nothing and `RER_BOOT` is 1. The time limit covers all boots.
    pub fn boots(mut self, n: u32) -> Guest {
        assert!(n >= 1, "a guest boots at least once");
        self.boots = n;
        self
    }

    /// The guest's initramfs: [`INIT`], the scenario, busybox, the modules
    /// and binaries, and for a guest with a network its NIC's modules and
    /// `/net-up.sh`; behind the FADT override's archive (`acpi::early_cpio`:
    /// empty without [`Guest::fadt_reset`]). Also what a guest's own kernel
    /// boots next: the crash kernel `kexec -p` loads (`tests/kdump.rs`).
    pub fn initramfs(&self, inputs: &Inputs) -> Vec<u8> {
        let mut archive = cpio::Archive::new();
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "modules"] {
            archive.dir(d);
        }
        archive.char_dev("dev/console", 5, 1);
        archive.file("init", 0o755, INIT.as_bytes());
        archive.file("scenario.sh", 0o644, self.scenario.as_bytes());
        if self.boots > 1 {
            // Makes `/init` ask which boot it is (INIT, WHICH_BOOT).
            archive.file("boots", 0o644, format!("{}\n", self.boots).as_bytes());
        }
        if self.log_at_reset {
            // Makes `/init` say where the kernel's log is (INIT, PRINTK_RING).
            archive.file("printk-ring", 0o644, b"");
        }
        archive.file("bin/busybox", 0o755, &fs::read(busybox()).unwrap());
        for m in &self.modules {
            let name = m.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("modules/{name}"), 0o644, &fs::read(m).unwrap());
        }
        for b in &self.binaries {
            let name = b.file_name().unwrap().to_str().unwrap();
            archive.file(&format!("bin/{name}"), 0o755, &fs::read(b).unwrap());
        }
        for (path, contents) in &self.files {
            if let Some((dir, _)) = path.rsplit_once('/') {
                archive.dir(dir);
            }
            archive.file(path, 0o644, contents);
        }
        if let Some(net_modules) = &self.net {
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
        let mut image = acpi::early_cpio(self, inputs);
        image.extend(archive.finish());
        image
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
# A kernel whose console prints from a thread (PREEMPT_RT) may reset before
# its last lines reach the console: where its log is (/printk-ring:
# Guest::log_at_reset), for the harness to read it in the stopped guest's RAM.
if [ -e /printk-ring ]; then
	echo "RER-PRINTK-RING $(awk 'NF == 3 && ($3 == "prb" || $3 == "page_offset_base" || $3 == "_text") { printf "%s=%s ", $3, $1 }' /proc/kallsyms)code=$(sed -n 's/^ *\([0-9a-f]*\)-[0-9a-f]* : Kernel code$/\1/p' /proc/iomem)"
fi
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
