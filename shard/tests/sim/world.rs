//! One simulated run: N nodes × M shards in one thread, advanced one simulated millisecond at a
//! time. Each millisecond: faults (chaos phase only), clocks, message delivery, ticks, Readies,
//! fsyncs, applies, then messages out, answers to clients and new client operations. Every
//! random choice comes from the run's one seeded generator.

use crate::check_election::ElectionSafety;
use crate::check_log::LogMatching;
use crate::check_state::StateMachineSafety;
use crate::check_watch::CommittedHistory;
use crate::client::{Client, Request};
use crate::history::History;
use crate::net::Network;
use crate::node::{ShardSpec, SimNode};
use crate::params::{FAULT_EVERY_MS, Params};
use crate::rng::Rng;
use crate::watchers::Watches;
use crate::{check_keys, check_revisions, linearizability};
use atoll_proto::ShardId;
use atoll_shard::mvcc::ShardRange;
use std::collections::BTreeMap;

/// Clocks start here (µs since the epoch), so stamps look like real revisions.
const CLOCK_ORIGIN_MICROS: i64 = 1_700_000_000_000_000;

/// Counters of one run, summed over seeds for the report.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub ops: u64,
    pub ok: u64,
    pub failed: u64,
    pub unknown: u64,
    pub linearized: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub terms: u64,
    pub committed: u64,
    pub state_comparisons: u64,
    pub messages: u64,
    pub dropped: u64,
    /// Replicas hibernating at the end of the quiesce phase (all of them, or the run fails).
    pub hibernating: u64,
    /// Ticks replicas took while awake, over the run.
    pub awake_ticks: u64,
    /// Times a watch started on a node (first or again after a crash or a move).
    pub watch_attaches: u64,
    /// Watch events delivered and checked against the committed history.
    pub watch_events: u64,
    /// Raft snapshots replicas installed (decision D20), over the run.
    pub snapshots_installed: u64,
}

/// A node's transport reporting a lost peer, due at `at`. A report caused by a partition
/// is made only if the partition still separates the two then (a connection whose packets
/// flow again before its idle timeout is not lost); one caused by a crash always is.
pub struct UnreachableReport {
    pub at: u64,
    pub observer: usize,
    pub lost: u64,
    pub by_partition: bool,
}

pub struct World {
    pub rng: Rng,
    pub now: u64,
    pub params: Params,
    pub shards: Vec<ShardSpec>,
    /// Keys clients use, with their shard.
    pub keys: Vec<(Vec<u8>, ShardId)>,
    pub nodes: Vec<SimNode>,
    _dir: tempfile::TempDir,
    pub net: Network,
    pub history: History,
    pub clients: Vec<Client>,
    pub requests: BTreeMap<u64, Request>,
    pub next_req: u64,
    pub next_value: u64,
    pub down_until: BTreeMap<u64, u64>,
    pub skew_micros: Vec<i64>,
    pub unreachable_reports: Vec<UnreachableReport>,
    /// The shards' committed histories, which every watch is checked against.
    pub committed: CommittedHistory,
    pub watches: Watches,
    election: ElectionSafety,
    log: LogMatching,
    state: StateMachineSafety,
    pub stats: Stats,
}

impl World {
    pub fn new(seed: u64) -> Result<World, String> {
        let mut rng = Rng::new(seed);
        let params = Params::from_seed(&mut rng);
        let dir = sim_dir()?;
        let shards = shard_layout(params.shards);
        let keys: Vec<(Vec<u8>, ShardId)> = shards
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let first = b'a' + 2 * i as u8;
                [(vec![first, b'1'], s.id), (vec![first, b'2'], s.id)]
            })
            .collect();
        let nodes = (1..=params.nodes)
            .map(|id| SimNode::new(id, dir.path().join(format!("n{id}")), seed, &params))
            .collect();
        let skew_micros =
            (0..params.nodes).map(|_| rng.between(0, 200_000) as i64 - 100_000).collect();
        let clients = (0..params.clients).map(|_| Client::default()).collect();
        let net = Network::new(params.net.clone());
        let watches = Watches::on_shards(seed, &shards, &keys, params.chaos_ms)?;
        Ok(World {
            rng,
            now: 0,
            params,
            shards,
            keys,
            nodes,
            _dir: dir,
            net,
            history: History::default(),
            clients,
            requests: BTreeMap::new(),
            next_req: 1,
            next_value: 1,
            down_until: BTreeMap::new(),
            skew_micros,
            unreachable_reports: Vec::new(),
            committed: CommittedHistory::default(),
            watches,
            election: ElectionSafety::default(),
            log: LogMatching::default(),
            state: StateMachineSafety::default(),
            stats: Stats::default(),
        })
    }

    pub fn voters(&self) -> Vec<u64> {
        (1..=self.params.nodes).collect()
    }

    pub fn start_all(&mut self) -> Result<(), String> {
        let voters = self.voters();
        for node in &mut self.nodes {
            node.start(&self.shards, &voters)?;
        }
        Ok(())
    }

    /// Runs the whole simulation and every check; the first violation ends the run.
    pub fn run(mut self) -> Result<Stats, String> {
        self.start_all()?;
        let end = self.params.chaos_ms + self.params.quiesce_ms;
        while self.now < end {
            self.now += 1;
            let at = self.now;
            self.step().map_err(|e| format!("at {at} ms: {e}"))?;
        }
        self.finish()
    }

    pub fn step(&mut self) -> Result<(), String> {
        if self.now == self.params.chaos_ms {
            self.calm()?;
        } else if self.now < self.params.chaos_ms && self.now.is_multiple_of(FAULT_EVERY_MS) {
            self.inject_faults();
        }
        self.restart_due()?;
        self.report_unreachable_due();
        for (i, node) in self.nodes.iter().enumerate() {
            let micros = CLOCK_ORIGIN_MICROS + self.now as i64 * 1_000 + self.skew_micros[i];
            node.clock.set(micros);
        }
        for env in self.net.due(self.now) {
            if let Some(node) = self.nodes.get_mut(env.to as usize - 1)
                && node.is_up()
            {
                node.deliver(env);
            }
        }
        for i in 0..self.nodes.len() {
            self.step_node(i)?;
        }
        self.timeouts();
        self.issue_requests();
        self.watches.poll(self.now, &self.nodes, &self.committed)
    }

    fn step_node(&mut self, i: usize) -> Result<(), String> {
        let tick_due = self.now % self.params.tick_ms == i as u64 % self.params.tick_ms;
        let node = &mut self.nodes[i];
        if node.is_up() {
            if tick_due {
                node.tick();
            }
            node.drive();
            if node.has_unsynced() && self.rng.chance(self.params.fsync_per_mille) {
                node.fsync(&mut self.rng)?;
            }
            while node.has_applies() && self.rng.chance(self.params.apply_per_mille) {
                if let Some(batch) = node.apply_next()? {
                    self.log.on_committed(batch.shard, batch.node, &batch.entries)?;
                    self.state.on_applied(&batch)?;
                    self.committed.on_applied(&batch)?;
                }
            }
            node.drive();
        }
        for (shard, term) in std::mem::take(&mut node.leaders_seen) {
            self.election.observe(shard, term, node.id)?;
        }
        for env in std::mem::take(&mut node.outbox) {
            self.net.send(self.now, env, &mut self.rng);
        }
        for done in std::mem::take(&mut self.nodes[i].completions) {
            self.on_completion(i, done)?;
        }
        Ok(())
    }

    /// After the quiesce phase: every shard converged and hibernates, and every check passes.
    pub fn finish(mut self) -> Result<Stats, String> {
        self.expire_all();
        self.check_all_hibernate()?;
        for spec in &self.shards {
            let applied: Vec<(u64, u64)> = self
                .nodes
                .iter()
                .filter_map(|n| n.replicas.get(&spec.id).map(|r| (n.id, r.state.applied_index)))
                .collect();
            let first = applied.first().map(|a| a.1);
            if applied.len() != self.nodes.len() || applied.iter().any(|a| Some(a.1) != first) {
                return Err(format!(
                    "liveness: shard {} did not converge after healing: (node, applied) {applied:?}",
                    spec.id.0
                ));
            }
        }
        self.log.check_logs(&self.nodes)?;
        self.watches.settle(&self.nodes, &self.committed)?;
        check_keys::check(&self.shards, &self.nodes)?;
        check_revisions::check(&self.history)?;
        self.stats.linearized = linearizability::check(&self.history)? as u64;
        self.stats.terms = self.election.terms() as u64;
        self.stats.committed = self.log.entries() as u64;
        self.stats.state_comparisons = self.state.compared();
        self.stats.messages = self.net.sent;
        self.stats.dropped = self.net.dropped;
        self.stats.awake_ticks = self.nodes.iter().map(|n| n.awake_ticks).sum();
        self.stats.watch_attaches = self.watches.attaches;
        self.stats.watch_events = self.watches.events;
        self.stats.snapshots_installed = self.nodes.iter().map(|n| n.snapshots_installed).sum();
        Ok(self.stats)
    }

    /// Liveness of hibernation: with no traffic and a calm network for the whole quiesce
    /// phase, every replica of every shard has stopped ticking (decision D14).
    fn check_all_hibernate(&mut self) -> Result<(), String> {
        for spec in &self.shards {
            let awake: Vec<u64> =
                self.nodes.iter().filter(|n| !n.is_hibernating(spec.id)).map(|n| n.id).collect();
            if !awake.is_empty() {
                return Err(format!(
                    "liveness: shard {} still awake on nodes {awake:?} after {} ms of quiet",
                    spec.id.0, self.params.quiesce_ms
                ));
            }
            self.stats.hibernating += self.nodes.len() as u64;
        }
        Ok(())
    }

    /// Every node's transport reports node `lost` unreachable after the detection delay.
    pub fn schedule_unreachable(&mut self, lost: u64, by_partition: bool) {
        let at = self.now + self.params.unreachable_after_ms;
        for observer in 0..self.nodes.len() {
            if self.nodes[observer].id != lost {
                self.unreachable_reports.push(UnreachableReport {
                    at,
                    observer,
                    lost,
                    by_partition,
                });
            }
        }
    }

    fn report_unreachable_due(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.unreachable_reports).into_iter().partition(|r| r.at <= now);
        self.unreachable_reports = later;
        for r in due {
            let observer = self.nodes[r.observer].id;
            if r.by_partition && self.net.connected(observer, r.lost) {
                continue;
            }
            if self.nodes[r.observer].is_up() {
                self.nodes[r.observer].peer_unreachable(r.lost);
            }
        }
    }
}

/// The run's directory: in memory (`/dev/shm`) where there is one, since nothing here needs a
/// real disk and fjall's start-up fsyncs would otherwise dominate the run time.
fn sim_dir() -> Result<tempfile::TempDir, String> {
    let shm = std::path::Path::new("/dev/shm");
    let dir = match shm.is_dir() {
        true => tempfile::Builder::new().prefix("atoll-sim").tempdir_in(shm),
        false => tempfile::tempdir(),
    };
    dir.map_err(|e| format!("tempdir: {e}"))
}

/// Shard `i` (id `i + 1`) owns `[a + 2i, a + 2i + 2)`; the first starts at "", the last is
/// unbounded, so the shards cover every key exactly once.
fn shard_layout(count: u64) -> Vec<ShardSpec> {
    (0..count)
        .map(|i| {
            let start = if i == 0 { Vec::new() } else { vec![b'a' + 2 * i as u8] };
            let end = if i + 1 == count { Vec::new() } else { vec![b'a' + 2 * (i as u8 + 1)] };
            ShardSpec { id: ShardId(i + 1), range: ShardRange { start, end } }
        })
        .collect()
}
