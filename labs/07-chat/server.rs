//! Lab 07: a chat server speaking a small, honest subset of IRC (RFC 2812).
//!
//! Lab 04's structure: one process, poll(), non-blocking sockets. What is
//! new is the server's role: it is the go-between of its users. A line read
//! from one client is a command (`PRIVMSG #room :hi`) that makes the server
//! queue lines for other clients, so each client now has an output queue
//! that others fill, and a client that stops reading must not let its queue
//! grow without bound or stall the rest.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { poll(listener
//! and every client, until the next PING or timeout is due) → read from the
//! readable, each whole line a command, as fast as flood control allows →
//! PING the silent, drop the late (no answer to a PING, or not registered in
//! time) → write every queue → close those gone → accept the new ones }.
//!
//! Flood control (RFC 1459 §8.10): each line a client sends moves its flood
//! timer 2 s ahead; while the timer is more than 10 s ahead of now, the
//! server leaves the client's socket unread (no POLLIN). Past a burst of six
//! lines, a spammer is read at one line every 2 s, and the rest of what it
//! sends waits in its own socket buffers until its write(2) blocks.
//!
//! This file is the go-between: the loop and the connections. What a line
//! means, and for whom it makes lines, is the irc module (irc/mod.rs, then
//! a file per topic), which queues them through the `Outbox` below.

mod irc;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, getsockname,
    listen, setsockopt, socket, sockopt,
};
use nix::unistd::{close, read, write};
use socket_labs::conn::{inet_address, take_connection};
use socket_labs::irc::MAX_LINE;
use socket_labs::limits::raise_descriptor_limit;
use socket_labs::rate::FloodTimer;
use socket_labs::spare::{REFUSING, SpareDescriptor};
use socket_labs::{Cli, DEFAULT_PORT, Line, LineReader, OrDie, log, reason, warn};

use irc::{Id, Irc, Outbox, read_motd};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--name NAME] [--ping-timeout SECS]
              [--register-timeout SECS] [--flood-penalty SECS] [--motd FILE]

Lab 07: chat server, one process, poll(). Speaks a subset of IRC (RFC 2812):
connect with lab 07's client, with irssi (irssi -c 127.0.0.1 -p 4242 -n alice)
or by hand (nc -C 127.0.0.1 4242, then NICK alice and USER alice 0 * :Alice).

  PORT                 port to listen on (default 4242; 0 = any free port)
  --bind ADDR          address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --name NAME          the server's name, the prefix of its replies (default chat.socket-labs)
  --ping-timeout SECS  a client silent this long is sent a PING; one still silent
                       as long again is dropped (default 120, at most 86400)
  --register-timeout SECS
                       a connection not registered (NICK and USER) this long
                       after it connected is dropped (default 60, at most 86400)
  --flood-penalty SECS each line a client sends costs it this long; past a burst of
                       10 s of them, its lines are read one per SECS (RFC 1459 §8.10;
                       default 2, at most 60; 0 = no flood control)
  --motd FILE          the message of the day, sent on registration and MOTD
                       (read once at start-up: its first 100 lines, 400 bytes each)
  --help               print this help
";

const DEFAULT_NAME: &str = "chat.socket-labs";

/// The most a client's output queue may hold. The queue only grows when the
/// client reads less than others send it: past this bound it is dropped
/// ("too slow") rather than let one peer take the server's memory.
const MAX_QUEUED: usize = 256 * 1024;

/// One client's connection: its socket, its two buffers, its clock. Who the
/// client is on IRC (nick, channels...) is the irc module's, under the same Id.
struct Connection {
    id: Id,
    fd: OwnedFd,
    peer: SocketAddr,
    /// Bytes read and not yet run as lines: at most 512 bytes.
    input: LineReader,
    /// `input` may hold whole lines not yet run: flood control held them.
    /// Its socket is read again only once they are run.
    held: bool,
    /// Flood control (RFC 1459 §8.10): each line run moves it ahead.
    flood: FloodTimer,
    /// Lines queued for this client, not yet taken by write(2): at most MAX_QUEUED.
    output: Vec<u8>,
    /// Why it must be closed at the end of this turn (the QUIT message its
    /// channels see).
    gone: Option<Vec<u8>>,
    /// When to PING it (or, if `pinged`, to drop it) unless it sends a line.
    ping_at: Instant,
    pinged: bool,
    /// Until it registers: when to drop it if it still has not, counted
    /// from its connect whatever it sends meanwhile.
    register_by: Instant,
}

/// The connections, in a Vec as in lab 04 (index i is the pollfd i + 1), in
/// the order they came: the turn reads them, and closes them, in that
/// order. With an index from Id to place: the irc module names them by Id.
#[derive(Default)]
struct Connections {
    list: Vec<Connection>,
    place: HashMap<Id, usize>,
}

fn main() {
    let (addr, name, ping_timeout, register_timeout, penalty, motd) = arguments();
    // Every client costs a descriptor: the soft limit (often 1024) goes up
    // to the hard one (src/limits.rs).
    let limit = raise_descriptor_limit();

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // Non-blocking: accept4(2) below returns EAGAIN, not a wait, once the
    // backlog is empty.
    let listenfd =
        socket(domain, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).or_die("socket", addr);
    setsockopt(&listenfd, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listenfd.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    listen(&listenfd, Backlog::MAXCONN).or_die("listen", addr);
    let local: SockaddrStorage = getsockname(listenfd.as_raw_fd()).or_die("getsockname", addr);
    // The reserve descriptor for EMFILE, as in lab 04 (src/spare.rs).
    let mut spare = SpareDescriptor::reserve(limit);
    log!("listening on {local}");
    log!("descriptor limit {limit} (RLIMIT_NOFILE)");
    let mut out_of_descriptors = false;

    let mut irc = Irc::new(name, motd);
    let mut conns = Connections::default();
    let mut next_id: Id = 0;
    loop {
        // Sleep in poll(2) until something happens or a client's next
        // deadline (a PING, a drop for silence or for not registering, the
        // end of a flood hold) is due: the timeout is the server's only clock.
        let now = Instant::now();
        let timeout = poll_timeout(&conns, &irc, now);
        // [0] is the listener, [i + 1] is conns.list[i], rebuilt each turn (lab 04).
        let revents: Vec<PollFlags> = {
            let mut fds = Vec::with_capacity(conns.list.len() + 1);
            fds.push(PollFd::new(listenfd.as_fd(), PollFlags::POLLIN));
            for conn in &conns.list {
                let mut events = PollFlags::empty();
                if conn.reading(now) {
                    events |= PollFlags::POLLIN;
                }
                if !conn.output.is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(conn.fd.as_fd(), events));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => socket_labs::die("poll", local, &err),
            }
            fds.iter()
                .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        let now = Instant::now();

        // Read: one read(2) per readable client, then its lines as far as
        // flood control allows. Each whole line is a command, which may
        // queue lines for any client; nobody is removed before the turn
        // ends, so the indexes stay valid.
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        for i in 0..conns.list.len() {
            if conns.list[i].gone.is_none() {
                let ready = revents[i + 1].intersects(readable);
                read_lines(&mut conns, i, &mut irc, ready, now, ping_timeout, penalty);
            }
        }

        check_timeouts(&mut conns, &irc, now, ping_timeout, register_timeout);

        // Write: every queue, as far as each socket takes it now, at once
        // rather than waiting for POLLOUT (there is almost always room).
        for conn in &mut conns.list {
            if !conn.output.is_empty() {
                conn.flush();
            }
        }

        // Close: those who quit, left, failed, timed out or were too slow.
        close_gone(&mut conns, &mut irc);

        if revents[0].contains(PollFlags::POLLIN) {
            // Every connection waiting in the backlog, as in lab 04.
            loop {
                let fd = match accept4(listenfd.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
                    Ok(fd) => fd,
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                    Err(err @ (Errno::EMFILE | Errno::ENFILE)) => {
                        if !out_of_descriptors {
                            warn!("accept {local}: {}; {REFUSING}", reason(&err));
                            out_of_descriptors = true;
                        }
                        if spare.refuse_one(listenfd.as_raw_fd(), local) {
                            continue;
                        }
                        break; // nobody was waiting
                    }
                    Err(err) => socket_labs::die("accept", local, &err),
                };
                out_of_descriptors = false;
                // The client's address, from getpeername(2) (src/conn.rs).
                let Some((connfd, peer)) = take_connection(fd, local) else {
                    continue;
                };
                let Some(peer) = inet_address(&peer) else {
                    continue; // not an IP connection: cannot happen on an IP listener
                };
                log!("connection from {peer}");
                irc.connected(next_id, peer);
                let (ping_at, register_by) = (now + ping_timeout, now + register_timeout);
                conns.push(Connection::new(next_id, connfd, peer, ping_at, register_by));
                next_id += 1;
            }
        }
    }
}

/// Closes every connection marked gone, after the irc module has told its
/// channels (a QUIT). That may overflow a slow peer's queue and mark it gone
/// in turn: go round until nobody is left marked.
fn close_gone(conns: &mut Connections, irc: &mut Irc) {
    while conns.list.iter().any(|c| c.gone.is_some()) {
        for i in (0..conns.list.len()).rev() {
            if let Some(why) = conns.list[i].gone.clone() {
                let conn = conns.remove(i);
                irc.disconnected(conns, conn.id, &why);
                log!("{} disconnected", conn.peer);
                if let Err(err) = close(conn.fd) {
                    warn!("close {}: {}", conn.peer, reason(&err));
                }
            }
        }
    }
}

/// The command line: the address to listen on, the server's name, the
/// ping and registration timeouts, the flood penalty, the message of the
/// day's lines (its file read now, once the arguments are known good).
fn arguments() -> (
    SocketAddr,
    String,
    Duration,
    Duration,
    Duration,
    Option<Vec<Vec<u8>>>,
) {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let name: String = cli
        .value("--name", "NAME")
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let ping_secs: u64 = cli.value("--ping-timeout", "SECS").unwrap_or(120);
    let register_secs: u64 = cli.value("--register-timeout", "SECS").unwrap_or(60);
    let penalty_secs: u64 = cli.value("--flood-penalty", "SECS").unwrap_or(2);
    let motd: Option<String> = cli.value("--motd", "FILE");
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    // The name is the prefix of every reply: one word, as a host name is.
    if name.is_empty()
        || name.len() > 63
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        cli.usage_error(format_args!(
            "invalid NAME '{name}': letters, digits, '.' and '-', at most 63"
        ));
    }
    for secs in [ping_secs, register_secs] {
        if !(1..=86_400).contains(&secs) {
            cli.usage_error(format_args!(
                "invalid SECS '{secs}': from 1 to 86400 seconds"
            ));
        }
    }
    // At most 60 s a line: USER, held penalty - 10 s after NICK, must still
    // come within the default 60 s to register (at 60: after 50 s).
    if penalty_secs > 60 {
        cli.usage_error(format_args!(
            "invalid SECS '{penalty_secs}': from 0 to 60 seconds"
        ));
    }
    cli.finish();
    let (ping, register, penalty) = (
        Duration::from_secs(ping_secs),
        Duration::from_secs(register_secs),
        Duration::from_secs(penalty_secs),
    );
    let motd = motd.map(|path| read_motd(&path));
    (
        SocketAddr::new(ip, port),
        name,
        ping,
        register,
        penalty,
        motd,
    )
}

/// poll(2)'s timeout: until the first connection's next deadline (see
/// `next_deadline`), or none without connections.
fn poll_timeout(conns: &Connections, irc: &Irc, now: Instant) -> PollTimeout {
    match conns.list.iter().map(|c| next_deadline(c, irc, now)).min() {
        Some(deadline) => {
            let left = deadline.saturating_duration_since(now);
            // Rounded up: a timeout rounded down wakes us just before the
            // deadline, to find nothing due and poll again at once.
            PollTimeout::try_from(left.as_millis() + 1).unwrap_or(PollTimeout::MAX)
        }
        None => PollTimeout::NONE,
    }
}

impl Connection {
    /// A new connection, and its deadlines: when to PING it, and when to
    /// drop it if it has not registered by then.
    fn new(id: Id, fd: OwnedFd, peer: SocketAddr, ping_at: Instant, register_by: Instant) -> Self {
        Connection {
            id,
            fd,
            peer,
            input: LineReader::new(MAX_LINE),
            held: false,
            flood: FloodTimer::new(Instant::now()),
            output: Vec::new(),
            gone: None,
            ping_at,
            pinged: false,
            register_by,
        }
    }

    /// Whether to read its socket now (POLLIN): once the lines read are
    /// run, and while flood control takes more (RFC 1459 §8.10).
    fn reading(&self, now: Instant) -> bool {
        !self.held && self.flood.allows(now)
    }

    /// Queues `line`, for `flush` to write. A queue that would pass
    /// MAX_QUEUED is first written as far as the socket takes it now; a
    /// client whose queue is still too full is marked gone (too slow).
    fn queue(&mut self, line: &[u8]) {
        if self.gone.is_some() {
            return;
        }
        if self.output.len() + line.len() > MAX_QUEUED {
            self.flush();
            if self.gone.is_some() {
                return;
            }
            if self.output.len() + line.len() > MAX_QUEUED {
                log!(
                    "{} too slow: {} KiB waiting to be sent, dropped",
                    self.peer,
                    self.output.len() / 1024
                );
                self.output = Vec::new();
                self.gone = Some(b"Too slow: output queue full".to_vec());
                return;
            }
        }
        self.output.extend_from_slice(line);
    }

    /// Writes what is queued, as much as the socket takes now. The socket is
    /// non-blocking: EAGAIN means "full, try when poll says POLLOUT".
    fn flush(&mut self) {
        while !self.output.is_empty() {
            match write(&self.fd, &self.output) {
                Ok(n) => {
                    self.output.drain(..n);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => break,
                Err(err) => {
                    // EPIPE or ECONNRESET: the client left.
                    warn!("write {}: {}", self.peer, reason(&err));
                    self.output = Vec::new();
                    self.gone.get_or_insert_with(|| reason(&err).into_bytes());
                    break;
                }
            }
        }
    }
}

impl Connections {
    fn push(&mut self, conn: Connection) {
        self.place.insert(conn.id, self.list.len());
        self.list.push(conn);
    }

    /// Removes `list[i]`; those after it move down a place.
    fn remove(&mut self, i: usize) -> Connection {
        let conn = self.list.remove(i);
        self.place.remove(&conn.id);
        for (j, later) in self.list.iter().enumerate().skip(i) {
            self.place.insert(later.id, j);
        }
        conn
    }

    fn get_mut(&mut self, id: Id) -> Option<&mut Connection> {
        let i = *self.place.get(&id)?;
        self.list.get_mut(i)
    }
}

impl Outbox for Connections {
    fn queue(&mut self, to: Id, line: &[u8]) {
        if let Some(conn) = self.get_mut(to) {
            conn.queue(line);
        }
    }

    fn hang_up(&mut self, who: Id, why: &[u8]) {
        if let Some(conn) = self.get_mut(who) {
            conn.gone = Some(why.to_vec());
        }
    }
}

/// The input of `conns.list[i]`: one read(2) if poll(2) says it is `ready`,
/// then its whole lines, each a command, as many as flood control allows
/// `now`. `ping`: how long a line proves the client alive for.
fn read_lines(
    conns: &mut Connections,
    i: usize,
    irc: &mut Irc,
    ready: bool,
    now: Instant,
    ping: Duration,
    penalty: Duration,
) {
    let conn = &mut conns.list[i];
    let id = conn.id;
    if ready && !conn.reading(now) {
        // POLLHUP or POLLERR, which poll(2) reports unasked: a reset while
        // flood control held its lines. Nobody is left to answer.
        conn.gone = Some(b"Connection closed".to_vec());
        return;
    }
    if ready {
        match read(&conn.fd, conn.input.space()) {
            Ok(0) => {
                // End of file. A last line without its newline still counts.
                if let Some(Line::Whole(line)) = conn.input.rest() {
                    irc.command(conns, id, &line);
                }
                let conn = &mut conns.list[i];
                conn.gone
                    .get_or_insert_with(|| b"Connection closed".to_vec());
                return;
            }
            Ok(n) => {
                conn.input.filled(n);
                conn.held = true;
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                // ECONNRESET: the client is gone without a goodbye.
                warn!("read {}: {}", conn.peer, reason(&err));
                conn.gone = Some(reason(&err).into_bytes());
                return;
            }
        }
    }
    // Every line costs the penalty, registration and PONG included: the
    // burst covers CAP, NICK, USER and CAP END, and a JOIN with the MODE
    // and WHO that irssi and weechat send after it.
    while conns.list[i].held && conns.list[i].flood.allows(now) {
        let conn = &mut conns.list[i];
        if conn.gone.is_some() {
            break; // QUIT: what follows is not read
        }
        let Some(piece) = conn.input.next_line() else {
            conn.held = false;
            break;
        };
        conn.flood.charge(now, penalty);
        // A complete line proves the client alive: no PING needed.
        // Bytes without a newline do not, or one byte a second (a
        // slowloris) would hold a connection, and its nick, for ever.
        if piece.bytes().ends_with(b"\n") {
            conn.ping_at = now + ping;
            conn.pinged = false;
        }
        match piece {
            Line::Whole(line) => irc.command(conns, id, &line),
            // The first MAX_LINE bytes of a longer line: refused;
            // its rest comes as Line::Rest, ignored.
            Line::Long(_) => irc.line_too_long(conns, id),
            Line::Rest(_) => {}
        }
    }
}

/// When the loop next has something to do for this connection, if it
/// does not send: its PING (or drop), or before that its registration
/// deadline, or the end of its flood hold (see `Connection::reading`).
fn next_deadline(conn: &Connection, irc: &Irc, now: Instant) -> Instant {
    let mut due = conn.ping_at;
    if !irc.is_registered(conn.id) {
        due = due.min(conn.register_by);
    }
    if !conn.reading(now) {
        due = due.min(conn.flood.allows_at());
    }
    due
}

/// Drops every connection not registered in time, sends a PING to every
/// client silent for the ping timeout, and drops those still silent as long
/// after it.
fn check_timeouts(
    conns: &mut Connections,
    irc: &Irc,
    now: Instant,
    ping: Duration,
    register: Duration,
) {
    let secs = ping.as_secs();
    for i in 0..conns.list.len() {
        let conn = &mut conns.list[i];
        let id = conn.id;
        if conn.gone.is_some() {
            continue;
        }
        // A PONG now and then would keep an unregistered connection for
        // ever, holding a nick and a descriptor: whatever it says, it has
        // this long from its connect to send NICK and USER (ircd-hybrid
        // allows 30 s; ngIRCd drops it too).
        if !irc.is_registered(id) && now >= conn.register_by {
            log!(
                "{} registration timeout: not registered after {} s, dropped",
                conn.peer,
                register.as_secs()
            );
            irc.close_link(conns, id, b"Registration timed out");
            continue;
        }
        if now < conn.ping_at {
            continue;
        }
        conn.ping_at = now + ping;
        if !conn.pinged {
            conn.pinged = true;
            irc.ping(conns, id);
        } else {
            log!(
                "{} ping timeout: silent for {} s, dropped",
                conn.peer,
                2 * secs
            );
            let why = format!("Ping timeout: {secs} seconds");
            irc.close_link(conns, id, why.as_bytes());
        }
    }
}
