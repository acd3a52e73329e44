// SPDX-License-Identifier: GPL-2.0

//! QEMU's QMP, from which alone the harness learns what happened to the
//! machine: the connection ([`connect`]), commands and their answers
//! ([`Vm::qmp_command`], [`Vm::qmp_exchange`], [`Vm::qmp_send`]), and the
//! vCPUs as QEMU's human monitor shows them ([`VCpu`], [`Vm::vcpus`]).
//!
//! It sends commands and claims their answers. QMP's reader thread, its
//! events and the run's ending are [`Vm`]'s (`Vm::handle`), which the wait
//! for an answer only calls.

use crate::{
    Ending,
    Vm, //
};
use serde_json::Value;
use std::{
    fs,
    io::Write,
    os::unix::net::UnixStream,
    path::{
        Path,
        PathBuf, //
    },
    process::Child,
    sync::atomic::{
        AtomicU32,
        Ordering, //
    },
    thread,
    time::{
        Duration,
        Instant, //
    },
};

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
        !self.interrupts_on && self.runs_in(text)
    }

    /// Running (not halted) at an address in `text`, interrupts on or off.
    pub fn runs_in(&self, text: std::ops::Range<u64>) -> bool {
        !self.halted && text.contains(&self.rip)
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

/// Where a new QEMU's QMP socket goes: a short name in the temporary
/// directory, unique to this process and call. A Unix socket's path has at
/// most 107 bytes (`sun_path`); beside the guest's files it would grow with
/// the checkout's path, the kernel's release and the guest's name, and QEMU
/// refuses a longer one (a CI run lost `lockdown_confidentiality_refusals`
/// on `7.3.4+deb13-cloud-amd64` to it: 111 bytes).
pub(crate) fn socket_path() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("rer-{}-{n}.qmp", std::process::id()))
}

/// Connects to QEMU's QMP socket, waiting for QEMU to create it. A QEMU that
/// exits first fails the test with what it said on `stderr` (`qemu_log`).
pub(crate) fn connect(path: &Path, child: &mut Child, qemu_log: &Path) -> UnixStream {
    let start = Instant::now();
    loop {
        if let Ok(s) = UnixStream::connect(path) {
            return s;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "qemu-system-x86_64 exited before QMP was up: {status}: {}",
                fs::read_to_string(qemu_log).unwrap_or_default().trim()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QMP socket never appeared"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

impl Vm {
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
    pub(crate) fn vcpus_within(&mut self, wait: Duration) -> Vec<VCpu> {
        let answer = self.qmp_exchange(
            "human-monitor-command",
            &serde_json::json!({"command-line": "info registers -a"}),
            wait,
        );
        answer
            .and_then(|a| a["return"].as_str().map(VCpu::parse_all))
            .unwrap_or_default()
    }

    /// `len` bytes of the guest's RAM at physical address `at` (QMP
    /// `pmemsave` into the file `via`), or `None` when QEMU refused.
    pub(crate) fn read_ram(&mut self, at: u64, len: usize, via: &Path) -> Option<Vec<u8>> {
        let args = serde_json::json!({"val": at, "size": len, "filename": via});
        let answer = self.qmp_exchange("pmemsave", &args, Duration::from_secs(10))?;
        if answer.get("error").is_some() {
            return None;
        }
        fs::read(via).ok().filter(|b| b.len() == len)
    }

    /// Sends a QMP command with a fresh id and waits up to `wait` for the
    /// answer carrying that id, handling every other report meanwhile.
    pub(crate) fn qmp_exchange(
        &mut self,
        command: &str,
        arguments: &Value,
        wait: Duration,
    ) -> Option<Value> {
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

    /// Sends a QMP command without waiting for its answer, which is left
    /// unclaimed: for [`Vm::handle`], which cannot wait for one.
    pub(crate) fn qmp_send(&mut self, command: &str, arguments: Value) {
        self.qmp_id += 1;
        let msg =
            serde_json::json!({"execute": command, "arguments": arguments, "id": self.qmp_id});
        let _ = writeln!(self.qmp, "{msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::socket_path;

    /// Every socket fits `sun_path` (107 bytes and the NUL), wherever the
    /// checkout is and whatever the guest and kernel are called, and no two
    /// QEMUs of one run share one.
    #[test]
    fn qmp_sockets_fit_sun_path_and_differ() {
        let (a, b) = (socket_path(), socket_path());
        assert!(a.as_os_str().len() <= 107, "{}", a.display());
        assert_ne!(a, b);
    }
}
