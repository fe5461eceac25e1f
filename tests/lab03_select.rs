//! Lab 03: the select() server, driven over real sockets: many clients at
//! once, a client that never reads, FD_SETSIZE, running out of descriptors.
//!
//! Every test runs twice, with one body: against the Rust server
//! (`NAME::rust`) and against its C twin (`NAME::c`, labs/03-select/server-c,
//! built by `make c`): the C twin is checked, not assumed.

mod common;

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    PATIENCE, Server, Twin, binary_payload, busy_during, check_server_arguments,
    check_twins_agree_on_arguments, descriptors_for, echo, open_descriptors, program, reset,
    resident_kib, run,
};
use nix::poll::{PollFd, PollFlags, poll};
use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, connect, setsockopt, socket, sockopt,
};

/// The size of an fd_set in descriptors (select(2)).
const FD_SETSIZE: usize = 1024;

/// Lab 03's server, and the client `make` puts in its folder, in one
/// implementation or the other.
struct Select {
    server: String,
    /// Lab 03 has no client of its own: `make` gives it lab 01's.
    client: String,
}

impl Select {
    fn of(twin: Twin) -> Select {
        Select {
            server: program(
                twin,
                "03-select",
                "server",
                env!("CARGO_BIN_EXE_select-server"),
            ),
            client: program(twin, "01-echo", "client", env!("CARGO_BIN_EXE_echo-client")),
        }
    }

    fn start(&self) -> Server {
        Server::start(&self.server, &["0", "--bind", "127.0.0.1"])
    }
}

/// A client whose socket buffers are small (SO_RCVBUF, SO_SNDBUF), so that
/// a few MB it does not read fill every buffer between it and the server.
fn connect_small_buffers(server: &Server) -> TcpStream {
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    setsockopt(&fd, sockopt::RcvBuf, &(64 * 1024)).expect("SO_RCVBUF");
    setsockopt(&fd, sockopt::SndBuf, &(64 * 1024)).expect("SO_SNDBUF");
    connect(fd.as_raw_fd(), &SockaddrStorage::from(server.addr)).expect("connect");
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.set_write_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// Sends without ever reading until the connection takes no more (no
/// progress for 300 ms) or `limit` bytes are sent; returns the bytes sent.
fn send_until_stuck(hog: &TcpStream, limit: usize) -> usize {
    hog.set_nonblocking(true).expect("non-blocking");
    let chunk = vec![b'h'; 64 * 1024];
    let mut sent = 0;
    while sent < limit {
        match (&*hog).write(&chunk[..chunk.len().min(limit - sent)]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(hog.as_fd(), PollFlags::POLLOUT)];
                if poll(&mut fds, 300u16).expect("poll") == 0 {
                    break;
                }
            }
            Err(e) => panic!("hog write: {e}"),
        }
    }
    hog.set_nonblocking(false).expect("blocking");
    sent
}

/// One echo round trip, timed.
fn timed_echo(stream: &mut TcpStream, line: &[u8]) -> Duration {
    let started = Instant::now();
    assert_eq!(echo(stream, line), line);
    started.elapsed()
}

crate::for_rust_and_c!(
    the_client_on_the_highest_descriptor_is_served,
    two_hundred_clients_at_once_each_get_their_own_echo,
    a_client_that_never_reads_delays_nobody_and_costs_bounded_memory,
    a_client_that_leaves_with_echo_pending_is_closed,
    a_half_closed_client_gets_all_its_echo,
    resets_disturb_nobody_else,
    connections_past_fd_setsize_are_refused_and_the_rest_served,
    running_out_of_descriptors_pauses_accepting_without_spinning,
    the_server_shares_the_common_interface,
);

/// Hint: nfds is the highest descriptor + 1, not maxfd nor a count: select(2)
/// looks at descriptors 0 to nfds-1 (README.md, "The event loop", "What nfds is").
fn the_client_on_the_highest_descriptor_is_served(twin: Twin) {
    let lab = Select::of(twin);
    let server = lab.start();
    // Each newcomer takes the server's highest descriptor: maxfd.
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut newest = server.connect();
        newest
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let line = format!("client {i}\n");
        newest.write_all(line.as_bytes()).expect("send");
        let mut back = vec![0; line.len()];
        if let Err(e) = newest.read_exact(&mut back) {
            panic!("the newest client (highest descriptor) got no echo in 2 s: {e}");
        }
        assert_eq!(back, line.as_bytes());
        clients.push(newest);
    }
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: accept(2) until EAGAIN at each turn, then one read(2) and one write(2)
/// per ready client, found with FD_ISSET in select's answer (README.md, "The event loop").
fn two_hundred_clients_at_once_each_get_their_own_echo(twin: Twin) {
    const CLIENTS: usize = 200;
    let lab = Select::of(twin);
    let mut server = lab.start();
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    let payloads: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|i| format!("client {i} says hello\n").repeat(50).into_bytes())
        .collect();
    // Everyone sends before anyone reads: the server has 200 clients ready
    // in the same select(2) calls.
    for (client, payload) in clients.iter_mut().zip(&payloads) {
        client.write_all(payload).expect("send");
    }
    for (i, (client, payload)) in clients.iter_mut().zip(&payloads).enumerate() {
        let mut back = vec![0; payload.len()];
        client.read_exact(&mut back).expect("read the echo");
        assert!(back == *payload, "client {i} got someone else's bytes");
    }
    // All of that in one process with one thread.
    let threads = fs::read_dir(format!("/proc/{}/task", server.pid()))
        .expect("/proc/PID/task")
        .count();
    assert_eq!(threads, 1);
    for _ in 0..CLIENTS {
        server.expect("connection from 127.0.0.1:");
    }
    drop(clients);
    for _ in 0..CLIENTS {
        server.expect(" disconnected");
    }
    assert!(server.is_running());
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: backpressure: a client with more than HIGH_WATER pending stays out of the
/// read set until it reads its echo; sockets non-blocking (README.md, "The event loop").
fn a_client_that_never_reads_delays_nobody_and_costs_bounded_memory(twin: Twin) {
    let lab = Select::of(twin);
    let server = lab.start();
    let mut other = server.connect();
    assert_eq!(echo(&mut other, b"warm up\n"), b"warm up\n");
    let before = resident_kib(server.pid());

    let hog = connect_small_buffers(&server);
    let sent = send_until_stuck(&hog, 10 * 1024 * 1024);
    assert!(
        sent < 10 * 1024 * 1024,
        "the server took 10 MB from a client that reads nothing"
    );
    // The hog is stuck, its echo unread: the other client is served at once.
    let slowest = (0..50)
        .map(|i| timed_echo(&mut other, format!("round trip {i}\n").as_bytes()))
        .max()
        .unwrap_or_default();
    assert!(
        slowest < Duration::from_millis(500),
        "a round trip took {slowest:?}"
    );
    let growth = resident_kib(server.pid()).saturating_sub(before);
    assert!(
        growth < 4 * 1024,
        "the server grew by {growth} KiB after {sent} bytes"
    );
    // Still readable, a throttled client left in the read set wakes select(2)
    // at once, turn after turn. No readiness signal says "asleep": watch the CPU.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(100),
        "the server ran (or waited to run) {busy:?} of 0.5 s with one client stuck: spinning"
    );
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: a read(2) or write(2) error (ECONNRESET, EPIPE) means the client is gone:
/// close(2) it and take it out of the sets and the table (README.md, "The event loop").
fn a_client_that_leaves_with_echo_pending_is_closed(twin: Twin) {
    let lab = Select::of(twin);
    let mut server = lab.start();
    let mut other = server.connect();
    assert_eq!(echo(&mut other, b"first\n"), b"first\n");
    let descriptors = open_descriptors(server.pid()).len();
    let hog = connect_small_buffers(&server);
    let hog_addr = hog.local_addr().expect("address");
    server.expect(&format!("connection from {hog_addr}"));
    send_until_stuck(&hog, 10 * 1024 * 1024);
    drop(hog); // with unread data: the kernel sends a RST
    let error = server.expect_err(&hog_addr.to_string());
    assert!(
        error.ends_with("Connection reset by peer") || error.ends_with("Broken pipe"),
        "{error}"
    );
    server.expect(&format!("{hog_addr} disconnected"));
    // Served in a later turn than the close: the descriptor count is final.
    assert_eq!(echo(&mut other, b"still here\n"), b"still here\n");
    assert_eq!(
        open_descriptors(server.pid()).len(),
        descriptors,
        "the hog's socket leaked"
    );
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: read(2) returning 0 is the client's FIN: stop reading, but close(2) only once
/// its pending echo is all written (README.md, "The event loop").
fn a_half_closed_client_gets_all_its_echo(twin: Twin) {
    let lab = Select::of(twin);
    let mut server = lab.start();
    // Our FIN comes after 1 MB: the server must send all the echo before
    // it closes.
    let mut stream = server.connect();
    let payload = binary_payload(1024 * 1024);
    let mut writer = stream.try_clone().expect("clone");
    let sent = payload.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&sent).expect("send");
        writer.shutdown(Shutdown::Write).expect("shutdown");
    });
    let mut back = Vec::with_capacity(payload.len());
    stream.read_to_end(&mut back).expect("read to EOF");
    sender.join().expect("sender");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "the echo differs from what was sent");
    server.expect(" disconnected");

    // Lab 01's client, which `make` puts in this lab's folder, half-closes too.
    let mut input = vec![b'x'; 300_000];
    input.extend_from_slice(b"\nshort\n");
    let out = run(
        &lab.client,
        &["127.0.0.1", &server.port().to_string()],
        &input,
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout == input, "the client's output differs");
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: ECONNRESET from read(2) ends that client only: warn, close(2) it, remove it,
/// and go on with the others (README.md, "The event loop").
fn resets_disturb_nobody_else(twin: Twin) {
    let lab = Select::of(twin);
    let mut server = lab.start();
    let mut clients: Vec<TcpStream> = (0..10).map(|_| server.connect()).collect();
    for client in &mut clients {
        assert_eq!(echo(client, b"hello\n"), b"hello\n");
    }
    let mut kept = Vec::new();
    for (i, client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            let addr = client.local_addr().expect("address");
            reset(client);
            server.expect_err(&format!("read {addr}: Connection reset by peer"));
            server.expect(&format!("{addr} disconnected"));
        } else {
            kept.push(client);
        }
    }
    for client in &mut kept {
        assert_eq!(echo(client, b"still here\n"), b"still here\n");
    }
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"next\n"), b"next\n");
    assert!(server.is_running());
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: an accepted fd >= FD_SETSIZE cannot go in an fd_set: print the "refusing"
/// line and close(2) it, then keep accepting (README.md, "The event loop").
fn connections_past_fd_setsize_are_refused_and_the_rest_served(twin: Twin) {
    const CLIENTS: usize = FD_SETSIZE + 8;
    let lab = Select::of(twin);
    // Our sockets, the server's, and some room.
    if !descriptors_for(twin, 2 * CLIENTS as u64 + 100) {
        return;
    }
    let mut server = lab.start();
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| server.connect()).collect();
    // One line per connection, in the order the server accepted them.
    let mut served = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..CLIENTS {
        let line = server.expect("");
        if let Some(peer) = line.strip_prefix("connection from ") {
            served.push(peer.parse::<SocketAddr>().expect("peer address"));
        } else if let Some(rest) = line.strip_prefix("refusing ") {
            let (peer, why) = rest.split_once(": ").expect("refusing ADDR: why");
            let fd: usize = why
                .strip_prefix("fd ")
                .and_then(|w| w.strip_suffix(" >= FD_SETSIZE (select limit)"))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad refusal line {line:?}"));
            assert!(fd >= FD_SETSIZE, "{line}");
            refused.push(peer.parse::<SocketAddr>().expect("peer address"));
        } else {
            panic!("unexpected line {line:?}");
        }
    }
    assert!(served.len() > 1000, "only {} served", served.len());
    assert!(refused.len() >= 8, "only {} refused", refused.len());

    // The refused see their connection closed; every served client echoes.
    for mut client in clients {
        let me = client.local_addr().expect("address");
        if refused.contains(&me) {
            let mut buf = [0u8; 1];
            match client.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("refused client {me}: {other:?}"),
            }
        } else {
            assert!(served.contains(&me), "{me} was never accepted");
            assert_eq!(echo(&mut client, b"in\n"), b"in\n");
        }
    }
    // Every client has gone now; the server serves new ones.
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"after\n"), b"after\n");
    assert!(server.is_running());
}

/// Needs: the_client_on_the_highest_descriptor_is_served
/// Hint: on EMFILE from accept(2), call the given pause (AcceptPause::start, or
/// pause_accept in C) and break; select(2) takes its timeout (README.md, "Answers", observation 5).
fn running_out_of_descriptors_pauses_accepting_without_spinning(twin: Twin) {
    const LIMIT: usize = 16;
    let lab = Select::of(twin);
    let script = format!(
        "ulimit -n {LIMIT} && exec {} 0 --bind 127.0.0.1",
        lab.server
    );
    let mut server = Server::start("/bin/sh", &["-c", &script]);
    // Stdio and the listener take 4 of them: 12 clients fit.
    let taken = open_descriptors(server.pid())
        .into_iter()
        .filter(|&fd| fd < LIMIT as i32)
        .count();
    let room = LIMIT - taken;
    let mut served: Vec<TcpStream> = Vec::new();
    for _ in 0..room {
        let mut client = server.connect();
        assert_eq!(echo(&mut client, b"in\n"), b"in\n");
        served.push(client);
    }
    // The kernel completes these connections; accept(2) fails with EMFILE.
    let mut waiting: Vec<TcpStream> = (0..3).map(|_| server.connect()).collect();
    for client in &mut waiting {
        client.write_all(b"waiting\n").expect("send");
    }
    let error = server.expect_err("Too many open files");
    let want = format!("accept 127.0.0.1:{}: Too many open files", server.port());
    assert!(error.starts_with(&want), "{error}");
    // No readiness signal says "not spinning": watch the CPU for a while,
    // past one retry of accept(2) (after a second).
    let busy = busy_during(server.pid(), Duration::from_millis(1200));
    assert!(
        busy < Duration::from_millis(200),
        "the server ran (or waited to run) {busy:?} of 1.2 s: spinning"
    );
    assert_eq!(echo(&mut served[0], b"served\n"), b"served\n");

    // Each client that leaves frees a descriptor for one that waits.
    for client in &mut waiting {
        drop(served.pop());
        server.expect(" disconnected");
        let mut back = [0u8; 8];
        client
            .read_exact(&mut back)
            .expect("the echo, once accepted");
        assert_eq!(&back, b"waiting\n");
    }
    // Reported once for the whole shortage, not once per attempt.
    let more: Vec<String> = server
        .errors_now()
        .into_iter()
        .filter(|l| l.contains("Too many open files"))
        .collect();
    assert!(more.is_empty(), "reported again: {more:?}");
}

/// Hint: the arguments are given; a port in use must fail at bind(2): `bind ADDR: Address
/// already in use`, exit 1 (README.md, "Build and run").
fn the_server_shares_the_common_interface(twin: Twin) {
    let lab = Select::of(twin);
    check_server_arguments(&lab.server);
}

#[test]
fn rust_and_c_agree_on_arguments() {
    let cases: &[&[&str]] = &[
        &["--help"],
        &["4242", "-h"],
        &["abc"],
        &["70000"],
        &["-1"],
        &["--bogus"],
        &["4242", "4243"],
        &["--bind"],
        &["--bind", "nowhere"],
        &["--bind=1.2.3.4.5"],
        &["--bind", "::1", "--bind", "::1"],
        // Each option is read, and checked, as it is taken: --bind first.
        &["--bind", "nowhere", "abc"],
        // bind(2) to an address this machine does not have: no packet is sent.
        &["0", "--bind", "192.0.2.1"],
        &["0", "--bind", "2001:db8::1"],
    ];
    let (rust, c) = (Select::of(Twin::Rust), Select::of(Twin::C));
    check_twins_agree_on_arguments(&rust.server, &c.server, cases);
}
