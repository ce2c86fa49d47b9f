//! `put-get-clients`: closed-loop puts, then linearizable gets, at 1, 16, 64 and 256
//! concurrent clients over one QUIC connection (as etcd's benchmark defaults to one
//! connection); ops/s, p50 and p99 per point. Random keys of a preloaded key space, so every
//! get finds its key.

use super::context::ScenarioContext;
use super::fixture::start_loaded;
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::KeySpace;
use crate::limits::SEED_DEFAULT;
use crate::progress::progress_wanted;
use crate::report::RunReport;
use crate::schedule::{Pacing, StopAt};
use crate::workload::{WorkloadKind, WorkloadSpec};
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
            let spec = point_spec(ctx, kind, keys.clone(), Arc::clone(value), clients);
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

fn point_spec(
    ctx: &ScenarioContext,
    kind: WorkloadKind,
    keys: KeySpace,
    value: Arc<Vec<u8>>,
    clients: u64,
) -> RunSpec {
    let workload = WorkloadSpec {
        kind,
        keys,
        sequential: false,
        value,
        serializable: false,
        range_limit: 0,
        read_ratio: 0.0,
        seed: SEED_DEFAULT,
    };
    RunSpec {
        workload: Arc::new(workload),
        clients: clients as usize,
        stop: StopAt::Elapsed(ctx.duration),
        warmup: ctx.warmup,
        pacing: Pacing::Closed,
        progress: progress_wanted(),
        keep_intervals: false,
    }
}

fn emit_point(
    ctx: &ScenarioContext,
    scenario: &str,
    report: &RunReport,
    key_space: u64,
    extra: &Value,
) -> anyhow::Result<()> {
    let mut params = ctx.params(json!({
        "clients": report.clients,
        "connections": report.connections,
        "duration_s": report.duration_s,
        "ops": report.ops,
        "key_space": key_space,
        "value_size": ctx.value_size,
        "linearizable": true,
        "errors": report.errors,
    }));
    if let (Some(all), Value::Object(extra)) = (params.as_object_mut(), extra) {
        all.extend(extra.clone());
    }
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
