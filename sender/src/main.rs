// SPDX-License-Identifier: GPL-2.0

//! `emergency-reset-send`: sends one authenticated reset packet to a machine
//! running `rust_emergency_reset` with `net_port=` and `net_key=` set.
//!
//! ```text
//! emergency-reset-send --key-file FILE --to HOST:PORT [--method M] [--as ADDR] [--time MS] [--print]
//! ```
//!
//! - `--key-file FILE`: the key, in hex, as given to the module's `net_key=`;
//!   the file must not be accessible to other users (`chmod 600 FILE`).
//! - `--to HOST:PORT`: where to send; HOST is an IPv4 address, `[IPv6]` or a
//!   name (its first address is used); PORT is the module's `net_port=`.
//! - `--method M`: reset with method M only (`kbd`, `acpi`, `cf9`, `triple`)
//!   rather than the module's configured order.
//! - `--as ADDR`: the destination address as the target sees it, when a NAT
//!   (e.g. QEMU's user network) sits between; default: the address of `--to`.
//! - `--time MS`: the Unix time in milliseconds to put in the packet;
//!   default: now. The target accepts only times within `net_window=` of its clock.
//! - `--print`: write the payload to standard output instead of sending it.
//! - `--help`, `--version`: print the help (the man page is made from it,
//!   with help2man) or the version, and exit.
//!
//! Exit status: 0 sent (or printed), 1 failed, 2 usage error.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use emergency_reset_send::{packet, random_nonce, read_key_file};

const USAGE: &str = "usage: emergency-reset-send --key-file FILE --to HOST:PORT \
                     [--method kbd|acpi|cf9|triple] [--as ADDR] [--time MS] [--print]";

/// `--help`: what the man page says (Debian's package makes it with help2man:
/// the usage, the description, then sections whose headings end with a colon).
const HELP: &str = "\
Usage: emergency-reset-send --key-file FILE --to HOST:PORT [--method M] [--as ADDR] [--time MS] [--print]

Resets a wedged machine over the network: sends one authenticated UDP datagram
to a machine running the rust_emergency_reset kernel module with net_port= and
net_key= set; the module's netfilter hook checks the datagram's HMAC-SHA256 and
resets that machine at once, however dead its userspace is.

Options:
  --key-file FILE  the key, in hex, as given to the module's net_key=; the file
                   must not be accessible to other users (chmod 600 FILE)
  --to HOST:PORT   where to send: HOST is an IPv4 address, [IPv6] or a name (its
                   first address is used); PORT is the module's net_port=
  --method M       reset with method M only (kbd, acpi, cf9 or triple) rather than
                   the module's configured order
  --as ADDR        the destination address as the target sees it, when a NAT sits
                   between; default: the address of --to
  --time MS        the Unix time in milliseconds to put in the packet; default: now.
                   The target accepts only times within its net_window= of its clock
  --print          write the payload to standard output instead of sending it
  --help           print this help and exit
  --version        print the version and exit

Exit status:
  0 sent (or printed), 1 failed, 2 usage error.

See also:
  The module's documentation: Documentation/admin-guide/emergency-reset.rst in
  its source, section \"Network trigger\".
";

/// The methods `--method` takes.
const METHODS: [&str; 4] = ["kbd", "acpi", "cf9", "triple"];

/// A failure: its message and the exit status.
struct Failure(String, u8);

fn usage(msg: impl Into<String>) -> Failure {
    Failure(format!("{}\n{USAGE}", msg.into()), 2)
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure(msg.into(), 1)
}

struct Args {
    key_file: PathBuf,
    host: String,
    port: u16,
    method: Option<String>,
    as_addr: Option<IpAddr>,
    time_ms: Option<u64>,
    print: bool,
}

/// Splits `HOST:PORT` or `[IPv6]:PORT`.
fn split_host_port(to: &str) -> Result<(String, u16), Failure> {
    let bad = || usage(format!("--to {to}: expected HOST:PORT or [IPv6]:PORT"));
    let (host, port) = if let Some(rest) = to.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(bad)?;
        host.parse::<std::net::Ipv6Addr>()
            .map_err(|_| usage(format!("--to {to}: {host} is not an IPv6 address")))?;
        (host, port)
    } else {
        to.rsplit_once(':').ok_or_else(bad)?
    };
    if host.is_empty() || host.contains(':') && !to.starts_with('[') {
        return Err(bad());
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 && !port.starts_with('+') => Ok((host.to_string(), p)),
        _ => Err(usage(format!(
            "--to {to}: the port must be a number from 1 to 65535"
        ))),
    }
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, Failure> {
    let mut key_file = None;
    let mut to = None;
    let mut method = None;
    let mut as_addr = None;
    let mut time_ms = None;
    let mut print = false;
    while let Some(arg) = argv.next() {
        if arg == "--print" {
            print = true;
            continue;
        }
        if arg == "-h" || arg == "--help" {
            return Err(Failure(HELP.trim_end().to_string(), 0));
        }
        if arg == "--version" {
            let version = concat!("emergency-reset-send ", env!("CARGO_PKG_VERSION"));
            return Err(Failure(version.to_string(), 0));
        }
        let name = match arg.as_str() {
            "--key-file" | "--to" | "--method" | "--as" | "--time" => arg,
            _ => return Err(usage(format!("unknown argument {arg}"))),
        };
        let value = argv
            .next()
            .ok_or_else(|| usage(format!("{name} needs a value")))?;
        match name.as_str() {
            "--key-file" => key_file = Some(PathBuf::from(value)),
            "--to" => to = Some(split_host_port(&value)?),
            "--method" => {
                if !METHODS.contains(&value.as_str()) {
                    return Err(usage(format!(
                        "--method {value}: unknown method; use kbd, acpi, cf9 or triple"
                    )));
                }
                method = Some(value);
            }
            "--as" => {
                let addr = value
                    .parse::<IpAddr>()
                    .map_err(|_| usage(format!("--as {value}: not an IP address")))?;
                as_addr = Some(addr);
            }
            _ => {
                let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                let t = value.parse::<u64>().ok().filter(|_| ok);
                time_ms = Some(t.ok_or_else(|| {
                    usage(format!(
                        "--time {value}: expected Unix time in milliseconds (digits)"
                    ))
                })?);
            }
        }
    }
    let key_file = key_file.ok_or_else(|| usage("--key-file is required"))?;
    let (host, port) = to.ok_or_else(|| usage("--to is required"))?;
    Ok(Args {
        key_file,
        host,
        port,
        method,
        as_addr,
        time_ms,
        print,
    })
}

/// The first address `host`:`port` resolves to.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, Failure> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve {host}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("{host} has no address")))
}

fn run() -> Result<(), Failure> {
    let args = parse_args(std::env::args().skip(1))?;
    let key = read_key_file(&args.key_file).map_err(fail)?;
    let time_ms = match args.time_ms {
        Some(t) => t,
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_err(|_| fail("the clock is before 1970"))?;
            u64::try_from(now.as_millis()).map_err(|_| fail("the clock is too far ahead"))?
        }
    };
    let command = match &args.method {
        Some(m) => format!("reset-{m}"),
        None => "reset".to_string(),
    };
    let nonce = random_nonce().map_err(fail)?;
    // Resolve only when needed: to send, or to learn the signed address.
    let target = if args.print && args.as_addr.is_some() {
        None
    } else {
        Some(resolve(&args.host, args.port)?)
    };
    let signed_for = match (args.as_addr, target) {
        (Some(a), _) => a,
        (None, Some(t)) => t.ip(),
        (None, None) => unreachable!("resolved when --as is absent"),
    };
    let payload = packet(&key, &command, time_ms, &nonce, signed_for, args.port);
    let target = match target {
        Some(t) if !args.print => t,
        _ => {
            print!("{payload}");
            return Ok(());
        }
    };
    let local: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse().expect("a valid address")
    } else {
        "[::]:0".parse().expect("a valid address")
    };
    let socket = UdpSocket::bind(local).map_err(|e| fail(format!("cannot open a socket: {e}")))?;
    let sent = socket
        .send_to(payload.as_bytes(), target)
        .map_err(|e| fail(format!("cannot send to {target}: {e}")))?;
    if sent != payload.len() {
        return Err(fail(format!(
            "sent only {sent} of {} bytes to {target}",
            payload.len()
        )));
    }
    eprintln!(
        "emergency-reset-send: sent {command} (time {time_ms}, signed for {signed_for} port {}) to {target}",
        args.port
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, 0)) => {
            println!("{msg}");
            ExitCode::SUCCESS
        }
        Err(Failure(msg, code)) => {
            eprintln!("emergency-reset-send: {msg}");
            ExitCode::from(code)
        }
    }
}
