//! Lab 05: the echo server on epoll, optionally in several worker processes.
//!
//! socket → setsockopt(SO_REUSEADDR [, SO_REUSEPORT]) → bind → listen →
//! epoll_create1 → epoll_ctl(ADD listener) → loop { epoll_wait → accept the
//! new clients and add them → read/write the ready ones, switching each
//! one's interest between readable and writable }. The kernel keeps the
//! list of descriptors we watch; each wait returns only the ready ones.
//! With workers, worker 0 (the parent) also watches a signalfd for SIGCHLD,
//! and reaps and names a worker that dies.

use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, accept4, bind, getpeername,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{
    ForkResult, Pid, SysconfVar, close, fork, getpid, getppid, read, sysconf, write,
};
use socket_labs::limits::raise_descriptor_limit;
use socket_labs::spare::SpareDescriptor;
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, warn};

const USAGE: &str = "\
usage: server [PORT] [--bind ADDR] [--workers N]

Lab 05: echo server on epoll. One process serves tens of thousands of
clients; with --workers, N processes share the port (SO_REUSEPORT).

  PORT         port to listen on (default 4242; 0 = any free port)
  --bind ADDR  address to listen on (default 0.0.0.0; IPv6 such as :: or ::1 works)
  --workers N  worker processes, each with its own listening socket and epoll
               (default 1, at most 4 per CPU)
  --help       print this help
";

/// The most workers per CPU online: one busy worker can keep a CPU busy on
/// its own, so more only take turns; a few per CPU still let a one-CPU
/// machine show the kernel spreading connections over several.
const WORKERS_PER_CPU: u32 = 4;
/// While more than this waits to be sent to a client, the server stops
/// reading from it (backpressure, as in labs 03 and 04).
const MAX_PENDING: usize = 64 * 1024;
/// The token of the listening socket; a client's token is its descriptor.
const LISTENER: u64 = u64::MAX;
/// The token of worker 0's signalfd, readable when a worker has died.
const WORKER_DIED: u64 = u64::MAX - 1;

struct Client {
    fd: OwnedFd,
    peer: SockaddrStorage,
    pending: Vec<u8>,
    eof: bool,
    /// What epoll watches for this client now: changed only when needed,
    /// each change being one epoll_ctl(2) call.
    interest: EpollFlags,
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let workers: u32 = cli.value("--workers", "N").unwrap_or(1);
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    // Each worker is a process: unbounded, a typo (--workers 100000) would
    // fork until fork(2) fails or the process table is full.
    let max_workers = WORKERS_PER_CPU * cpus_online();
    if !(1..=max_workers).contains(&workers) {
        cli.usage_error(format_args!(
            "invalid N '{workers}': from 1 to {max_workers} workers ({WORKERS_PER_CPU} per CPU)"
        ));
    }
    cli.finish();

    // Every client costs a descriptor: the soft limit (often 1024) goes up
    // to the hard one (src/limits.rs).
    let limit = raise_descriptor_limit();

    let mut addr = SocketAddr::new(ip, port);
    if workers > 1 {
        addr.set_port(free_port(addr));
    }
    let (mut listener, local) = open_listener(addr, workers > 1);
    log!("listening on {local}");
    log!("descriptor limit {limit} (RLIMIT_NOFILE)");

    // Workers 1..N are children; the parent is worker 0. Each child opens a
    // listening socket of its own on the same port: with SO_REUSEPORT the
    // kernel hashes each new connection to one of them (socket(7)).
    let mut worker = 0;
    let parent = getpid();
    // The workers' pids, worker n at n - 1: to say which one died.
    let mut children: Vec<Pid> = Vec::new();
    let sigchld = SigSet::from(Signal::SIGCHLD);
    if workers > 1 {
        // Worker 0 learns of a death through epoll (the signalfd below).
        // SIGCHLD is blocked from before the first fork(2): one that comes
        // early stays pending for it instead of being discarded
        // (signalfd(2)). The children inherit the mask; they have no
        // children, so it changes nothing for them.
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&sigchld), None).or_die("sigprocmask", "SIGCHLD");
    }
    for n in 1..workers {
        // SAFETY: this process has a single thread, so the child may run
        // any code after fork(2).
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                worker = n;
                // The parent's socket is worker 0's: connections the kernel
                // hands to it must not wait for us.
                if let Err(err) = close(listener) {
                    warn!("close {local}: {}", reason(&err));
                }
                (listener, _) = open_listener(addr, true);
                // A worker must not outlive the parent (prctl(2), PR_SET_PDEATHSIG).
                if let Err(err) = prctl::set_pdeathsig(Signal::SIGTERM) {
                    warn!("prctl: {}", reason(&err));
                }
                // The parent may have died before the line above: then no
                // signal will come, and we have been adopted by another.
                if getppid() != parent {
                    std::process::exit(0);
                }
                if let Ok(name) = CString::new(format!("server:w{n}")) {
                    let _ = prctl::set_name(&name); // cosmetic: `ps -o comm`
                }
                break;
            }
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(err) => die("fork", local, &err),
        }
    }
    let tag = if workers > 1 {
        log!("worker {worker} (pid {}) accepting on {local}", getpid());
        format!("[worker {worker}] ")
    } else {
        String::new()
    };

    // epoll_create1(2): the kernel object that holds our interest list.
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).or_die("epoll_create1", local);
    epoll
        .add(&listener, EpollEvent::new(EpollFlags::EPOLLIN, LISTENER))
        .or_die("epoll_ctl", local);
    // signalfd(2) turns the pending SIGCHLD into a readable descriptor: the
    // same epoll_wait(2) that waits for clients wakes up when a worker dies,
    // with no handler, and no race between testing a flag and going to
    // sleep. The dead worker is then reaped, not left a zombie.
    let deaths = if worker == 0 && workers > 1 {
        let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
        let deaths = SignalFd::with_flags(&sigchld, flags).or_die("signalfd", "SIGCHLD");
        epoll
            .add(&deaths, EpollEvent::new(EpollFlags::EPOLLIN, WORKER_DIED))
            .or_die("epoll_ctl", local);
        Some(deaths)
    } else {
        None
    };

    // See lab 04: a spare descriptor to close a connection when out of
    // them, or a clear exit if the limit leaves no room for one client.
    let mut spare = SpareDescriptor::reserve(limit);
    let mut out_of_descriptors = false;

    // Clients indexed by descriptor number, as a C server's array would be:
    // the token epoll hands back is the index.
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = [0u8; 16 * 1024];
    loop {
        // Level-triggered (the default): a descriptor is reported as long as
        // it is ready, so we may leave data unread and hear of it again.
        let ready = match epoll.wait(&mut events, EpollTimeout::NONE) {
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(err) => die("epoll_wait", local, &err),
        };
        for event in &events[..ready] {
            if event.data() == WORKER_DIED {
                if let Some(deaths) = &deaths {
                    reap_workers(deaths, &children);
                }
                continue;
            }
            if event.data() == LISTENER {
                // Accept all that wait: one readiness may stand for many.
                loop {
                    let fd = match accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK) {
                        Ok(fd) => fd,
                        Err(Errno::EAGAIN) => break,
                        Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
                        Err(err @ (Errno::EMFILE | Errno::ENFILE)) => {
                            if !out_of_descriptors {
                                warn!(
                                    "{tag}accept {local}: {}; closing new connections until one frees",
                                    reason(&err)
                                );
                                out_of_descriptors = true;
                            }
                            if !spare.refuse_one(listener.as_raw_fd(), local) {
                                break; // nobody was waiting
                            }
                            continue;
                        }
                        Err(err) => die("accept", local, &err),
                    };
                    // SAFETY: accept4(2) just returned this descriptor and
                    // nothing else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    out_of_descriptors = false;
                    let peer: SockaddrStorage = match getpeername(fd.as_raw_fd()) {
                        Ok(peer) => peer,
                        Err(err) => {
                            warn!("{tag}getpeername {local}: {}", reason(&err));
                            continue;
                        }
                    };
                    let index = fd.as_raw_fd() as usize;
                    let interest = EpollFlags::EPOLLIN;
                    if let Err(err) = epoll.add(&fd, EpollEvent::new(interest, index as u64)) {
                        warn!("{tag}epoll_ctl {peer}: {}", reason(&err));
                        continue;
                    }
                    log!("{tag}connection from {peer}");
                    if clients.len() <= index {
                        clients.resize_with(index + 1, || None);
                    }
                    clients[index] = Some(Client {
                        fd,
                        peer,
                        pending: Vec::new(),
                        eof: false,
                        interest,
                    });
                }
                continue;
            }

            let index = event.data() as usize;
            let Some(client) = clients.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if serve(client, event.events(), &mut buf) {
                let mut wanted = EpollFlags::empty();
                if !client.eof && client.pending.len() < MAX_PENDING {
                    wanted |= EpollFlags::EPOLLIN;
                }
                if !client.pending.is_empty() {
                    wanted |= EpollFlags::EPOLLOUT;
                }
                if wanted != client.interest {
                    let mut event = EpollEvent::new(wanted, index as u64);
                    match epoll.modify(&client.fd, &mut event) {
                        Ok(()) => client.interest = wanted,
                        Err(err) => warn!("{tag}epoll_ctl {}: {}", client.peer, reason(&err)),
                    }
                }
            } else if let Some(client) = clients[index].take() {
                // close(2) would drop it from the interest list too, but only
                // once no other descriptor refers to the socket (epoll(7)).
                if let Err(err) = epoll.delete(&client.fd) {
                    warn!("{tag}epoll_ctl {}: {}", client.peer, reason(&err));
                }
                log!("{tag}{} disconnected", client.peer);
                if let Err(err) = close(client.fd) {
                    warn!("{tag}close {}: {}", client.peer, reason(&err));
                }
            }
        }
    }
}

/// Collects every worker that has died, and says which and how (worker 0
/// does it, as in lab 02).
fn reap_workers(deaths: &SignalFd, children: &[Pid]) {
    // read(2) takes the SIGCHLD off the pending signals: the descriptor
    // stays readable until then, and becomes so again at the next one.
    if let Err(err) = deaths.read_signal() {
        warn!("read SIGCHLD: {}", reason(&err));
    }
    // Signals do not queue: one SIGCHLD may stand for several dead workers,
    // so call waitpid(2) until none is left (WNOHANG: never block).
    loop {
        let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) => (pid, format!("exited (status {status})")),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, format!("killed by {signal}")),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) => continue, // stopped or continued: still a worker of ours
            Err(Errno::EINTR) => continue,
            Err(err) => {
                warn!("waitpid: {}", reason(&err));
                return;
            }
        };
        let n = children.iter().position(|&c| c == pid).map_or(0, |i| i + 1);
        log!("worker {n} (pid {pid}) {how}");
    }
}

/// Proves that nobody holds ADDR's port before the workers share it, and
/// returns the port (the one the kernel chose, if ADDR's is 0).
///
/// SO_REUSEPORT lets any socket that sets it join the port, if its owner is
/// the same user (socket(7)): a second `server --workers 2` started by
/// mistake would not fail, it would quietly take a share of the
/// connections. A socket without SO_REUSEPORT gets EADDRINUSE from bind(2)
/// if anyone holds the port, as in every lab; closed at once, it leaves the
/// port to the workers' sockets. A server started in the instant between
/// that close(2) and their bind(2) could still slip in.
fn free_port(addr: SocketAddr) -> u16 {
    let domain = family(addr);
    let probe = socket(domain, SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
    // As the listeners will: a previous run's connections left in
    // TIME_WAIT do not hold the port.
    setsockopt(&probe, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(probe.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    let bound: SockaddrStorage = getsockname(probe.as_raw_fd()).or_die("getsockname", addr);
    if let Err(err) = close(probe) {
        warn!("close {addr}: {}", reason(&err));
    }
    local_port(&bound)
}

/// socket → setsockopt → bind → listen, as in every lab; with workers, plus
/// SO_REUSEPORT so that each may bind a socket of its own to the same port.
fn open_listener(addr: SocketAddr, reuse_port: bool) -> (OwnedFd, SockaddrStorage) {
    let domain = family(addr);
    // Non-blocking: we accept until EAGAIN, never waiting in accept(2).
    let listener =
        socket(domain, SockType::Stream, SockFlag::SOCK_NONBLOCK, None).or_die("socket", addr);
    setsockopt(&listener, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    // Only with workers: SO_REUSEPORT would also let a second server,
    // started by mistake, share the port instead of failing with EADDRINUSE
    // (with workers, free_port has checked that nobody holds it).
    if reuse_port {
        setsockopt(&listener, sockopt::ReusePort, &true).or_die("setsockopt", addr);
    }
    bind(listener.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    listen(&listener, Backlog::MAXCONN).or_die("listen", addr);
    let local: SockaddrStorage = getsockname(listener.as_raw_fd()).or_die("getsockname", addr);
    (listener, local)
}

fn family(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The CPUs online, as sysconf(3) counts them (_SC_NPROCESSORS_ONLN); the
/// C twin asks the same, so both allow the same number of workers.
fn cpus_online() -> u32 {
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => u32::try_from(n).unwrap_or(1),
        _ => 1,
    }
}

fn local_port(addr: &SockaddrStorage) -> u16 {
    match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
        (Some(v4), _) => v4.port(),
        (_, Some(v6)) => v6.port(),
        _ => 0,
    }
}

/// Reads and writes what epoll reported for one client. Returns false when
/// the client is gone and must be removed.
fn serve(client: &mut Client, events: EpollFlags, buf: &mut [u8]) -> bool {
    // EPOLLHUP and EPOLLERR come whether asked for or not (epoll_ctl(2)).
    let trouble = EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
    if events.intersects(EpollFlags::EPOLLIN | trouble)
        && !client.eof
        && client.pending.len() < MAX_PENDING
    {
        match read(&client.fd, buf) {
            Ok(0) => client.eof = true,
            Ok(n) => client.pending.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                warn!("read {}: {}", client.peer, reason(&err));
                return false;
            }
        }
    }
    // Write at once: the socket buffer almost always has room, and if not,
    // the interest switches to EPOLLOUT.
    if !client.pending.is_empty() {
        match write(&client.fd, &client.pending) {
            Ok(n) => {
                client.pending.drain(..n);
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(err) => {
                warn!("write {}: {}", client.peer, reason(&err));
                return false;
            }
        }
    }
    !(client.eof && client.pending.is_empty())
}
