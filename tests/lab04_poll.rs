//! Lab 04: the poll() server with thousands of clients, and the client that
//! polls stdin and the socket at once.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::{
    Interactive, Server, allow_descriptors, binary_payload, check_server_arguments,
    check_usage_error, cpu_ticks, echo, reset, resident_kib, run,
};

const SERVER: &str = env!("CARGO_BIN_EXE_poll-server");
const CLIENT: &str = env!("CARGO_BIN_EXE_poll-client");

fn start() -> Server {
    Server::start(SERVER, &["0", "--bind", "127.0.0.1"])
}

#[test]
fn five_thousand_clients_each_get_their_own_echo() {
    const CLIENTS: usize = 5_000;
    // One descriptor per client here; the server raises its own limit.
    if !allow_descriptors(CLIENTS as u64 + 100) {
        eprintln!("skipped: the hard RLIMIT_NOFILE is below {}", CLIENTS + 100);
        return;
    }
    let mut server = start();
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

#[test]
fn a_client_that_never_reads_stalls_nobody_and_memory_stays_bounded() {
    let mut server = start();
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

#[test]
fn running_out_of_descriptors_closes_new_connections_without_spinning() {
    // The server raises its soft limit to the hard one: set both low.
    let script = format!("ulimit -n 32 && exec {SERVER} 0 --bind 127.0.0.1");
    let mut server = Server::start("/bin/sh", &["-c", &script]);
    server.expect("descriptor limit 32");
    let mut served = Vec::new();
    let mut refused = 0;
    for i in 0..40 {
        let mut client = server.connect();
        client.write_all(b"x\n").expect("write");
        let mut got = [0u8; 2];
        match client.read(&mut got) {
            Ok(2) => served.push(client),
            Ok(0) => refused += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => refused += 1,
            other => panic!("client {i}: {other:?}"),
        }
    }
    assert!(served.len() >= 20, "only {} served", served.len());
    assert!(refused >= 5, "only {refused} refused");
    server.expect_err("Too many open files");
    // The server is not spinning on the full backlog: it sleeps in poll(2).
    let before = cpu_ticks(server.pid());
    thread::sleep(Duration::from_millis(500));
    assert!(
        cpu_ticks(server.pid()) - before < 20,
        "the server is spinning"
    );
    // When a client leaves, a new one is served again.
    drop(served.pop());
    server.expect(" disconnected");
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"room again\n"), b"room again\n");
}

#[test]
fn resets_and_early_leavers_do_not_disturb_the_server() {
    let mut server = start();
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

#[test]
fn the_poll_client_echoes_piped_input_and_binary() {
    let server = start();
    let port = server.port().to_string();
    let out = run(CLIENT, &["127.0.0.1", &port], b"a\nb\n\nno newline");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout_text(), "a\nb\n\nno newline");
    // 10 MB through the client: it writes and reads at once, so neither side
    // blocks on a full buffer.
    let payload = binary_payload(10 * 1024 * 1024);
    let out = run(CLIENT, &["127.0.0.1", &port], &payload);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout == payload, "10 MB did not come back intact");
}

#[test]
fn the_poll_client_prints_what_the_server_sends_while_stdin_is_idle() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut client = Interactive::start(CLIENT, &["127.0.0.1", &port.to_string()]);
    let (mut conn, _) = listener.accept().expect("accept");
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

#[test]
fn the_poll_client_reports_a_server_that_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let client = Interactive::start(CLIENT, &["127.0.0.1", &port.to_string()]);
    let (conn, _) = listener.accept().expect("accept");
    drop(conn);
    // stdin stays open: the client notices at once, without a keystroke.
    let (code, stderr, _) = client.finish(false);
    assert_eq!(code, Some(1));
    assert_eq!(
        stderr,
        format!("server 127.0.0.1:{port} closed the connection\n")
    );
}

#[test]
fn the_server_shares_the_common_interface() {
    check_server_arguments(SERVER);
    let out = run(CLIENT, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    check_usage_error(CLIENT, &["127.0.0.1", "port"], "invalid PORT 'port'");
}
