//! A transfer's progress, as lab 08's client shows it: on a terminal, one
//! status line redrawn in place (at most every 200 ms, all transfers on
//! it); when stdout is a pipe or a file, a plain log line at 25, 50 and
//! 75% of each transfer, so that a log stays short and a test can read it.
//! At the end, a summary with the rate.
//!
//! ```text
//! big.iso from alice: 312.0 MB of 1.0 GB (31%), 402.3 MB/s, 2 s left
//! received big.iso from alice: 1.0 GB (1000000000 bytes) in 2.61 s, 383.1 MB/s, saved as ...
//! ```

use std::time::{Duration, Instant};

use nix::unistd::isatty;

use crate::dcc::{self, human};
use crate::{fail, log};

/// A progress line on a terminal is redrawn at most this often.
const REDRAW: Duration = Duration::from_millis(200);

/// One transfer's clock, and what it has reported so far.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    /// Quarters reported as plain lines (not on a terminal).
    quarters: u64,
}

impl Progress {
    /// A transfer that starts now.
    pub fn new() -> Progress {
        Progress {
            started: Instant::now(),
            quarters: 0,
        }
    }

    /// `52.4 MB (52428800 bytes) in 0.9 s, 58.1 MB/s`
    pub fn summary(&self, bytes: u64) -> String {
        let elapsed = self.started.elapsed();
        format!(
            "{} ({bytes} bytes) in {:.2} s, {}",
            human(bytes),
            elapsed.as_secs_f64(),
            dcc::rate(bytes, elapsed)
        )
    }
}

impl Default for Progress {
    fn default() -> Progress {
        Progress::new()
    }
}

/// Where the progress of every transfer is shown, once per turn of the
/// poll loop: [`add`](Self::add) each transfer, then [`draw`](Self::draw).
#[derive(Debug)]
pub struct ProgressLine {
    /// Whether stdout is a terminal (isatty(3)): a status line, or plain lines.
    tty: bool,
    redrawn: Instant,
    /// This turn's transfers, for the status line.
    parts: Vec<String>,
}

impl ProgressLine {
    /// A status line if stdout is a terminal, plain lines otherwise.
    pub fn new() -> ProgressLine {
        ProgressLine {
            tty: isatty(std::io::stdout()).unwrap_or(false),
            redrawn: Instant::now(),
            parts: Vec::new(),
        }
    }

    /// The transfer `what` (`big.iso from alice`) is at `done` of `total`
    /// bytes. Not on a terminal, a line is logged as it passes a quarter.
    pub fn add(&mut self, what: &str, done: u64, total: u64, progress: &mut Progress) {
        let quarters = (u128::from(done) * 4 / u128::from(total.max(1))) as u64;
        let passed = quarters > progress.quarters && quarters < 4;
        if !self.tty && !passed {
            return;
        }
        let line = format!(
            "{what}: {}",
            dcc::progress(done, total, progress.started.elapsed())
        );
        if self.tty {
            self.parts.push(line);
        } else {
            progress.quarters = quarters;
            log!("-!- {line}");
        }
    }

    /// The end of the turn: on a terminal, the status line is redrawn with
    /// this turn's transfers (if the last drawing is old enough).
    pub fn draw(&mut self) {
        if !self.parts.is_empty() && self.redrawn.elapsed() >= REDRAW {
            fail::status(&self.parts.join(" | "));
            self.redrawn = Instant::now();
        }
        self.parts.clear();
    }
}

impl Default for ProgressLine {
    fn default() -> ProgressLine {
        ProgressLine::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_come_once_per_quarter() {
        let mut line = ProgressLine {
            tty: false,
            redrawn: Instant::now(),
            parts: Vec::new(),
        };
        let mut progress = Progress::new();
        for (done, quarters) in [(10, 0), (25, 1), (30, 1), (74, 2), (75, 3), (100, 3)] {
            line.add("f from a", done, 100, &mut progress);
            assert_eq!(progress.quarters, quarters, "at {done}");
        }
        assert!(line.parts.is_empty());
        // An empty file: no division by zero, no line.
        let mut empty = Progress::new();
        line.add("e from a", 0, 0, &mut empty);
        assert_eq!(empty.quarters, 0);
    }

    #[test]
    fn a_summary_says_size_and_rate() {
        let summary = Progress::new().summary(52_428_800);
        assert!(
            summary.starts_with("52.4 MB (52428800 bytes) in "),
            "{summary}"
        );
        assert!(summary.ends_with("B/s"), "{summary}");
    }
}
