//! Lab 06: the UDP echo server.
//!
//! socket(SOCK_DGRAM) → bind → loop { recvfrom → sendto }. No listen, no
//! accept, no connection: one socket receives the datagrams of every client,
//! and recvfrom(2) says who sent each one, so that sendto(2) can answer.
//!
//! Nobody checks that sender's address: a datagram forged to come from the
//! server itself, or from another echo server, would start an echo loop that
//! never ends. So the server never answers its own port nor a service port
//! (below 1024), and a token bucket bounds its echoes, and another its log
//! (the lab sheet's "Echo loops and reflection").
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=06-udp`. The answer is the lab's server.rs.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(
    unused,
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::never_loop
)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, bind, getsockname, recvfrom,
    sendto, socket,
};
use socket_labs::rate::TokenBucket;
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, warn};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--drop PERCENT]

Lab 06: UDP echo server. Sends every datagram back to whoever sent it; one
socket serves every client, with no connection to anyone.

Never answers a datagram from its own port or from a port below 1024 (a
service's): either would start an echo loop. Echoes at most 500 datagrams
at once, then 1000 a second; logs at most 100 at once, then 10 a second,
and says how many it did not log.

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

/// Echoes at most: ECHO_BURST at once, then ECHO_RATE a second, whoever
/// asks. Far more than any ping needs; it ends the loop of two echo servers
/// that bounce one forged datagram, and bounds what a flood of forged
/// datagrams can make us send to their victim.
const ECHO_BURST: u64 = 500;
const ECHO_RATE: u64 = 1000;
/// Datagram lines logged at most: LOG_BURST at once, then LOG_RATE a
/// second; the others are counted, and said in one line. A flood must not
/// fill the disk.
const LOG_BURST: u64 = 100;
const LOG_RATE: u64 = 10;
/// Source ports below this one are services' (echo 7, chargen 19, DNS 53,
/// NTP 123), which answer too; clients send from higher ones.
const FIRST_CLIENT_PORT: u16 = 1024;

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

    // TODO socket(2) SOCK_DGRAM of addr's family, bind(2) to addr, getsockname(2)
    let (sock, local): (std::os::fd::OwnedFd, SockaddrStorage) =
        socket_labs::todo("socket(2), bind(2)");
    log!("listening on {local}");

    // No listen(), no accept(): datagrams from every client arrive on this
    // one socket, each whole, in one recvfrom(2) call each.
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut received: u64 = 0;
    let our_port = port_of(&local);
    let drop_note = format!("--drop {drop_percent}");
    let mut echoes = TokenBucket::new(ECHO_BURST, ECHO_RATE);
    let mut datagram_log = DatagramLog::new();
    let started = Instant::now();
    loop {
        // TODO recvfrom(2) into buf: the datagram's length and who sent it (EINTR: again)
        let (n, peer): (usize, SockaddrStorage) = socket_labs::todo("recvfrom(2)");
        let now_us = started.elapsed().as_micros() as u64;
        // n == 0 is an empty datagram, not an end of file: there is no
        // connection to end. It gets its empty echo like any other.
        //
        // The sender's address is whatever the sender wrote in it: UDP
        // checks nothing. Why this datagram gets no echo, if it gets none:
        let from_port = port_of(&peer);
        let dropped: Option<&str> = if from_port == our_port {
            // Ourselves, forged: we would echo to ourselves for ever. Or
            // another echo server on our port: the port-7-to-port-7 loop.
            Some("from our own port: an echo loop")
        } else if from_port < FIRST_CLIENT_PORT {
            // A service that answers too: we would bounce with it for ever.
            Some("from a service port below 1024")
        } else {
            received += 1;
            if drops(received, drop_percent) {
                Some(&drop_note)
            } else if !echoes.take(now_us) {
                // Two echo servers bounce a forged datagram until one of
                // them runs out of echoes: here it ends.
                Some("over the echo limit")
            } else {
                None
            }
        };
        datagram_log.record(now_us, n, &peer, dropped);
        if dropped.is_some() {
            continue;
        }
        // A datagram goes whole or not at all: no partial sends, no write-all
        // loop (udp(7)). A failure concerns this client only: say so and go on.
        // TODO sendto(2) the n bytes back to peer; a failure is warned, not fatal
        socket_labs::todo("sendto(2)");
    }
}

/// Whether `--drop percent` leaves the datagram numbered `n` (from 1)
/// unanswered: exactly `percent` of every 100, spread evenly, so that runs
/// repeat exactly (and the C twin drops the same ones).
fn drops(n: u64, percent: u64) -> bool {
    n * percent / 100 != (n - 1) * percent / 100
}

/// The port of an IPv4 or IPv6 address (0 for any other family).
fn port_of(addr: &SockaddrStorage) -> u16 {
    if let Some(sin) = addr.as_sockaddr_in() {
        sin.port()
    } else if let Some(sin6) = addr.as_sockaddr_in6() {
        sin6.port()
    } else {
        0
    }
}

/// The log of datagrams: one line each, as long as its bucket allows
/// (LOG_BURST at once, then LOG_RATE a second). The others are counted,
/// and said in one line before the next line logged.
struct DatagramLog {
    lines: TokenBucket,
    /// Not logged since the last line logged: echoed, dropped.
    echoed: u64,
    dropped: u64,
}

impl DatagramLog {
    fn new() -> DatagramLog {
        DatagramLog {
            lines: TokenBucket::new(LOG_BURST, LOG_RATE),
            echoed: 0,
            dropped: 0,
        }
    }

    /// The datagram of `n` bytes from `peer`, `dropped` for a reason or echoed.
    fn record(&mut self, now_us: u64, n: usize, peer: &SockaddrStorage, dropped: Option<&str>) {
        if !self.lines.take(now_us) {
            match dropped {
                Some(_) => self.dropped += 1,
                None => self.echoed += 1,
            }
            return;
        }
        if self.echoed + self.dropped > 0 {
            log!(
                "... {} more datagrams not logged ({} echoed, {} dropped)",
                self.echoed + self.dropped,
                self.echoed,
                self.dropped
            );
            (self.echoed, self.dropped) = (0, 0);
        }
        match dropped {
            Some(why) => log!("datagram of {n} bytes from {peer} dropped ({why})"),
            None => log!("datagram of {n} bytes from {peer}"),
        }
    }
}
