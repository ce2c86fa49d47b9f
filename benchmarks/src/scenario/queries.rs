//! Timing one read many times, one after the other, on an otherwise idle node: the latency of
//! a single query (as a user running `atollctl get` sees it), not a throughput.

use super::emit::millis;
use atoll_proto::kv::{RangeRequest, RangeResponse};
use atoll_router::Client;
use std::time::Instant;

/// Sends `request` `runs` times; checks each answer with `check` (an error names what was
/// wrong) and returns each run's latency in ms.
pub async fn time_range(
    client: &Client,
    request: &RangeRequest,
    runs: u64,
    check: impl Fn(&RangeResponse) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<f64>> {
    let mut samples = Vec::with_capacity(runs as usize);
    for _ in 0..runs {
        let started = Instant::now();
        let response = client.range(request.clone()).await?;
        samples.push(millis(started.elapsed()));
        check(&response)?;
    }
    Ok(samples)
}
