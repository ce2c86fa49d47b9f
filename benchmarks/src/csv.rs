//! `--csv FILE`: one row per second of the measured phase with throughput, latency
//! percentiles and errors, for plotting.

use crate::limits::INTERVAL;
use crate::recorder::Interval;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;

/// The header row.
pub const CSV_HEADER: &str = "second,ops,ops_per_s,p50_us,p99_us,max_us,errors";

/// One second of the measured phase, as `--csv` writes it and `--plot` draws it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SecondRow {
    /// Seconds since the start of the measured phase.
    pub second: u64,
    /// Operations that succeeded in this second.
    pub ops: u64,
    /// The same, per second.
    pub ops_per_s: f64,
    /// Median latency of this second's operations (0 if none).
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Operations that failed in this second.
    pub errors: u64,
}

/// The rows of `intervals`, one per second.
pub fn second_rows(intervals: &[Interval]) -> Vec<SecondRow> {
    let seconds = INTERVAL.as_secs_f64();
    let rows = intervals.iter().enumerate().map(|(second, row)| {
        let h = &row.latency;
        let (p50_us, p99_us, max_us) = if h.is_empty() {
            (0, 0, 0)
        } else {
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
        };
        SecondRow {
            second: second as u64,
            ops: h.len(),
            ops_per_s: h.len() as f64 / seconds,
            p50_us,
            p99_us,
            max_us,
            errors: row.errors,
        }
    });
    rows.collect()
}

/// The CSV text of `intervals`: the header, then one row per second.
pub fn csv_text(intervals: &[Interval]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for r in second_rows(intervals) {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{:.1},{},{},{},{}",
            r.second, r.ops, r.ops_per_s, r.p50_us, r.p99_us, r.max_us, r.errors
        );
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
