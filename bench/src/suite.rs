//! `make bench`: every server design, in Rust and in C, under the same load.
//!
//! For each point of the plan (a mode and a number of connections) and each
//! design, the Rust and the C server are measured in turn, R times each,
//! alternating (Rust, C, C, Rust, Rust, C...), so that both see the same
//! machine at the same moments; each figure is the median of its R runs.
//! Every run starts a fresh server on a free port, pinned to the server's
//! cores, while the generator runs in this process on the other cores.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::count::{self, Exchange, Tools, Work};
use crate::load::{self, Config, Mode, Report};
use crate::output::thousands;
use crate::server::Server;

/// One server design: a lab, and the options it runs with.
#[derive(Clone, Copy, Debug)]
pub struct Design {
    /// Name in tables and plots.
    pub name: &'static str,
    /// The lab folder under labs/.
    pub lab: &'static str,
    pub args: &'static [&'static str],
    /// Serves one client at a time (lab 01).
    pub iterative: bool,
    /// Limited to descriptors below FD_SETSIZE (lab 03).
    pub select: bool,
    /// A process per connection (lab 02).
    pub forks: bool,
    /// Colour in the plots.
    pub colour: &'static str,
}

pub const DESIGNS: [Design; 6] = [
    Design {
        name: "01 iterative",
        lab: "01-echo",
        args: &[],
        iterative: true,
        select: false,
        forks: false,
        colour: "#7f7f7f",
    },
    Design {
        name: "02 fork",
        lab: "02-fork",
        args: &[],
        iterative: false,
        select: false,
        forks: true,
        colour: "#d62728",
    },
    Design {
        name: "03 select",
        lab: "03-select",
        args: &[],
        iterative: false,
        select: true,
        forks: false,
        colour: "#ff7f0e",
    },
    Design {
        name: "04 poll",
        lab: "04-poll",
        args: &[],
        iterative: false,
        select: false,
        forks: false,
        colour: "#2ca02c",
    },
    Design {
        name: "05 epoll",
        lab: "05-epoll",
        args: &[],
        iterative: false,
        select: false,
        forks: false,
        colour: "#1f77b4",
    },
    Design {
        name: "05 epoll --workers 2",
        lab: "05-epoll",
        args: &["--workers", "2"],
        iterative: false,
        select: false,
        forks: false,
        colour: "#9467bd",
    },
];

/// select(2) takes descriptors below this only.
const FD_SETSIZE: usize = 1024;
/// Descriptors a server holds besides its clients: stdio, the listener, a spare.
const SERVER_OWN_FDS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    C,
}

impl Lang {
    pub const BOTH: [Lang; 2] = [Lang::Rust, Lang::C];

    /// The program's name in the lab folder.
    pub fn program(self) -> &'static str {
        match self {
            Lang::Rust => "server",
            Lang::C => "server-c",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::C => "C",
        })
    }
}

/// What the generator does at one point of a plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    pub mode: Mode,
    /// Active connections (churn: concurrent ones).
    pub conns: usize,
    pub idle: usize,
}

impl Point {
    /// Idle mode without idle connections is active mode: measured once.
    pub fn canonical(self) -> Point {
        if self.mode == Mode::Idle && self.idle == 0 {
            Point {
                mode: Mode::Active,
                ..self
            }
        } else {
            self
        }
    }
}

/// Which points, how long, how many times.
#[derive(Clone, Debug)]
pub struct Plan {
    pub active: Vec<usize>,
    /// Active connections beside the idle ones.
    pub idle_active: usize,
    pub idle: Vec<usize>,
    pub churn: usize,
    pub size: usize,
    pub runs: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The whole suite stops starting runs after this.
    pub budget: Duration,
    /// A design with a process per connection runs only the points with
    /// at most this many connections (None: all of them).
    pub fork_limit: Option<usize>,
    /// The exchange counted under callgrind and strace (None: not counted).
    pub count: Option<Exchange>,
    /// Only count: no throughput runs.
    pub count_only: bool,
}

impl Plan {
    /// The plan of issue 7: about 6 minutes on 2 cores.
    pub fn full() -> Plan {
        Plan {
            active: vec![1, 10, 100, 1000, 10_000],
            idle_active: 10,
            idle: vec![0, 1000, 10_000],
            churn: 10,
            size: 64,
            runs: 3,
            warmup: Duration::from_millis(300),
            duration: Duration::from_secs(1),
            budget: Duration::from_secs(8 * 60),
            fork_limit: None,
            count: Some(Exchange::STANDARD),
            count_only: false,
        }
    }

    /// A taste of every mode and design, and the lesson of lab 05 (10
    /// busy connections beside 10,000 idle ones: poll against epoll),
    /// in about a minute. The fork server skips the 10,000 idle: starting
    /// and stopping 10,000 processes takes it 5 to 10 s a run.
    pub fn quick() -> Plan {
        Plan {
            active: vec![1, 10, 1000],
            idle: vec![0, 1000, 10_000],
            runs: 1,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            budget: Duration::from_secs(75),
            fork_limit: Some(1000),
            ..Plan::full()
        }
    }

    /// Why this plan does not run a point for a design, if it does not
    /// (beyond what the design cannot do at all: [`not_applicable`]).
    /// `setup.descriptors` is the limit on open descriptors (RLIMIT_NOFILE)
    /// of the generator, and of the servers, which inherit it; the
    /// generator needs a few more than a server (one per connection each).
    pub fn leaves_out(&self, design: &Design, point: Point, setup: &Setup) -> Option<String> {
        if let Some(limit) = self.fork_limit
            && design.forks
            && point.conns + point.idle > limit
        {
            return Some(format!(
                "skipped: quick run (a process per connection: {} processes)",
                thousands((point.conns + point.idle) as f64)
            ));
        }
        let needed = config(self, point, setup.threads).descriptors_needed();
        if needed > setup.descriptors {
            return Some(format!(
                "skipped: needs about {} descriptors, the limit is {} (ulimit -n, bench/README.md)",
                thousands(needed as f64),
                thousands(setup.descriptors as f64)
            ));
        }
        None
    }

    /// Every point, in the order they are measured (idle with 0 idle
    /// connections is the active point it equals, measured once).
    pub fn points(&self) -> Vec<Point> {
        let mut points: Vec<Point> = Vec::new();
        let active = self.active.iter().map(|&n| Point {
            mode: Mode::Active,
            conns: n,
            idle: 0,
        });
        let idle = self.idle.iter().map(|&i| Point {
            mode: Mode::Idle,
            conns: self.idle_active,
            idle: i,
        });
        let churn = std::iter::once(Point {
            mode: Mode::Churn,
            conns: self.churn,
            idle: 0,
        });
        for point in active.chain(idle).chain(churn) {
            let point = point.canonical();
            if !points.contains(&point) {
                points.push(point);
            }
        }
        // The costliest last: if the budget runs out, it cuts them, not churn.
        points.sort_by_key(|p| p.conns + p.idle);
        points
    }
}

/// Why a design cannot run a point, if it cannot.
pub fn not_applicable(design: &Design, point: Point) -> Option<&'static str> {
    if design.iterative && point.mode != Mode::Churn && point.conns + point.idle > 1 {
        return Some("serves one client at a time");
    }
    if design.select && point.conns + point.idle + SERVER_OWN_FDS > FD_SETSIZE {
        return Some("select() takes descriptors below FD_SETSIZE (1024) only");
    }
    None
}

/// One run's figures.
#[derive(Clone, Debug)]
pub struct Run {
    pub design: usize,
    pub lang: Lang,
    pub point: Point,
    pub index: usize,
    pub report: Report,
    /// The run failed, or the server left something unserved: why.
    pub problem: Option<String>,
}

/// The figures of a design, language and point: medians over the runs.
#[derive(Clone, Debug)]
pub enum Outcome {
    Measured(Summary),
    /// Not run: why (n/a, no C twin, not built, time budget).
    Skipped(String),
    /// Every run failed: the first reason.
    Failed(String),
}

#[derive(Clone, Debug)]
pub struct Summary {
    pub runs: usize,
    pub rate: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    /// The fewest served connections of any run (churn: median completed).
    pub served: u64,
    pub dropped: u64,
    pub connect_failures: u64,
    pub mismatches: u64,
    pub generator_cores: f64,
    /// The server's CPU time per round trip (churn: per connection), µs.
    pub server_us: Option<f64>,
    pub note: Option<String>,
}

pub struct Cell {
    pub design: usize,
    pub lang: Lang,
    pub point: Point,
    pub outcome: Outcome,
}

/// A design's work per round trip in one language.
pub struct WorkCell {
    pub design: usize,
    pub lang: Lang,
    pub work: Work,
}

/// Everything a suite run produced.
pub struct Results {
    pub plan: Plan,
    /// Instructions and system calls per round trip, per design and language.
    pub work: Vec<WorkCell>,
    /// What the counts lack, and why (a tool not installed).
    pub work_note: Option<String>,
    pub cells: Vec<Cell>,
    pub runs: Vec<Run>,
    pub pinning: String,
    pub elapsed: Duration,
}

impl Results {
    pub fn work(&self, design: usize, lang: Lang) -> Option<&Work> {
        self.work
            .iter()
            .find(|w| w.design == design && w.lang == lang)
            .map(|w| &w.work)
    }

    pub fn cell(&self, design: usize, lang: Lang, point: Point) -> Option<&Outcome> {
        let point = point.canonical();
        self.cells
            .iter()
            .find(|c| c.design == design && c.lang == lang && c.point == point)
            .map(|c| &c.outcome)
    }
}

/// Where the programs are, where the cores go, how the suite reports.
pub struct Setup {
    pub labs: PathBuf,
    pub server_cpus: Option<String>,
    pub threads: usize,
    pub pinning: String,
    /// The limit on open descriptors (RLIMIT_NOFILE, raised to the hard
    /// limit): the servers inherit it.
    pub descriptors: u64,
    /// Set by SIGINT/SIGTERM: finish the current run, then stop.
    pub stop: &'static AtomicBool,
}

/// Counts each design's work per round trip, Rust and C (bench/README.md).
pub fn count_work(
    exchange: Exchange,
    setup: &Setup,
    progress: &mut impl FnMut(&str),
) -> (Vec<WorkCell>, Option<String>) {
    let tools = Tools::find();
    let missing = tools.missing();
    if let Some(what) = &missing {
        progress(what);
    }
    let mut cells = Vec::new();
    if !tools.valgrind && !tools.strace {
        return (cells, missing);
    }
    let scratch = match count::Scratch::new() {
        Ok(s) => s,
        Err(why) => return (cells, Some(why)),
    };
    progress(&format!(
        "counting each server's work per round trip: {} connections, {} then {} round trips \
         each, under callgrind and strace",
        exchange.conns, exchange.short, exchange.long
    ));
    for (d, design) in DESIGNS.iter().enumerate() {
        for lang in Lang::BOTH {
            if setup.stop.load(Ordering::SeqCst) {
                return (cells, Some("interrupted".into()));
            }
            let bin = program(&setup.labs, design, lang);
            let work = if bin.is_file() {
                let began = Instant::now();
                let work = count::measure(
                    &bin,
                    design,
                    exchange,
                    tools,
                    setup.server_cpus.as_deref(),
                    &scratch.0,
                );
                progress(&format!(
                    "{:>4.1} s  {:<20} {:<4} {}",
                    began.elapsed().as_secs_f64(),
                    design.name,
                    lang.to_string(),
                    work_line(&work)
                ));
                work
            } else {
                Work {
                    problem: Some(match lang {
                        Lang::C => "no C twin yet".into(),
                        Lang::Rust => "not built (make)".into(),
                    }),
                    ..Work::default()
                }
            };
            cells.push(WorkCell {
                design: d,
                lang,
                work,
            });
        }
    }
    (cells, missing)
}

/// "12,345 instructions, 3.00 system calls (read 1.00, write 1.00, poll 1.00)".
pub fn work_line(work: &Work) -> String {
    let mut parts = Vec::new();
    if let Some(ir) = work.instructions {
        parts.push(format!("{} instructions", thousands(ir)));
    }
    if let Some(calls) = work.syscalls {
        parts.push(format!(
            "{calls:.2} system calls ({})",
            work.by_call
                .iter()
                .map(|(name, n)| format!("{name} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(why) = &work.problem {
        parts.push(why.clone());
    }
    format!("{} per round trip", parts.join(", "))
}

/// Runs the plan; `progress` gets one line per run.
pub fn run(plan: &Plan, setup: &Setup, mut progress: impl FnMut(&str)) -> Results {
    let counting = Instant::now();
    let (work, work_note) = match plan.count {
        Some(exchange) => count_work(exchange, setup, &mut progress),
        None => (Vec::new(), None),
    };
    let counted = counting.elapsed();
    // The budget is for the throughput runs: counting is bounded on its own.
    let began = Instant::now();
    let points = if plan.count_only {
        Vec::new()
    } else {
        plan.points()
    };
    let mut cells = Vec::new();
    let mut runs = Vec::new();
    let per_run = plan.warmup + plan.duration + Duration::from_millis(300);
    let total_runs = if plan.count_only {
        0
    } else {
        count_runs(plan, setup)
    };
    let mut done = 0;
    if total_runs > 0 {
        progress(&format!(
            "{total_runs} runs of {:.1} s + setup; server {}",
            (plan.warmup + plan.duration).as_secs_f64(),
            setup.pinning
        ));
    }
    if let Some(most) = points
        .iter()
        .map(|&p| config(plan, p, setup.threads).descriptors_needed())
        .max()
        .filter(|&most| most > setup.descriptors)
    {
        progress(&format!(
            "the limit on open descriptors is {}: the points that need more are skipped \
             (about {} for all: ulimit -n {}, see bench/README.md)",
            thousands(setup.descriptors as f64),
            thousands(most as f64),
            most.next_multiple_of(1000)
        ));
    }
    for &point in &points {
        for (d, design) in DESIGNS.iter().enumerate() {
            let mut available = Vec::new();
            for lang in Lang::BOTH {
                let skip = if let Some(why) = not_applicable(design, point) {
                    Some(format!("n/a: {why}"))
                } else if let Some(why) = plan.leaves_out(design, point, setup) {
                    Some(why)
                } else if !program(&setup.labs, design, lang).is_file() {
                    Some(match lang {
                        Lang::C => "no C twin yet".to_string(),
                        Lang::Rust => "not built (make)".to_string(),
                    })
                } else {
                    None
                };
                match skip {
                    Some(why) => cells.push(Cell {
                        design: d,
                        lang,
                        point,
                        outcome: Outcome::Skipped(why),
                    }),
                    None => available.push(lang),
                }
            }
            let mut mine: Vec<Run> = Vec::new();
            let mut out_of_time = false;
            for index in 0..plan.runs {
                // Alternate which language goes first, so neither always
                // follows the other.
                let mut order = available.clone();
                if index % 2 == 1 {
                    order.reverse();
                }
                for lang in order {
                    if setup.stop.load(Ordering::SeqCst) || began.elapsed() + per_run > plan.budget
                    {
                        out_of_time = true;
                        break;
                    }
                    let run = one_run(plan, setup, d, lang, point, index);
                    done += 1;
                    progress(&progress_line(done, total_runs, &run, began.elapsed()));
                    mine.push(run);
                }
            }
            for lang in available {
                let lang_runs: Vec<&Run> = mine.iter().filter(|r| r.lang == lang).collect();
                let outcome = if lang_runs.is_empty() && out_of_time {
                    let why = if setup.stop.load(Ordering::SeqCst) {
                        "interrupted"
                    } else {
                        "skipped: time budget"
                    };
                    Outcome::Skipped(why.into())
                } else {
                    summarise(point, &lang_runs)
                };
                cells.push(Cell {
                    design: d,
                    lang,
                    point,
                    outcome,
                });
            }
            runs.extend(mine);
        }
    }
    Results {
        plan: plan.clone(),
        work,
        work_note,
        cells,
        runs,
        pinning: setup.pinning.clone(),
        elapsed: began.elapsed() + counted,
    }
}

/// The program for a design in a language.
pub fn program(labs: &Path, design: &Design, lang: Lang) -> PathBuf {
    labs.join(design.lab).join(lang.program())
}

/// How many runs the plan will make with the programs present and the
/// descriptors it may open.
pub fn count_runs(plan: &Plan, setup: &Setup) -> usize {
    let mut n = 0;
    for point in plan.points() {
        for design in &DESIGNS {
            if not_applicable(design, point).is_some()
                || plan.leaves_out(design, point, setup).is_some()
            {
                continue;
            }
            for lang in Lang::BOTH {
                if program(&setup.labs, design, lang).is_file() {
                    n += plan.runs;
                }
            }
        }
    }
    n
}

/// The generator's configuration for a point (port 0: the server's is
/// known once it has started).
fn config(plan: &Plan, point: Point, threads: usize) -> Config {
    Config {
        mode: point.mode,
        port: 0,
        conns: point.conns,
        idle: point.idle,
        size: plan.size,
        warmup: plan.warmup,
        duration: plan.duration,
        threads,
        server: None,
    }
}

fn one_run(plan: &Plan, setup: &Setup, d: usize, lang: Lang, point: Point, index: usize) -> Run {
    let design = &DESIGNS[d];
    let config = config(plan, point, setup.threads);
    let mut run = Run {
        design: d,
        lang,
        point,
        index,
        report: Report::default(),
        problem: None,
    };
    let bin = program(&setup.labs, design, lang);
    let mut server = match Server::start(&bin, design.args, setup.server_cpus.as_deref()) {
        Ok(server) => server,
        Err(why) => {
            run.problem = Some(why);
            return run;
        }
    };
    let result = load::run(&Config {
        port: server.port,
        server: Some(server.pid()),
        ..config
    });
    let exited = server.exited();
    server.stop();
    match result {
        Ok(report) => {
            run.problem = problem(&config, &report);
            run.report = report;
        }
        Err(err) => run.problem = Some(err.to_string()),
    }
    if let Some(how) = exited {
        run.problem = Some(match run.problem {
            Some(p) => format!("{p}; {how}"),
            None => how,
        });
    }
    run
}

/// What the table must say about a run, beyond its figures.
fn problem(config: &Config, report: &Report) -> Option<String> {
    let first = report.first_error.as_deref().unwrap_or("");
    if report.mismatches > 0 {
        return Some(format!("{} echoes differed: {first}", report.mismatches));
    }
    if report.connected == 0 {
        return Some(format!("no connection served: {first}"));
    }
    let mut parts = Vec::new();
    if config.mode != Mode::Churn && report.served < config.conns as u64 {
        parts.push(format!("{} of {} served", report.served, config.conns));
    }
    if report.dropped > 0 {
        parts.push(format!("{} dropped", report.dropped));
    }
    if report.connect_failures > 0 {
        parts.push(format!("{} failed connects", report.connect_failures));
    }
    if config.idle > 0 && report.idle_held < config.idle as u64 {
        parts.push(format!("{} of {} idle held", report.idle_held, config.idle));
    }
    if parts.is_empty() {
        None
    } else {
        if !first.is_empty() {
            parts.push(format!("first: {first}"));
        }
        Some(parts.join(", "))
    }
}

fn summarise(point: Point, runs: &[&Run]) -> Outcome {
    let good: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| r.report.connected > 0)
        .collect();
    if good.is_empty() {
        let why = runs
            .iter()
            .find_map(|r| r.problem.clone())
            .unwrap_or_else(|| "no run".into());
        return Outcome::Failed(why);
    }
    let median_of =
        |f: &dyn Fn(&Report) -> f64| median(good.iter().map(|r| f(&r.report)).collect());
    let served = if point.mode == Mode::Churn {
        median_of(&|r| r.served as f64) as u64
    } else {
        good.iter().map(|r| r.report.served).min().unwrap_or(0)
    };
    let window = good[0].report.window.as_secs_f64();
    Outcome::Measured(Summary {
        runs: good.len(),
        rate: median_of(&|r| r.rate()),
        p50_us: median_of(&|r| r.latency_us(0.5)),
        p99_us: median_of(&|r| r.latency_us(0.99)),
        served,
        dropped: good.iter().map(|r| r.report.dropped).max().unwrap_or(0),
        connect_failures: good
            .iter()
            .map(|r| r.report.connect_failures)
            .max()
            .unwrap_or(0),
        mismatches: good.iter().map(|r| r.report.mismatches).sum(),
        generator_cores: median_of(&|r| r.cpu_seconds / window),
        server_us: {
            let each: Vec<f64> = good
                .iter()
                .filter_map(|r| r.report.server_us_per_rt())
                .collect();
            (!each.is_empty()).then(|| median(each))
        },
        note: runs.iter().find_map(|r| r.problem.clone()),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if !values.len().is_multiple_of(2) {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn progress_line(done: usize, total: usize, run: &Run, elapsed: Duration) -> String {
    let what = match run.point.mode {
        Mode::Active => format!("active N={}", run.point.conns),
        Mode::Idle => format!("idle {}+{}", run.point.conns, run.point.idle),
        Mode::Churn => format!("churn C={}", run.point.conns),
    };
    let figures = if run.report.connected > 0 {
        format!(
            "{:>9.0}/s  p99 {:>7.0} µs  served {}",
            run.report.rate(),
            run.report.latency_us(0.99),
            run.report.served
        )
    } else {
        String::from("failed")
    };
    format!(
        "[{done:>3}/{total}] {:>4.0} s  {:<20} {:<4} {:<16} {figures}{}",
        elapsed.as_secs_f64(),
        DESIGNS[run.design].name,
        run.lang.to_string(),
        what,
        run.problem
            .as_ref()
            .map(|p| format!("  ({p})"))
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plans_skip_what_a_design_cannot_do() {
        let full = Plan::full();
        let points = full.points();
        // 5 active, idle with 1,000 and 10,000 (0 is active N=10), churn.
        assert_eq!(points.len(), 8);
        let iterative = &DESIGNS[0];
        let select = &DESIGNS[2];
        let runnable = |d: &Design| {
            points
                .iter()
                .filter(|&&p| not_applicable(d, p).is_none())
                .count()
        };
        assert_eq!(runnable(iterative), 2); // N = 1 and churn
        assert_eq!(runnable(select), 6); // not 10,000 active nor 10,000 idle
        assert_eq!(runnable(&DESIGNS[3]), 8);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn the_quick_plan_has_the_lesson_of_lab_05_and_says_what_it_leaves_out() {
        static STOP: AtomicBool = AtomicBool::new(false);
        let quick = Plan::quick();
        let headline = Point {
            mode: Mode::Idle,
            conns: 10,
            idle: 10_000,
        };
        assert!(quick.points().contains(&headline));
        // The costliest point last: the one the time budget would cut.
        assert_eq!(quick.points().last(), Some(&headline));
        let setup = |descriptors| Setup {
            labs: PathBuf::from("labs"),
            server_cpus: None,
            threads: 1,
            pinning: String::new(),
            descriptors,
            stop: &STOP,
        };
        let (fork, poll, epoll) = (&DESIGNS[1], &DESIGNS[3], &DESIGNS[4]);
        let enough = setup(20_000);
        assert_eq!(quick.leaves_out(poll, headline, &enough), None);
        assert_eq!(quick.leaves_out(epoll, headline, &enough), None);
        let why = quick.leaves_out(fork, headline, &enough);
        assert!(why.is_some_and(|w| w.contains("10,010 processes")));
        assert_eq!(Plan::full().leaves_out(fork, headline, &enough), None);
        // Too few descriptors: the point is skipped, and the table says why.
        let why = quick.leaves_out(poll, headline, &setup(4096));
        assert_eq!(
            why.as_deref(),
            Some(
                "skipped: needs about 10,028 descriptors, the limit is 4,096 \
                 (ulimit -n, bench/README.md)"
            )
        );
        let ten = Point {
            mode: Mode::Active,
            conns: 10,
            idle: 0,
        };
        assert_eq!(quick.leaves_out(poll, ten, &setup(1024)), None);
    }
}
