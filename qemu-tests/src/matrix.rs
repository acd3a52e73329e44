// SPDX-License-Identifier: GPL-2.0

//! The fault matrix: the deliberately broken guests, the triggers, what each
//! cell can show, and the table `Documentation/fault-matrix.md` is written
//! from (by `cargo run --bin matrix`, after `tests/faults.rs` ran).

use std::{
    fs,
    path::PathBuf, //
};

/// A way the guest is broken before the trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// An oops while holding `system_transition_mutex` (seed 000).
    OopsMutex,
    /// A reboot notifier that never returns, and a `reboot -f` stuck in it.
    HungNotifier,
    /// An oops while holding the console lock.
    OopsConsole,
    /// Every CPU but CPU 0 spins with interrupts off.
    LockupOthers,
    /// Every CPU spins with interrupts off.
    LockupAll,
}

impl Fault {
    /// Every fault, in table order.
    pub const ALL: [Fault; 5] = [
        Fault::OopsMutex,
        Fault::HungNotifier,
        Fault::OopsConsole,
        Fault::LockupOthers,
        Fault::LockupAll,
    ];

    /// A short identifier for file and test names.
    pub fn id(self) -> &'static str {
        match self {
            Fault::OopsMutex => "oops_mutex",
            Fault::HungNotifier => "hung_notifier",
            Fault::OopsConsole => "oops_console",
            Fault::LockupOthers => "lockup_others",
            Fault::LockupAll => "lockup_all",
        }
    }

    /// The row label of the table.
    pub fn label(self) -> &'static str {
        match self {
            Fault::OopsMutex => "1. oops holding `system_transition_mutex`",
            Fault::HungNotifier => "2. reboot notifier never returns (`reboot -f` stuck in it)",
            Fault::OopsConsole => "3. oops holding the console lock",
            Fault::LockupOthers => "4. every CPU but one spins, interrupts off",
            Fault::LockupAll => "5. every CPU spins, interrupts off",
        }
    }

    /// The test module (in `qemu-tests/modules/`) that breaks the guest.
    pub fn module(self) -> &'static str {
        match self {
            Fault::OopsMutex => "rer_oops_transition",
            Fault::HungNotifier => "rer_hung_reboot_notifier",
            Fault::OopsConsole => "rer_oops_console",
            Fault::LockupOthers | Fault::LockupAll => "rer_lockup",
        }
    }

    /// The guest's shell commands that break it.
    pub fn setup(self) -> &'static str {
        match self {
            Fault::OopsMutex => "insmod /modules/rer_oops_transition.ko",
            Fault::HungNotifier => {
                // First the notifier's own line (up to 10 s): before it, `reboot -f`
                // may be in D in its sync(). The notifier sleeps 1 s at a time: D, but
                // now and then R between two sleeps (seen once on the lockdep kernel).
                // Up to 5 looks for D.
                "insmod /modules/rer_hung_reboot_notifier.ko\nreboot -f &\n\
                 for i in $(seq 100); do dmesg | grep -q 'reboot notifier called' && break; \
                 sleep 0.1; done\n\
                 for i in 1 2 3 4 5; do s=$(cut -d' ' -f3 /proc/$!/stat); \
                 [ \"$s\" = D ] && break; sleep 1; done\n\
                 echo \"RER-REBOOT-STATE $s\""
            }
            Fault::OopsConsole => "insmod /modules/rer_oops_console.ko",
            // The shell and all it starts stay on CPU 0, the one left running. Where the
            // keyboard's and the UART's IRQs go decides whether their sysrq input is seen.
            Fault::LockupOthers => {
                "echo \"RER-IRQ-CPUS kbd=$(cat /proc/irq/1/effective_affinity_list) \
                 serial=$(cat /proc/irq/4/effective_affinity_list)\"\n\
                 taskset -p 1 $$ >/dev/null\ninsmod /modules/rer_lockup.ko\n\
                 echo \"RER-LOCKUP-TEXT $(cat /sys/module/rer_lockup/sections/.text)\"\nsleep 4"
            }
            // 1 s after the load every CPU spins, this shell's too: it never wakes.
            Fault::LockupAll => {
                "insmod /modules/rer_lockup.ko all=1\n\
                 echo \"RER-LOCKUP-TEXT $(cat /sys/module/rer_lockup/sections/.text)\"\nsleep 4"
            }
        }
    }

    /// What the console shows once the fault is in place: the broken
    /// module's own line, and the oops, or the `reboot -f` that it
    /// holds in D state, or where the lockup module sits (its CPUs are then
    /// seen spinning there by QEMU: [`Fault::locked_cpus`]).
    pub fn signs(self) -> &'static [&'static str] {
        match self {
            Fault::OopsMutex => &[
                "rer_oops_transition: holding system_transition_mutex, oopsing now",
                "Oops: ",
            ],
            Fault::HungNotifier => &[
                "rer_hung_reboot_notifier: reboot notifier called; sleeping forever",
                "RER-REBOOT-STATE D",
            ],
            Fault::OopsConsole => &[
                "rer_oops_console: taking the console lock, oopsing",
                "Oops: ",
            ],
            Fault::LockupOthers => &[
                "rer_lockup: every CPU but CPU 0 locks up in 1 s",
                "RER-LOCKUP-TEXT 0x",
            ],
            Fault::LockupAll => &[
                "rer_lockup: every CPU locks up in 1 s",
                "RER-LOCKUP-TEXT 0x",
            ],
        }
    }

    /// The CPUs of a guest of `cpus` CPUs that spin with interrupts off in the
    /// lockup module once the fault is in place, as QEMU sees them.
    pub fn locked_cpus(self, cpus: usize) -> std::ops::Range<usize> {
        match self {
            Fault::LockupOthers => 1..cpus,
            Fault::LockupAll => 0..cpus,
            _ => 0..0,
        }
    }
}

/// What asks for the reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// `echo reset > /dev/emergency_reset`.
    Device,
    /// `echo x > /proc/sysrq-trigger`.
    SysrqProc,
    /// Alt+SysRq+x on the PS/2 keyboard (QMP `send-key`).
    Keyboard,
    /// A break on the serial console, then `x` (QMP `chardev-send-break`).
    SerialBreak,
    /// An NMI from outside (QMP `inject-nmi`), with `nmi=1`.
    Nmi,
    /// The anchor: `reboot -f`.
    RebootF,
    /// The anchor: `echo b > /proc/sysrq-trigger`.
    SysrqB,
}

impl Trigger {
    /// Every trigger, in table order.
    pub const ALL: [Trigger; 7] = [
        Trigger::Device,
        Trigger::SysrqProc,
        Trigger::Keyboard,
        Trigger::SerialBreak,
        Trigger::Nmi,
        Trigger::RebootF,
        Trigger::SysrqB,
    ];

    /// A short identifier for file and test names.
    pub fn id(self) -> &'static str {
        match self {
            Trigger::Device => "device",
            Trigger::SysrqProc => "sysrq_proc",
            Trigger::Keyboard => "keyboard",
            Trigger::SerialBreak => "serial",
            Trigger::Nmi => "nmi",
            Trigger::RebootF => "reboot",
            Trigger::SysrqB => "sysrq_b",
        }
    }

    /// The column label of the table.
    pub fn label(self) -> &'static str {
        match self {
            Trigger::Device => "`echo reset > /dev/emergency_reset`",
            Trigger::SysrqProc => "`echo x > /proc/sysrq-trigger`",
            Trigger::Keyboard => "Alt+SysRq+x",
            Trigger::SerialBreak => "serial break + x",
            Trigger::Nmi => "external NMI (`nmi=1`)",
            Trigger::RebootF => "`reboot -f`",
            Trigger::SysrqB => "sysrq-b",
        }
    }

    /// The guest command, for triggers issued from the guest's userspace.
    pub fn command(self) -> Option<&'static str> {
        match self {
            Trigger::Device => Some("echo reset > /dev/emergency_reset"),
            Trigger::SysrqProc => Some("echo x > /proc/sysrq-trigger"),
            Trigger::RebootF => Some("reboot -f"),
            Trigger::SysrqB => Some("echo b > /proc/sysrq-trigger"),
            Trigger::Keyboard | Trigger::SerialBreak | Trigger::Nmi => None,
        }
    }

    /// How our module names this trigger in its log line; `None` for the anchors.
    pub fn log_name(self) -> Option<&'static str> {
        match self {
            Trigger::Device => Some("/dev/emergency_reset"),
            Trigger::SysrqProc | Trigger::Keyboard | Trigger::SerialBreak => Some("sysrq-x"),
            Trigger::Nmi => Some("nmi"),
            Trigger::RebootF | Trigger::SysrqB => None,
        }
    }
}

/// What a cell shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// QMP reported the guest's reset.
    Reset,
    /// The trigger was issued and was still blocked (D state) when the guest,
    /// not reset, ran its scenario to the end.
    Blocked,
    /// The trigger could not even be issued: no CPU ran the guest's userspace
    /// again, and QEMU shows every CPU still spinning at the end.
    CannotRun,
    /// The input was sent (QEMU answered `return`); nothing reset the guest,
    /// which still runs: its scenario ended, or QEMU shows a CPU not spinning.
    IgnoredAlive,
    /// The input was sent (QEMU answered `return`); nothing reset the guest,
    /// and QEMU shows every CPU still spinning at the end.
    IgnoredWedged,
}

impl Expect {
    /// The cell text.
    pub fn label(self) -> &'static str {
        match self {
            Expect::Reset => "reset",
            Expect::Blocked => "no reset: stuck",
            Expect::CannotRun => "impossible: no CPU runs userspace",
            Expect::IgnoredAlive => "no reset: alive",
            Expect::IgnoredWedged => "no reset: wedged",
        }
    }

    fn from_label(label: &str) -> Option<Expect> {
        [
            Expect::Reset,
            Expect::Blocked,
            Expect::CannotRun,
            Expect::IgnoredAlive,
            Expect::IgnoredWedged,
        ]
        .into_iter()
        .find(|e| e.label() == label)
    }
}

/// Where the cells of the runs on kernel `kernel` are kept ([`crate::Inputs::kernel_name`]).
fn results_dir(kernel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/matrix")
        .join(kernel)
}

/// Records what a cell showed on kernel `kernel`, for its table.
pub fn record(kernel: &str, fault: Fault, trigger: Trigger, got: Expect) {
    let dir = results_dir(kernel);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join(format!("{}__{}", fault.id(), trigger.id())),
        got.label(),
    )
    .unwrap();
}

/// The markdown table from the cells recorded on kernel `kernel`; an error
/// names the missing ones.
pub fn table(kernel: &str) -> Result<String, String> {
    let mut missing = Vec::new();
    let mut out = String::from("| fault \\ trigger |");
    for t in Trigger::ALL {
        out += &format!(" {} |", t.label());
    }
    out += "\n|---|";
    out += &"---|".repeat(Trigger::ALL.len());
    out += "\n";
    for f in Fault::ALL {
        out += &format!("| {} |", f.label());
        for t in Trigger::ALL {
            let path = results_dir(kernel).join(format!("{}__{}", f.id(), t.id()));
            match fs::read_to_string(&path)
                .ok()
                .as_deref()
                .and_then(Expect::from_label)
            {
                Some(e) => out += &format!(" {} |", e.label()),
                None => {
                    missing.push(format!("{}__{}", f.id(), t.id()));
                    out += " ? |";
                }
            }
        }
        out += "\n";
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!(
            "{kernel}: cells not recorded (run tests/faults.rs in full): {missing:?}"
        ))
    }
}
