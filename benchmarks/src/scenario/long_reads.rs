//! `write-during-long-reads`: does a long read hold up writes? etcd 3.4 made reads
//! non-blocking ("Fully concurrent reads", etcd 3.4 release notes, etcd PR #10523): a long
//! range no longer holds the backend's read lock that commits wait for, so put latency should
//! barely move while whole-prefix ranges run. The scenario loads N keys (100,000 by
//! default; fewer under `--smoke`), then alternates, round by round, a closed-loop put phase
//! alone and the same phase while 4 loops read the whole prefix, unlimited and linearizable,
//! over a connection of their own. It reports the put p50/p99 and ops/s of both phases (the
//! median over rounds) and the reads' own time, for Atoll and for etcd through its gRPC API
//! (a missing etcd fails a full run and is skipped under `--smoke`, as in the other etcd
//! scenarios: a silent Atoll-only run would leave the comparison out unnoticed).

use super::context::ScenarioContext;
use super::emit::{median, merged, millis};
use super::etcd_node::{EtcdNode, etcd_version};
use super::fixture::{SCENARIO_PREFIX, load_and_emit, start_loaded};
use crate::backend::Backend;
use crate::connect::ClientPool;
use crate::engine::{RunSpec, run};
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use crate::report::RunReport;
use crate::workload::{WorkloadKind, range_request};
use anyhow::{anyhow, bail};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "write-during-long-reads";
/// Keys the long reads return (fewer if `--keys` or `--smoke` make the store smaller): enough
/// that one read takes far longer than one put.
const KEYS_DEFAULT: u64 = 100_000;
/// Closed-loop put loops.
const WRITERS: u64 = 16;
/// Concurrent whole-prefix reads.
const READERS: usize = 4;
/// Rounds (each: puts alone, then puts during reads) when `--repeat` is not given.
const ROUNDS_DEFAULT: u64 = 3;

/// What the long reads did during one put phase.
#[derive(Clone, Debug, Default)]
struct Reads {
    /// Each completed read's time in ms.
    ms: Vec<f64>,
    /// Failed reads by error text.
    errors: Vec<String>,
}

/// One round: the put phase alone and during reads.
struct Round {
    alone: RunReport,
    during: RunReport,
    reads: Reads,
}

/// Runs the scenario on Atoll, then on etcd if installed.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let keys = KEYS_DEFAULT.min(ctx.store_keys);
    {
        let loaded = start_loaded(ctx, NAME, keys).await?;
        let readers = ClientPool::connect(&loaded.node.client_config()?, 1).await?;
        let rounds = measure(ctx, &loaded.pool, &readers, &loaded.keys, &loaded.value).await?;
        emit_rounds(ctx, &rounds, keys, json!({ "target": "atoll" }))?;
    }
    if !ctx.etcd_wanted(NAME, "measured Atoll only")? {
        return Ok(());
    }
    let etcd = EtcdNode::start(&ctx.etcd_bin, NAME).await?;
    let writers = ClientPool::connect_etcd(&etcd.config(), 1).await?;
    let readers = ClientPool::connect_etcd(&etcd.config(), 1).await?;
    let space = KeySpace::new(SCENARIO_PREFIX, keys, None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
    let target = json!({ "target": "etcd", "etcd_version": version });
    load_and_emit(ctx, NAME, &writers, &space, &value, target.clone()).await?;
    let rounds = measure(ctx, &writers, &readers, &space, &value).await?;
    emit_rounds(ctx, &rounds, keys, target)?;
    drop((readers, writers));
    drop(etcd);
    Ok(())
}

async fn measure(
    ctx: &ScenarioContext,
    writers: &ClientPool,
    readers: &ClientPool,
    keys: &KeySpace,
    value: &Arc<Vec<u8>>,
) -> anyhow::Result<Vec<Round>> {
    let spec =
        RunSpec::closed_loop(WorkloadKind::Put, keys, value, WRITERS, ctx.duration, ctx.warmup);
    let mut rounds = Vec::new();
    for _ in 0..ctx.runs(ROUNDS_DEFAULT, 1) {
        let alone = checked(run(writers, &spec).await?.report)?;
        let stop = Arc::new(AtomicBool::new(false));
        let loops: Vec<_> = (0..READERS)
            .map(|i| {
                let client = readers.client(i).clone();
                tokio::spawn(read_loop(client, keys.clone(), Arc::clone(&stop)))
            })
            .collect();
        let during = run(writers, &spec).await;
        stop.store(true, Ordering::Relaxed);
        let mut reads = Reads::default();
        for handle in loops {
            let mine = handle.await.map_err(|e| anyhow!("a read loop failed: {e}"))??;
            reads.ms.extend(mine.ms);
            reads.errors.extend(mine.errors);
        }
        rounds.push(Round { alone, during: checked(during?.report)?, reads });
    }
    Ok(rounds)
}

fn checked(report: RunReport) -> anyhow::Result<RunReport> {
    if report.ops == 0 {
        bail!("a put phase completed no operation; errors: {:?}", report.errors);
    }
    Ok(report)
}

/// Reads the whole prefix, unlimited and linearizable, until told to stop; every answer must
/// hold every key (none is deleted), or the scenario fails.
async fn read_loop(
    client: Backend,
    keys: KeySpace,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Reads> {
    let (start, end) = keys.prefix_range();
    let mut reads = Reads::default();
    while !stop.load(Ordering::Relaxed) {
        let began = Instant::now();
        match client.range(range_request(start.clone(), end.clone(), 0, false)).await {
            Ok(answer) if answer.kvs.len() as u64 == keys.size() => {
                reads.ms.push(millis(began.elapsed()));
            }
            Ok(answer) => {
                bail!("a whole-prefix read returned {} keys of {}", answer.kvs.len(), keys.size())
            }
            Err(e) => reads.errors.push(e.kind()),
        }
    }
    Ok(reads)
}

fn emit_rounds(
    ctx: &ScenarioContext,
    rounds: &[Round],
    keys: u64,
    target: Value,
) -> anyhow::Result<()> {
    let series = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let p99_alone = series(&|r| r.alone.latency_us.p99 as f64);
    let p99_during = series(&|r| r.during.latency_us.p99 as f64);
    let reads_ms: Vec<f64> = rounds.iter().flat_map(|r| r.reads.ms.iter().copied()).collect();
    let read_errors: Vec<&String> = rounds.iter().flat_map(|r| r.reads.errors.iter()).collect();
    let params = ctx.params(json!({
        "keys": keys,
        "writers": WRITERS,
        "readers": READERS,
        "rounds": rounds.len(),
        "read": "whole prefix, no limit, linearizable, own connection",
        "put_p99_us_alone_by_round": p99_alone,
        "put_p99_us_during_reads_by_round": p99_during,
        "reads_completed": reads_ms.len(),
        "read_errors": read_errors,
    }));
    let params = merged(params, target);
    let lines = [
        ("put_p50_us_alone", median(&series(&|r| r.alone.latency_us.p50 as f64)), "us"),
        ("put_p99_us_alone", median(&p99_alone), "us"),
        ("put_ops_per_s_alone", median(&series(&|r| r.alone.ops_per_s)), "ops/s"),
        ("put_p50_us_during_reads", median(&series(&|r| r.during.latency_us.p50 as f64)), "us"),
        ("put_p99_us_during_reads", median(&p99_during), "us"),
        ("put_ops_per_s_during_reads", median(&series(&|r| r.during.ops_per_s)), "ops/s"),
        ("put_p99_during_over_alone", median(&p99_during) / median(&p99_alone).max(1.0), "ratio"),
        ("long_read_median_ms", median(&reads_ms), "ms"),
    ];
    for (metric, value, unit) in lines {
        ctx.emit(NAME, metric, value, unit, params.clone())?;
    }
    Ok(())
}
