//! Named limits of a replica and of the log writer (STYLE: everything has a named limit).

/// Most proposals a replica holds waiting for apply before it answers `Busy`.
pub const PENDING_PROPOSALS_MAX: usize = 16_384;
/// Most Raft log entries one log-writer batch (one fsync) takes from all replicas.
pub const LOG_WRITER_BATCH_ENTRIES_MAX: usize = 65_536;
/// Most bytes one log-writer batch takes before it syncs.
pub const LOG_WRITER_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Log entries kept behind the applied index before the log is truncated.
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
/// Longest wait before a read index request is asked again.
pub const READ_INDEX_RETRY_TICKS_MAX: u64 = 24;
