//! What scenarios print: one JSON line per measurement on stdout,
//! `{scenario, metric, value, unit, params}`, and the statistics they summarise runs with.

use serde::Serialize;
use serde_json::Value;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where `suite` collects the measurements its scenarios emit, besides printing them.
pub type Sink = Arc<Mutex<Vec<Measurement>>>;

/// One measurement of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measurement {
    /// The scenario's name.
    pub scenario: String,
    /// What was measured (`restart_kill9_first_read_ms`…).
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`ms`, `us`, `ops/s`, `keys/s`).
    pub unit: String,
    /// How it was measured: key counts, runs, client counts, raw samples.
    pub params: Value,
}

/// What a scenario adds to `suite`'s section of RESULTS.md besides its lines: a heading of its
/// name, a text (a Markdown table of medians and ratios) and links to the plots it drew. The
/// lines of a scenario that writes one are not repeated in the section's table of figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// Markdown, without a heading.
    pub text: String,
    /// SVGs drawn.
    pub plots: Vec<PathBuf>,
}

/// Prints one measurement line on stdout (flushed, so a pipe sees it at once) and, with a
/// sink, keeps it there too.
pub fn emit_to(
    sink: Option<&Sink>,
    scenario: &str,
    metric: &str,
    value: f64,
    unit: &str,
    params: Value,
) -> anyhow::Result<()> {
    let m = Measurement {
        scenario: scenario.into(),
        metric: metric.into(),
        value: round3(value),
        unit: unit.into(),
        params,
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::to_string(&m)?)?;
        out.flush()?;
    }
    if let Some(sink) = sink {
        // A panic elsewhere while holding the lock leaves a valid list.
        sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(m);
    }
    Ok(())
}

/// `base` with every field of `extra` added, a field of `extra` replacing one of the same
/// name: how a measurement's parameters gain the ones its caller adds (the target, the
/// system). A non-object on either side adds nothing.
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(all), Value::Object(extra)) = (base.as_object_mut(), extra) {
        all.extend(extra);
    }
    base
}

/// Rounds to three decimals so lines stay readable (µs precision for values in ms).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Milliseconds with µs precision.
pub fn millis(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

/// The median (the mean of the two middle samples for an even count); 0 for none.
pub fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// The `q` quantile by the nearest-rank method (the smallest sample with at least `q` of the
/// samples at or below it); 0 for none.
pub fn quantile(samples: &[f64], q: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&hundred, 0.99), 99.0);
        assert_eq!(quantile(&hundred, 0.5), 50.0);
        assert_eq!(quantile(&hundred, 1.0), 100.0);
        assert_eq!(quantile(&hundred, 0.0), 1.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
    }

    #[test]
    fn merged_params_gain_and_override_fields() {
        let base = serde_json::json!({"smoke": true, "keys": 1});
        let extra = serde_json::json!({"keys": 2, "target": "etcd"});
        assert_eq!(
            merged(base.clone(), extra),
            serde_json::json!({"smoke": true, "keys": 2, "target": "etcd"})
        );
        assert_eq!(merged(base.clone(), Value::Null), base);
    }

    #[test]
    fn measurements_serialise_with_the_documented_fields() {
        let m = Measurement {
            scenario: "count-only-1m".into(),
            metric: "count_only_median_ms".into(),
            value: 1.5,
            unit: "ms".into(),
            params: serde_json::json!({"keys": 1000}),
        };
        let line = serde_json::to_string(&m).expect("json");
        assert_eq!(
            line,
            r#"{"scenario":"count-only-1m","metric":"count_only_median_ms","value":1.5,"unit":"ms","params":{"keys":1000}}"#
        );
        assert_eq!(millis(Duration::from_micros(1234)), 1.234);
    }
}
