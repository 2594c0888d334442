//! A progress bar on standard error for long commands (a reindex): redrawn in place on
//! a terminal, one line per tenth otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const WIDTH: usize = 30;
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    label: &'static str,
    started: Instant,
    drawn: Option<Instant>,
    tenth: u64,
    terminal: bool,
}

impl Progress {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            started: Instant::now(),
            drawn: None,
            tenth: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Reports `done` of `total`.
    pub fn update(&mut self, done: u64, total: u64) {
        let total = total.max(1);
        let done = done.min(total);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let eta = (total.saturating_sub(done)) as f64 / rate.max(1e-3);
        let line = format!(
            "{} [{}{}] {:>3}% {done}/{total} {:.0}/s, {:.0}s left",
            self.label,
            "#".repeat((done * WIDTH as u64 / total) as usize),
            "-".repeat(WIDTH - (done * WIDTH as u64 / total).min(WIDTH as u64) as usize),
            done * 100 / total,
            rate,
            eta
        );
        let mut err = std::io::stderr();
        if self.terminal {
            if self.drawn.is_none_or(|at| at.elapsed() >= REDRAW) || done >= total {
                self.drawn = Some(Instant::now());
                let _ = write!(err, "\r{line}");
                let _ = err.flush();
            }
        } else if done * 10 / total > self.tenth || done >= total {
            self.tenth = done * 10 / total;
            let _ = writeln!(err, "{line}");
        }
    }

    /// Ends the bar's line.
    pub fn finish(&self) {
        if self.terminal && self.drawn.is_some() {
            let _ = writeln!(std::io::stderr());
        }
    }
}
