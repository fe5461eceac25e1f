//! Lab 01: the echo client.
//!
//! connect → loop { read a line from stdin → write it → read its echo →
//! print it } → at the end of stdin, shutdown(SHUT_WR) and read what is left.

use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Shutdown, SockFlag, SockType, SockaddrStorage, connect, shutdown, socket,
};
use nix::unistd::{isatty, read};
use socket_labs::{Cli, DEFAULT_HOST, DEFAULT_PORT, LineReader, OrDie, die, warn, writen};

const USAGE: &str = "\
usage: client [HOST] [PORT]

Lab 01: echo client. Sends each line of stdin to the server and prints the
echo; at the end of stdin (Ctrl-D) it half-closes the connection and exits.

  HOST    server name or address (default 127.0.0.1; localhost and IPv6 such as ::1 work)
  PORT    server port (default 4242)
  --help  print this help
";

/// Longer lines are sent in pieces of this size: memory stays bounded
/// whatever stdin holds.
const MAX_LINE: usize = 64 * 1024;

fn main() {
    let mut cli = Cli::new(USAGE);
    let host: String = cli
        .positional("HOST")
        .unwrap_or_else(|| DEFAULT_HOST.to_string());
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();

    // nix has no getaddrinfo(3): std's resolver turns the name into
    // addresses; every socket call after it is nix.
    let addrs: Vec<SocketAddr> = (host.as_str(), port)
        .to_socket_addrs()
        .or_die("getaddrinfo", &host)
        .collect();

    // A name may have several addresses (localhost: ::1 and 127.0.0.1):
    // try each in turn, as getaddrinfo(3)'s example does.
    let mut connected: Option<(OwnedFd, SocketAddr)> = None;
    let mut last_error = Errno::EADDRNOTAVAIL;
    let mut last_addr = SocketAddr::from(([127, 0, 0, 1], port));
    for addr in addrs {
        let domain = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let sock = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
        match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) => {
                connected = Some((sock, addr));
                break;
            }
            Err(err) => (last_error, last_addr) = (err, addr), // dropping sock closes it
        }
    }
    let Some((sock, server)) = connected else {
        die("connect", last_addr, &last_error)
    };

    let stdin = std::io::stdin();
    if isatty(&stdin).unwrap_or(false) {
        warn!("connected to {server}; type lines, Ctrl-D to end");
    }

    let mut lines = LineReader::new(MAX_LINE);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match read(&stdin, lines.space()) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(err) => die("read", "stdin", &err),
        };
        if n == 0 {
            // End of stdin; a last line without newline still goes.
            if let Some(line) = lines.rest() {
                send_line(&sock, server, line.bytes(), &mut buf);
            }
            break;
        }
        lines.filled(n);
        while let Some(line) = lines.next_line() {
            send_line(&sock, server, line.bytes(), &mut buf);
        }
    }

    // End of stdin: shutdown(2) sends our FIN ("no more lines") but keeps
    // the socket open for reading, so nothing the server still sends is lost.
    shutdown(sock.as_raw_fd(), Shutdown::Write).or_die("shutdown", server);
    loop {
        match read(&sock, &mut buf) {
            Ok(0) => break,
            Ok(got) => writen(std::io::stdout(), &buf[..got]).or_die("write", "stdout"),
            Err(Errno::EINTR) => continue,
            Err(err) => die("read", server, &err),
        }
    }
}

/// Writes one line to the server and copies its echo to stdout. The echo may
/// come back in several pieces: read until as many bytes came back as went.
fn send_line(sock: &OwnedFd, server: SocketAddr, line: &[u8], buf: &mut [u8]) {
    writen(sock, line).or_die("write", server);
    let mut missing = line.len();
    while missing > 0 {
        let want = missing.min(buf.len());
        let got = match read(sock, &mut buf[..want]) {
            Ok(0) => {
                warn!("server {server} closed the connection");
                std::process::exit(1);
            }
            Ok(got) => got,
            Err(Errno::EINTR) => continue,
            Err(err) => die("read", server, &err),
        };
        writen(std::io::stdout(), &buf[..got]).or_die("write", "stdout");
        missing -= got;
    }
}
