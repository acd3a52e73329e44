// SPDX-License-Identifier: GPL-2.0

//! Tests of the sender library: run with `cargo test`. HMAC-SHA256 against
//! the RFC 4231 test vectors, key files, and the payload's format.

use emergency_reset_send::{
    hmac_sha256, packet, parse_hex_key, read_key_file, signed_text, to_hex, COMMANDS,
};
use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

/// RFC 4231 section 4: (key, data, HMAC-SHA-256 in hex).
fn rfc4231() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
    vec![
        (
            vec![0x0b; 20],
            b"Hi There".to_vec(),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe".to_vec(),
            b"what do ya want for nothing?".to_vec(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            vec![0xaa; 20],
            vec![0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            (1..=25).collect(),
            vec![0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            vec![0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
        (
            vec![0xaa; 131],
            b"This is a test using a larger than block-size key and a larger than \
              block-size data. The key needs to be hashed before being used by the \
              HMAC algorithm."
                .to_vec(),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
        ),
    ]
}

#[test]
fn hmac_sha256_matches_rfc_4231() {
    for (i, (key, data, want)) in rfc4231().into_iter().enumerate() {
        assert_eq!(to_hex(&hmac_sha256(&key, &data)), want, "vector {i}");
    }
    // Test case 5 gives only the first 128 bits.
    let mac = hmac_sha256(&[0x0c; 20], b"Test With Truncation");
    assert_eq!(to_hex(&mac[..16]), "a3b6167473100ee06e0c796c2955552b");
}

#[test]
fn hex_keys() {
    let hex = "00112233445566778899AABBCCDDEEFF";
    let key = parse_hex_key(&format!("  {hex}\n")).unwrap();
    assert_eq!(to_hex(&key), hex.to_lowercase());
    assert!(parse_hex_key("").is_err());
    assert!(parse_hex_key(&hex[..30]).is_err());
    assert!(parse_hex_key(&format!("{hex}0")).is_err());
    assert!(parse_hex_key(&"ab".repeat(64)).is_ok());
    assert!(parse_hex_key(&"ab".repeat(65)).is_err());
    assert!(parse_hex_key(&format!("0x{}", &hex[2..])).is_err());
    assert!(parse_hex_key(&format!("{} {}", &hex[..16], &hex[16..])).is_err());
}

/// A fresh file in the temporary directory.
pub fn temp_file(name: &str, content: &str, mode: u32) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "emergency-reset-send-{}-{name}",
        std::process::id()
    ));
    fs::write(&path, content).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn key_files_must_be_private() {
    let hex = "000102030405060708090a0b0c0d0e0f";
    for mode in [0o644, 0o604, 0o602, 0o601, 0o666, 0o777] {
        let path = temp_file(&format!("open{mode:o}"), hex, mode);
        let err = read_key_file(&path).unwrap_err();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        fs::remove_file(&path).unwrap();
    }
    for mode in [0o600, 0o400, 0o640] {
        let path = temp_file(&format!("private{mode:o}"), &format!("{hex}\n"), mode);
        assert_eq!(read_key_file(&path).unwrap(), (0..16).collect::<Vec<u8>>());
        fs::remove_file(&path).unwrap();
    }
    let missing = std::env::temp_dir().join("emergency-reset-send-no-such-file");
    assert!(read_key_file(&missing)
        .unwrap_err()
        .contains("no-such-file"));
    let path = temp_file("short", "abcd", 0o600);
    assert!(read_key_file(&path).is_err());
    fs::remove_file(&path).unwrap();
}

#[test]
fn packet_format() {
    let key = [0x11u8; 32];
    let dest: IpAddr = "192.0.2.7".parse().unwrap();
    let p = packet(
        &key,
        "reset-kbd",
        1_764_590_000_123,
        "0123456789abcdef",
        dest,
        5555,
    );
    let text = signed_text(
        "reset-kbd",
        1_764_590_000_123,
        "0123456789abcdef",
        dest,
        5555,
    );
    assert_eq!(
        text,
        "ERST1 reset-kbd 1764590000123 0123456789abcdef 192.0.2.7 5555"
    );
    let mac = to_hex(&hmac_sha256(&key, text.as_bytes()));
    assert_eq!(
        p,
        format!("ERST1 reset-kbd 1764590000123 0123456789abcdef {mac}\n")
    );
    // IPv6 as RFC 5952, IPv4-mapped with a dotted quad.
    let v6: IpAddr = "2001:DB8:0:0:0:0:0:1".parse().unwrap();
    assert_eq!(
        signed_text("reset", 0, "0000000000000000", v6, 1),
        "ERST1 reset 0 0000000000000000 2001:db8::1 1"
    );
    let mapped: IpAddr = "::ffff:10.0.2.15".parse().unwrap();
    assert!(signed_text("reset", 0, "0000000000000000", mapped, 1).contains(" ::ffff:10.0.2.15 "));
    assert_eq!(COMMANDS.len(), 5);
}
