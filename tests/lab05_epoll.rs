//! Lab 05: the epoll server, with ten thousand clients and with workers.
//!
//! Every test runs twice, with one body: against the Rust server
//! (`NAME::rust`) and against its C twin (`NAME::c`, labs/05-epoll/server-c,
//! built by `make c`): the C twin is checked, not assumed.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Server, Twin, busy_during, check_no_room_for_a_client, check_out_of_descriptors,
    check_server_arguments, check_twins_agree_on_arguments, check_usage_error, children_states,
    descriptors_for, echo, open_descriptors, program, reset, resident_kib, run, zombies,
};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Lab 05's server in one implementation or the other.
fn server_program(twin: Twin) -> String {
    program(
        twin,
        "05-epoll",
        "server",
        env!("CARGO_BIN_EXE_epoll-server"),
    )
}

fn start(twin: Twin, extra: &[&str]) -> Server {
    let mut args = vec!["0", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start(&server_program(twin), &args)
}

crate::for_rust_and_c!(
    ten_thousand_clients_each_get_their_own_echo,
    a_client_that_leaves_is_removed_from_epoll_and_closed,
    an_idle_client_costs_no_cpu,
    a_client_that_never_reads_stalls_nobody_and_memory_stays_bounded,
    running_out_of_descriptors_closes_new_connections_without_spinning,
    a_limit_with_no_room_for_a_client_is_said_at_once,
    resets_and_early_leavers_do_not_disturb_the_server,
    two_workers_share_the_port_and_both_serve,
    more_workers_than_four_per_cpu_are_refused_before_any_fork,
    a_second_server_on_the_port_fails_even_when_both_have_workers,
    a_worker_that_dies_is_reaped_and_named_and_worker_0_serves_on,
    the_server_shares_the_common_interface,
);

/// Held by a test that opens thousands of connections: the Rust and C runs
/// of it share this process's descriptors, so they take turns.
static MANY_DESCRIPTORS: Mutex<()> = Mutex::new(());

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: epoll_ctl(2) ADD each accepted client with its descriptor as token, and accept4(2)
/// until EAGAIN: one readiness may stand for many (README.md, "Interest list and ready list").
fn ten_thousand_clients_each_get_their_own_echo(twin: Twin) {
    const CLIENTS: usize = 10_000;
    let _turn = MANY_DESCRIPTORS.lock().unwrap_or_else(|e| e.into_inner());
    if !descriptors_for(twin, CLIENTS as u64 + 100) {
        return;
    }
    let mut server = start(twin, &[]);
    server.expect("descriptor limit ");
    let started = Instant::now();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        client
            .write_all(format!("client {i}\n").as_bytes())
            .expect("write");
    }
    for (i, client) in clients.iter_mut().enumerate() {
        let want = format!("client {i}\n");
        let mut got = vec![0u8; want.len()];
        client.read_exact(&mut got).expect("echo");
        assert_eq!(got, want.as_bytes(), "client {i} got someone else's echo");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(server.is_running());
}

/// Hint: when a client has left and its echo is sent, epoll_ctl(2) DEL it, then close(2) it:
/// else its socket stays open, in CLOSE_WAIT (README.md, "Write it yourself").
fn a_client_that_leaves_is_removed_from_epoll_and_closed(twin: Twin) {
    let mut server = start(twin, &[]);
    let mut stays = server.connect();
    assert_eq!(echo(&mut stays, b"here\n"), b"here\n");
    server.expect("connection from ");
    let before = open_descriptors(server.pid()).len();
    for i in 0..5 {
        let mut leaver = server.connect();
        let line = format!("leaver {i}\n");
        assert_eq!(echo(&mut leaver, line.as_bytes()), line.as_bytes());
        drop(leaver);
        server.expect(" disconnected");
    }
    // The line comes just before close(2): a moment, bounded, for the last.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut open = open_descriptors(server.pid()).len();
    while open > before && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        open = open_descriptors(server.pid()).len();
    }
    assert_eq!(
        open,
        before,
        "5 clients left, and the server still holds {} more descriptors",
        open.saturating_sub(before)
    );
    assert_eq!(echo(&mut stays, b"still here\n"), b"still here\n");
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: epoll_ctl(2) MOD to EPOLLOUT only while echo waits, back to EPOLLIN once written:
/// a socket is almost always writable (README.md, "Backpressure: the interest switches").
fn an_idle_client_costs_no_cpu(twin: Twin) {
    let mut server = start(twin, &[]);
    let mut idle = server.connect();
    assert_eq!(echo(&mut idle, b"then silence\n"), b"then silence\n");
    server.expect("connection from ");
    // Nothing signals "not spinning": measure the CPU used over a while.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "one idle client, and the server ran (or waited to run) {busy:?} of 0.5 s: it spins"
    );
    assert_eq!(echo(&mut idle, b"awake\n"), b"awake\n");
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: over MAX_PENDING bytes waiting, epoll_ctl(2) MOD the client to EPOLLOUT alone: stop
/// reading it until its echo drains (README.md, "Backpressure: the interest switches").
fn a_client_that_never_reads_stalls_nobody_and_memory_stays_bounded(twin: Twin) {
    let mut server = start(twin, &[]);
    let before = resident_kib(server.pid());
    let hog = server.connect();
    hog.set_nonblocking(true).expect("non-blocking");
    let chunk = vec![b'h'; 64 * 1024];
    let mut sent = 0usize;
    let mut stuck = false;
    while sent < 10 * 1024 * 1024 {
        match (&hog).write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                stuck = true;
                break;
            }
            Err(e) => panic!("hog write: {e}"),
        }
    }
    assert!(
        stuck,
        "the server read 10 MB from a client that never reads"
    );
    let mut other = server.connect();
    assert_eq!(echo(&mut other, b"not waiting\n"), b"not waiting\n");
    let growth = resident_kib(server.pid()).saturating_sub(before);
    assert!(growth < 4 * 1024, "server grew by {growth} KiB");
    drop(hog);
    server.expect(" disconnected");
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed, an_idle_client_costs_no_cpu
/// Hint: on EMFILE from accept4(2), refuse_one (given) accepts and closes one waiting
/// connection, else epoll_wait(2) reports the listener for ever (lab 04's README.md, "The server's loop").
fn running_out_of_descriptors_closes_new_connections_without_spinning(twin: Twin) {
    check_out_of_descriptors(&server_program(twin));
}

/// Hint: the spare descriptor and RLIMIT_NOFILE are given: socket(2) and epoll_create1(2)
/// come before any client (README.md, "What to observe" 5, and its answer).
fn a_limit_with_no_room_for_a_client_is_said_at_once(twin: Twin) {
    // 5: stdio, the listener and epoll, no room for the spare; 6: no room
    // for a client.
    check_no_room_for_a_client(&server_program(twin), &[5, 6]);
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: read(2) returning 0 only ends the client's sending: write what is pending, then
/// epoll_ctl(2) DEL and close(2) (README.md, "Backpressure: the interest switches").
fn resets_and_early_leavers_do_not_disturb_the_server(twin: Twin) {
    let mut server = start(twin, &[]);
    let mut rude = server.connect();
    rude.write_all(b"bye\n").expect("write");
    reset(rude);
    let mut quitter = server.connect();
    quitter
        .write_all(&vec![b'q'; 1024 * 1024])
        .expect("write a lot");
    drop(quitter);
    // A half-closed client still gets all of its echo.
    let mut polite = server.connect();
    polite.write_all(b"last words\n").expect("write");
    polite
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut rest = Vec::new();
    polite.read_to_end(&mut rest).expect("read to EOF");
    assert_eq!(rest, b"last words\n");
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still here\n"), b"still here\n");
    assert!(server.is_running());
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: one socket(2) per worker, each with setsockopt(2) SO_REUSEPORT before bind(2)
/// (README.md, "Workers and SO_REUSEPORT").
fn two_workers_share_the_port_and_both_serve(twin: Twin) {
    let mut server = start(twin, &["--workers", "2"]);
    // Parent and child print their line each on its own: in either order.
    let mut started: Vec<String> = (0..2)
        .map(|_| {
            let line = server.expect(") accepting on ");
            line.split(" (pid ").next().unwrap_or_default().to_string()
        })
        .collect();
    started.sort();
    assert_eq!(started, ["worker 0", "worker 1"]);
    let mut clients: Vec<TcpStream> = (0..64).map(|_| server.connect()).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let line = format!("client {i}\n");
        assert_eq!(echo(client, line.as_bytes()), line.as_bytes());
    }
    // The kernel hashes each connection to one worker's socket: with 64
    // connections, both get some (all on one: odds of 2 in 2^64).
    let mut workers = BTreeSet::new();
    for _ in &clients {
        let line = server.expect("] connection from ");
        workers.insert(line.split(']').next().unwrap_or_default().to_string());
    }
    assert_eq!(workers.len(), 2, "{workers:?}");
}

/// Needs: a_client_that_leaves_is_removed_from_epoll_and_closed
/// Hint: the worker machinery is given; each worker epoll_wait(2)s on its own listening
/// socket only (README.md, "Workers and SO_REUSEPORT").
fn a_worker_that_dies_is_reaped_and_named_and_worker_0_serves_on(twin: Twin) {
    let mut server = start(twin, &["--workers", "2"]);
    // `worker N (pid P) accepting on ADDR`, one line from each worker.
    let mut pids = [0i32; 2];
    for _ in 0..2 {
        let line = server.expect(") accepting on ");
        let parsed = line.strip_prefix("worker ").and_then(|rest| {
            let (n, rest) = rest.split_once(" (pid ")?;
            let pid = rest.split(')').next()?;
            Some((n.parse::<usize>().ok()?, pid.parse::<i32>().ok()?))
        });
        match parsed {
            Some((n, pid)) if n < 2 => pids[n] = pid,
            _ => panic!("bad worker line {line:?}"),
        }
    }
    let parent = server.pid();
    assert_eq!(pids[0], parent, "worker 0 is the process we started");

    kill(Pid::from_raw(pids[1]), Signal::SIGKILL).expect("kill worker 1");
    server.expect(&format!(
        "worker 1 (pid {}) killed by signal 9 (Killed)",
        pids[1]
    ));
    // Reaped: gone from /proc, not left a zombie (Z) child of worker 0.
    assert_eq!(zombies(parent), 0, "{:?}", children_states(parent));
    assert_eq!(children_states(parent), []);

    // Its listening socket closed with it: worker 0's is the only one left
    // on the port, and takes every new connection.
    for i in 0..8 {
        let mut client = server.connect();
        let line = format!("client {i}\n");
        assert_eq!(echo(&mut client, line.as_bytes()), line.as_bytes());
        let logged = server.expect("] connection from ");
        assert!(logged.starts_with("[worker 0] "), "{logged:?}");
    }
    assert!(server.is_running());
}

/// Hint: bind(2) must fail with EADDRINUSE: SO_REUSEPORT only with workers, after the given
/// probe (README.md, "Workers and SO_REUSEPORT").
fn a_second_server_on_the_port_fails_even_when_both_have_workers(twin: Twin) {
    let server_bin = server_program(twin);
    // The first server's options, the second's. Both with workers: both
    // would set SO_REUSEPORT, which alone lets the second in (socket(7)).
    let cases: &[(&[&str], &[&str])] = &[
        (&["--workers", "2"], &["--workers", "2"]),
        (&["--workers", "2"], &[]),
        (&[], &["--workers", "2"]),
    ];
    for (first, second) in cases {
        let mut server = start(twin, first);
        let port = server.port().to_string();
        let mut args = vec![port.as_str(), "--bind", "127.0.0.1"];
        args.extend_from_slice(second);
        let out = run(&server_bin, &args, b"");
        assert_eq!(
            (out.code(), out.stderr.as_str(), out.stdout_text().as_str()),
            (
                Some(1),
                format!("bind 127.0.0.1:{port}: Address already in use\n").as_str(),
                ""
            ),
            "{second:?} on the port of a server with {first:?}"
        );
        // The first server still has the port, and serves.
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"still mine\n"), b"still mine\n");
        server.expect("connection from ");
    }
}

/// The most workers the servers allow: 4 per CPU online, counted as they
/// count them (sysconf(3), _SC_NPROCESSORS_ONLN).
fn max_workers() -> u32 {
    let cpus = nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
        .ok()
        .flatten()
        .filter(|&n| n > 0)
        .unwrap_or(1);
    4 * u32::try_from(cpus).expect("CPUs fit in a u32")
}

/// Hint: given with the arguments: --workers is checked before any socket(2) or fork(2)
/// (README.md, "Workers and SO_REUSEPORT").
fn more_workers_than_four_per_cpu_are_refused_before_any_fork(twin: Twin) {
    let server_bin = server_program(twin);
    let max = max_workers();
    // One over the bound first: unbounded, that starts a server (and this
    // test fails on its timeout) instead of forking 100,000 processes.
    for n in [max + 1, 100_000, u32::MAX] {
        let n = n.to_string();
        // Exit 2 and nothing on stdout: no `listening on`, no worker line.
        check_usage_error(
            &server_bin,
            &["0", "--bind", "127.0.0.1", "--workers", &n],
            &format!("invalid N '{n}': from 1 to {max} workers (4 per CPU)\n"),
        );
    }
}

/// Hint: the arguments are given; socket(2), bind(2), listen(2) then print `listening on`
/// (README.md, "Build and run").
fn the_server_shares_the_common_interface(twin: Twin) {
    let server_bin = server_program(twin);
    check_server_arguments(&server_bin);
    check_usage_error(
        &server_bin,
        &["--workers", "0"],
        &format!("invalid N '0': from 1 to {} workers", max_workers()),
    );
    check_usage_error(&server_bin, &["--workers", "many"], "invalid N 'many'");
}

#[test]
fn rust_and_c_agree_on_arguments() {
    let cases: &[&[&str]] = &[
        &["--help"],
        &["--workers", "2", "-h"],
        &["abc"],
        &["70000"],
        &["-1"],
        &["--bogus"],
        &["4242", "x"],
        &["--bind"],
        &["--bind", "--workers"],
        &["--bind", "nowhere", "--workers", "x"],
        &["--workers"],
        &["--workers", "0"],
        &["--workers", "0", "abc"],
        &["--workers", "0", "4242", "x"],
        &["--workers=", "4242"],
        &["--workers", "-2"],
        &["--workers", "+"],
        &["--workers", "100000"],
        &["--workers", "4294967295"],
        &["--workers", "4294967296"],
        &["--workers", "100000", "--bind", "nowhere"],
        &["--workers", "100000", "abc"],
        &["--workers", "100000", "4242", "x"],
        &["--workers=99999999999x"],
        &["--workers", "2", "--bind", "::1", "4242", "--bogus"],
        // bind(2) to an address this machine does not have: no packet is sent.
        &["0", "--bind", "192.0.2.1"],
        &["0", "--bind", "192.0.2.1", "--workers", "3"],
    ];
    check_twins_agree_on_arguments(&server_program(Twin::Rust), &server_program(Twin::C), cases);
}
