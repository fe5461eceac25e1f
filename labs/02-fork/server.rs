//! Lab 02: the echo server that forks one process per client.
//!
//! socket → setsockopt(SO_REUSEADDR) → bind → listen → loop { accept → fork:
//! the child closes the listening socket, serves its client and exits; the
//! parent closes the connected socket and accepts again }. Children that
//! exit are reaped with waitpid(2) when SIGCHLD interrupts accept(2).

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
    let listener = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
    // Children may still hold connections on this port when we restart (socket(7)).
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
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
        let fd = match accept(listener.as_raw_fd()) {
            Ok(fd) => fd,
            // EINTR: a signal (SIGCHLD, SIGTERM) interrupted the wait: go
            // round the loop to handle it. ECONNABORTED: the client gave up
            // while it waited in the backlog (accept(2)).
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(err) => socket_labs::die("accept", local, &err),
        };
        // SAFETY: accept(2) just returned this descriptor and nothing else
        // owns it; owning it at once means neither process can leak it.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        let peer: SockaddrStorage = match getpeername(conn.as_raw_fd()) {
            Ok(peer) => peer,
            Err(err) => {
                warn!("getpeername {local}: {}", reason(&err));
                continue;
            }
        };
        log!("connection from {peer}");

        // SAFETY: fork(2) is safe to call here because this process has a
        // single thread: the child starts with consistent memory and may run
        // any code, not only async-signal-safe calls.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                // The child only serves `conn`. If it kept the listening
                // socket, the port would stay open as long as any child lives.
                if let Err(err) = close(listener) {
                    warn!("close {local}: {}", reason(&err));
                }
                child_signals();
                serve(conn, &peer);
                std::process::exit(0);
            }
            Ok(ForkResult::Parent { .. }) => {
                children += 1;
                // The child has its own copy of the descriptor. Without this
                // close(2), the connection would never end: the client's
                // FIN would leave a socket that we, the parent, still hold.
                if let Err(err) = close(conn) {
                    warn!("close {peer}: {}", reason(&err));
                }
            }
            Err(err) => {
                // EAGAIN or ENOMEM: too many processes. Drop this client
                // (dropping `conn` closes it) and keep serving the others.
                warn!("fork {peer}: {}", reason(&err));
            }
        }
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
    let mut reaped = 0;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) => {
                log!("child {pid} exited (status {status})");
                reaped += 1;
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                log!(
                    "child {pid} killed by signal {} ({})",
                    signal as i32,
                    signal_text(signal)
                );
                reaped += 1;
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return reaped,
            Ok(_) => {} // stopped or continued: still a child of ours
            Err(Errno::EINTR) => {}
            Err(err) => {
                warn!("waitpid: {}", reason(&err));
                return reaped;
            }
        }
    }
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
