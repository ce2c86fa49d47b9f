//! `lease-throughput`: how many lease grants, keepalives and revocations per second, and at
//! what latency, on a 3-member Atoll cluster (five data shards, decision D16's meta shard)
//! and a 3-member etcd with its default durability, through the same workloads
//! (`lease-grant`, `lease-keepalive`, `lease-revoke`; native protocol and etcd gRPC).
//!
//! Each round starts both systems fresh, one after the other, and on each runs three
//! closed-loop phases: grants of new leases (sequential IDs, for `--duration`, no warm-up:
//! a warm-up would grant the IDs the measured phase grants), keepalives of random leases
//! among those (etcd: one `LeaseKeepAlive` stream per loop, as clientv3 keeps one), then the
//! revocation of every lease granted (so revocations are timed over as many leases as
//! were granted, however long that takes). A revocation in Atoll is three Raft steps, the
//! middle one on every data shard at once; in etcd one entry.

use super::{CONNECTIONS, Cluster, System, systems};
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use crate::report::RunReport;
use crate::scenario::context::ScenarioContext;
use crate::scenario::emit::{Summary, median, merged};
use crate::schedule::StopAt;
use crate::workload::WorkloadKind;
use anyhow::bail;
use serde_json::json;
use std::fmt::Write as _;
use std::sync::Arc;

/// The scenario's name.
pub const NAME: &str = "lease-throughput";
/// Closed-loop clients when `--clients` is not given (4 under `--smoke`).
const CLIENTS_DEFAULT: u64 = 64;
const CLIENTS_SMOKE: u64 = 4;
/// Rounds when `--repeat` is not given.
const ROUNDS_DEFAULT: u64 = 3;
/// IDs the grant phase may use: more than any phase can grant, so none is granted twice.
const GRANT_IDS: u64 = 1_000_000_000;
/// Prefix of the lease workloads' key space (its keys are never written: only the index,
/// which names the lease, is used).
const LEASE_ID_PREFIX: &str = "/lease-id/";

/// The three phases, in order.
const PHASES: [WorkloadKind; 3] =
    [WorkloadKind::LeaseGrant, WorkloadKind::LeaseKeepalive, WorkloadKind::LeaseRevoke];

/// One system's reports of one round, in [`PHASES`] order.
type RoundReports = Vec<RunReport>;

/// Runs the scenario; returns its table for `suite`.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<Summary> {
    let systems = systems(ctx, NAME)?;
    let clients = ctx.clients_flag.as_ref().and_then(|c| c.first().copied());
    let clients = clients.unwrap_or(if ctx.smoke { CLIENTS_SMOKE } else { CLIENTS_DEFAULT });
    let mut by_system: Vec<(System, Vec<RoundReports>, serde_json::Value)> =
        systems.iter().map(|s| (*s, Vec::new(), json!({}))).collect();
    for _ in 0..ctx.runs(ROUNDS_DEFAULT, 1) {
        for (system, rounds, params) in &mut by_system {
            let cluster = Cluster::start(ctx, *system, NAME).await?;
            let pool = cluster.pool(CONNECTIONS).await?;
            rounds.push(round(ctx, &pool, clients).await?);
            *params = cluster.params();
        }
    }
    for (_, rounds, target) in &by_system {
        emit(ctx, rounds, clients, target.clone())?;
    }
    let text = table(&by_system, clients, ctx);
    eprintln!("{text}");
    Ok(Summary { scenario: NAME.into(), text, plots: Vec::new() })
}

/// The three phases on one fresh cluster.
async fn round(
    ctx: &ScenarioContext,
    pool: &ClientPool,
    clients: u64,
) -> anyhow::Result<RoundReports> {
    let value = Arc::new(make_value(0, SEED_DEFAULT));
    let all_ids = KeySpace::new(LEASE_ID_PREFIX, GRANT_IDS, None)?;
    let mut grant =
        RunSpec::closed_loop(PHASES[0], &all_ids, &value, clients, ctx.duration, ctx.warmup);
    grant.warmup = std::time::Duration::ZERO;
    Arc::make_mut(&mut grant.workload).sequential = true;
    let granted = run(pool, &grant).await?.report;
    // Every grant ran was answered one way or the other: these are the IDs it used.
    let tried = granted.ops + granted.errors.values().sum::<u64>();
    if granted.ops == 0 {
        bail!("the grant phase granted no lease (errors: {:?})", granted.errors);
    }
    let ids = KeySpace::new(LEASE_ID_PREFIX, tried, None)?;
    let renew = RunSpec::closed_loop(PHASES[1], &ids, &value, clients, ctx.duration, ctx.warmup);
    let renewed = run(pool, &renew).await?.report;
    let mut revoke =
        RunSpec::closed_loop(PHASES[2], &ids, &value, clients, ctx.duration, ctx.warmup);
    revoke.warmup = std::time::Duration::ZERO;
    revoke.stop = StopAt::Total(tried);
    Arc::make_mut(&mut revoke.workload).sequential = true;
    let revoked = run(pool, &revoke).await?.report;
    for report in [&renewed, &revoked] {
        if report.ops == 0 {
            bail!("the {} phase completed nothing (errors: {:?})", report.workload, report.errors);
        }
    }
    Ok(vec![granted, renewed, revoked])
}

/// The median over rounds of `f` of phase `phase`.
fn median_of(rounds: &[RoundReports], phase: usize, f: impl Fn(&RunReport) -> f64) -> f64 {
    median(&rounds.iter().map(|r| f(&r[phase])).collect::<Vec<_>>())
}

fn emit(
    ctx: &ScenarioContext,
    rounds: &[RoundReports],
    clients: u64,
    target: serde_json::Value,
) -> anyhow::Result<()> {
    for (phase, kind) in PHASES.iter().enumerate() {
        let op = kind.name().trim_start_matches("lease-");
        let of_phase = |r: &RoundReports| r[phase].clone();
        let reports: Vec<RunReport> = rounds.iter().map(of_phase).collect();
        let params = ctx.params(merged(
            json!({
                "clients": clients,
                "connections": CONNECTIONS,
                "rounds": rounds.len(),
                "duration_s": ctx.duration.as_secs_f64(),
                "ops_by_round": reports.iter().map(|r| r.ops).collect::<Vec<_>>(),
                "ops_per_s_by_round": reports.iter().map(|r| r.ops_per_s).collect::<Vec<_>>(),
                "errors_by_round": reports.iter().map(|r| &r.errors).collect::<Vec<_>>(),
            }),
            target.clone(),
        ));
        let lines = [
            ("ops_per_s", median_of(rounds, phase, |r| r.ops_per_s), "ops/s"),
            ("p50_us", median_of(rounds, phase, |r| r.latency_us.p50 as f64), "us"),
            ("p99_us", median_of(rounds, phase, |r| r.latency_us.p99 as f64), "us"),
        ];
        for (metric, value, unit) in lines {
            ctx.emit(NAME, &format!("{op}_{metric}"), value, unit, params.clone())?;
        }
    }
    Ok(())
}

/// The Markdown table: per operation, each system's medians and Atoll's ratio to etcd.
fn table(
    by_system: &[(System, Vec<RoundReports>, serde_json::Value)],
    clients: u64,
    ctx: &ScenarioContext,
) -> String {
    let rounds = by_system.first().map_or(0, |(_, r, _)| r.len());
    let shards = by_system
        .iter()
        .find_map(|(_, _, params)| params.get("shards_in_map").and_then(|v| v.as_u64()))
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    let mut out = format!(
        "3-member clusters on loopback (Atoll pre-split into {shards} data shards, leases in \
         the meta shard; etcd with default durability), {clients} closed-loop clients over \
         {CONNECTIONS} connections, grants and keepalives for {:?} each, then the revocation \
         of every lease granted; medians of {rounds} rounds\n\n| op | system | ops/s | p50 \
         µs | p99 µs |\n| --- | --- | ---: | ---: | ---: |\n",
        ctx.duration
    );
    for (phase, kind) in PHASES.iter().enumerate() {
        let mut ops = Vec::new();
        for (system, rounds, _) in by_system {
            let ops_per_s = median_of(rounds, phase, |r| r.ops_per_s);
            ops.push(ops_per_s);
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {:.0} | {:.0} |",
                kind.name(),
                system.name(),
                ops_per_s,
                median_of(rounds, phase, |r| r.latency_us.p50 as f64),
                median_of(rounds, phase, |r| r.latency_us.p99 as f64),
            );
        }
        if let [atoll, etcd] = ops[..] {
            let _ = writeln!(
                out,
                "| {} | Atoll / etcd | {:.2} | | |",
                kind.name(),
                atoll / etcd.max(1e-9)
            );
        }
    }
    out
}
