//! Lab 06: the UDP echo client, with timeouts and retransmission.
//!
//! socket(SOCK_DGRAM) → loop { sendto a numbered datagram → poll with a
//! timeout → recvmsg its echo, or sendto again } → statistics. Nothing tells
//! a UDP sender that a datagram was lost: the client notices that no echo
//! came in time, and sends again. Echoes that come late or twice carry an old
//! sequence number: they are recognised and ignored.
//!
//! With --connect: connect → send/recv, and a port nobody listens on is
//! reported at once (ICMP port unreachable becomes ECONNREFUSED).
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=06-udp`. The answer is the lab's client.rs.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(
    unused,
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::never_loop
)]

use std::io::IoSliceMut;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, connect, recv, recvmsg, send,
    sendto, socket,
};
use nix::unistd::{isatty, read};
use socket_labs::{
    Cli, DEFAULT_HOST, DEFAULT_PORT, LineReader, OrDie, die, log, reason, warn, writen,
};

const USAGE: &str = "\
usage: client [HOST] [PORT] [--timeout MS] [--retries N] [--connect] [--count N [--interval MS] [--size B]]

Lab 06: UDP echo client. Sends each line of stdin as one datagram with a
sequence number, waits for its echo with poll(), and sends it again when no
echo comes in time. With --count it pings instead, as ping(8) does: N
datagrams, the round-trip time of each, and the statistics.

  HOST           server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)
  PORT           server port (default 4242)
  --timeout MS   how long to wait for the echo of each send before sending again
                 (default 1000; 1 to 60000)
  --retries N    how many times to send again before counting a datagram lost (default 3)
  --connect      connect() the socket, then send/recv: a port nobody listens on is
                 reported at once (ICMP port unreachable comes back as ECONNREFUSED)
  --count N      ping mode: send N datagrams, print each round trip and the statistics
  --interval MS  ping mode: time from one datagram to the next (default 1000)
  --size B       ping mode: bytes in each datagram, its 4-byte sequence number
                 included (default 64; 4 to 65535)
  --help         print this help

Exit status: 0 every datagram was echoed; 1 a call failed, or a datagram got
no echo after all its retransmissions; 2 bad arguments.
";

/// A line longer than this goes in pieces, one datagram each. With its
/// sequence number a piece fills a 65536-byte datagram: larger than UDP
/// allows (65507 bytes over IPv4, 65527 over IPv6), so sendto(2) refuses
/// such a line with EMSGSIZE rather than cut it.
const MAX_LINE: usize = 65536 - 4;

/// The longest --timeout, in milliseconds: one minute.
const MAX_TIMEOUT_MS: u32 = 60_000;

/// What the client has seen, for the statistics at the end.
#[derive(Default)]
struct Stats {
    /// Datagrams sent, one per sequence number (retransmissions apart).
    sent: u64,
    /// Of those, how many got their echo.
    received: u64,
    retransmissions: u64,
    /// Datagrams received that were not the echo awaited: late, duplicate, foreign.
    ignored: u64,
    rtt_min_us: u64,
    rtt_max_us: u64,
    rtt_sum_us: u64,
}

/// The socket, where it sends, and how patient it is.
struct Udp {
    sock: OwnedFd,
    server: SocketAddr,
    /// connect(2) was called: send/recv, and the kernel filters the senders.
    connected: bool,
    timeout: Duration,
    retries: u32,
    /// Where echoes are received: as large as the largest datagram we send.
    /// A longer datagram is cut to fit and flagged MSG_TRUNC.
    buf: Vec<u8>,
    stats: Stats,
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let timeout_ms: u32 = cli.value("--timeout", "MS").unwrap_or(1000);
    let retries: u32 = cli.value("--retries", "N").unwrap_or(3);
    let connected = cli.flag("--connect");
    let count: Option<u32> = cli.value("--count", "N");
    let interval_ms: Option<u32> = cli.value("--interval", "MS");
    let size: Option<u32> = cli.value("--size", "B");
    // An echo takes some time even on loopback: with 0 every datagram
    // would count as lost. 60 s is the smallest cap RFC 6298 (2.5) allows
    // on TCP's retransmission timeout; a lab client need not wait longer.
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        cli.usage_error(format_args!(
            "invalid MS '{timeout_ms}': from 1 to {MAX_TIMEOUT_MS} milliseconds"
        ));
    }
    if count.is_none() && (interval_ms.is_some() || size.is_some()) {
        let option = if size.is_some() {
            "--size"
        } else {
            "--interval"
        };
        cli.usage_error(format_args!("{option} goes with --count (ping mode)"));
    }
    let size = size.unwrap_or(64);
    if !(4..=65535).contains(&size) {
        cli.usage_error(format_args!(
            "invalid B '{size}': a datagram of this client holds 4 to 65535 bytes"
        ));
    }
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    // nix has no getaddrinfo(3): std's resolver turns the name into
    // addresses. UDP has no handshake to try them with: take the first.
    let Some(server) = (host.as_str(), port)
        .to_socket_addrs()
        .or_die("getaddrinfo", &host)
        .next()
    else {
        die("getaddrinfo", &host, &Errno::EADDRNOTAVAIL)
    };

    let domain = match server {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // TODO socket(2) SOCK_DGRAM of that domain; with --connect, connect(2) it to server
    let sock: OwnedFd = socket_labs::todo("socket(2), connect(2) with --connect");
    let buf_len = match count {
        Some(_) => size as usize,
        None => MAX_LINE + 4,
    };
    let mut udp = Udp {
        sock,
        server,
        connected,
        timeout: Duration::from_millis(timeout_ms.into()),
        retries,
        buf: vec![0; buf_len],
        stats: Stats::default(),
    };

    match count {
        Some(count) => ping(
            &mut udp,
            count,
            Duration::from_millis(interval_ms.unwrap_or(1000).into()),
            size as usize,
        ),
        None => echo_lines(&mut udp),
    }

    let stats = &udp.stats;
    if stats.sent > 0 && stats.received == 0 {
        warn!("no echo at all from {server}: is a server running there?");
    }
    process::exit(if stats.received == stats.sent { 0 } else { 1 });
}

/// Line mode: each line of stdin goes as one datagram; its echo, without the
/// sequence number, goes to stdout. The statistics go to stderr at the end.
fn echo_lines(udp: &mut Udp) {
    let stdin = std::io::stdin();
    if isatty(&stdin).unwrap_or(false) {
        warn!(
            "sending to {} over UDP; type lines, Ctrl-D to end",
            udp.server
        );
    }
    let mut lines = LineReader::new(MAX_LINE);
    let mut seq: u32 = 0;
    loop {
        let n = match read(&stdin, lines.space()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(err) => die("read", "stdin", &err),
        };
        if n == 0 {
            // End of stdin; a last line without newline still goes.
            if let Some(line) = lines.rest() {
                send_line(udp, &mut seq, line.bytes());
            }
            break;
        }
        lines.filled(n);
        while let Some(line) = lines.next_line() {
            send_line(udp, &mut seq, line.bytes());
        }
    }
    udp.print_stats(|text| warn!("{text}"));
}

/// Sends one line under the next sequence number; prints its echo.
fn send_line(udp: &mut Udp, seq: &mut u32, line: &[u8]) {
    *seq = seq.wrapping_add(1);
    let mut datagram = seq.to_be_bytes().to_vec();
    datagram.extend_from_slice(line);
    if udp.exchange(*seq, &datagram).is_some() {
        writen(std::io::stdout(), line).or_die("write", "stdout");
    }
}

/// Ping mode: `count` datagrams of `size` bytes, one every `interval`.
fn ping(udp: &mut Udp, count: u32, interval: Duration, size: usize) {
    let server = udp.server;
    log!("UDP PING {server}: {count} datagrams of {size} bytes");
    for seq in 1..=count {
        let started = Instant::now();
        // The sequence number in network byte order (big-endian, as
        // htonl(3) gives it), then filler bytes.
        let mut datagram: Vec<u8> = (0..size).map(|i| i as u8).collect();
        datagram[..4].copy_from_slice(&seq.to_be_bytes());
        let retransmissions = udp.stats.retransmissions;
        if let Some(rtt) = udp.exchange(seq, &datagram) {
            let again = match udp.stats.retransmissions - retransmissions {
                0 => String::new(),
                1 => " (1 retransmission)".to_string(),
                n => format!(" ({n} retransmissions)"),
            };
            log!(
                "{size} bytes from {server}: seq={seq} time={} ms{again}",
                millis(rtt.as_micros() as u64)
            );
        }
        if seq < count {
            // Meanwhile, late echoes are read and ignored.
            udp.wait(started + interval, seq, &datagram, false);
        }
    }
    log!("");
    log!("--- {server} udp ping statistics ---");
    udp.print_stats(|text| log!("{text}"));
}

impl Udp {
    /// Sends `datagram` and waits for its echo, sending it again after each
    /// timeout, `retries` times at most. Returns the round-trip time from
    /// the first send, or None when the datagram counts as lost.
    fn exchange(&mut self, seq: u32, datagram: &[u8]) -> Option<Duration> {
        self.stats.sent += 1;
        let first_sent = Instant::now();
        // TODO the retransmission: for each attempt in 0..=self.retries, self.send(datagram),
        // then self.wait(Instant::now() + self.timeout, seq, datagram, true); its echo
        // came: self.record(rtt from first_sent), return Some(rtt). Each attempt after
        // the first counts in self.stats.retransmissions and is said on stderr first:
        // "seq {seq}: no echo within {TIMEOUT} ms, sending it again ({attempt} of {RETRIES})"
        socket_labs::todo("the retransmission");
        warn!(
            "seq {seq}: no echo within {} ms, lost",
            self.timeout.as_millis()
        );
        None
    }

    /// One datagram out: whole, or not at all (udp(7)).
    fn send(&self, datagram: &[u8]) {
        let fd = self.sock.as_raw_fd();
        // TODO send(2) if connected, else sendto(2) self.server; EINTR: again; an error:
        // self.fail("send" or "sendto", err)
        socket_labs::todo("sendto(2)");
    }

    /// Reads what arrives until `deadline`. Returns true as soon as the echo
    /// of `datagram` (numbered `seq`) arrives while `awaited`, false at the
    /// deadline. Anything else is reported and ignored.
    fn wait(&mut self, deadline: Instant, seq: u32, datagram: &[u8], awaited: bool) -> bool {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // TODO poll(2) the socket for POLLIN, at most `left` (in ms, rounded up):
            // 0 ready is the timeout (return false); EINTR: again
            socket_labs::todo("poll(2) with a timeout");
            // POLLERR too means "call recv": it returns the pending error.
            if let Some((n, from)) = self.receive() {
                if self.is_echo(n, from, seq, datagram, awaited) {
                    return true;
                }
                self.stats.ignored += 1;
            }
        }
    }

    /// One datagram in: its length and sender, or None (reported) when it
    /// was cut because it was longer than any echo of ours.
    fn receive(&mut self) -> Option<(usize, SockaddrStorage)> {
        let fd = self.sock.as_raw_fd();
        let capacity = self.buf.len();
        let (n, from, truncated) = if self.connected {
            // Linux: with MSG_TRUNC, recv(2) returns the datagram's real
            // length even when it did not fit (udp(7)); the sender can only
            // be the connected peer.
            match recv(fd, &mut self.buf, MsgFlags::MSG_TRUNC) {
                Ok(n) => (
                    n.min(capacity),
                    SockaddrStorage::from(self.server),
                    n > capacity,
                ),
                Err(Errno::EINTR) => return None,
                Err(err) => self.fail("recv", err),
            }
        } else {
            // recvfrom(2) would cut a long datagram without a word;
            // recvmsg(2) also tells the sender, and sets MSG_TRUNC in
            // msg_flags when the datagram did not fit (recv(2)).
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            match recvmsg::<SockaddrStorage>(fd, &mut iov, None, MsgFlags::empty()) {
                Ok(msg) => match msg.address {
                    Some(from) => (msg.bytes, from, msg.flags.contains(MsgFlags::MSG_TRUNC)),
                    None => return None, // no sender: not from the server (never for UDP)
                },
                Err(Errno::EINTR) => return None,
                Err(err) => self.fail("recvmsg", err),
            }
        };
        if truncated {
            self.stats.ignored += 1;
            warn!(
                "datagram from {from} ignored: longer than the {capacity} bytes of any echo of ours (MSG_TRUNC)"
            );
            return None;
        }
        Some((n, from))
    }

    /// Whether the `n` bytes in `buf` from `from` are the echo awaited;
    /// reports why not.
    fn is_echo(
        &self,
        n: usize,
        from: SockaddrStorage,
        seq: u32,
        datagram: &[u8],
        awaited: bool,
    ) -> bool {
        let got = &self.buf[..n];
        if !self.connected && from != SockaddrStorage::from(self.server) {
            // An unconnected socket takes datagrams from anyone.
            warn!(
                "datagram of {n} bytes from {from} ignored: not from {}",
                self.server
            );
            return false;
        }
        let got_seq = match got.first_chunk::<4>() {
            Some(head) => u32::from_be_bytes(*head),
            None => 0,
        };
        if awaited && got == datagram {
            return true;
        }
        if got_seq != 0 && (got_seq < seq || (got_seq == seq && got == datagram)) {
            warn!("echo of seq {got_seq} ignored: late or duplicate");
        } else {
            warn!("datagram of {n} bytes from {from} ignored: not an echo of ours");
        }
        false
    }

    fn record(&mut self, rtt: Duration) {
        let us = rtt.as_micros() as u64;
        let s = &mut self.stats;
        s.rtt_min_us = if s.received == 0 {
            us
        } else {
            s.rtt_min_us.min(us)
        };
        s.rtt_max_us = s.rtt_max_us.max(us);
        s.rtt_sum_us += us;
        s.received += 1;
    }

    /// The statistics, as ping(8) gives them, one line at a time to `out`.
    fn print_stats(&self, out: impl Fn(&str)) {
        let s = &self.stats;
        // Loss in tenths of a percent, rounded, in integers: the C twin
        // prints the very same figures.
        let lost = s.sent - s.received;
        let tenths = (lost * 1000 + s.sent / 2).checked_div(s.sent).unwrap_or(0);
        out(&format!(
            "{} datagrams sent, {} received, {}.{}% loss, {} retransmissions, {} ignored",
            s.sent,
            s.received,
            tenths / 10,
            tenths % 10,
            s.retransmissions,
            s.ignored
        ));
        if let Some(avg) = s.rtt_sum_us.checked_div(s.received) {
            out(&format!(
                "rtt min/avg/max = {}/{}/{} ms",
                millis(s.rtt_min_us),
                millis(avg),
                millis(s.rtt_max_us)
            ));
        }
    }

    /// `call ADDR: reason` and exit 1, with a word on the two errors a
    /// datagram socket teaches.
    fn fail(&self, call: &str, err: Errno) -> ! {
        warn!("{call} {}: {}", self.server, reason(&err));
        match err {
            Errno::ECONNREFUSED => warn!(
                "(an ICMP port unreachable came back: nothing receives on {})",
                self.server
            ),
            Errno::EMSGSIZE => {
                warn!("(a UDP datagram holds at most 65507 bytes over IPv4, 65527 over IPv6)")
            }
            _ => {}
        }
        process::exit(1)
    }
}

/// Microseconds as milliseconds with three decimals: 1234 → "1.234".
fn millis(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}
