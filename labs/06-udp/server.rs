//! Lab 06: the UDP echo server.
//!
//! socket(SOCK_DGRAM) → bind → loop { recvfrom → sendto }. No listen, no
//! accept, no connection: one socket receives the datagrams of every client,
//! and recvfrom(2) says who sent each one, so that sendto(2) can answer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, bind, getsockname, recvfrom,
    sendto, socket,
};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, warn};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--drop PERCENT]

Lab 06: UDP echo server. Sends every datagram back to whoever sent it; one
socket serves every client, with no connection to anyone.

  PORT              port to receive on (default 4242; 0 = any free port)
  --bind ADDR       address to receive on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --drop PERCENT    play a lossy network: leave PERCENT of the datagrams unanswered,
                    spread evenly (20: every fifth), as if they were lost (default 0)
  --help            print this help
";

/// Larger than any UDP datagram: the payload of an IPv4 datagram is at most
/// 65507 bytes, of an IPv6 one 65527 (udp(7), ipv6(7)). With a smaller
/// buffer recvfrom(2) would silently discard the end of a longer datagram.
const MAX_DATAGRAM: usize = 65536;

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let drop_percent: u64 = cli.value("--drop", "PERCENT").unwrap_or(0);
    if drop_percent > 100 {
        cli.usage_error(format_args!(
            "invalid PERCENT '{drop_percent}': a percentage is a number from 0 to 100"
        ));
    }
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();
    let addr = SocketAddr::new(ip, port);

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // SOCK_DGRAM: UDP, datagrams instead of a byte stream (socket(2), udp(7)).
    let sock = socket(domain, SockType::Datagram, SockFlag::empty(), None).or_die("socket", addr);
    // No SO_REUSEADDR: UDP leaves nothing in TIME_WAIT, and on a UDP socket
    // the option would let a second server bind the same port (socket(7)).
    bind(sock.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    // With port 0 the kernel chose the port: getsockname(2) tells which.
    let local: SockaddrStorage = getsockname(sock.as_raw_fd()).or_die("getsockname", addr);
    log!("listening on {local}");

    // No listen(), no accept(): datagrams from every client arrive on this
    // one socket, each whole, in one recvfrom(2) call each.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut received: u64 = 0;
    loop {
        let (n, peer) = match recvfrom::<SockaddrStorage>(sock.as_raw_fd(), &mut buf) {
            Ok((n, Some(peer))) => (n, peer),
            Ok((_, None)) => continue, // no sender address: nobody to answer (never for UDP)
            Err(Errno::EINTR) => continue,
            Err(err) => die("recvfrom", local, &err),
        };
        // n == 0 is an empty datagram, not an end of file: there is no
        // connection to end. It gets its empty echo like any other.
        received += 1;
        if drops(received, drop_percent) {
            log!("datagram of {n} bytes from {peer} dropped (--drop {drop_percent})");
            continue;
        }
        log!("datagram of {n} bytes from {peer}");
        // A datagram goes whole or not at all: no partial sends, no write-all
        // loop (udp(7)). A failure concerns this client only: say so and go on.
        if let Err(err) = sendto(sock.as_raw_fd(), &buf[..n], &peer, MsgFlags::empty()) {
            warn!("sendto {peer}: {}", reason(&err));
        }
    }
}

/// Whether `--drop percent` leaves the datagram numbered `n` (from 1)
/// unanswered: exactly `percent` of every 100, spread evenly, so that runs
/// repeat exactly (and the C twin drops the same ones).
fn drops(n: u64, percent: u64) -> bool {
    n * percent / 100 != (n - 1) * percent / 100
}
