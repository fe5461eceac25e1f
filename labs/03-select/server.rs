//! Lab 03: one process serves every client, with select(2).
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → fcntl(O_NONBLOCK) →
//! loop { build the read and write sets → select → accept until EAGAIN →
//! read from the readable clients → write their echo → close those gone }.
//! Every socket is non-blocking: the one process must never wait for one
//! client while others are ready.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::select::{FD_SETSIZE, FdSet, select};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept, bind, getsockname, listen,
    setsockopt, socket, sockopt,
};
use nix::unistd::{close, read, write};
use socket_labs::conn::take_connection;
use socket_labs::pause::AcceptPause;
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, warn};

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
/// unless a client leaves first (src/pause.rs).
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// One connected client (in the C twin, an entry of client[]).
struct Client {
    fd: OwnedFd,
    peer: SockaddrStorage,
    /// Echo that write(2) could not take yet: the socket's send buffer was full.
    pending: Vec<u8>,
    /// The client has shut down its side (read returned 0): close it once
    /// `pending` is sent, so that a half-closing client gets all its echo.
    eof: bool,
}

impl Client {
    fn new(fd: OwnedFd, peer: SockaddrStorage) -> Client {
        Client {
            fd,
            peer,
            pending: Vec::new(),
            eof: false,
        }
    }
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
        die("socket", addr, &Errno::EMFILE);
    }
    // Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after a
    // restart, while the last run's connections sit in TIME_WAIT (socket(7)).
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    // A burst of clients waits here between two turns of the loop (listen(2)).
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    // Non-blocking: accept(2) is called until EAGAIN (the backlog is empty),
    // and a client that resets before we accept cannot leave us blocked.
    set_nonblocking(&listener).or_die("fcntl", addr);
    // With port 0 the kernel chose the port: getsockname(2) tells which.
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    log!("listening on {local}");

    let mut clients: Vec<Client> = Vec::new();
    let mut ready: Vec<(bool, bool)> = Vec::new(); // clients[i]: readable, writable
    let mut buf = [0u8; READ_SIZE];
    let mut pause = AcceptPause::new(ACCEPT_PAUSE); // when out of descriptors
    loop {
        // select(2) overwrites the sets with its answer: they are built every
        // turn, and dropped (they borrow the clients) before one comes or goes.
        let listener_ready = {
            let mut readfds = FdSet::new();
            let mut writefds = FdSet::new();
            let mut maxfd = listener.as_raw_fd();
            if pause.accepting() {
                readfds.insert(listener.as_fd());
            }
            for c in &clients {
                // Backpressure: a client with more than HIGH_WATER of unread
                // echo is not read from; TCP flow control stops it sending.
                if !c.eof && c.pending.len() <= HIGH_WATER {
                    readfds.insert(c.fd.as_fd());
                }
                if !c.pending.is_empty() {
                    writefds.insert(c.fd.as_fd());
                }
                maxfd = maxfd.max(c.fd.as_raw_fd());
            }
            // Not a count: the kernel looks at descriptors 0 to nfds-1.
            let nfds = maxfd + 1;
            // Paused, wake up after ACCEPT_PAUSE anyway to try accept(2) again.
            let mut timeout = pause.timeout();
            match select(nfds, &mut readfds, &mut writefds, None, timeout.as_mut()) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue, // a signal came: ask again
                Err(err) => die("select", local, &err),
            }
            let answer = |fd| (readfds.contains(fd), writefds.contains(fd));
            ready.clear();
            ready.extend(clients.iter().map(|c| answer(c.fd.as_fd())));
            readfds.contains(listener.as_fd())
        };

        // Accept every connection waiting in the backlog, not just one: with
        // one accept per turn a burst of clients waits turn after turn.
        if listener_ready {
            loop {
                let fd = match accept(listener.as_raw_fd()) {
                    Ok(fd) => fd,
                    Err(Errno::EAGAIN) => {
                        pause.backlog_empty(); // nobody waits for a descriptor any more
                        break;
                    }
                    // The client gave up in the backlog, or a signal came (accept(2)).
                    Err(Errno::ECONNABORTED | Errno::EINTR) => continue,
                    // The listener stays readable: watched, it would spin select(2).
                    Err(err @ (Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)) => {
                        pause.start(local, err);
                        break;
                    }
                    Err(err) => die("accept", local, &err),
                };
                let Some((conn, peer)) = take_connection(fd, local) else {
                    continue;
                };
                // An fd_set is a bitmap of FD_SETSIZE bits: a higher descriptor
                // cannot be watched (C's FD_SET writes past the set's end).
                if fd >= FD_SETSIZE as RawFd {
                    log!("refusing {peer}: fd {fd} >= FD_SETSIZE (select limit)");
                    continue; // dropping conn closes it
                }
                // Not inherited from the listener (accept(2)): a blocking write(2)
                // to a client that does not read would stop the whole server.
                if let Err(err) = set_nonblocking(&conn) {
                    warn!("fcntl {peer}: {}", reason(&err));
                    continue;
                }
                log!("connection from {peer}");
                clients.push(Client::new(conn, peer));
            }
        }

        // Backwards, so that swap_remove(i) only moves into slot i a client
        // already served this turn, or one just accepted (not in `ready`).
        for (i, &(readable, writable)) in ready.iter().enumerate().rev() {
            if (readable || writable) && !serve(&mut clients[i], readable, &mut buf) {
                disconnect(clients.swap_remove(i));
                pause.end(); // a descriptor is free: accept(2) may succeed now
            }
        }
    }
}

/// Serves a client that select(2) reported ready: one read(2) if it is
/// readable, then a write(2) of what is pending. Returns false when the
/// client is gone, or has shut down its side and has all its echo.
fn serve(c: &mut Client, readable: bool, buf: &mut [u8]) -> bool {
    if readable {
        // One read(2) per turn: a client that sends a lot gets its turn
        // like the others, and its pending output stays bounded.
        match read(&c.fd, buf) {
            Ok(0) => c.eof = true, // it shut down its side; its echo still goes out
            Ok(n) => c.pending.extend_from_slice(&buf[..n]),
            // Readiness can be spurious (select(2), BUGS); a signal may
            // interrupt: either way, next turn.
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                // ECONNRESET: the client reset the connection.
                warn!("read {}: {}", c.peer, reason(&err));
                return false;
            }
        }
    }
    // Either select(2) said there is room, or we just read an echo to
    // send: try at once, and most echoes go out without another turn.
    if !c.pending.is_empty() {
        match write(&c.fd, &c.pending) {
            // Possibly a partial write: the rest waits for room.
            Ok(n) => drop(c.pending.drain(..n)),
            // The send buffer is full: select(2) will say when it is not.
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                // EPIPE or ECONNRESET: the client is gone. Rust ignores
                // SIGPIPE, so write(2) returns EPIPE instead of killing us.
                warn!("write {}: {}", c.peer, reason(&err));
                return false;
            }
        }
        if c.pending.is_empty() {
            // A client that has caught up gives back what its backlog took.
            c.pending.shrink_to(READ_SIZE);
        }
    }
    !(c.eof && c.pending.is_empty())
}

/// Logs the client's departure and closes its socket: close(2) sends our
/// FIN (or a RST if unread data remains).
fn disconnect(c: Client) {
    log!("{} disconnected", c.peer);
    if let Err(err) = close(c.fd) {
        warn!("close {}: {}", c.peer, reason(&err));
    }
}

/// fcntl(2): F_GETFL, then F_SETFL with O_NONBLOCK added.
fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop)
}
