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
                    self.stderr_at_end()
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

    /// What the server printed on stderr before it ended: its reader thread
    /// may not have passed the last lines on yet (bounded wait).
    fn stderr_at_end(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut lines = Vec::new();
        while let Ok(line) = self
            .err
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        lines
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
        // A check that fails because the server ended (a starter's `TODO
        // ...: not written yet`, an exit in the middle of a session) says
        // why: its stderr, which make check shows under the failure.
        // The client may see its connection closed a moment before the
        // process is reaped: a short, bounded wait for it.
        if thread::panicking() {
            let deadline = Instant::now() + Duration::from_millis(300);
            let status = loop {
                match self.child.try_wait() {
                    Ok(None) if Instant::now() < deadline => {
                        thread::sleep(Duration::from_millis(10))
                    }
                    Ok(status) => break status,
                    Err(_) => break None,
                }
            };
            // (Server::expect has said it already if it saw the end.)
            let stderr = if status.is_some() {
                self.stderr_at_end()
            } else {
                Vec::new()
            };
            if let (Some(status), false) = (status, stderr.is_empty()) {
                eprintln!("the server ended ({status}); its stderr: {stderr:?}");
            }
        }
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
    run_within(bin, args, input, PATIENCE)
}

/// As [`run`], but the program must end within `limit`: for a check that
/// knows how long a right program takes, and fails fast one that waits for
/// ever.
pub fn run_within(bin: &str, args: &[&str], input: &[u8], limit: Duration) -> Run {
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
    let output = match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for the program"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("{bin} {args:?} did not end within {limit:?}");
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

/// `bin args` must exit 2 with the usage on stderr and nothing on stdout.
/// A reference Rust program must say `message` first; a C twin, or a
/// student's program, says what is wrong in its own words (getopt_long(3)'s,
/// say), which are not checked.
pub fn check_usage_error(bin: &str, args: &[&str], message: &str) {
    let out = run(bin, args, b"");
    assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
    if !is_c_twin(bin) && !is_student_program(bin) {
        assert!(out.stderr.starts_with(message), "{args:?}: {}", out.stderr);
    }
    assert!(out.stderr.contains("usage: "), "{args:?}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{args:?}: stdout not empty");
}

/// Whether `bin` is a C twin (labs/NN-name/PROG-c) rather than a Rust program.
pub fn is_c_twin(bin: &str) -> bool {
    bin.ends_with("-c")
}

/// Whether `bin` is a student's program that `make check` runs.
pub fn is_student_program(bin: &str) -> bool {
    ["server", "client"]
        .iter()
        .any(|prog| student_program(prog).as_deref() == Some(bin))
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

/// Whether `wanted` descriptors fit (see [`allow_descriptors`]). If not,
/// `make test` skips the check with a line on stderr, as this machine
/// cannot run it; `make check` fails it and says why: a student's program
/// must not pass a check that never ran.
pub fn descriptors_for(twin: Twin, wanted: u64) -> bool {
    if allow_descriptors(wanted) {
        return true;
    }
    let why = format!("the hard RLIMIT_NOFILE is below {wanted}");
    assert!(
        twin != Twin::Student,
        "not checked: {why} (ulimit -Hn); raise it, then make check again"
    );
    eprintln!("skipped: {why}");
    false
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

/// How long process `pid` was running or ready to run (waiting for a CPU)
/// while the test slept for `window`: the first two fields of
/// /proc/PID/schedstat, in nanoseconds. A process that spins is always one
/// or the other, however loaded the machine, so this comes close to the
/// whole window; one asleep in poll(2) is neither. (CPU time alone shrinks
/// on a busy machine: a spinner may get little of it.)
pub fn busy_during(pid: i32, window: Duration) -> Duration {
    let busy = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).expect("schedstat");
        let mut ns = stat
            .split(' ')
            .map(|f| f.trim().parse::<u64>().unwrap_or(0));
        ns.next().unwrap_or(0) + ns.next().unwrap_or(0)
    };
    let before = busy();
    std::thread::sleep(window);
    Duration::from_nanos(busy().saturating_sub(before))
}

/// The state letter (R, S, Z...) of every child of `parent`, from /proc/PID/stat.
pub fn children_states(parent: i32) -> Vec<(i32, char)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue; // it ended while we looked
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = after.split(' ');
        let state = fields.next().and_then(|s| s.chars().next());
        let ppid = fields.next().and_then(|p| p.parse::<i32>().ok());
        if let (Some(state), Some(ppid)) = (state, ppid)
            && ppid == parent
        {
            found.push((pid, state));
        }
    }
    found
}

/// How many children of `parent` are zombies (state Z): exited, not reaped.
pub fn zombies(parent: i32) -> usize {
    children_states(parent)
        .iter()
        .filter(|(_, s)| *s == 'Z')
        .count()
}

/// How many read(2) calls (and the like) process `pid` has made so far
/// (syscr in /proc/PID/io): when it stops growing, the process stopped
/// reading.
pub fn read_calls(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscr in /proc/PID/io")
}

/// The descriptors process `pid` has open (the entries of /proc/PID/fd).
pub fn open_descriptors(pid: i32) -> Vec<i32> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// A client program with its stdin kept open (typed to with `type_line`)
/// and its stdout read line by line; killed when dropped.
pub struct Interactive {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line seen so far.
    pub seen: Vec<String>,
}

impl Interactive {
    pub fn start(bin: &str, args: &[&str]) -> Interactive {
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
        let stdin = child.stdin.take();
        let lines = lines_of(child.stdout.take().expect("stdout is piped"));
        Interactive {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next stdout line (bounded wait).
    pub fn line(&mut self) -> String {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no line from the client; saw {:?}", self.seen));
        self.seen.push(line.clone());
        line
    }

    /// Waits for a stdout line containing `part` and returns it.
    pub fn expect(&mut self, part: &str) -> String {
        loop {
            let line = self.line();
            if line.contains(part) {
                return line;
            }
        }
    }

    /// Writes `text` and a newline to the program's stdin.
    pub fn type_line(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .expect("write to the client's stdin");
    }

    /// Waits (bounded) for the program to exit, its stdin closed first or
    /// not; returns its exit code, stderr, and the stdout lines not yet read.
    pub fn finish(mut self, close_stdin: bool) -> (Option<i32>, String, Vec<String>) {
        if close_stdin {
            drop(self.stdin.take());
        }
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        // The reader thread ends at the program's EOF: collect what is left.
        let rest = self.lines.try_iter().collect::<Vec<_>>();
        let more: Vec<String> = self.lines.iter().collect();
        (
            status.code(),
            stderr,
            rest.into_iter().chain(more).collect(),
        )
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- C twins: each lab's tests run against its Rust programs and its C twins

/// Which implementation of a lab a test runs against: the Rust programs,
/// their C twins (labs/NN-name/server-c, client-c, built by `make c`), or a
/// student's programs (`make check`, see [`student_program`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Twin {
    Rust,
    C,
    Student,
}

/// The program a test runs as `prog` ("server" or "client") of `lab`:
/// `rust` (the reference, a Cargo binary), its C twin, or for
/// [`Twin::Student`] the student's (CHECK_SERVER, CHECK_CLIENT), the
/// [`stand_in`] for the one the student did not give.
pub fn program(twin: Twin, lab: &str, prog: &str, rust: &str) -> String {
    match twin {
        Twin::Rust => rust.to_string(),
        Twin::C => c_twin(lab, prog),
        Twin::Student => student_program(prog).unwrap_or_else(|| stand_in(lab, prog, rust)),
    }
}

/// A reference program that a check needs but does not grade: `rust`, or
/// its C twin when CHECK_STAND_IN is `c`, as tools/check sets it in a Rust
/// hand-out, whose Rust programs are starters (tools/handout).
pub fn stand_in(lab: &str, prog: &str, rust: &str) -> String {
    if std::env::var("CHECK_STAND_IN").is_ok_and(|v| v == "c") {
        c_twin(lab, prog)
    } else {
        rust.to_string()
    }
}

/// The student's `prog` ("server" or "client") that `make check` runs the
/// checks against: the path in CHECK_SERVER or CHECK_CLIENT (tools/check
/// sets them), if any.
pub fn student_program(prog: &str) -> Option<String> {
    std::env::var(format!("CHECK_{}", prog.to_uppercase()))
        .ok()
        .filter(|path| !path.is_empty())
}

/// `for_rust_and_c!(a_test, another)`: for each `fn a_test(twin: Twin)` in
/// the file, the tests `a_test::rust` and `a_test::c`, one body, both twins;
/// and `a_test::student`, ignored unless `make check` asks for it (it runs
/// the same check against a student's programs: tools/check).
#[macro_export]
macro_rules! for_rust_and_c {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            $crate::rust_and_c_tests!($name);

            #[test]
            #[ignore = "make check LAB=... runs it against a student's programs"]
            fn student() {
                super::$name($crate::common::Twin::Student)
            }
        }
    )+};
}

/// `for_the_twins!(a_test, another)`: `a_test::rust` and `a_test::c` only,
/// for the tests of a program students do not write (lab 06's link): no
/// `::student` variant, so `make check` does not grade it.
#[macro_export]
macro_rules! for_the_twins {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            $crate::rust_and_c_tests!($name);
        }
    )+};
}

/// The two tests of `fn NAME(twin: Twin)` (for the macros above).
#[macro_export]
macro_rules! rust_and_c_tests {
    ($name:ident) => {
        #[test]
        fn rust() {
            super::$name($crate::common::Twin::Rust)
        }

        #[test]
        fn c() {
            super::$name($crate::common::Twin::C)
        }
    };
}

/// The path of a C twin, labs/LAB/PROG-c. Fails (a missing twin must not
/// pass silently) when it is missing or older than its PROG.c, saying to
/// run `make c`, which `make test` does before cargo test.
pub fn c_twin(lab: &str, prog: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("labs")
        .join(lab);
    let bin = dir.join(format!("{prog}-c"));
    let modified = |name: &str| {
        std::fs::metadata(dir.join(name))
            .and_then(|m| m.modified())
            .ok()
    };
    match (
        modified(&format!("{prog}-c")),
        modified(&format!("{prog}.c")),
    ) {
        (None, _) => panic!(
            "labs/{lab}/{prog}-c is missing: run `make c` to build the C twins (`make test` does)"
        ),
        (Some(built), Some(source)) if built < source => panic!(
            "labs/{lab}/{prog}-c is older than {prog}.c: run `make c` to rebuild the C twins"
        ),
        _ => bin.to_string_lossy().into_owned(),
    }
}

/// A Rust program and its C twin agree on their arguments: run with the
/// same ones, they exit alike; `--help` prints a usage with the same
/// synopsis (its first line) on stdout; a usage error gives that synopsis on
/// stderr; a call that fails at once is reported in the same words (`call
/// ADDR: reason`). The wording of argument errors may differ: each twin says
/// them in its own language's words. No case may start a server.
pub fn check_twins_agree_on_arguments(rust: &str, c: &str, cases: &[&[&str]]) {
    let synopsis = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("usage: "))
            .map(str::to_string)
    };
    for args in cases {
        let (r, c) = (run(rust, args, b""), run(c, args, b""));
        let what = format!("Rust (left) and C (right) differ for {args:?}");
        assert_eq!(r.code(), c.code(), "{what}: {} / {}", r.stderr, c.stderr);
        match r.code() {
            Some(0) => {
                let (r, c) = (r.stdout_text(), c.stdout_text());
                assert!(synopsis(&r).is_some(), "{what}: no usage in {r}");
                assert_eq!(synopsis(&r), synopsis(&c), "{what}");
            }
            Some(2) => {
                assert!(synopsis(&r.stderr).is_some(), "{what}: {}", r.stderr);
                assert_eq!(synopsis(&r.stderr), synopsis(&c.stderr), "{what}");
                assert!(r.stdout.is_empty() && c.stdout.is_empty(), "{what}");
            }
            _ => assert_eq!(
                (r.stdout_text(), &r.stderr),
                (c.stdout_text(), &c.stderr),
                "{what}"
            ),
        }
    }
}

// ---- Lab 07: a raw IRC connection, as one would type it with `nc -C`

/// One IRC connection to a chat server, spoken line by line. Reads wait at
/// most PATIENCE (the stream's read timeout): a missing reply fails the test.
pub struct Irc {
    /// The nick sent by `login`, if any.
    pub nick: String,
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    /// Whether `expect` and `until` answer the server's PINGs (yes unless
    /// a test wants a silent client).
    pub answer_pings: bool,
    syncs: u32,
}

impl Irc {
    /// Connects to the server, without registering.
    pub fn connect(server: &Server) -> Irc {
        let writer = server.connect();
        let reader = BufReader::new(writer.try_clone().expect("clone the stream"));
        Irc {
            nick: String::new(),
            writer,
            reader,
            answer_pings: true,
            syncs: 0,
        }
    }

    /// Connects, registers as `nick` and reads the welcome burst, returned.
    pub fn register(server: &Server, nick: &str) -> (Irc, Vec<String>) {
        let mut irc = Irc::connect(server);
        irc.login(nick);
        let burst = irc.welcome();
        (irc, burst)
    }

    /// Sends NICK and USER (user name `nick`, real name `Real nick`).
    pub fn login(&mut self, nick: &str) {
        self.nick = nick.to_string();
        self.send(&format!("NICK {nick}\r\nUSER {nick} 0 * :Real {nick}"));
    }

    /// The lines up to the end of the welcome burst: 422 (no MOTD) or 376.
    pub fn welcome(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next();
            let end = matches!(line.split(' ').nth(1), Some("422" | "376"));
            lines.push(line);
            if end {
                return lines;
            }
        }
    }

    /// Sends `line` with CR LF.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send to the server");
    }

    /// The next line without its CR LF, or None when the server closed.
    pub fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => panic!("{}: no line from the server: {e}", self.nick),
        }
    }

    /// The next line; the server must not have closed.
    pub fn next(&mut self) -> String {
        self.line()
            .unwrap_or_else(|| panic!("{}: the server closed the connection", self.nick))
    }

    /// The lines up to and including the first that contains `part`.
    pub fn until(&mut self, part: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.next();
            if self.answer_pings && line.contains(" PING ") {
                let token = line
                    .rsplit(' ')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches(':');
                self.send(&format!("PONG :{token}"));
            }
            let found = line.contains(part);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }

    /// The first line that contains `part`, skipping the others.
    pub fn expect(&mut self, part: &str) -> String {
        self.until(part).pop().unwrap_or_default()
    }

    /// Sends a PING with a fresh token and returns every line received
    /// before its PONG: what the server sent since, and nothing more.
    pub fn sync(&mut self) -> Vec<String> {
        self.syncs += 1;
        let token = format!("sync-{}", self.syncs);
        self.send(&format!("PING {token}"));
        let pong = format!(" :{token}");
        let mut lines = Vec::new();
        loop {
            let mut more = self.until(&pong);
            let last = more.pop().unwrap_or_default();
            lines.extend(more);
            if last.split(' ').nth(1) == Some("PONG") && last.ends_with(&pong) {
                return lines;
            }
            lines.push(last);
        }
    }

    /// This end's address: what the server sees as the client's IP:PORT.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    /// The socket, for socket options and resets.
    pub fn stream(&self) -> &TcpStream {
        &self.writer
    }

    /// Gives back the socket (the reader's clone is dropped with self).
    pub fn into_stream(self) -> TcpStream {
        self.writer
    }
}

// ---- Lab 04: a client whose input ends while it still waits for its server

impl Interactive {
    /// Ends the program's input (closes its stdin) and lets it run on.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// The program's process id, for /proc.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }
}

// ---- Lab 08: files, and processes' peak memory

/// The peak resident memory of process `pid` in KiB (VmHWM in
/// /proc/PID/status): what it used at its most, not just now.
pub fn peak_resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

/// A directory of its own under std::env::temp_dir(), removed with
/// everything in it when dropped.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("socket-labs-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir { path }
    }

    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.path.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A descriptor limit that leaves no room for the listener, the spare and
/// one client: the server says so and exits 1 at start, instead of closing
/// every connection for ever or spinning at 100% CPU on a listener it cannot
/// empty (`prlimit --nofile=4:4 -- labs/04-poll/server`, then `nc -z`).
pub fn check_no_room_for_a_client(server_bin: &str, limits: &[u64]) {
    for limit in limits {
        let script = format!("ulimit -n {limit} && exec {server_bin} 0 --bind 127.0.0.1");
        let out = run("/bin/sh", &["-c", &script], b"");
        let message =
            format!("descriptor limit {limit} (RLIMIT_NOFILE) leaves no room for a client");
        assert_eq!(out.code(), Some(1), "limit {limit}: {}", out.stderr);
        assert!(
            out.stderr.contains(&message),
            "limit {limit}: {}",
            out.stderr
        );
    }
}

/// A server that uses the spare-descriptor trick (labs 04, 05, 07), run with
/// 32 descriptors: the connections past the limit are closed at once, the
/// warning is printed, the server does not spin, and when a client leaves a
/// new one is served.
pub fn check_out_of_descriptors(server_bin: &str) {
    // The server raises its soft limit to the hard one: set both low. With
    // 32, about 26 clients fit beside stdio, the listener and the spare.
    let script = format!("ulimit -n 32 && exec {server_bin} 0 --bind 127.0.0.1");
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
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => refused += 1,
            other => panic!("client {i}: {other:?}"),
        }
    }
    assert!(served.len() >= 20, "only {} served", served.len());
    assert!(refused >= 5, "only {refused} refused");
    server.expect_err("Too many open files; closing new connections until one frees");
    // Nothing signals "not spinning": measure the CPU used over a while.
    let busy = busy_during(server.pid(), Duration::from_millis(500));
    assert!(
        busy < Duration::from_millis(200),
        "the server ran (or waited to run) {busy:?} of 0.5 s: spinning"
    );
    // When a client leaves, a new one is served again.
    drop(served.pop());
    server.expect(" disconnected");
    let mut next = server.connect();
    assert_eq!(echo(&mut next, b"room again\n"), b"room again\n");
}
