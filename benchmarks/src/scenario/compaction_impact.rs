//! `compaction-impact`: what does removing a large history cost the writes that run
//! meanwhile? Each round writes a history (every key of a key space rewritten a few times),
//! measures closed-loop puts alone for the phase duration, then asks for a physical
//! compaction at the newest revision and measures the same puts until it answers (etcd
//! answers a physical compaction once its backend removed the history; Atoll once this
//! node's compactor did, decision D17). It reports the put p99 alone and during compaction
//! (medians over rounds), their ratio and the compaction's own time, for Atoll and, when
//! installed, for etcd through its gRPC API with the same client code.

use super::context::ScenarioContext;
use super::emit::{median, merged, millis};
use super::etcd_node::{EtcdNode, etcd_version};
use super::node::Node;
use super::put_loops::{Puts, put_loops};
use crate::backend::Backend;
use crate::connect::ClientPool;
use crate::keys::{KeySpace, make_value};
use crate::limits::{COMPACTION_TIMEOUT, LOAD_BATCH_MAX, LOAD_CLIENTS_DEFAULT, SEED_DEFAULT};
use crate::load::{LoadSpec, load};
use anyhow::anyhow;
use atoll_proto::kv::{CompactionRequest, PutRequest};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// The scenario's name.
pub const NAME: &str = "compaction-impact";
/// Keys of the history (fewer if `--keys` or `--smoke` make the store smaller).
const HISTORY_KEYS_DEFAULT: u64 = 50_000;
/// Times each history key is written per round: `passes - 1` old versions per key to remove.
const HISTORY_PASSES: u64 = 4;
/// Keys the measured puts write (apart from the history).
const WRITE_KEYS: u64 = 1_000;
/// Closed-loop put loops.
const WRITERS: u64 = 16;
/// Rounds when `--repeat` is not given.
const ROUNDS_DEFAULT: u64 = 3;

/// One round's measurements.
struct Round {
    alone: Puts,
    during: Puts,
    compaction_ms: f64,
}

/// Runs the scenario on Atoll, then on etcd if installed.
pub async fn run_scenario(ctx: &ScenarioContext) -> anyhow::Result<()> {
    let history = KeySpace::new("/bench/h/", HISTORY_KEYS_DEFAULT.min(ctx.store_keys), None)?;
    {
        let node = Node::start(&ctx.atoll_bin, NAME).await?;
        let writers = ClientPool::connect(&node.client_config()?, 1).await?;
        let mut admin_config = node.client_config()?;
        admin_config.request_timeout = COMPACTION_TIMEOUT;
        let admin = ClientPool::connect(&admin_config, 1).await?;
        let rounds = measure(ctx, &writers, &admin, &history).await?;
        emit_rounds(ctx, &rounds, &history, json!({ "target": "atoll" }))?;
    }
    if !ctx.etcd_wanted(NAME, "measured Atoll only")? {
        return Ok(());
    }
    let etcd = EtcdNode::start(&ctx.etcd_bin, NAME).await?;
    let writers = ClientPool::connect_etcd(&etcd.config(), 1).await?;
    let admin = ClientPool::connect_etcd(&etcd.config(), 1).await?;
    let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
    let rounds = measure(ctx, &writers, &admin, &history).await?;
    emit_rounds(ctx, &rounds, &history, json!({ "target": "etcd", "etcd_version": version }))?;
    drop((admin, writers));
    drop(etcd);
    Ok(())
}

async fn measure(
    ctx: &ScenarioContext,
    writers: &ClientPool,
    admin: &ClientPool,
    history: &KeySpace,
) -> anyhow::Result<Vec<Round>> {
    let write_keys = KeySpace::new("/bench/w/", WRITE_KEYS, None)?;
    let value = Arc::new(make_value(ctx.value_size, SEED_DEFAULT));
    let mut rounds = Vec::new();
    for _ in 0..ctx.runs(ROUNDS_DEFAULT, 1) {
        for _ in 0..HISTORY_PASSES {
            let spec = LoadSpec {
                keys: history.clone(),
                value: Arc::clone(&value),
                batch: LOAD_BATCH_MAX,
                clients: LOAD_CLIENTS_DEFAULT,
                progress: false,
            };
            load(admin, spec).await?;
        }
        let stop_after = Instant::now() + ctx.duration;
        let alone = put_loops(writers, WRITERS, &write_keys, &value, async move {
            tokio::time::sleep_until(stop_after.into()).await;
            Ok(())
        })
        .await?;
        let newest = newest_revision(admin.client(0), &write_keys).await?;
        let began = Instant::now();
        let compaction = compact(admin.client(0).clone(), newest);
        let during = put_loops(writers, WRITERS, &write_keys, &value, compaction).await?;
        rounds.push(Round { alone, during, compaction_ms: millis(began.elapsed()) });
    }
    Ok(rounds)
}

/// The store's newest revision, from a put's header.
async fn newest_revision(client: &Backend, keys: &KeySpace) -> anyhow::Result<i64> {
    let req = PutRequest { key: keys.key(0), value: b"probe".to_vec(), ..Default::default() };
    let answer = client.put(req).await.map_err(|e| anyhow!("probe put failed: {e}"))?;
    Ok(answer.header.revision)
}

async fn compact(client: Backend, revision: i64) -> anyhow::Result<()> {
    let req = CompactionRequest { revision, physical: true };
    client.compact(req).await.map_err(|e| anyhow!("the physical compaction failed: {e}"))?;
    Ok(())
}

fn emit_rounds(
    ctx: &ScenarioContext,
    rounds: &[Round],
    history: &KeySpace,
    target: Value,
) -> anyhow::Result<()> {
    let series = |f: &dyn Fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    let p99_alone = series(&|r| r.alone.percentile(0.99));
    let p99_during = series(&|r| r.during.percentile(0.99));
    let compaction_ms = series(&|r| r.compaction_ms);
    let params = ctx.params(json!({
        "history_keys": history.size(),
        "history_versions_removed": history.size() * (HISTORY_PASSES - 1),
        "writers": WRITERS,
        "write_keys": WRITE_KEYS,
        "rounds": rounds.len(),
        "compaction": "physical, at the newest revision, own connection",
        "put_p99_us_alone_by_round": p99_alone,
        "put_p99_us_during_compaction_by_round": p99_during,
        "compaction_ms_by_round": compaction_ms,
        "put_errors": rounds.iter().map(|r| r.alone.errors + r.during.errors).sum::<u64>(),
    }));
    let params = merged(params, target);
    let lines = [
        ("put_p50_us_alone", median(&series(&|r| r.alone.percentile(0.5))), "us"),
        ("put_p99_us_alone", median(&p99_alone), "us"),
        ("put_ops_per_s_alone", median(&series(&|r| r.alone.ops_per_s())), "ops/s"),
        ("put_p50_us_during_compaction", median(&series(&|r| r.during.percentile(0.5))), "us"),
        ("put_p99_us_during_compaction", median(&p99_during), "us"),
        ("put_ops_per_s_during_compaction", median(&series(&|r| r.during.ops_per_s())), "ops/s"),
        ("put_p99_during_over_alone", median(&p99_during) / median(&p99_alone).max(1.0), "ratio"),
        ("compaction_ms", median(&compaction_ms), "ms"),
    ];
    for (metric, value, unit) in lines {
        ctx.emit(NAME, metric, value, unit, params.clone())?;
    }
    Ok(())
}
