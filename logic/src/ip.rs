// SPDX-License-Identifier: GPL-2.0

//! The IP and UDP headers in front of a network-trigger packet, as netfilter's
//! `LOCAL_IN` hook sees them: the packet's first byte is its IP header's
//! (`skb->data` there is the network header, in both families), and the
//! kernel has already checked that header (version, length, checksum) and
//! reassembled IPv4 fragments.
//!
//! The hook reads the headers in two steps: [`IP_MIN_HEADER`] bytes, from which
//! [`header_len`] gives how many bytes the IP and UDP headers take together,
//! then that many bytes, which [`udp`] decodes. Only UDP straight after the
//! fixed IPv6 header is ours: a packet with IPv6 extension headers is left
//! to the stack.
//!
//! This file is `core`-only and allocation-free. It is built into the module
//! and into the host crate `logic/` (`cargo test`).

use crate::packet::Addr;

/// A packet's address family, from the hook it arrived at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4 (`NFPROTO_IPV4`).
    V4,
    /// IPv6 (`NFPROTO_IPV6`).
    V6,
}

/// The IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// The bytes of a UDP header.
pub const UDP_HEADER: usize = 8;
/// The bytes of the fixed IPv6 header.
const IPV6_HEADER: usize = 40;
/// The bytes of an IPv4 header without options.
const IPV4_HEADER: usize = 20;
/// The most bytes the IP and UDP headers take together (IPv4 with 40 bytes of options).
pub const MAX_HEADERS: usize = 60 + UDP_HEADER;

impl Family {
    /// The bytes to read first: the IP header without options.
    pub const fn min_header(self) -> usize {
        match self {
            Family::V4 => IPV4_HEADER,
            Family::V6 => IPV6_HEADER,
        }
    }
}

/// The most bytes [`Family::min_header`] asks for.
pub const IP_MIN_HEADER: usize = IPV6_HEADER;

/// From the first [`Family::min_header`] bytes of a packet, the bytes its IP
/// and UDP headers take together; `None` when the packet is no UDP (for
/// IPv6: no UDP right after the fixed header) or its header is not one the
/// kernel would have passed.
pub fn header_len(family: Family, ip: &[u8]) -> Option<usize> {
    match family {
        Family::V4 => {
            let (&vihl, proto) = (ip.first()?, *ip.get(9)?);
            let ihl = usize::from(vihl & 0x0f) * 4;
            (vihl >> 4 == 4 && ihl >= IPV4_HEADER && proto == IPPROTO_UDP)
                .then_some(ihl + UDP_HEADER)
        }
        Family::V6 => {
            let (&v, next) = (ip.first()?, *ip.get(6)?);
            (v >> 4 == 6 && next == IPPROTO_UDP).then_some(IPV6_HEADER + UDP_HEADER)
        }
    }
}

/// A UDP datagram's addresses, destination port and where its payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// The sender's address.
    pub source: Addr,
    /// The address the datagram was sent to, as this machine sees it.
    pub dest: Addr,
    /// The UDP destination port.
    pub dest_port: u16,
    /// Where the payload starts, from the packet's first byte.
    pub payload_at: usize,
    /// The payload's length in bytes, from the UDP header.
    pub payload_len: usize,
}

/// Why the headers are not those of a UDP datagram we can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadDatagram {
    /// Not UDP, or not right after the IP header we know ([`header_len`]).
    NotUdp,
    /// A UDP length under 8, or past the end of the IP packet: a datagram
    /// whose payload cannot be trusted, but whose addresses and port can.
    BadLength {
        /// The sender's address.
        source: Addr,
        /// The address the datagram was sent to.
        dest: Addr,
        /// The UDP destination port.
        dest_port: u16,
    },
}

/// Decodes the IP and UDP headers: `headers` holds exactly the first
/// [`header_len`] bytes of the packet.
pub fn udp(family: Family, headers: &[u8]) -> Result<Datagram, BadDatagram> {
    let len = header_len(family, headers).ok_or(BadDatagram::NotUdp)?;
    let (ip, udp) = match (
        headers.get(..len - UDP_HEADER),
        headers.get(len - UDP_HEADER..),
    ) {
        (Some(ip), Some(udp)) if udp.len() == UDP_HEADER => (ip, udp),
        _ => return Err(BadDatagram::NotUdp),
    };
    let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let (source, dest, ip_payload) = match family {
        Family::V4 => {
            let total = usize::from(be16(ip, 2));
            let mut s = [0u8; 4];
            let mut d = [0u8; 4];
            s.copy_from_slice(&ip[12..16]);
            d.copy_from_slice(&ip[16..20]);
            (Addr::V4(s), Addr::V4(d), total.checked_sub(ip.len()))
        }
        Family::V6 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            (Addr::V6(s), Addr::V6(d), Some(usize::from(be16(ip, 4))))
        }
    };
    let (dest_port, udp_len) = (be16(udp, 2), usize::from(be16(udp, 4)));
    match ip_payload {
        Some(room) if udp_len >= UDP_HEADER && udp_len <= room => Ok(Datagram {
            source,
            dest,
            dest_port,
            payload_at: len,
            payload_len: udp_len - UDP_HEADER,
        }),
        _ => Err(BadDatagram::BadLength {
            source,
            dest,
            dest_port,
        }),
    }
}
