//! A connection just accepted: owned at once, and with its client's address.
//!
//! C programs take the client's address from accept(2) itself
//! (`accept(listenfd, (struct sockaddr *)&cliaddr, &clilen)`); nix 0.31's
//! `accept` and `accept4` return the bare descriptor alone, so the Rust
//! servers ask getpeername(2) right after. Both learn the same address
//! (tools/trace.awk compares accept without it).

use std::fmt::Display;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{SockaddrStorage, getpeername};

use crate::fail::reason;

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
