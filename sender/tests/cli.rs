// SPDX-License-Identifier: GPL-2.0

//! Tests of the `emergency-reset-send` binary: run with `cargo test`. Only
//! `--print` and loopback addresses are used.

use emergency_reset_send::{hmac_sha256, signed_text, to_hex};
use std::fs;
use std::net::{IpAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn key_file(name: &str, mode: u32) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "emergency-reset-send-cli-{}-{name}",
        std::process::id()
    ));
    fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_emergency-reset-send"))
        .args(args)
        .output()
        .unwrap()
}

/// Checks a payload for `dest`:`port` and returns its command and time.
fn parse_back(payload: &str, dest: IpAddr, port: u16) -> (String, u64) {
    let line = payload.strip_suffix('\n').expect("a final newline");
    let f: Vec<&str> = line.split(' ').collect();
    assert_eq!(f.len(), 5, "{payload:?}");
    assert_eq!(f[0], "ERST1");
    let time: u64 = f[2].parse().unwrap();
    assert_eq!(f[3].len(), 16);
    assert!(f[3].bytes().all(|b| b"0123456789abcdef".contains(&b)));
    let key: Vec<u8> = (0..KEY_HEX.len() / 2)
        .map(|i| u8::from_str_radix(&KEY_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let text = signed_text(f[1], time, f[3], dest, port);
    assert_eq!(f[4], to_hex(&hmac_sha256(&key, text.as_bytes())));
    (f[1].to_string(), time)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[test]
fn print_writes_a_valid_payload() {
    let key = key_file("print", 0o600);
    let k = key.to_str().unwrap();
    let before = now_ms();
    let out = run(&["--key-file", k, "--to", "127.0.0.1:5555", "--print"]);
    assert!(out.status.success(), "{out:?}");
    let (command, time) = parse_back(
        std::str::from_utf8(&out.stdout).unwrap(),
        "127.0.0.1".parse().unwrap(),
        5555,
    );
    assert_eq!(command, "reset");
    assert!(time >= before && time <= now_ms(), "{time}");

    let out = run(&[
        "--key-file",
        k,
        "--to",
        "[::1]:6000",
        "--method",
        "triple",
        "--time",
        "42",
        "--print",
    ]);
    assert!(out.status.success(), "{out:?}");
    let p = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        parse_back(&p, "::1".parse().unwrap(), 6000),
        ("reset-triple".to_string(), 42)
    );

    // --as: signed for the address the target sees.
    let out = run(&[
        "--key-file",
        k,
        "--to",
        "localhost:5555",
        "--as",
        "10.0.2.15",
        "--method",
        "kbd",
        "--print",
    ]);
    assert!(out.status.success(), "{out:?}");
    let p = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        parse_back(&p, "10.0.2.15".parse().unwrap(), 5555).0,
        "reset-kbd"
    );
    // Two runs, two nonces.
    let a = run(&[
        "--key-file",
        k,
        "--to",
        "127.0.0.1:1",
        "--time",
        "1",
        "--print",
    ]);
    let b = run(&[
        "--key-file",
        k,
        "--to",
        "127.0.0.1:1",
        "--time",
        "1",
        "--print",
    ]);
    assert_ne!(a.stdout, b.stdout);
    fs::remove_file(key).unwrap();
}

#[test]
fn sends_one_datagram_to_loopback() {
    let key = key_file("send", 0o600);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let to = socket.local_addr().unwrap();
    let out = run(&[
        "--key-file",
        key.to_str().unwrap(),
        "--to",
        &to.to_string(),
        "--method",
        "cf9",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout.is_empty());
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(said.contains(&to.to_string()), "{said}");
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).unwrap();
    let p = std::str::from_utf8(&buf[..n]).unwrap();
    assert_eq!(parse_back(p, to.ip(), to.port()).0, "reset-cf9");
    fs::remove_file(key).unwrap();
}

#[test]
fn errors_exit_with_a_message() {
    let key = key_file("errors", 0o600);
    let k = key.to_str().unwrap();
    let usage_errors: &[&[&str]] = &[
        &[],
        &["--key-file", k],
        &["--to", "127.0.0.1:5555"],
        &[
            "--key-file",
            k,
            "--to",
            "127.0.0.1:5555",
            "--method",
            "nosuch",
        ],
        &["--key-file", k, "--to", "127.0.0.1:5555", "--method"],
        &["--key-file", k, "--to", "127.0.0.1"],
        &["--key-file", k, "--to", "127.0.0.1:0"],
        &["--key-file", k, "--to", "127.0.0.1:65536"],
        &["--key-file", k, "--to", "::1:5555"],
        &["--key-file", k, "--to", "[::1:5555"],
        &["--key-file", k, "--to", "127.0.0.1:5555", "--as", "nowhere"],
        &["--key-file", k, "--to", "127.0.0.1:5555", "--time", "-1"],
        &["--key-file", k, "--to", "127.0.0.1:5555", "--time", "+1"],
        &["--key-file", k, "--to", "127.0.0.1:5555", "--bogus"],
    ];
    for args in usage_errors {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let out = run(&[
        "--key-file",
        k,
        "--to",
        "127.0.0.1:5555",
        "--method",
        "nosuch",
    ]);
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.contains("nosuch") && said.contains("kbd, acpi, cf9 or triple"),
        "{said}"
    );
    // A key file others can read: refused, naming the file and the fix.
    let open = key_file("open", 0o644);
    let out = run(&[
        "--key-file",
        open.to_str().unwrap(),
        "--to",
        "127.0.0.1:5555",
        "--print",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.contains(open.to_str().unwrap()) && said.contains("chmod 600"),
        "{said}"
    );
    assert!(out.stdout.is_empty());
    let out = run(&[
        "--key-file",
        "/nonexistent/key",
        "--to",
        "127.0.0.1:5555",
        "--print",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    fs::remove_file(open).unwrap();
    fs::remove_file(key).unwrap();
}

#[test]
fn help_and_version_are_what_the_man_page_is_made_from() {
    let out = run(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap();
    // help2man's synopsis is the "Usage:" line; its sections, the headings.
    assert!(
        help.starts_with("Usage: emergency-reset-send --key-file FILE --to HOST:PORT"),
        "{help}"
    );
    for heading in ["\nOptions:\n", "\nExit status:\n", "\nSee also:\n"] {
        assert!(help.contains(heading), "no {heading:?} in:\n{help}");
    }
    // Every option the parser takes is described.
    for option in [
        "--key-file FILE",
        "--to HOST:PORT",
        "--method M",
        "--as ADDR",
        "--time MS",
        "--print",
        "--help",
        "--version",
    ] {
        assert!(
            help.contains(&format!("\n  {option} ")),
            "{option} undocumented in:\n{help}"
        );
    }
    assert_eq!(run(&["-h"]).stdout, help.as_bytes());

    let out = run(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("emergency-reset-send {}\n", env!("CARGO_PKG_VERSION"))
    );
    // Anywhere on the line, before or after other arguments.
    let out = run(&["--to", "127.0.0.1:5555", "--version"]);
    assert!(out.status.success(), "{out:?}");
}
