//! `prefix-limit-1m`: on a store of N keys (default 1,000,000), a linearizable limit-100
//! prefix range (`atollctl get --prefix --limit 100`) over the whole prefix, and the same
//! query over a narrower prefix holding 10,000 of the keys; median and p99 of many runs.
//!
//! etcd answers every limited range with the total `count` of the range (and `more`). The
//! whole prefix (`/bench/k/`) ends with `/`, so Atoll answers its count from the directory
//! counts (decision D8); the narrow prefix (`/bench/k/00`) does not, so its 10,000 keys are
//! counted by the scan: the two figures show both paths. Both answers are checked.

use super::context::ScenarioContext;
use super::emit::{median, quantile};
use super::fixture::start_loaded;
use super::queries::{Runs, time_range};
use crate::backend::Backend;
use crate::keys::narrow_exponent;
use anyhow::{anyhow, bail};
use atoll_proto::kv::{RangeRequest, prefix_range_end};
use serde_json::json;
use std::time::Duration;

/// The scenario's name.
pub const NAME: &str = "prefix-limit-1m";
/// The limit of the query.
const LIMIT: i64 = 100;
/// Keys under the narrow prefix (fewer if the store is smaller).
const NARROW_KEYS_MAX: u64 = 10_000;
/// Runs per prefix when `--repeat` is not given (and under `--smoke`).
const RUNS_DEFAULT: u64 = 200;
const RUNS_SMOKE: u64 = 20;
/// Runs made whatever the time budget: enough for a median; the p99 of fewer than 100 runs is
/// close to their maximum.
const RUNS_MIN: u64 = 20;
/// Time after which no new run starts (once `RUNS_MIN` are done): a limited range over a
/// million keys counts all of them and can take most of a second.
const BUDGET: Duration = Duration::from_secs(30);

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let loaded = start_loaded(ctx, NAME, ctx.store_keys).await?;
    let whole = (loaded.keys.prefix().to_vec(), loaded.keys.size());
    let exponent = narrow_exponent(loaded.keys.size(), NARROW_KEYS_MAX);
    let narrow = loaded
        .keys
        .leading_prefix(exponent)
        .ok_or_else(|| anyhow!("no narrow prefix of 10^{exponent} keys in the key space"))?;
    let client = loaded.pool.client(0);
    for (label, (prefix, keys)) in [("whole", whole), ("narrow", narrow)] {
        measure(ctx, client, label, &prefix, keys).await?;
    }
    Ok(())
}

async fn measure(
    ctx: &ScenarioContext,
    client: &Backend,
    label: &str,
    prefix: &[u8],
    keys: u64,
) -> anyhow::Result<()> {
    let request = RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_range_end(prefix),
        limit: LIMIT,
        ..RangeRequest::default()
    };
    let expected_kvs = keys.min(LIMIT as u64) as usize;
    let max = ctx.runs(RUNS_DEFAULT, RUNS_SMOKE);
    let runs = Runs { max, min: RUNS_MIN.min(max), budget: BUDGET };
    let samples = time_range(client, &request, runs, |r| {
        if r.kvs.len() != expected_kvs || r.count != keys as i64 || r.more != (keys > LIMIT as u64)
        {
            bail!(
                "limit {LIMIT} range over {keys} keys answered {} kvs, count {}, more {}",
                r.kvs.len(),
                r.count,
                r.more
            );
        }
        Ok(())
    })
    .await?;
    let params = ctx.params(json!({
        "prefix": String::from_utf8_lossy(prefix),
        "prefix_keys": keys,
        "store_keys": ctx.store_keys,
        "limit": LIMIT,
        "runs": samples.len(),
        "linearizable": true,
        "count_returned": keys,
        "note": "etcd semantics: every limited range also returns the total count of its range",
    }));
    let metric = format!("{label}_prefix_limit{LIMIT}");
    ctx.emit(NAME, &format!("{metric}_median_ms"), median(&samples), "ms", params.clone())?;
    ctx.emit(NAME, &format!("{metric}_p99_ms"), quantile(&samples, 0.99), "ms", params)
}
