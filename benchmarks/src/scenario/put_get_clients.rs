//! `put-get-clients`: closed-loop puts, then linearizable gets, at 1, 16, 64 and 256
//! concurrent clients over one QUIC connection (as etcd's benchmark defaults to one
//! connection); ops/s, p50 and p99 per point. Random keys of a preloaded key space, so every
//! get finds its key.

use super::context::ScenarioContext;
use super::emit::merged;
use super::fixture::start_loaded;
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::KeySpace;
use crate::report::RunReport;
use crate::workload::WorkloadKind;
use anyhow::bail;
use serde_json::{Value, json};
use std::sync::Arc;

/// The scenario's name.
pub const NAME: &str = "put-get-clients";
/// Keys preloaded and then put and read at random: enough that clients rarely collide on a
/// key, small enough to load in a few seconds.
pub const KEY_SPACE: u64 = 10_000;

/// Runs the scenario.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let loaded = start_loaded(ctx, NAME, KEY_SPACE.min(ctx.store_keys)).await?;
    let target = json!({ "target": "native" });
    measure_points(ctx, NAME, &loaded.pool, &loaded.keys, &loaded.value, &target).await
}

/// Closed-loop puts, then linearizable gets, at each of the context's client counts over
/// `pool`; emits ops/s, p50 and p99 per point under `scenario`, with `extra` in the params.
/// Shared with `etcd-put-get`, so both systems are measured by the same code.
pub async fn measure_points(
    ctx: &ScenarioContext,
    scenario: &str,
    pool: &ClientPool,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
    extra: &Value,
) -> anyhow::Result<()> {
    for &clients in &ctx.clients {
        for kind in [WorkloadKind::Put, WorkloadKind::Get] {
            let spec = RunSpec::closed_loop(kind, keys, value, clients, ctx.duration, ctx.warmup);
            let report = run(pool, &spec).await?.report;
            if report.ops == 0 {
                bail!(
                    "{} at {clients} clients completed no operation; errors: {:?}",
                    kind.name(),
                    report.errors
                );
            }
            emit_point(ctx, scenario, &report, keys.size(), extra)?;
        }
    }
    Ok(())
}

fn emit_point(
    ctx: &ScenarioContext,
    scenario: &str,
    report: &RunReport,
    key_space: u64,
    extra: &Value,
) -> anyhow::Result<()> {
    let params = ctx.params(json!({
        "clients": report.clients,
        "connections": report.connections,
        "duration_s": report.duration_s,
        "ops": report.ops,
        "key_space": key_space,
        "value_size": ctx.value_size,
        "linearizable": true,
        "errors": report.errors,
    }));
    let params = merged(params, extra.clone());
    let name = report.workload.as_str();
    ctx.emit(scenario, &format!("{name}_ops_per_s"), report.ops_per_s, "ops/s", params.clone())?;
    ctx.emit(
        scenario,
        &format!("{name}_p50_us"),
        report.latency_us.p50 as f64,
        "us",
        params.clone(),
    )?;
    ctx.emit(scenario, &format!("{name}_p99_us"), report.latency_us.p99 as f64, "us", params)
}
