//! Lab 06: a lossy link, a UDP relay that plays a bad network on loopback.
//!
//! It stands between the client and the server: the client sends to the
//! link, the link sends on to the server, and the echoes come back the same
//! way. On the way, in each direction, it loses some datagrams, delays the
//! others (a fixed delay, plus or minus a random jitter), sends some twice,
//! and lets some overtake those it holds: what `tc qdisc ... netem` does to
//! a real interface, without root and without netem.
//!
//! Two sockets: one faces the client (bound to the link's port; recvfrom(2)
//! says who the client is), one faces the server (an ephemeral port, as any
//! client's). The datagrams it delays wait in a bounded queue, and poll(2)'s
//! timeout wakes the loop when the first of them is due. Its randomness is
//! a small generator (splitmix64), the same in the C twin: with --seed, two
//! runs (and the two twins) lose the very same datagrams.

use std::cmp::{Ordering as Order, Reverse};
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, SockaddrStorage, bind, getsockname, recvfrom,
    sendto, socket,
};
use socket_labs::{Cli, OrDie, die, log, reason, warn};

const USAGE: &str = "\
usage: link [PORT] --to HOST:PORT [--bind ADDR] [--loss PCT] [--delay MS] [--jitter MS] [--dup PCT] [--reorder PCT] [--seed N]

Lab 06: a lossy link. Relays UDP datagrams between a client and a server,
and on the way, in each direction, loses, delays, duplicates and reorders
them, as a bad network does (as tc netem does, without root). The client
sends to the link's PORT instead of the server's.

  PORT           port the client sends to (default 4243; 0 = any free port)
  --to HOST:PORT the server, where the datagrams go on to (required)
  --bind ADDR    address to receive on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --loss PCT     lose PCT% of the datagrams (default 0)
  --delay MS     hold each datagram MS milliseconds (default 0; at most 60000)
  --jitter MS    add to each delay a random -MS to +MS milliseconds (default 0)
  --dup PCT      send PCT% of the datagrams twice (default 0)
  --reorder PCT  send PCT% of the datagrams at once, ahead of those held
                 (needs --delay, as netem's reorder)
  --seed N       start of the random draws: the same seed, the same fates
                 (default: from the clock; the first lines say which)
  --help         print this help

Ctrl-C (SIGINT) or SIGTERM: prints what it did in each direction, and exits 0.
";

/// The port the link receives on unless told: the server's default, plus one.
const DEFAULT_LINK_PORT: u16 = 4243;
/// Larger than any UDP datagram (udp(7), ipv6(7)).
const MAX_DATAGRAM: usize = 65536;
/// The longest --delay and --jitter, in milliseconds: one minute.
const MAX_DELAY_MS: u64 = 60_000;
/// The queue of delayed datagrams holds at most this many, and this many
/// bytes: whatever the traffic, the link's memory is bounded. Beyond, a
/// datagram is dropped, as a full router queue drops it.
const QUEUE_MAX: usize = 4096;
const QUEUE_MAX_BYTES: usize = 8 << 20;
/// With nothing held, poll(2) still wakes once a second: a signal that came
/// just before the call is then seen within a second.
const IDLE_WAKEUP_MS: u64 = 1000;

/// Set by the SIGINT and SIGTERM handler: print the statistics and exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// splitmix64 (Steele, Lea, Flood 2014): a few lines, good enough draws,
/// the same numbers in C (link.c).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True `percent` times in 100.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// What the link does to each datagram.
struct Faults {
    loss: u64,
    delay_us: u64,
    jitter_us: u64,
    dup: u64,
    reorder: u64,
}

/// One direction of the link: its draws and what it did.
struct Direction {
    name: &'static str,
    random: Random,
    received: u64,
    lost: u64,
    duplicated: u64,
    ahead: u64,
    queue_full: u64,
    sent: u64,
}

impl Direction {
    fn new(name: &'static str, seed: u64) -> Direction {
        Direction {
            name,
            random: Random(seed),
            received: 0,
            lost: 0,
            duplicated: 0,
            ahead: 0,
            queue_full: 0,
            sent: 0,
        }
    }

    /// The fate of the next datagram: the delays of its copies, in
    /// microseconds (none: lost; two: duplicated). The draws, always in
    /// this order: loss; then duplication; then for each copy, reorder and
    /// jitter.
    fn fate(&mut self, f: &Faults) -> Vec<u64> {
        self.received += 1;
        if self.random.percent(f.loss) {
            self.lost += 1;
            return Vec::new();
        }
        let copies = if self.random.percent(f.dup) {
            self.duplicated += 1;
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| {
                let ahead = self.random.percent(f.reorder);
                let offset = self.random.next() % (2 * f.jitter_us + 1);
                if ahead {
                    self.ahead += 1;
                    0
                } else {
                    // delay + offset - jitter, and never below 0.
                    (f.delay_us + offset).saturating_sub(f.jitter_us)
                }
            })
            .collect()
    }

    /// What it did; `held`: how many of its datagrams the queue still holds.
    fn report(&self, held: usize) {
        log!(
            "{}: {} datagrams received, {} lost, {} duplicated, {} sent ahead, {} dropped (queue full), {} sent, {held} still held",
            self.name,
            self.received,
            self.lost,
            self.duplicated,
            self.ahead,
            self.queue_full,
            self.sent
        );
    }
}

/// A datagram held until its time: where it goes, and when.
struct Held {
    due_us: u64,
    /// Arrival order, so that datagrams due at the same time keep it.
    order: u64,
    to_server: bool,
    to: SockaddrStorage,
    data: Vec<u8>,
}

/// Held datagrams go out in the order of (due time, arrival).
impl Ord for Held {
    fn cmp(&self, other: &Held) -> Order {
        (self.due_us, self.order).cmp(&(other.due_us, other.order))
    }
}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Held) -> Option<Order> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Held {
    fn eq(&self, other: &Held) -> bool {
        self.cmp(other) == Order::Equal
    }
}

impl Eq for Held {}

/// The held datagrams, bounded in number and bytes: a heap whose top is
/// the next to go (the C twin looks for it in an array).
struct Queue {
    held: BinaryHeap<Reverse<Held>>,
    bytes: usize,
    order: u64,
    /// Datagrams dropped since the queue was last full, to say when it has
    /// room again.
    dropped_while_full: u64,
}

impl Queue {
    /// Holds `data` for `dir` until `due_us`, or drops it if the queue is full.
    /// A datagram that came in one direction at `now`: its fate (lost, or one
    /// or two copies, each held for its delay), each copy held.
    fn admit(
        &mut self,
        dir: &mut Direction,
        faults: &Faults,
        now: u64,
        to_server: bool,
        to: SockaddrStorage,
        data: &[u8],
    ) {
        for delay in dir.fate(faults) {
            self.order += 1;
            let held = Held {
                due_us: now + delay,
                order: self.order,
                to_server,
                to,
                data: data.to_vec(),
            };
            self.hold(dir, held);
        }
    }

    fn hold(&mut self, dir: &mut Direction, held: Held) {
        if self.held.len() >= QUEUE_MAX || self.bytes + held.data.len() > QUEUE_MAX_BYTES {
            if self.dropped_while_full == 0 {
                log!(
                    "queue full ({} datagrams, {} bytes held): dropping datagrams until it drains",
                    self.held.len(),
                    self.bytes
                );
            }
            self.dropped_while_full += 1;
            dir.queue_full += 1;
            return;
        }
        if self.dropped_while_full > 0 {
            log!(
                "queue has room again: {} datagrams dropped while it was full",
                self.dropped_while_full
            );
            self.dropped_while_full = 0;
        }
        self.bytes += held.data.len();
        self.held.push(Reverse(held));
    }

    /// When the next datagram is due: the earliest, first come first.
    fn first_due(&self) -> Option<u64> {
        self.held.peek().map(|Reverse(held)| held.due_us)
    }

    fn take(&mut self) -> Option<Held> {
        let Reverse(held) = self.held.pop()?;
        self.bytes -= held.data.len();
        Some(held)
    }
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let to: Option<String> = cli.value("--to", "HOST:PORT");
    let loss: u64 = cli.value("--loss", "PCT").unwrap_or(0);
    let delay_ms: u64 = cli.value("--delay", "MS").unwrap_or(0);
    let jitter_ms: u64 = cli.value("--jitter", "MS").unwrap_or(0);
    let dup: u64 = cli.value("--dup", "PCT").unwrap_or(0);
    let reorder: u64 = cli.value("--reorder", "PCT").unwrap_or(0);
    let seed: Option<u64> = cli.value("--seed", "N");
    for (value, name) in [(loss, "--loss"), (dup, "--dup"), (reorder, "--reorder")] {
        if value > 100 {
            cli.usage_error(format_args!(
                "invalid PCT '{value}' for {name}: a percentage is a number from 0 to 100"
            ));
        }
    }
    for (value, name) in [(delay_ms, "--delay"), (jitter_ms, "--jitter")] {
        if value > MAX_DELAY_MS {
            cli.usage_error(format_args!(
                "invalid MS '{value}' for {name}: from 0 to {MAX_DELAY_MS} milliseconds"
            ));
        }
    }
    if reorder > 0 && delay_ms == 0 {
        cli.usage_error("--reorder goes with --delay: a datagram goes ahead of those held");
    }
    let Some(to) = to else {
        cli.usage_error("--to HOST:PORT is required: where the server is");
    };
    let Some((host, port)) = split_host_port(&to) else {
        cli.usage_error(format_args!(
            "invalid HOST:PORT '{to}': a name or address, a colon, a port from 0 to 65535"
        ));
    };
    let listen_port = cli.port().unwrap_or(DEFAULT_LINK_PORT);
    cli.finish();
    let faults = Faults {
        loss,
        delay_us: delay_ms * 1000,
        jitter_us: jitter_ms * 1000,
        dup,
        reorder,
    };
    let seed = seed.unwrap_or_else(clock_seed);

    // The server's address: getaddrinfo(3), through std; the first one.
    let Some(server) = (host.as_str(), port)
        .to_socket_addrs()
        .or_die("getaddrinfo", &host)
        .next()
    else {
        die("getaddrinfo", &host, &Errno::EADDRNOTAVAIL)
    };
    let server_addr = SockaddrStorage::from(server);

    // The socket the client sends to, as a server's: socket, bind, getsockname.
    let addr = SocketAddr::new(ip, listen_port);
    let near =
        socket(family(addr), SockType::Datagram, SockFlag::empty(), None).or_die("socket", addr);
    bind(near.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    let local: SockaddrStorage = getsockname(near.as_raw_fd()).or_die("getsockname", addr);
    // The socket that faces the server, as a client's: no bind, the first
    // sendto(2) gives it an ephemeral port.
    let far = socket(family(server), SockType::Datagram, SockFlag::empty(), None)
        .or_die("socket", server);

    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // No SA_RESTART: poll(2) returns EINTR, and the loop sees STOP.
        let action = SigAction::new(
            SigHandler::Handler(on_stop),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        if let Err(err) = unsafe { sigaction(signal, &action) } {
            die("sigaction", signal, &err);
        }
    }

    log!("listening on {local}");
    log!(
        "forwarding to {server}: loss {loss}%, delay {delay_ms} ms, jitter {jitter_ms} ms, dup {dup}%, reorder {reorder}%, seed {seed}"
    );

    // Each direction draws from its own generator: the fate of the n-th
    // datagram from the client does not depend on the echoes in between.
    let mut up = Direction::new("client -> server", seed);
    let mut down = Direction::new("server -> client", seed ^ 0x5555_5555_5555_5555);
    let mut queue = Queue {
        held: BinaryHeap::new(),
        bytes: 0,
        order: 0,
        dropped_while_full: 0,
    };
    let mut client: Option<SockaddrStorage> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let started = Instant::now();
    let now_us = || started.elapsed().as_micros() as u64;

    while !STOP.load(Ordering::Relaxed) {
        // What is due goes now; poll(2) waits until the next is due.
        let mut wait_ms = IDLE_WAKEUP_MS;
        while let Some(due) = queue.first_due() {
            let now = now_us();
            if due > now {
                // Rounded up: never wake before it is due, and spin.
                wait_ms = (due - now).div_ceil(1000);
                break;
            }
            let Some(held) = queue.take() else { break };
            let (sock, dir) = if held.to_server {
                (&far, &mut up)
            } else {
                (&near, &mut down)
            };
            forward(sock, &held.data, &held.to, dir);
        }
        let mut fds = [
            PollFd::new(near.as_fd(), PollFlags::POLLIN),
            PollFd::new(far.as_fd(), PollFlags::POLLIN),
        ];
        let timeout = PollTimeout::try_from(wait_ms).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(err) => die("poll", local, &err),
        }
        let ready = |fd: &PollFd| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLERR))
        };
        let (from_client, from_server) = (ready(&fds[0]), ready(&fds[1]));

        if from_client {
            // A datagram from the client: whoever sends to the link's port.
            if let Some((n, peer)) = receive(&near, &mut buf, local) {
                if client != Some(peer) {
                    log!("client {peer}");
                    client = Some(peer);
                }
                queue.admit(&mut up, &faults, now_us(), true, server_addr, &buf[..n]);
            }
        }
        if from_server {
            // From the server, an echo for the client; anyone else's datagram
            // (another port, another host) is no business of the link's.
            if let Some((n, peer)) = receive(&far, &mut buf, local)
                && peer == server_addr
                && let Some(to) = client
            {
                queue.admit(&mut down, &faults, now_us(), false, to, &buf[..n]);
            }
        }
    }
    let to_server = queue.held.iter().filter(|h| h.0.to_server).count();
    up.report(to_server);
    down.report(queue.held.len() - to_server);
}

/// One datagram in, its length and sender; None after EINTR, or an error
/// that concerns one datagram (an ICMP error pending on the socket).
fn receive(
    sock: &OwnedFd,
    buf: &mut [u8],
    local: SockaddrStorage,
) -> Option<(usize, SockaddrStorage)> {
    match recvfrom::<SockaddrStorage>(sock.as_raw_fd(), buf) {
        Ok((n, Some(peer))) => Some((n, peer)),
        Ok((_, None)) => None,
        Err(Errno::EINTR) => None,
        Err(err @ (Errno::ECONNREFUSED | Errno::EHOSTUNREACH | Errno::ENETUNREACH)) => {
            warn!("recvfrom {local}: {}", reason(&err));
            None
        }
        Err(err) => die("recvfrom", local, &err),
    }
}

/// One datagram out, whole or not at all; a failure concerns that datagram.
fn forward(sock: &OwnedFd, data: &[u8], to: &SockaddrStorage, dir: &mut Direction) {
    loop {
        match sendto(sock.as_raw_fd(), data, to, MsgFlags::empty()) {
            Ok(_) => {
                dir.sent += 1;
                return;
            }
            Err(Errno::EINTR) => continue,
            Err(err) => {
                warn!("sendto {to}: {}", reason(&err));
                return;
            }
        }
    }
}

fn family(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// `HOST:PORT`, `[IPV6]:PORT`: the host and the port.
fn split_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, port) = rest.split_once("]:")?;
            (host, port)
        }
        None => text.rsplit_once(':')?,
    };
    if host.is_empty() || port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

/// A seed when none is given: the clock's nanoseconds and the process id.
fn clock_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ u64::from(std::process::id()) << 32
}
