//! Connections: the one a server has just accepted, and the one a client
//! makes.
//!
//! C programs take the client's address from accept(2) itself
//! (`accept(listenfd, (struct sockaddr *)&cliaddr, &clilen)`); nix 0.31's
//! `accept` and `accept4` return the bare descriptor alone, so the Rust
//! servers ask getpeername(2) right after ([`take_connection`]). Both learn
//! the same address (tools/trace.awk compares accept without it).
//!
//! A client connects to a name as UNP's `tcp_connect` does, trying each
//! address the name has ([`tcp_connect`]); lab 01's client writes the loop
//! out, as its lesson.

use std::fmt::Display;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, getpeername, socket,
};

use crate::fail::{OrDie, die, reason};

/// Takes ownership of `fd`, which accept(2) or accept4(2) on the listener
/// bound to `local` has just returned, and asks its client's address.
/// Owned, the descriptor is closed when dropped, on every path: no path can
/// forget it. None, said on stderr (`getpeername LOCAL: reason`), when the
/// client has reset already (ENOTCONN); the connection is then closed.
pub fn take_connection(fd: RawFd, local: impl Display) -> Option<(OwnedFd, SockaddrStorage)> {
    // SAFETY: accept(2) just returned this descriptor and nothing else owns it.
    let conn = unsafe { OwnedFd::from_raw_fd(fd) };
    match getpeername(fd) {
        Ok(peer) => Some((conn, peer)),
        Err(err) => {
            crate::warn!("getpeername {local}: {}", reason(&err));
            None
        }
    }
}

/// The IP address and port of a socket address, if it is one.
pub fn inet_address(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}

/// Connects to `host` (a name such as localhost, or an address) on `port`
/// and returns the socket and the server's address, as UNP's tcp_connect
/// does: the name's addresses come from getaddrinfo(3) (std's resolver:
/// nix has none), and each is tried in turn with socket(2) and connect(2),
/// since localhost may be ::1 and 127.0.0.1 and only one may be listened
/// on. If the name does not resolve, says `getaddrinfo HOST: reason`; if
/// no address accepts, `connect ADDR: reason` for the last one tried; and
/// exits 1.
pub fn tcp_connect(host: &str, port: u16) -> (OwnedFd, SocketAddr) {
    let addrs = (host, port).to_socket_addrs().or_die("getaddrinfo", host);
    let mut last_error = Errno::EADDRNOTAVAIL;
    let mut last_addr = SocketAddr::from(([127, 0, 0, 1], port));
    for addr in addrs {
        let domain = match addr {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let sock = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
        match connect(sock.as_raw_fd(), &SockaddrStorage::from(addr)) {
            Ok(()) => return (sock, addr),
            Err(err) => (last_error, last_addr) = (err, addr), // dropping sock closes it
        }
    }
    die("connect", last_addr, &last_error)
}
