//! [`MvccStore`]: one shard's MVCC store over the node's shared fjall keyspaces, with etcd v3
//! semantics. Apply runs on the replica's thread; reads run on snapshots taken by the caller
//! (off the actor thread, DESIGN §3).
//!
//! Nothing per key lives in memory and nothing is rebuilt at start-up: the store is the
//! keyspaces plus the apply state record (DESIGN §5).

use crate::error::{ShardError, StorageError};
use crate::mvcc::apply_batch::ApplyBatch;
use crate::mvcc::apply_state::{ApplyState, apply_state_key};
use crate::mvcc::codec::decode_key;
use crate::mvcc::dir_counts::{counted_prefix_of, load_count};
use crate::mvcc::mvcc_limits::MvccLimits;
use crate::mvcc::range::{CountSource, Counting, evaluate_range};
use crate::mvcc::shard_range::ShardRange;
use crate::mvcc::validate::validate_range;
use crate::mvcc::view::History;
use crate::mvcc::view::View;
use crate::mvcc::write_txn::read_revision;
use crate::storage::Storage;
use crate::watch::WatchHub;
use crate::watch::watch_hub::PublishedChange;
use atoll_proto::member::ConfChangeContext;
use atoll_proto::{
    AtollError, CompactionResponse, DeleteRangeResponse, PutResponse, RaftCommand, RangeRequest,
    RangeResponse, ResponseHeader, ShardId, TxnResponse,
};
use atoll_proto::{Event, EventType, KeyValue};
use fjall::{Readable, Snapshot};
use raft::eraftpb::ConfState;

/// The answer to an applied write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteResponse {
    /// Answer to a Put.
    Put(PutResponse),
    /// Answer to a DeleteRange.
    DeleteRange(DeleteRangeResponse),
    /// Answer to a Txn.
    Txn(TxnResponse),
    /// Answer to a Compact.
    Compact(CompactionResponse),
    /// Answer to a Close.
    Close(atoll_proto::CloseResponse),
    /// Answer to a lease change on the meta shard.
    Lease(atoll_proto::LeaseOpResponse),
    /// Answer to a data shard's deletion of a revoked lease's keys.
    RevokeLeaseKeys(atoll_proto::RevokeLeaseKeysResponse),
    /// Answer to a conf change or a member write (decision D18).
    Membership(ResponseHeader),
}

/// A committed entry as apply sees it.
#[derive(Clone, Copy, Debug)]
pub enum Applying<'c> {
    /// A write.
    Command(&'c RaftCommand),
    /// A conf change Raft accepted: the configuration after it and why it was proposed.
    ConfChange(&'c ConfState, Option<&'c ConfChangeContext>),
    /// An empty entry, a conf change Raft refused, or a command that does not decode: only
    /// the applied index moves.
    Nothing,
}

/// One shard's MVCC store. Cheap to clone: a storage handle, the shard id, its range and its
/// watch hub (clones share one hub, so apply publishes to the watchers every clone serves).
#[derive(Clone)]
pub struct MvccStore {
    pub(super) storage: Storage,
    pub(super) shard: ShardId,
    pub(super) range: ShardRange,
    pub(super) hub: WatchHub,
    /// Bumped after every committed batch that changed the auth store or a member record
    /// (meta shard; decisions D18, D21), so the node reloads its copies only then.
    pub(crate) records_generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MvccStore {
    /// The store of `shard`, owning the keys of `range`, over the node's `storage`.
    pub fn new(storage: Storage, shard: ShardId, range: ShardRange) -> MvccStore {
        MvccStore {
            storage,
            shard,
            range,
            hub: WatchHub::default(),
            records_generation: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    /// The shard's watch hub: apply publishes every committed batch to it.
    pub fn watch_hub(&self) -> &WatchHub {
        &self.hub
    }

    /// Changes with every committed change of the auth store or of a member record
    /// (decisions D18, D21): a reader's copy taken at an older generation is stale.
    pub fn records_generation(&self) -> u64 {
        self.records_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The shard this store belongs to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The key range this store serves.
    pub fn key_range(&self) -> &ShardRange {
        &self.range
    }

    /// The node storage the store works on (the replica keeps its Raft log there too).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Reads the persisted apply state; the zero state if the shard never applied anything.
    /// Stored in `raft_state` under `shard_id (u64 BE) ‖ b'a'`.
    pub fn load_apply_state(&self) -> Result<ApplyState, StorageError> {
        match self.storage.raft_state.get(apply_state_key(self.shard))? {
            Some(bytes) => ApplyState::decode(&bytes),
            None => Ok(ApplyState::default()),
        }
    }

    /// Reads the apply state as of `snap`.
    pub fn apply_state_at(&self, snap: &Snapshot) -> Result<ApplyState, StorageError> {
        match snap.get(&self.storage.raft_state, apply_state_key(self.shard))? {
            Some(bytes) => ApplyState::decode(&bytes),
            None => Ok(ApplyState::default()),
        }
    }

    /// Applies the committed entry at log `index`: one fjall batch holds its data changes,
    /// their change-log records and the new apply state, so the applied index never moves
    /// without the data nor the data without it (DESIGN §5).
    ///
    /// The write's revision is `max(cmd.revision_stamp, state.revision + 1)`; a command that
    /// changes nothing (a read-only Txn, a delete of nothing, a failed request) leaves the
    /// revision alone, as etcd does. An inner `Err` is the request's answer (e.g. `KeyNotFound`
    /// for `ignore_value` on a missing key); the applied index advances all the same. The
    /// outer `Err` is a storage failure, fatal for the node; `state` is then unchanged.
    ///
    /// An `index` at or below `state.applied_index` is refused with an inner `Malformed`
    /// error, writing nothing: an entry is never applied twice.
    ///
    /// `limits` are not consulted: the outcome of a committed entry must not depend on
    /// per-node configuration, so op counts and sizes are checked only by
    /// [`crate::mvcc::validate_write`] before proposing. Apply re-runs the checks that do
    /// not depend on configuration (empty keys, overlapping writes, nesting depth).
    pub fn apply(
        &self,
        state: &mut ApplyState,
        index: u64,
        cmd: &RaftCommand,
        limits: &MvccLimits,
    ) -> Result<Result<WriteResponse, AtollError>, StorageError> {
        let mut answers = self.apply_all(state, [(index, Applying::Command(cmd))], limits)?;
        Ok(answers.pop().unwrap_or_else(|| Err(no_answer())))
    }

    /// Applies the committed entries of one Raft Ready in order, in ONE fjall batch with the
    /// final apply state (decision D1: the journal-lock wait is paid once per Ready). Each
    /// entry sees the writes of the entries before it. An entry without a command (an empty
    /// entry, a conf change, an undecodable command) only advances the applied index and
    /// answers `Malformed`. Returns one answer per entry, with [`MvccStore::apply`]'s
    /// semantics for each.
    pub fn apply_entries(
        &self,
        state: &mut ApplyState,
        entries: &[(u64, Option<RaftCommand>)],
        limits: &MvccLimits,
    ) -> Result<Vec<Result<WriteResponse, AtollError>>, StorageError> {
        let entries = entries
            .iter()
            .map(|(i, c)| (*i, c.as_ref().map_or(Applying::Nothing, Applying::Command)));
        self.apply_all(state, entries, limits)
    }

    /// [`MvccStore::apply_entries`] for entries that may include conf changes, as the apply
    /// worker sees them.
    pub fn apply_committed(
        &self,
        state: &mut ApplyState,
        entries: &[(u64, Applying<'_>)],
        limits: &MvccLimits,
    ) -> Result<Vec<Result<WriteResponse, AtollError>>, StorageError> {
        self.apply_all(state, entries.iter().copied(), limits)
    }

    /// Advances the applied index alone (empty entries, configuration changes). An `index`
    /// at or below the applied index is a no-op.
    pub fn apply_noop(&self, state: &mut ApplyState, index: u64) -> Result<(), StorageError> {
        self.apply_all(state, [(index, Applying::Nothing)], &MvccLimits::default())?;
        Ok(())
    }

    fn apply_all<'c>(
        &self,
        state: &mut ApplyState,
        entries: impl IntoIterator<Item = (u64, Applying<'c>)>,
        _limits: &MvccLimits,
    ) -> Result<Vec<Result<WriteResponse, AtollError>>, StorageError> {
        let mut batch = ApplyBatch::new(self, *state);
        let mut answers = Vec::new();
        for (index, cmd) in entries {
            answers.push(match cmd {
                Applying::ConfChange(conf_state, context) => {
                    batch.apply_conf_change(index, conf_state, context)?
                }
                Applying::Command(cmd) => batch.apply_entry(index, Some(cmd))?,
                Applying::Nothing => batch.apply_entry(index, None)?,
            });
        }
        // Nothing is written before this commit; `state` moves only once it succeeded.
        let records_changed = batch.changed_records();
        let (new_state, history) = batch.commit()?;
        *state = new_state;
        if records_changed {
            // After the commit: a reader that sees the new generation finds the new record.
            self.records_generation.fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        // Published only once the batch is in the database, so a watcher that reads storage
        // after seeing this revision finds everything up to it (watch/mod.rs).
        self.hub.publish(new_state.revision, || published_changes(&history));
        Ok(answers)
    }

    /// Serves a Range from `snap`, reading the current and compacted revisions from the same
    /// snapshot. The header carries the store's current revision, not the revision read
    /// (as etcd).
    pub fn range(&self, snap: &Snapshot, req: &RangeRequest) -> Result<RangeResponse, ShardError> {
        let state = self.apply_state_at(snap)?;
        self.range_in_state(snap, &state, req, Counting::Exact)
    }

    /// [`MvccStore::range`] for a caller that read the apply state from `snap` already;
    /// `counting` says whether the answer's `count` must be exact.
    pub fn range_in_state(
        &self,
        snap: &Snapshot,
        state: &ApplyState,
        req: &RangeRequest,
        counting: Counting,
    ) -> Result<RangeResponse, ShardError> {
        validate_range(req)?;
        let revision = read_revision(req.revision, state.revision, state.compact_revision)?;
        let view = View {
            snap,
            mvcc: &self.storage.mvcc,
            shard: &self.range,
            history: None,
            pending: None,
        };
        // At the current revision, a range that is exactly a counted prefix takes its count
        // from the directory counts (decision D8); history is counted by its scan.
        let known_count = match counted_prefix_of(&req.key, &req.range_end) {
            Some(prefix) if revision == state.revision && counting == Counting::Exact => {
                load_count(snap, &self.storage.raft_state, self.shard, &prefix)?
            }
            _ => None,
        };
        let count = match (counting, known_count) {
            (Counting::Skip, _) => CountSource::Skipped,
            (Counting::Exact, Some(n)) => CountSource::Known(n),
            (Counting::Exact, None) => CountSource::Scan,
        };
        let mut resp = evaluate_range(&view, req, revision, false, count)?;
        resp.header = ResponseHeader { revision: state.revision, ..Default::default() };
        Ok(resp)
    }
}

/// The changes of an apply batch in the order watchers receive them: by revision, then key
/// (the change log's order, so history and live events agree).
fn published_changes(history: &History) -> Vec<PublishedChange> {
    let mut changes: Vec<(i64, &[u8], &Option<KeyValue>)> = history
        .iter()
        .flat_map(|(encoded, versions)| {
            versions.iter().map(move |(revision, v)| (*revision, encoded.as_slice(), v))
        })
        .collect();
    changes.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    changes
        .into_iter()
        .filter_map(|(revision, encoded, version)| {
            let event = match version {
                Some(kv) => Event { kind: EventType::Put, kv: kv.clone(), prev_kv: None },
                None => match decode_key(encoded) {
                    Ok(key) => Event {
                        kind: EventType::Delete,
                        kv: KeyValue { key, mod_revision: revision, ..Default::default() },
                        prev_kv: None,
                    },
                    Err(e) => {
                        // Apply encoded this key moments ago; this cannot fail short of a bug.
                        tracing::error!(error = %e, "deleted key does not decode; event dropped");
                        return None;
                    }
                },
            };
            Some(PublishedChange { revision, event })
        })
        .collect()
}

fn no_answer() -> AtollError {
    AtollError::Malformed { reason: "apply produced no answer".into() }
}
