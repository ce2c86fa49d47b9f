//! `restart-1m`: how soon a node with N keys (default 1,000,000) serves again after a
//! graceful stop (SIGTERM) and after a crash (kill -9): the time from spawning the process to
//! the first successful linearizable get, polled with a short retry loop. The key read is the
//! last one loaded and its value is checked, so a restart that lost an acknowledged write
//! fails the scenario instead of reporting a time.

use super::context::ScenarioContext;
use super::emit::{median, millis};
use super::fixture::{Loaded, start_loaded};
use super::node::StopHow;
use crate::workload::get_request;
use anyhow::bail;
use atoll_router::{Client, ClientConfig, ClientError};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The scenario's name.
pub const NAME: &str = "restart-1m";
/// Restarts per stop variant when `--repeat` is not given.
const RUNS_DEFAULT: u64 = 3;
/// Pause between two probes of a restarting node: short, as it bounds the error of the
/// measurement.
const PROBE_PAUSE: Duration = Duration::from_millis(5);
/// Dial and request timeouts of a probe: a probe that hangs is abandoned and a fresh one
/// sent, so a request lost during start-up (a QUIC Initial sent before the port was bound
/// would wait ~1 s to be resent; a read that reached the node before its election) costs at
/// most this much. Failed probes are listed in the output, so such delays are visible.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a restarted node may take to answer its first read.
const FIRST_READ_DEADLINE: Duration = Duration::from_secs(120);

/// One restart.
struct Sample {
    stop_ms: f64,
    ready_line_ms: f64,
    first_read_ms: f64,
    failed_probes: BTreeMap<String, u64>,
}

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let mut loaded = start_loaded(ctx, NAME, ctx.store_keys).await?;
    let runs = ctx.runs(RUNS_DEFAULT, 1);
    for (variant, how) in [("sigterm", StopHow::Term), ("kill9", StopHow::Kill)] {
        let mut samples = Vec::new();
        for _ in 0..runs {
            samples.push(restart_once(&mut loaded, how).await?);
        }
        emit_variant(ctx, variant, &samples, loaded.keys.size())?;
    }
    Ok(())
}

async fn restart_once(loaded: &mut Loaded, how: StopHow) -> anyhow::Result<Sample> {
    let stop = loaded.node.stop(how).await?;
    let spawned_at = loaded.node.spawn()?;
    let ready = loaded.node.wait_ready().await?;
    let config = probe_config(loaded.node.client_config()?);
    let last = loaded.keys.key(loaded.keys.size() - 1);
    let (first_read, probes) = first_read(&config, &last, &loaded.value, spawned_at).await?;
    Ok(Sample {
        stop_ms: millis(stop),
        ready_line_ms: millis(ready),
        first_read_ms: millis(first_read),
        failed_probes: probes.failures,
    })
}

/// Short timeouts and no retries inside the client: the probe loop retries, every 5 ms.
fn probe_config(mut config: ClientConfig) -> ClientConfig {
    config.dial_timeout = PROBE_TIMEOUT;
    config.request_timeout = PROBE_TIMEOUT;
    config.retries_max = 0;
    config
}

/// What the probe loop saw before the first successful read.
#[derive(Debug, Default)]
struct Probes {
    /// Failed attempts by error text (the node's answers and client errors).
    failures: BTreeMap<String, u64>,
}

impl Probes {
    fn failed(&mut self, error: &ClientError) {
        *self.failures.entry(error.to_string()).or_insert(0) += 1;
    }
}

/// Probes until a linearizable get of `key` answers `value`; returns the time since spawn
/// and the failed probes.
async fn first_read(
    config: &ClientConfig,
    key: &[u8],
    value: &[u8],
    spawned_at: Instant,
) -> anyhow::Result<(Duration, Probes)> {
    let mut client: Option<Client> = None;
    let mut probes = Probes::default();
    while spawned_at.elapsed() < FIRST_READ_DEADLINE {
        if client.is_none() {
            match Client::connect(config.clone()).await {
                Ok(c) => client = Some(c),
                Err(e) => probes.failed(&e),
            }
        }
        if let Some(c) = &client {
            match c.range(get_request(key.to_vec(), false)).await {
                Ok(response) => {
                    let elapsed = spawned_at.elapsed();
                    match response.kvs.first() {
                        Some(kv) if kv.value == value => return Ok((elapsed, probes)),
                        _ => bail!(
                            "after restart {} is missing or changed: an acknowledged write was lost",
                            String::from_utf8_lossy(key)
                        ),
                    }
                }
                Err(e) => probes.failed(&e),
            }
        }
        tokio::time::sleep(PROBE_PAUSE).await;
    }
    bail!(
        "no successful read within {FIRST_READ_DEADLINE:?} of the restart; failed probes: {:?}",
        probes.failures
    )
}

fn emit_variant(
    ctx: &ScenarioContext,
    variant: &str,
    samples: &[Sample],
    keys: u64,
) -> anyhow::Result<()> {
    let first_read: Vec<f64> = samples.iter().map(|s| s.first_read_ms).collect();
    let ready: Vec<f64> = samples.iter().map(|s| s.ready_line_ms).collect();
    let stop: Vec<f64> = samples.iter().map(|s| s.stop_ms).collect();
    let params = ctx.params(json!({
        "keys": keys,
        "stop": variant,
        "runs": samples.len(),
        "first_read_ms": first_read,
        "ready_line_ms": ready,
        "stop_ms": stop,
        "failed_probes": samples.iter().map(|s| &s.failed_probes).collect::<Vec<_>>(),
        "read": "linearizable get of the last loaded key, from process spawn",
    }));
    let metric = format!("restart_{variant}_first_read_ms");
    ctx.emit(NAME, &metric, median(&first_read), "ms", params.clone())?;
    ctx.emit(
        NAME,
        &format!("restart_{variant}_ready_line_ms"),
        median(&ready),
        "ms",
        params.clone(),
    )?;
    ctx.emit(NAME, &format!("stop_{variant}_ms"), median(&stop), "ms", params)
}
