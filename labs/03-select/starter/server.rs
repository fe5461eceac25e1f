//! Lab 03: one process serves every client, with select(2).
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → fcntl(O_NONBLOCK) →
//! loop { build the read and write sets → select → accept until EAGAIN →
//! read from the readable clients → write their echo → close those gone }.
//! Every socket is non-blocking: the one process must never wait for one
//! client while others are ready.
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=03-select`. The answer is the lab's server.rs.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(
    unused,
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::never_loop
)]

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
    // TODO socket(2), SO_REUSEADDR, bind(2), listen(2), fcntl(2) O_NONBLOCK
    let (listener, local): (OwnedFd, SockaddrStorage) =
        socket_labs::todo("socket(2), bind(2), listen(2), O_NONBLOCK");
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
            // TODO per client: readfds unless eof or over HIGH_WATER; writefds if pending
            let nfds: std::os::raw::c_int = socket_labs::todo("the fd_sets and nfds");
            // Paused, wake up after ACCEPT_PAUSE anyway to try accept(2) again.
            let mut timeout = pause.timeout();
            // TODO select(2) with nfds, both sets and timeout (EINTR: ask again)
            socket_labs::todo("select(2)");
            let answer = |fd| (readfds.contains(fd), writefds.contains(fd));
            ready.clear();
            ready.extend(clients.iter().map(|c| answer(c.fd.as_fd())));
            readfds.contains(listener.as_fd())
        };

        // Accept every connection waiting in the backlog, not just one: with
        // one accept per turn a burst of clients waits turn after turn.
        if listener_ready {
            loop {
                // TODO accept(2); EAGAIN: pause.backlog_empty(), break; ECONNABORTED, EINTR: next;
                // EMFILE, ENFILE, ENOBUFS, ENOMEM: pause.start(local, err), break (lab 03's sheet)
                let fd: RawFd = socket_labs::todo("accept(2)");
                let Some((conn, peer)) = take_connection(fd, local) else {
                    continue;
                };
                // TODO fd >= FD_SETSIZE: log "refusing", drop it; fcntl(2) O_NONBLOCK
                socket_labs::todo("FD_SETSIZE, O_NONBLOCK");
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
    // TODO read(2) once if readable (0: eof); write(2) what is pending (EAGAIN: later)
    socket_labs::todo("read(2) once, write(2) the pending echo");
    !(c.eof && c.pending.is_empty())
}

/// Logs the client's departure and closes its socket: close(2) sends our
/// FIN (or a RST if unread data remains).
fn disconnect(c: Client) {
    log!("{} disconnected", c.peer);
    // TODO close(2) the client's socket (a failure is warned, not fatal)
    socket_labs::todo("close(2)");
}

/// fcntl(2): F_GETFL, then F_SETFL with O_NONBLOCK added.
fn set_nonblocking(fd: &OwnedFd) -> nix::Result<()> {
    let flags = fcntl(fd, FcntlArg::F_GETFL)?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map(drop)
}
