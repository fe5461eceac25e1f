//! Lab 06: the UDP echo server and client, in Rust and in C, driven over real
//! sockets.
//!
//! Every check runs twice, with one body: against the Rust programs
//! (`NAME::rust`) and against their C twins (`NAME::c`, labs/06-udp/server-c
//! and client-c, built by `make c`); `make check LAB=06-udp` runs it against
//! a student's programs (`NAME::student`). The tests that need both twins at
//! once (they talk to each other, agree on arguments) are plain tests.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{
    PATIENCE, Run, Server, Twin, binary_payload, check_server_arguments, check_usage_error, program,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Lab 06's two programs, in one implementation or another.
struct Udp {
    server: String,
    client: String,
}

impl Udp {
    fn of(twin: Twin) -> Udp {
        Udp {
            server: program(twin, "06-udp", "server", env!("CARGO_BIN_EXE_udp-server")),
            client: program(twin, "06-udp", "client", env!("CARGO_BIN_EXE_udp-client")),
        }
    }
}

fn start(imp: &Udp, extra: &[&str]) -> Server {
    let mut args = vec!["0", "--bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    Server::start(&imp.server, &args)
}

/// Runs the client with `args` after HOST and PORT.
fn client(imp: &Udp, server: SocketAddr, args: &[&str], input: &[u8]) -> Run {
    client_within(imp, server, args, input, PATIENCE)
}

/// As `client`, but the client must end within `limit`.
fn client_within(
    imp: &Udp,
    server: SocketAddr,
    args: &[&str],
    input: &[u8],
    limit: Duration,
) -> Run {
    let host = server.ip().to_string();
    let port = server.port().to_string();
    let mut all = vec![host.as_str(), port.as_str()];
    all.extend_from_slice(args);
    common::run_within(&imp.client, &all, input, limit)
}

/// A socket of the test's own on loopback, bounded in its waits.
fn udp_socket() -> UdpSocket {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a test socket");
    sock.set_read_timeout(Some(PATIENCE))
        .expect("set read timeout");
    sock
}

/// A port on 127.0.0.1 that nothing is bound to (a moment ago).
fn free_port() -> u16 {
    udp_socket().local_addr().expect("local address").port()
}

crate::for_rust_and_c!(
    the_client_echoes_lines_through_the_server,
    one_socket_serves_every_peer_and_keeps_message_boundaries,
    ipv6_localhost_and_a_dual_stack_server,
    ping_mode_prints_round_trips_and_a_summary_without_loss,
    retransmissions_recover_the_datagrams_the_server_drops,
    an_absent_server_is_reported_after_the_retries,
    a_connected_socket_reports_a_refused_port_at_once,
    late_duplicate_and_foreign_datagrams_are_ignored,
    a_datagram_longer_than_any_echo_is_reported_as_truncated,
    maximum_size_datagrams_pass_and_larger_ones_are_refused,
    the_server_shares_the_common_interface,
    the_client_checks_its_arguments,
    the_loss_demo_shows_retransmissions_and_cleans_up,
    a_datagram_from_the_servers_own_port_or_a_service_port_is_never_echoed,
    two_echo_servers_stop_bouncing_a_forged_datagram,
    a_flood_is_logged_in_a_few_lines_and_echoed_at_a_bounded_rate,
);

/// Hint: the server: socket(2) SOCK_DGRAM, bind(2), then recvfrom(2) and
/// sendto(2) to the address recvfrom(2) gave; the client: sendto(2) each
/// numbered line, poll(2), the echo (README.md, "The calls").
fn the_client_echoes_lines_through_the_server(twin: Twin) {
    let input = b"a\nb\n\nno newline at the end";
    let imp = &Udp::of(twin);
    let mut server = start(imp, &[]);
    let out = client(imp, server.addr, &[], input);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, input);
    assert_eq!(
        out.stderr.lines().next(),
        Some("4 datagrams sent, 4 received, 0.0% loss, 0 retransmissions, 0 ignored")
    );
    // One datagram per line: its 4-byte sequence number, then the line.
    for len in [2, 2, 1, 21] {
        server.expect(&format!("datagram of {} bytes from 127.0.0.1:", len + 4));
    }
}

#[test]
fn the_rust_and_c_programs_talk_to_each_other() {
    for (server_side, client_side) in [(Twin::Rust, Twin::C), (Twin::C, Twin::Rust)] {
        let server = start(&Udp::of(server_side), &[]);
        let out = client(
            &Udp::of(client_side),
            server.addr,
            &[],
            b"across\nlanguages\n",
        );
        assert_eq!(
            out.stdout_text(),
            "across\nlanguages\n",
            "{client_side:?} client, {server_side:?} server: {}",
            out.stderr
        );
    }
}

/// Hint: one socket, no connect(2): sendto(2) each echo to the address its
/// recvfrom(2) filled in, exactly the n bytes it returned, 0 included
/// (README.md, "Datagrams, not a stream"; recvfrom(2)).
fn one_socket_serves_every_peer_and_keeps_message_boundaries(twin: Twin) {
    let imp = &Udp::of(twin);
    let mut server = start(imp, &[]);
    let before = common::open_descriptors(server.pid()).len();
    let (a, b) = (udp_socket(), udp_socket());
    // Three datagrams sent at once come back as three datagrams, never
    // glued together or split as TCP bytes may be; the empty one too.
    for message in [&b"one"[..], b"two three", b""] {
        a.send_to(message, server.addr).expect("send");
    }
    b.send_to(b"from b", server.addr).expect("send");
    let mut buf = [0u8; 64];
    for message in [&b"one"[..], b"two three", b""] {
        let (n, from) = a.recv_from(&mut buf).expect("an echo for a");
        assert_eq!((&buf[..n], from), (message, server.addr));
    }
    // b's echo must come to b, not to a (as from a server that answers
    // its first peer, or a fixed address): wait for either, and say which.
    let mut fds = [
        PollFd::new(a.as_fd(), PollFlags::POLLIN),
        PollFd::new(b.as_fd(), PollFlags::POLLIN),
    ];
    let ready = poll(&mut fds, PollTimeout::try_from(PATIENCE).expect("timeout")).expect("poll");
    assert!(ready > 0, "no echo for a second peer within {PATIENCE:?}");
    let to_a = fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLIN));
    assert!(
        !to_a,
        "the echo of a second peer came to the first: each echo goes to the address its \
         own recvfrom(2) gave"
    );
    let (n, _) = b.recv_from(&mut buf).expect("an echo for b");
    assert_eq!(&buf[..n], b"from b");
    let a_addr = a.local_addr().expect("address");
    server.expect(&format!("datagram of 3 bytes from {a_addr}"));
    server.expect(&format!("datagram of 9 bytes from {a_addr}"));
    server.expect(&format!("datagram of 0 bytes from {a_addr}"));
    let b_addr = b.local_addr().expect("address");
    server.expect(&format!("datagram of 6 bytes from {b_addr}"));

    // Twenty more peers: still the one socket, no descriptor per client.
    for i in 0..20 {
        let peer = udp_socket();
        peer.send_to(format!("peer {i}").as_bytes(), server.addr)
            .expect("send");
        let (n, _) = peer.recv_from(&mut buf).expect("echo");
        assert_eq!(&buf[..n], format!("peer {i}").as_bytes());
    }
    assert_eq!(common::open_descriptors(server.pid()).len(), before);
}

/// Hint: the socket(2) family comes from the address (AF_INET6 for ::1 or ::);
/// recvfrom(2) fills a sockaddr_storage, its length set again before each
/// call (ipv6(7)).
fn ipv6_localhost_and_a_dual_stack_server(twin: Twin) {
    let imp = &Udp::of(twin);
    let server6 = Server::start(&imp.server, &["0", "--bind", "::1"]);
    assert_eq!(
        server6.addr.to_string(),
        format!("[::1]:{}", server6.port())
    );
    let out = client(imp, server6.addr, &[], b"over ipv6\n");
    assert_eq!(out.stdout_text(), "over ipv6\n", "stderr: {}", out.stderr);

    let server = start(imp, &[]);
    let port = server.port().to_string();
    let out = common::run(&imp.client, &["localhost", &port], b"by name\n");
    assert_eq!(out.stdout_text(), "by name\n", "stderr: {}", out.stderr);

    // Bound to ::, the server takes IPv4 datagrams too, from addresses
    // that read as IPv4-mapped IPv6 (ipv6(7)).
    let mut dual = Server::start(&imp.server, &["0", "--bind", "::"]);
    let v4 = SocketAddr::from(([127, 0, 0, 1], dual.port()));
    let out = client(imp, v4, &[], b"mapped\n");
    assert_eq!(out.stdout_text(), "mapped\n", "stderr: {}", out.stderr);
    dual.expect("datagram of 11 bytes from [::ffff:127.0.0.1]:");
}

/// The numbers in `rtt min/avg/max = 0.061/0.080/0.112 ms`.
fn rtts(line: &str) -> Vec<f64> {
    line.strip_prefix("rtt min/avg/max = ")
        .and_then(|l| l.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("not an rtt line: {line:?}"))
        .split('/')
        .map(|x| x.parse().expect("a number of milliseconds"))
        .collect()
}

/// Hint: each datagram goes once with sendto(2) and its echo is awaited with
/// poll(2) before the next (README.md, "What to observe" 1).
fn ping_mode_prints_round_trips_and_a_summary_without_loss(twin: Twin) {
    let imp = &Udp::of(twin);
    let mut server = start(imp, &[]);
    let addr = server.addr;
    let started = Instant::now();
    let out = client(
        imp,
        addr,
        &["--count", "5", "--interval", "20", "--size", "100"],
        b"",
    );
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stderr.is_empty(), "stderr: {}", out.stderr);
    // Four intervals of 20 ms between five datagrams.
    assert!(started.elapsed() >= Duration::from_millis(80));
    let text = out.stdout_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 10, "{text}");
    assert_eq!(
        lines[0],
        format!("UDP PING {addr}: 5 datagrams of 100 bytes")
    );
    for (seq, line) in (1..=5).zip(&lines[1..6]) {
        let prefix = format!("100 bytes from {addr}: seq={seq} time=");
        assert!(line.starts_with(&prefix) && line.ends_with(" ms"), "{line}");
    }
    assert_eq!(lines[6], "");
    assert_eq!(lines[7], format!("--- {addr} udp ping statistics ---"));
    assert_eq!(
        lines[8],
        "5 datagrams sent, 5 received, 0.0% loss, 0 retransmissions, 0 ignored"
    );
    let rtt = rtts(lines[9]);
    assert!(rtt[0] <= rtt[1] && rtt[1] <= rtt[2], "{}", lines[9]);
    for _ in 0..5 {
        server.expect("datagram of 100 bytes from 127.0.0.1:");
    }
}

/// Hint: when poll(2) returns 0 (no echo within --timeout), send the same
/// datagram again, --retries times at most, and say so on stderr: the
/// retransmission (README.md, "The calls"; "What to observe" 2).
fn retransmissions_recover_the_datagrams_the_server_drops(twin: Twin) {
    let imp = &Udp::of(twin);
    // --drop 50 leaves every second datagram unanswered: the first try
    // of seq 2, 3 and 4 each; their retransmissions are answered.
    let mut server = start(imp, &["--drop", "50"]);
    let args = ["--count", "4", "--interval", "0", "--timeout", "100"];
    // Three timeouts of 100 ms: a client that waits for ever for a lost
    // echo is stopped after 3 s, not after PATIENCE.
    let out = client_within(imp, server.addr, &args, b"", Duration::from_secs(3));
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let text = out.stdout_text();
    assert!(
        text.contains(&format!("from {}: seq=1 time=", server.addr)),
        "{text}"
    );
    for seq in 2..=4 {
        let line = text
            .lines()
            .find(|l| l.contains(&format!(": seq={seq} ")))
            .unwrap_or_else(|| panic!("no line for seq {seq}: {text}"));
        assert!(line.ends_with(" ms (1 retransmission)"), "{line}");
        let ms: f64 = line
            .split("time=")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no time in {line}"));
        assert!(ms >= 100.0, "seq {seq} answered before its timeout: {line}");
    }
    assert!(
        text.contains("4 datagrams sent, 4 received, 0.0% loss, 3 retransmissions, 0 ignored"),
        "{text}"
    );
    let expected: String = (2..=4)
        .map(|seq| format!("seq {seq}: no echo within 100 ms, sending it again (1 of 3)\n"))
        .collect();
    assert_eq!(out.stderr, expected);
    server.expect("datagram of 64 bytes from");
    for _ in 0..3 {
        server.expect("dropped (--drop 50)");
    }
}

/// Needs: retransmissions_recover_the_datagrams_the_server_drops
/// Hint: never wait for ever: poll(2) with the time left, not -1 (a blocking
/// recvfrom(2) never returns for a lost datagram); after the last retry the
/// datagram is lost (README.md, "What to observe" 7).
fn an_absent_server_is_reported_after_the_retries(twin: Twin) {
    let imp = &Udp::of(twin);
    // A socket that never reads: no echo and no ICMP error ever comes back.
    let hole = udp_socket();
    let addr = hole.local_addr().expect("address");
    let started = Instant::now();
    let args = ["--timeout", "50", "--retries", "2"];
    let out = client(imp, addr, &args, b"anyone there?\n");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(out.code(), Some(1), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty());
    assert_eq!(
        out.stderr,
        format!(
            "seq 1: no echo within 50 ms, sending it again (1 of 2)\n\
                 seq 1: no echo within 50 ms, sending it again (2 of 2)\n\
                 seq 1: no echo within 50 ms, lost\n\
                 1 datagrams sent, 0 received, 100.0% loss, 2 retransmissions, 0 ignored\n\
                 no echo at all from {addr}: is a server running there?\n"
        )
    );
    // Three tries, the very same datagram each time.
    let mut buf = [0u8; 64];
    for _ in 0..3 {
        let (n, _) = hole.recv_from(&mut buf).expect("a try");
        assert_eq!(&buf[..n], b"\0\0\0\x01anyone there?\n");
    }

    // Nothing bound at all: the kernel answers with ICMP port
    // unreachable, but an unconnected socket is not told (udp(7)).
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--count",
        "2",
        "--interval",
        "0",
        "--timeout",
        "30",
        "--retries",
        "1",
    ];
    let out = client(imp, closed, &args, b"");
    assert_eq!(out.code(), Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stdout_text()
            .contains("2 datagrams sent, 0 received, 100.0% loss, 2 retransmissions"),
        "{}",
        out.stdout_text()
    );
    assert!(!out.stderr.contains("refused"), "{}", out.stderr);
}

/// Hint: with --connect, connect(2) the socket and send(2) without an
/// address: an ICMP port unreachable then comes back as ECONNREFUSED
/// (udp(7); README.md, "What to observe" 8).
fn a_connected_socket_reports_a_refused_port_at_once(twin: Twin) {
    let imp = &Udp::of(twin);
    let closed = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let started = Instant::now();
    // The refusal must come from ICMP, not from giving up: giving up
    // takes the first try and 3 retries, 4 x 1000 ms. The kernel sends
    // at most icmp_msgs_per_sec ICMP messages (1000 a second, bursts of
    // 50: icmp(7)), and other tests that run meanwhile may use them up:
    // then this try's port unreachable is not sent, and the refusal
    // comes with the first retry, after 1000 ms.
    let out = client(imp, closed, &["--connect", "--timeout", "1000"], b"hello\n");
    assert!(
        started.elapsed() < Duration::from_millis(3500),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code(), Some(1), "stderr: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!(
            "recv {closed}: Connection refused\n\
                 (an ICMP port unreachable came back: nothing receives on {closed})\n"
        )
    );

    // And with a server there, connected UDP echoes as well.
    let server = start(imp, &[]);
    let args = ["--connect", "--count", "3", "--interval", "0"];
    let out = client(imp, server.addr, &args, b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout_text()
            .contains("3 datagrams sent, 3 received, 0.0% loss")
    );
}

/// Needs: retransmissions_recover_the_datagrams_the_server_drops
/// Hint: after a retransmission the first echo may still come: wait on
/// until the awaited one, ignoring the others (README.md, "The calls";
/// poll(2)).
fn late_duplicate_and_foreign_datagrams_are_ignored(twin: Twin) {
    let imp = &Udp::of(twin);
    let peer = udp_socket();
    let stranger = udp_socket();
    let addr = peer.local_addr().expect("address");
    let stranger_addr = stranger.local_addr().expect("address");
    // A peer that misbehaves in every way a network or a server can.
    let script = thread::spawn(move || {
        let mut buf = [0u8; 128];
        let mut held = Vec::new();
        let mut tries_of_2 = 0;
        loop {
            let (n, client) = peer
                .recv_from(&mut buf)
                .expect("a datagram from the client");
            let datagram = buf[..n].to_vec();
            let echo = |bytes: &[u8]| peer.send_to(bytes, client).expect("send");
            match datagram[3] {
                1 => {
                    echo(&datagram);
                    echo(&datagram); // a duplicate
                }
                2 if tries_of_2 == 0 => {
                    tries_of_2 += 1;
                    held = datagram; // no answer: the client must send again
                }
                2 => {
                    tries_of_2 += 1;
                    echo(&datagram);
                    echo(&held); // the late answer to the first try
                }
                3 => {
                    stranger.send_to(&datagram, client).expect("send");
                    let mut changed = datagram.clone();
                    changed.extend_from_slice(b"!!");
                    echo(&changed); // right number, wrong content
                    echo(b"?"); // too short to carry a number
                    echo(&datagram);
                }
                _ => {
                    echo(&datagram);
                    return tries_of_2;
                }
            }
        }
    });
    let out = client(imp, addr, &["--timeout", "200"], b"one\ntwo\nthree\nfour\n");
    assert_eq!(script.join().expect("the peer script"), 2);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout_text(), "one\ntwo\nthree\nfour\n");
    let (reports, rtt) = out.stderr.split_at(out.stderr.find("rtt ").unwrap_or(0));
    assert!(rtt.starts_with("rtt min/avg/max = "), "{}", out.stderr);
    assert_eq!(
        reports,
        format!(
            "echo of seq 1 ignored: late or duplicate\n\
                 seq 2: no echo within 200 ms, sending it again (1 of 3)\n\
                 echo of seq 2 ignored: late or duplicate\n\
                 datagram of 10 bytes from {stranger_addr} ignored: not from {addr}\n\
                 datagram of 12 bytes from {addr} ignored: not an echo of ours\n\
                 datagram of 1 bytes from {addr} ignored: not an echo of ours\n\
                 4 datagrams sent, 4 received, 0.0% loss, 1 retransmissions, 5 ignored\n"
        )
    );
}

/// Hint: keep the given receive: recvmsg(2) sets MSG_TRUNC when a datagram
/// did not fit (recv(2), udp(7)).
fn a_datagram_longer_than_any_echo_is_reported_as_truncated(twin: Twin) {
    let imp = &Udp::of(twin);
    // recvmsg(2) flags it MSG_TRUNC; with --connect, recv(2) given
    // MSG_TRUNC returns its real length: both are caught.
    for mode in [&[][..], &["--connect"]] {
        let peer = udp_socket();
        let addr = peer.local_addr().expect("address");
        let script = thread::spawn(move || {
            let mut buf = [0u8; 128];
            for seq in 1..=2 {
                let (n, client) = peer.recv_from(&mut buf).expect("a datagram");
                if seq == 1 {
                    let mut longer = buf[..n].to_vec();
                    longer.extend_from_slice(b"and more");
                    peer.send_to(&longer, client).expect("send");
                }
                peer.send_to(&buf[..n], client).expect("send");
            }
        });
        let mut args = vec!["--count", "2", "--size", "16", "--interval", "0"];
        args.extend_from_slice(mode);
        let out = client(imp, addr, &args, b"");
        script.join().expect("the peer script");
        assert_eq!(out.code(), Some(0), "{mode:?}: {}", out.stderr);
        assert_eq!(
            out.stderr,
            format!(
                "datagram from {addr} ignored: longer than the 16 bytes of any echo of ours (MSG_TRUNC)\n"
            ),
            "{mode:?}"
        );
        assert!(
            out.stdout_text()
                .contains("2 datagrams sent, 2 received, 0.0% loss, 0 retransmissions, 1 ignored"),
            "{mode:?}: {}",
            out.stdout_text()
        );
    }
}

/// Needs: one_socket_serves_every_peer_and_keeps_message_boundaries
/// Hint: receive into a buffer of 65536 bytes (no datagram is longer,
/// udp(7)); a sendto(2) that fails with EMSGSIZE goes to the given fail()
/// (README.md, "What to observe" 9).
fn maximum_size_datagrams_pass_and_larger_ones_are_refused(twin: Twin) {
    let imp = &Udp::of(twin);
    // IPv4: 65535 - 20 (IP header) - 8 (UDP header) = 65507 bytes.
    let mut server = start(imp, &[]);
    let peer = udp_socket();
    let payload = binary_payload(65507);
    peer.send_to(&payload, server.addr)
        .expect("send the largest datagram");
    let mut buf = vec![0u8; 65536];
    let (n, _) = peer.recv_from(&mut buf).expect("its echo");
    assert!(buf[..n] == payload[..], "the echo of 65507 bytes differs");
    server.expect("datagram of 65507 bytes from");

    let ping = ["--count", "2", "--interval", "0", "--size"];
    let out = client(imp, server.addr, &[&ping[..], &["65507"]].concat(), b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout_text()
            .contains(&format!("65507 bytes from {}: seq=2", server.addr))
    );

    let too_long = format!(
        "sendto {}: Message too long\n\
             (a UDP datagram holds at most 65507 bytes over IPv4, 65527 over IPv6)\n",
        server.addr
    );
    let out = client(imp, server.addr, &[&ping[..], &["65508"]].concat(), b"");
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr, too_long);

    // A line is one datagram: 65503 bytes and the sequence number fit.
    let mut line = vec![b'x'; 65502];
    line.push(b'\n');
    let out = client(imp, server.addr, &[], &line);
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    assert!(out.stdout == line, "the longest line did not come back");
    line.insert(0, b'x');
    let out = client(imp, server.addr, &[], &line);
    assert_eq!(out.code(), Some(1));
    assert_eq!(out.stderr, too_long);

    // IPv6: the 40-byte header is not counted, 65535 - 8 = 65527 bytes.
    let server6 = Server::start(&imp.server, &["0", "--bind", "::1"]);
    let out = client(imp, server6.addr, &[&ping[..], &["65527"]].concat(), b"");
    assert_eq!(out.code(), Some(0), "stderr: {}", out.stderr);
    let out = client(imp, server6.addr, &[&ping[..], &["65528"]].concat(), b"");
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains(": Message too long\n"),
        "{}",
        out.stderr
    );
}

/// Hint: keep the given argument parsing and usage text (README.md, "Build and run").
fn the_server_shares_the_common_interface(twin: Twin) {
    let imp = &Udp::of(twin);
    check_server_arguments(&imp.server);
    check_usage_error(
        &imp.server,
        &["--drop", "150"],
        "invalid PERCENT '150': a percentage is a number from 0 to 100",
    );
    check_usage_error(&imp.server, &["--drop", "x"], "invalid PERCENT 'x'");
}

/// Hint: keep the given argument parsing and usage text (README.md, "Build and run").
fn the_client_checks_its_arguments(twin: Twin) {
    let imp = &Udp::of(twin);
    let out = common::run(&imp.client, &["--help"], b"");
    assert_eq!(out.code(), Some(0));
    assert!(out.stdout_text().starts_with("usage: client "));
    assert!(
        out.stdout_text()
            .contains("Exit status: 0 every datagram was echoed")
    );
    assert!(
        out.stdout_text().contains("(default 1000; 1 to 60000)"),
        "--help must give --timeout's range: {}",
        out.stdout_text()
    );
    let cases: &[(&[&str], &str)] = &[
        (&["127.0.0.1", "port"], "invalid PORT 'port'"),
        (
            &["127.0.0.1", "4242", "extra"],
            "unexpected argument 'extra'",
        ),
        (&["--bogus"], "unknown option '--bogus'"),
        (&["--timeout", "soon"], "invalid MS 'soon'"),
        // 0 ms would count every echo lost, even from a live server.
        (
            &["--timeout", "0"],
            "invalid MS '0': from 1 to 60000 milliseconds",
        ),
        (
            &["--timeout", "60001"],
            "invalid MS '60001': from 1 to 60000 milliseconds",
        ),
        (&["--retries"], "--retries needs a value (N)"),
        (&["--size", "100"], "--size goes with --count (ping mode)"),
        (
            &["--interval", "5"],
            "--interval goes with --count (ping mode)",
        ),
        (
            &["--count", "-1"],
            "invalid N '-1': invalid digit found in string",
        ),
        (
            &["--count", "2", "--size", "3"],
            "invalid B '3': a datagram of this client holds 4 to 65535 bytes",
        ),
        (&["--count", "2", "--size", "65536"], "invalid B '65536'"),
    ];
    for (args, message) in cases {
        check_usage_error(&imp.client, args, message);
    }
}

#[test]
fn the_c_twins_agree_on_arguments() {
    let (rust, c) = (Udp::of(Twin::Rust), Udp::of(Twin::C));
    let server_cases: &[&[&str]] = &[&["--help"], &["--drop", "101"], &["--bind", "::x"]];
    common::check_twins_agree_on_arguments(&rust.server, &c.server, server_cases);
    let client_cases: &[&[&str]] = &[
        &["--help"],
        &["--count", "x"],
        &["--size=9"],
        &["h", "1", "2"],
        &["--timeout", "0"],
        &["--timeout=60001", "--count", "x"],
    ];
    common::check_twins_agree_on_arguments(&rust.client, &c.client, client_cases);
}

/// Needs: retransmissions_recover_the_datagrams_the_server_drops
/// Hint: run `make udp-loss-demo SERVER=... CLIENT=...` and read what it
/// prints: the client must send again after each timeout (README.md, "What
/// to observe" 3).
fn the_loss_demo_shows_retransmissions_and_cleans_up(twin: Twin) {
    let script = format!("{}/labs/06-udp/loss-demo.sh", env!("CARGO_MANIFEST_DIR"));
    let imp = &Udp::of(twin);
    // The lab's link, not a student's program: the reference (its C twin
    // for the C programs).
    let link = program(
        if twin == Twin::C { Twin::C } else { Twin::Rust },
        "06-udp",
        "link",
        env!("CARGO_BIN_EXE_udp-link"),
    );
    // `echo $$` first: the script keeps that process id (exec), and
    // names its network namespaces after it.
    let command = format!(
        "echo $$; export SERVER='{}' CLIENT='{}' LINK='{link}' COUNT=12 INTERVAL=0 TIMEOUT=100 \
             RETRIES=8 LOSS=20 DELAY=10 JITTER=0 DUP=10 REORDER=0 SEED=1; exec sh '{script}'",
        imp.server, imp.client
    );
    let out = common::run("/bin/sh", &["-c", &command], b"");
    let text = out.stdout_text();
    assert_eq!(out.code(), Some(0), "{text}\n{}", out.stderr);
    let pid = text.lines().next().expect("the script's pid");
    assert!(text.contains("== what happened =="), "{text}");
    let summary = text
        .lines()
        .find(|l| l.starts_with("client: 12 datagrams sent, 12 received, 0.0% loss, "))
        .unwrap_or_else(|| panic!("no client summary, or a datagram lost: {text}"));
    // Random loss with netem: a retransmission is all but certain. With the
    // link, seed 1 loses some datagrams both ways, the same in every run.
    assert!(!summary.contains(" 0 retransmissions"), "{summary}");
    let server_got = text
        .lines()
        .find_map(|l| l.strip_prefix("server: received "))
        .and_then(|l| l.split(' ').next()?.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no server count: {text}"));
    assert!(server_got > 12, "{text}");
    if !text.contains("tc netem on both ends") {
        let why = text.lines().nth(2).unwrap_or_default();
        eprintln!("netem part skipped ({twin:?} programs): {why}");
        assert!(text.contains("link:   client -> server: "), "{text}");
        assert!(text.contains("link:   server -> client: "), "{text}");
    }
    // Nothing left behind: no namespace of this run.
    if let Ok(list) = Command::new("ip").args(["netns", "list"]).output() {
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            !list.contains(&format!("udpdemo-{pid}-")),
            "left behind: {list}"
        );
    }
}

// ---- Echo loops, reflection and floods (the UDP-port-7 advisories, CERT CA-1996-01)

/// The state of process `pid` in /proc/PID/stat: R running, S sleeping, T stopped...
fn process_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    let after = &stat[stat.rfind(')').expect("comm in /proc/PID/stat") + 2..];
    after.chars().next().unwrap_or('?')
}

/// Makes `server` receive `payload` from `from`, an address where a second
/// server is then started by `second`, without a raw socket: `server` is
/// stopped (SIGSTOP), a socket of ours bound to `from` sends the datagram,
/// which waits in the stopped server's queue, and is closed; the second
/// server takes `from`; `server` resumes (SIGCONT) and reads a datagram
/// that seems to come from the second server: its echo goes there.
fn forge_from_a_second_server(
    server: &Server,
    from: SocketAddr,
    payload: &[u8],
    second: impl FnOnce(u16) -> Server,
) -> Server {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(server.pid());
    kill(pid, Signal::SIGSTOP).expect("SIGSTOP the server");
    let deadline = Instant::now() + PATIENCE;
    while process_state(server.pid()) != 'T' {
        assert!(Instant::now() < deadline, "the server did not stop");
        thread::sleep(Duration::from_millis(1));
    }
    let port = {
        let sock = UdpSocket::bind(from).unwrap_or_else(|e| panic!("bind {from}: {e}"));
        sock.send_to(payload, server.addr).expect("send");
        sock.local_addr().expect("address").port()
    };
    let other = second(port);
    kill(pid, Signal::SIGCONT).expect("SIGCONT the server");
    other
}

/// Waits until `servers` use no CPU and log nothing over a 200 ms window
/// (one clock tick allowed); true when they did within `limit`, false if
/// they kept busy all along. Nothing signals "not spinning": it takes a
/// measure. (The log counts too: a server blocked writing its log to a full
/// pipe uses no CPU, yet it is not done.)
fn quiet(servers: &mut [&mut Server], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let state = |servers: &mut [&mut Server]| -> Vec<(u64, usize)> {
        servers
            .iter_mut()
            .map(|s| (common::cpu_ticks(s.pid()), s.log_now().len()))
            .collect()
    };
    loop {
        let before = state(servers);
        thread::sleep(Duration::from_millis(200));
        let after = state(servers);
        let still = |((t0, n0), (t1, n1)): (&(u64, usize), &(u64, usize))| t1 - t0 <= 1 && n1 == n0;
        if before.iter().zip(&after).all(still) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// What a server's log lines say it did with datagrams: (echoed, dropped),
/// the lines not logged included, as its summary lines count them.
fn tally(log: &[String]) -> (u64, u64) {
    let (mut echoed, mut dropped) = (0, 0);
    for line in log {
        if let Some(rest) = line.strip_prefix("... ") {
            // "... N more datagrams not logged (E echoed, D dropped)"
            let numbers: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            assert_eq!(numbers.len(), 3, "summary line: {line}");
            assert_eq!(numbers[0], numbers[1] + numbers[2], "summary line: {line}");
            echoed += numbers[1];
            dropped += numbers[2];
        } else if line.starts_with("datagram of ") {
            if line.contains(" dropped (") {
                dropped += 1;
            } else {
                echoed += 1;
            }
        }
    }
    (echoed, dropped)
}

/// The server still echoes an ordinary client, and logs it (after the lines
/// before it, which the test then has in `server.log`); returns the
/// client's address.
fn still_echoes(server: &mut Server) -> SocketAddr {
    let sock = udp_socket();
    sock.send_to(b"still there?", server.addr).expect("send");
    let mut buf = [0u8; 64];
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("an echo for an ordinary client");
    assert_eq!(&buf[..n], b"still there?");
    let me = sock.local_addr().expect("address");
    server.expect(&format!("datagram of 12 bytes from {me}"));
    me
}

/// A UDP datagram from `from_port` to `to`, sent through a raw socket
/// (raw(7)) with the source address the kernel picks for `to`: on loopback
/// 127.0.0.1. Needs CAP_NET_RAW (root); Err says why not.
fn send_forged(from_port: u16, to: SocketAddr, payload: &[u8]) -> Result<(), String> {
    use nix::sys::socket::{
        AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage, sendto, socket,
    };
    use std::os::fd::AsRawFd;
    let raw = socket(
        AddressFamily::Inet,
        SockType::Raw,
        SockFlag::empty(),
        SockProtocol::Udp,
    )
    .map_err(|e| format!("socket(SOCK_RAW): {e}"))?;
    // The UDP header (RFC 768), then the payload; checksum 0: none, which
    // IPv4 allows.
    let mut packet = Vec::new();
    packet.extend_from_slice(&from_port.to_be_bytes());
    packet.extend_from_slice(&to.port().to_be_bytes());
    packet.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(payload);
    let dest = SockaddrStorage::from(SocketAddr::new(to.ip(), 0));
    sendto(raw.as_raw_fd(), &packet, &dest, MsgFlags::empty())
        .map(|_| ())
        .map_err(|e| format!("sendto(SOCK_RAW): {e}"))
}

/// Hint: keep the given rules between recvfrom(2) and sendto(2): no echo to
/// our own port nor to a port below 1024 (README.md, "Echo loops and
/// reflection").
fn a_datagram_from_the_servers_own_port_or_a_service_port_is_never_echoed(twin: Twin) {
    let imp = &Udp::of(twin);
    // Another server on the same port, at another address of this
    // host: the classic port-7-to-port-7 loop, started by one datagram
    // forged to come from it. No root needed (see forge_from_a_second_server).
    let mut a = start(imp, &[]);
    let port = a.port();
    let b_addr = SocketAddr::from(([127, 0, 0, 2], port));
    let mut b = forge_from_a_second_server(&a, b_addr, b"loop?", |port| {
        Server::start(&imp.server, &[&port.to_string(), "--bind", "127.0.0.2"])
    });
    let first = a.expect(&format!("from {b_addr}"));
    assert!(
        quiet(&mut [&mut a, &mut b], Duration::from_secs(3)),
        "two servers on port {port} still bounce a datagram after 3 s; first line {first:?}, \
             then {} lines",
        a.log_now().len()
    );
    assert_eq!(
        first,
        format!("datagram of 5 bytes from {b_addr} dropped (from our own port: an echo loop)")
    );
    assert_eq!(
        b.log_now(),
        ["listening on 127.0.0.2:".to_string() + &port.to_string()]
    );
    still_echoes(&mut a);

    // A datagram forged with the server's own address as its source: it
    // would echo to itself for ever. Forging it takes a raw socket.
    let mut a = start(imp, &[]);
    match send_forged(a.port(), a.addr, b"myself?") {
        Err(why) => eprintln!(
            "{twin:?}: the own-address case skipped ({why}; it needs root or CAP_NET_RAW)"
        ),
        Ok(()) => {
            let first = a.expect(&format!("from {}", a.addr));
            assert!(
                quiet(&mut [&mut a], Duration::from_secs(3)),
                "the server still echoes to itself after 3 s: {} lines",
                a.log_now().len()
            );
            assert_eq!(
                first,
                format!(
                    "datagram of 7 bytes from {} dropped (from our own port: an echo loop)",
                    a.addr
                )
            );
            assert_eq!(a.log_now().len(), 2, "{:?}", a.log);
            still_echoes(&mut a);
        }
    }

    // From a port below 1024: echo (7), chargen (19), DNS (53) answer
    // too; a real client never sends from there.
    let service = (900..1024).find_map(|p| UdpSocket::bind(("127.0.0.1", p)).ok());
    match service {
        None => eprintln!(
            "{twin:?}: the service-port case skipped (binding a port below 1024 needs root)"
        ),
        Some(sock) => {
            let from = sock.local_addr().expect("address");
            sock.send_to(b"chargen?", a.addr).expect("send");
            let line = a.expect(&format!("from {from}"));
            assert_eq!(
                line,
                format!("datagram of 8 bytes from {from} dropped (from a service port below 1024)")
            );
        }
    }
}

/// Needs: one_socket_serves_every_peer_and_keeps_message_boundaries
/// Hint: keep the given echo bucket between recvfrom(2) and sendto(2): a
/// dropped datagram gets no sendto(2) (README.md, "Echo loops and
/// reflection").
fn two_echo_servers_stop_bouncing_a_forged_datagram(twin: Twin) {
    let imp = &Udp::of(twin);
    // B is an echo server on another port: one datagram forged to come
    // from B makes A echo to B, B echo to A, and so on: only a limit on
    // the echoes ends it (500 at once, then 1000 a second).
    let mut a = start(imp, &[]);
    let from = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut b = forge_from_a_second_server(&a, from, b"ping-pong", |port| {
        Server::start(&imp.server, &[&port.to_string(), "--bind", "127.0.0.1"])
    });
    let started = Instant::now();
    a.expect(&format!("datagram of 9 bytes from {}", b.addr));
    assert!(
        quiet(&mut [&mut a, &mut b], Duration::from_secs(5)),
        "A and B still bounce the datagram after 5 s: {} and {} log lines",
        a.log_now().len(),
        b.log_now().len()
    );
    let took = started.elapsed();
    // The log is bounded too: 100 lines at once, then 10 a second.
    let bound = 1 + 100 + (20.0 * took.as_secs_f64()) as usize + 2;
    for (name, server) in [("A", &mut a), ("B", &mut b)] {
        let lines = server.log_now().len();
        assert!(lines <= bound, "{name} logged {lines} lines in {took:?}");
    }
    // Ordinary clients get their echoes, and with them the summary of
    // what was not logged.
    still_echoes(&mut a);
    still_echoes(&mut b);
    let (a_echoed, a_dropped) = tally(&a.log);
    let (b_echoed, b_dropped) = tally(&b.log);
    assert_eq!(
        a_dropped + b_dropped,
        1,
        "one drop ends the loop; A {:?}, B {:?}",
        a.log,
        b.log
    );
    // Each started with a full bucket of 500 echoes (and an ordinary
    // client's echo is counted here too).
    assert!(a_echoed.min(b_echoed) >= 500, "A {a_echoed}, B {b_echoed}");
    let most = 500 + (1000.0 * took.as_secs_f64()) as u64 + 1;
    assert!(
        a_echoed.max(b_echoed) <= most,
        "A {a_echoed}, B {b_echoed} in {took:?}"
    );
    let limit = if a_dropped == 1 { &a } else { &b };
    assert!(
        limit
            .log
            .iter()
            .any(|l| l.contains("dropped (over the echo limit)"))
            || limit
                .log
                .iter()
                .any(|l| l.starts_with("... ") && l.ends_with(" 1 dropped)")),
        "{:?}",
        limit.log
    );
}

/// Needs: one_socket_serves_every_peer_and_keeps_message_boundaries
/// Hint: keep the given log and echo buckets, and one recvfrom(2) per datagram
/// (README.md, "Echo loops and reflection").
fn a_flood_is_logged_in_a_few_lines_and_echoed_at_a_bounded_rate(twin: Twin) {
    let imp = &Udp::of(twin);
    let mut server = start(imp, &[]);
    let flooder = udp_socket();
    let started = Instant::now();
    for i in 0..20_000u32 {
        flooder
            .send_to(&i.to_be_bytes(), server.addr)
            .expect("send");
    }
    assert!(
        quiet(&mut [&mut server], Duration::from_secs(10)),
        "the server is still busy 10 s after a flood of 20,000 datagrams"
    );
    let took = started.elapsed();
    // Wait for the log lines printed so far to reach us: the probe's
    // line comes after them.
    let me = still_echoes(&mut server);
    let log: Vec<String> = server.log.clone();
    let flood: Vec<&String> = log
        .iter()
        .filter(|l| !l.starts_with("listening on ") && !l.contains(&me.to_string()))
        .collect();
    // 100 lines at once, then 10 a second, each at most with a summary.
    let bound = 100 + (20.0 * took.as_secs_f64()) as usize + 2;
    assert!(
        flood.len() <= bound,
        "{} log lines for the flood in {took:?}; the first: {:?}",
        flood.len(),
        &flood[..flood.len().min(3)]
    );
    let summary = flood
        .iter()
        .find(|l| l.starts_with("... "))
        .unwrap_or_else(|| panic!("no summary line: {flood:?}"));
    assert!(summary.ends_with(" dropped)"), "{summary}");
    // Echoes: 500 at once, then 1000 a second (the probe's included).
    // How many the server received depends on how fast it read: its
    // socket's queue holds a few hundred of these (socket(7), SO_RCVBUF),
    // and the kernel drops the rest when it is full.
    let (echoed, dropped) = tally(&log);
    let most = 500 + (1000.0 * took.as_secs_f64()) as u64 + 1;
    assert!(
        echoed <= most,
        "{echoed} echoes (and {dropped} dropped) in {took:?}"
    );
}
