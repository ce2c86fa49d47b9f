//! The watch scenarios (`watch-fan-out`, `watch-starvation`) and what they share: a writer at
//! a target rate whose log times every event ([`writer`]), watch streams read by tasks that
//! tally and time what arrives ([`watchers`]), the judgement of what arrived ([`tally`]), and
//! the systems they run on: Atoll through its native protocol and through its etcd gRPC
//! gateway, and etcd 3.4, each started fresh on loopback.

pub mod fan_out;
pub mod starvation;
pub mod tally;
pub mod watchers;
pub mod writer;

use super::context::ScenarioContext;
use super::etcd_node::{EtcdNode, etcd_version};
use super::node::Node;
use crate::compare::summary::System;
use crate::connect::ClientPool;
use crate::etcd_client::EtcdConfig;
use crate::keys::{KeySpace, make_value};
use crate::limits::SEED_DEFAULT;
use anyhow::bail;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tally::Delivery;
use watchers::{StreamOutcome, StreamPlan, WatchSet};
use writer::{WriteLog, WriterReport, write_at_rate};

/// The systems a watch scenario measures: Atoll natively and through its gateway, and etcd
/// when installed (see [`ScenarioContext::etcd_wanted`]).
pub fn systems(ctx: &ScenarioContext, who: &str) -> anyhow::Result<Vec<System>> {
    let mut systems = vec![System::Atoll, System::AtollGrpc];
    if ctx.etcd_wanted(who, "measuring Atoll alone")? {
        systems.push(System::Etcd);
    }
    Ok(systems)
}

/// The server a system runs on, held only to be stopped on drop.
struct Server {
    _atoll: Option<Node>,
    _etcd: Option<EtcdNode>,
}

impl Server {
    fn atoll(node: Node) -> Server {
        Server { _atoll: Some(node), _etcd: None }
    }

    fn etcd(node: EtcdNode) -> Server {
        Server { _atoll: None, _etcd: Some(node) }
    }
}

/// One system under test, started fresh: a pool for the writer and one for the watch
/// streams. Fields drop in order: the clients close before the server is killed.
pub struct Contender {
    /// Which system.
    pub system: System,
    /// The writer's connection.
    pub writer: ClientPool,
    /// The watch streams' connections.
    pub watchers: ClientPool,
    _server: Server,
}

impl Contender {
    /// Starts `system` for scenario `tag` with `connections` watch connections.
    pub async fn start(
        ctx: &ScenarioContext,
        system: System,
        tag: &str,
        connections: usize,
    ) -> anyhow::Result<Contender> {
        let (writer, watchers, server) = match system {
            System::Atoll => {
                let node = Node::start(&ctx.atoll_bin, tag).await?;
                let config = node.client_config()?;
                let writer = ClientPool::connect(&config, 1).await?;
                (writer, ClientPool::connect(&config, connections).await?, Server::atoll(node))
            }
            System::AtollGrpc => {
                let node = Node::start(&ctx.atoll_bin, tag).await?;
                let config = EtcdConfig { endpoints: vec![node.endpoint()], ca_pem: None };
                let writer = ClientPool::connect_etcd(&config, 1).await?;
                let watchers = ClientPool::connect_etcd(&config, connections).await?;
                (writer, watchers, Server::atoll(node))
            }
            System::Etcd => {
                let node = EtcdNode::start(&ctx.etcd_bin, tag).await?;
                let writer = ClientPool::connect_etcd(&node.config(), 1).await?;
                let watchers = ClientPool::connect_etcd(&node.config(), connections).await?;
                (writer, watchers, Server::etcd(node))
            }
        };
        Ok(Contender { system, writer, watchers, _server: server })
    }

    /// The parameters naming the system on every line: `system`, and etcd's version.
    pub fn params(&self, ctx: &ScenarioContext) -> Value {
        match self.system {
            System::Etcd => json!({
                "system": self.system,
                "etcd_version": etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into()),
            }),
            other => json!({ "system": other }),
        }
    }
}

/// Most watchers on one stream: Atoll's limit per watch stream (`WATCHERS_PER_STREAM_MAX`).
pub const WATCHERS_PER_STREAM_MAX: u64 = 4_096;
/// Concurrent put loops of the writer: enough to keep the rate while puts take milliseconds.
const WRITER_LOOPS: usize = 32;
/// How long creating every watch may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(120);
/// Bytes of each value written: small, so the figure is delivery, not bandwidth.
const EVENT_VALUE_BYTES: usize = 16;

/// Measures `measure(contender, round)` on every system in `ctx`'s rounds (`--repeat`, 1 by
/// default), each on a fresh server with `connections` watch connections; the order of the
/// systems rotates by one each round, so none always runs first.
pub async fn each_round<S>(
    ctx: &ScenarioContext,
    who: &str,
    connections: usize,
    mut measure: impl AsyncFnMut(&Contender, u64) -> anyhow::Result<S>,
) -> anyhow::Result<Vec<S>> {
    let systems = systems(ctx, who)?;
    let mut samples = Vec::new();
    for round in 0..ctx.runs(1, 1) {
        for turn in 0..systems.len() {
            let system = systems[(turn + round as usize) % systems.len()];
            let contender = Contender::start(ctx, system, who, connections).await?;
            samples.push(measure(&contender, round).await?);
        }
    }
    Ok(samples)
}

/// What one phase of writes and watches gave.
pub struct PhaseOutcome {
    /// What each stream received.
    pub streams: Vec<StreamOutcome>,
    /// The acknowledged writes, `(seq, revision)`.
    pub acked: Vec<(u64, i64)>,
    /// What the writer did.
    pub writer: WriterReport,
}

/// One phase on `c`: opens the streams of `plans` on the prefix, waits until every watch is
/// created, writes `writes` keys under `prefix` at `rate`, then waits up to `drain` for the
/// measured watchers to receive the last acknowledged write.
pub async fn run_phase(
    c: &Contender,
    prefix: &str,
    writes: u64,
    rate: f64,
    plans: &[StreamPlan],
    drain: Duration,
) -> anyhow::Result<PhaseOutcome> {
    let log = Arc::new(WriteLog::new(KeySpace::new(prefix, writes, None)?));
    let mut set = WatchSet::open(&c.watchers, plans, &log).await?;
    set.wait_created(CREATE_TIMEOUT).await?;
    let value = Arc::new(make_value(EVENT_VALUE_BYTES, SEED_DEFAULT));
    let writer = write_at_rate(c.writer.client(0), &log, rate, WRITER_LOOPS, &value).await?;
    let acked = log.acked();
    let Some(last) = acked.iter().map(|&(_, r)| r).max() else {
        bail!("{}: no write was acknowledged ({} failed)", c.system.name(), writer.failed);
    };
    let streams = set.finish(last, drain).await?;
    Ok(PhaseOutcome { streams, acked, writer })
}

/// Fails, naming each, if any watcher received something other than exactly the writes (a
/// loss, a duplicate, a reordering, a cancel) or a stream failed: slowness is a figure, these
/// are errors.
pub fn check_deliveries<'a>(
    what: &str,
    results: impl IntoIterator<Item = (System, &'a Delivery, &'a [String])>,
) -> anyhow::Result<()> {
    let wrong: Vec<String> = results
        .into_iter()
        .filter(|(_, d, errors)| !d.is_correct() || !errors.is_empty())
        .map(|(system, d, errors)| format!("{}: {d:?} {errors:?}", system.name()))
        .collect();
    if !wrong.is_empty() {
        bail!("{what} did not receive exactly the writes: {}", wrong.join("; "));
    }
    Ok(())
}
