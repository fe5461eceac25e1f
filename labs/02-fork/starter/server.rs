//! Lab 02: the echo server that forks one process per client.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { accept → fork:
//! the child closes the listening socket, serves its client and exits; the
//! parent closes the connected socket and accepts again }. Children that
//! exit are reaped with waitpid(2) when SIGCHLD interrupts accept(2).
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=02-fork`. The answer is the lab's server.rs.
// While gaps remain, their placeholders make code unused or unreachable.
#![allow(
    unused,
    unreachable_code,
    clippy::diverging_sub_expression,
    clippy::never_loop
)]

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept, bind, getpeername,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, close, fork, getpid, read};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, log, reason, signal_text, warn, writen};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--no-reap]

Lab 02: echo server with one process per client (fork). Every client is
served by a child process of its own, so clients no longer wait for each other.

  PORT         port to listen on (default 4242; 0 = any free port)
  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --no-reap    no waitpid(2) while serving: children that exit stay zombies
               (Z in ps) until the server stops
  --help       print this help
";

/// Set by the SIGCHLD handler: some child has exited and waits to be reaped.
static CHILD_EXITED: AtomicBool = AtomicBool::new(false);
/// Set by the SIGINT/SIGTERM handler: stop accepting and exit.
static STOP: AtomicBool = AtomicBool::new(false);

// A handler may only do async-signal-safe work (signal-safety(7)): storing
// to an atomic is; printing or waitpid bookkeeping happens in the main loop.
extern "C" fn on_sigchld(_: libc::c_int) {
    CHILD_EXITED.store(true, Ordering::SeqCst);
}

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let no_reap = cli.flag("--no-reap");
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    cli.finish();
    let addr = SocketAddr::new(ip, port);

    // No SA_RESTART: we want accept(2) to fail with EINTR when a child
    // exits or we are asked to stop, so the loop below can react at once.
    handle(Signal::SIGCHLD, SigHandler::Handler(on_sigchld));
    handle(Signal::SIGINT, SigHandler::Handler(on_stop));
    handle(Signal::SIGTERM, SigHandler::Handler(on_stop));

    let domain = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    // TODO socket(2), setsockopt(2) SO_REUSEADDR, bind(2), listen(2), getsockname(2)
    let local: SockaddrStorage = socket_labs::todo("socket(2), bind(2), listen(2)");
    log!("listening on {local}");

    let mut children = 0usize;
    loop {
        // Check again after reaping: a child may exit while we reap others.
        while !no_reap && CHILD_EXITED.swap(false, Ordering::SeqCst) {
            children = children.saturating_sub(reap_children());
        }
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        // TODO accept(2) (EINTR: go round to reap or stop), own the fd, getpeername(2)
        let (conn, peer): (OwnedFd, SockaddrStorage) = socket_labs::todo("accept(2)");
        log!("connection from {peer}");

        // SAFETY: fork(2) is safe to call here because this process has a
        // single thread: the child starts with consistent memory and may run
        // any code, not only async-signal-safe calls.
        // TODO fork(2); child: close(2) listener, serve, exit; parent: close(2) conn
        socket_labs::todo("fork(2)");
    }
    // Count what is true: a child that has exited is not serving, even if
    // nobody reaped it yet (--no-reap, or one that exited as we stopped).
    // The flag says some did: reap them now, then count.
    if CHILD_EXITED.swap(false, Ordering::SeqCst) {
        children = children.saturating_sub(reap_children());
    }
    // Children still serving are not killed: they finish with their
    // client; once we exit, init(1) becomes their parent and reaps them.
    log!("shutting down; {children} children still serving");
}

/// The child's whole life: echo until the client closes, as in lab 01.
fn serve(conn: OwnedFd, peer: &SockaddrStorage) {
    let pid = getpid();
    // comm is what ps and htop (F2 → "Show custom thread names") display;
    // at most 15 bytes (prctl(2), PR_SET_NAME).
    let port = match (peer.as_sockaddr_in(), peer.as_sockaddr_in6()) {
        (Some(v4), _) => v4.port(),
        (_, Some(v6)) => v6.port(),
        _ => 0,
    };
    if let Ok(name) = CString::new(format!("server:{port}")) {
        let _ = prctl::set_name(&name); // only cosmetic: serving goes on
    }
    log!("[pid {pid}] serving {peer}");

    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match read(&conn, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(err) => {
                warn!("[pid {pid}] read {peer}: {}", reason(&err));
                break;
            }
        };
        // A client that never reads blocks only this child's write(2):
        // every other client has its own process.
        if let Err(err) = writen(&conn, &buf[..n]) {
            warn!("[pid {pid}] write {peer}: {}", reason(&err));
            break;
        }
    }
    log!("[pid {pid}] {peer} disconnected");
}

/// Collects every child that has exited; returns how many.
fn reap_children() -> usize {
    // Signals do not queue: one SIGCHLD may stand for several exited
    // children, so call waitpid(2) until none is left (WNOHANG: never block).
    // TODO waitpid(2) WNOHANG until no exited child is left: log each, count them
    socket_labs::todo("waitpid(2)")
}

/// The child serves its client to the end: Ctrl-C in the terminal (SIGINT to
/// the whole process group) is meant for the parent; `kill PID` (SIGTERM)
/// still ends one child.
fn child_signals() {
    handle(Signal::SIGINT, SigHandler::SigIgn);
    handle(Signal::SIGTERM, SigHandler::SigDfl);
    handle(Signal::SIGCHLD, SigHandler::SigDfl);
}

fn handle(signal: Signal, handler: SigHandler) {
    let action = SigAction::new(handler, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handlers above only store to atomics, which is
    // async-signal-safe; SIG_IGN and SIG_DFL run no code of ours.
    if let Err(err) = unsafe { sigaction(signal, &action) } {
        socket_labs::die("sigaction", signal, &err);
    }
}
