//! The final JSON line of `atoll-bench run`: what ran, how many operations, the throughput,
//! latency percentiles from the HdrHistogram (µs) and errors by kind.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Latency percentiles in microseconds; all 0 when nothing succeeded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest recorded value.
    pub max: u64,
}

impl LatencySummary {
    /// The percentiles of `histogram`. Each is the highest value equivalent to the recorded
    /// one at the histogram's precision, as HdrHistogram reports it.
    pub fn from_histogram(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            p50: histogram.value_at_quantile(0.50),
            p90: histogram.value_at_quantile(0.90),
            p99: histogram.value_at_quantile(0.99),
            p999: histogram.value_at_quantile(0.999),
            max: histogram.max(),
        }
    }
}

/// The report of one measured run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// Workload name (`put`, `get`, `range`, `txn-update`, `mixed`).
    pub workload: String,
    /// Concurrent request loops.
    pub clients: usize,
    /// Successful operations.
    pub ops: u64,
    /// Length of the measured phase in seconds (warm-up excluded).
    pub duration_s: f64,
    /// Successful operations per second.
    pub ops_per_s: f64,
    /// Latency of the successful operations.
    pub latency_us: LatencySummary,
    /// Failed operations by kind.
    pub errors: BTreeMap<String, u64>,
    /// QUIC connections the loops shared.
    pub connections: usize,
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Target rate of an open-loop run.
    pub rate_target: Option<f64>,
}

/// Operations per second, 0 for an empty duration.
pub fn per_second(ops: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { ops as f64 / seconds } else { 0.0 }
}

/// Rounds to three decimals so reports stay readable.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl RunReport {
    /// The report as one JSON line.
    pub fn to_json_line(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::latency_histogram;

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut h = latency_histogram().expect("histogram");
        for v in 1..=1000u64 {
            h.record(v).expect("record");
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!((s.p50, s.p90, s.p99, s.p999, s.max), (500, 900, 990, 999, 1000));
        assert_eq!(
            LatencySummary::from_histogram(&latency_histogram().expect("h")),
            LatencySummary::default()
        );
    }

    #[test]
    fn the_report_is_one_json_line_with_the_documented_fields() {
        let mut h = latency_histogram().expect("histogram");
        h.record(250).expect("record");
        let report = RunReport {
            workload: "put".into(),
            clients: 16,
            ops: 1,
            duration_s: 2.0,
            ops_per_s: per_second(1, Duration::from_secs(2)),
            latency_us: LatencySummary::from_histogram(&h),
            errors: BTreeMap::from([("timeout".to_string(), 2)]),
            connections: 1,
            mode: "closed",
            rate_target: None,
        };
        let line = report.to_json_line().expect("json");
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("parses");
        assert_eq!(v["workload"], "put");
        assert_eq!(v["clients"], 16);
        assert_eq!(v["ops_per_s"], 0.5);
        assert_eq!(v["latency_us"]["p50"], 250);
        assert_eq!(v["latency_us"]["p999"], 250);
        assert_eq!(v["latency_us"]["max"], 250);
        assert_eq!(v["errors"]["timeout"], 2);
        assert!(line.starts_with(r#"{"workload":"put","clients":16,"ops":1,"duration_s":2.0"#));
    }

    #[test]
    fn rates_and_rounding() {
        assert_eq!(per_second(10, Duration::ZERO), 0.0);
        assert_eq!(per_second(10, Duration::from_millis(500)), 20.0);
        assert_eq!(round3(1.23456), 1.235);
    }
}
