//! Lab 03: one process serves every client, with select(2).
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → fcntl(O_NONBLOCK) →
//! loop { build the read and write sets → select → accept until EAGAIN →
//! read from the readable clients → write their echo → close those gone }.
//! Every socket is non-blocking: the one process must never wait for one
//! client while others are ready.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::select::{FD_SETSIZE, FdSet, select};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept, bind, getpeername,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use nix::unistd::{close, read, write};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, log, reason, warn};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR]

Lab 03: echo server in one process with select(2). Serves every client at
once; a client that sends without reading its echo is throttled, never waited for.

  PORT         port to listen on (default 4242; 0 = any free port)
  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --help       print this help
";

/// Above this much unsent echo, the server stops reading from a client until
/// the client has read some of it: backpressure.
const HIGH_WATER: usize = 64 * 1024;
/// At most this much is read from one client per turn, so that its pending
/// output never exceeds HIGH_WATER + READ_SIZE.
const READ_SIZE: usize = 16 * 1024;
/// How long accepting stays paused after accept(2) ran out of descriptors,
/// unless a client leaves first.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// One connected client: what a C server keeps in parallel arrays.
struct Client {
    fd: OwnedFd,
    peer: SockaddrStorage,
    /// Echo that write(2) could not take yet: the socket's send buffer was full.
    pending: Vec<u8>,
    /// The client has shut down its side (read returned 0): close it once
    /// `pending` is sent, so that a half-closing client gets all its echo.
    eof: bool,
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();
    let addr = SocketAddr::new(ip, port);

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let listener = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
    // The listener goes in an fd_set too (see FD_SETSIZE below).
    if listener.as_raw_fd() >= FD_SETSIZE as RawFd {
        socket_labs::die("socket", addr, &Errno::EMFILE);
    }
    // Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after a
    // restart, while the last run's connections sit in TIME_WAIT (socket(7)).
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    // A burst of clients waits here between two turns of the loop (listen(2)).
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    // The listener is non-blocking so that accept(2) can be called until it
    // fails with EAGAIN (the backlog is empty), and so that a client that
    // resets between select(2) and accept(2) cannot leave us blocked in
    // accept while every other client waits.
    let flags = fcntl(&listener, FcntlArg::F_GETFL).or_die("fcntl", addr);
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(&listener, FcntlArg::F_SETFL(flags)).or_die("fcntl", addr);
    // With port 0 the kernel chose the port: getsockname(2) tells which.
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    log!("listening on {local}");

    let mut clients: Vec<Client> = Vec::new();
    // What select(2) said about clients[i] (readable, writable), copied out
    // of the sets: they borrow the clients' descriptors, and while they live
    // no client can be added or removed.
    let mut ready: Vec<(bool, bool)> = Vec::new();
    let mut buf = [0u8; READ_SIZE];
    // When accept(2) last ran out of descriptors (EMFILE): until a client
    // leaves or ACCEPT_PAUSE passes, the listener stays out of the read set.
    let mut paused_since: Option<Instant> = None;
    // Whether this shortage of descriptors has been reported: once, not once
    // per turn. It ends when the backlog is empty.
    let mut shortage_reported = false;

    loop {
        let accepting = paused_since.is_none_or(|since| since.elapsed() >= ACCEPT_PAUSE);
        let listener_ready = {
            // select(2) overwrites the sets with the descriptors that are
            // ready: they are built again, from the client table, every turn.
            let mut readfds = FdSet::new();
            let mut writefds = FdSet::new();
            let mut maxfd = listener.as_raw_fd();
            if accepting {
                readfds.insert(listener.as_fd());
            }
            for c in &clients {
                // Backpressure: while a client has more than HIGH_WATER of
                // echo it has not read, read nothing more from it; its
                // unread data waits in the kernel's buffers, and TCP flow
                // control stops it sending.
                if !c.eof && c.pending.len() <= HIGH_WATER {
                    readfds.insert(c.fd.as_fd());
                }
                if !c.pending.is_empty() {
                    writefds.insert(c.fd.as_fd());
                }
                maxfd = maxfd.max(c.fd.as_raw_fd());
            }
            // While accepting is paused, wake up anyway to try again: with
            // ENFILE the descriptors may be freed by another process.
            let mut timeout = TimeVal::milliseconds(ACCEPT_PAUSE.as_millis() as i64);
            loop {
                let timeout = if accepting { None } else { Some(&mut timeout) };
                // nfds is the highest descriptor plus one, not a count: the
                // kernel looks at descriptors 0 to nfds-1 of each set (select(2)).
                match select(maxfd + 1, &mut readfds, &mut writefds, None, timeout) {
                    Ok(_) => break,
                    // A signal interrupted the wait; the sets are unchanged.
                    Err(Errno::EINTR) => continue,
                    Err(err) => socket_labs::die("select", local, &err),
                }
            }
            ready.clear();
            ready.extend(clients.iter().map(|c| {
                let fd = c.fd.as_fd();
                (readfds.contains(fd), writefds.contains(fd))
            }));
            accepting && readfds.contains(listener.as_fd())
        }; // The sets are gone: clients may be added and removed again.

        if listener_ready {
            // Accept every connection waiting in the backlog, not just one:
            // with one accept per turn a burst of clients waits turn after turn.
            loop {
                let fd = match accept(listener.as_raw_fd()) {
                    Ok(fd) => fd,
                    Err(Errno::EAGAIN) => {
                        shortage_reported = false; // nobody waits for a descriptor any more
                        break;
                    }
                    // The client gave up while it waited in the backlog, or a
                    // signal interrupted us: try the next one (accept(2)).
                    Err(Errno::ECONNABORTED | Errno::EINTR) => continue,
                    Err(err @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                        // The connection stays in the backlog and the
                        // listener stays readable: watching it now would
                        // make select(2) return at once, for ever, at 100%
                        // CPU. Stop watching it for a while.
                        if !shortage_reported {
                            warn!(
                                "accept {local}: {}; new clients wait in the backlog",
                                reason(&err)
                            );
                            shortage_reported = true;
                        }
                        paused_since = Some(Instant::now());
                        break;
                    }
                    Err(err) => socket_labs::die("accept", local, &err),
                };
                // SAFETY: accept(2) just returned this descriptor and nothing
                // else owns it. nix 0.31's accept returns a bare RawFd: owning
                // it at once means no path can forget to close it.
                let conn = unsafe { OwnedFd::from_raw_fd(fd) };
                let peer: SockaddrStorage = match getpeername(fd) {
                    Ok(peer) => peer,
                    Err(err) => {
                        // ENOTCONN: the client reset before we looked.
                        warn!("getpeername {local}: {}", reason(&err));
                        continue;
                    }
                };
                // An fd_set is a bitmap of FD_SETSIZE bits (select(2)): a
                // higher descriptor cannot be watched. C's FD_SET would write
                // past the end of the set; nix's FdSet::insert panics.
                if fd >= FD_SETSIZE as RawFd {
                    log!("refusing {peer}: fd {fd} >= FD_SETSIZE (select limit)");
                    if let Err(err) = close(conn) {
                        warn!("close {peer}: {}", reason(&err));
                    }
                    continue;
                }
                // A blocking write(2) to a client that does not read would
                // stop the whole server once that client's buffers are full.
                // On Linux, accept(2) does not pass O_NONBLOCK on from the
                // listener: set it on every connection.
                let nonblocking = fcntl(&conn, FcntlArg::F_GETFL).and_then(|flags| {
                    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
                    fcntl(&conn, FcntlArg::F_SETFL(flags))
                });
                if let Err(err) = nonblocking {
                    warn!("fcntl {peer}: {}", reason(&err));
                    continue;
                }
                log!("connection from {peer}");
                clients.push(Client {
                    fd: conn,
                    peer,
                    pending: Vec::new(),
                    eof: false,
                });
            }
        }

        // Backwards, so that swap_remove(i) only moves into slot i a client
        // already handled this turn, or one just accepted (not in `ready`).
        for i in (0..ready.len()).rev() {
            let (readable, writable) = ready[i];
            if !readable && !writable {
                continue;
            }
            let c = &mut clients[i];
            let mut gone = false;
            if readable {
                // One read(2) per turn: a client that sends a lot gets its
                // turn like the others, and its pending output stays bounded.
                match read(&c.fd, &mut buf) {
                    Ok(0) => c.eof = true, // it shut down its side; its echo still goes out
                    Ok(n) => c.pending.extend_from_slice(&buf[..n]),
                    // Readiness can be spurious (select(2), BUGS); a signal
                    // may interrupt: either way, next turn.
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(err) => {
                        // ECONNRESET: the client reset the connection.
                        warn!("read {}: {}", c.peer, reason(&err));
                        gone = true;
                    }
                }
            }
            // Either select(2) said there is room, or we just read an echo to
            // send: try at once, and most echoes go out without another turn.
            if !gone && !c.pending.is_empty() {
                match write(&c.fd, &c.pending) {
                    // Possibly a partial write: the rest waits for room.
                    Ok(n) => drop(c.pending.drain(..n)),
                    // The send buffer is full: select(2) will say when it is not.
                    Err(Errno::EAGAIN | Errno::EINTR) => {}
                    Err(err) => {
                        // EPIPE or ECONNRESET: the client is gone. Rust ignores
                        // SIGPIPE, so write(2) returns EPIPE instead of killing us.
                        warn!("write {}: {}", c.peer, reason(&err));
                        gone = true;
                    }
                }
                if c.pending.is_empty() {
                    // A client that has caught up gives back what its backlog took.
                    c.pending.shrink_to(READ_SIZE);
                }
            }
            if gone || (c.eof && c.pending.is_empty()) {
                let c = clients.swap_remove(i);
                log!("{} disconnected", c.peer);
                // close(2) sends our FIN (or a RST if unread data remains).
                if let Err(err) = close(c.fd) {
                    warn!("close {}: {}", c.peer, reason(&err));
                }
                // A descriptor is free: a paused accept(2) may succeed now.
                paused_since = None;
            }
        }
    }
}
