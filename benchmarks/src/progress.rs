//! The live one-line progress on stderr (only when stderr is a terminal, so logs and CI
//! output stay clean): operations and the rate so far, redrawn every second.

use crate::limits::PROGRESS_INTERVAL;
use crate::recorder::Counters;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Whether a progress line should be drawn: stderr is a terminal.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}

/// The progress line's text.
pub fn progress_line(label: &str, elapsed: Duration, succeeded: u64, failed: u64) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 { succeeded as f64 / seconds } else { 0.0 };
    format!("{label} {seconds:.0}s {succeeded} ops {rate:.0} ops/s {failed} errors")
}

/// A running progress line; cleared when finished or dropped.
pub struct Progress {
    task: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts redrawing `label`'s progress from `counters` if `enabled`.
    pub fn start(label: String, counters: Arc<Counters>, enabled: bool) -> Progress {
        if !enabled {
            return Progress { task: None };
        }
        let start = Instant::now();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (succeeded, failed) = counters.get();
                let line = progress_line(&label, start.elapsed(), succeeded, failed);
                // "\r" and "erase line" keep it on one line; a failed write only loses a redraw.
                let _ = write!(std::io::stderr(), "\r\x1b[2K{line}");
            }
        });
        Progress { task: Some(task) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_ops_rate_and_errors() {
        let line = progress_line("put", Duration::from_secs(4), 2000, 3);
        assert_eq!(line, "put 4s 2000 ops 500 ops/s 3 errors");
        assert_eq!(progress_line("get", Duration::ZERO, 0, 0), "get 0s 0 ops 0 ops/s 0 errors");
    }
}
