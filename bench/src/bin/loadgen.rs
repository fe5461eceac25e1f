//! loadgen: drives an echo server on 127.0.0.1 and measures it.

use std::process;
use std::time::Duration;

use socket_labs::{Cli, DEFAULT_PORT, log, warn};
use socket_labs_bench::load::{self, Config, Mode, Report};
use socket_labs_bench::output::thousands;

const USAGE: &str = "\
usage: loadgen [PORT] [--mode MODE] [--conns N] [--idle I] [--size M]
               [--duration SECS] [--warmup SECS] [--threads T] [--format FMT]

Load generator for the socket-labs echo servers. Connects to 127.0.0.1 only,
keeps one message in flight per connection, and checks every echoed byte.

  PORT             the server's port on 127.0.0.1 (default 4242)
  --mode MODE      active: N connections, each sends a message, waits for the
                     whole echo, sends the next (default)
                   idle: as active, plus I connections that echo once, then
                     stay open and silent
                   churn: connect, one echo, close, again; N at a time
  --conns N        active connections, or concurrent ones for churn (default 10)
  --idle I         silent connections, for --mode idle (default 1000)
  --size M         bytes per message (default 64)
  --duration SECS  length of the measured window (default 5)
  --warmup SECS    traffic before the window, not measured (default 1)
  --threads T      epoll loops, one thread each (default: one per CPU this
                   process may run on; taskset limits them)
  --format FMT     text (default), or csv: a header line and one row
  --help           print this help

Connecting is paced and bounded (10 s plus 1 ms per connection); the window
opens once every connection has had its first echo, or at that bound.
Round trips per second and latency cover the window; \"served\" counts the
active connections that completed at least one round trip in it.

Exit status: 0 the run completed and every echo matched; 1 a system call
failed or no connection could be made; 2 bad arguments; 3 an echo differed
from what was sent.
";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Csv,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "text" => Ok(Format::Text),
            "csv" => Ok(Format::Csv),
            _ => Err("expected text or csv".into()),
        }
    }
}

fn main() {
    let mut cli = Cli::new(USAGE);
    let mode: Mode = cli.value("--mode", "MODE").unwrap_or(Mode::Active);
    let conns = cli.value("--conns", "N").unwrap_or(10);
    let idle = cli
        .value("--idle", "I")
        .unwrap_or(if mode == Mode::Idle { 1000 } else { 0 });
    let size = cli.value("--size", "M").unwrap_or(64);
    let duration = seconds(&mut cli, "--duration", 5.0);
    let warmup = seconds(&mut cli, "--warmup", 1.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cli.value("--threads", "T").unwrap_or(cpus);
    let format = cli.value("--format", "FMT").unwrap_or(Format::Text);
    let port = cli.port().unwrap_or(DEFAULT_PORT);
    let config = Config {
        mode,
        port,
        conns,
        idle,
        size,
        warmup,
        duration,
        threads,
        server: None,
    };
    if let Err(message) = config.validate() {
        cli.usage_error(message);
    }
    cli.finish();

    let report = match load::run(&config) {
        Ok(report) => report,
        Err(err) => {
            warn!("{err}");
            process::exit(1);
        }
    };
    match format {
        Format::Text => log!("{}", text(&config, &report).trim_end()),
        Format::Csv => log!("{CSV_HEADER}\n{}", csv_row(&config, &report)),
    }
    if report.mismatches > 0 {
        warn!(
            "{} echoes differed from what was sent; first: {}",
            report.mismatches,
            report.first_error.as_deref().unwrap_or("?")
        );
        process::exit(3);
    }
    if report.connected == 0 {
        let why = report.first_error.as_deref().unwrap_or("no echo came back");
        warn!("no connection was served: {why}");
        process::exit(1);
    }
}

/// Takes `--name SECS` as a Duration.
fn seconds(cli: &mut Cli, name: &str, default: f64) -> Duration {
    let secs: f64 = cli.value(name, "SECS").unwrap_or(default);
    Duration::try_from_secs_f64(secs).unwrap_or_else(|_| {
        cli.usage_error(format!("{name} must be a number of seconds, not {secs}"))
    })
}

fn text(config: &Config, report: &Report) -> String {
    let mut out = format!(
        "{} {} connections{} to 127.0.0.1:{}, {}-byte messages, {:.1} s after {:.1} s warm-up\n",
        config.mode,
        config.conns,
        if config.idle > 0 {
            format!(" plus {} idle", config.idle)
        } else {
            String::new()
        },
        config.port,
        config.size,
        config.duration.as_secs_f64(),
        config.warmup.as_secs_f64(),
    );
    let unit = if config.mode == Mode::Churn {
        "connections (connect, echo, close)"
    } else {
        "round trips"
    };
    out += &format!(
        "  {:<12}{} {unit}, {}/s\n",
        "completed",
        thousands(report.round_trips as f64),
        thousands(report.rate())
    );
    out += &format!(
        "  {:<12}p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs\n",
        "latency",
        report.latency_us(0.5),
        report.latency_us(0.99),
        report.latency.max() as f64 / 1000.0
    );
    if config.mode != Mode::Churn {
        out += &format!(
            "  {:<12}{} of {} active connections had a round trip in the window\n",
            "served", report.served, config.conns
        );
    }
    if config.idle > 0 {
        out += &format!(
            "  {:<12}{} of {} idle connections still open at the end\n",
            "idle", report.idle_held, config.idle
        );
    }
    out += &format!(
        "  {:<12}{} bytes echoed, {}\n",
        "verified",
        thousands(report.bytes_verified as f64),
        if report.mismatches == 0 {
            "all as sent".to_string()
        } else {
            format!("{} echoes differed", report.mismatches)
        }
    );
    if report.connect_failures > 0 || report.dropped > 0 {
        out += &format!(
            "  {:<12}{} failed connects, {} connections closed or reset by the server\n",
            "errors", report.connect_failures, report.dropped
        );
    }
    if let Some(first) = &report.first_error {
        out += &format!("  {:<12}{first}\n", "first error");
    }
    let threads = config.threads_used();
    out += &format!(
        "  {:<12}{:.2} CPU cores busy in the window ({threads} thread{})\n",
        "generator",
        report.cpu_seconds / report.window.as_secs_f64(),
        if threads == 1 { "" } else { "s" }
    );
    out
}

const CSV_HEADER: &str = "mode,port,conns,idle,size,warmup_s,duration_s,round_trips,rate_per_s,\
p50_us,p99_us,max_us,served,connected,connect_failures,dropped,idle_held,mismatches,\
bytes_verified,generator_cores";

fn csv_row(config: &Config, report: &Report) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{:.0},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},{:.2}",
        config.mode,
        config.port,
        config.conns,
        config.idle,
        config.size,
        config.warmup.as_secs_f64(),
        config.duration.as_secs_f64(),
        report.round_trips,
        report.rate(),
        report.latency_us(0.5),
        report.latency_us(0.99),
        report.latency.max() as f64 / 1000.0,
        report.served,
        report.connected,
        report.connect_failures,
        report.dropped,
        report.idle_held,
        report.mismatches,
        report.bytes_verified,
        report.cpu_seconds / report.window.as_secs_f64(),
    )
}
