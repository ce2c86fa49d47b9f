//! `--csv FILE`: one row per second of the measured phase with throughput, latency
//! percentiles and errors, for plotting.

use crate::limits::INTERVAL;
use crate::recorder::Interval;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;

/// The header row.
pub const CSV_HEADER: &str = "second,ops,ops_per_s,p50_us,p99_us,max_us,errors";

/// The CSV text of `intervals`: the header, then one row per second.
pub fn csv_text(intervals: &[Interval]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let seconds = INTERVAL.as_secs_f64();
    for (second, row) in intervals.iter().enumerate() {
        let h = &row.latency;
        let (p50, p99, max) = if h.is_empty() {
            (0, 0, 0)
        } else {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
        };
        let ops = h.len();
        let rate = ops as f64 / seconds;
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{second},{ops},{rate:.1},{p50},{p99},{max},{}", row.errors);
    }
    out
}

/// Writes the CSV of `intervals` to `path`.
pub fn write_csv(path: &Path, intervals: &[Interval]) -> anyhow::Result<()> {
    std::fs::write(path, csv_text(intervals))
        .with_context(|| format!("cannot write --csv file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::latency_histogram;

    #[test]
    fn one_row_per_second_after_the_header() {
        let mut busy = latency_histogram().expect("histogram");
        for v in [100, 200, 300] {
            busy.record(v).expect("record");
        }
        let idle = latency_histogram().expect("histogram");
        let rows =
            vec![Interval { latency: busy, errors: 1 }, Interval { latency: idle, errors: 0 }];
        let text = csv_text(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, vec![CSV_HEADER, "0,3,3.0,200,300,300,1", "1,0,0.0,0,0,0,0"]);
    }
}
