//! The load generator, run as a program: against lab 04's poll server for
//! a second in each mode, against a server that corrupts its echo, and with
//! bad arguments. `make bench-smoke` (part of `make test`) builds the server.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");
/// Every wait is bounded: a hung program fails the test, not the suite.
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs loadgen with `args` and waits for it, at most PATIENCE.
fn loadgen(args: &[&str]) -> Output {
    let mut child = Command::new(LOADGEN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("loadgen runs");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("loadgen {args:?} did not finish within {PATIENCE:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("loadgen's output")
}

/// The CSV row of a run, by column name.
fn csv(output: &Output) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("a header line");
    let row = lines.next().expect("a row");
    header
        .split(',')
        .zip(row.split(','))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {:?}", row[column]))
}

/// Lab 04's server, built by `cargo build --bin poll-server` into the
/// directory that holds loadgen.
struct PollServer {
    child: Child,
    port: u16,
}

impl PollServer {
    fn start() -> PollServer {
        let bin: PathBuf = PathBuf::from(LOADGEN).with_file_name("poll-server");
        assert!(
            bin.is_file(),
            "{} is missing: build it first (`cargo build --bin poll-server`; make bench-smoke does)",
            bin.display()
        );
        let mut child = Command::new(&bin)
            .args(["0", "--bind", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("poll-server runs");
        let out = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Read the readiness line, then keep draining: a full pipe would
        // block the server.
        thread::spawn(move || {
            let mut reader = BufReader::new(out);
            let mut line = String::new();
            if reader.read_line(&mut line).is_ok() {
                let _ = tx.send(line);
            }
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        });
        let line = rx.recv_timeout(PATIENCE).expect("a readiness line");
        let port = line
            .trim_end()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad readiness line {line:?}"));
        PollServer { child, port }
    }
}

impl Drop for PollServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_mode_against_the_poll_server() {
    let server = PollServer::start();
    let port = server.port.to_string();
    let common = ["--warmup", "0.2", "--threads", "2", "--format", "csv"];

    let active = loadgen(&[&[&*port, "--conns", "4", "--duration", "1"][..], &common].concat());
    assert!(active.status.success(), "{active:?}");
    let row = csv(&active);
    assert!(number(&row, "rate_per_s") > 0.0, "{row:?}");
    assert_eq!(number(&row, "served"), 4.0, "{row:?}");
    assert_eq!(number(&row, "mismatches"), 0.0);
    assert_eq!(number(&row, "dropped"), 0.0);
    assert!(number(&row, "bytes_verified") >= 64.0 * number(&row, "round_trips"));
    assert!(number(&row, "p99_us") >= number(&row, "p50_us"));

    let idle = loadgen(
        &[
            &[&*port, "--mode", "idle", "--conns", "2", "--idle", "50"][..],
            &["--duration", "0.3", "--size", "1000"],
            &common,
        ]
        .concat(),
    );
    assert!(idle.status.success(), "{idle:?}");
    let row = csv(&idle);
    assert!(number(&row, "rate_per_s") > 0.0, "{row:?}");
    assert_eq!(number(&row, "idle_held"), 50.0, "{row:?}");
    assert_eq!(number(&row, "connected"), 52.0, "{row:?}");

    let churn = loadgen(
        &[
            &[
                &*port,
                "--mode",
                "churn",
                "--conns",
                "4",
                "--duration",
                "0.5",
            ][..],
            &common,
        ]
        .concat(),
    );
    assert!(churn.status.success(), "{churn:?}");
    let row = csv(&churn);
    assert!(number(&row, "rate_per_s") > 0.0, "{row:?}");
    assert_eq!(number(&row, "mismatches"), 0.0);

    // Text output says the same in words.
    let text = loadgen(&[&port, "--conns", "2", "--duration", "0.2", "--warmup", "0"]);
    assert!(text.status.success(), "{text:?}");
    let words = String::from_utf8_lossy(&text.stdout);
    assert!(words.contains("all as sent"), "{words}");
    assert!(words.contains("2 of 2 active connections"), "{words}");
}

#[test]
fn an_echo_that_differs_is_caught() {
    // A server that echoes every chunk with its last byte changed.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("port").port();
    thread::spawn(move || {
        for stream in listener.incoming().take(8).flatten() {
            thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    buf[n - 1] ^= 0x20;
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let out = loadgen(&[
        &port.to_string(),
        "--conns",
        "2",
        "--duration",
        "0.2",
        "--warmup",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("differed from what was sent"), "{stderr}");
}

#[test]
fn bad_arguments_and_no_server_are_clean_errors() {
    let help = loadgen(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: loadgen"));

    for args in [
        &["--mode", "busy"][..],
        &["--idle", "5"],
        &["--conns", "0"],
        &["--size", "0"],
        &["--duration", "-1"],
        &["--bogus"],
        &["70000"],
    ] {
        let out = loadgen(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("usage: loadgen"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // A port nobody listens on: find a free one, then let it go.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = loadgen(&[&port.to_string(), "--duration", "0.1", "--warmup", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Connection refused"), "{stderr}");
}

/// Lab 04's Rust server under callgrind and strace, twice: the counts are
/// those of its loop (one poll, one read, one write per round trip) and
/// the same from run to run, which is what makes them the Rust/C figure.
#[test]
fn work_per_round_trip_is_counted_and_repeats() {
    use socket_labs_bench::count::{self, Exchange, Scratch, Tools};
    use socket_labs_bench::suite::DESIGNS;

    let tools = Tools::find();
    assert!(
        tools.missing().is_none(),
        "{} (.ci/run installs them)",
        tools.missing().unwrap_or_default()
    );
    let bin: PathBuf = PathBuf::from(LOADGEN).with_file_name("poll-server");
    let poll = DESIGNS
        .iter()
        .find(|d| d.lab == "04-poll")
        .expect("lab 04 is a design");
    // 300 round trips between the two exchanges: a turn of the server's
    // loop more or less while connections open or close (timing) moves the
    // figures by a few thousandths only.
    let exchange = Exchange {
        conns: 3,
        short: 5,
        long: 105,
        size: 64,
    };
    let scratch = Scratch::new().expect("a scratch directory");
    let first = count::measure(&bin, poll, exchange, tools, None, &scratch.0);
    let second = count::measure(&bin, poll, exchange, tools, None, &scratch.0);
    for work in [&first, &second] {
        assert_eq!(work.problem, None);
        assert!(
            work.syscalls.is_some_and(|n| (n - 3.0).abs() < 0.01),
            "{work:?}"
        );
        let calls: Vec<&str> = work.by_call.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(calls, ["poll", "read", "write"], "{work:?}");
    }
    let (a, b) = (first.instructions.unwrap(), second.instructions.unwrap());
    assert!(a > 50.0, "{first:?}");
    assert!(
        (a - b).abs() <= a * 0.005,
        "{a} then {b} instructions per round trip"
    );
}

/// The server's CPU time in the window is read from /proc, and is some.
#[test]
fn the_servers_cpu_time_is_measured_in_the_window() {
    use socket_labs_bench::load::{self, Config, Mode};
    use socket_labs_bench::server::Server;

    let bin: PathBuf = PathBuf::from(LOADGEN).with_file_name("poll-server");
    let server = Server::start(&bin, &[], None).expect("poll-server starts");
    let report = load::run(&Config {
        mode: Mode::Active,
        port: server.port,
        conns: 4,
        idle: 0,
        size: 64,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        threads: 1,
        server: Some(server.pid()),
    })
    .expect("a run");
    server.stop();
    assert!(report.round_trips > 0);
    let cpu = report.server_cpu_seconds.expect("measured");
    // Busy for half a second: some ticks, and no more than the window.
    assert!(cpu > 0.0 && cpu <= 0.6, "{cpu} s");
    assert!(report.server_us_per_rt().is_some_and(|us| us > 0.0));
}
