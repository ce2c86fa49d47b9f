//! [`Watcher`]: the consumer side of one watch. Each step hands out a bounded batch of events
//! in revision order: history from the change log first (read on the blocking pool), then
//! live events from the hub buffer, with a catch-up read whenever the buffer overflowed.

use crate::error::{ShardError, StorageError};
use crate::limits::{WATCH_STEP_BYTES_MAX, WATCH_STEP_EVENTS_MAX};
use crate::mvcc::{ChangeChunk, MvccStore};
use crate::watch::spec::WatchSpec;
use crate::watch::watch_hub::{Take, WatchHub};
use atoll_proto::{AtollError, Event};
use std::sync::Arc;
use tokio::sync::Notify;

/// What a watcher has for its consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchStep {
    /// Events in revision order (never empty).
    Events {
        /// The events.
        events: Vec<Event>,
        /// The store's revision as far as this watcher knows it (at least the last event's).
        revision: i64,
    },
    /// Nothing pending: every later event of this watcher has a revision above `revision`.
    Synced {
        /// The revision every event up to which was handed out.
        revision: i64,
    },
    /// The next revision this watcher needs was compacted away; the watch is over.
    Compacted {
        /// The shard's compacted revision.
        compact_revision: i64,
    },
}

/// One watch on one shard. Dropping it unregisters it from the hub.
pub struct Watcher {
    hub: WatchHub,
    store: MvccStore,
    id: u64,
    spec: Arc<WatchSpec>,
    wake: Arc<Notify>,
    /// History still to read: from this change-log key up to this revision (inclusive).
    pending: Option<(Vec<u8>, i64)>,
    /// The watch ended (compacted); no more steps.
    ended: Option<i64>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("id", &self.id).field("spec", &self.spec).finish()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.leave(self.id);
    }
}

impl MvccStore {
    /// Starts watching `spec` on this shard from `start_revision` (inclusive; `<= 0` means
    /// from now). A compacted start revision is reported by the first step. May read the
    /// store's revision from storage once per shard: call it off the actor threads.
    pub fn watch(&self, spec: WatchSpec, start_revision: i64) -> Result<Watcher, ShardError> {
        let spec = Arc::new(spec);
        let hub = self.watch_hub().clone();
        let joined =
            hub.join(Arc::clone(&spec), start_revision, || -> Result<i64, ShardError> {
                Ok(self.load_apply_state()?.revision)
            })?;
        Ok(Watcher {
            hub,
            store: self.clone(),
            id: joined.id,
            spec,
            wake: joined.wake,
            pending: joined.history,
            ended: None,
        })
    }
}

impl Watcher {
    /// What the watcher watches.
    pub fn spec(&self) -> &WatchSpec {
        &self.spec
    }

    /// The next step. Reads history on the blocking pool when it has some to read; never
    /// waits for new events (see [`Watcher::changed`]).
    pub async fn next_step(&mut self) -> Result<WatchStep, ShardError> {
        loop {
            if let Some(compact_revision) = self.ended {
                return Ok(WatchStep::Compacted { compact_revision });
            }
            if let Some((from, upto)) = self.pending.take() {
                match self.read_history(from, upto).await? {
                    ChangeChunk::Compacted { compact_revision } => {
                        self.ended = Some(compact_revision);
                        self.hub.leave(self.id);
                    }
                    ChangeChunk::Events { events, next } => {
                        self.pending = next.map(|n| (n, upto));
                        if !events.is_empty() {
                            return Ok(WatchStep::Events { events, revision: upto });
                        }
                    }
                }
                continue;
            }
            match self.hub.take(self.id, WATCH_STEP_EVENTS_MAX, WATCH_STEP_BYTES_MAX) {
                Take::CatchUp { resume, upto } => self.pending = Some((resume, upto)),
                Take::Idle { revision } => return Ok(WatchStep::Synced { revision }),
                Take::Events { mut events, revision } => {
                    if self.spec.prev_kv {
                        events = self.fill_prev_kvs(events).await?;
                    }
                    return Ok(WatchStep::Events { events, revision });
                }
            }
        }
    }

    /// Asks for a wake-up (through [`Watcher::changed`]) once the shard's published revision
    /// reaches `revision`, even without an event for this watcher.
    pub fn wake_at(&self, revision: i64) {
        self.hub.wake_at(self.id, revision);
    }

    /// Resolves when the watcher may have a new step (an event arrived or it lags).
    /// Cancel-safe: a wake-up that comes while nobody waits is kept for the next call.
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    async fn read_history(&self, from: Vec<u8>, upto: i64) -> Result<ChangeChunk, ShardError> {
        let store = self.store.clone();
        let spec = Arc::clone(&self.spec);
        blocking(move || store.read_changes(&spec, &from, upto)).await
    }

    async fn fill_prev_kvs(&self, mut events: Vec<Event>) -> Result<Vec<Event>, ShardError> {
        let store = self.store.clone();
        let spec = Arc::clone(&self.spec);
        blocking(move || store.fill_prev_kvs_now(&spec, &mut events).map(|()| events)).await
    }
}

/// Runs a storage read on the blocking pool (DESIGN §3: never on an async worker).
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ShardError> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(AtollError::Stopping.into()),
    }
}
