//! One simulated node: its fjall database in a temporary directory, one [`ReplicaCore`] per
//! shard (the code the real node runs), the log writer's not-yet-synced writes held in memory,
//! and apply done in-thread with the real `MvccStore::apply_entries`.
//!
//! Durability model: a log write is held in `unsynced` until a simulated fsync writes it to
//! fjall (the same records the real log writer writes) and reports it persisted; a crash drops
//! everything unsynced. Apply batches are committed to fjall at once and survive a crash: on a
//! real disk an apply batch written after the last fsync may be lost, which only makes the
//! replica re-apply from its durable log (decision D2); that path is not simulated.

use crate::disk::{decode_command, write_log_batch};
use crate::net::Envelope;
use crate::params::Params;
use crate::rng::{Rng, mix};
use atoll_proto::peer::ShardPayload;
use atoll_proto::{AtollError, NodeId, RaftCommand, RangeRequest, RangeResponse, ShardId, WriteOp};
use atoll_shard::Storage;
use atoll_shard::apply_worker::applying;
use atoll_shard::config::ReplicaConfig;
use atoll_shard::core::{
    Clock, ConfChangeOutcome, Effect, LogWrite, LogWriteDone, PendingProposal, ReadReady,
    ReplicaCore, ReplicaCoreDeps,
};
use atoll_shard::mvcc::{ApplyState, MvccLimits, MvccStore, ShardRange, StateHash, WriteResponse};
use atoll_shard::snapshot::{InstallRaftState, generate};
use fjall::PersistMode;
use raft::eraftpb::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A node's clock, set by the simulation (with a per-node skew).
#[derive(Default)]
pub struct SimClock(AtomicI64);

impl SimClock {
    pub fn set(&self, micros: i64) {
        self.0.store(micros, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_micros(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Proposals and reads are answered by request ID.
pub type Core = ReplicaCore<u64, u64>;

/// An answer for a client.
pub enum Completion {
    Write(u64, Result<WriteResponse, AtollError>),
    Read(u64, Result<ReadReady, AtollError>),
}

/// A shard of the simulated cluster.
#[derive(Clone)]
pub struct ShardSpec {
    pub id: ShardId,
    pub range: ShardRange,
}

pub struct SimReplica {
    pub core: Core,
    pub store: MvccStore,
    pub state: ApplyState,
}

/// What apply reports to the checkers.
pub struct AppliedBatch {
    pub shard: ShardId,
    pub node: u64,
    pub entries: Vec<Entry>,
    pub before: ApplyState,
    pub after: ApplyState,
    pub hash: Option<StateHash>,
}

/// What the simulated apply worker does next, in order, as the real one.
enum ApplyJob {
    Apply(ShardId, Vec<Entry>, Vec<PendingProposal<u64>>, Vec<ConfChangeOutcome>),
    Install { shard: ShardId, path: PathBuf, index: u64, term: u64, raft: InstallRaftState },
}

pub struct SimNode {
    pub id: u64,
    dir: PathBuf,
    seed: u64,
    pub restarts: u64,
    storage: Option<Storage>,
    pub replicas: BTreeMap<ShardId, SimReplica>,
    unsynced: Vec<(ShardId, LogWrite)>,
    applies: VecDeque<ApplyJob>,
    pub outbox: Vec<Envelope>,
    pub completions: Vec<Completion>,
    /// (shard, term) whenever this node was leader after an event.
    pub leaders_seen: Vec<(ShardId, u64)>,
    pub clock: Arc<SimClock>,
    election_ticks: usize,
    log_retained_entries: u64,
    /// Numbers snapshot files in transit.
    snapshot_files: u64,
    /// Ticks taken by replicas that were not hibernating.
    pub awake_ticks: u64,
    /// Snapshots installed here, over restarts.
    pub snapshots_installed: u64,
}

impl SimNode {
    pub fn new(id: u64, dir: PathBuf, seed: u64, params: &Params) -> SimNode {
        SimNode {
            id,
            dir,
            seed,
            restarts: 0,
            storage: None,
            replicas: BTreeMap::new(),
            unsynced: Vec::new(),
            applies: VecDeque::new(),
            outbox: Vec::new(),
            completions: Vec::new(),
            leaders_seen: Vec::new(),
            clock: Arc::new(SimClock::default()),
            election_ticks: params.election_ticks,
            log_retained_entries: params.log_retained_entries,
            snapshot_files: 0,
            awake_ticks: 0,
            snapshots_installed: 0,
        }
    }

    pub fn is_up(&self) -> bool {
        self.storage.is_some()
    }

    /// Opens the node's storage and loads every replica from it, as the real node does at
    /// start (`ReplicaCore::new` is what `ReplicaActor::new` calls).
    pub fn start(&mut self, shards: &[ShardSpec], voters: &[u64]) -> Result<(), String> {
        let storage = Storage::open(&self.dir, 4 << 20).map_err(|e| format!("open: {e}"))?;
        for spec in shards {
            let store = MvccStore::new(storage.clone(), spec.id, spec.range.clone());
            let config = ReplicaConfig {
                node_id: self.id,
                election_ticks: self.election_ticks,
                heartbeat_ticks: 1,
                log_retained_entries: self.log_retained_entries,
                ..ReplicaConfig::default()
            };
            let (core, state) = ReplicaCore::new(ReplicaCoreDeps {
                shard: spec.id,
                config,
                initial_voters: voters,
                initial_members: &[],
                initial_shard_map: None,
                store: &store,
                clock: self.clock.clone(),
            })
            .map_err(|e| format!("node {} shard {}: load: {e}", self.id, spec.id.0))?;
            self.replicas.insert(spec.id, SimReplica { core, store, state });
        }
        self.storage = Some(storage);
        let ids: Vec<ShardId> = self.replicas.keys().copied().collect();
        for shard in ids {
            self.with_core(shard, Core::start);
        }
        Ok(())
    }

    /// The process dies: unsynced log writes, queued applies and undelivered answers are lost;
    /// what reached fjall stays (the journal is flushed to the OS, not fsynced: the
    /// simulation's disk is fjall as of the last commit).
    pub fn crash(&mut self) {
        if let Some(storage) = &self.storage {
            let _ = storage.db.persist(PersistMode::Buffer);
        }
        self.replicas.clear();
        self.unsynced.clear();
        self.applies.clear();
        self.outbox.clear();
        self.completions.clear();
        self.storage = None;
        self.restarts += 1;
    }

    /// A message arrives; a snapshot's file is copied in first, as the receiving transport
    /// writes it into the snapshot directory before the replica sees the message.
    pub fn deliver(&mut self, env: Envelope) {
        let Envelope { from, msg, snapshot, .. } = env;
        let (Some(source), ShardPayload::Raft(wire)) = (snapshot, &msg.message) else {
            return self.with_core(msg.shard, |c| c.step(msg.message));
        };
        let path = self.snapshot_path("recv");
        if let Err(e) = std::fs::copy(&source, &path) {
            panic!("node {}: snapshot copy: {e}", self.id);
        }
        let wire = wire.clone();
        self.with_core(msg.shard, |c| c.on_snapshot_received(NodeId(from), wire, path));
    }

    /// A new file name in this node's snapshot directory.
    fn snapshot_path(&mut self, kind: &str) -> PathBuf {
        let dir = atoll_shard::snapshot::snapshot_dir(&self.dir);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("node {}: snapshot directory: {e}", self.id);
        }
        self.snapshot_files += 1;
        dir.join(format!("{kind}-{}-{}.snap", self.restarts, self.snapshot_files))
    }

    /// One tick of every replica: a hibernating core ignores it, as the node's ticker skips
    /// a hibernating replica. Counts the ticks of awake replicas.
    pub fn tick(&mut self) {
        let ids: Vec<ShardId> = self.replicas.keys().copied().collect();
        for shard in ids {
            if self.replicas.get(&shard).is_some_and(|r| !r.core.is_hibernating()) {
                self.awake_ticks += 1;
            }
            self.with_core(shard, Core::tick);
        }
    }

    /// The transport lost its connection to node `lost` (what `PeerBridge` reports).
    pub fn peer_unreachable(&mut self, lost: u64) {
        let ids: Vec<ShardId> = self.replicas.keys().copied().collect();
        for shard in ids {
            self.with_core(shard, |c| c.on_peer_unreachable(NodeId(lost)));
        }
    }

    /// Whether the replica of `shard` here hibernates (false when the node is down).
    pub fn is_hibernating(&self, shard: ShardId) -> bool {
        self.replicas.get(&shard).is_some_and(|r| r.core.is_hibernating())
    }

    /// Processes a Ready on every replica that wants one.
    pub fn drive(&mut self) {
        let wanting: Vec<ShardId> =
            self.replicas.iter().filter(|(_, r)| r.core.wants_ready()).map(|(s, _)| *s).collect();
        for shard in wanting {
            self.with_core(shard, Core::drive_ready);
        }
    }

    pub fn propose(&mut self, shard: ShardId, op: WriteOp, req: u64) {
        self.with_core(shard, |c| c.propose(op, req));
    }

    pub fn read_index(&mut self, shard: ShardId, req: u64) {
        self.with_core(shard, |c| c.read_index(req));
    }

    pub fn has_unsynced(&self) -> bool {
        !self.unsynced.is_empty()
    }

    pub fn has_applies(&self) -> bool {
        !self.applies.is_empty()
    }

    /// A simulated fsync: a prefix of the unsynced writes (the log writer takes what is
    /// queued, in order) goes to fjall in one batch, then each replica hears it persisted.
    pub fn fsync(&mut self, rng: &mut Rng) -> Result<(), String> {
        let Some(storage) = &self.storage else { return Ok(()) };
        let count = rng.between(1, self.unsynced.len() as u64) as usize;
        let synced: Vec<(ShardId, LogWrite)> = self.unsynced.drain(..count).collect();
        write_log_batch(storage, &synced)?;
        for (shard, write) in synced {
            match write.done {
                LogWriteDone::Ready { number, last_index, messages } => {
                    self.with_core(shard, |c| c.on_persisted(number, last_index, messages));
                }
                LogWriteDone::Truncated(t) => self.with_core(shard, |c| c.on_log_truncated(t)),
            }
        }
        Ok(())
    }

    /// Applies the oldest queued batch of committed entries, as the apply worker does.
    pub fn apply_next(&mut self) -> Result<Option<AppliedBatch>, String> {
        let Some(storage) = &self.storage else { return Ok(None) };
        let (shard, entries, proposals, conf_changes) = match self.applies.pop_front() {
            None => return Ok(None),
            Some(ApplyJob::Apply(shard, entries, proposals, conf_changes)) => {
                (shard, entries, proposals, conf_changes)
            }
            Some(ApplyJob::Install { shard, path, index, term, raft }) => {
                return self.install(shard, &path, (index, term), &raft).map(Some);
            }
        };
        let Some(r) = self.replicas.get_mut(&shard) else { return Ok(None) };
        let commands: Vec<Option<RaftCommand>> = entries.iter().map(decode_command).collect();
        let before = r.state;
        let results = r
            .store
            .apply_committed(
                &mut r.state,
                &applying(&entries, &commands, &conf_changes),
                &MvccLimits::default(),
            )
            .map_err(|e| format!("node {} shard {}: apply: {e}", self.id, shard.0))?;
        let mut by_index: BTreeMap<u64, _> =
            entries.iter().zip(results).map(|(e, res)| (e.index, (e.term, res))).collect();
        for p in proposals {
            // Matched by (index, term) as the apply worker does: another term at the index
            // means another leader's entry replaced the proposal.
            let answer = match by_index.remove(&p.index) {
                Some((term, res)) if term == p.term => res,
                _ => Err(AtollError::LeaderChanged),
            };
            self.completions.push(Completion::Write(p.reply, answer));
        }
        let hash = r.store.hash_kv(&storage.db.snapshot(), 0).ok();
        let after = r.state;
        self.with_core(shard, |c| c.on_applied(after));
        Ok(Some(AppliedBatch { shard, node: self.id, entries, before, after, hash }))
    }

    /// Installs a snapshot as the apply worker does: behind the applies queued before it,
    /// then the replica hears it is durable. The checkers see it as an applied batch
    /// without entries, so state-machine safety compares its hash at its index.
    fn install(
        &mut self,
        shard: ShardId,
        path: &std::path::Path,
        (index, term): (u64, u64),
        raft: &InstallRaftState,
    ) -> Result<AppliedBatch, String> {
        let storage = self.storage.as_ref().ok_or("node is down")?;
        let r = self.replicas.get_mut(&shard).ok_or("no such shard")?;
        let before = r.state;
        let after = r
            .store
            .install_snapshot(path, index, term, raft)
            .map_err(|e| format!("node {} shard {}: install: {e}", self.id, shard.0))?;
        r.state = after;
        self.snapshots_installed += 1;
        let _ = std::fs::remove_file(path);
        let hash = r.store.hash_kv(&storage.db.snapshot(), 0).ok();
        self.with_core(shard, |c| c.on_snapshot_installed(after));
        Ok(AppliedBatch { shard, node: self.id, entries: Vec::new(), before, after, hash })
    }

    /// A linearizable read's second half: read the local store once the read is ready.
    pub fn range(&self, shard: ShardId, key: &[u8]) -> Result<RangeResponse, String> {
        let storage = self.storage.as_ref().ok_or("node is down")?;
        let r = self.replicas.get(&shard).ok_or("no such shard")?;
        let req = RangeRequest { key: key.to_vec(), ..RangeRequest::default() };
        r.store.range(&storage.db.snapshot(), &req).map_err(|e| format!("range: {e}"))
    }

    /// Every live key of `shard` as its store sees it (clipped to its range).
    pub fn all_keys(&self, shard: ShardId) -> Result<Vec<Vec<u8>>, String> {
        let storage = self.storage.as_ref().ok_or("node is down")?;
        let r = self.replicas.get(&shard).ok_or("no such shard")?;
        let req = RangeRequest { key: vec![0], range_end: vec![0], ..RangeRequest::default() };
        let resp = r.store.range(&storage.db.snapshot(), &req).map_err(|e| format!("{e}"))?;
        Ok(resp.kvs.into_iter().map(|kv| kv.key).collect())
    }

    /// Runs one event on a replica's core, then fixes its election timeout (raft-rs draws it
    /// from an unseeded RNG) and carries out its effects.
    fn with_core(&mut self, shard: ShardId, f: impl FnOnce(&mut Core)) {
        let Some(r) = self.replicas.get_mut(&shard) else { return };
        f(&mut r.core);
        let (term, _) = r.core.term_and_leader();
        let salt = mix(self.seed ^ (self.id << 40) ^ (self.restarts << 52), shard.0 ^ (term << 8));
        let ticks = self.election_ticks + (salt % self.election_ticks as u64) as usize;
        r.core.set_election_timeout(ticks);
        if r.core.is_leader() {
            self.leaders_seen.push((shard, term));
        }
        for effect in r.core.take_effects() {
            match effect {
                Effect::Send { to, msg } => {
                    self.outbox.push(Envelope { from: self.id, to: to.0, msg, snapshot: None });
                }
                Effect::Persist(write) => self.unsynced.push((shard, write)),
                Effect::Apply { entries, proposals, conf_changes } => {
                    self.applies.push_back(ApplyJob::Apply(
                        shard,
                        entries,
                        proposals,
                        conf_changes,
                    ));
                }
                Effect::WriteFailed(req, e) => {
                    self.completions.push(Completion::Write(req, Err(e)))
                }
                Effect::ReadDone(req, r) => self.completions.push(Completion::Read(req, r)),
                // Generated at once from the store as applied so far, which is what the core
                // knows as applied (the real apply worker generates behind queued applies,
                // whose results the core has not heard of either).
                Effect::GenerateSnapshot => {
                    let generated = match &self.storage {
                        Some(storage) => {
                            let term = r.core.applied_term();
                            generate(&r.store, &storage.db.snapshot(), term)
                                .map(Arc::new)
                                .map_err(|e| e.to_string())
                        }
                        None => Err("node is down".to_string()),
                    };
                    r.core.on_snapshot_generated(generated);
                }
                // The file travels with the message, so the network drops, delays and
                // duplicates it as one; the leader hears the transfer succeeded (a dropped one
                // looks to Raft like a follower that did not answer yet).
                Effect::SendSnapshot { to, msg, snapshot } => {
                    self.snapshot_files += 1;
                    let copy = snapshot.path.with_extension(format!("sent{}", self.snapshot_files));
                    if let Err(e) = std::fs::copy(&snapshot.path, &copy) {
                        panic!("node {}: snapshot copy: {e}", self.id);
                    }
                    let env = Envelope { from: self.id, to: to.0, msg, snapshot: Some(copy) };
                    self.outbox.push(env);
                    r.core.on_snapshot_sent(to, true);
                }
                Effect::InstallSnapshot { path, index, term, raft } => {
                    let job = ApplyJob::Install { shard, path, index, term, raft };
                    self.applies.push_back(job);
                }
                Effect::DiscardSnapshot(path) => {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
    }
}
