//! Lab 06's lossy link (labs/06-udp/link.rs and its C twin link.c): the
//! losses, delays, duplicates and reorderings it was asked for, over a
//! bounded run on loopback, and the lab's client recovering through it.
//!
//! Each check runs against the Rust link (`NAME::rust`) and its C twin
//! (`NAME::c`). The link is a tool of the lab, not a program the students
//! write: these checks are not part of `make check` (no `::student`).

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::{PATIENCE, Server, Twin, program};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

// Not for_rust_and_c!: students do not write the link, make check leaves it.
crate::for_the_twins!(
    the_link_loses_delays_and_duplicates_as_asked,
    datagrams_sent_ahead_overtake_those_held_and_the_others_keep_their_order,
    the_client_retransmits_through_the_link,
    the_queue_is_bounded_and_says_when_it_is_full,
    the_link_checks_its_arguments,
);

fn link_program(twin: Twin) -> String {
    program(twin, "06-udp", "link", env!("CARGO_BIN_EXE_udp-link"))
}

/// Starts the link on a free port of 127.0.0.1, to `to`, with `faults`.
fn start_link(twin: Twin, to: SocketAddr, faults: &[&str]) -> Server {
    let to = to.to_string();
    let mut args = vec!["0", "--bind", "127.0.0.1", "--to", &to];
    args.extend_from_slice(faults);
    let mut link = Server::start(&link_program(twin), &args);
    link.expect(&format!("forwarding to {to}: "));
    link
}

/// Ends the link with SIGTERM and returns its two report lines.
fn stop_link(mut link: Server) -> (String, String) {
    kill(Pid::from_raw(link.pid()), Signal::SIGTERM).expect("kill -TERM the link");
    let up = link.expect("client -> server: ");
    let down = link.expect("server -> client: ");
    assert_eq!(link.wait().code(), Some(0), "the link's exit status");
    (up, down)
}

fn socket() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set read timeout");
    sock
}

/// What arrived at a receiving socket: each datagram's sequence number and
/// how long after its sending it came.
struct Arrivals {
    seqs: Vec<u32>,
    delays: Vec<Duration>,
}

/// Sends `count` numbered datagrams from a socket of ours to `link`, one
/// every 100 µs (the link's receive buffer must not overflow: that would be
/// a loss the link did not choose), and gathers what reaches `sink` until
/// `quiet` passes without a datagram.
fn send_through(link: SocketAddr, sink: UdpSocket, count: u32, quiet: Duration) -> Arrivals {
    send_paced(link, sink, count, Duration::from_micros(100), quiet)
}

/// send_through, one datagram every `every`.
fn send_paced(
    link: SocketAddr,
    sink: UdpSocket,
    count: u32,
    every: Duration,
    quiet: Duration,
) -> Arrivals {
    let sender = socket();
    let started = Instant::now();
    let feeder = thread::spawn(move || {
        let mut sent_at = Vec::with_capacity(count as usize);
        for seq in 0..count {
            // Paced from the start, not from the last send.
            pace(started + every * seq);
            let mut datagram = seq.to_be_bytes().to_vec();
            datagram.extend_from_slice(b"payload!");
            sent_at.push(Instant::now());
            sender.send_to(&datagram, link).expect("send to the link");
        }
        sent_at
    });
    let mut received = Vec::new();
    let mut buf = [0u8; 64];
    // The first datagram may take the whole delay; then `quiet` without one
    // ends the run (the test's deadline bounds it anyway).
    let deadline = Instant::now() + PATIENCE;
    sink.set_read_timeout(Some(quiet))
        .expect("set read timeout");
    loop {
        match sink.recv_from(&mut buf) {
            Ok((n, _)) => {
                assert_eq!(n, 12, "a datagram changed size on the way");
                let seq = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes"));
                received.push((seq, Instant::now()));
            }
            Err(_) if feeder.is_finished() => break,
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "the run did not end");
    }
    let sent_at = feeder.join().expect("the sender");
    Arrivals {
        seqs: received.iter().map(|&(seq, _)| seq).collect(),
        delays: received
            .iter()
            .map(|&(seq, at)| at.duration_since(sent_at[seq as usize]))
            .collect(),
    }
}

/// Sleeps until `at`, if it is still to come: the pace of a sender. (Not a
/// wait for an event: there is none to wait for.)
fn pace(at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        thread::sleep(left);
    }
}

/// The number before `word` in a report line: `... 200 lost, ...`.
fn count_before(line: &str, word: &str) -> u64 {
    let at = line
        .rfind(&format!(" {word}"))
        .unwrap_or_else(|| panic!("no {word:?} in {line:?}"));
    line[..at]
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count before {word:?} in {line:?}"))
}

fn the_link_loses_delays_and_duplicates_as_asked(twin: Twin) {
    let sink = socket();
    let to = sink.local_addr().expect("address");
    let faults = [
        "--loss", "20", "--delay", "30", "--jitter", "10", "--dup", "10", "--seed", "7",
    ];
    let link = start_link(twin, to, &faults);
    // 500 µs apart: a link that a loaded machine leaves unscheduled for a
    // while finds them waiting in its socket's receive buffer (some 200
    // datagrams, 100 ms of them), not dropped by the kernel before it.
    let got = send_paced(
        link.addr,
        sink,
        1000,
        Duration::from_micros(500),
        Duration::from_millis(300),
    );
    let (up, _) = stop_link(link);

    let mut copies: HashMap<u32, u32> = HashMap::new();
    for &seq in &got.seqs {
        *copies.entry(seq).or_default() += 1;
    }
    let delivered = copies.len() as u64;
    let twice = copies.values().filter(|&&n| n == 2).count() as u64;
    assert!(copies.values().all(|&n| n <= 2), "more than two copies");
    // What the link says it did is what arrived: nothing lost elsewhere.
    // (Should the kernel drop some before the link reads them all the same,
    // the link says so: fewer than 1000 received, and the rest follows.)
    assert!(up.starts_with("client -> server: "), "{up}");
    let received = count_before(&up, "datagrams received,");
    assert!(
        received >= 500,
        "the kernel dropped most before the link: {up}"
    );
    assert_eq!(count_before(&up, "lost"), received - delivered, "{up}");
    assert_eq!(count_before(&up, "duplicated"), twice, "{up}");
    assert_eq!(count_before(&up, "sent"), got.seqs.len() as u64, "{up}");
    // 20 % lost, 10 % of the others twice, within a tolerance (three
    // standard deviations and more).
    assert!(
        (760..=840).contains(&(delivered * 1000 / received)),
        "{delivered} of {received} delivered"
    );
    assert!(
        (50..=110).contains(&twice),
        "{twice} of {delivered} duplicated"
    );

    // 30 ms ± 10: never less than 20 ms (the link holds them at least
    // that long); at most 40 ms, and the time a loaded machine takes.
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let mut delays: Vec<f64> = got.delays.iter().map(ms).collect();
    delays.sort_by(f64::total_cmp);
    let (min, max) = (delays[0], delays[delays.len() - 1]);
    let median = delays[delays.len() / 2];
    assert!(
        min >= 20.0,
        "a datagram came after {min:.3} ms, before its delay"
    );
    assert!(max <= 40.0 + 200.0, "a datagram came after {max:.3} ms");
    assert!(
        (25.0..=45.0).contains(&median),
        "median delay {median:.3} ms"
    );
    // The jitter spreads them: some early, some late in the window.
    let early = delays.iter().filter(|&&d| d < 25.0).count();
    let late = delays.iter().filter(|&&d| d > 35.0).count();
    assert!(
        early > 50 && late > 50,
        "{early} under 25 ms, {late} over 35 ms"
    );
}

fn datagrams_sent_ahead_overtake_those_held_and_the_others_keep_their_order(twin: Twin) {
    // No jitter, no reorder: a fixed delay keeps the order.
    let sink = socket();
    let link = start_link(
        twin,
        sink.local_addr().expect("address"),
        &["--delay", "20"],
    );
    let got = send_through(link.addr, sink, 300, Duration::from_millis(300));
    stop_link(link);
    assert_eq!(got.seqs, (0..300).collect::<Vec<u32>>(), "out of order");

    // 30 % go at once, ahead of those held 50 ms: longer than the whole run
    // (300 datagrams, 100 µs apart), so that a slow machine, which spreads
    // the sends, still has datagrams held when the next ones go ahead.
    let sink = socket();
    let faults = ["--delay", "50", "--reorder", "30", "--seed", "11"];
    let link = start_link(twin, sink.local_addr().expect("address"), &faults);
    let got = send_through(link.addr, sink, 300, Duration::from_millis(300));
    let (up, _) = stop_link(link);
    assert_eq!(got.seqs.len(), 300, "nothing is lost");
    let ahead = count_before(&up, "sent ahead");
    assert!((60..=120).contains(&ahead), "{up}");
    // Those sent ahead are the only ones that come before half the delay.
    let fast = got.delays.iter().filter(|d| d.as_millis() < 25).count() as u64;
    assert!(
        fast <= ahead && fast >= ahead * 8 / 10,
        "{fast} fast for {ahead} sent ahead"
    );
    // The held ones come out after newer datagrams sent ahead: each of them
    // arrives after a newer one.
    let mut newest = 0;
    let overtaking = got
        .seqs
        .iter()
        .filter(|&&seq| {
            let late = seq < newest;
            newest = newest.max(seq);
            late
        })
        .count();
    assert!(
        overtaking > 20,
        "{overtaking} datagrams arrived after a newer one"
    );
}

/// The lab's client through the link to the lab's server: losses both ways
/// and duplicates, recovered by its retransmissions.
fn the_client_retransmits_through_the_link(twin: Twin) {
    let server_bin = program(twin, "06-udp", "server", env!("CARGO_BIN_EXE_udp-server"));
    let client_bin = program(twin, "06-udp", "client", env!("CARGO_BIN_EXE_udp-client"));
    let server = Server::start(&server_bin, &["0", "--bind", "127.0.0.1"]);
    let faults = ["--loss", "25", "--delay", "5", "--dup", "10", "--seed", "3"];
    let link = start_link(twin, server.addr, &faults);
    let port = link.port().to_string();
    let args = [
        "127.0.0.1",
        &port,
        "--count",
        "20",
        "--interval",
        "0",
        "--timeout",
        "150",
        "--retries",
        "10",
    ];
    let out = common::run(&client_bin, &args, b"");
    let (up, down) = stop_link(link);
    let text = out.stdout_text();
    assert_eq!(out.code(), Some(0), "{text}{}\n{up}\n{down}", out.stderr);
    let summary = text
        .lines()
        .find(|l| l.starts_with("20 datagrams sent, 20 received, 0.0% loss, "))
        .unwrap_or_else(|| panic!("no summary: {text}"));
    assert!(!summary.contains(" 0 retransmissions"), "{summary}");
    assert!(out.stderr.contains("sending it again"), "{}", out.stderr);
    // Lost on the way there and on the way back.
    assert!(count_before(&up, "lost") > 0, "{up}");
    assert!(count_before(&down, "lost") > 0, "{down}");
}

fn the_queue_is_bounded_and_says_when_it_is_full(twin: Twin) {
    let sink = socket();
    // Two seconds' delay: 5000 datagrams in half a second all wait, and
    // the queue holds 4096 of them.
    let mut link = start_link(
        twin,
        sink.local_addr().expect("address"),
        &["--delay", "2000"],
    );
    let sender = socket();
    let started = Instant::now();
    let payload = [7u8; 100];
    for i in 0..5000u64 {
        pace(started + Duration::from_micros(100 * i));
        sender
            .send_to(&payload, link.addr)
            .expect("send to the link");
    }
    link.expect("queue full (4096 datagrams, 409600 bytes held): dropping datagrams");
    let kib = common::resident_kib(link.pid());
    assert!(kib < 64 * 1024, "the link holds {kib} KiB");
    let (up, _) = stop_link(link);
    // All that reached it beyond the 4096 held were dropped (a loaded
    // machine may leave a few in a full receive buffer: not counted).
    let received = count_before(&up, "datagrams received");
    assert!(received > 4500, "{up}");
    assert_eq!(count_before(&up, "dropped"), received - 4096, "{up}");
}

fn the_link_checks_its_arguments(twin: Twin) {
    let bin = link_program(twin);
    let out = common::run(&bin, &["--help"], b"");
    assert_eq!(out.code(), Some(0), "--help: {}", out.stderr);
    assert!(
        out.stdout_text()
            .starts_with("usage: link [PORT] --to HOST:PORT")
    );
    let cases: &[(&[&str], &str)] = &[
        (&[], "--to HOST:PORT is required"),
        (&["--to", "127.0.0.1"], "invalid HOST:PORT '127.0.0.1'"),
        (&["--to", "127.0.0.1:70000"], "invalid HOST:PORT"),
        (&["--to", "[::1]4242"], "invalid HOST:PORT"),
        (
            &["--to", "127.0.0.1:4242", "--loss", "101"],
            "invalid PCT '101'",
        ),
        (
            &["--to", "127.0.0.1:4242", "--delay", "60001"],
            "invalid MS '60001'",
        ),
        (
            &["--to", "127.0.0.1:4242", "--reorder", "10"],
            "--reorder goes with --delay",
        ),
        (&["--to", "127.0.0.1:4242", "--seed", "x"], "invalid N 'x'"),
        (
            &["--to", "127.0.0.1:4242", "--bogus"],
            "unknown option '--bogus'",
        ),
        (
            &["--to", "127.0.0.1:4242", "1", "2"],
            "unexpected argument '2'",
        ),
    ];
    for (args, message) in cases {
        common::check_usage_error(&bin, args, message);
    }
    // A port in use: the call, the address, the reason, exit 1.
    let sink = socket();
    let to = sink.local_addr().expect("address").to_string();
    let link = start_link(twin, sink.local_addr().expect("address"), &[]);
    let port = link.port().to_string();
    let out = common::run(&bin, &[&port, "--bind", "127.0.0.1", "--to", &to], b"");
    assert_eq!(out.code(), Some(1), "port in use: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!("bind 127.0.0.1:{port}: Address already in use\n")
    );
    // IPv6 both sides, and a name for the server.
    let server6 = UdpSocket::bind("[::1]:0").expect("bind ::1");
    let port6 = server6.local_addr().expect("address").port();
    let mut link6 = Server::start(
        &bin,
        &["0", "--bind", "::1", "--to", &format!("localhost:{port6}")],
    );
    assert_eq!(link6.addr.ip().to_string(), "::1");
    let line = link6.expect("forwarding to ");
    assert!(
        line.starts_with(&format!("forwarding to [::1]:{port6}: "))
            || line.starts_with(&format!("forwarding to 127.0.0.1:{port6}: ")),
        "{line}"
    );
}

/// The same seed, the same fates: the Rust link and its C twin lose and
/// duplicate the very same datagrams.
#[test]
fn the_rust_and_c_links_draw_the_same_fates() {
    let mut fates = Vec::new();
    for twin in [Twin::Rust, Twin::C] {
        let sink = socket();
        let faults = ["--loss", "30", "--dup", "20", "--seed", "12345"];
        let link = start_link(twin, sink.local_addr().expect("address"), &faults);
        let mut got = send_through(link.addr, sink, 300, Duration::from_millis(300));
        let (up, _) = stop_link(link);
        got.seqs.sort_unstable();
        fates.push((got.seqs, up));
    }
    assert_eq!(fates[0], fates[1], "Rust (left) and C (right)");
}

#[test]
fn the_rust_and_c_links_agree_on_arguments() {
    common::check_twins_agree_on_arguments(
        env!("CARGO_BIN_EXE_udp-link"),
        &common::c_twin("06-udp", "link"),
        &[
            &["--help"],
            &[],
            &["--to", "nowhere"],
            &["--to", "127.0.0.1:4242", "--loss", "101"],
            &["--to", "127.0.0.1:4242", "--reorder", "5"],
            &["--to", "127.0.0.1:4242", "--jitter", "-1"],
            &["--to", "127.0.0.1:4242", "x"],
        ],
    );
}
