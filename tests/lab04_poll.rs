//! Lab 04: the poll() server with thousands of clients, and the client that
//! polls stdin and the socket at once.
//!
//! Every test runs twice, with one body: against the Rust programs
//! (`NAME::rust`) and against their C twins (`NAME::c`, labs/04-poll/server-c
//! and client-c, built by `make c`): the C twins are checked, not assumed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Interactive, PATIENCE, Server, Twin, binary_payload, busy_during, check_no_room_for_a_client,
    check_out_of_descriptors, check_server_arguments, check_twins_agree_on_arguments,
    check_usage_error, descriptors_for, echo, program, reset, resident_kib, run,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Lab 04's two programs, in one implementation or the other.
struct Poll {
    server: String,
    client: String,
}

impl Poll {
    fn of(twin: Twin) -> Poll {
        Poll {
            server: program(twin, "04-poll", "server", env!("CARGO_BIN_EXE_poll-server")),
            client: program(twin, "04-poll", "client", env!("CARGO_BIN_EXE_poll-client")),
        }
    }

    fn start(&self) -> Server {
        Server::start(&self.server, &["0", "--bind", "127.0.0.1"])
    }
}

/// A listener standing in for a server, the client started against it, the
/// accepted connection, and the port.
fn client_and_its_server(lab: &Poll) -> (Interactive, TcpStream, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = Interactive::start(&lab.client, &["127.0.0.1", &port.to_string()]);
    // Bounded: a client that fails to connect must not hang the test.
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(PATIENCE).expect("timeout");
    let ready = poll(&mut fds, timeout).expect("poll the listener");
    assert_eq!(ready, 1, "the client did not connect within {PATIENCE:?}");
    let (conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(PATIENCE)).expect("timeout");
    (client, conn, port)
}

crate::for_rust_and_c!(
    five_thousand_clients_each_get_their_own_echo,
    a_client_that_never_reads_stalls_nobody_and_memory_stays_bounded,
    running_out_of_descriptors_closes_new_connections_without_spinning,
    a_limit_with_no_room_for_a_client_is_said_at_once,
    resets_and_early_leavers_do_not_disturb_the_server,
    a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array,
    the_poll_client_echoes_piped_input_and_binary,
    the_poll_client_prints_what_the_server_sends_while_stdin_is_idle,
    the_poll_client_sleeps_while_the_server_is_slow_after_its_input_ended,
    the_poll_client_reports_a_server_that_closes,
    the_server_shares_the_common_interface,
);

/// Needs: a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array
/// Hint: one pollfd per client in an array that grows (no FD_SETSIZE), and
/// accept4(2) until EAGAIN at each turn (README.md, "The server's loop").
fn five_thousand_clients_each_get_their_own_echo(twin: Twin) {
    const CLIENTS: usize = 5_000;
    let lab = Poll::of(twin);
    // One descriptor per client here; the server raises its own limit.
    if !descriptors_for(twin, CLIENTS as u64 + 100) {
        return;
    }
    let mut server = lab.start();
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

/// Needs: a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array
/// Hint: ask for POLLIN only while less than MAX_PENDING waits for the client,
/// POLLOUT while some does (README.md, "The server's loop"; "Questions" 3).
fn a_client_that_never_reads_stalls_nobody_and_memory_stays_bounded(twin: Twin) {
    let lab = Poll::of(twin);
    let mut server = lab.start();
    let before = resident_kib(server.pid());
    let hog = server.connect();
    hog.set_nonblocking(true).expect("non-blocking");
    // Send without reading until the server stops taking more (it must:
    // the echo has nowhere to go); bounded at 10 MB.
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

    // Another client is served while the hog stays stuck.
    let mut other = server.connect();
    let started = Instant::now();
    assert_eq!(echo(&mut other, b"not waiting\n"), b"not waiting\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    let growth = resident_kib(server.pid()).saturating_sub(before);
    assert!(growth < 4 * 1024, "server grew by {growth} KiB");
    drop(hog);
    server.expect(" disconnected");
}

/// Needs: a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array
/// Hint: on EMFILE, accept4(2) ends as EAGAIN does, after the given spare
/// descriptor's refuse_one (README.md, "The server's loop", "Out of descriptors").
fn running_out_of_descriptors_closes_new_connections_without_spinning(twin: Twin) {
    let lab = Poll::of(twin);
    check_out_of_descriptors(&lab.server);
}

/// Hint: keep the given limit and spare descriptor code before listening
/// (README.md, "What to observe" 5, and its answer).
fn a_limit_with_no_room_for_a_client_is_said_at_once(twin: Twin) {
    // 4: stdio and the listener, no room for the spare; 5: no room for a client.
    check_no_room_for_a_client(&Poll::of(twin).server, &[4, 5]);
}

/// Needs: a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array
/// Hint: a read(2) or write(2) that fails (ECONNRESET, EPIPE) closes that
/// client only, never the server (README.md, "pollfd and revents").
fn resets_and_early_leavers_do_not_disturb_the_server(twin: Twin) {
    let lab = Poll::of(twin);
    let mut server = lab.start();
    let mut rude = server.connect();
    rude.write_all(b"bye\n").expect("write");
    reset(rude);
    let mut quitter = server.connect();
    quitter
        .write_all(&vec![b'q'; 1024 * 1024])
        .expect("write a lot");
    drop(quitter); // leaves with echo still pending
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still here\n"), b"still here\n");
    assert!(server.is_running());
}

/// Hint: when read(2) returns 0 and nothing waits, close(2) the client and
/// take it out of the pollfd array: kept, poll(2) reports it at once, turn
/// after turn (README.md, "Write it yourself" 5 and 6).
fn a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array(twin: Twin) {
    let lab = Poll::of(twin);
    let mut server = lab.start();
    let mut leaver = server.connect();
    assert_eq!(echo(&mut leaver, b"bye\n"), b"bye\n");
    leaver
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    // The server's FIN answers ours at once: it has nothing left to send.
    // Short: a server that keeps the client never sends it.
    leaver
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let mut rest = Vec::new();
    match leaver.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes after the echo: {rest:?}"),
        Err(e) => panic!("no FIN from the server 3 s after the client's: {e}"),
    }
    server.expect(" disconnected");
    drop(leaver);
    // Gone from the array, the client costs nothing: poll(2) sleeps.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "the server ran (or waited to run) {busy:?} of 0.5 s: spinning"
    );
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still here\n"), b"still here\n");
}

/// Needs: a_client_that_leaves_is_closed_and_taken_out_of_the_poll_array
/// Hint: the client polls stdin and the socket at once, writes only what the
/// socket takes, and shutdown(SHUT_WR)s once stdin ended and all is sent
/// (README.md, "The client's two sources").
fn the_poll_client_echoes_piped_input_and_binary(twin: Twin) {
    let lab = Poll::of(twin);
    let server = lab.start();
    let port = server.port().to_string();
    let out = run(&lab.client, &["127.0.0.1", &port], b"a\nb\n\nno newline");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout_text(), "a\nb\n\nno newline");
    // 10 MB through the client: it writes and reads at once, so neither side
    // blocks on a full buffer.
    let payload = binary_payload(10 * 1024 * 1024);
    let out = run(&lab.client, &["127.0.0.1", &port], &payload);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout == payload, "10 MB did not come back intact");
}

/// Needs: the_poll_client_echoes_piped_input_and_binary
/// Hint: poll(2) on stdin and the socket in one call, and print what the
/// socket brings at once (README.md, "The client's two sources").
fn the_poll_client_prints_what_the_server_sends_while_stdin_is_idle(twin: Twin) {
    let lab = Poll::of(twin);
    let (mut client, mut conn, _) = client_and_its_server(&lab);
    // Unprompted: the client has sent nothing, its stdin stays open and idle.
    conn.write_all(b"hello from the server\n").expect("write");
    assert_eq!(client.line(), "hello from the server");
    conn.write_all(b"and again\n").expect("write");
    assert_eq!(client.line(), "and again");

    // End of stdin: the client half-closes, the server still talks, then closes.
    let closer = thread::spawn(move || {
        let mut rest = Vec::new();
        conn.read_to_end(&mut rest).expect("read to EOF");
        conn.write_all(b"goodbye\n")
            .expect("write after the client's FIN");
        rest
    });
    let (code, stderr, rest) = client.finish(true);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(rest, ["goodbye"]);
    assert!(closer.join().expect("server thread").is_empty());
}

/// Needs: the_poll_client_echoes_piped_input_and_binary
/// Hint: at the end of stdin, leave it out of the array given to poll(2):
/// a pipe at its end reports POLLHUP for ever (README.md, "The client's two sources").
fn the_poll_client_sleeps_while_the_server_is_slow_after_its_input_ended(twin: Twin) {
    let lab = Poll::of(twin);
    let (mut client, mut conn, _) = client_and_its_server(&lab);
    client.type_line("hello");
    client.close_stdin();
    // The line, then the client's FIN: its stdin has ended and all is sent.
    let mut got = Vec::new();
    conn.read_to_end(&mut got)
        .expect("read to the client's FIN");
    assert_eq!(got, b"hello\n");
    // The server takes its time to answer. Meanwhile the client's stdin, a
    // pipe whose writer has gone, reports POLLHUP to every poll(2) that
    // watches it, asked for or not: a client that still watched it would
    // spin. Nothing signals "not spinning": watch the CPU for a while.
    let busy = busy_during(client.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "the client ran (or waited to run) {busy:?} of 0.5 s: spinning"
    );
    conn.write_all(b"late answer\n").expect("write");
    drop(conn);
    let (code, stderr, rest) = client.finish(false);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert_eq!(rest, ["late answer"]);
}

/// Needs: the_poll_client_echoes_piped_input_and_binary
/// Hint: read(2) of 0 on the socket before our shutdown(2) means the server
/// closed first: say so and exit 1 (README.md, "The client's two sources").
fn the_poll_client_reports_a_server_that_closes(twin: Twin) {
    let lab = Poll::of(twin);
    let (client, conn, port) = client_and_its_server(&lab);
    drop(conn);
    // stdin stays open: the client notices at once, without a keystroke.
    let (code, stderr, _) = client.finish(false);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!("server 127.0.0.1:{port} closed the connection\n")
    );
}

/// Hint: keep the given argument parsing and usage text (README.md, "Build and run").
fn the_server_shares_the_common_interface(twin: Twin) {
    let lab = Poll::of(twin);
    check_server_arguments(&lab.server);
    let out = run(&lab.client, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    check_usage_error(&lab.client, &["127.0.0.1", "port"], "invalid PORT 'port'");
}

#[test]
fn rust_and_c_agree_on_arguments() {
    let (rust, c) = (Poll::of(Twin::Rust), Poll::of(Twin::C));
    let server_cases: &[&[&str]] = &[
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
        // bind(2) to an address this machine does not have: no packet is
        // sent. The descriptor limit is raised before, and printed after.
        &["0", "--bind", "192.0.2.1"],
        &["0", "--bind", "2001:db8::1"],
    ];
    check_twins_agree_on_arguments(&rust.server, &c.server, server_cases);
    let client_cases: &[&[&str]] = &[
        &["--help"],
        &["--bogus", "-h"],
        &["-x"],
        &["127.0.0.1", "port"],
        &["127.0.0.1", "99999"],
        &["127.0.0.1", "-5"],
        &["127.0.0.1", ""],
        &["127.0.0.1", "4242", "extra"],
        &["127.0.0.1", "4242", "--extra"],
        // Port 0: nobody listens there, connect(2) is refused at once.
        &["127.0.0.1", "0"],
        &["::1", "+0"],
    ];
    check_twins_agree_on_arguments(&rust.client, &c.client, client_cases);
}
