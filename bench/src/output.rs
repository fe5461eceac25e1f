//! What `make bench` writes: a CSV of every run, a CSV and Markdown tables
//! of the medians with the Rust/C ratio, and SVG plots on log scales.

use std::fmt::Write as _;

use crate::load::Mode;
use crate::suite::{DESIGNS, Lang, Outcome, Point, Results, Summary};

/// Every run, as measured.
pub fn runs_csv(results: &Results) -> String {
    let mut out = String::from(
        "design,lang,mode,conns,idle,run,rate_per_s,p50_us,p99_us,max_us,served,connected,\
         connect_failures,dropped,idle_held,mismatches,bytes_verified,generator_cores,\
         server_cpu_us_per_rt,problem\n",
    );
    for run in &results.runs {
        let r = &run.report;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{:.0},{:.1},{:.1},{:.1},{},{},{},{},{},{},{},{:.2},{},{}",
            csv_text(DESIGNS[run.design].name),
            run.lang,
            run.point.mode,
            run.point.conns,
            run.point.idle,
            run.index + 1,
            r.rate(),
            r.latency_us(0.5),
            r.latency_us(0.99),
            r.latency.max() as f64 / 1000.0,
            r.served,
            r.connected,
            r.connect_failures,
            r.dropped,
            r.idle_held,
            r.mismatches,
            r.bytes_verified,
            r.cpu_seconds / r.window.as_secs_f64().max(1e-9),
            r.server_us_per_rt()
                .map(|us| format!("{us:.2}"))
                .unwrap_or_default(),
            csv_text(run.problem.as_deref().unwrap_or("")),
        );
    }
    out
}

/// One row per design, language and point: the medians, or why there are none.
pub fn results_csv(results: &Results) -> String {
    let mut out = String::from(
        "design,lang,mode,conns,idle,status,runs,rate_per_s,p50_us,p99_us,served,dropped,\
         connect_failures,mismatches,generator_cores,server_cpu_us_per_rt,rust_c_ratio,note\n",
    );
    for cell in &results.cells {
        let p = cell.point;
        let head = format!(
            "{},{},{},{},{}",
            csv_text(DESIGNS[cell.design].name),
            cell.lang,
            p.mode,
            p.conns,
            p.idle
        );
        match &cell.outcome {
            Outcome::Measured(s) => {
                let ratio = ratio(results, cell.design, p)
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{head},measured,{},{:.0},{:.1},{:.1},{},{},{},{},{:.2},{},{ratio},{}",
                    s.runs,
                    s.rate,
                    s.p50_us,
                    s.p99_us,
                    s.served,
                    s.dropped,
                    s.connect_failures,
                    s.mismatches,
                    s.generator_cores,
                    s.server_us.map(|us| format!("{us:.2}")).unwrap_or_default(),
                    csv_text(s.note.as_deref().unwrap_or("")),
                );
            }
            Outcome::Skipped(why) => {
                let _ = writeln!(out, "{head},skipped,0,,,,,,,,,,,{}", csv_text(why));
            }
            Outcome::Failed(why) => {
                let _ = writeln!(out, "{head},failed,0,,,,,,,,,,,{}", csv_text(why));
            }
        }
    }
    out
}

fn csv_text(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\"").replace('\n', " "))
    } else {
        text.to_string()
    }
}

fn measured(results: &Results, design: usize, lang: Lang, point: Point) -> Option<&Summary> {
    match results.cell(design, lang, point) {
        Some(Outcome::Measured(s)) => Some(s),
        _ => None,
    }
}

/// Rust's rate over C's at a point, when both were measured.
pub fn ratio(results: &Results, design: usize, point: Point) -> Option<f64> {
    let rust = measured(results, design, Lang::Rust, point)?;
    let c = measured(results, design, Lang::C, point)?;
    (c.rate > 0.0).then(|| rust.rate / c.rate)
}

/// Rust's instructions per round trip over C's, when both were counted.
pub fn work_ratio(results: &Results, design: usize) -> Option<f64> {
    let rust = results.work(design, Lang::Rust)?.instructions?;
    let c = results.work(design, Lang::C)?.instructions?;
    (c > 0.0).then(|| rust / c)
}

/// The counts per design and language.
pub fn work_csv(results: &Results) -> String {
    let mut out = String::from(
        "design,lang,instructions_per_rt,rust_c_ratio,syscalls_per_rt,syscalls,problem\n",
    );
    for cell in &results.work {
        let w = &cell.work;
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            csv_text(DESIGNS[cell.design].name),
            cell.lang,
            w.instructions
                .map(|n| format!("{n:.1}"))
                .unwrap_or_default(),
            work_ratio(results, cell.design)
                .map(|r| format!("{r:.3}"))
                .unwrap_or_default(),
            w.syscalls.map(|n| format!("{n:.2}")).unwrap_or_default(),
            csv_text(&calls_text(&w.by_call)),
            csv_text(w.problem.as_deref().unwrap_or("")),
        );
    }
    out
}

/// "poll 1.00 + read 1.00 + write 1.00".
fn calls_text(by_call: &[(String, f64)]) -> String {
    by_call
        .iter()
        .map(|(name, n)| format!("{name} {n:.2}"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The table of instructions and system calls per round trip.
pub fn work_table(results: &Results) -> String {
    let mut out = String::new();
    let Some(exchange) = results.plan.count else {
        return out;
    };
    out += "## Work per round trip: counted, not timed\n\n";
    let _ = writeln!(
        out,
        "Instructions the server executes in user space per round trip (valgrind \
         --tool=callgrind, every process of the server), and its system calls per round \
         trip (strace -f -c): {} connections, {} then {} round trips each, {}-byte \
         messages, one in flight at a time; the difference of the two exchanges, so \
         start-up and connections are left out. The same from run to run: this is the \
         Rust/C figure (bench/README.md).\n",
        exchange.conns, exchange.short, exchange.long, exchange.size
    );
    if let Some(note) = &results.work_note {
        let _ = writeln!(out, "**{note}.**\n");
    }
    out += "| design | Rust instr/rt | C instr/rt | Rust/C | Rust syscalls/rt | C syscalls/rt | note |\n";
    out += "|---|---:|---:|---:|---:|---:|---|\n";
    for (d, design) in DESIGNS.iter().enumerate() {
        let work = Lang::BOTH.map(|l| results.work(d, l));
        if work.iter().all(Option::is_none) {
            continue;
        }
        let ir = work.map(|w| {
            w.and_then(|w| w.instructions).map_or("—".into(), |n| {
                let tenths = (n * 10.0).round();
                format!("{}.{}", thousands((tenths / 10.0).trunc()), tenths % 10.0)
            })
        });
        let calls = work.map(|w| {
            w.and_then(|w| w.syscalls)
                .map_or("—".into(), |n| format!("{n:.2}"))
        });
        let mut notes = Vec::new();
        let by_call = work.map(|w| w.map(|w| calls_text(&w.by_call)).unwrap_or_default());
        if by_call[0] == by_call[1] {
            notes.push(by_call[0].clone());
        } else {
            notes.push(format!("Rust: {}; C: {}", by_call[0], by_call[1]));
        }
        for (lang, w) in Lang::BOTH.iter().zip(work) {
            if let Some(why) = w.and_then(|w| w.problem.as_ref()) {
                notes.push(format!("{lang}: {why}"));
            }
        }
        let ratio = work_ratio(results, d).map_or("—".into(), |r| format!("{r:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {} | {} | {} |",
            design.name,
            ir[0],
            ir[1],
            calls[0],
            calls[1],
            notes.join("; ").replace('|', "/")
        );
    }
    out.push('\n');
    out
}

/// The Markdown page: how it was measured, the counts, then one table per mode.
pub fn markdown(results: &Results, machine: &str) -> String {
    let plan = &results.plan;
    let mut out = String::from("# socket-labs: every server design, Rust and C\n\n");
    let _ = writeln!(out, "{machine}\n");
    out += &work_table(results);
    if plan.count_only {
        return out;
    }
    let _ = writeln!(
        out,
        "Each figure is the median of {} run(s) of {:.1} s after a {:.1} s warm-up; \
         {}-byte messages, one in flight per connection; Rust and C runs of a point \
         alternate. Server {}. The suite took {:.0} s.\n",
        plan.runs,
        plan.duration.as_secs_f64(),
        plan.warmup.as_secs_f64(),
        plan.size,
        results.pinning,
        results.elapsed.as_secs_f64()
    );
    out += "rt/s: round trips per second (churn: connections per second, each \
            connect, one echo, close). p99: 99th percentile latency. served: active \
            connections with at least one round trip in the window (the fewest of any \
            run; churn: connections completed in the window). Rust/C: Rust's rate over C's. \
            CPU µs/rt: the server's CPU time (user and system, every process of it) \
            in the window per round trip (churn: per connection), from /proc/PID/stat; \
            it counts the kernel's TCP work too, to a clock tick (10 ms) at each end.\n\n";

    let active: Vec<Point> = plan
        .active
        .iter()
        .map(|&n| Point {
            mode: Mode::Active,
            conns: n,
            idle: 0,
        })
        .collect();
    out += "## Active: N connections, all busy\n\n";
    table(&mut out, results, "N", &active, |p| p.conns);

    let idle: Vec<Point> = plan
        .idle
        .iter()
        .map(|&i| Point {
            mode: Mode::Idle,
            conns: plan.idle_active,
            idle: i,
        })
        .collect();
    let _ = writeln!(
        out,
        "## Idle: {} busy connections beside I idle ones\n",
        plan.idle_active
    );
    table(&mut out, results, "idle I", &idle, |p| p.idle);

    let churn = [Point {
        mode: Mode::Churn,
        conns: plan.churn,
        idle: 0,
    }];
    out += "## Churn: connect, one echo, close\n\n";
    table(&mut out, results, "concurrent", &churn, |p| p.conns);
    out
}

fn table(
    out: &mut String,
    results: &Results,
    what: &str,
    points: &[Point],
    value: impl Fn(&Point) -> usize,
) {
    // Churn counts connections, the other modes round trips.
    let (rate, served, unit) = match points.first().map(|p| p.mode) {
        Some(Mode::Churn) => ("conn/s", "conns", "conn"),
        _ => ("rt/s", "served", "rt"),
    };
    let _ = writeln!(
        out,
        "| design | {what} | Rust {rate} | C {rate} | Rust/C | Rust CPU µs/{unit} | C CPU µs/{unit} | \
         Rust p99 µs | C p99 µs | Rust {served} | C {served} | note |"
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (d, design) in DESIGNS.iter().enumerate() {
        for &point in points {
            let mut cells = Vec::new();
            let mut notes = Vec::new();
            let mut rates = Vec::new();
            let mut p99s = Vec::new();
            let mut served = Vec::new();
            let mut cpu = Vec::new();
            for lang in Lang::BOTH {
                match results.cell(d, lang, point) {
                    Some(Outcome::Measured(s)) => {
                        rates.push(thousands(s.rate));
                        cpu.push(s.server_us.map_or("—".into(), |us| format!("{us:.1}")));
                        p99s.push(thousands(s.p99_us));
                        served.push(if point.mode == Mode::Churn {
                            thousands(s.served as f64)
                        } else {
                            format!(
                                "{}/{}",
                                thousands(s.served as f64),
                                thousands(point.conns as f64)
                            )
                        });
                        if let Some(note) = &s.note {
                            notes.push(format!("{lang}: {note}"));
                        }
                    }
                    Some(Outcome::Skipped(why)) | Some(Outcome::Failed(why)) => {
                        rates.push("—".into());
                        cpu.push("—".into());
                        p99s.push("—".into());
                        served.push("—".into());
                        let failed =
                            matches!(results.cell(d, lang, point), Some(Outcome::Failed(_)));
                        let text = if failed {
                            format!("failed: {why}")
                        } else {
                            why.clone()
                        };
                        // "n/a" concerns the design, and a reason both
                        // languages share the point: say it once.
                        let shared = Lang::BOTH.iter().all(|&l| {
                            matches!(results.cell(d, l, point),
                                     Some(Outcome::Skipped(w)) if w == why)
                        });
                        if !notes.iter().any(|n: &String| n.ends_with(&text)) {
                            notes.push(if text.starts_with("n/a") || shared {
                                text
                            } else {
                                format!("{lang}: {text}")
                            });
                        }
                    }
                    None => {
                        rates.push("—".into());
                        cpu.push("—".into());
                        p99s.push("—".into());
                        served.push("—".into());
                    }
                }
            }
            let ratio = ratio(results, d, point)
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "—".into());
            cells.push(design.name.to_string());
            cells.push(thousands(value(&point) as f64));
            cells.push(rates[0].clone());
            cells.push(rates[1].clone());
            cells.push(ratio);
            cells.push(cpu[0].clone());
            cells.push(cpu[1].clone());
            cells.push(p99s[0].clone());
            cells.push(p99s[1].clone());
            cells.push(served[0].clone());
            cells.push(served[1].clone());
            cells.push(notes.join("; ").replace('|', "/"));
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
    }
    out.push('\n');
}

/// 162345.6 → "162,346".
pub fn thousands(value: f64) -> String {
    let n = value.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A line on a plot: a design in a language.
struct Series {
    label: String,
    colour: &'static str,
    dashed: bool,
    /// (x, y), None where nothing was measured (the line breaks there).
    points: Vec<Option<(f64, f64)>>,
}

/// Round trips per second against busy connections.
pub fn active_svg(results: &Results) -> String {
    let xs: Vec<usize> = results.plan.active.clone();
    let series = series(results, &xs, |n| Point {
        mode: Mode::Active,
        conns: n,
        idle: 0,
    });
    let ticks = xs
        .iter()
        .map(|&n| (n as f64, thousands(n as f64)))
        .collect();
    plot(
        "Round trips per second, every connection busy (64-byte messages)",
        "busy connections N (log scale)",
        &series,
        ticks,
        |x| x,
    )
}

/// Round trips per second against idle connections, a few busy.
pub fn idle_svg(results: &Results) -> String {
    let xs: Vec<usize> = results.plan.idle.clone();
    let plan = &results.plan;
    let series = series(results, &xs, |i| Point {
        mode: Mode::Idle,
        conns: plan.idle_active,
        idle: i,
    });
    // A log scale has no 0: it stands one decade left of the smallest
    // count of idle connections.
    let smallest = xs.iter().copied().filter(|&i| i > 0).min().unwrap_or(1000) as f64;
    let zero = smallest / 10.0;
    let ticks = xs
        .iter()
        .map(|&i| (if i == 0 { zero } else { i as f64 }, thousands(i as f64)))
        .collect();
    plot(
        &format!(
            "Round trips per second, {} busy connections beside idle ones",
            plan.idle_active
        ),
        "idle connections I (log scale; 0 at the left)",
        &series,
        ticks,
        move |x| if x == 0.0 { zero } else { x },
    )
}

fn series(results: &Results, xs: &[usize], point: impl Fn(usize) -> Point) -> Vec<Series> {
    let mut all = Vec::new();
    for (d, design) in DESIGNS.iter().enumerate() {
        for lang in Lang::BOTH {
            let points: Vec<Option<(f64, f64)>> = xs
                .iter()
                .map(|&x| {
                    measured(results, d, lang, point(x))
                        .filter(|s| s.rate > 0.0)
                        .map(|s| (x as f64, s.rate))
                })
                .collect();
            if points.iter().any(Option::is_some) {
                all.push(Series {
                    label: format!("{} ({lang})", design.name),
                    colour: design.colour,
                    dashed: lang == Lang::C,
                    points,
                });
            }
        }
    }
    all
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

/// A log-log line plot; `place` maps a data x to where it is drawn.
fn plot(
    title: &str,
    x_label: &str,
    series: &[Series],
    x_ticks: Vec<(f64, String)>,
    place: impl Fn(f64) -> f64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        (LEFT + WIDTH - RIGHT) / 2.0,
        escape(title)
    );
    let ys: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().flatten().map(|&(_, y)| y))
        .collect();
    if ys.is_empty() || x_ticks.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">nothing measured</text>\n</svg>",
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        return out;
    }
    // The y range runs between the 1-2-5 steps around the data.
    let y_min = ys.iter().copied().fold(f64::MAX, f64::min);
    let y_max = ys.iter().copied().fold(f64::MIN, f64::max);
    let steps = |v: f64| {
        let decade = 10f64.powf(v.log10().floor());
        [1.0, 2.0, 5.0, 10.0].map(|k| k * decade)
    };
    let lo = steps(y_min)
        .into_iter()
        .rfind(|&s| s <= y_min * 1.0001)
        .unwrap_or(y_min);
    let mut hi = steps(y_max)
        .into_iter()
        .find(|&s| s >= y_max * 0.9999)
        .unwrap_or(y_max);
    if hi <= lo {
        hi = lo * 2.0;
    }
    let (y_lo, y_hi) = (lo.log10(), hi.log10());
    let tick_x: Vec<f64> = x_ticks.iter().map(|&(x, _)| x.log10()).collect();
    let x_lo = tick_x.iter().copied().fold(f64::MAX, f64::min) - 0.25;
    let x_hi = tick_x.iter().copied().fold(f64::MIN, f64::max) + 0.25;
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (place(x).log10() - x_lo) / (x_hi - x_lo) * plot_w;
    let sy = |y: f64| TOP + (y_hi - y.log10()) / (y_hi - y_lo) * plot_h;

    // Frame, grid and labels.
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#444\"/>"
    );
    let mut decade = y_lo.floor();
    while decade <= y_hi {
        for k in [1.0, 2.0, 5.0] {
            let y = k * 10f64.powf(decade);
            let at = y.log10();
            if at < y_lo - 1e-9 || at > y_hi + 1e-9 {
                continue;
            }
            let py = sy(y);
            let _ = writeln!(
                out,
                "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"{}/>\n\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#444\">{}</text>",
                LEFT + plot_w,
                if k == 1.0 {
                    ""
                } else {
                    " stroke-dasharray=\"2,3\""
                },
                LEFT - 6.0,
                py + 4.0,
                short(y)
            );
        }
        decade += 1.0;
    }
    for (x, label) in &x_ticks {
        let px = LEFT + (x.log10() - x_lo) / (x_hi - x_lo) * plot_w;
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
            TOP + plot_h,
            TOP + plot_h + 18.0,
            escape(label)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n\
         <text transform=\"translate(18 {:.1}) rotate(-90)\" text-anchor=\"middle\">\
         round trips per second (log scale)</text>",
        LEFT + plot_w / 2.0,
        HEIGHT - 16.0,
        escape(x_label),
        TOP + plot_h / 2.0
    );

    // One polyline per run of consecutive points; a marker on each point.
    for s in series {
        let dash = if s.dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        for run in s.points.split(Option::is_none) {
            let coords: Vec<String> = run
                .iter()
                .flatten()
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            if coords.len() > 1 {
                let _ = writeln!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>",
                    coords.join(" "),
                    s.colour
                );
            }
        }
        for &(x, y) in s.points.iter().flatten() {
            let fill = if s.dashed { "white" } else { s.colour };
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{fill}\" stroke=\"{}\" stroke-width=\"1.5\">\
                 <title>{}: {}</title></circle>",
                sx(x),
                sy(y),
                s.colour,
                escape(&s.label),
                thousands(y)
            );
        }
    }

    // Legend.
    let lx = WIDTH - RIGHT + 16.0;
    for (k, s) in series.iter().enumerate() {
        let ly = TOP + 8.0 + 20.0 * k as f64;
        let dash = if s.dashed {
            " stroke-dasharray=\"6,4\""
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{}\" stroke-width=\"2\"{dash}/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 28.0,
            s.colour,
            lx + 34.0,
            ly + 4.0,
            escape(&s.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// 20000 → "20k", 1500000 → "1.5M".
fn short(value: f64) -> String {
    if value >= 1e6 {
        format!("{}M", trim(value / 1e6))
    } else if value >= 1e3 {
        format!("{}k", trim(value / 1e3))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.1}");
    text.trim_end_matches(".0").to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(162345.6), "162,346");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(short(20000.0), "20k");
        assert_eq!(short(1.5e6), "1.5M");
        assert_eq!(short(500.0), "500");
        assert_eq!(csv_text("a, b"), "\"a, b\"");
    }
}
