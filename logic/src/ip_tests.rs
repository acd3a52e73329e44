// SPDX-License-Identifier: GPL-2.0

//! Host tests of `ip.rs`: headers built here byte by byte from RFC 791, RFC
//! 8200 and RFC 768, and random bytes.

use crate::{
    ip::{
        header_len,
        udp,
        BadDatagram,
        Datagram,
        Family,
        IP_MIN_HEADER,
        MAX_HEADERS, //
    },
    packet::Addr,
};
use std::{
    vec,
    vec::Vec, //
};

const SRC4: [u8; 4] = [192, 0, 2, 1];
const DST4: [u8; 4] = [192, 0, 2, 2];
const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv4 packet: `options` bytes of options (a multiple of 4), protocol
/// `proto`, a UDP header to `port` claiming `udp_len`, and `payload`.
fn v4(options: usize, proto: u8, port: u16, udp_len: u16, payload: &[u8]) -> Vec<u8> {
    let ihl = 20 + options;
    let total = (ihl + 8 + payload.len()) as u16;
    let mut p = Vec::new();
    p.push(0x40 | (ihl / 4) as u8);
    p.push(0);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&SRC4);
    p.extend_from_slice(&DST4);
    p.extend(core::iter::repeat_n(1u8, options));
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// An IPv6 packet with next header `next`, then as [`v4`].
fn v6(next: u8, port: u16, udp_len: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&SRC6);
    p.extend_from_slice(&DST6);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&port.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// What the hook does: the fixed header, then all the headers.
fn decode(family: Family, packet: &[u8]) -> Option<Result<Datagram, BadDatagram>> {
    let min = family.min_header();
    let len = header_len(family, packet.get(..min)?)?;
    Some(udp(family, packet.get(..len)?))
}

#[test]
fn ipv4_udp_with_and_without_options() {
    for options in [0, 4, 40] {
        let p = v4(options, 17, 5555, 8 + 5, b"hello");
        let d = decode(Family::V4, &p).unwrap().unwrap();
        assert_eq!(d.source, Addr::V4(SRC4));
        assert_eq!(d.dest, Addr::V4(DST4));
        assert_eq!(d.dest_port, 5555);
        assert_eq!(&p[d.payload_at..d.payload_at + d.payload_len], b"hello");
        assert!(d.payload_at <= MAX_HEADERS);
    }
}

#[test]
fn ipv6_udp_right_after_the_fixed_header() {
    let p = v6(17, 5555, 8 + 5, b"hello");
    let d = decode(Family::V6, &p).unwrap().unwrap();
    assert_eq!(d.source, Addr::V6(SRC6));
    assert_eq!(d.dest, Addr::V6(DST6));
    assert_eq!(d.dest_port, 5555);
    assert_eq!(&p[d.payload_at..d.payload_at + d.payload_len], b"hello");
    assert_eq!(Family::V6.min_header(), IP_MIN_HEADER);
}

#[test]
fn other_protocols_and_extension_headers_are_not_ours() {
    // TCP, ICMP; IPv6 hop-by-hop, fragment, ICMPv6.
    for proto in [6, 1] {
        assert_eq!(
            header_len(Family::V4, &v4(0, proto, 5555, 13, b"hello")),
            None
        );
    }
    for next in [0, 44, 58] {
        assert_eq!(header_len(Family::V6, &v6(next, 5555, 13, b"hello")), None);
    }
    // A version that does not match the hook's family.
    assert_eq!(
        header_len(Family::V6, &v4(20, 17, 5555, 13, b"hello")),
        None
    );
    assert_eq!(
        header_len(Family::V4, &v6(17, 5555, 13, b"hello")[..20]),
        None
    );
    // An IHL under 5.
    let mut p = v4(0, 17, 5555, 13, b"hello");
    p[0] = 0x44;
    assert_eq!(header_len(Family::V4, &p), None);
}

#[test]
fn a_bad_udp_length_keeps_the_port_and_addresses() {
    for (udp_len, ok) in [(0, false), (7, false), (8, true), (13, true), (14, false)] {
        let p4 = v4(0, 17, 5555, udp_len, b"hello");
        let p6 = v6(17, 5555, udp_len, b"hello");
        for (family, p) in [(Family::V4, p4), (Family::V6, p6)] {
            match decode(family, &p).unwrap() {
                Ok(d) => {
                    assert!(ok, "{udp_len}");
                    assert_eq!(d.payload_len, udp_len as usize - 8);
                }
                Err(BadDatagram::BadLength { dest_port, .. }) => {
                    assert!(!ok, "{udp_len}");
                    assert_eq!(dest_port, 5555);
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}

#[test]
fn headers_of_the_wrong_length_are_refused() {
    let p = v4(0, 17, 5555, 13, b"hello");
    assert_eq!(udp(Family::V4, &p[..27]), Err(BadDatagram::NotUdp));
    assert_eq!(udp(Family::V4, &p[..29]), Err(BadDatagram::NotUdp));
    assert_eq!(header_len(Family::V4, &p[..5]), None);
}

#[test]
fn fuzz_random_headers_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let iterations = crate::fuzz::iterations();
    for _ in 0..iterations {
        let mut b = [0u8; MAX_HEADERS];
        for byte in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        // Make half of them claim to be IP/UDP, to reach `udp`.
        if x & 1 == 0 {
            b[0] = 0x40 | (b[0] & 0x0f);
            b[9] = 17;
            b[6] = 17;
        }
        let n = (x >> 8) as usize % (MAX_HEADERS + 1);
        for family in [Family::V4, Family::V6] {
            let _ = header_len(family, &b[..n]);
            let _ = udp(family, &b[..n]);
        }
    }
}
