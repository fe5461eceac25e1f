//! Lab 05: the epoll server, with ten thousand clients and with workers.

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{
    Server, allow_descriptors, check_server_arguments, check_usage_error, echo, reset, resident_kib,
};

const SERVER: &str = env!("CARGO_BIN_EXE_epoll-server");

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["0", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start(SERVER, &args)
}

#[test]
fn ten_thousand_clients_each_get_their_own_echo() {
    const CLIENTS: usize = 10_000;
    if !allow_descriptors(CLIENTS as u64 + 100) {
        eprintln!("skipped: the hard RLIMIT_NOFILE is below {}", CLIENTS + 100);
        return;
    }
    let mut server = start(&[]);
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
    let mut server = start(&[]);
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

#[test]
fn resets_and_early_leavers_do_not_disturb_the_server() {
    let mut server = start(&[]);
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

#[test]
fn two_workers_share_the_port_and_both_serve() {
    let mut server = start(&["--workers", "2"]);
    server.expect("worker 0 (pid ");
    server.expect("worker 1 (pid ");
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

#[test]
fn the_server_shares_the_common_interface() {
    check_server_arguments(SERVER);
    check_usage_error(SERVER, &["--workers", "0"], "--workers must be at least 1");
    check_usage_error(SERVER, &["--workers", "many"], "invalid N 'many'");
}
