//! Lab 05: the echo server on epoll, optionally in several worker processes.
//!
//! socket → setsockopt(SO_REUSEADDR [, SO_REUSEPORT]) → bind → listen, once
//! per worker → fork the workers, each keeping one listening socket →
//! epoll_create1 → epoll_ctl(ADD listener) → loop { epoll_wait → accept the
//! new clients and epoll_ctl(ADD) them → read/write the ready ones,
//! switching each one's interest between readable and writable }. The
//! kernel keeps the list of descriptors we watch; each wait returns only
//! the ready ones. With workers, the kernel spreads the new connections
//! over their sockets (SO_REUSEPORT), and worker 0 (the parent) also
//! watches a signalfd to reap and name a worker that dies.
//!
//! The starter: write each TODO (the lesson's calls), then `make` and
//! `make check LAB=05-epoll`. The answer is the lab's server.rs.
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
use socket_labs::spare::{REFUSING, SpareDescriptor};
use socket_labs::{Cli, DEFAULT_PORT, OrDie, die, log, reason, signal_text, warn};

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
    /// Echo not yet accepted by write(2): at most MAX_PENDING + one read.
    pending: Vec<u8>,
    /// The client has shut down its side: send what is pending, then close.
    eof: bool,
    /// What epoll watches for this client now: changed only when needed,
    /// each change being one epoll_ctl(2) call.
    interest: EpollFlags,
}

impl Client {
    fn new(fd: OwnedFd, peer: SockaddrStorage) -> Client {
        let interest = EpollFlags::EPOLLIN; // as main adds it to epoll
        Client {
            fd,
            peer,
            pending: Vec::new(),
            eof: false,
            interest,
        }
    }
}

fn main() {
    let (mut addr, workers) = arguments();
    // Every client costs a descriptor: up to the hard limit (src/limits.rs).
    let limit = raise_descriptor_limit();
    if workers > 1 {
        addr.set_port(prove_port_free(addr)); // SO_REUSEPORT would let a second server in
    }

    // One listening socket per worker, all bound to the same port, which
    // SO_REUSEPORT allows: the kernel then hashes each new connection to
    // one of them (socket(7)). Non-blocking: we accept until EAGAIN.
    let (domain, mut listeners) = (family(addr), Vec::new());
    for _ in 0..workers {
        // TODO socket(2) NONBLOCK, setsockopt(2) REUSEADDR [REUSEPORT], bind(2), listen(2)
        let listenfd: OwnedFd = socket_labs::todo("socket(2), bind(2), listen(2)");
        listeners.push(listenfd);
    }
    let local: SockaddrStorage = getsockname(listeners[0].as_raw_fd()).or_die("getsockname", addr);
    log!("listening on {local}");
    log!("descriptor limit {limit} (RLIMIT_NOFILE)");

    // Worker 0 is this process; it forks workers 1..N, SIGCHLD blocked.
    let sigchld = (workers > 1).then(block_sigchld);
    let (parent, mut worker, mut children) = (getpid(), 0, Vec::new());
    for n in 1..workers {
        // SAFETY: one thread here, so the child may run any code (fork(2)).
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                worker = n;
                become_worker(n, parent);
                break;
            }
            Ok(ForkResult::Parent { child }) => children.push(child),
            Err(err) => die("fork", local, &err),
        }
    }
    // Each worker keeps its own socket and closes the others'.
    let listenfd = keep_own(listeners, worker, local);
    let mut tag = String::new();
    if workers > 1 {
        log!("worker {worker} (pid {}) accepting on {local}", getpid());
        tag = format!("[worker {worker}] ");
    }

    // epoll_create1(2): the kernel object that holds our interest list.
    // TODO epoll_create1(2), then epoll_ctl(2) ADD the listener (EPOLLIN, token LISTENER)
    let epoll: Epoll = socket_labs::todo("epoll_create1(2)");
    let deaths = sigchld
        .filter(|_| worker == 0)
        .map(|set| watch_deaths(&epoll, &set, local));

    // As in lab 04: the spare descriptor for EMFILE (src/spare.rs).
    let mut spare = SpareDescriptor::reserve(limit);
    let mut out_of_descriptors = false;
    // Indexed by descriptor, as a C array: the token epoll hands back.
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut events = vec![EpollEvent::empty(); 1024];
    let mut buf = [0u8; 16 * 1024];
    loop {
        // Level-triggered (the default): a descriptor is reported as long as
        // it is ready, so we may leave data unread and hear of it again.
        // TODO epoll_wait(2) for ever: how many of `events` are ready (EINTR: again)
        let nready: usize = socket_labs::todo("epoll_wait(2)");
        for event in &events[..nready] {
            match event.data() {
                WORKER_DIED => reap_workers(deaths.as_ref(), &children),
                // Accept all that wait: one readiness may stand for many.
                LISTENER => loop {
                    // TODO accept4(2) SOCK_NONBLOCK until EAGAIN; EMFILE: spare.refuse_one
                    let connfd: OwnedFd = socket_labs::todo("accept4(2)");
                    let peer: SockaddrStorage = match getpeername(connfd.as_raw_fd()) {
                        Ok(peer) => peer,
                        Err(err) => {
                            warn!("{tag}getpeername {local}: {}", reason(&err));
                            continue;
                        }
                    };
                    let index = connfd.as_raw_fd() as usize;
                    // TODO epoll_ctl(2) ADD the client: EPOLLIN, its descriptor as token
                    socket_labs::todo("epoll_ctl(2) ADD");
                    log!("{tag}connection from {peer}");
                    clients.resize_with(clients.len().max(index + 1), || None);
                    clients[index] = Some(Client::new(connfd, peer));
                },
                // A client's: read, write, switch its interest, or drop it.
                token => serve(&epoll, &mut clients, token, event.events(), &mut buf, &tag),
            }
        }
    }
}

/// PORT, --bind ADDR and --workers N, as the usage says.
fn arguments() -> (SocketAddr, u32) {
    let mut cli = Cli::new(USAGE);
    let ip: IpAddr = cli
        .value("--bind", "ADDR")
        .unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    let workers: u32 = cli.value("--workers", "N").unwrap_or(1);
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    // Each worker is a process: unbounded, a typo (--workers 100000) would
    // fork until fork(2) fails or the process table is full.
    let max = WORKERS_PER_CPU * cpus_online();
    if !(1..=max).contains(&workers) {
        cli.usage_error(format_args!(
            "invalid N '{workers}': from 1 to {max} workers ({WORKERS_PER_CPU} per CPU)"
        ));
    }
    cli.finish();
    (SocketAddr::new(ip, port), workers)
}

/// The CPUs online, as sysconf(3) counts them (_SC_NPROCESSORS_ONLN); the
/// C twin asks the same, so both allow the same number of workers.
fn cpus_online() -> u32 {
    match sysconf(SysconfVar::_NPROCESSORS_ONLN) {
        Ok(Some(n)) if n > 0 => u32::try_from(n).unwrap_or(1),
        _ => 1,
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
fn prove_port_free(addr: SocketAddr) -> u16 {
    let probe =
        socket(family(addr), SockType::Stream, SockFlag::empty(), None).or_die("socket", addr);
    // As the listeners will: a previous run's connections left in
    // TIME_WAIT do not hold the port.
    setsockopt(&probe, sockopt::ReuseAddr, &true).or_die("setsockopt", addr);
    bind(probe.as_raw_fd(), &SockaddrStorage::from(addr)).or_die("bind", addr);
    let bound: SockaddrStorage = getsockname(probe.as_raw_fd()).or_die("getsockname", addr);
    if let Err(err) = close(probe) {
        warn!("close {addr}: {}", reason(&err));
    }
    match (bound.as_sockaddr_in(), bound.as_sockaddr_in6()) {
        (Some(v4), _) => v4.port(),
        (_, Some(v6)) => v6.port(),
        _ => addr.port(),
    }
}

/// socket(2)'s domain for ADDR: AF_INET or AF_INET6.
fn family(addr: SocketAddr) -> AddressFamily {
    match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Blocks SIGCHLD, before the first fork(2): a worker that dies early then
/// leaves it pending for worker 0's signalfd instead of discarded
/// (signalfd(2)). The children inherit the mask; they have no children, so
/// it changes nothing for them. Returns the set, for watch_deaths.
fn block_sigchld() -> SigSet {
    let sigchld = SigSet::from(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&sigchld), None).or_die("sigprocmask", "SIGCHLD");
    sigchld
}

/// What a forked worker does first. It must not outlive worker 0, which
/// reaps it and which Ctrl-C or `kill` stops: PR_SET_PDEATHSIG has the
/// kernel send it SIGTERM when its parent dies (prctl(2)).
fn become_worker(n: u32, parent: Pid) {
    if let Err(err) = prctl::set_pdeathsig(Signal::SIGTERM) {
        warn!("prctl: {}", reason(&err));
    }
    // The parent may have died before the line above: then no signal will
    // come, and we have been adopted by another.
    if getppid() != parent {
        std::process::exit(0);
    }
    if let Ok(name) = CString::new(format!("server:w{n}")) {
        let _ = prctl::set_name(&name); // cosmetic: `ps -o comm`
    }
}

/// Each worker keeps its own listening socket and closes the others': left
/// open in another process, a socket would outlive its worker, and the
/// connections the kernel hands it would wait for nobody.
fn keep_own(mut listeners: Vec<OwnedFd>, worker: u32, local: SockaddrStorage) -> OwnedFd {
    let own = listeners.remove(worker as usize);
    for other in listeners {
        if let Err(err) = close(other) {
            warn!("close {local}: {}", reason(&err));
        }
    }
    own
}

/// Worker 0's signalfd(2): the blocked SIGCHLD as a descriptor readable
/// while one is pending, added to epoll. The same epoll_wait(2) that waits
/// for clients then wakes up when a worker dies, with no handler, and no
/// race between testing a flag and going to sleep (lab 02's way). The dead
/// worker is then reaped, not left a zombie.
fn watch_deaths(epoll: &Epoll, sigchld: &SigSet, local: SockaddrStorage) -> SignalFd {
    let flags = SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC;
    let deaths = SignalFd::with_flags(sigchld, flags).or_die("signalfd", "SIGCHLD");
    epoll
        .add(&deaths, EpollEvent::new(EpollFlags::EPOLLIN, WORKER_DIED))
        .or_die("epoll_ctl", local);
    deaths
}

/// Collects every worker that has died, and says which and how (worker 0
/// does it, as lab 02's parent does). `children` holds worker n's pid at
/// n - 1.
fn reap_workers(deaths: Option<&SignalFd>, children: &[Pid]) {
    // read(2) takes the SIGCHLD off the pending signals: the descriptor
    // stays readable until then, and becomes so again at the next one.
    if let Some(Err(err)) = deaths.map(SignalFd::read_signal) {
        warn!("read SIGCHLD: {}", reason(&err));
    }
    // Signals do not queue: one SIGCHLD may stand for several dead workers,
    // so call waitpid(2) until none is left (WNOHANG: never block).
    loop {
        let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, status)) => (pid, format!("exited (status {status})")),
            Ok(WaitStatus::Signaled(pid, signal, _)) => {
                let text = signal_text(signal); // strsignal(3)'s words, as the C twin's
                (pid, format!("killed by signal {} ({text})", signal as i32))
            }
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

/// What epoll reported for the client whose token (its descriptor) is
/// `token`: echo() reads and writes; then what epoll watches for the client
/// follows its state, or the client is gone and leaves the interest list
/// and the table.
fn serve(
    epoll: &Epoll,
    clients: &mut [Option<Client>],
    token: u64,
    events: EpollFlags,
    buf: &mut [u8],
    tag: &str,
) {
    let Some(slot) = clients.get_mut(token as usize) else {
        return;
    };
    let Some(client) = slot.as_mut() else {
        return;
    };
    if echo(client, events, buf) {
        // Backpressure: stop reading a client whose echo piles up, and wait
        // for room to write only while something waits to be sent; each
        // change is one epoll_ctl(2) call, none when nothing changes.
        // TODO epoll_ctl(2) MOD: EPOLLIN below MAX_PENDING, EPOLLOUT while echo waits
        socket_labs::todo("epoll_ctl(2) MOD");
    } else if let Some(client) = slot.take() {
        // close(2) would drop it from the interest list too, but only once
        // no other descriptor refers to the socket (epoll(7)).
        // TODO epoll_ctl(2) DEL the client
        socket_labs::todo("epoll_ctl(2) DEL");
        log!("{tag}{} disconnected", client.peer);
        // TODO close(2) the client: it gets its FIN, and its descriptor is free again
        socket_labs::todo("close(2)");
    }
}

/// Reads and writes what epoll reported for one client. Returns false when
/// the client is gone and must be removed.
fn echo(client: &mut Client, events: EpollFlags, buf: &mut [u8]) -> bool {
    // EPOLLHUP and EPOLLERR come whether asked for or not (epoll_ctl(2)).
    let trouble = EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR;
    if events.intersects(EpollFlags::EPOLLIN | trouble)
        && !client.eof
        && client.pending.len() < MAX_PENDING
    {
        match read(&client.fd, buf) {
            // The client shut down its side; it may still read its echo.
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
