//! Lab 04: the client that polls the keyboard and the socket at once.
//!
//! connect → fcntl(O_NONBLOCK) → loop { poll(stdin, socket) → socket
//! readable: print it → stdin readable: read, queue for the server → socket
//! writable: write what is queued } → at the end of stdin, once all is
//! sent, shutdown(SHUT_WR), and on until the server closes. What the server
//! sends shows up at once, even while the user types nothing: lab 01's
//! client noticed only after the next line.

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{Shutdown, shutdown};
use nix::unistd::{isatty, read, write};
use socket_labs::conn::tcp_connect;
use socket_labs::{Cli, DEFAULT_HOST, DEFAULT_PORT, OrDie, die, warn, writen};

const USAGE: &str = "\
usage: client [HOST] [PORT]

Lab 04: client that waits on stdin and the socket at once with poll(). What
you type goes to the server; what the server sends is printed as it arrives.
At the end of stdin (Ctrl-D) it half-closes the connection, prints what the
server still sends, and exits.

  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)
  PORT    server port (default 4242)
  --help  print this help
";

/// Stdin is read only while less than this waits to go to the server: a
/// server that stops reading cannot make the client's memory grow.
const MAX_QUEUED: usize = 64 * 1024;

fn main() {
    let mut cli = Cli::new(USAGE);
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    // socket(2) and connect(2) to each of the name's addresses in turn, as
    // lab 01's client does (src/conn.rs).
    let (sock, server) = tcp_connect(&host, port);
    // A blocking write(2) of more than the socket buffer holds would wait
    // for the server to read, and meanwhile nobody reads what the server
    // sends: both sides stuck. Non-blocking, write(2) takes what fits and
    // poll(2) says when more will (fcntl(2), O_NONBLOCK).
    let flags = fcntl(&sock, FcntlArg::F_GETFL).or_die("fcntl", server);
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&sock, FcntlArg::F_SETFL(flags)).or_die("fcntl", server);

    if isatty(std::io::stdin()).unwrap_or(false) {
        warn!("connected to {server}; type lines, Ctrl-D to end");
    }
    str_cli(&sock, server);
}

/// The client's loop (UNP's str_cli, here with poll(2)): what stdin brings
/// goes to the server, what the server sends goes to stdout, whichever
/// comes first. Returns when the server has closed after our shutdown(2).
fn str_cli(sock: &OwnedFd, server: SocketAddr) {
    // stdin is read with read(2) on fd 0, never through std's buffered
    // Stdin: bytes hidden in a user-space buffer are invisible to poll(2).
    let stdin = std::io::stdin();
    let mut queued: Vec<u8> = Vec::with_capacity(MAX_QUEUED);
    let mut stdin_open = true;
    let mut shut_down = false;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let (stdin_ready, sock_readable, sock_writable) = {
            // stdin is watched until its end, while there is room to queue
            // what it brings.
            let watch_stdin = stdin_open && queued.len() < MAX_QUEUED;
            let mut sock_events = PollFlags::POLLIN;
            if !queued.is_empty() {
                sock_events |= PollFlags::POLLOUT;
            }
            let mut fds = [
                PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
                PollFd::new(sock.as_fd(), sock_events),
            ];
            // Not watched means left out of the array, not asked for no
            // events: POLLHUP comes whether asked for or not (poll(2)), and
            // a pipe whose writer has gone reports it for ever. Kept in the
            // array, a stdin at its end would make poll(2) return at once,
            // turn after turn, at 100% CPU until the server closes; and a
            // read(2) of 0 bytes into a full queue would return 0, which
            // reads as the end of stdin.
            let first = if watch_stdin { 0 } else { 1 };
            match poll(&mut fds[first..], PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(err) => die("poll", server, &err),
            }
            // POLLHUP and POLLERR come whether asked for or not (poll(2)):
            // the read or write that follows reports what happened.
            let stdin_revents = if watch_stdin {
                fds[0].revents().unwrap_or(PollFlags::empty())
            } else {
                PollFlags::empty()
            };
            let sock_revents = fds[1].revents().unwrap_or(PollFlags::empty());
            let gone = PollFlags::POLLHUP | PollFlags::POLLERR;
            (
                stdin_revents.intersects(PollFlags::POLLIN | gone),
                sock_revents.intersects(PollFlags::POLLIN | gone),
                sock_revents.intersects(PollFlags::POLLOUT | gone),
            )
        };

        if sock_readable {
            match read(sock, &mut buf) {
                Ok(0) if shut_down => return, // the server answered our FIN with its own
                Ok(0) => {
                    warn!("server {server} closed the connection");
                    std::process::exit(1);
                }
                Ok(n) => writen(std::io::stdout(), &buf[..n]).or_die("write", "stdout"),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => die("read", server, &err),
            }
        }

        if stdin_ready {
            let room = (MAX_QUEUED - queued.len()).min(buf.len());
            match read(&stdin, &mut buf[..room]) {
                Ok(0) => stdin_open = false,
                Ok(n) => queued.extend_from_slice(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(err) => die("read", "stdin", &err),
            }
        }

        if sock_writable && !queued.is_empty() {
            match write(sock, &queued) {
                Ok(n) => {
                    queued.drain(..n);
                }
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(err) => die("write", server, &err),
            }
        }

        // End of stdin and everything sent: shutdown(2) tells the server
        // "no more" but keeps reading what it still sends.
        if !stdin_open && queued.is_empty() && !shut_down {
            shutdown(sock.as_raw_fd(), Shutdown::Write).or_die("shutdown", server);
            shut_down = true;
        }
    }
}
