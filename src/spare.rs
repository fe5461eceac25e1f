//! The spare descriptor: how a multiplexing server survives EMFILE.
//!
//! When a server has as many descriptors open as its limit (RLIMIT_NOFILE),
//! accept(2) fails with EMFILE and the connection stays in the backlog. The
//! listener is then still readable, poll(2) or epoll_wait(2) report it again
//! at once, accept fails again: the server spins at 100% CPU and serves
//! nobody new. The way out is a descriptor held in reserve, open on
//! /dev/null: on EMFILE, close it, accept the waiting connection, close that
//! one at once (the client sees its connection closed instead of hanging),
//! and open the spare again.
//!
//! The trick only works if the spare can be opened, and a server is only
//! useful if one more descriptor is left for a client: [`SpareDescriptor::reserve`]
//! checks both at start-up, so that a limit too low to serve anyone is said
//! at once (and the program exits 1) instead of spinning later.

use std::fmt::Display;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::socket::{SockFlag, accept4};
use nix::sys::stat::Mode;
use nix::unistd::dup;

use crate::fail::die;

/// What a server says, once, when accept(2) fails with EMFILE or ENFILE:
/// `accept ADDR: Too many open files; closing new connections until one frees`.
pub const REFUSING: &str = "closing new connections until one frees";

/// A descriptor kept open on /dev/null, to be given up when accept(2) fails
/// with EMFILE (see the module's documentation).
#[derive(Debug)]
pub struct SpareDescriptor {
    /// None only inside [`refuse_one`](Self::refuse_one).
    fd: Option<OwnedFd>,
}

impl SpareDescriptor {
    /// Opens the spare, and checks that one more descriptor is left for a
    /// client. If not, prints why (`limit` is the descriptor limit in force,
    /// for the message) and exits 1: a server that could accept nobody would
    /// close every connection for ever.
    pub fn reserve(limit: u64) -> SpareDescriptor {
        let no_room = || -> ! {
            crate::warn!("descriptor limit {limit} (RLIMIT_NOFILE) leaves no room for a client");
            std::process::exit(1)
        };
        let spare = match open_dev_null() {
            Ok(fd) => fd,
            Err(Errno::EMFILE) => no_room(),
            Err(err) => die("open", "/dev/null", &err),
        };
        // dup(2) takes the lowest free descriptor, as accept(2) will: if it
        // fails, no client could ever be accepted.
        match dup(&spare) {
            Ok(probe) => drop(probe),
            Err(Errno::EMFILE) => no_room(),
            Err(err) => die("dup", "/dev/null", &err),
        }
        SpareDescriptor { fd: Some(spare) }
    }

    /// After accept(2) on `listener` (which must be non-blocking) failed
    /// with EMFILE or ENFILE: closes the spare, accepts the first waiting
    /// connection and closes it at once, then opens the spare again. Returns
    /// whether a connection was refused; false means nobody was waiting
    /// (EMFILE comes even with an empty backlog): stop accepting until the
    /// listener is readable again.
    ///
    /// If even with the spare closed nothing can be opened, the whole
    /// system is out of files (ENFILE): the program says so (`call local:
    /// reason`) and exits 1 rather than spin on a listener it cannot empty.
    pub fn refuse_one(&mut self, listener: RawFd, local: impl Display) -> bool {
        drop(self.fd.take()); // close(2): one descriptor free for accept
        let refused = match accept4(listener, SockFlag::empty()) {
            Ok(fd) => {
                // SAFETY: accept4(2) just returned this descriptor and
                // nothing else owns it: dropping the OwnedFd closes it.
                drop(unsafe { OwnedFd::from_raw_fd(fd) });
                true
            }
            Err(Errno::EAGAIN) => false,
            // The client gave up first, or a signal came: look again.
            Err(Errno::ECONNABORTED | Errno::EINTR) => true,
            Err(err) => die("accept", local, &err),
        };
        match open_dev_null() {
            Ok(fd) => self.fd = Some(fd),
            Err(err) => die("open", "/dev/null", &err),
        }
        refused
    }
}

fn open_dev_null() -> nix::Result<OwnedFd> {
    open("/dev/null", OFlag::O_RDONLY, Mode::empty())
}
