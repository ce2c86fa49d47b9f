//! The Raft log of one replica as raft-rs sees it ([`raft::Storage`]): hard state, conf state,
//! entries. Entries are visible here as soon as the replica hands them to the log writer
//! (raft-rs requires that before `advance_append_async`); they become durable when the log
//! writer reports `Persisted`. A bounded cache of recent entries keeps Raft from reading its
//! own tail back from disk.

use crate::error::StorageError;
use crate::limits::ENTRY_CACHE_ENTRIES_MAX;
use crate::snapshot::GeneratedSnapshot;
use crate::storage::Storage;
use crate::storage::records::{self, StateTag};
use atoll_proto::ShardId;
use atoll_proto::member::ConfChangeContext;
use atoll_proto::shard_map::{Member, ShardMap};
use atoll_proto::{NodeId, frame};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState,
    Snapshot,
};
use raft::{GetEntriesContext, RaftState, StorageError as RaftStorageError};
use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;

/// Where the log was last truncated: entries up to `index` are gone, `term` is kept for the
/// log-matching check of the next entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TruncatedState {
    /// Last removed index.
    pub index: u64,
    /// Term of that entry.
    pub term: u64,
}

/// One replica's view of its Raft log.
pub struct RaftLogStore {
    storage: Storage,
    shard: ShardId,
    hard_state: HardState,
    conf_state: ConfState,
    truncated: TruncatedState,
    last_index: u64,
    /// Highest index known durable; the cache never evicts past it.
    persisted_index: u64,
    /// Contiguous recent entries ending at `last_index`.
    cache: VecDeque<Entry>,
    /// The newest snapshot generated for this shard (leader side), offered to Raft.
    snapshot: Option<Arc<GeneratedSnapshot>>,
    /// Raft asked for a snapshot this store could not give: the replica should generate
    /// one. A `Cell` because raft-rs asks through `&self`.
    snapshot_wanted: Cell<bool>,
}

impl RaftLogStore {
    /// Loads the log of `shard`. A shard seen for the first time starts empty with
    /// `initial_conf` (its bootstrap voters), which is persisted by the caller's first write.
    pub fn open(
        storage: Storage,
        shard: ShardId,
        initial_conf: ConfState,
    ) -> Result<RaftLogStore, StorageError> {
        let hard_state = records::load_hard_state(&storage, shard)?.unwrap_or_default();
        let conf_state = records::load_conf_state(&storage, shard)?.unwrap_or(initial_conf);
        let truncated: TruncatedState =
            records::load_state(&storage, shard, StateTag::Truncated)?.unwrap_or_default();
        let last_index = records::last_log_index(&storage, shard)?.unwrap_or(truncated.index);
        Ok(RaftLogStore {
            storage,
            shard,
            hard_state,
            conf_state,
            truncated,
            last_index,
            persisted_index: last_index,
            cache: VecDeque::new(),
            snapshot: None,
            snapshot_wanted: Cell::new(false),
        })
    }

    /// The shard this log belongs to.
    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// The current hard state (possibly not yet durable).
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The current conf state.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// Last index in the log.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// First index still in the log.
    pub fn first_index(&self) -> u64 {
        self.truncated.index + 1
    }

    /// Records a new hard state; the caller persists it through the log writer.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    /// Records a new conf state (applied conf change); persisted with the apply batch.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Appends entries handed to the log writer. Entries at or below the current last index
    /// replace the conflicting suffix (Raft §5.3). Returns the first index whose disk record
    /// must be deleted because the log got shorter, if any.
    pub fn append(&mut self, entries: &[Entry]) -> Option<(u64, u64)> {
        let first = entries.first()?;
        let new_last = first.index + entries.len() as u64 - 1;
        let stale = (new_last < self.last_index).then_some((new_last + 1, self.last_index));
        while self.cache.back().is_some_and(|e| e.index >= first.index) {
            self.cache.pop_back();
        }
        if self.cache.back().is_some_and(|e| e.index + 1 != first.index) {
            self.cache.clear();
        }
        self.cache.extend(entries.iter().cloned());
        self.last_index = new_last;
        self.persisted_index = self.persisted_index.min(first.index.saturating_sub(1));
        self.evict();
        stale
    }

    /// Notes that every entry up to `index` is durable, so the cache may evict it.
    pub fn on_persisted(&mut self, index: u64) {
        self.persisted_index = self.persisted_index.max(index.min(self.last_index));
        self.evict();
    }

    /// Forgets entries up to `index` after the caller deleted them from disk.
    pub fn on_truncated(&mut self, truncated: TruncatedState) {
        self.truncated = truncated;
        while self.cache.front().is_some_and(|e| e.index <= truncated.index) {
            self.cache.pop_front();
        }
    }

    /// The log after a snapshot at `index`/`term` was restored: empty, continuing after
    /// `index`, with the snapshot's membership. Visible to Raft at once (raft-rs reads the
    /// first index and the term of `index` back right after the Ready); made durable by the
    /// install, which writes the same truncated and conf state.
    pub fn restore_snapshot(&mut self, index: u64, term: u64, conf_state: ConfState) {
        self.truncated = TruncatedState { index, term };
        self.last_index = index;
        self.persisted_index = index;
        self.cache.clear();
        self.conf_state = conf_state;
    }

    /// Offers `snapshot` to Raft from now on (it replaces an older one, whose file goes
    /// once no transfer streams it).
    pub fn set_snapshot(&mut self, snapshot: Arc<GeneratedSnapshot>) {
        self.snapshot = Some(snapshot);
    }

    /// The snapshot offered to Raft, if any.
    pub fn generated_snapshot(&self) -> Option<&Arc<GeneratedSnapshot>> {
        self.snapshot.as_ref()
    }

    /// Whether Raft asked for a snapshot since the last call.
    pub fn take_snapshot_wanted(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }

    fn evict(&mut self) {
        while self.cache.len() > ENTRY_CACHE_ENTRIES_MAX
            && self.cache.front().is_some_and(|e| e.index <= self.persisted_index)
        {
            self.cache.pop_front();
        }
    }

    fn cached(&self, index: u64) -> Option<&Entry> {
        let front = self.cache.front()?.index;
        let pos = usize::try_from(index.checked_sub(front)?).ok()?;
        self.cache.get(pos)
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        if let Some(e) = self.cached(index) {
            return Ok(e.clone());
        }
        records::load_entry(&self.storage, self.shard, index)
            .map_err(|e| raft::Error::Store(RaftStorageError::Other(Box::new(e))))?
            .ok_or(raft::Error::Store(RaftStorageError::Unavailable))
    }
}

impl raft::Storage for RaftLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.hard_state.clone(), self.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        let max_bytes = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let mut size = 0u64;
        for index in low..high {
            let e = self.read_entry(index)?;
            size += (e.data.len() + e.context.len()) as u64 + 16;
            // raft-rs contract: at least one entry even when it alone exceeds max_size.
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(e);
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.index {
            return Ok(self.truncated.term);
        }
        if idx < self.truncated.index {
            return Err(raft::Error::Store(RaftStorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(RaftStorageError::Unavailable));
        }
        Ok(self.read_entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // raft-rs asks when a follower needs entries this log no longer has. A generated
        // snapshot serves if it is recent enough for the follower, the log still holds
        // every entry after it (otherwise the follower would need another one at once), and
        // its membership has the follower: raft-rs refuses to restore a snapshot whose conf
        // state leaves it out, so one generated before a replica joined would be sent to it
        // again and again. Otherwise the replica generates one and Raft asks again on a
        // later heartbeat.
        match &self.snapshot {
            Some(g)
                if g.meta.index >= request_index
                    && g.meta.index >= self.truncated.index
                    && g.meta.conf_state.includes(to) =>
            {
                let mut snapshot = Snapshot::default();
                let meta = snapshot.mut_metadata();
                meta.index = g.meta.index;
                meta.term = g.meta.term;
                meta.set_conf_state(g.meta.raft_conf_state());
                // The state itself is streamed from the file (decision D20), never in `data`.
                Ok(snapshot)
            }
            _ => {
                self.snapshot_wanted.set(true);
                Err(raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

/// Returns the shard's conf state. The first time the shard is created on this node, writes
/// its bootstrap (decision D18), as etcd does for `--initial-cluster`: one conf change entry
/// per initial voter, in ID order, at term 1 and committed, each carrying the voter's member
/// record for the meta shard. Every bootstrapping node writes the same entries, and Raft's
/// configuration comes from applying them like any later change, so a node that joins later
/// learns the initial voters by replaying them (or from a snapshot). A joining node, with no
/// `voters`, starts with an empty log and configuration and waits for the leader.
///
/// The meta shard's log goes on with one more committed entry at term 1 when `shard_map` is
/// given: the initial shard map (decision D23), so the map is in the meta shard's applied
/// state on every member, the same bytes on each, and a node joining later gets it from the
/// same log or a snapshot.
pub fn bootstrap_shard(
    storage: &Storage,
    shard: ShardId,
    voters: &[u64],
    members: &[Member],
    shard_map: Option<&ShardMap>,
) -> Result<ConfState, StorageError> {
    if let Some(cs) = records::load_conf_state(storage, shard)? {
        return Ok(cs);
    }
    let mut voters = voters.to_vec();
    voters.sort_unstable();
    voters.dedup();
    let mut batch = storage.db.batch();
    // The empty configuration marks the shard as created here; apply replaces it.
    let cs = ConfState::default();
    records::put_conf_state(storage, &mut batch, shard, &cs)?;
    let mut entries = Vec::with_capacity(voters.len() + 1);
    for (i, &id) in voters.iter().enumerate() {
        entries.push(bootstrap_entry(i as u64 + 1, id, members)?);
    }
    // Only with voters: a joining node gets the map from the leader's log like the rest.
    if let Some(map) = shard_map.filter(|_| shard == ShardId::META && !voters.is_empty()) {
        let index = entries.len() as u64 + 1;
        entries.push(crate::shard_map_record::bootstrap_entry(index, BOOTSTRAP_TERM, map)?);
    }
    for e in &entries {
        batch.insert(
            &storage.raft_log,
            records::log_key(shard, e.index),
            records::encode_entry(e)?,
        );
    }
    if let Some(commit) = u64::try_from(entries.len()).ok().filter(|n| *n > 0) {
        let hs = HardState { term: BOOTSTRAP_TERM, commit, ..HardState::default() };
        records::put_hard_state(storage, &mut batch, shard, &hs)?;
    }
    batch.commit()?;
    // Durable before the replica starts: a restart must find the same bootstrap.
    storage.sync()?;
    Ok(cs)
}

/// A conf change of `changes`: one is a simple change, several enter joint consensus and
/// leave it automatically (raft-rs's `ConfChangeTransition::Auto`).
pub(crate) fn conf_change_v2(
    changes: impl IntoIterator<Item = (NodeId, ConfChangeType)>,
) -> ConfChangeV2 {
    let singles = changes.into_iter().map(|(node, ty)| {
        let mut single = ConfChangeSingle { node_id: node.0, ..ConfChangeSingle::default() };
        single.set_change_type(ty);
        single
    });
    let mut cc = ConfChangeV2::default();
    cc.set_changes(singles.collect());
    cc
}

/// Term of the bootstrap entries.
const BOOTSTRAP_TERM: u64 = 1;

fn bootstrap_entry(index: u64, voter: u64, members: &[Member]) -> Result<Entry, StorageError> {
    let member = members
        .iter()
        .find(|m| m.id.0 == voter)
        .cloned()
        .unwrap_or_else(|| Member { id: NodeId(voter), ..Member::default() });
    let context = ConfChangeContext::Bootstrap { members: vec![member] };
    let bad = |detail: String| StorageError::BadRecord { what: "bootstrap entry", detail };
    let cc = conf_change_v2([(NodeId(voter), ConfChangeType::AddNode)]);
    let mut e = Entry { index, term: BOOTSTRAP_TERM, ..Entry::default() };
    e.set_entry_type(EntryType::EntryConfChangeV2);
    e.data = cc.write_to_bytes().map_err(|err| bad(err.to_string()))?.into();
    e.context = frame::encode_frame(&context).map_err(|err| bad(err.to_string()))?.into();
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotMeta;
    use raft::Storage as _;

    /// A generated snapshot at `index` of the membership `conf`, backed by a file in `dir`.
    fn generated(dir: &std::path::Path, index: u64, conf: &ConfState) -> Arc<GeneratedSnapshot> {
        let path = dir.join(format!("{index}.snap"));
        std::fs::write(&path, b"state").expect("snapshot file");
        let meta = SnapshotMeta {
            shard: 1,
            index,
            term: 2,
            conf_state: conf.into(),
            range_start: Vec::new(),
            range_end: Vec::new(),
        };
        Arc::new(GeneratedSnapshot { path, meta, bytes: 5 })
    }

    fn must_unavailable(result: raft::Result<Snapshot>) {
        match result {
            Err(raft::Error::Store(RaftStorageError::SnapshotTemporarilyUnavailable)) => {}
            other => panic!("expected a snapshot to be generated, got {other:?}"),
        }
    }

    #[test]
    fn a_snapshot_is_offered_only_to_a_replica_in_its_membership() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(&dir.path().join("db"), 8 << 20).expect("storage");
        let voters = ConfState { voters: vec![1, 2, 3], ..Default::default() };
        let mut log = RaftLogStore::open(storage, ShardId(1), voters.clone()).expect("log");
        must_unavailable(log.snapshot(0, 2));
        assert!(log.take_snapshot_wanted(), "none generated yet: the replica generates one");

        // Generated for a lagging voter before a learner joined.
        log.set_snapshot(generated(dir.path(), 10, &voters));
        let offered = log.snapshot(0, 2).expect("a voter of the snapshot gets it");
        assert_eq!(offered.get_metadata().index, 10);
        assert_eq!(offered.get_metadata().get_conf_state().voters, vec![1, 2, 3]);
        assert!(!log.take_snapshot_wanted());

        // The learner (node 4) would refuse to restore it: a new one is asked for instead.
        must_unavailable(log.snapshot(0, 4));
        assert!(log.take_snapshot_wanted());
        let with_learner = ConfState { voters: vec![1, 2, 3], learners: vec![4], ..voters };
        log.set_snapshot(generated(dir.path(), 12, &with_learner));
        assert_eq!(log.snapshot(0, 4).expect("the learner's snapshot").get_metadata().index, 12);
        assert!(!log.take_snapshot_wanted());
    }
}
