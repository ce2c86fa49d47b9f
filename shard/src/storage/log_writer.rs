//! The per-node log writer: one thread that takes the Raft appends of every replica on the
//! node and makes them durable together, in one fjall batch and one `persist(SyncData)`
//! (group commit, DESIGN §3). While one fsync runs, the next batch fills up, so the number of
//! fsyncs per second stays bounded by the disk, not by the number of writes or shards.
//!
//! It is a dedicated OS thread rather than an actor on an arbiter because every iteration
//! blocks on an fsync, and blocking IO never runs on an arbiter thread.

use crate::error::StorageError;
use crate::limits::{LOG_WRITER_BATCH_BYTES_MAX, LOG_WRITER_BATCH_ENTRIES_MAX};
use crate::storage::Storage;
use crate::storage::raft_log::TruncatedState;
use crate::storage::records::{self, StateTag};
use atoll_proto::ShardId;
use raft::eraftpb::{Entry, HardState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

/// Tasks the log writer queue holds before `try_submit` refuses more (the replica then keeps
/// its task and retries; it never blocks its arbiter).
pub const LOG_WRITER_QUEUE_TASKS_MAX: usize = 16_384;

/// Called on the log writer thread once a task is durable.
pub type PersistedCallback = Box<dyn FnOnce() + Send + 'static>;
/// Called once when storage fails; the node poisons itself and exits.
pub type FatalCallback = Box<dyn Fn(&StorageError) + Send + 'static>;

/// What one replica asks the log writer to make durable.
pub struct LogWriteTask {
    /// The replica's shard.
    pub shard: ShardId,
    /// New entries, in order.
    pub entries: Vec<Entry>,
    /// Inclusive index range of entries to delete because the log got shorter.
    pub stale: Option<(u64, u64)>,
    /// A new hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// Truncate the log: delete entries from the first index given up to the truncated
    /// state's index, and record the truncated state.
    pub truncate: Option<(u64, TruncatedState)>,
    /// Runs once everything above is durable.
    pub on_persisted: PersistedCallback,
}

/// Counters of the log writer, read by metrics and benchmarks.
#[derive(Debug, Default)]
pub struct LogWriterStats {
    /// fsyncs done.
    pub syncs: AtomicU64,
    /// Tasks made durable.
    pub tasks: AtomicU64,
    /// Entries made durable.
    pub entries: AtomicU64,
    /// Total time spent in fsync, microseconds.
    pub sync_micros: AtomicU64,
}

/// The sending side of the log writer; cheap to clone.
#[derive(Clone)]
pub struct LogWriterHandle {
    tx: SyncSender<LogWriteTask>,
    poisoned: Arc<AtomicBool>,
    stats: Arc<LogWriterStats>,
}

impl LogWriterHandle {
    /// Queues a task. Gives it back when the queue is full or the writer is poisoned.
    pub fn try_submit(&self, task: LogWriteTask) -> Result<(), Box<LogWriteTask>> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Box::new(task));
        }
        self.tx.try_send(task).map_err(|e| match e {
            TrySendError::Full(t) | TrySendError::Disconnected(t) => Box::new(t),
        })
    }

    /// Whether storage failed; a poisoned node accepts no more writes.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// The writer's counters.
    pub fn stats(&self) -> &LogWriterStats {
        &self.stats
    }
}

/// The log writer thread.
pub struct LogWriter;

impl LogWriter {
    /// Starts the thread. `on_fatal` runs once if a write or an fsync fails; the writer then
    /// stops and refuses every later task (a failed fsync is never retried: the page cache may
    /// have dropped the dirty pages, so a retry could report success for lost data).
    pub fn spawn(storage: Storage, on_fatal: FatalCallback) -> std::io::Result<LogWriterHandle> {
        let (tx, rx) = sync_channel(LOG_WRITER_QUEUE_TASKS_MAX);
        let poisoned = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(LogWriterStats::default());
        let handle = LogWriterHandle { tx, poisoned: poisoned.clone(), stats: stats.clone() };
        std::thread::Builder::new().name("atoll-log-writer".into()).spawn(move || {
            if let Err(e) = run(&storage, &rx, &stats) {
                poisoned.store(true, Ordering::Release);
                tracing::error!(error = %e, "log writer failed; node storage is poisoned");
                on_fatal(&e);
            }
        })?;
        Ok(handle)
    }
}

fn run(
    storage: &Storage,
    rx: &Receiver<LogWriteTask>,
    stats: &LogWriterStats,
) -> Result<(), StorageError> {
    while let Ok(first) = rx.recv() {
        let tasks = drain_batch(first, rx);
        if write_batch(storage, &tasks)? {
            let started = Instant::now();
            // Durability point: entries and hard states must be on disk before any replica
            // acknowledges them or sends votes/acks based on them (Raft §5.1, "persist before
            // replying").
            storage.sync()?;
            record(stats, &tasks, started);
        }
        for task in tasks {
            (task.on_persisted)();
        }
    }
    Ok(())
}

/// Takes `first` and whatever else is already queued, up to the batch limits.
fn drain_batch(first: LogWriteTask, rx: &Receiver<LogWriteTask>) -> Vec<LogWriteTask> {
    let mut entries = first.entries.len();
    let mut bytes = task_bytes(&first);
    let mut tasks = vec![first];
    while entries < LOG_WRITER_BATCH_ENTRIES_MAX && bytes < LOG_WRITER_BATCH_BYTES_MAX {
        match rx.try_recv() {
            Ok(t) => {
                entries += t.entries.len();
                bytes += task_bytes(&t);
                tasks.push(t);
            }
            Err(_) => break,
        }
    }
    tasks
}

fn task_bytes(t: &LogWriteTask) -> usize {
    t.entries.iter().map(|e| e.data.len() + e.context.len() + 32).sum()
}

/// Writes every task into one batch. Returns false when there was nothing to write (tasks that
/// only order a Ready behind earlier ones), so the fsync can be skipped.
fn write_batch(storage: &Storage, tasks: &[LogWriteTask]) -> Result<bool, StorageError> {
    let mut batch = storage.db.batch();
    for task in tasks {
        if let Some((from, to)) = task.stale {
            for index in from..=to {
                batch.remove(&storage.raft_log, records::log_key(task.shard, index).to_vec());
            }
        }
        for e in &task.entries {
            let key = records::log_key(task.shard, e.index);
            batch.insert(&storage.raft_log, key.to_vec(), records::encode_entry(e)?);
        }
        if let Some(hs) = &task.hard_state {
            records::put_hard_state(storage, &mut batch, task.shard, hs)?;
        }
        if let Some((first, truncated)) = task.truncate {
            for index in first..=truncated.index {
                batch.remove(&storage.raft_log, records::log_key(task.shard, index).to_vec());
            }
            records::put_state(storage, &mut batch, task.shard, StateTag::Truncated, &truncated)?;
        }
    }
    if batch.is_empty() {
        return Ok(false);
    }
    batch.commit()?;
    Ok(true)
}

fn record(stats: &LogWriterStats, tasks: &[LogWriteTask], started: Instant) {
    let entries: usize = tasks.iter().map(|t| t.entries.len()).sum();
    stats.syncs.fetch_add(1, Ordering::Relaxed);
    stats.tasks.fetch_add(tasks.len() as u64, Ordering::Relaxed);
    stats.entries.fetch_add(entries as u64, Ordering::Relaxed);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    stats.sync_micros.fetch_add(micros, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::records;
    use std::sync::mpsc;

    fn entry(index: u64) -> Entry {
        Entry { term: 1, index, data: vec![index as u8; 8].into(), ..Entry::default() }
    }

    fn task(shard: u64, index: u64, done: mpsc::Sender<u64>) -> LogWriteTask {
        LogWriteTask {
            shard: ShardId(shard),
            entries: vec![entry(index)],
            stale: None,
            hard_state: None,
            truncate: None,
            on_persisted: Box::new(move || {
                let _ = done.send(index);
            }),
        }
    }

    #[test]
    fn tasks_queued_during_an_fsync_share_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 1 << 20).expect("open");
        let writer = LogWriter::spawn(storage.clone(), Box::new(|e| panic!("storage failed: {e}")))
            .expect("spawn");
        let (done_tx, done_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        // The first task's callback holds the writer thread (after its fsync) until 99 more
        // tasks are queued behind it.
        let first_done = done_tx.clone();
        let first = LogWriteTask {
            on_persisted: Box::new(move || {
                let _ = entered_tx.send(());
                let _ = release_rx.recv();
                let _ = first_done.send(1);
            }),
            ..task(7, 1, done_tx.clone())
        };
        assert!(writer.try_submit(first).is_ok());
        entered_rx.recv().expect("writer reached the first callback");
        for i in 2..=100 {
            // Half the tasks belong to another shard: the batch spans shards.
            assert!(writer.try_submit(task(7 + i % 2, i, done_tx.clone())).is_ok());
        }
        release_tx.send(()).expect("release");
        let mut persisted: Vec<u64> =
            (0..100).map(|_| done_rx.recv().expect("persisted")).collect();
        persisted.sort_unstable();
        assert_eq!(persisted, (1..=100).collect::<Vec<_>>());
        assert_eq!(
            writer.stats().syncs.load(Ordering::Relaxed),
            2,
            "one fsync for the first task, one for the other 99"
        );
        assert_eq!(writer.stats().entries.load(Ordering::Relaxed), 100);
        for i in 1..=100 {
            let shard = if i == 1 { 7 } else { 7 + i % 2 };
            let stored = records::load_entry(&storage, ShardId(shard), i).expect("load");
            assert_eq!(stored, Some(entry(i)), "entry {i} durable and intact");
        }
    }

    #[test]
    fn stale_entries_and_truncation_are_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 1 << 20).expect("open");
        let writer = LogWriter::spawn(storage.clone(), Box::new(|e| panic!("storage failed: {e}")))
            .expect("spawn");
        let (tx, rx) = mpsc::channel();
        let entries: Vec<Entry> = (1..=5).map(entry).collect();
        assert!(writer.try_submit(LogWriteTask { entries, ..task(3, 0, tx.clone()) }).is_ok());
        rx.recv().expect("persisted");
        let truncated = TruncatedState { index: 2, term: 1 };
        let cut = LogWriteTask {
            entries: Vec::new(),
            stale: Some((5, 5)),
            truncate: Some((1, truncated)),
            ..task(3, 0, tx)
        };
        assert!(writer.try_submit(cut).is_ok());
        rx.recv().expect("persisted");
        let present: Vec<bool> = (1..=5)
            .map(|i| records::load_entry(&storage, ShardId(3), i).expect("load").is_some())
            .collect();
        assert_eq!(present, vec![false, false, true, true, false]);
        let stored: Option<TruncatedState> =
            records::load_state(&storage, ShardId(3), StateTag::Truncated).expect("load");
        assert_eq!(stored, Some(truncated));
    }
}
