//! Lab 01: the iterative echo server and its client, driven over real sockets.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::os::fd::AsRawFd;
use std::thread;
use std::time::Duration;

use common::{
    PATIENCE, Server, binary_payload, check_server_arguments, check_usage_error, echo, reset, run,
};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, getsockname, socket};

const SERVER: &str = env!("CARGO_BIN_EXE_echo-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_echo-client");

fn start() -> Server {
    Server::start(SERVER, &["0", "--bind", "127.0.0.1"])
}

#[test]
fn the_client_echoes_piped_lines() {
    let mut server = start();
    let port = server.port().to_string();
    let out = run(
        CLIENT,
        &["127.0.0.1", &port],
        b"a\nb\n\nno newline at the end",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout_text(), "a\nb\n\nno newline at the end");
    server.expect("connection from 127.0.0.1:");
    server.expect(" disconnected");
}

#[test]
fn the_client_passes_long_lines_through_in_pieces() {
    let server = start();
    let port = server.port().to_string();
    let mut input = vec![b'x'; 300_000];
    input.push(b'\n');
    input.extend_from_slice(b"short\n");
    let out = run(CLIENT, &["127.0.0.1", &port], &input);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, input);
}

#[test]
fn the_client_resolves_localhost_and_speaks_ipv6() {
    let server = start();
    let out = run(
        CLIENT,
        &["localhost", &server.port().to_string()],
        b"by name\n",
    );
    assert_eq!(out.stdout_text(), "by name\n", "stderr: {}", out.stderr);

    let server6 = Server::start(SERVER, &["0", "--bind", "::1"]);
    assert_eq!(
        server6.addr.to_string(),
        format!("[::1]:{}", server6.port())
    );
    let out = run(
        CLIENT,
        &["::1", &server6.port().to_string()],
        b"over ipv6\n",
    );
    assert_eq!(out.stdout_text(), "over ipv6\n", "stderr: {}", out.stderr);
}

#[test]
fn ten_megabytes_of_binary_come_back_byte_for_byte() {
    let server = start();
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

#[test]
fn a_second_client_waits_in_the_backlog_until_the_first_leaves() {
    let mut server = start();
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

#[test]
fn the_server_survives_a_reset_and_serves_the_next_client() {
    let mut server = start();
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

#[test]
fn the_server_survives_a_client_that_closes_without_reading() {
    let mut server = start();
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

#[test]
fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
    let mut server = Server::start(
        SERVER,
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
    server.expect_err(&format!("write {hog_addr}: client stopped reading"));
    let mut back = [0u8; 8];
    next.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"my turn\n");
    assert!(hogger.join().unwrap(), "the hog was never disconnected");
}

#[test]
fn the_client_reports_a_server_that_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let closer = thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
    });
    let out = run(CLIENT, &["127.0.0.1", &port], b"anyone there?\n");
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

#[test]
fn the_server_shares_the_common_interface() {
    check_server_arguments(SERVER);
    check_usage_error(SERVER, &["--write-timeout", "soon"], "invalid SECS 'soon'");
}

#[test]
fn the_client_checks_its_arguments() {
    let out = run(CLIENT, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    assert!(out.stderr.is_empty());
    check_usage_error(CLIENT, &["127.0.0.1", "port"], "invalid PORT 'port'");
    check_usage_error(CLIENT, &["127.0.0.1", "99999"], "invalid PORT '99999'");
    check_usage_error(
        CLIENT,
        &["127.0.0.1", "4242", "extra"],
        "unexpected argument 'extra'",
    );
}

#[test]
fn connection_refused_is_reported_and_exits_1() {
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
    let out = run(CLIENT, &["127.0.0.1", &port], b"hello\n");
    assert_eq!(out.code(), Some(1));
    assert_eq!(
        out.stderr,
        format!("connect 127.0.0.1:{port}: Connection refused\n")
    );
}
