//! `count-only-1m`: on a store of N keys (default 1,000,000), the time of a linearizable
//! `count_only` range over the whole key prefix (`atollctl get --prefix --count-only`),
//! median of several runs. The count is checked against the keys loaded.

use super::context::ScenarioContext;
use super::emit::{median, quantile};
use super::fixture::start_loaded;
use super::queries::{Runs, time_range};
use anyhow::bail;
use atoll_proto::kv::RangeRequest;
use serde_json::json;
use std::time::Duration;

/// The scenario's name.
pub const NAME: &str = "count-only-1m";
/// Runs when `--repeat` is not given (and under `--smoke`).
const RUNS_DEFAULT: u64 = 9;
const RUNS_SMOKE: u64 = 3;
/// Runs made whatever the time budget.
const RUNS_MIN: u64 = 3;
/// Time after which no new run starts (once `RUNS_MIN` are done).
const BUDGET: Duration = Duration::from_secs(30);

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let loaded = start_loaded(ctx, NAME, ctx.store_keys).await?;
    let keys = loaded.keys.size();
    let (key, range_end) = loaded.keys.prefix_range();
    let request = RangeRequest { key, range_end, count_only: true, ..RangeRequest::default() };
    let runs = Runs { max: ctx.runs(RUNS_DEFAULT, RUNS_SMOKE), min: RUNS_MIN, budget: BUDGET };
    let samples = time_range(loaded.pool.client(0), &request, runs, |r| {
        if r.count != keys as i64 || !r.kvs.is_empty() {
            bail!(
                "count_only answered count {} with {} kvs; expected {keys} and none",
                r.count,
                r.kvs.len()
            );
        }
        Ok(())
    })
    .await?;
    let params = ctx.params(json!({
        "keys": keys,
        "runs": samples.len(),
        "linearizable": true,
        "min_ms": quantile(&samples, 0.0),
        "max_ms": quantile(&samples, 1.0),
        "samples_ms": samples,
    }));
    ctx.emit(NAME, "count_only_median_ms", median(&samples), "ms", params)
}
