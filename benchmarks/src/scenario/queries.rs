//! Timing one read many times, one after the other, on an otherwise idle node: the latency of
//! a single query (as a user running `atollctl get` sees it), not a throughput.

use super::emit::millis;
use crate::backend::Backend;
use atoll_proto::kv::{RangeRequest, RangeResponse};
use std::time::{Duration, Instant};

/// How many times a query is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runs {
    /// At most this many runs.
    pub max: u64,
    /// At least this many, even past the budget.
    pub min: u64,
    /// No new run starts after this much time once `min` runs are done: a query over a
    /// million keys can take a second, and 200 of them would take minutes.
    pub budget: Duration,
}

impl Runs {
    /// Whether run number `done + 1` should start, `elapsed` after the first.
    pub fn another(&self, done: u64, elapsed: Duration) -> bool {
        done < self.max && (done < self.min || elapsed < self.budget)
    }
}

/// Sends `request` as often as `runs` says; checks each answer with `check` (an error names
/// what was wrong) and returns each run's latency in ms.
pub async fn time_range(
    client: &Backend,
    request: &RangeRequest,
    runs: Runs,
    check: impl Fn(&RangeResponse) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(runs.max.min(10_000) as usize);
    let first = Instant::now();
    while runs.another(samples.len() as u64, first.elapsed()) {
        let started = Instant::now();
        let response = client.range(request.clone()).await?;
        samples.push(millis(started.elapsed()));
        check(&response)?;
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stop_at_the_maximum_or_past_the_budget_after_the_minimum() {
        let runs = Runs { max: 200, min: 20, budget: Duration::from_secs(30) };
        let s = Duration::from_secs;
        assert!(runs.another(0, s(0)));
        assert!(runs.another(199, s(29)));
        assert!(!runs.another(200, s(1)));
        assert!(runs.another(19, s(100)), "the minimum is reached whatever the time");
        assert!(!runs.another(20, s(30)));
        let once = Runs { max: 1, min: 5, budget: s(30) };
        assert!(once.another(0, s(0)) && !once.another(1, s(0)), "max caps min");
    }
}
