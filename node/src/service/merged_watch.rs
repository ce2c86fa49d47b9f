//! A watch whose range spans shards: one shard watcher per part, merged in revision order
//! using closed revisions (DESIGN §4, decision D13).
//!
//! An event at revision r is handed out only once every part is known to produce nothing at
//! or below r later: its events up to r were all received (it reported itself synced at or
//! above r, or sent a later event). A part that is idle never gets there by itself, so the
//! merge asks that shard to close revisions up to the lowest event it holds (a `Close`
//! entry through the shard's Raft log, proposed by its leader) and waits for the shard to
//! publish it. Nothing is proposed while no merged watch is blocked: idle shards stay idle.

use atoll_proto::{Event, ShardId};
use atoll_shard::ShardError;
use atoll_shard::limits::WATCH_STEP_EVENTS_MAX;
use atoll_shard::watch::{WatchStep, Watcher};
use std::collections::VecDeque;
use std::sync::Arc;

/// Events one part holds while waiting for the other parts; it is not asked for more until
/// the merge hands some out.
pub const MERGE_PART_EVENTS_MAX: usize = WATCH_STEP_EVENTS_MAX;

/// Asks a shard to close its revisions up to one (the service proposes `Close`).
pub type Closer = Arc<dyn Fn(ShardId, i64) + Send + Sync>;

/// One shard's part of a merged watch.
struct Part {
    shard: ShardId,
    watcher: Watcher,
    /// Events received and not handed out yet, in revision order.
    held: VecDeque<Event>,
    /// Every event of this part at or below this revision has been received.
    frontier: i64,
}

/// A watch over several shards, in revision order.
pub struct MergedWatcher {
    parts: Vec<Part>,
    closer: Closer,
}

impl MergedWatcher {
    /// Merges `watchers` (one per shard, over disjoint keys).
    pub fn new(watchers: Vec<(ShardId, Watcher)>, closer: Closer) -> MergedWatcher {
        let parts = watchers
            .into_iter()
            .map(|(shard, watcher)| Part { shard, watcher, held: VecDeque::new(), frontier: 0 })
            .collect();
        MergedWatcher { parts, closer }
    }

    /// The next step: events every part has closed, or `Synced` at the highest revision
    /// up to which every event has been handed out (then wait on [`MergedWatcher::changed`]).
    pub async fn next_step(&mut self) -> Result<WatchStep, ShardError> {
        loop {
            let mut pulled = false;
            for part in &mut self.parts {
                if part.held.len() >= MERGE_PART_EVENTS_MAX {
                    continue;
                }
                match part.watcher.next_step().await? {
                    WatchStep::Events { events, .. } => {
                        // A step ends between revisions: the last one it carried is whole.
                        if let Some(last) = events.last() {
                            part.frontier = part.frontier.max(last.kv.mod_revision);
                        }
                        part.held.extend(events);
                        pulled = true;
                    }
                    WatchStep::Synced { revision } => {
                        part.frontier = part.frontier.max(revision);
                    }
                    WatchStep::Compacted { compact_revision } => {
                        return Ok(WatchStep::Compacted { compact_revision });
                    }
                }
            }
            let bound = self.parts.iter().map(|p| p.frontier).min().unwrap_or(0);
            let events = self.take_up_to(bound);
            if !events.is_empty() {
                return Ok(WatchStep::Events { events, revision: bound });
            }
            if !pulled {
                self.ask_to_close(bound);
                return Ok(WatchStep::Synced { revision: bound });
            }
        }
    }

    /// Resolves when any part may have a new step. Cancel-safe, as each part's is.
    pub async fn changed(&self) {
        let waits = self.parts.iter().map(|p| Box::pin(p.watcher.changed()));
        futures::future::select_all(waits).await;
    }

    /// Removes and returns the held events at or below `bound`, by revision then key (parts
    /// hold disjoint keys, and two shards may stamp the same revision), about a step's
    /// worth and whole revisions only.
    fn take_up_to(&mut self, bound: i64) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        loop {
            let last = out.last().map(|e| e.kv.mod_revision);
            let room = out.len() < WATCH_STEP_EVENTS_MAX;
            let next = self
                .parts
                .iter_mut()
                .filter(|p| p.held.front().is_some_and(|e| e.kv.mod_revision <= bound))
                .min_by(|a, b| {
                    let (ea, eb) = (&a.held[0], &b.held[0]);
                    (ea.kv.mod_revision, &ea.kv.key).cmp(&(eb.kv.mod_revision, &eb.kv.key))
                })
                .filter(|p| room || last == Some(p.held[0].kv.mod_revision));
            match next.and_then(|p| p.held.pop_front()) {
                Some(event) => out.push(event),
                None => break,
            }
        }
        out
    }

    /// Nothing can be handed out: the parts behind the lowest held event are idle. Asks
    /// their shards to close up to it and to wake this watch once they have.
    fn ask_to_close(&self, bound: i64) {
        let lowest_held =
            self.parts.iter().filter_map(|p| p.held.front()).map(|e| e.kv.mod_revision).min();
        let Some(target) = lowest_held.filter(|r| *r > bound) else { return };
        for part in self.parts.iter().filter(|p| p.frontier < target) {
            part.watcher.wake_at(target);
            (self.closer)(part.shard, target);
        }
    }
}
