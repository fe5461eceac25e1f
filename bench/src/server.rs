//! A lab's server for one run: started on a free port of 127.0.0.1, pinned
//! to its cores, its log drained, and stopped with everything it forked.
//!
//! Every server prints `listening on ADDR:PORT` first, then a line per
//! connection: with thousands of connections a pipe that nobody reads fills
//! up and blocks the server, so a thread reads its stdout to the end. The
//! server runs in a process group of its own, so that stopping it reaches
//! the children it forked (lab 02) and its workers (lab 05) too; the suite
//! is their subreaper, so it also collects the ones orphaned on the way.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, ErrorKind, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long a server may take to print its readiness line.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long its processes may take to exit once told to.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The end of the server's stderr kept for error messages.
const TAIL_BYTES: usize = 2048;

/// A running server.
pub struct Server {
    child: Child,
    pub port: u16,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
}

impl Server {
    /// Runs `bin 0 --bind 127.0.0.1 ARGS`, under `taskset -c CPUS` when
    /// given, and waits for its readiness line.
    pub fn start(bin: &Path, args: &[&str], cpus: Option<&str>) -> Result<Server, String> {
        Server::start_under(&[], bin, args, cpus)
    }

    /// As [`Server::start`], under a tool: `PREFIX bin 0 --bind 127.0.0.1
    /// ARGS` (valgrind, strace), the tool's own output to its files.
    pub fn start_under(
        prefix: &[String],
        bin: &Path,
        args: &[&str],
        cpus: Option<&str>,
    ) -> Result<Server, String> {
        let mut line: Vec<&OsStr> = Vec::new();
        if let Some(list) = cpus {
            line.extend(["taskset", "-c", list].map(OsStr::new));
        }
        line.extend(prefix.iter().map(OsStr::new));
        line.push(bin.as_os_str());
        let mut command = Command::new(line[0]);
        command
            .args(&line[1..])
            .args(["0", "--bind", "127.0.0.1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|err| format!("cannot run {}: {err}", bin.display()))?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_BYTES)));
        if let Some(err) = child.stderr.take() {
            let tail = Arc::clone(&stderr_tail);
            thread::spawn(move || keep_tail(err, &tail));
        }
        let (first_line, ready) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || drain(out, first_line));
        }
        let mut server = Server {
            child,
            port: 0,
            stderr_tail,
        };
        let line = match ready.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(server.fail(format!(
                    "no 'listening on' line within {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(server.fail("exited before listening".into()));
            }
        };
        let addr = line
            .trim_end()
            .strip_prefix("listening on ")
            .and_then(|addr| addr.parse::<SocketAddr>().ok());
        match addr {
            Some(addr) => server.port = addr.port(),
            None => {
                return Err(server.fail(format!(
                    "first line is not 'listening on ADDR:PORT': {line:?}"
                )));
            }
        }
        Ok(server)
    }

    /// The server's pid, which is also its process group's id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// None while the server runs; otherwise how it ended, and its last words.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("server {status}{}", self.last_words())),
            _ => None,
        }
    }

    /// Stops the server and everything it started; bounded in time.
    pub fn stop(mut self) {
        stop_group(&mut self.child);
    }

    /// Stops the server and returns `why` with the end of its stderr.
    fn fail(&mut self, why: String) -> String {
        stop_group(&mut self.child);
        format!("{why}{}", self.last_words())
    }

    fn last_words(&self) -> String {
        let tail = match self.stderr_tail.lock() {
            Ok(tail) => tail.iter().copied().collect::<Vec<u8>>(),
            Err(_) => Vec::new(),
        };
        let text = String::from_utf8_lossy(&tail);
        match text.trim_end().lines().last() {
            Some(line) if !line.is_empty() => format!(" (stderr: {line})"),
            _ => String::new(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // stop() and fail() leave nothing to do: signalling an empty group
        // fails with ESRCH, and try_wait has the status already.
        if let Ok(None) = self.child.try_wait() {
            stop_group(&mut self.child);
        }
    }
}

/// SIGTERM to the whole process group, then SIGKILL to what is left;
/// reaps the server and the orphans it leaves to us, the subreaper.
fn stop_group(child: &mut Child) {
    let group = Pid::from_raw(child.id() as i32);
    let _ = killpg(group, Signal::SIGTERM);
    if !wait_child(child, STOP_TIMEOUT) {
        let _ = killpg(group, Signal::SIGKILL);
        let _ = child.wait();
    }
    if !reap_orphans(group, STOP_TIMEOUT) {
        let _ = killpg(group, Signal::SIGKILL);
        reap_orphans(group, STOP_TIMEOUT);
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) => thread::sleep(Duration::from_millis(2)),
        }
    }
    false
}

/// Collects every exited child of the server's group until none is left
/// (ECHILD): its children and workers, given to us when it exits. Only that
/// group: other children of ours (a test's) are not ours to reap here.
fn reap_orphans(group: Pid, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(-group.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => thread::sleep(Duration::from_millis(2)),
            Ok(_) => {}
            Err(Errno::ECHILD) => return true,
            Err(Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Sends the first line, then reads the rest of stdout to the end.
fn drain(out: impl Read, first_line: mpsc::Sender<String>) {
    let mut reader = BufReader::with_capacity(64 * 1024, out);
    let mut line = Vec::new();
    // A readiness line is short: never keep more than this of it.
    if reader
        .by_ref()
        .take(4096)
        .read_until(b'\n', &mut line)
        .is_ok()
        && !line.is_empty()
    {
        let _ = first_line.send(String::from_utf8_lossy(&line).into_owned());
    }
    drop(first_line);
    loop {
        match reader.fill_buf() {
            Ok([]) => return,
            Ok(buf) => {
                let n = buf.len();
                reader.consume(n);
            }
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads stderr to the end, keeping its last TAIL_BYTES.
fn keep_tail(mut err: impl Read, tail: &Mutex<VecDeque<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = match err.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        let Ok(mut tail) = tail.lock() else { return };
        tail.extend(&buf[..n]);
        let excess = tail.len().saturating_sub(TAIL_BYTES);
        tail.drain(..excess);
    }
}
