//! Lab 04: one process serving thousands of clients with poll().
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { poll(listener
//! and every client) → accept the new ones → read from the readable →
//! write to the writable }. Unlike select(), poll() takes an array of any
//! length: no FD_SETSIZE.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, getsockname,
    listen, setsockopt, socket, sockopt,
};
use nix::unistd::{close, read, write};
use socket_labs::conn::take_connection;
use socket_labs::limits::raise_descriptor_limit;
use socket_labs::spare::{REFUSING, SpareDescriptor};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, warn};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR]

Lab 04: echo server, one process, poll(). Serves thousands of clients at
once: it raises its descriptor limit (RLIMIT_NOFILE) to the hard limit.

  PORT         port to listen on (default 4242; 0 = any free port)
  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --help       print this help
";

/// While more than this waits to be sent to a client, the server stops
/// reading from it: a client that sends without reading cannot make the
/// server's memory grow, and it delays nobody else.
const MAX_PENDING: usize = 64 * 1024;
/// At most this much is read from a client per turn.
const READ_SIZE: usize = 16 * 1024;

/// One connected client (in the C twin, an entry of client[] and of
/// pending[]).
struct Client {
    fd: OwnedFd,
    peer: SockaddrStorage,
    /// Echo not yet accepted by write(2): at most MAX_PENDING + one read.
    pending: Vec<u8>,
    /// The client has shut down its side: send what is pending, then close.
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

    // Every client costs a descriptor: the soft limit (often 1024) goes up
    // to the hard one (src/limits.rs).
    let limit = raise_descriptor_limit();

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // Non-blocking: we accept until EAGAIN, never waiting in accept(2).
    let listener =
        socket(domain, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).or_die("socket", addr);
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    // A burst of thousands of connects overflows a small backlog (listen(2)).
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    // A descriptor in reserve for when accept(2) fails with EMFILE: without
    // it the connection stays in the backlog, poll(2) reports the listener
    // readable again at once, and we spin at 100% CPU (src/spare.rs). If the
    // limit leaves no room for it and one client, we say so and exit.
    let mut spare = SpareDescriptor::reserve(limit);
    log!("listening on {local}");
    log!("descriptor limit {limit} (RLIMIT_NOFILE)");
    let mut out_of_descriptors = false;

    let mut clients: Vec<Client> = Vec::new();
    // revents[i] is what poll(2) said of fds[i]; kept between turns, so
    // that a turn allocates only the array.
    let mut revents: Vec<PollFlags> = Vec::new();
    let mut buf = [0u8; READ_SIZE];
    loop {
        // poll(2) reads one pollfd per descriptor: [0] is the listener,
        // [i + 1] is clients[i]. nix's PollFd borrows the descriptor, so the
        // array is built afresh each turn, and only the results (revents)
        // are kept once it is gone: then the client list may change.
        {
            let mut fds = Vec::with_capacity(clients.len() + 1);
            fds.push(PollFd::new(listener.as_fd(), PollFlags::POLLIN));
            for client in &clients {
                // Backpressure: while MAX_PENDING waits to be sent to a
                // client, nothing more is read from it.
                let mut events = PollFlags::empty();
                if !client.eof && client.pending.len() < MAX_PENDING {
                    events |= PollFlags::POLLIN;
                }
                if !client.pending.is_empty() {
                    events |= PollFlags::POLLOUT;
                }
                fds.push(PollFd::new(client.fd.as_fd(), events));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => die("poll", local, &err),
            }
            revents.clear();
            revents.extend(
                fds.iter()
                    .map(|fd| fd.revents().unwrap_or(PollFlags::empty())),
            );
        }

        if revents[0].contains(PollFlags::POLLIN) {
            // Take every connection waiting in the backlog, not only one:
            // at thousands of clients, one accept per turn falls behind.
            loop {
                let accepted = match accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
                    Err(Errno::EAGAIN) => break,
                    Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                    accepted => accepted,
                };
                let fd = match accepted {
                    Ok(fd) => fd,
                    Err(err @ (Errno::EMFILE | Errno::ENFILE)) => {
                        if !out_of_descriptors {
                            warn!("accept {local}: {}; {REFUSING}", reason(&err));
                            out_of_descriptors = true;
                        }
                        // Close the spare, accept and close the waiting
                        // connection, take the spare back: until nobody waits.
                        if !spare.refuse_one(listener.as_raw_fd(), local) {
                            break;
                        }
                        continue;
                    }
                    Err(err) => die("accept", local, &err),
                };
                out_of_descriptors = false;
                let Some((fd, peer)) = take_connection(fd, local) else {
                    continue;
                };
                log!("connection from {peer}");
                clients.push(Client::new(fd, peer));
            }
        }

        // From the last client to the first: swap_remove(i) moves the last
        // client into slot i, and that one has been served already, or has
        // just been accepted (no revents yet).
        for i in (0..revents.len() - 1).rev() {
            if !revents[i + 1].is_empty() && !serve(&mut clients[i], revents[i + 1], &mut buf) {
                let client = clients.swap_remove(i);
                log!("{} disconnected", client.peer);
                if let Err(err) = close(client.fd) {
                    warn!("close {}: {}", client.peer, reason(&err));
                }
            }
        }
    }
}

/// Handles what poll(2) reported for one client. Returns false when the
/// client is gone and must be removed.
fn serve(client: &mut Client, revents: PollFlags, buf: &mut [u8]) -> bool {
    // POLLHUP and POLLERR are reported even when not asked for: the read or
    // write below then fails and says why.
    let trouble = PollFlags::POLLHUP | PollFlags::POLLERR;
    if revents.intersects(PollFlags::POLLIN | trouble)
        && !client.eof
        && client.pending.len() < MAX_PENDING
    {
        match read(&client.fd, buf) {
            // The client shut down its side; it may still read its echo.
            Ok(0) => client.eof = true,
            Ok(n) => client.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                warn!("read {}: {}", client.peer, reason(&err));
                return false;
            }
        }
    }
    // Write at once, without waiting for POLLOUT: the socket buffer almost
    // always has room, and poll(2) reports POLLOUT next turn if it had not.
    if !client.pending.is_empty() {
        match write(&client.fd, &client.pending) {
            Ok(n) => {
                client.pending.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                // EPIPE or ECONNRESET: the client left without its echo.
                warn!("write {}: {}", client.peer, reason(&err));
                return false;
            }
        }
    }
    !(client.eof && client.pending.is_empty())
}
