//! Named limits of a replica and of the log writer (STYLE: everything has a named limit).

/// Most proposals a replica holds waiting for apply before it answers `Busy`.
pub const PENDING_PROPOSALS_MAX: usize = 16_384;
/// Proposals a lease revocation may add beyond [`PENDING_PROPOSALS_MAX`]: revocations go
/// ahead of ordinary traffic, which cannot crowd them out (decision D16), yet stay bounded.
pub const REVOCATION_PROPOSALS_EXTRA_MAX: usize = 4_096;
/// Most Raft log entries one log-writer batch (one fsync) takes from all replicas.
pub const LOG_WRITER_BATCH_ENTRIES_MAX: usize = 65_536;
/// Most bytes one log-writer batch takes before it syncs.
pub const LOG_WRITER_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Log entries kept behind the applied index when the log is truncated, by default
/// (`ReplicaConfig::log_retained_entries`, etcd's `--snapshot-catchup-entries`). A leader
/// truncates below lagging replicas too (decision D20): one behind by fewer entries catches
/// up from the log, one further behind by a snapshot. etcd keeps 5,000; entries here are
/// smaller on average (one write each, no batching of requests into entries is lost) and a
/// snapshot costs a full copy of the shard, so twice that: a follower restarting after a
/// few seconds under a few thousand writes per second still catches up from the log.
pub const RAFT_LOG_RETAINED_ENTRIES: u64 = 10_000;
/// Recent log entries a replica keeps in memory so Raft rarely reads them back from disk.
pub const ENTRY_CACHE_ENTRIES_MAX: usize = 4_096;
/// Old MVCC versions one compaction batch deletes before yielding.
pub const COMPACTION_BATCH_VERSIONS_MAX: usize = 1_000;
/// Change-log records one compaction step reads, its own and other shards' (the change log is
/// shared by every shard on the node), so a step stays short even when most records belong
/// to other shards.
pub const COMPACTION_SCAN_RECORDS_MAX: usize = 10_000;

/// Ticks a read index request may go unanswered before it is asked again (raft-rs drops
/// requests it cannot serve instead of failing them). Doubled after each retry that goes
/// unanswered, up to [`READ_INDEX_RETRY_TICKS_MAX`], and back to this after an answer: with a
/// fixed period, a round trip longer than it (a slow link, a loaded node) would make every
/// answer arrive for a request already replaced, and the read would never complete.
pub const READ_INDEX_RETRY_TICKS: u64 = 3;

/// Events one watcher's live buffer holds before the watcher is marked lagging: its buffer is
/// dropped and it catches up from the change log instead (memory stays bounded whatever the
/// consumer does; apply never waits for a watcher).
pub const WATCHER_BUFFER_EVENTS_MAX: usize = 1_024;
/// Bytes (keys and values) one watcher's live buffer holds before it is marked lagging.
pub const WATCHER_BUFFER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Most events one watch step hands out, so one busy watcher cannot hog a stream.
pub const WATCH_STEP_EVENTS_MAX: usize = 1_000;
/// Most event bytes one watch step hands out (at least one event is always handed out).
pub const WATCH_STEP_BYTES_MAX: usize = 1024 * 1024;
/// Change-log records one catch-up read scans (the change log is shared by every shard on
/// the node, so most records may belong to other keys); the read resumes where it stopped.
pub const WATCH_CATCH_UP_SCAN_RECORDS_MAX: usize = 10_000;
/// Watchers one shard's watch hub serves; a create beyond it is refused as `Busy`.
pub const WATCHERS_PER_SHARD_MAX: usize = 100_000;

/// Longest wait before a read index request is asked again.
pub const READ_INDEX_RETRY_TICKS_MAX: u64 = 24;

/// Version records one step of the compaction hash reads (the hash at the compacted
/// revision, taken after the deletion).
pub const COMPACTION_HASH_STEP_VERSIONS_MAX: usize = 10_000;
/// Change-log records one step of revision-mode auto-compaction's backward count reads.
pub const RETENTION_STEP_RECORDS_MAX: usize = 10_000;
/// `Compact { physical: true }` callers one compactor holds waiting; more answer `Busy`.
pub const COMPACTION_WAITERS_MAX: usize = 1_024;

/// A learner is promoted only once its Raft match index is at least this percentage of the
/// leader's last index (etcd's `readyPercentThreshold`, 0.9, not configurable there either).
pub const LEARNER_READY_PERCENT: u64 = 90;
