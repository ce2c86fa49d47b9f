//! The watch hub of a shard: etcd v3 watches on a key, a prefix or a range of one shard, from
//! a past revision (history from the `changes` keyspace) or from now, with `prev_kv`,
//! NOPUT/NODELETE filters, compaction and progress (ETCD_API.md §1.4).
//!
//! How events flow:
//! - apply publishes every committed batch to the shard's [`WatchHub`] after the batch is in
//!   the database ([`crate::mvcc::MvccStore`] calls [`WatchHub::publish`]); the hub copies
//!   matching events into each watcher's bounded buffer and wakes its consumer. Publishing
//!   never waits for a consumer;
//! - a watcher whose buffer overflows is marked lagging: the buffer is dropped and the
//!   consumer later reads what it missed from the change log on the blocking pool (etcd's
//!   "unsynced" watchers, `server/storage/mvcc/watchable_store.go`, without holding events
//!   in memory for them);
//! - history and live events meet at a horizon: the published revision when the watcher
//!   joined. Events at or below it are read from storage, events above it come from the
//!   buffer, so the switch has no gap and no duplicate;
//! - a consumer that asks for its next step gets about [`crate::limits::WATCH_STEP_EVENTS_MAX`]
//!   events, so a busy watcher cannot hog the stream it shares with others. A step always
//!   ends between two revisions: one revision (a Txn or DeleteRange) is never split across
//!   steps, as etcd never splits one across responses, so a client that resumes from its
//!   last revision + 1 misses nothing. One step may therefore exceed the bound by the size
//!   of one revision.
//!
//! This module must not know about streams or the network: the node multiplexes watchers
//! onto client streams.

mod spec;
pub(crate) mod watch_hub;
mod watcher;

pub use spec::WatchSpec;
pub use watch_hub::{WatchHub, event_bytes};
pub use watcher::{WatchStep, Watcher};
