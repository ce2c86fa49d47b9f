//! Simulated watch clients (issue 4): each watches one shard (all its keys, or one key) on one
//! node's replica through the real [`atoll_shard::watch::Watcher`] — the shard's watch hub fed
//! by apply, history and catch-up read from the node's change log — and takes what it has
//! every simulated millisecond. Watches start during the chaos phase from a past revision,
//! so history and live events meet; when their node crashes, or now and then as a client
//! moves, they watch again elsewhere from the revision after the last event they received,
//! as etcd's clients do. Every event is checked against the committed history at once
//! (`check_watch.rs`); after the cluster has settled, every watch must have received all of it.
//!
//! Watch choices draw from their own generator, so adding watches leaves every other draw of
//! a seed as it was.

use crate::check_watch::{CommittedHistory, WatchCursor};
use crate::node::{ShardSpec, SimNode};
use crate::rng::{Rng, mix};
use atoll_proto::ShardId;
use atoll_shard::watch::{WatchSpec, WatchStep, Watcher};

/// Watches per shard: one on all of its keys, one on a single key.
const WATCHES_PER_SHARD: usize = 2;
/// Steps one watch takes per simulated millisecond at most (each is at most a step's worth
/// of events); the rest waits for the next millisecond.
const STEPS_PER_MS_MAX: usize = 4;
/// Per watch per millisecond: the client moves to another node (per mille).
const MOVE_PER_MILLE: u64 = 1;
/// Salt of the watch generator's seed.
const WATCH_RNG_SALT: u64 = 0x3A7C_4E11;

/// One watch client.
struct SimWatch {
    shard: ShardId,
    spec: WatchSpec,
    /// When it starts (ms), and from how many changes into the shard's history.
    start_at_ms: u64,
    start_after_changes: usize,
    /// Where it stands in the committed history; `None` until it started.
    cursor: Option<WatchCursor>,
    /// The node it watches on and its watcher there.
    attached: Option<(usize, Watcher)>,
    /// The replica's applied index when the watcher last had nothing more: until apply
    /// publishes again it has nothing new, so it is not asked (the run stays fast).
    synced_at: Option<u64>,
}

/// Every watch client of a run.
pub struct Watches {
    rng: Rng,
    runtime: tokio::runtime::Runtime,
    list: Vec<SimWatch>,
    /// Times a watch (re)started on a node.
    pub attaches: u64,
    /// Events delivered and checked.
    pub events: u64,
}

impl Watches {
    /// No watches (scenarios that do not check them).
    pub fn none(seed: u64) -> Result<Watches, String> {
        // A current-thread runtime: the watcher reads history on its blocking pool, and the
        // simulation waits for each step, so the run stays deterministic.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("watch runtime: {e}"))?;
        let rng = Rng::new(mix(seed, WATCH_RNG_SALT));
        Ok(Watches { rng, runtime, list: Vec::new(), attaches: 0, events: 0 })
    }

    /// Watches on every shard, starting at random times before `chaos_ms`.
    pub fn on_shards(
        seed: u64,
        shards: &[ShardSpec],
        keys: &[(Vec<u8>, ShardId)],
        chaos_ms: u64,
    ) -> Result<Watches, String> {
        let mut w = Watches::none(seed)?;
        for shard in shards {
            for n in 0..WATCHES_PER_SHARD {
                let spec = if n == 0 {
                    let end = match shard.range.end.as_slice() {
                        [] => vec![0],
                        end => end.to_vec(),
                    };
                    WatchSpec {
                        key: shard.range.start.clone(),
                        range_end: end,
                        ..Default::default()
                    }
                } else {
                    let own: Vec<&Vec<u8>> =
                        keys.iter().filter(|(_, s)| *s == shard.id).map(|(k, _)| k).collect();
                    let key = w.rng.pick(&own).map_or_else(Vec::new, |k| k.to_vec());
                    WatchSpec { key, ..Default::default() }
                };
                let start_at_ms = w.rng.below(chaos_ms);
                let start_after_changes = w.rng.below(20) as usize;
                w.list.push(SimWatch {
                    shard: shard.id,
                    spec,
                    start_at_ms,
                    start_after_changes,
                    cursor: None,
                    attached: None,
                    synced_at: None,
                });
            }
        }
        Ok(w)
    }

    /// The process of node `i` dies: its watchers end with it (their clients watch again
    /// elsewhere on their next turn).
    pub fn on_crash(&mut self, i: usize) {
        for w in &mut self.list {
            if w.attached.as_ref().is_some_and(|(n, _)| *n == i) {
                w.attached = None;
                w.synced_at = None;
            }
        }
    }

    /// One millisecond: watches due start, detached ones watch again on a live node, and
    /// every watch takes (and checks) what its watcher has.
    pub fn poll(
        &mut self,
        now: u64,
        nodes: &[SimNode],
        history: &CommittedHistory,
    ) -> Result<(), String> {
        for i in 0..self.list.len() {
            if self.list[i].attached.is_some() && self.rng.chance(MOVE_PER_MILLE) {
                self.list[i].attached = None;
                self.list[i].synced_at = None;
            }
            self.start_due(i, now, history);
            self.attach(i, nodes)?;
            self.take(i, nodes, history, STEPS_PER_MS_MAX)?;
        }
        Ok(())
    }

    /// After the cluster settled (every node up, every replica applied everything): each
    /// watch takes what is left and must then have received its whole committed history.
    pub fn settle(&mut self, nodes: &[SimNode], history: &CommittedHistory) -> Result<(), String> {
        for i in 0..self.list.len() {
            self.attach(i, nodes)?;
            self.take(i, nodes, history, usize::MAX)?;
            let w = &mut self.list[i];
            let cursor = w.cursor.as_mut().ok_or("a watch never started")?;
            history.check_complete(w.shard, &w.spec, cursor)?;
        }
        Ok(())
    }

    fn start_due(&mut self, i: usize, now: u64, history: &CommittedHistory) {
        let w = &mut self.list[i];
        if w.cursor.is_some() || now < w.start_at_ms {
            return;
        }
        // From a past revision: the change `start_after_changes` into the history, or
        // the first revision when there are not that many yet.
        let start = history.revision_of(w.shard, w.start_after_changes).map_or(1, |r| r);
        w.cursor = Some(history.cursor(w.shard, start));
    }

    /// A started watch without a watcher watches on a random live node, from the revision
    /// after the last event it received (or its start revision).
    fn attach(&mut self, i: usize, nodes: &[SimNode]) -> Result<(), String> {
        let w = &self.list[i];
        let Some(cursor) = &w.cursor else { return Ok(()) };
        if w.attached.is_some() {
            return Ok(());
        }
        let up: Vec<usize> = (0..nodes.len()).filter(|&n| nodes[n].is_up()).collect();
        let Some(&n) = self.rng.pick(&up) else { return Ok(()) };
        let store = &nodes[n].replicas.get(&w.shard).ok_or("a live node lacks a replica")?.store;
        let from = match cursor.last_revision {
            0 => cursor.start_revision,
            last => last + 1,
        };
        let watcher = store.watch(w.spec.clone(), from).map_err(|e| format!("watch: {e}"))?;
        self.list[i].attached = Some((n, watcher));
        self.attaches += 1;
        Ok(())
    }

    /// Takes up to `steps_max` steps of watch `i`, checking every event.
    fn take(
        &mut self,
        i: usize,
        nodes: &[SimNode],
        history: &CommittedHistory,
        steps_max: usize,
    ) -> Result<(), String> {
        let w = &mut self.list[i];
        let (Some((n, watcher)), Some(cursor)) = (&mut w.attached, &mut w.cursor) else {
            return Ok(());
        };
        let applied = nodes[*n].replicas.get(&w.shard).map(|r| r.state.applied_index);
        if applied.is_some() && w.synced_at == applied {
            return Ok(());
        }
        for _ in 0..steps_max {
            let step = self.runtime.block_on(watcher.next_step()).map_err(|e| format!("{e}"))?;
            match step {
                WatchStep::Events { events, .. } => {
                    for e in &events {
                        history.deliver(w.shard, &w.spec, cursor, e)?;
                    }
                    self.events += events.len() as u64;
                }
                WatchStep::Synced { .. } => {
                    w.synced_at = applied;
                    break;
                }
                WatchStep::Compacted { compact_revision } => {
                    return Err(format!("watch compacted at {compact_revision}: none was asked"));
                }
            }
        }
        Ok(())
    }
}
