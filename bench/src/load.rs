//! The load generator's engine: connections to 127.0.0.1 driven by one epoll
//! loop per thread, each connection with one message in flight.
//!
//! Every connection is registered once, edge-triggered, for reading and
//! writing: a round trip costs one write(2) and one read(2) (or a few for a
//! large message) plus its share of epoll_wait(2), and nothing is allocated
//! per message. Each connection owns a slice of one send buffer; the next
//! message differs from the last (a round counter in its first bytes), and
//! every byte that comes back is compared with the slice it should echo.
//!
//! A run has three phases, all bounded in time: setup, warm-up, and the
//! window that is measured. Setup connects, the idle connections first, a
//! few hundred at a time; each connection proves that the server serves it
//! with one echo, then waits. When every thread has finished its setup (or
//! given up at the setup deadline), all active connections start at once:
//! busy connections do not slow the setup of the others (a fork server's
//! parent would otherwise share its core with every busy child while it
//! still has thousands to accept). The window opens after the warm-up.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket, sockopt,
};
use nix::unistd::{Pid, read, write};
use socket_labs::reason;

use crate::hist::Histogram;

/// The largest message: a connection's echo must fit what we keep per connection.
pub const MAX_SIZE: usize = 1 << 20;
/// Connections opened but not yet echoed once, per thread: a burst no
/// larger than this keeps the server's accept queue (SOMAXCONN) from
/// overflowing, which would cost seconds of SYN retransmits.
const MAX_IN_SETUP: usize = 256;
/// Events taken per epoll_wait(2).
const EVENTS: usize = 1024;
/// read(2)/write(2) calls per readiness event before re-arming instead.
const MAX_CALLS: usize = 64;

/// What the connections do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// N connections, each sending a message and waiting for its echo, again and again.
    Active,
    /// As active, plus connections that stay open and silent.
    Idle,
    /// Connect, one echo, close, N at a time.
    Churn,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "active" => Ok(Mode::Active),
            "idle" => Ok(Mode::Idle),
            "churn" => Ok(Mode::Churn),
            _ => Err("expected active, idle or churn".into()),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Mode::Active => "active",
            Mode::Idle => "idle",
            Mode::Churn => "churn",
        })
    }
}

/// One run of the generator.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    /// The server's port on 127.0.0.1.
    pub port: u16,
    /// Active connections, or concurrent ones for churn.
    pub conns: usize,
    /// Silent connections (idle mode only).
    pub idle: usize,
    /// Bytes per message.
    pub size: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Epoll loops, one thread each.
    pub threads: usize,
    /// The server's process group, when known: its CPU time in the window
    /// is measured (/proc).
    pub server: Option<Pid>,
}

impl Config {
    /// Checks the bounds; the message says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.conns == 0 {
            return Err("--conns must be at least 1".into());
        }
        if self.conns + self.idle > 1_000_000 {
            return Err("at most 1,000,000 connections".into());
        }
        if self.idle > 0 && self.mode != Mode::Idle {
            return Err("--idle is for --mode idle".into());
        }
        if !(1..=MAX_SIZE).contains(&self.size) {
            return Err(format!("--size must be from 1 to {MAX_SIZE} bytes"));
        }
        if self.duration < Duration::from_millis(10) || self.duration > Duration::from_secs(3600) {
            return Err("--duration must be from 0.01 to 3600 seconds".into());
        }
        if self.warmup > Duration::from_secs(600) {
            return Err("--warmup must be at most 600 seconds".into());
        }
        if !(1..=256).contains(&self.threads) {
            return Err("--threads must be from 1 to 256".into());
        }
        Ok(())
    }

    /// How long connecting (and the first echo of each connection) may take.
    pub fn setup_timeout(&self) -> Duration {
        Duration::from_secs(10) + Duration::from_millis((self.conns + self.idle) as u64)
    }

    /// Descriptors a run needs: the connections, an epoll per thread, stdio.
    pub fn descriptors_needed(&self) -> u64 {
        (self.conns + self.idle + 2 * self.threads + 16) as u64
    }

    /// Threads a run uses: no more than connections.
    pub fn threads_used(&self) -> usize {
        self.threads.clamp(1, self.conns)
    }
}

/// What a run measured; the figures are for the window only unless said.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Echoes completed in the window (active connections; churn: connections).
    pub round_trips: u64,
    pub window: Duration,
    /// Latency of those round trips (churn: from socket(2) to the echo).
    pub latency: Histogram,
    /// Active connections with at least one round trip in the window
    /// (churn: connections completed in the window).
    pub served: u64,
    /// Connections whose first echo arrived (over the whole run).
    pub connected: u64,
    /// socket(2) or connect(2) failures.
    pub connect_failures: u64,
    /// Connections the server closed or reset before we did.
    pub dropped: u64,
    /// Idle connections still open at the end.
    pub idle_held: u64,
    /// Echoes that differed from what was sent (each closes its connection).
    pub mismatches: u64,
    /// Bytes echoed and found equal to what was sent (over the whole run).
    pub bytes_verified: u64,
    /// CPU time the generator's threads used in the window, in seconds.
    pub cpu_seconds: f64,
    /// CPU time the server's processes used in the window (user and
    /// system, children included), in seconds, when measured.
    pub server_cpu_seconds: Option<f64>,
    /// The first thing that went wrong, as `call 127.0.0.1:PORT: reason`.
    pub first_error: Option<String>,
}

impl Report {
    /// Round trips per second in the window.
    pub fn rate(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.round_trips as f64 / secs
        } else {
            0.0
        }
    }

    /// The server's CPU time per round trip in the window, in microseconds.
    pub fn server_us_per_rt(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.round_trips > 0).then(|| cpu * 1e6 / self.round_trips as f64)
    }

    /// A latency quantile in microseconds.
    pub fn latency_us(&self, q: f64) -> f64 {
        self.latency.quantile(q) as f64 / 1000.0
    }

    fn merge(&mut self, other: Report) {
        self.round_trips += other.round_trips;
        self.latency.merge(&other.latency);
        self.served += other.served;
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        self.dropped += other.dropped;
        self.idle_held += other.idle_held;
        self.mismatches += other.mismatches;
        self.bytes_verified += other.bytes_verified;
        self.cpu_seconds += other.cpu_seconds;
        if other.server_cpu_seconds.is_some() {
            self.server_cpu_seconds = other.server_cpu_seconds;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// A failure that stops a run before it measures anything.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Raises the soft limit on descriptors to the hard limit (getrlimit(2)) and
/// returns the limit now in force.
pub fn raise_descriptor_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// The threads' meeting point: traffic starts when all are set up.
struct Shared {
    threads: usize,
    ready: AtomicUsize,
    go: OnceLock<Instant>,
}

impl Shared {
    /// This thread has finished its setup; the last one says go.
    fn mark_ready(&self) {
        if self.ready.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            let _ = self.go.set(Instant::now());
        }
    }
}

/// Runs the generator against 127.0.0.1:`config.port` and reports.
pub fn run(config: &Config) -> Result<Report, Error> {
    config.validate().map_err(Error)?;
    let limit = raise_descriptor_limit();
    let needed = config.descriptors_needed();
    if needed > limit {
        return Err(Error(format!(
            "{} connections need about {needed} descriptors, but the limit is {limit} \
             (RLIMIT_NOFILE; raise it with ulimit -n)",
            config.conns + config.idle
        )));
    }
    let threads = config.threads_used();
    let shared = Shared {
        threads,
        ready: AtomicUsize::new(0),
        go: OnceLock::new(),
    };
    let results: Vec<Result<Report, Error>> = thread::scope(|scope| {
        // The server's CPU time, read at the window's ends by a thread of
        // its own that sleeps meanwhile.
        let shared_ref = &shared;
        let sampled = scope.spawn(move || Report {
            server_cpu_seconds: config
                .server
                .and_then(|group| server_cpu(config, shared_ref, group)),
            ..Report::default()
        });
        let mut handles = Vec::with_capacity(threads);
        for k in 0..threads {
            let shared = &shared;
            let spawned = thread::Builder::new()
                .name(format!("loadgen-{k}"))
                .spawn_scoped(scope, move || {
                    let worker = Worker::new(config, k, threads, shared);
                    let result = worker.and_then(Worker::run);
                    if result.is_err() {
                        // Do not keep the other threads waiting for us.
                        shared.mark_ready();
                    }
                    result
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(err) => {
                    shared.mark_ready();
                    handles.clear(); // the others still end at their deadlines
                    return vec![Err(Error(format!("cannot start a thread: {err}")))];
                }
            }
        }
        let mut results: Vec<Result<Report, Error>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error("a load thread panicked".into())))
            })
            .collect();
        results.push(Ok(sampled.join().unwrap_or_default()));
        results
    });
    let mut total = Report {
        window: config.duration,
        ..Report::default()
    };
    for result in results {
        total.merge(result?);
    }
    if config.mode == Mode::Churn {
        total.served = total.round_trips;
    }
    Ok(total)
}

/// The server group's CPU time between the window's ends: waits for go
/// (bounded like the setup), then sleeps to each end.
fn server_cpu(config: &Config, shared: &Shared, group: Pid) -> Option<f64> {
    let deadline = Instant::now() + config.setup_timeout() + Duration::from_secs(1);
    let go = loop {
        if let Some(&go) = shared.go.get() {
            break go;
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(1));
    };
    let start = go + config.warmup;
    thread::sleep(start.saturating_duration_since(Instant::now()));
    let before = crate::proc::group_cpu_seconds(group);
    thread::sleep((start + config.duration).saturating_duration_since(Instant::now()));
    let after = crate::proc::group_cpu_seconds(group);
    Some((after - before).max(0.0))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No socket (not opened yet, failed, or churn between connections).
    Closed,
    /// Connecting, or the message is not all written yet.
    Sending,
    /// Waiting for the rest of the echo.
    Receiving,
    /// After its first echo: an idle connection for good, an active one
    /// until go. Nothing should happen.
    Silent,
}

struct Conn {
    fd: Option<OwnedFd>,
    phase: Phase,
    /// Bytes of the message written (Sending) or read back (Receiving).
    done: usize,
    round: u64,
    sent_at: Instant,
    /// Tells events for a closed connection from those for its successor (churn).
    generation: u32,
    /// Its first echo arrived.
    set_up: bool,
    /// At least one round trip in the window.
    served: bool,
}

/// How an exchange ended badly.
enum Trouble {
    Call(&'static str, Errno),
    Closed,
}

struct Worker<'a> {
    config: &'a Config,
    shared: &'a Shared,
    mode: Mode,
    size: usize,
    epoll: Epoll,
    addr: SockaddrIn,
    /// conns[..idle] stay silent after their first echo.
    conns: Vec<Conn>,
    idle: usize,
    /// The message each connection has in flight: size bytes each.
    tx: Vec<u8>,
    rx: Vec<u8>,
    /// Setup (active and idle modes): the next connection to open, and how
    /// many are open but not echoed yet.
    next_open: usize,
    in_setup: usize,
    /// Churn: connections to open again.
    reopen: Vec<usize>,
    /// Active connections send once every thread is set up.
    going: bool,
    window: Option<(Instant, Instant)>,
    report: Report,
}

impl<'a> Worker<'a> {
    fn new(
        config: &'a Config,
        k: usize,
        threads: usize,
        shared: &'a Shared,
    ) -> Result<Worker<'a>, Error> {
        let share = |n: usize| n / threads + usize::from(k < n % threads);
        let idle = share(config.idle);
        let count = share(config.conns) + idle;
        let size = config.size;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|err| Error(format!("epoll_create1: {}", reason(&err))))?;
        let now = Instant::now();
        let conns = (0..count)
            .map(|_| Conn {
                fd: None,
                phase: Phase::Closed,
                done: 0,
                round: 0,
                sent_at: now,
                generation: 0,
                set_up: false,
                served: false,
            })
            .collect();
        // A pattern that differs between connections and threads, so that
        // an echo sent to the wrong client is caught too.
        let tx = (0..count * size)
            .map(|j| ((j % size) as u8).wrapping_mul(31) ^ ((j / size) as u8) ^ (k as u8) << 5)
            .collect();
        let mut reopen = Vec::new();
        if config.mode == Mode::Churn {
            reopen.extend(0..count);
        }
        Ok(Worker {
            config,
            shared,
            mode: config.mode,
            size,
            epoll,
            addr: SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::LOCALHOST, config.port)),
            conns,
            idle,
            tx,
            rx: vec![0; size.min(64 * 1024)],
            next_open: 0,
            in_setup: 0,
            reopen,
            going: false,
            window: None,
            report: Report::default(),
        })
    }

    fn run(mut self) -> Result<Report, Error> {
        let begun = Instant::now();
        let setup_deadline = begun + self.config.setup_timeout();
        let hard_deadline =
            setup_deadline + self.config.warmup + self.config.duration + Duration::from_secs(2);
        let mut ready = false;
        let mut cpu_start = None;
        let mut events = vec![EpollEvent::empty(); EVENTS];
        loop {
            let now = Instant::now();
            let retry_soon = self.open_more(now, setup_deadline);
            if !ready
                && (self.mode == Mode::Churn
                    || (self.next_open == self.conns.len() && self.in_setup == 0)
                    || now >= setup_deadline)
            {
                self.shared.mark_ready();
                ready = true;
            }
            if !self.going
                && let Some(&go) = self.shared.go.get()
            {
                self.going = true;
                let start = go + self.config.warmup;
                self.window = Some((start, start + self.config.duration));
                for i in self.idle..self.conns.len() {
                    if self.conns[i].phase == Phase::Silent {
                        self.start_round(i, now);
                    }
                }
            }
            let mut timeout_ms = 5;
            if let Some((start, end)) = self.window {
                if now >= end {
                    break;
                }
                if now >= start {
                    if cpu_start.is_none() {
                        cpu_start = Some(thread_cpu());
                    }
                    timeout_ms = (end - now).as_millis().clamp(1, 10) as u16;
                }
            }
            if now >= hard_deadline {
                self.note_error("the window never opened: a load thread got stuck".into());
                break;
            }
            if retry_soon {
                timeout_ms = 1;
            }
            let n = match self.epoll.wait(&mut events, EpollTimeout::from(timeout_ms)) {
                Ok(n) => n,
                Err(Errno::EINTR) => 0,
                Err(err) => return Err(Error(format!("epoll_wait: {}", reason(&err)))),
            };
            for event in &events[..n] {
                let token = event.data();
                let i = (token & 0xffff_ffff) as usize;
                let generation = (token >> 32) as u32;
                if i < self.conns.len()
                    && self.conns[i].generation == generation
                    && self.conns[i].fd.is_some()
                {
                    self.on_event(i);
                }
            }
        }
        if let Some(start) = cpu_start {
            self.report.cpu_seconds = thread_cpu() - start;
        }
        self.report.idle_held = self.conns[..self.idle]
            .iter()
            .filter(|c| c.phase == Phase::Silent)
            .count() as u64;
        Ok(self.report)
    }

    /// Opens the connections that are due; says whether one failed in a
    /// way worth retrying soon (churn).
    fn open_more(&mut self, now: Instant, setup_deadline: Instant) -> bool {
        if self.mode == Mode::Churn {
            if self.window.is_some_and(|(_, end)| now >= end) {
                return false;
            }
            // A failed one goes back on the list, after these: next turn.
            let due = self.reopen.len();
            let mut failed = false;
            for k in 0..due {
                let i = self.reopen[k];
                failed |= !self.open(i, now);
            }
            self.reopen.drain(..due);
            return failed;
        }
        while self.next_open < self.conns.len() && self.in_setup < MAX_IN_SETUP {
            if now >= setup_deadline {
                break;
            }
            let i = self.next_open;
            self.next_open += 1;
            self.open(i, now);
        }
        false
    }

    /// socket → connect (non-blocking) → register → send the first message.
    fn open(&mut self, i: usize, now: Instant) -> bool {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        let fd = match socket(AddressFamily::Inet, SockType::Stream, flags, None) {
            Ok(fd) => fd,
            Err(err) => return self.connect_failed(i, "socket", err),
        };
        // The message must leave at once, never wait behind Nagle's algorithm.
        let _ = setsockopt(&fd, sockopt::TcpNoDelay, &true);
        match connect(fd.as_raw_fd(), &self.addr) {
            Ok(()) | Err(Errno::EINPROGRESS) => {}
            Err(err) => return self.connect_failed(i, "connect", err),
        }
        let conn = &mut self.conns[i];
        conn.generation = conn.generation.wrapping_add(1);
        let token = i as u64 | u64::from(conn.generation) << 32;
        // Edge-triggered: one registration serves the whole connection,
        // connecting, writing and reading; no epoll_ctl per message.
        let interest = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        if let Err(err) = self.epoll.add(&fd, EpollEvent::new(interest, token)) {
            return self.connect_failed(i, "epoll_ctl", err);
        }
        conn.fd = Some(fd);
        if self.mode != Mode::Churn {
            self.in_setup += 1; // until its first echo, or its failure
        }
        self.start_round(i, now);
        true
    }

    fn connect_failed(&mut self, i: usize, call: &'static str, err: Errno) -> bool {
        self.report.connect_failures += 1;
        self.note_error(format!("{call} {}: {}", self.addr, reason(&err)));
        if self.mode == Mode::Churn && err != Errno::ECONNREFUSED {
            // Out of ports or descriptors for a moment: try again. Refused
            // means nobody listens: the slot stops.
            self.reopen.push(i);
        }
        false
    }

    /// The next message: a new round number in its first bytes, then write.
    fn start_round(&mut self, i: usize, now: Instant) {
        let size = self.size;
        let conn = &mut self.conns[i];
        conn.round += 1;
        conn.phase = Phase::Sending;
        conn.done = 0;
        conn.sent_at = now;
        let stamp = (conn.round ^ (i as u64) << 40).to_le_bytes();
        let n = size.min(stamp.len());
        self.tx[i * size..i * size + n].copy_from_slice(&stamp[..n]);
        self.send(i);
    }

    fn on_event(&mut self, i: usize) {
        match self.conns[i].phase {
            Phase::Sending => self.send(i),
            Phase::Receiving => self.receive(i),
            Phase::Silent => self.check_silent(i),
            Phase::Closed => {}
        }
    }

    /// Writes what is left of the message, until done or EAGAIN.
    fn send(&mut self, i: usize) {
        let size = self.size;
        for _ in 0..MAX_CALLS {
            let conn = &mut self.conns[i];
            let Some(fd) = &conn.fd else { return };
            match write(fd, &self.tx[i * size + conn.done..(i + 1) * size]) {
                Ok(n) => {
                    conn.done += n;
                    if conn.done == size {
                        // The echo's arrival will queue an EPOLLIN edge.
                        conn.phase = Phase::Receiving;
                        conn.done = 0;
                        return;
                    }
                }
                // Not connected yet, or the send buffer is full: the
                // EPOLLOUT edge brings us back.
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                Err(err) => return self.close(i, Trouble::Call("write", err)),
            }
        }
        self.rearm(i);
    }

    /// Reads the echo, compares it byte for byte with what was sent.
    fn receive(&mut self, i: usize) {
        let size = self.size;
        for _ in 0..MAX_CALLS {
            let conn = &mut self.conns[i];
            let Some(fd) = &conn.fd else { return };
            // Never read past this message: nothing else should come.
            let want = (size - conn.done).min(self.rx.len());
            match read(fd, &mut self.rx[..want]) {
                Ok(0) => return self.close(i, Trouble::Closed),
                Ok(n) => {
                    let expected = &self.tx[i * size + conn.done..i * size + conn.done + n];
                    if self.rx[..n] != *expected {
                        return self.mismatch(i);
                    }
                    conn.done += n;
                    if conn.done == size {
                        return self.complete(i);
                    }
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                Err(err) => return self.close(i, Trouble::Call("read", err)),
            }
        }
        self.rearm(i);
    }

    /// A whole echo arrived and matched.
    fn complete(&mut self, i: usize) {
        let now = Instant::now();
        let idle = i < self.idle;
        self.report.bytes_verified += self.size as u64;
        let conn = &mut self.conns[i];
        if !conn.set_up {
            conn.set_up = true;
            self.report.connected += 1;
            if self.mode != Mode::Churn {
                self.in_setup -= 1;
            }
        }
        let in_window = self
            .window
            .is_some_and(|(start, end)| now >= start && now < end);
        if in_window && !idle {
            self.report.round_trips += 1;
            self.report
                .latency
                .record((now - conn.sent_at).as_nanos() as u64);
            if !conn.served {
                conn.served = true;
                self.report.served += 1;
            }
        }
        if idle || (!self.going && self.mode != Mode::Churn) {
            conn.phase = Phase::Silent;
        } else if self.mode == Mode::Churn {
            // close(2), and a new connection next turn.
            conn.fd = None;
            conn.phase = Phase::Closed;
            conn.set_up = false;
            self.reopen.push(i);
        } else {
            self.start_round(i, now);
        }
    }

    /// A silent connection had an event: the server closed it, or sent
    /// something unasked.
    fn check_silent(&mut self, i: usize) {
        let Some(fd) = &self.conns[i].fd else { return };
        let mut byte = [0u8; 1];
        match read(fd, &mut byte) {
            Ok(0) => self.close(i, Trouble::Closed),
            Ok(_) => self.mismatch(i),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => self.close(i, Trouble::Call("read", err)),
        }
    }

    /// The server's echo differed from what we sent.
    fn mismatch(&mut self, i: usize) {
        self.report.mismatches += 1;
        let round = self.conns[i].round;
        self.note_error(format!(
            "echo from {}: differs from what was sent (message {round} of connection {i})",
            self.addr
        ));
        self.drop_conn(i, true);
    }

    /// The server closed or reset the connection, or a call failed.
    fn close(&mut self, i: usize, trouble: Trouble) {
        let refused = matches!(trouble, Trouble::Call(_, Errno::ECONNREFUSED));
        let text = match trouble {
            Trouble::Call(call, err) => format!("{call} {}: {}", self.addr, reason(&err)),
            Trouble::Closed => format!("read {}: the server closed the connection", self.addr),
        };
        self.note_error(text);
        if refused {
            // The non-blocking connect failed: nobody listens.
            self.report.connect_failures += 1;
        } else {
            self.report.dropped += 1;
        }
        self.drop_conn(i, !refused);
    }

    /// Closes a connection; churn opens another unless `again` is false.
    fn drop_conn(&mut self, i: usize, again: bool) {
        let conn = &mut self.conns[i];
        conn.fd = None; // close(2); epoll forgets it
        conn.phase = Phase::Closed;
        if !conn.set_up && self.mode != Mode::Churn {
            self.in_setup -= 1;
        }
        conn.set_up = false;
        if self.mode == Mode::Churn && again {
            self.reopen.push(i);
        }
    }

    /// After MAX_CALLS without EAGAIN: epoll_ctl(MOD) re-checks readiness
    /// and queues a new edge, so the connection cannot stall.
    fn rearm(&mut self, i: usize) {
        let conn = &self.conns[i];
        let Some(fd) = &conn.fd else { return };
        let token = i as u64 | u64::from(conn.generation) << 32;
        let interest = EpollFlags::EPOLLIN
            | EpollFlags::EPOLLOUT
            | EpollFlags::EPOLLRDHUP
            | EpollFlags::EPOLLET;
        let mut event = EpollEvent::new(interest, token);
        if let Err(err) = self.epoll.modify(fd, &mut event) {
            self.close(i, Trouble::Call("epoll_ctl", err));
        }
    }

    fn note_error(&mut self, text: String) {
        if self.report.first_error.is_none() {
            self.report.first_error = Some(text);
        }
    }
}

/// CPU time (user and system) this thread has used, in seconds.
fn thread_cpu() -> f64 {
    match getrusage(UsageWho::RUSAGE_THREAD) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(usage.user_time()) + secs(usage.system_time())
        }
        Err(_) => 0.0,
    }
}
