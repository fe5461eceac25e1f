//! Lab 01: the iterative TCP echo server.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { accept →
//! read/write until EOF → close }. One client at a time: while it is served,
//! the next client's connection waits in the listen backlog.
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=01-echo`. The answer is the lab's server.rs.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(
    unused,
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::never_loop
)]

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
    // TODO socket(2), setsockopt(2) SO_REUSEADDR, bind(2), listen(2), getsockname(2)
    let local: SockaddrStorage = socket_labs::todo("socket(2), bind(2), listen(2)");
    log!("listening on {local}");

    let mut buf = [0u8; 16 * 1024];
    loop {
        // TODO accept(2) the next client (own its descriptor at once), getpeername(2)
        let (conn, peer): (OwnedFd, SockaddrStorage) = socket_labs::todo("accept(2)");
        log!("connection from {peer}");

        // A client that sends but never reads fills both socket buffers, and
        // then write(2) blocks for ever: everyone else waits. SO_SNDTIMEO
        // makes such a write return, with EAGAIN or a short count (socket(7)).
        // It bounds one call, not the echo: writen_before keeps the
        // deadline across the calls of one echo.
        let timeout = TimeVal::seconds(write_timeout.into());
        setsockopt(&conn, sockopt::SendTimeout, &timeout).or_die("setsockopt", peer);

        // TODO read(2) until 0, each piece echoed by writen_before (drop on error)
        socket_labs::todo("read(2) and the echo");
        log!("{peer} disconnected");
        // close(2) sends our FIN (or a RST if unread data remains).
        // TODO close(2) the connection: the client waits for its FIN
        socket_labs::todo("close(2)");
    }
}
