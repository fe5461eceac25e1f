//! Lab 08: files sent directly between two chat clients (DCC SEND), driven
//! through the clients' stdin against lab 07's chat server. Where a test
//! needs a peer that misbehaves, the test itself is that peer: a raw IRC
//! connection (common::Irc) and a socket of its own.
//!
//! Every test runs twice, with one body: with the Rust client
//! (`NAME::rust`) and with its C twin (`NAME::c`, labs/08-transfer/client-c,
//! built by `make c`), both against lab 07's Rust chat server.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    Interactive, Irc, PATIENCE, Server, TempDir, Twin, check_twins_agree_on_arguments,
    check_usage_error, peak_resident_kib, program, run, stand_in,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};

/// Lab 08's client in one implementation or the other.
fn client_program(twin: Twin) -> String {
    program(
        twin,
        "08-transfer",
        "client",
        env!("CARGO_BIN_EXE_transfer-client"),
    )
}

crate::for_rust_and_c!(
    fifty_megabytes_arrive_intact_with_bounded_memory,
    a_refused_offer_is_withdrawn,
    an_offer_nobody_takes_times_out,
    hostile_offers_never_write_outside_the_download_directory,
    an_existing_file_is_never_overwritten,
    a_sender_that_stops_early_leaves_no_file_and_one_that_sends_more_is_cut_off,
    only_the_offered_peer_may_connect_and_piped_input_waits_for_the_transfer,
    the_client_checks_its_arguments,
);

/// Lab 07's chat server, the go-between (the C twin in a Rust hand-out,
/// where lab 07's Rust server may be a starter).
fn start() -> Server {
    let server = stand_in("07-chat", "server", env!("CARGO_BIN_EXE_chat-server"));
    // Without flood control: the tests send lines faster than one every 2 s.
    Server::start(
        &server,
        &["0", "--bind", "127.0.0.1", "--flood-penalty", "0"],
    )
}

/// Our client (`twin`'s) as `nick`, receiving into `downloads`, registered.
fn client(
    twin: Twin,
    server: &Server,
    nick: &str,
    downloads: &Path,
    extra: &[&str],
) -> Interactive {
    let port = server.port().to_string();
    let downloads = downloads.to_string_lossy();
    let mut args = vec![
        "127.0.0.1",
        &port,
        "--nick",
        nick,
        "--downloads",
        &downloads,
    ];
    args.extend_from_slice(extra);
    let mut user = Interactive::start(&client_program(twin), &args);
    user.expect("Welcome to the socket-labs Network");
    user
}

/// `len` random-looking bytes (xorshift64*), fast to make in a debug build.
fn random_bytes(len: usize, mut seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len.next_multiple_of(8)];
    for chunk in data.chunks_exact_mut(8) {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        chunk.copy_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    data.truncate(len);
    data
}

/// The names in `dir`, sorted (none if it does not exist).
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Whether a connection waits on `listener` within `wait` (poll(2), no sleep).
fn connection_within(listener: &TcpListener, wait: Duration) -> bool {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(wait.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    poll(&mut fds, timeout).expect("poll") > 0
}

/// The address and port in the DCC SEND offer carried by `line`.
fn offered_address(line: &str) -> SocketAddr {
    let body = line
        .split("\u{1}DCC SEND ")
        .nth(1)
        .unwrap_or_else(|| panic!("no offer in {line:?}"))
        .trim_end_matches('\u{1}');
    let fields: Vec<&str> = body.rsplitn(4, ' ').collect();
    let ip = Ipv4Addr::from(fields[2].parse::<u32>().expect("ip field"));
    SocketAddr::from((ip, fields[1].parse::<u16>().expect("port field")))
}

/// A stand-in sender, mallory: on the chat as raw IRC, listening on a port
/// of its own for the receiver to connect to.
struct FakeSender {
    irc: Irc,
    listener: TcpListener,
}

impl FakeSender {
    fn new(server: &Server) -> FakeSender {
        let (irc, _) = Irc::register(server, "mallory");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        FakeSender { irc, listener }
    }

    /// Sends `\x01DCC SEND <name> 127.0.0.1 <our port> <size>\x01` to `to`.
    fn offer(&mut self, to: &str, name: &str, size: &str) {
        let port = self.listener.local_addr().expect("address").port();
        self.irc.send(&format!(
            "PRIVMSG {to} :\u{1}DCC SEND {name} 2130706433 {port} {size}\u{1}"
        ));
    }

    /// The receiver's connection (bounded wait).
    fn accept(&self) -> TcpStream {
        assert!(
            connection_within(&self.listener, PATIENCE),
            "nobody connected"
        );
        let (stream, _) = self.listener.accept().expect("accept");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        stream
    }
}

/// Reads 4-byte acknowledgements until one says `total` (bounded by the
/// stream's read timeout).
fn read_acks_until(stream: &mut TcpStream, total: u32) {
    let mut ack = [0u8; 4];
    loop {
        stream.read_exact(&mut ack).expect("an acknowledgement");
        let value = u32::from_be_bytes(ack);
        assert!(value <= total, "acknowledged {value} of {total}");
        if value == total {
            return;
        }
    }
}

/// Hint: the sender reads the file a chunk at a time and writes what the socket takes; the receiver
/// appends each read(2) to the part file and acknowledges with 4 bytes, big-endian (README.md,
/// "The transfer (connection ③)").
fn fifty_megabytes_arrive_intact_with_bounded_memory(twin: Twin) {
    const SIZE: usize = 50 * 1024 * 1024;
    let server = start();
    let tmp = TempDir::new("lab08-big");
    let data = random_bytes(SIZE, 0x9e37_79b9_7f4a_7c15);
    let path = tmp.join("big.bin");
    std::fs::write(&path, &data).expect("write the file to send");
    let downloads = tmp.join("downloads");

    let mut alice = client(twin, &server, "alice", &tmp.join("alice-dl"), &[]);
    let mut bob = client(twin, &server, "bob", &downloads, &[]);
    let started = Instant::now();
    alice.type_line(&format!("/send bob {}", path.display()));
    alice.expect("offering big.bin (52.4 MB) to bob at 127.0.0.1: listening on 127.0.0.1:");
    bob.expect("-!- alice offers big.bin (52.4 MB): /accept alice or /refuse alice");
    bob.type_line("/accept alice");
    bob.expect("connected to alice: receiving big.bin");
    let received = bob.expect("received big.bin from alice: 52.4 MB (52428800 bytes) in ");
    let sent = alice.expect("sent big.bin to bob: 52.4 MB (52428800 bytes) in ");
    let elapsed = started.elapsed();
    // Both sides report the throughput.
    assert!(received.ends_with(&format!("saved as {}", downloads.join("big.bin").display())));
    assert!(
        received.contains("B/s") && sent.contains("B/s"),
        "{received}\n{sent}"
    );
    // Not on a terminal: plain progress lines at each quarter.
    assert!(
        bob.seen
            .iter()
            .any(|l| l.contains("big.bin from alice: ") && l.contains("(50%)"))
    );

    // Bounded memory: a 50 MB file through 64 KiB chunks. The peak resident
    // size of each client stays far below the file's size.
    let (alice_peak, bob_peak) = (peak_resident_kib(alice.pid()), peak_resident_kib(bob.pid()));
    eprintln!("50 MB in {elapsed:?}; peak RSS alice {alice_peak} KiB, bob {bob_peak} KiB");
    eprintln!("{sent}\n{received}");
    assert!(alice_peak < 16 * 1024, "sender peak {alice_peak} KiB");
    assert!(bob_peak < 16 * 1024, "receiver peak {bob_peak} KiB");

    let got = std::fs::read(downloads.join("big.bin")).expect("the received file");
    assert!(
        got == data,
        "the received file differs ({} bytes)",
        got.len()
    );
    assert_eq!(names_in(&downloads), ["big.bin"]);
}

/// Hint: a refusal comes back as a NOTICE (README.md, "The offer (CTCP, inside a PRIVMSG)"):
/// the sender closes its listener and says the offer is withdrawn.
fn a_refused_offer_is_withdrawn(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-refuse");
    std::fs::write(tmp.join("notes.txt"), b"some notes\n").expect("write");
    let mut alice = client(twin, &server, "alice", &tmp.join("a"), &[]);
    let mut bob = client(twin, &server, "bob", &tmp.join("b"), &[]);
    alice.type_line(&format!("/send bob {}", tmp.join("notes.txt").display()));
    let offering = alice.expect("offering notes.txt (11 B) to bob");
    let port = offering
        .rsplit(':')
        .next()
        .unwrap_or("")
        .split(' ')
        .next()
        .unwrap_or("");
    bob.expect("alice offers notes.txt (11 B)");
    bob.type_line("/refuse alice");
    bob.expect("refused notes.txt from alice");
    alice.expect("-!- bob refused notes.txt");
    // The listening socket is closed: nobody can take the file now.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("port");
    assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
    bob.type_line("/accept alice");
    bob.expect("no offer from alice");
    assert!(names_in(&tmp.join("b")).is_empty());
}

/// Hint: each offer has a deadline, and poll(2)'s timeout is the nearest one: past it, close(2)
/// the listener and withdraw the offer (README.md, "Everything in one poll()").
fn an_offer_nobody_takes_times_out(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-timeout");
    std::fs::write(tmp.join("late.txt"), b"too late").expect("write");
    let mut alice = client(
        twin,
        &server,
        "alice",
        &tmp.join("a"),
        &["--offer-timeout", "1"],
    );
    let mut bob = client(twin, &server, "bob", &tmp.join("b"), &[]);
    alice.type_line(&format!("/send bob {}", tmp.join("late.txt").display()));
    alice.expect("offering late.txt (8 B) to bob at 127.0.0.1: listening on 127.0.0.1:");
    bob.expect("alice offers late.txt (8 B)");
    alice.expect("nobody came for late.txt in 1 s: the offer to bob is withdrawn");
    // Too late: the connection is refused, and no file is left behind.
    bob.type_line("/accept alice");
    bob.expect("Connection refused: late.txt not received");
    assert!(names_in(&tmp.join("b")).is_empty());
    // An offer to nobody is not made at all.
    alice.type_line(&format!("/send nobody {}", tmp.join("late.txt").display()));
    alice.expect("-!- nobody: there is no such nick: late.txt not offered");
}

/// Hint: a received name is a name, never a path: no '/', no '..', no control bytes, and the file
/// is created with O_EXCL (README.md, "Safety: the receiver trusts nothing").
fn hostile_offers_never_write_outside_the_download_directory(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-hostile");
    let downloads = tmp.join("dl");
    let mut bob = client(twin, &server, "bob", &downloads, &["--max-size", "1M"]);
    let mut mallory = FakeSender::new(&server);

    // A path that climbs out, and an absolute one: only the base name is kept.
    let outside = tmp.join("outside.txt");
    for (offered, saved) in [
        ("../../etc/passwd".to_string(), "passwd"),
        (outside.display().to_string(), "outside.txt"),
    ] {
        mallory.offer("bob", &offered, "5");
        bob.expect(&format!("mallory offers {saved} (5 B): /accept mallory"));
        bob.expect(&format!("(offered as {offered:?}: saved as {saved})"));
        bob.type_line("/accept mallory");
        let mut conn = mallory.accept();
        conn.write_all(b"evil\n").expect("send");
        read_acks_until(&mut conn, 5);
        bob.expect(&format!("saved as {}", downloads.join(saved).display()));
    }
    assert!(!outside.exists(), "{} was written", outside.display());

    // No usable name: ignored, nothing to accept.
    for name in ["\"\"", "..", "/", "\"../\""] {
        mallory.offer("bob", name, "5");
        bob.expect("mallory offers a file without a usable name");
    }
    // Huge announced sizes: refused before anything is written or connected.
    mallory.offer("bob", "huge.bin", "1000000000000000000");
    bob.expect("mallory offers huge.bin (1.0 EB)");
    bob.type_line("/accept mallory");
    bob.expect("huge.bin (1.0 EB) refused: more than --max-size 1.0 MB");
    mallory
        .irc
        .expect("NOTICE mallory :\u{1}DCC REJECT SEND huge.bin\u{1}");
    mallory.offer("bob", "big.iso", "2000000");
    bob.expect("mallory offers big.iso (2.0 MB)");
    bob.type_line("/accept mallory");
    bob.expect("big.iso (2.0 MB) refused: more than --max-size 1.0 MB");
    // Garbage: said so, never a crash.
    for garbage in [
        "\u{1}DCC SEND\u{1}",
        "\u{1}DCC SEND x 1.2.3 5000 5\u{1}",
        "\u{1}DCC SEND x 2130706433 5000 99999999999999999999999\u{1}",
        "\u{1}DCC SEND \"x 2130706433 5000 5\u{1}",
        "\u{1}DCC\u{1}",
        "\u{1}DCC SEND x 2130706433 25 5\u{1}",
        "\u{1}DCC SEND x 16843009 0 5 7\u{1}",
    ] {
        mallory.irc.send(&format!("PRIVMSG bob :{garbage}"));
    }
    for said in [
        "makes no sense (fewer than 4 fields",
        "makes no sense (bad address",
        "makes no sense (bad size",
        "makes no sense (a quoted name",
        "makes no sense (an empty DCC request)",
        "points to 127.0.0.1:25, a service's port: ignored",
        "passive DCC SEND (port 0): this client does not do that",
    ] {
        bob.expect(said);
    }
    assert!(!connection_within(&mallory.listener, Duration::ZERO));
    bob.type_line("/accept mallory");
    bob.expect("no offer from mallory");
    assert_eq!(names_in(&downloads), ["outside.txt", "passwd"]);
    assert_eq!(names_in(&tmp.path), ["dl"]);
}

/// Hint: open(2) with O_CREAT | O_EXCL and pick another name on EEXIST; the part file is renamed
/// only when complete (README.md, "Safety: the receiver trusts nothing").
fn an_existing_file_is_never_overwritten(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-exists");
    let downloads = tmp.join("dl");
    std::fs::create_dir_all(&downloads).expect("mkdir");
    std::fs::write(downloads.join("report.txt"), b"mine").expect("write");
    std::fs::write(downloads.join("report-1.txt.part"), b"someone's part").expect("write");
    let mut bob = client(twin, &server, "bob", &downloads, &[]);
    let mut mallory = FakeSender::new(&server);
    mallory.offer("bob", "report.txt", "6");
    bob.expect("mallory offers report.txt (6 B)");
    bob.type_line("/accept mallory");
    let mut conn = mallory.accept();
    conn.write_all(b"theirs").expect("send");
    read_acks_until(&mut conn, 6);
    bob.expect(&format!(
        "saved as {}",
        downloads.join("report-2.txt").display()
    ));
    assert_eq!(
        std::fs::read(downloads.join("report.txt")).expect("read"),
        b"mine"
    );
    assert_eq!(
        std::fs::read(downloads.join("report-2.txt")).expect("read"),
        b"theirs"
    );
    assert_eq!(
        names_in(&downloads),
        ["report-1.txt.part", "report-2.txt", "report.txt"]
    );
}

/// Hint: never read(2) more than the announced size is still owed; an early EOF removes the part
/// file (README.md, "Safety: the receiver trusts nothing").
fn a_sender_that_stops_early_leaves_no_file_and_one_that_sends_more_is_cut_off(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-early");
    let downloads = tmp.join("dl");
    let mut bob = client(twin, &server, "bob", &downloads, &[]);
    let mut mallory = FakeSender::new(&server);

    mallory.offer("bob", "half.bin", "1000000");
    bob.expect("mallory offers half.bin (1.0 MB)");
    bob.type_line("/accept mallory");
    let mut conn = mallory.accept();
    conn.write_all(&random_bytes(100_000, 7)).expect("send");
    read_acks_until(&mut conn, 100_000);
    // While it is under way, the file is only a .part.
    assert_eq!(names_in(&downloads), ["half.bin.part"]);
    drop(conn);
    bob.expect(
        "half.bin from mallory failed: the sender closed the connection after 100000 of 1000000 bytes; nothing kept",
    );
    assert!(
        names_in(&downloads).is_empty(),
        "{:?}",
        names_in(&downloads)
    );

    // More than announced: the file holds the announced size, no more.
    let data = random_bytes(5000, 8);
    mallory.offer("bob", "more.bin", "1000");
    bob.expect("mallory offers more.bin (1.0 kB)");
    bob.type_line("/accept mallory");
    let mut conn = mallory.accept();
    let _ = conn.write_all(&data); // bob may close before taking it all
    read_acks_until(&mut conn, 1000);
    bob.expect("received more.bin from mallory: 1.0 kB (1000 bytes)");
    assert_eq!(
        std::fs::read(downloads.join("more.bin")).expect("read"),
        &data[..1000]
    );
}

/// A socket connected to `to` from `source` (bind(2) before connect(2)).
fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 expected: {to}")
    };
    let sock = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(
        sock.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(source, 0)),
    )
    .expect("bind");
    connect(sock.as_raw_fd(), &SockaddrIn::from(to)).expect("connect");
    let stream = TcpStream::from(sock);
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// Hint: accept(2) with the peer's address and compare it with the address the server gave for the
/// nick; anyone else is closed and the offer still stands (README.md, "Three connections").
fn only_the_offered_peer_may_connect_and_piped_input_waits_for_the_transfer(twin: Twin) {
    let server = start();
    let tmp = TempDir::new("lab08-peer");
    let data = random_bytes(300_000, 9);
    let path = tmp.join("data.bin");
    std::fs::write(&path, &data).expect("write");
    // bob is the test, on raw IRC; alice is our client with piped input:
    // she offers, and leaves only once the transfer is over.
    let (mut bob, _) = Irc::register(&server, "bob");
    let port = server.port().to_string();
    let input = format!("/send bob {}\n", path.display());
    let program = client_program(twin);
    let alice = std::thread::spawn(move || {
        let args = ["127.0.0.1", port.as_str(), "--nick", "alice"];
        run(&program, &args, input.as_bytes())
    });
    let offer = bob.expect("\u{1}DCC SEND data.bin ");
    assert!(
        offer.starts_with(":alice!alice@127.0.0.1 PRIVMSG bob :"),
        "{offer}"
    );
    assert!(offer.ends_with(" 300000\u{1}"), "{offer}");
    let addr = offered_address(&offer);
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);

    // From another address (127.0.0.2 is loopback too): refused, closed.
    let mut intruder = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    let mut byte = [0u8; 1];
    assert!(
        matches!(intruder.read(&mut byte), Ok(0) | Err(_)),
        "the intruder got data"
    );

    // From bob's address: the file, acknowledged in pieces as TCP may cut them.
    let mut conn = connect_from(Ipv4Addr::LOCALHOST, addr);
    let mut got = vec![0u8; data.len()];
    conn.read_exact(&mut got).expect("the file");
    assert!(got == data, "the file differs");
    // Accepted once: the listener is closed now.
    assert!(TcpStream::connect(addr).is_err(), "{addr} still listens");
    let ack = 300_000u32.to_be_bytes();
    conn.write_all(&ack[..1]).expect("ack");
    conn.flush().expect("flush");
    conn.write_all(&ack[1..]).expect("ack");
    // The sender closes once the last acknowledgement is in.
    assert_eq!(conn.read(&mut byte).expect("close"), 0);

    let out = alice.join().expect("alice's thread");
    let text = out.stdout_text();
    assert_eq!(out.code(), Some(0), "{text}\n{}", out.stderr);
    assert!(
        text.contains("-!- refused a connection from 127.0.0.2:"),
        "{text}"
    );
    assert!(text.contains("for data.bin: bob is at 127.0.0.1"), "{text}");
    assert!(text.contains("-!- bob connected from 127.0.0.1:"), "{text}");
    assert!(
        text.contains("-!- sent data.bin to bob: 300.0 kB (300000 bytes) in "),
        "{text}"
    );
}

/// Hint: bad arguments print the usage on stderr and exit 2; --help prints it and exits 0
/// (README.md, "Build and run").
fn the_client_checks_its_arguments(twin: Twin) {
    let program = client_program(twin);
    let out = run(&program, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    assert!(out.stdout_text().contains("--downloads DIR"));
    check_usage_error(&program, &["--offer-timeout", "0"], "invalid SECS '0'");
    check_usage_error(&program, &["--max-size", "lots"], "invalid SIZE 'lots'");
    check_usage_error(&program, &["--downloads"], "--downloads needs a value");
}

/// `--help` and every mistake on the command line: the same bytes on
/// stdout and stderr, and the same exit status, from both clients; and
/// the same failure to connect where nothing listens.
#[test]
fn both_clients_agree_on_their_arguments() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port().to_string();
    drop(closed); // nothing listens there now
    check_twins_agree_on_arguments(
        &client_program(Twin::Rust),
        &client_program(Twin::C),
        &[
            &["--help"],
            &["--raw", "-h"],
            &["--nick"],
            &["--bogus"],
            &["127.0.0.1", "port"],
            &["127.0.0.1", "70000"],
            &["127.0.0.1", "1", "2"],
            &["--downloads"],
            &["--max-size"],
            &["--max-size", "lots"],
            &["--max-size", "10X"],
            &["--max-size", "1.5M"],
            &["--max-size", "-1"],
            &["--max-size", "99999999999999999999T"],
            &["--max-size", "99999999T"],
            &["--max-size=", "127.0.0.1"],
            &["--offer-timeout"],
            &["--offer-timeout", "0"],
            &["--offer-timeout", "00"],
            &["--offer-timeout", "86401"],
            &["--offer-timeout", "-1"],
            &["--offer-timeout", ""],
            &["--offer-timeout", "+"],
            &["--offer-timeout", "99999999999999999999999"],
            &["--offer-timeout=soon"],
            &["127.0.0.1", &port, "--nick", "alice"],
        ],
    );
}
