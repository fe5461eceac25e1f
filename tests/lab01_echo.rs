//! Lab 01: the iterative echo server and its client, driven over real sockets.
//!
//! Every test runs twice, with one body: against the Rust programs
//! (`NAME::rust`) and against their C twins (`NAME::c`, labs/01-echo/server-c
//! and client-c, built by `make c`): the C twins are checked, not assumed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    PATIENCE, Server, Twin, binary_payload, check_server_arguments, check_twins_agree_on_arguments,
    check_usage_error, echo, program, read_calls, reset, run,
};
use nix::sys::signal::{Signal, kill};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// Lab 01's two programs, in one implementation or the other.
struct Echo {
    server: String,
    client: String,
}

impl Echo {
    fn of(twin: Twin) -> Echo {
        Echo {
            server: program(twin, "01-echo", "server", env!("CARGO_BIN_EXE_echo-server")),
            client: program(twin, "01-echo", "client", env!("CARGO_BIN_EXE_echo-client")),
        }
    }

    fn start(&self) -> Server {
        Server::start(&self.server, &["0", "--bind", "127.0.0.1"])
    }
}

crate::for_rust_and_c!(
    the_client_echoes_piped_lines,
    the_client_passes_long_lines_through_in_pieces,
    the_client_resolves_localhost_and_speaks_ipv6,
    ten_megabytes_of_binary_come_back_byte_for_byte,
    a_second_client_waits_in_the_backlog_until_the_first_leaves,
    the_server_closes_the_connection_when_the_client_is_done,
    the_server_survives_a_reset_and_serves_the_next_client,
    the_server_survives_a_client_that_closes_without_reading,
    a_client_that_never_reads_is_dropped_after_the_write_timeout,
    the_write_timeout_is_a_deadline_for_the_echo_not_per_write_call,
    a_write_cut_short_by_a_signal_goes_on_with_the_time_left,
    the_client_reports_a_server_that_closes,
    the_server_shares_the_common_interface,
    the_client_checks_its_arguments,
    connection_refused_is_reported_and_exits_1,
);

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: the server echoes each read(2) with a write-all loop and closes the
/// connection after read(2) returns 0; the client sends stdin, then
/// shutdown(SHUT_WR), then reads until EOF (README.md, "The calls").
fn the_client_echoes_piped_lines(twin: Twin) {
    let lab = Echo::of(twin);
    let mut server = lab.start();
    let port = server.port().to_string();
    let out = run(
        &lab.client,
        &["127.0.0.1", &port],
        b"a\nb\n\nno newline at the end",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout_text(), "a\nb\n\nno newline at the end");
    server.expect("connection from 127.0.0.1:");
    server.expect(" disconnected");
}

/// Needs: the_client_echoes_piped_lines
/// Hint: a line may arrive in several read(2)s and a write(2) may take only part
/// of a buffer: loop (README.md, "Questions" 3).
fn the_client_passes_long_lines_through_in_pieces(twin: Twin) {
    let lab = Echo::of(twin);
    let server = lab.start();
    let port = server.port().to_string();
    let mut input = vec![b'x'; 300_000];
    input.push(b'\n');
    input.extend_from_slice(b"short\n");
    let out = run(&lab.client, &["127.0.0.1", &port], &input);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, input);
}

/// Needs: the_client_echoes_piped_lines
/// Hint: resolve HOST with getaddrinfo(3) and try each address it gives;
/// a server bound to ::1 needs an AF_INET6 socket (README.md, "Build and run").
fn the_client_resolves_localhost_and_speaks_ipv6(twin: Twin) {
    let lab = Echo::of(twin);
    let server = lab.start();
    let out = run(
        &lab.client,
        &["localhost", &server.port().to_string()],
        b"by name\n",
    );
    assert_eq!(out.stdout_text(), "by name\n", "stderr: {}", out.stderr);

    let server6 = Server::start(&lab.server, &["0", "--bind", "::1"]);
    assert_eq!(
        server6.addr.to_string(),
        format!("[::1]:{}", server6.port())
    );
    let out = run(
        &lab.client,
        &["::1", &server6.port().to_string()],
        b"over ipv6\n",
    );
    assert_eq!(out.stdout_text(), "over ipv6\n", "stderr: {}", out.stderr);
}

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: echo exactly the bytes read(2) returned (n, not the buffer's size),
/// and write them all: write(2) may take only part (README.md, "The calls").
fn ten_megabytes_of_binary_come_back_byte_for_byte(twin: Twin) {
    let lab = Echo::of(twin);
    let server = lab.start();
    let mut stream = server.connect();
    let payload = binary_payload(10 * 1024 * 1024);
    // Write and read at once: the server echoes as it reads, so a writer
    // that read nothing until the end would fill every buffer and stall.
    let mut writer = stream.try_clone().unwrap();
    let sent = payload.clone();
    let sender = thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::with_capacity(payload.len());
    stream.read_to_end(&mut back).unwrap(); // ends when the server closes after our FIN
    sender.join().unwrap();
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "the echo differs from what was sent");
}

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: accept(2) the next client only after the first has left; listen(2)
/// with a backlog (README.md, "What to observe" 1 and 2).
fn a_second_client_waits_in_the_backlog_until_the_first_leaves(twin: Twin) {
    let lab = Echo::of(twin);
    let mut server = lab.start();
    let mut first = server.connect();
    assert_eq!(echo(&mut first, b"first\n"), b"first\n");
    server.expect(&format!("connection from {}", first.local_addr().unwrap()));

    // connect(2) succeeds: the kernel completes the handshake and queues the
    // connection, but the server is busy with the first client.
    let mut second = server.connect();
    let second_addr = second.local_addr().unwrap();
    second.write_all(b"second\n").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 16];
    let err = second
        .read(&mut buf)
        .expect_err("the second client must not be served yet");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    assert!(
        !server
            .log_now()
            .iter()
            .any(|l| l.contains(&second_addr.to_string())),
        "the second client was accepted while the first was served"
    );

    // The first leaves; now the second is accepted and gets its echo.
    assert_eq!(echo(&mut first, b"still me\n"), b"still me\n");
    drop(first);
    server.expect(" disconnected");
    server.expect(&format!("connection from {second_addr}"));
    second.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut back = [0u8; 7];
    second.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"second\n");
}

/// Hint: after read(2) returns 0, close(2) the connected socket: until then
/// the client, which has shut down its side, waits for the server's FIN
/// (README.md, "The calls").
fn the_server_closes_the_connection_when_the_client_is_done(twin: Twin) {
    let lab = Echo::of(twin);
    let server = lab.start();
    let mut client = server.connect();
    assert_eq!(echo(&mut client, b"bye\n"), b"bye\n");
    client.shutdown(Shutdown::Write).unwrap();
    // Short: a server that closes does it at once.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut rest = Vec::new();
    match client.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes after the echo: {rest:?}"),
        Err(e) => panic!("no FIN from the server 5 s after the client shut down its side: {e}"),
    }
}

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: read(2) failing with ECONNRESET ends that client only: close it and
/// accept(2) the next (README.md, "Questions" 2).
fn the_server_survives_a_reset_and_serves_the_next_client(twin: Twin) {
    let lab = Echo::of(twin);
    let mut server = lab.start();
    let mut first = server.connect();
    let first_addr = first.local_addr().unwrap();
    assert_eq!(echo(&mut first, b"hello\n"), b"hello\n");
    reset(first);
    server.expect_err(&format!("read {first_addr}: Connection reset by peer"));
    server.expect(&format!("{first_addr} disconnected"));

    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"next\n"), b"next\n");
    assert!(server.is_running());
}

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: ignore SIGPIPE (Rust does), so that write(2) to a closed peer fails
/// with EPIPE instead of killing the server (signal(7)).
fn the_server_survives_a_client_that_closes_without_reading(twin: Twin) {
    let lab = Echo::of(twin);
    let mut server = lab.start();
    {
        let mut rude = server.connect();
        // Enough that the echo cannot all fit in the socket buffers, then
        // close with the echo unread: the server's write(2) meets a reset
        // (EPIPE or ECONNRESET), not a SIGPIPE that would kill it.
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            if rude.write_all(&chunk).is_err() {
                break;
            }
        }
    }
    server.expect(" disconnected");
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"still alive\n"), b"still alive\n");
}

/// Needs: the_server_closes_the_connection_when_the_client_is_done
/// Hint: set SO_SNDTIMEO on the connected socket; a write that fails with
/// EAGAIN drops the client (README.md, "Answers", observation 6).
fn a_client_that_never_reads_is_dropped_after_the_write_timeout(twin: Twin) {
    let lab = Echo::of(twin);
    let mut server = Server::start(
        &lab.server,
        &["0", "--bind", "127.0.0.1", "--write-timeout", "1"],
    );
    let mut hog = server.connect();
    let hog_addr = hog.local_addr().unwrap();
    // Sends without reading until the server drops it (bounded: 256 MB).
    let hogger = thread::spawn(move || {
        let chunk = vec![b'h'; 256 * 1024];
        for _ in 0..1024 {
            if hog.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    server.expect(&format!("connection from {hog_addr}"));
    let mut next = server.connect();
    next.write_all(b"my turn\n").unwrap();
    server.expect_err(&format!(
        "write {hog_addr}: client did not read its echo within 1 s, dropping it"
    ));
    let mut back = [0u8; 8];
    next.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"my turn\n");
    assert!(hogger.join().unwrap(), "the hog was never disconnected");
}

/// Needs: a_client_that_never_reads_is_dropped_after_the_write_timeout
/// Hint: SO_SNDTIMEO bounds one write(2): keep a deadline across the
/// write-all loop (README.md, "Answers", observation 6).
fn the_write_timeout_is_a_deadline_for_the_echo_not_per_write_call(twin: Twin) {
    // SO_SNDTIMEO bounds one write(2): a write that times out part done and
    // is called again for the rest waits a whole timeout more. The old loop
    // did that: it dropped this hog twice the timeout after the server
    // stopped reading (in about one run of twenty, once the timeout: when
    // the stalled echo's first write(2) could send nothing at all).
    a_hog_is_dropped_at_the_deadline(twin, None);
}

/// Needs: a_client_that_never_reads_is_dropped_after_the_write_timeout
/// Hint: a write(2) cut short by a signal goes on with the time left, not a
/// fresh timeout (README.md, "Answers", observation 6).
fn a_write_cut_short_by_a_signal_goes_on_with_the_time_left(twin: Twin) {
    // Ctrl-Z then fg, mid-write: with a send timeout set, a stop signal
    // makes the blocked write(2) return at once, part done or EINTR
    // (signal(7)). Called again with a fresh SO_SNDTIMEO, as the old loop
    // did, it waits a whole timeout more; with the time left, it ends at the
    // deadline.
    a_hog_is_dropped_at_the_deadline(twin, Some(Duration::from_millis(1500)));
}

/// Starts a server with `--write-timeout 2` and a client that sends without
/// ever reading, and checks that the server drops that client 2 s after its
/// last read(2): not less than 1.6 s, nor 3 s or more. With `stop_after`,
/// the server is stopped (SIGSTOP) and continued (SIGCONT) once it has read
/// nothing for that long.
fn a_hog_is_dropped_at_the_deadline(twin: Twin, stop_after: Option<Duration>) {
    let timeout = Duration::from_secs(2);
    let lab = Echo::of(twin);
    let mut server = Server::start(
        &lab.server,
        &["0", "--bind", "127.0.0.1", "--write-timeout", "2"],
    );
    let mut hog = server.connect();
    let hog_addr = hog.local_addr().unwrap();
    // Sends without reading until the server drops it (bounded: 256 MB).
    let hogger = thread::spawn(move || {
        let chunk = vec![b'h'; 16 * 1024];
        for _ in 0..16 * 1024 {
            if hog.write_all(&chunk).is_err() {
                return true;
            }
        }
        false
    });
    server.expect(&format!("connection from {hog_addr}"));

    // When the server last read: right after that read(2) it began the echo
    // it could not deliver, and its deadline runs from there. The kernel
    // counts a process's read calls (/proc/PID/io); nothing signals that a
    // count stopped growing, so it is sampled every 5 ms until the drop.
    // (The hog's last completed write is no such mark: the server goes on
    // reading, its echoes trickling out through zero-window probes, for
    // from 0 to several seconds before its window reopens for the hog.)
    let pid = server.pid();
    let dropped = Arc::new(AtomicBool::new(false));
    let watching = Arc::clone(&dropped);
    let watcher = thread::spawn(move || {
        let mut last = (read_calls(pid), Instant::now());
        let mut stop_after = stop_after;
        let give_up = Instant::now() + PATIENCE;
        while !watching.load(Ordering::Relaxed) && Instant::now() < give_up {
            thread::sleep(Duration::from_millis(5));
            let calls = read_calls(pid);
            if calls != last.0 {
                last = (calls, Instant::now());
            } else if stop_after.is_some_and(|after| last.1.elapsed() >= after) {
                stop_after = None;
                let server = Pid::from_raw(pid);
                kill(server, Signal::SIGSTOP).unwrap();
                // Returns once the server has stopped (it is our child).
                let status = waitpid(server, Some(WaitPidFlag::WUNTRACED)).unwrap();
                assert!(matches!(status, WaitStatus::Stopped(..)), "{status:?}");
                kill(server, Signal::SIGCONT).unwrap();
            }
        }
        last.1
    });
    let line = server.expect_err(&format!("write {hog_addr}: "));
    let drop_seen = Instant::now();
    dropped.store(true, Ordering::Relaxed);
    let last_read = watcher.join().unwrap();
    assert!(hogger.join().unwrap(), "the hog was never disconnected");
    let stalled = drop_seen.saturating_duration_since(last_read);
    let stopped = match stop_after {
        Some(after) => format!(" (stopped and continued {after:?} after it)"),
        None => String::new(),
    };
    assert!(
        stalled >= timeout.mul_f64(0.8) && stalled < timeout.mul_f64(1.5),
        "dropped {stalled:?} after the server's last read{stopped}, with --write-timeout 2"
    );
    assert!(
        line.ends_with(": client did not read its echo within 2 s, dropping it"),
        "{line}"
    );
}

/// Hint: read(2) returning 0 before the echo came back means the server
/// closed: say so on stderr and exit 1.
fn the_client_reports_a_server_that_closes(twin: Twin) {
    let lab = Echo::of(twin);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let closer = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let out = run(&lab.client, &["127.0.0.1", &port], b"anyone there?\n");
    // A client that never connected (a starter's) leaves the accept waiting:
    // connect once to end it, bounded; refused if the client was accepted.
    let _ = std::net::TcpStream::connect(format!("127.0.0.1:{port}"));
    closer.join().unwrap();
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}"))
            && (out.stderr.contains("closed the connection")
                || out.stderr.contains("reset by peer")),
        "stderr: {}",
        out.stderr
    );
}

/// Hint: PORT, --bind ADDR and --help as in CONVENTIONS; bad arguments exit 2
/// with the usage; a port in use is `bind ADDR: Address already in use`, exit 1.
fn the_server_shares_the_common_interface(twin: Twin) {
    let lab = Echo::of(twin);
    check_server_arguments(&lab.server);
    check_usage_error(
        &lab.server,
        &["--write-timeout", "soon"],
        "invalid SECS 'soon'",
    );
    // 0 would be no send timeout at all (socket(7)): refused, not ignored.
    check_usage_error(
        &lab.server,
        &["--write-timeout", "0"],
        "invalid SECS '0': from 1 to 86400 seconds\n",
    );
}

/// Hint: [HOST] [PORT] and --help; bad arguments exit 2 with the usage.
fn the_client_checks_its_arguments(twin: Twin) {
    let lab = Echo::of(twin);
    let out = run(&lab.client, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    assert!(out.stderr.is_empty());
    check_usage_error(&lab.client, &["127.0.0.1", "port"], "invalid PORT 'port'");
    check_usage_error(&lab.client, &["127.0.0.1", "99999"], "invalid PORT '99999'");
    check_usage_error(
        &lab.client,
        &["127.0.0.1", "4242", "extra"],
        "unexpected argument 'extra'",
    );
}

/// Hint: connect(2) failing with ECONNREFUSED: `connect ADDR: Connection
/// refused`, exit 1.
fn connection_refused_is_reported_and_exits_1(twin: Twin) {
    let lab = Echo::of(twin);
    // A socket bound but not listening holds a port nobody accepts on.
    let holder = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    bind(holder.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    let port = getsockname::<SockaddrIn>(holder.as_raw_fd())
        .unwrap()
        .port()
        .to_string();
    let out = run(&lab.client, &["127.0.0.1", &port], b"hello\n");
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        format!("connect 127.0.0.1:{port}: Connection refused\n")
    );
}

#[test]
fn rust_and_c_agree_on_arguments() {
    let (rust, c) = (Echo::of(Twin::Rust), Echo::of(Twin::C));
    let server_cases: &[&[&str]] = &[
        &["--help"],
        &["4242", "-h"],
        &["abc"],
        &["70000"],
        &[""],
        &["-"],
        &["-1"],
        &["--bogus"],
        &["4242", "4243"],
        &["4242", "-"],
        &["--bind"],
        &["--bind", "nowhere"],
        &["--bind=1.2.3.4.5"],
        &["--bind", "::1", "--bind", "::1"],
        // Each option is read, and checked, as it is taken: --bind first.
        &["--bind", "nowhere", "abc"],
        &["--write-timeout", "soon", "--bind", "nowhere"],
        &["--write-timeout", "soon"],
        &["--write-timeout", ""],
        &["--write-timeout", "+"],
        &["--write-timeout", "-5"],
        &["--write-timeout=4294967296"],
        &["--write-timeout", "0"],
        &["--write-timeout", "+0"],
        &["--write-timeout=86401"],
        &["--write-timeout", "0", "--bind", "nowhere"],
        &["--write-timeout", "0", "abc"],
        &["--write-timeout"],
        // bind(2) to an address this machine does not have: no packet is sent.
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
        &["::1", "0"],
    ];
    check_twins_agree_on_arguments(&rust.client, &c.client, client_cases);
}
