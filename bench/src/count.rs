//! The figure that holds on a noisy machine: a server's own work per round
//! trip, counted rather than timed.
//!
//! Throughput on a shared machine moves by ±25 % between identical runs;
//! the instructions a server executes in user space for a fixed exchange
//! do not. Each server runs under valgrind's callgrind (which counts every
//! instruction executed, "Ir", in every process it forks), and a driver
//! plays a fixed exchange with it: `conns` connections, opened one after
//! the other, each proved with one echo; then `echoes` round trips over
//! them in turn, one message in flight at a time; then each connection
//! closed in turn, waiting for the server to close its side. One message in
//! flight makes every turn of the server's loop the same (one descriptor
//! ready, one read, one write), whatever the timing.
//!
//! The exchange is played twice, with `short` and then `long` round trips
//! per connection; start-up, connections and exit cost the same in both, so
//! the difference of the two totals divided by the difference of the round
//! trips is the cost of one round trip, and nothing else. The same two
//! exchanges under `strace -f -c` give the system calls per round trip.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::killpg;
use nix::unistd::Pid;

use crate::server::Server;
use crate::suite::Design;

/// Every wait on the server under a tool is bounded by this.
const PATIENCE: Duration = Duration::from_secs(20);

/// The fixed exchange.
#[derive(Clone, Copy, Debug)]
pub struct Exchange {
    /// Connections, open at once (one after the other for an iterative server).
    pub conns: usize,
    /// Round trips per connection in the short and the long exchange.
    pub short: usize,
    pub long: usize,
    /// Bytes per message.
    pub size: usize,
}

impl Exchange {
    /// 10 connections, 2,000 round trips between the two exchanges.
    pub const STANDARD: Exchange = Exchange {
        conns: 10,
        short: 20,
        long: 220,
        size: 64,
    };

    /// Round trips the long exchange has beyond the short one.
    pub fn extra(&self) -> usize {
        self.conns * (self.long - self.short)
    }
}

/// A design's work per round trip, in one language.
#[derive(Clone, Debug, Default)]
pub struct Work {
    /// Instructions executed in user space per round trip (callgrind's Ir,
    /// every process of the server).
    pub instructions: Option<f64>,
    /// System calls per round trip, and per call by name (those at 0.01 or more).
    pub syscalls: Option<f64>,
    pub by_call: Vec<(String, f64)>,
    /// What could not be measured, and why.
    pub problem: Option<String>,
}

/// Which tools are installed: both are optional, and the tables say what is missing.
#[derive(Clone, Copy, Debug)]
pub struct Tools {
    pub valgrind: bool,
    pub strace: bool,
}

impl Tools {
    pub fn find() -> Tools {
        let works = |program: &str| {
            Command::new(program)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        Tools {
            valgrind: works("valgrind"),
            strace: works("strace"),
        }
    }

    /// A sentence for what is missing, if anything is.
    pub fn missing(&self) -> Option<String> {
        match (self.valgrind, self.strace) {
            (true, true) => None,
            (false, true) => {
                Some("valgrind not found: no instruction counts (apt-get install valgrind)".into())
            }
            (true, false) => {
                Some("strace not found: no system call counts (apt-get install strace)".into())
            }
            (false, false) => Some(
                "valgrind and strace not found: no instruction nor system call counts \
                 (apt-get install valgrind strace)"
                    .into(),
            ),
        }
    }
}

/// Measures one server of a design: `bin ARGS`.
pub fn measure(
    bin: &Path,
    design: &Design,
    exchange: Exchange,
    tools: Tools,
    cpus: Option<&str>,
    scratch: &Path,
) -> Work {
    let mut work = Work::default();
    let mut problems = Vec::new();
    if tools.valgrind {
        match difference(bin, design, exchange, cpus, scratch, Tool::Callgrind) {
            Ok(counts) => work.instructions = counts.get("Ir").copied(),
            Err(why) => problems.push(format!("callgrind: {why}")),
        }
    }
    if tools.strace {
        match difference(bin, design, exchange, cpus, scratch, Tool::Strace) {
            Ok(counts) => {
                work.syscalls = Some(counts.values().sum());
                work.by_call = counts.into_iter().filter(|&(_, n)| n >= 0.01).collect();
                // By name: the same order for Rust and C, whatever the counts.
                work.by_call.sort_by(|a, b| a.0.cmp(&b.0));
            }
            Err(why) => problems.push(format!("strace: {why}")),
        }
    }
    if !problems.is_empty() {
        work.problem = Some(problems.join("; "));
    }
    work
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Callgrind,
    Strace,
}

/// (long − short) / extra round trips, per counter.
fn difference(
    bin: &Path,
    design: &Design,
    exchange: Exchange,
    cpus: Option<&str>,
    scratch: &Path,
    tool: Tool,
) -> Result<BTreeMap<String, f64>, String> {
    let short = under_tool(bin, design, exchange, exchange.short, cpus, scratch, tool)?;
    let long = under_tool(bin, design, exchange, exchange.long, cpus, scratch, tool)?;
    let extra = exchange.extra() as f64;
    let mut per = BTreeMap::new();
    for (name, &n) in &long {
        let before = short.get(name).copied().unwrap_or(0);
        let d = (n as f64 - before as f64) / extra;
        if d != 0.0 {
            per.insert(name.clone(), d);
        }
    }
    Ok(per)
}

/// Runs the server under the tool for one exchange; returns its counters
/// (callgrind: "Ir"; strace: calls per system call).
#[allow(clippy::too_many_arguments)]
fn under_tool(
    bin: &Path,
    design: &Design,
    exchange: Exchange,
    echoes: usize,
    cpus: Option<&str>,
    scratch: &Path,
    tool: Tool,
) -> Result<BTreeMap<String, u64>, String> {
    let dir = scratch.join(match tool {
        Tool::Callgrind => "callgrind",
        Tool::Strace => "strace",
    });
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|err| format!("mkdir {}: {err}", dir.display()))?;
    let out = dir.join("out");
    // %p: one file per process, the children a server forks included.
    let prefix: Vec<String> = match tool {
        Tool::Callgrind => vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            "-q".into(),
            format!("--callgrind-out-file={}.%p", out.display()),
        ],
        Tool::Strace => vec![
            "strace".into(),
            "-f".into(),
            "-c".into(),
            "-o".into(),
            out.display().to_string(),
            "--".into(),
        ],
    };
    let mut server = Server::start_under(&prefix, bin, design.args, cpus)?;
    let before = crate::proc::live_members(server.pid());
    let played = play(server.port, design.iterative, exchange, echoes);
    if played.is_ok() && design.forks {
        // A child forked per connection writes its profile when it exits:
        // let them leave on their own before stopping the server.
        wait_for_group(server.pid(), before);
    }
    let group = server.pid();
    let exited = server.exited();
    server.stop();
    // Every process of the group gone: their files are complete.
    wait_for_group(group, 0);
    played?;
    if let Some(how) = exited {
        return Err(how);
    }
    match tool {
        Tool::Callgrind => {
            let mut total = 0;
            let mut files = 0;
            for entry in fs::read_dir(&dir).map_err(|err| err.to_string())? {
                let path = entry.map_err(|err| err.to_string())?.path();
                // A profile ends with its totals: one still being written
                // (a child that has not quite exited) is waited for.
                let deadline = Instant::now() + PATIENCE;
                total += loop {
                    match callgrind_total(&path) {
                        Ok(n) => break n,
                        Err(_) if Instant::now() < deadline => {
                            thread::sleep(Duration::from_millis(10))
                        }
                        Err(why) => return Err(why),
                    }
                };
                files += 1;
            }
            if files == 0 {
                return Err("no profile written".into());
            }
            Ok(BTreeMap::from([("Ir".to_string(), total)]))
        }
        Tool::Strace => {
            let text =
                fs::read_to_string(&out).map_err(|err| format!("{}: {err}", out.display()))?;
            strace_counts(&text)
        }
    }
}

/// Waits (bounded) until at most `left` live processes remain in the process
/// group `group` (zombies do not count: they have written their files).
fn wait_for_group(group: Pid, left: usize) {
    if group.as_raw() <= 0 {
        return;
    }
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if killpg(group, None).is_err() || crate::proc::live_members(group) <= left {
            return;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The total of a callgrind profile (its `totals:` line, else `summary:`).
fn callgrind_total(path: &Path) -> Result<u64, String> {
    let text = fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    for key in ["totals:", "summary:"] {
        if let Some(n) = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
        {
            return Ok(n);
        }
    }
    Err(format!("{}: no totals line", path.display()))
}

/// The table `strace -c` writes: calls per system call.
fn strace_counts(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors], syscall
        if fields.len() < 5 || fields[0].starts_with('%') || fields[0].starts_with('-') {
            continue;
        }
        let name = fields[fields.len() - 1];
        if name == "total" {
            continue;
        }
        if let Ok(calls) = fields[3].parse::<u64>() {
            *counts.entry(name.to_string()).or_default() += calls;
        }
    }
    if counts.is_empty() {
        return Err("no table in strace's output".into());
    }
    Ok(counts)
}

/// Plays the exchange with the server on 127.0.0.1:`port`.
fn play(port: u16, iterative: bool, exchange: Exchange, echoes: usize) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut message = vec![0u8; exchange.size];
    let mut echo = vec![0u8; exchange.size];
    let mut round = 0u64;
    let mut trip = |stream: &mut TcpStream, k: usize| -> Result<(), String> {
        round += 1;
        for (j, byte) in message.iter_mut().enumerate() {
            *byte = b'a' + ((j + k) % 26) as u8;
        }
        let tag = round.to_le_bytes();
        let n = tag.len().min(message.len());
        message[..n].copy_from_slice(&tag[..n]);
        stream
            .write_all(&message)
            .map_err(|err| format!("write {addr}: {err}"))?;
        stream
            .read_exact(&mut echo)
            .map_err(|err| format!("read {addr}: {err}"))?;
        if echo != message {
            return Err(format!(
                "the echo on connection {k} differed from what was sent"
            ));
        }
        Ok(())
    };
    let open = || -> Result<TcpStream, String> {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE)
            .map_err(|err| format!("connect {addr}: {err}"))?;
        // One small message in flight: no reason to wait for Nagle.
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(PATIENCE))
            .map_err(|err| format!("setsockopt {addr}: {err}"))?;
        Ok(stream)
    };
    // Shut down our side and wait for the server to close its own: the
    // next step starts only once the server has finished with this one.
    let close = |mut stream: TcpStream| -> Result<(), String> {
        stream
            .shutdown(Shutdown::Write)
            .map_err(|err| format!("shutdown {addr}: {err}"))?;
        let mut rest = [0u8; 64];
        match stream.read(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => Err(format!("{addr}: data after the last echo")),
            Err(err) => Err(format!("read {addr}: {err}")),
        }
    };
    if iterative {
        for k in 0..exchange.conns {
            let mut stream = open()?;
            for _ in 0..echoes {
                trip(&mut stream, k)?;
            }
            close(stream)?;
        }
        return Ok(());
    }
    let mut streams = Vec::with_capacity(exchange.conns);
    for k in 0..exchange.conns {
        let mut stream = open()?;
        trip(&mut stream, k)?;
        streams.push(stream);
    }
    for _ in 1..echoes {
        for (k, stream) in streams.iter_mut().enumerate() {
            trip(stream, k)?;
        }
    }
    for stream in streams {
        close(stream)?;
    }
    Ok(())
}

/// A scratch directory for the tools' files, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("socket-labs-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|err| format!("mkdir {}: {err}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strace_tables_are_read() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ------------------
 61.78    0.001587         793         2         1 wait4
 27.05    0.000695           6       106           write
  0.00    0.000000           0         3         2 accept
------ ----------- ----------- --------- --------- ------------------
100.00    0.002569           8       111         3 total
";
        let counts = strace_counts(text).unwrap();
        assert_eq!(counts["wait4"], 2);
        assert_eq!(counts["write"], 106);
        assert_eq!(counts["accept"], 3);
        assert!(!counts.contains_key("total"));
        assert!(strace_counts("nothing").is_err());
    }

    #[test]
    fn the_difference_leaves_start_up_out() {
        let x = Exchange::STANDARD;
        assert_eq!(x.extra(), 2000);
    }
}
