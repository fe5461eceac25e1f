//! bench-suite: what `make bench` runs. Every server design in Rust and in
//! C under the load generator; writes bench/results/.

use std::fs;
use std::path::PathBuf;
use std::process::{self, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::prctl;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::unistd::Pid;
use socket_labs::{Cli, log, warn};
use socket_labs_bench::load::raise_descriptor_limit;
use socket_labs_bench::output;
use socket_labs_bench::suite::{self, Plan, Setup};

const USAGE: &str = "\
usage: bench-suite [--quick] [--runs R] [--duration SECS] [--warmup SECS]
                   [--budget SECS] [--no-count | --count-only]
                   [--labs DIR] [--out DIR]

Counts every server design's work per round trip (labs 01 to 05, Rust and
C, under valgrind and strace), measures them with the load generator, and
writes DIR/results.csv, runs.csv, work.csv, results.md, active.svg and
idle.svg. Run it through `make bench` (or `make bench QUICK=1`), which
builds the servers first.

  --quick          fewer points, one run each: about a minute (the lesson
                   of lab 05 included: 10 busy connections beside 10,000
                   idle ones, which need a limit of about 10,100 open
                   descriptors: ulimit -n)
  --runs R         runs per point and language; figures are medians (default 3)
  --duration SECS  measured window of each run (default 1)
  --warmup SECS    unmeasured traffic before it (default 0.3)
  --budget SECS    start no run after this; the rest is marked skipped
                   (default 480, quick 75)
  --no-count       leave out the instructions and system calls per round
                   trip (counted under valgrind and strace: about 40 s)
  --count-only     only those: no throughput runs
  --labs DIR       where the lab folders are (default labs)
  --out DIR        where the results go (default bench/results)
  --help           print this help

With two or more CPUs, servers run on the first half of them and the
generator on the other half (taskset).
";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: i32) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let mut plan = if cli.flag("--quick") {
        Plan::quick()
    } else {
        Plan::full()
    };
    if cli.flag("--no-count") {
        plan.count = None;
    }
    if cli.flag("--count-only") {
        if plan.count.is_none() {
            cli.usage_error("--count-only and --no-count leave nothing to do");
        }
        plan.count_only = true;
    }
    if let Some(runs) = cli.value::<usize>("--runs", "R") {
        if !(1..=99).contains(&runs) {
            cli.usage_error("--runs must be from 1 to 99");
        }
        plan.runs = runs;
    }
    for (name, field) in [
        ("--duration", &mut plan.duration),
        ("--warmup", &mut plan.warmup),
        ("--budget", &mut plan.budget),
    ] {
        if let Some(secs) = cli.value::<f64>(name, "SECS") {
            match Duration::try_from_secs_f64(secs) {
                Ok(d) if d <= Duration::from_secs(24 * 3600) => *field = d,
                _ => cli.usage_error(format!("{name} must be a number of seconds, not {secs}")),
            }
        }
    }
    if plan.duration < Duration::from_millis(10) {
        cli.usage_error("--duration must be at least 0.01 seconds");
    }
    let labs: PathBuf = cli.value("--labs", "DIR").unwrap_or_else(|| "labs".into());
    let out: PathBuf = cli
        .value("--out", "DIR")
        .unwrap_or_else(|| "bench/results".into());
    cli.finish();

    if !labs.is_dir() {
        warn!(
            "{}: no such directory (run from the project's root, or give --labs)",
            labs.display()
        );
        process::exit(2);
    }
    if let Err(err) = fs::create_dir_all(&out) {
        warn!("mkdir {}: {err}", out.display());
        process::exit(1);
    }

    // Servers are started in process groups of their own: Ctrl-C reaches
    // only us, and we stop them before leaving. SA_RESTART: the threads
    // that read the servers' output keep reading meanwhile.
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(err) = unsafe { sigaction(signal, &action) } {
            warn!("sigaction: {}", socket_labs::reason(&err));
        }
    }
    // The children a fork server leaves when it is stopped become ours to
    // reap, rather than init's: no run starts while
    // those of the last run linger.
    if let Err(err) = prctl::set_child_subreaper(true) {
        warn!(
            "prctl(PR_SET_CHILD_SUBREAPER): {}",
            socket_labs::reason(&err)
        );
    }
    let descriptors = raise_descriptor_limit();
    // Before pinning, while every CPU is still ours to count.
    let machine = machine();
    let (server_cpus, threads, pinning) = pin();

    let setup = Setup {
        labs,
        server_cpus,
        threads,
        pinning,
        descriptors,
        stop: &STOP,
    };
    let results = suite::run(&plan, &setup, |line| log!("{line}"));
    let files = [
        ("results.csv", output::results_csv(&results)),
        ("runs.csv", output::runs_csv(&results)),
        ("work.csv", output::work_csv(&results)),
        ("results.md", output::markdown(&results, &machine)),
        ("active.svg", output::active_svg(&results)),
        ("idle.svg", output::idle_svg(&results)),
    ];
    let mut failed = false;
    for (name, text) in &files {
        let path = out.join(name);
        if let Err(err) = fs::write(&path, text) {
            warn!("write {}: {err}", path.display());
            failed = true;
        }
    }
    log!("\n{}", files[3].1.trim_end());
    log!(
        "\nwrote {} in {}/ ({:.0} s)",
        files.map(|(name, _)| name).join(", "),
        out.display(),
        results.elapsed.as_secs_f64()
    );
    if STOP.load(Ordering::SeqCst) {
        warn!("interrupted: the results are partial");
        process::exit(130);
    }
    if failed {
        process::exit(1);
    }
}

/// Splits the CPUs we may use: the first half for the servers, the rest for
/// this process (the generator), which pins itself here, before it starts
/// any thread. Returns the servers' list for taskset, the generator's
/// thread count, and a sentence for the report.
fn pin() -> (Option<String>, usize, String) {
    let cpus: Vec<usize> = match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    };
    let n = cpus.len().max(1);
    if cpus.len() < 2 {
        return (None, 1, "and generator share one CPU (not pinned)".into());
    }
    let taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !taskset {
        return (
            None,
            n,
            "and generator not pinned (taskset not found; it is in util-linux)".into(),
        );
    }
    let (server, generator) = cpus.split_at(cpus.len() / 2);
    let mut set = CpuSet::new();
    for &c in generator {
        let _ = set.set(c);
    }
    if let Err(err) = sched_setaffinity(Pid::from_raw(0), &set) {
        warn!("sched_setaffinity: {}", socket_labs::reason(&err));
        return (
            None,
            n,
            "and generator not pinned (sched_setaffinity failed)".into(),
        );
    }
    let list = |cs: &[usize]| {
        cs.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    (
        Some(list(server)),
        generator.len(),
        format!(
            "pinned to CPU {} and load generator to CPU {} ({} thread{}) with taskset",
            list(server),
            list(generator),
            generator.len(),
            if generator.len() == 1 { "" } else { "s" }
        ),
    )
}

/// A line saying where and when: CPU, cores, memory, kernel, compilers, commit.
fn machine() -> String {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_string();
    let first_line = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "Measured {} on {model}, {cores} CPUs, {mem_gib:.0} GiB, Linux {kernel}; {}, {}; commit {}.",
        socket_labs::date::utc(socket_labs::date::unix_now()),
        first_line("rustc", &["--version"]),
        first_line("cc", &["--version"]),
        first_line("git", &["rev-parse", "--short", "HEAD"]),
    )
}
