//! One apply batch: the committed entries of one Raft Ready applied in order against one
//! snapshot, their writes kept in memory until the batch is committed in a single fjall batch
//! together with the final [`ApplyState`] (DESIGN §5: the applied index rides with the data).

use crate::auth::{apply_auth_op, is_auth_record};
use crate::error::{ShardError, StorageError};
use crate::lease::{LeaseView, LeaseWrites, apply_lease_op, check_not_revoked, revoke_leases_keys};
use crate::member::{apply_conf_context, apply_member_write};
use crate::mvcc::apply_state::{ApplyState, apply_state_key};
use crate::mvcc::codec::{
    ChangeKind, change_key, encode_change, encode_live, encode_tombstone, version_key_encoded,
};
use crate::mvcc::dir_counts::record_changes;
use crate::mvcc::store::{MvccStore, WriteResponse};
use crate::mvcc::validate::check_shape;
use crate::mvcc::view::{History, Overlay};
use crate::mvcc::write_txn::WriteTxn;
use crate::shard_map_record::apply_shard_map_write;
use crate::storage::records;
use atoll_proto::member::ConfChangeContext;
use atoll_proto::{
    AtollError, CompactionResponse, LeaseRef, RaftCommand, ResponseHeader, RevokeLeaseKeysResponse,
    ShardId, WriteOp,
};
use fjall::Snapshot;
use raft::eraftpb::ConfState;

/// Entries being applied and not yet committed.
pub(crate) struct ApplyBatch<'s> {
    store: &'s MvccStore,
    snap: Snapshot,
    /// Versions written by the entries applied so far.
    history: History,
    /// State before the batch.
    start: ApplyState,
    /// State after the entries applied so far.
    state: ApplyState,
    /// Writes to the `leases` keyspace by the entries applied so far (decision D16).
    leases: LeaseWrites,
    /// Raft's configuration after the last conf change applied so far, if any.
    conf_state: Option<ConfState>,
}

impl<'s> ApplyBatch<'s> {
    /// A batch starting from `state`. Apply is serial per shard, so a snapshot taken now
    /// holds every earlier entry.
    pub(crate) fn new(store: &'s MvccStore, state: ApplyState) -> Self {
        let snap = store.storage.db.snapshot();
        let leases = LeaseWrites::new();
        ApplyBatch {
            store,
            snap,
            history: History::new(),
            start: state,
            state,
            leases,
            conf_state: None,
        }
    }

    /// Applies the entry at `index`; see [`MvccStore::apply`] for the semantics.
    pub(crate) fn apply_entry(
        &mut self,
        index: u64,
        cmd: Option<&RaftCommand>,
    ) -> Result<Result<WriteResponse, AtollError>, StorageError> {
        if let Err(e) = self.advance_to(index) {
            return Ok(Err(e));
        }
        let Some(cmd) = cmd else {
            return Ok(Err(AtollError::Malformed {
                reason: format!("raft entry {index} carries no command"),
            }));
        };
        // Strictly increasing on every replica whatever the stamping leader's clock said
        // (decision D3).
        let new_revision = cmd.revision_stamp.max(self.state.revision.saturating_add(1));
        match self.execute(index, new_revision, &cmd.op) {
            Ok((response, overlay, lease_writes)) => {
                self.leases.extend(lease_writes);
                if !overlay.is_empty() {
                    for (encoded, version) in overlay {
                        self.history.entry(encoded).or_default().insert(new_revision, version);
                    }
                    self.state.revision = new_revision;
                }
                Ok(Ok(response))
            }
            Err(ShardError::Request(e)) => Ok(Err(e)),
            Err(ShardError::Storage(e)) => Err(e),
        }
    }

    /// Applies a conf change entry Raft accepted: the conf state rides with the applied index,
    /// and on the meta shard the member records change with it (decision D18).
    pub(crate) fn apply_conf_change(
        &mut self,
        index: u64,
        conf_state: &ConfState,
        context: Option<&ConfChangeContext>,
    ) -> Result<Result<WriteResponse, AtollError>, StorageError> {
        if let Err(e) = self.advance_to(index) {
            return Ok(Err(e));
        }
        self.conf_state = Some(conf_state.clone());
        if let Some(context) = context
            && self.store.shard == ShardId::META
        {
            let view = self.lease_view();
            let writes = apply_conf_context(&view, context)?;
            self.leases.extend(writes);
        }
        let header = ResponseHeader { revision: self.state.revision, ..Default::default() };
        Ok(Ok(WriteResponse::Membership(header)))
    }

    /// Moves the applied index to `index`, refusing an entry applied before.
    fn advance_to(&mut self, index: u64) -> Result<(), AtollError> {
        if index <= self.state.applied_index {
            let reason = format!(
                "raft entry {index} is at or below the applied index {}; it is not applied again",
                self.state.applied_index
            );
            return Err(AtollError::Malformed { reason });
        }
        self.state.applied_index = index;
        Ok(())
    }

    /// Whether the entries applied so far changed the auth store or a member record
    /// (decisions D18, D21).
    pub(crate) fn changed_records(&self) -> bool {
        self.leases.keys().any(|k| is_auth_record(k) || crate::member::is_member_record(k))
    }

    fn lease_view(&self) -> LeaseView<'_> {
        LeaseView { snap: &self.snap, leases: &self.store.storage.leases, pending: &self.leases }
    }

    fn execute(
        &mut self,
        index: u64,
        new_revision: i64,
        op: &WriteOp,
    ) -> Result<(WriteResponse, Overlay, LeaseWrites), ShardError> {
        check_shape(op, None)?;
        let shard = self.store.shard;
        let is_meta = shard == ShardId::META;
        let lease_view = self.lease_view();
        let (op, attachable): (&WriteOp, &[LeaseRef]) = match op {
            WriteOp::Lease(lease_op) if is_meta => {
                let (response, writes) = apply_lease_op(&lease_view, index, lease_op)?;
                return Ok((WriteResponse::Lease(response), Overlay::new(), writes));
            }
            // The meta shard's own records (decisions D18, D21, D23).
            WriteOp::Member(_) | WriteOp::ShardMap(_) | WriteOp::Auth(_) => {
                let writes = match op {
                    WriteOp::Member(write) if is_meta => apply_member_write(&lease_view, write)?,
                    WriteOp::ShardMap(write) if is_meta => {
                        apply_shard_map_write(&lease_view, write)?
                    }
                    WriteOp::Auth(auth_op) if is_meta => apply_auth_op(&lease_view, auth_op)?,
                    _ => {
                        let reason = format!("meta shard record write for a data shard ({shard})");
                        return Err(AtollError::Malformed { reason }.into());
                    }
                };
                let header = ResponseHeader { revision: self.state.revision, ..Default::default() };
                return Ok((WriteResponse::Membership(header), Overlay::new(), writes));
            }
            WriteOp::Leased(leased) if !is_meta => {
                check_not_revoked(&lease_view, shard, &leased.leases)?;
                (leased.op.as_ref(), &leased.leases)
            }
            WriteOp::Lease(_) | WriteOp::Leased(_) => {
                let reason = format!("lease command for the wrong kind of shard ({shard})");
                return Err(AtollError::Malformed { reason }.into());
            }
            op => (op, &[]),
        };
        let mut txn = WriteTxn {
            snap: &self.snap,
            mvcc: &self.store.storage.mvcc,
            shard,
            range: &self.store.range,
            base_revision: self.state.revision,
            compact_revision: self.state.compact_revision,
            new_revision,
            history: &self.history,
            overlay: Overlay::new(),
            leases: attachable,
            lease_writes: LeaseWrites::new(),
        };
        let response = match op {
            WriteOp::Put(req) => WriteResponse::Put(txn.put(req)?),
            WriteOp::DeleteRange(req) => WriteResponse::DeleteRange(txn.delete_range(req)?),
            WriteOp::Txn(req) => WriteResponse::Txn(txn.txn(req)?),
            WriteOp::RevokeLeaseKeys(req) if !is_meta => {
                revoke_keys(&mut txn, &lease_view, std::slice::from_ref(&req.lease))?
            }
            WriteOp::RevokeLeaseKeysBatch(req) if !is_meta => {
                revoke_keys(&mut txn, &lease_view, &req.leases)?
            }
            WriteOp::Close(req) => {
                // Raising the revision without a write: apply gives every later write a
                // revision above it (decision D3), which is what closing means (D13).
                self.state.revision = self.state.revision.max(req.revision);
                let header = ResponseHeader { revision: self.state.revision, ..Default::default() };
                let response = WriteResponse::Close(atoll_proto::CloseResponse { header });
                return Ok((response, Overlay::new(), LeaseWrites::new()));
            }
            WriteOp::Compact(req) => {
                let response = compact(&self.state, req.revision)?;
                self.state.compact_revision = req.revision;
                return Ok((response, Overlay::new(), LeaseWrites::new()));
            }
            WriteOp::Lease(_)
            | WriteOp::Leased(_)
            | WriteOp::RevokeLeaseKeys(_)
            | WriteOp::RevokeLeaseKeysBatch(_)
            | WriteOp::Member(_)
            | WriteOp::ShardMap(_)
            | WriteOp::Auth(_) => {
                let reason = format!("lease command not applicable on shard {shard}");
                return Err(AtollError::Malformed { reason }.into());
            }
        };
        Ok((response, txn.overlay, txn.lease_writes))
    }

    /// Commits every version, its change-log record and the final apply state in one fjall
    /// batch, and returns that state. The batch reaches the journal now and becomes durable
    /// with the log writer's next sync, which orders it before anything that depends on it
    /// (decision D2). A batch that changed nothing writes nothing. Returns the state and
    /// the versions written, for the watch hub.
    pub(crate) fn commit(self) -> Result<(ApplyState, History), StorageError> {
        if self.state == self.start {
            return Ok((self.state, self.history));
        }
        let storage = &self.store.storage;
        let mut batch = storage.db.batch();
        for (encoded, versions) in &self.history {
            for (revision, version) in versions {
                let (record, kind) = match version {
                    Some(kv) => (
                        encode_live(kv.create_revision, kv.version, kv.lease, &kv.value),
                        ChangeKind::Put,
                    ),
                    None => (encode_tombstone(), ChangeKind::Delete),
                };
                batch.insert(&storage.mvcc, version_key_encoded(encoded, *revision), record);
                batch.insert(&storage.changes, change_key(*revision, encoded), encode_change(kind));
            }
        }
        // A store that had applied nothing before this batch has had every change counted.
        let fresh_store = self.start.applied_index == 0;
        record_changes(
            &mut batch,
            &self.snap,
            &storage.raft_state,
            self.store.shard,
            &self.history,
            fresh_store,
        )?;
        for (key, value) in &self.leases {
            match value {
                Some(value) => batch.insert(&storage.leases, key.as_slice(), value.as_slice()),
                None => batch.remove(&storage.leases, key.as_slice()),
            }
        }
        if let Some(cs) = &self.conf_state {
            records::put_conf_state(storage, &mut batch, self.store.shard, cs)?;
        }
        batch.insert(&storage.raft_state, apply_state_key(self.store.shard), self.state.encode());
        batch.commit()?;
        Ok((self.state, self.history))
    }
}

/// etcd `store.Compact` / `updateCompactRev`: at or below the compacted revision is
/// `Compacted`, above the current one is `FutureRevision`; otherwise the compaction is
/// logical at apply (reads below it fail at once) and physical later in
/// [`MvccStore::compact_step`]. The header carries the current revision. etcd starts with a
/// compacted revision of -1 and so accepts `Compact(0)` once; here the zero state already
/// counts as compacted at 0.
fn compact(state: &ApplyState, revision: i64) -> Result<WriteResponse, AtollError> {
    if revision <= state.compact_revision {
        return Err(AtollError::Compacted { compact_revision: state.compact_revision });
    }
    if revision > state.revision {
        return Err(AtollError::FutureRevision { current_revision: state.revision });
    }
    let header = ResponseHeader { revision: state.revision, ..Default::default() };
    Ok(WriteResponse::Compact(CompactionResponse { header }))
}

/// Deletes the shard's keys of revoked `leases` through `txn` (decision D16, batched as D24);
/// the answer's revision is the deletes' (the shard's if nothing was deleted).
fn revoke_keys(
    txn: &mut WriteTxn<'_>,
    view: &LeaseView<'_>,
    leases: &[LeaseRef],
) -> Result<WriteResponse, ShardError> {
    let deleted = revoke_leases_keys(txn, view, txn.shard, leases)?;
    let revision = if txn.overlay.is_empty() { txn.base_revision } else { txn.new_revision };
    let header = ResponseHeader { revision, ..Default::default() };
    Ok(WriteResponse::RevokeLeaseKeys(RevokeLeaseKeysResponse { header, deleted }))
}
