//! Lab 01: the iterative TCP echo server.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { accept →
//! read/write until EOF → close }. One client at a time: while it is served,
//! the next client's connection waits in the listen backlog.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept, bind, getpeername,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use nix::unistd::{close, read};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, log, reason, warn, writen_before};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--write-timeout SECS]

Lab 01: iterative TCP echo server. Serves one client at a time; the others
wait in the listen backlog until it leaves.

  PORT                  port to listen on (default 4242; 0 = any free port)
  --bind ADDR           address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --write-timeout SECS  drop a client that has not read its echo within SECS
                        (default 10, from 1 to 86400)
  --help                print this help
";

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let write_timeout: u32 = cli.value("--write-timeout", "SECS").unwrap_or(10);
    // An SO_SNDTIMEO of 0 means "no timeout" (socket(7)): a client that
    // never reads would hold the server for ever. 0 is refused; a day is
    // the most, as lab 07's --ping-timeout.
    if !(1..=86_400).contains(&write_timeout) {
        cli.usage_error(format_args!(
            "invalid SECS '{write_timeout}': from 1 to 86400 seconds"
        ));
    }
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();
    let addr = SocketAddr::new(ip, port);

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let listener = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
    // Without SO_REUSEADDR, bind(2) fails with EADDRINUSE for a minute after a
    // restart, while the last run's connections sit in TIME_WAIT (socket(7)).
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    // The backlog holds connections the kernel has completed but we have not
    // accepted yet: that is where the second client waits (listen(2)).
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    // With port 0 the kernel chose the port: getsockname(2) tells which.
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    log!("listening on {local}");

    let mut buf = [0u8; 16 * 1024];
    loop {
        let fd = match accept(listener.as_raw_fd()) {
            Ok(fd) => fd,
            // The client gave up while it waited in the backlog, or a signal
            // interrupted us: neither is a reason to stop serving (accept(2)).
            Err(Errno::ECONNABORTED | Errno::EINTR) => continue,
            Err(err) => socket_labs::die("accept", local, &err),
        };
        // SAFETY: accept(2) just returned this descriptor and nothing else
        // owns it. nix 0.31's accept returns a bare RawFd: owning it at once
        // means no path can forget to close it (peers left in CLOSE_WAIT).
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        let peer: SockaddrStorage = match getpeername(conn.as_raw_fd()) {
            Ok(peer) => peer,
            Err(err) => {
                // ENOTCONN: the client reset before we looked.
                warn!("getpeername {local}: {}", reason(&err));
                continue;
            }
        };
        log!("connection from {peer}");

        // A client that sends but never reads fills both socket buffers, and
        // then write(2) blocks for ever: everyone else waits. SO_SNDTIMEO
        // makes such a write return, with EAGAIN or a short count (socket(7)).
        // It bounds one call, not the echo: writen_before keeps the
        // deadline across the calls of one echo.
        let timeout = TimeVal::seconds(write_timeout.into());
        setsockopt(&conn, sockopt::SendTimeout, &timeout).or_die("setsockopt", peer);

        loop {
            let n = match read(&conn, &mut buf) {
                Ok(0) => break, // EOF: the client closed (or shut down) its side
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    // ECONNRESET: the client reset the connection.
                    warn!("read {peer}: {}", reason(&err));
                    break;
                }
            };
            // The client has write_timeout seconds to read this echo, from
            // now: however many write(2) calls it takes (src/io.rs says why).
            let deadline = Instant::now() + Duration::from_secs(write_timeout.into());
            match writen_before(&conn, &buf[..n], deadline) {
                Ok(()) => {}
                Err(Errno::EAGAIN) => {
                    warn!(
                        "write {peer}: client did not read its echo within {write_timeout} s, dropping it"
                    );
                    break;
                }
                Err(err) => {
                    // EPIPE or ECONNRESET: the client is gone. Rust ignores
                    // SIGPIPE, so write(2) returns EPIPE instead of killing us.
                    warn!("write {peer}: {}", reason(&err));
                    break;
                }
            }
        }
        log!("{peer} disconnected");
        // close(2) sends our FIN (or a RST if unread data remains).
        if let Err(err) = close(conn) {
            warn!("close {peer}: {}", reason(&err));
        }
    }
}
