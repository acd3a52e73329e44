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
