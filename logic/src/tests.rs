// SPDX-License-Identifier: GPL-2.0

//! Unit tests of the logic the module shares with the host.

use crate::*;

#[test]
fn reset_is_accepted_with_and_without_newline() {
    assert_eq!(parse_command(b"reset"), Ok(Command::Reset(None)));
    assert_eq!(parse_command(b"reset\n"), Ok(Command::Reset(None)));
}

#[test]
fn reset_with_a_method_names_that_method() {
    for m in Method::ALL {
        let mut buf = [0u8; MAX_COMMAND_LEN];
        let cmd = b"reset ";
        buf[..cmd.len()].copy_from_slice(cmd);
        let n = m.name().len();
        buf[cmd.len()..cmd.len() + n].copy_from_slice(m.name().as_bytes());
        let end = cmd.len() + n;
        assert_eq!(parse_command(&buf[..end]), Ok(Command::Reset(Some(m))));
        buf[end] = b'\n';
        assert_eq!(parse_command(&buf[..=end]), Ok(Command::Reset(Some(m))));
    }
}

#[test]
fn anything_else_is_refused() {
    let bad: &[&[u8]] = &[
        b"",
        b"\n",
        b"hello\n",
        b"reset\n\n",
        b"reset \n",
        b" reset",
        b"reset  kbd",
        b"Reset",
        b"RESET\n",
        b"rese",
        b"resetx",
        b"reset\0",
        b"reset\r\n",
        b"reset\tkbd",
        b"kbd",
        b"reset kbd ",
        b"reset kbd\n\n",
    ];
    for input in bad {
        assert!(
            parse_command(input).is_err(),
            "accepted {:?}",
            std::string::String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        parse_command(b"reset nosuch\n"),
        Err(CommandError::UnknownMethod)
    );
    assert_eq!(
        parse_command(b"reset KBD"),
        Err(CommandError::UnknownMethod)
    );
    assert_eq!(parse_command(&[b'x'; 33]), Err(CommandError::TooLong));
}

#[test]
fn method_names_round_trip() {
    for m in Method::ALL {
        assert_eq!(Method::from_name(m.name().as_bytes()), Some(m));
    }
    assert_eq!(Method::from_name(b""), None);
}

#[test]
fn rate_limit_allows_a_burst_per_window() {
    const S: u64 = 1_000_000_000;
    let rl = RateLimit::new(5 * S, 3);
    assert!(rl.allow(100 * S));
    assert!(rl.allow(100 * S + 1));
    assert!(rl.allow(101 * S));
    assert!(!rl.allow(101 * S));
    assert!(!rl.allow(104 * S));
    // The next window begins once the interval has passed.
    assert!(rl.allow(105 * S));
    assert!(rl.allow(105 * S));
    assert!(rl.allow(105 * S));
    assert!(!rl.allow(106 * S));
}

#[test]
fn methods_parse_in_order() {
    assert_eq!(
        parse_methods(b"kbd,acpi,cf9,triple"),
        Ok(MethodList::DEFAULT)
    );
    assert_eq!(
        parse_methods(b"cf9,kbd").unwrap().as_slice(),
        &[Method::Cf9, Method::Kbd]
    );
    assert_eq!(
        parse_methods(b"triple").unwrap().as_slice(),
        &[Method::Triple]
    );
}

#[test]
fn bad_methods_are_refused_with_the_culprit() {
    assert_eq!(parse_methods(b""), Err(MethodsError::Empty));
    assert_eq!(
        parse_methods(b"kbd,foo,cf9"),
        Err(MethodsError::Unknown { start: 4, end: 7 })
    );
    assert_eq!(
        parse_methods(b"kbd,"),
        Err(MethodsError::Unknown { start: 4, end: 4 })
    );
    assert_eq!(
        parse_methods(b"kbd, acpi"),
        Err(MethodsError::Unknown { start: 4, end: 9 })
    );
    assert_eq!(
        parse_methods(b"KBD"),
        Err(MethodsError::Unknown { start: 0, end: 3 })
    );
    assert_eq!(
        parse_methods(b"kbd,acpi,kbd"),
        Err(MethodsError::Repeated(Method::Kbd))
    );
}

#[test]
fn sysrq_key_is_one_alphanumeric_or_none() {
    assert_eq!(parse_sysrq_key(b""), Ok(None));
    assert_eq!(parse_sysrq_key(b"x"), Ok(Some(b'x')));
    assert_eq!(parse_sysrq_key(b"7"), Ok(Some(b'7')));
    assert_eq!(parse_sysrq_key(b"Y"), Ok(Some(b'Y')));
    for bad in [&b"xy"[..], b" ", b"-", b"\n", b"x\n", b"\xff"] {
        assert_eq!(parse_sysrq_key(bad), Err(BadSysrqKey), "{bad:?}");
    }
}

fn reg(space: u8, address: u64) -> ResetRegister {
    ResetRegister {
        space,
        address,
        value: 0x0f,
    }
}

#[test]
fn acpi_reset_register_follows_drivers_acpi_reboot_rules() {
    let ok = ACPI_FADT_RESET_REGISTER;
    assert_eq!(acpi_target(0, ok, &reg(1, 0xcf9)), Err(Unavailable::NoFadt));
    assert_eq!(
        acpi_target(1, ok, &reg(1, 0xcf9)),
        Err(Unavailable::FadtRevision(1))
    );
    assert_eq!(
        acpi_target(2, 0, &reg(1, 0xcf9)),
        Err(Unavailable::NoResetFlag)
    );
    assert_eq!(
        acpi_target(3, ok, &reg(1, 0)),
        Err(Unavailable::ZeroAddress)
    );
    assert_eq!(
        acpi_target(2, ok, &reg(1, 0xcf9)),
        Ok(AcpiTarget::Io(0xcf9))
    );
    assert_eq!(
        acpi_target(3, ok, &reg(1, 0x1_0000)),
        Err(Unavailable::AddressSpace(1))
    );
    assert_eq!(
        acpi_target(5, ok, &reg(0, 0xfea0_0202)),
        Ok(AcpiTarget::Memory(0xfea0_0202))
    );
    assert_eq!(
        acpi_target(3, ok, &reg(0x7f, 0x10)),
        Err(Unavailable::AddressSpace(0x7f))
    );
}

#[test]
fn acpi_pci_config_register_becomes_a_type1_access_on_bus_0() {
    let ok = ACPI_FADT_RESET_REGISTER;
    // Device 0x1f, function 3, offset 0x4a.
    let address = (0x1f << 32) | (3 << 16) | 0x4a;
    assert_eq!(
        acpi_target(3, ok, &reg(2, address)),
        Ok(AcpiTarget::PciConfig {
            address: 0x8000_0000 | (0x1f << 11) | (3 << 8) | 0x48,
            data_port: 0xcfe,
        })
    );
    assert_eq!(
        acpi_target(3, ok, &reg(2, 0x100)),
        Err(Unavailable::PciOffset(0x100))
    );
}

fn status_text(status: &Status<'_>) -> std::string::String {
    let mut buf = [0u8; 512];
    let mut out = BufWriter::new(&mut buf);
    format_status(status, &mut out).unwrap();
    std::string::String::from_utf8(out.as_bytes().to_vec()).unwrap()
}

#[test]
fn status_format_is_stable() {
    let status = Status {
        order: &[Method::Acpi, Method::Kbd],
        availability: [
            Err(Unavailable::NoI8042),
            Ok(()),
            Err(Unavailable::NoCf9),
            Ok(()),
        ],
        reset_register: Some(ResetRegister {
            space: 1,
            address: 0xcf9,
            value: 0x0f,
        }),
        sysrq_key: Some(b'x'),
        nmi: true,
        on_oops: Some(5),
        crash_kernel: false,
        triggers: 3,
        refused: 12,
        takeovers: 1,
    };
    assert_eq!(
        status_text(&status),
        "order: acpi,kbd\n\
         method.kbd: unavailable: no 8042: port 0x64 reads 0xff\n\
         method.acpi: available\n\
         method.cf9: unavailable: no reset-control register: port 0xcf9 reads 0xff\n\
         method.triple: available\n\
         acpi_reset_register: io 0xcf9 value 0x0f\n\
         sysrq_key: x\n\
         nmi: on\n\
         on_oops: 5\n\
         triggers: 3\n\
         refused: 12\n\
         takeovers: 1\n"
    );
    let none = Status {
        reset_register: None,
        sysrq_key: None,
        nmi: false,
        on_oops: None,
        ..status
    };
    let text = status_text(&none);
    assert!(text.contains("\nnmi: off\non_oops: off\n"), "{text}");
    assert!(text.contains("\nacpi_reset_register: none\n"), "{text}");
    assert!(text.contains("\nsysrq_key: none\n"), "{text}");
    let kdump = Status {
        on_oops: Some(0),
        crash_kernel: true,
        ..status
    };
    let text = status_text(&kdump);
    assert!(text.contains("\non_oops: 0, deferred to kdump\n"), "{text}");
    // Without on_oops there is nothing to defer.
    let text = status_text(&Status {
        on_oops: None,
        ..kdump
    });
    assert!(text.contains("\non_oops: off\n"), "{text}");
}

#[test]
fn the_longest_status_fits_the_module_buffer() {
    // The module formats into 512 bytes; the longest reasons and counters must fit.
    let status = Status {
        order: &Method::ALL,
        availability: [
            Err(Unavailable::NoI8042),
            Err(Unavailable::AddressSpace(255)),
            Err(Unavailable::NoCf9),
            Ok(()),
        ],
        reset_register: Some(ResetRegister {
            space: 255,
            address: u64::MAX,
            value: 0xff,
        }),
        sysrq_key: Some(b'x'),
        nmi: true,
        on_oops: Some(u32::MAX),
        crash_kernel: true,
        triggers: u64::MAX,
        refused: u64::MAX,
        takeovers: u64::MAX,
    };
    assert!(status_text(&status).len() < 512);
}

#[test]
fn buf_writer_fails_instead_of_truncating() {
    use core::fmt::Write;
    let mut buf = [0u8; 4];
    let mut w = BufWriter::new(&mut buf);
    assert!(w.write_str("abc").is_ok());
    assert!(w.write_str("de").is_err());
    assert_eq!(w.as_bytes(), b"abc");
}

#[test]
fn on_oops_is_off_at_minus_one_and_seconds_from_zero() {
    assert_eq!(parse_on_oops(-1), Ok(None));
    assert_eq!(parse_on_oops(0), Ok(Some(0)));
    assert_eq!(parse_on_oops(30), Ok(Some(30)));
    assert_eq!(parse_on_oops(-2), Err(BadOnOops));
    assert_eq!(parse_on_oops(i32::MIN), Err(BadOnOops));
}

/// What a reset sequence did, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Io {
    In(u16),
    Out(u16, u8),
    Delay(u32),
}

/// A model of the reset ports: the 8042's input buffer stays full for the
/// first `busy_polls` status reads (`u32::MAX`: forever); RST_CNT reads `cf9`.
struct Model {
    busy_polls: u32,
    cf9: u8,
    log: std::vec::Vec<Io>,
}

impl Model {
    fn new(busy_polls: u32, cf9: u8) -> Model {
        Model {
            busy_polls,
            cf9,
            log: std::vec::Vec::new(),
        }
    }

    fn delay_total(&self) -> u32 {
        self.log
            .iter()
            .map(|e| match e {
                Io::Delay(us) => *us,
                _ => 0,
            })
            .sum()
    }
}

impl ResetPorts for Model {
    fn inb(&mut self, port: u16) -> u8 {
        self.log.push(Io::In(port));
        match port {
            0x64 if self.busy_polls > 0 => {
                self.busy_polls = self
                    .busy_polls
                    .saturating_sub(u32::from(self.busy_polls != u32::MAX));
                0x02
            }
            0x64 => 0x00,
            0xcf9 => self.cf9,
            _ => 0xff,
        }
    }
    fn outb(&mut self, port: u16, value: u8) {
        self.log.push(Io::Out(port, value));
    }
    fn udelay(&mut self, us: u32) {
        self.log.push(Io::Delay(us));
    }
}

#[test]
fn the_8042_gets_ten_pulses_each_after_its_buffer_empties_with_50_us_either_side() {
    let mut m = Model::new(0, 0);
    i8042_reset(&mut m);
    let one = [
        Io::In(0x64),
        Io::Delay(50),
        Io::Out(0x64, 0xfe),
        Io::Delay(50),
    ];
    assert_eq!(m.log, one.repeat(10));
}

#[test]
fn the_8042_is_polled_every_2_us_until_it_takes_commands() {
    let mut m = Model::new(3, 0);
    i8042_reset(&mut m);
    let mut first = std::vec::Vec::new();
    for _ in 0..3 {
        first.extend([Io::In(0x64), Io::Delay(2)]);
    }
    first.extend([
        Io::In(0x64),
        Io::Delay(50),
        Io::Out(0x64, 0xfe),
        Io::Delay(50),
    ]);
    assert_eq!(m.log[..first.len()], first[..]);
    assert_eq!(
        m.log.iter().filter(|e| **e == Io::Out(0x64, 0xfe)).count(),
        10
    );
}

#[test]
fn a_stuck_8042_is_waited_for_5_ms_per_pulse_and_pulsed_anyway() {
    let mut m = Model::new(u32::MAX, 0);
    i8042_reset(&mut m);
    assert_eq!(
        m.log.iter().filter(|e| **e == Io::Out(0x64, 0xfe)).count(),
        10
    );
    assert_eq!(
        m.log.iter().filter(|e| **e == Io::Delay(2)).count(),
        10 * 2500
    );
    assert_eq!(m.delay_total(), 10 * (5_000 + 100));
}

#[test]
fn cf9_keeps_the_other_bits_requests_a_hard_reset_then_a_cold_one() {
    for (reads, arm, fire) in [(0x00, 0x02, 0x0e), (0x0f, 0x03, 0x0f), (0xf1, 0xf3, 0xff)] {
        let mut m = Model::new(0, reads);
        cf9_reset(&mut m);
        assert_eq!(
            m.log,
            [
                Io::In(0xcf9),
                Io::Out(0xcf9, arm),
                Io::Delay(50),
                Io::Out(0xcf9, fire),
                Io::Delay(50)
            ]
        );
    }
}

#[test]
fn every_method_present_and_dead_fails_within_the_documented_250_ms() {
    // 10 x (5 ms + 100 us) + 100 us + 3 x 50 ms; `logic.rs` asserts <= 250 ms at compile time.
    assert_eq!(WORST_CASE_US, 201_100);
}

#[test]
fn only_an_attempt_stalled_past_the_eio_bound_is_taken_over() {
    let bound = u64::from(EIO_BOUND_US) * 1000;
    let since = 5_000_000_000;
    // None under way: nothing to take over (the trigger simply takes the attempt).
    assert!(!takes_over(0, since));
    // Within the bound the attempt may still reset the machine: EBUSY, as before.
    assert!(!takes_over(since, since));
    assert!(!takes_over(since, since + bound));
    assert!(takes_over(since, since + bound + 1));
    // A clock read before the attempt's own (another CPU's) is no stall.
    assert!(!takes_over(since, since - 1));
}
