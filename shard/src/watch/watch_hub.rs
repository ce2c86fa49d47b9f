//! [`WatchHub`]: one shard's live watchers and their bounded buffers, shared by the apply
//! worker (which publishes each committed batch) and the consumers (which take events).
//!
//! The hub is the one place apply and consumers meet, so it is a mutex held only for
//! in-memory work: publishing copies events into buffers, taking moves them out. Nothing
//! under the lock waits for IO or for a consumer.

use crate::limits::{WATCHER_BUFFER_BYTES_MAX, WATCHER_BUFFER_EVENTS_MAX, WATCHERS_PER_SHARD_MAX};
use crate::mvcc::{change_cursor, cursor_after};
use crate::watch::spec::WatchSpec;
use atoll_proto::{AtollError, Event};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::Notify;

/// One shard's watchers. Cheap to clone: clones share the watchers.
#[derive(Clone, Default)]
pub struct WatchHub {
    inner: Arc<Mutex<HubState>>,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("WatchHub")
            .field("published", &state.published)
            .field("watchers", &state.slots.len())
            .finish()
    }
}

#[derive(Default)]
struct HubState {
    /// The store revision after the last published batch; `None` until the first watcher
    /// loads it from storage or apply publishes.
    published: Option<i64>,
    next_id: u64,
    slots: HashMap<u64, Slot>,
}

/// One watcher as the hub holds it.
struct Slot {
    spec: Arc<WatchSpec>,
    /// Live events at or below this revision are not buffered: the consumer reads them from
    /// storage (history before the watcher joined) or they precede its start revision.
    horizon: i64,
    buffer: VecDeque<Event>,
    buffer_bytes: usize,
    /// The buffer overflowed and was dropped; the consumer catches up from `resume`.
    lagging: bool,
    /// The first change-log key not yet handed to the consumer.
    resume: Vec<u8>,
    /// Wake the consumer once the published revision reaches this one, events or not (a
    /// watch merging shards waits for an idle shard to close a revision).
    wake_at: Option<i64>,
    wake: Arc<Notify>,
}

/// How a watcher joins: what the consumer reads from storage before the buffer.
pub(crate) struct Joined {
    /// The watcher's ID in the hub.
    pub id: u64,
    /// Signalled when the watcher has something to take.
    pub wake: Arc<Notify>,
    /// History to read first: from this change-log key up to this revision (inclusive).
    pub history: Option<(Vec<u8>, i64)>,
}

/// What a consumer finds when it takes from the hub.
pub(crate) enum Take {
    /// The watcher is lagging: read the change log from `resume` up to `upto` (inclusive);
    /// live events above `upto` are buffered again from now on.
    CatchUp {
        /// First change-log key to read.
        resume: Vec<u8>,
        /// Last revision to read.
        upto: i64,
    },
    /// Buffered events, oldest first; the store was at `revision`.
    Events {
        /// The events.
        events: Vec<Event>,
        /// The published revision.
        revision: i64,
    },
    /// Nothing buffered: every later event has a revision above `revision`.
    Idle {
        /// The published revision.
        revision: i64,
    },
}

/// A change of one key at one revision, as apply publishes it.
pub(crate) struct PublishedChange {
    /// Its revision.
    pub revision: i64,
    /// The event (a delete carries the key and mod revision only).
    pub event: Event,
}

impl WatchHub {
    fn lock(&self) -> MutexGuard<'_, HubState> {
        // Every critical section leaves the state consistent before anything can panic, so
        // a poisoned lock still guards valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Watchers registered now.
    pub fn watcher_count(&self) -> usize {
        self.lock().slots.len()
    }

    /// The store revision after the last published batch, once known (apply published a
    /// batch or a watcher loaded it).
    pub fn published_revision(&self) -> Option<i64> {
        self.lock().published
    }

    /// Events held in every watcher's buffer together (bounded by the watcher count times
    /// [`WATCHER_BUFFER_EVENTS_MAX`]).
    pub fn buffered_events(&self) -> usize {
        self.lock().slots.values().map(|s| s.buffer.len()).sum()
    }

    /// Publishes a committed batch that left the store at `revision`. `changes` is called
    /// only when someone watches, under the lock, so a watcher joining concurrently sees
    /// the batch either in its history or in its buffer, never in neither nor both.
    pub(crate) fn publish(&self, revision: i64, changes: impl FnOnce() -> Vec<PublishedChange>) {
        let mut state = self.lock();
        let previous = state.published.unwrap_or(0);
        state.published = Some(previous.max(revision));
        if state.slots.is_empty() || revision <= previous {
            return;
        }
        let changes = changes();
        for slot in state.slots.values_mut() {
            let mut woken = slot.wake_at.take_if(|at| *at <= revision).is_some();
            for change in &changes {
                woken |= slot.offer(change);
            }
            if woken {
                slot.wake.notify_one();
            }
        }
    }

    /// A Raft snapshot replaced the shard's state, leaving the store at `revision`. Live
    /// events between what a watcher was handed and `revision` were never published here,
    /// so every watcher drops its buffer and catches up from the change log the snapshot
    /// brought; one whose next revision the snapshot compacted away is cancelled with the
    /// compacted revision, as etcd cancels a watcher a restored snapshot left behind.
    pub(crate) fn publish_replaced(&self, revision: i64) {
        let mut state = self.lock();
        let previous = state.published.unwrap_or(0);
        state.published = Some(previous.max(revision));
        for slot in state.slots.values_mut() {
            slot.lagging = true;
            slot.buffer = VecDeque::new();
            slot.buffer_bytes = 0;
            slot.wake.notify_one();
        }
    }

    /// Registers a watcher of `spec` from `start_revision` (`<= 0`: from now).
    /// `load_revision` gives the store's revision when nothing was published yet.
    pub(crate) fn join<E>(
        &self,
        spec: Arc<WatchSpec>,
        start_revision: i64,
        load_revision: impl FnOnce() -> Result<i64, E>,
    ) -> Result<Joined, E>
    where
        E: From<AtollError>,
    {
        let mut state = self.lock();
        if state.slots.len() >= WATCHERS_PER_SHARD_MAX {
            return Err(AtollError::Busy { limit: "watchers_per_shard_max".into() }.into());
        }
        let published = match state.published {
            Some(p) => p,
            None => {
                // Loaded under the lock: a batch committed but not yet published is then in
                // both the loaded revision and the next publish; the horizon drops the copy.
                let p = load_revision()?;
                state.published = Some(p);
                p
            }
        };
        let history = (start_revision > 0 && start_revision <= published)
            .then(|| (change_cursor(start_revision), published));
        let first_live = published.saturating_add(1).max(start_revision);
        let id = state.next_id;
        state.next_id += 1;
        let wake = Arc::new(Notify::new());
        let slot = Slot {
            spec,
            horizon: first_live - 1,
            buffer: VecDeque::new(),
            buffer_bytes: 0,
            lagging: false,
            resume: change_cursor(first_live),
            wake_at: None,
            wake: Arc::clone(&wake),
        };
        state.slots.insert(id, slot);
        Ok(Joined { id, wake, history })
    }

    /// Wakes watcher `id` once the published revision reaches `revision` (at once if it
    /// has), whether or not an event of its own comes with it.
    pub(crate) fn wake_at(&self, id: u64, revision: i64) {
        let mut state = self.lock();
        let published = state.published.unwrap_or(0);
        let Some(slot) = state.slots.get_mut(&id) else { return };
        if published >= revision {
            slot.wake.notify_one();
        } else {
            slot.wake_at = Some(slot.wake_at.map_or(revision, |at| at.min(revision)));
        }
    }

    /// Removes a watcher; its buffer is freed.
    pub(crate) fn leave(&self, id: u64) {
        self.lock().slots.remove(&id);
    }

    /// Takes what watcher `id` has: about `events_max` events and `bytes_max` bytes (at
    /// least one event, and whole revisions only), or the catch-up it needs, or its idle
    /// revision.
    pub(crate) fn take(&self, id: u64, events_max: usize, bytes_max: usize) -> Take {
        let mut state = self.lock();
        let published = state.published.unwrap_or(0);
        let Some(slot) = state.slots.get_mut(&id) else {
            return Take::Idle { revision: published };
        };
        if slot.lagging {
            // Rejoin at the published revision: storage holds everything up to it, and the
            // buffer takes everything after it.
            slot.lagging = false;
            slot.horizon = published;
            let resume = std::mem::replace(&mut slot.resume, change_cursor(published + 1));
            return Take::CatchUp { resume, upto: published };
        }
        if slot.buffer.is_empty() {
            return Take::Idle { revision: published };
        }
        let mut events: Vec<Event> = Vec::new();
        let mut bytes = 0;
        while let Some(event) = slot.buffer.front() {
            let size = event_bytes(event);
            let full = events.len() >= events_max || bytes + size > bytes_max;
            // A step ends between revisions, never inside one: publishing buffers a whole
            // batch at once, so the rest of the last revision is here.
            if full && events.last().is_some_and(|last| !same_revision(last, event)) {
                break;
            }
            bytes += size;
            slot.buffer_bytes -= size;
            if let Some(event) = slot.buffer.pop_front() {
                events.push(event);
            }
        }
        if let Some(last) = events.last() {
            slot.resume = cursor_after(last);
        }
        Take::Events { events, revision: published }
    }
}

impl Slot {
    /// Buffers `change` if the watcher wants it; returns whether the consumer must wake.
    fn offer(&mut self, change: &PublishedChange) -> bool {
        let event = &change.event;
        if self.lagging
            || change.revision <= self.horizon
            || !self.spec.matches_key(&event.kv.key)
            || !self.spec.wants(event.kind)
        {
            return false;
        }
        let size = event_bytes(event);
        let full = self.buffer.len() >= WATCHER_BUFFER_EVENTS_MAX
            || (!self.buffer.is_empty() && self.buffer_bytes + size > WATCHER_BUFFER_BYTES_MAX);
        if full {
            // Drop everything: the change log has it, and holding it for a consumer that
            // does not keep up would let one slow watcher grow memory without bound.
            self.lagging = true;
            self.buffer = VecDeque::new();
            self.buffer_bytes = 0;
            return true;
        }
        self.buffer_bytes += size;
        self.buffer.push_back(event.clone());
        true
    }
}

/// Whether two events come from one revision of the shard (one Txn or DeleteRange).
fn same_revision(a: &Event, b: &Event) -> bool {
    a.kv.mod_revision == b.kv.mod_revision
}

/// What an event costs in a buffer or a response: its key and value bytes (previous ones
/// included) plus a fixed overhead.
pub fn event_bytes(event: &Event) -> usize {
    const EVENT_OVERHEAD_BYTES: usize = 64;
    let prev = event.prev_kv.as_ref().map_or(0, |p| p.key.len() + p.value.len());
    event.kv.key.len() + event.kv.value.len() + prev + EVENT_OVERHEAD_BYTES
}
