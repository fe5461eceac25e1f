//! Test harness: runs the built programs and talks to them over real sockets.
//!
//! A server is started on port 0; its first line, `listening on ADDR:PORT`,
//! says where it is. Its log lines are events the tests wait for (with a
//! bound), never a sleep. Every wait is bounded: a hung program fails the
//! test instead of hanging the suite.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant};

/// How long to wait for something that should happen at once. Generous: the
/// suite runs on a loaded 2-core machine, and only a failing test waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    /// Where to connect: the address it listens on (0.0.0.0 and :: become loopback).
    pub addr: SocketAddr,
    out: Receiver<String>,
    err: Receiver<String>,
    /// Every stdout line seen so far, for assertions and failure messages.
    pub log: Vec<String>,
}

impl Server {
    /// Starts `bin` with `args` and waits for its `listening on` line.
    pub fn start(bin: &str, args: &[&str]) -> Server {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let out = lines_of(child.stdout.take().expect("stdout is piped"));
        let err = lines_of(child.stderr.take().expect("stderr is piped"));
        let mut server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            out,
            err,
            log: Vec::new(),
        };
        let first = server.expect("listening on ");
        let listening: SocketAddr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the first line must be the readiness line, not {first:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("bad readiness line {first:?}: {e}"));
        server.addr = match listening.ip() {
            ip if ip == Ipv4Addr::UNSPECIFIED => {
                SocketAddr::from((Ipv4Addr::LOCALHOST, listening.port()))
            }
            ip if ip == Ipv6Addr::UNSPECIFIED => {
                SocketAddr::from((Ipv6Addr::LOCALHOST, listening.port()))
            }
            _ => listening,
        };
        server
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's process id, for /proc and signals.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stdout line that contains `part` and returns it.
    pub fn expect(&mut self, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(part) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {part:?} in {PATIENCE:?}; saw {:?}", self.log)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "server ended before printing {part:?}; stdout {:?}, stderr {:?}",
                    self.log,
                    self.stderr_now()
                ),
            }
        }
    }

    /// The stdout lines printed so far, without waiting.
    pub fn log_now(&mut self) -> &[String] {
        self.log.extend(self.out.try_iter());
        &self.log
    }

    /// Waits for a stderr line that contains `part` and returns it.
    pub fn expect_err(&mut self, part: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) if line.contains(part) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("no stderr line with {part:?}; saw {seen:?}"),
            }
        }
    }

    fn stderr_now(&self) -> Vec<String> {
        self.err.try_iter().collect()
    }

    /// Connects a client socket to the server.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, PATIENCE)
            .unwrap_or_else(|e| panic!("connect {}: {e}", self.addr));
        stream
            .set_read_timeout(Some(PATIENCE))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(PATIENCE))
            .expect("set write timeout");
        stream
    }

    /// Waits (bounded) for the server to exit by itself and returns its status.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => panic!("the server did not exit within {PATIENCE:?}"),
                Err(e) => panic!("wait: {e}"),
            }
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// What a finished program printed.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `bin` with `args`, `input` on its stdin, and waits (bounded) for it to end.
pub fn run(bin: &str, args: &[&str], input: &[u8]) -> Run {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(&input); // the program may exit without reading it all
    });
    let pid = child.id();
    let (tx, rx) = channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(PATIENCE) {
        Ok(output) => output.expect("wait for the program"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{bin} {args:?} did not end within {PATIENCE:?}");
        }
    };
    let _ = feeder.join();
    let run = Run {
        status: output.status,
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
        "{bin} panicked: {}",
        run.stderr
    );
    run
}

/// Sends `line` and reads back exactly as many bytes.
pub fn echo(stream: &mut TcpStream, line: &[u8]) -> Vec<u8> {
    stream.write_all(line).expect("send");
    let mut back = vec![0; line.len()];
    stream.read_exact(&mut back).expect("read the echo");
    back
}

/// Deterministic bytes that are not text: every value 0..=255 appears.
pub fn binary_payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The interface every lab's server shares (CONVENTIONS.md): `--help` on
/// stdout with exit 0, bad arguments with exit 2 and the usage on stderr, and
/// a port in use reported as `bind ADDR: reason` with exit 1.
pub fn check_server_arguments(bin: &str) {
    let out = run(bin, &["--help"], b"");
    assert_eq!(out.code(), Some(0), "--help: {}", out.stderr);
    assert!(
        out.stdout_text().starts_with("usage: server "),
        "--help: {}",
        out.stdout_text()
    );
    assert!(out.stderr.is_empty(), "--help: {}", out.stderr);

    let cases: &[(&[&str], &str)] = &[
        (&["abc"], "invalid PORT 'abc'"),
        (&["70000"], "invalid PORT '70000'"),
        (&["-1"], "unknown option '-1'"),
        (&["--bogus"], "unknown option '--bogus'"),
        (&["4242", "4243"], "unexpected argument '4243'"),
        (&["--bind"], "--bind needs a value"),
        (&["--bind", "nowhere"], "invalid ADDR 'nowhere'"),
    ];
    for (args, message) in cases {
        check_usage_error(bin, args, message);
    }

    let server = Server::start(bin, &["0", "--bind", "127.0.0.1"]);
    let port = server.port().to_string();
    let out = run(bin, &[&port, "--bind", "127.0.0.1"], b"");
    assert_eq!(out.code(), Some(1), "port in use: {}", out.stderr);
    assert_eq!(
        out.stderr,
        format!("bind 127.0.0.1:{port}: Address already in use\n")
    );
}

/// `bin args` must exit 2 with `message` and the usage on stderr, nothing on stdout.
pub fn check_usage_error(bin: &str, args: &[&str], message: &str) {
    let out = run(bin, args, b"");
    assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    assert!(out.stderr.starts_with(message), "{args:?}: {}", out.stderr);
    assert!(out.stderr.contains("usage: "), "{args:?}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
}

/// Closes `stream` with a RST instead of a FIN: SO_LINGER with a zero
/// timeout makes close(2) abort the connection (socket(7)).
pub fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(&stream, nix::sys::socket::sockopt::Linger, &linger)
        .expect("setsockopt SO_LINGER");
    drop(stream);
}

impl Server {
    /// The stderr lines printed so far and not yet seen by `expect_err`,
    /// without waiting.
    pub fn errors_now(&mut self) -> Vec<String> {
        self.stderr_now()
    }
}

/// Raises this process's soft limit on open files (the programs it starts
/// inherit it) so that `wanted` descriptors fit; false if the hard limit is lower.
pub fn allow_descriptors(wanted: u64) -> bool {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return false;
    };
    if soft >= wanted {
        return true;
    }
    hard >= wanted && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok()
}

/// The resident memory of process `pid` in KiB (VmRSS in /proc/PID/status).
pub fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The CPU time process `pid` has used, user and system, in clock ticks
/// (utime + stime in /proc/PID/stat): a server that spins shows it here.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // "pid (comm) state ...": comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')').expect("comm in /proc/PID/stat") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    field(11).unwrap_or(0) + field(12).unwrap_or(0)
}

/// The descriptors process `pid` has open (the entries of /proc/PID/fd).
pub fn open_descriptors(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}
