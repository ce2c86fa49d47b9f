//! Apply of [`LeaseOp`]s on the meta shard: the lease records, changed only through its Raft
//! log, so every replica holds the same records and a new leader rebuilds its expiry heap
//! from them (followers keep none: etcd 3.4's follower leak, decision D16).

use crate::error::{ShardError, StorageError};
use crate::lease::lease_keys::{decode_lease_record, encode_lease_record, record_key};
use crate::lease::lease_writes::{LeaseView, LeaseWrites};
use atoll_proto::{AtollError, LeaseOp, LeaseOpResponse, LeaseRecord, LeaseRef};

/// Applies `op`, the entry at `index`, adding its writes to `writes`. Grants take `index` as
/// their identity: unique and the same on every replica.
pub(crate) fn apply_lease_op(
    view: &LeaseView<'_>,
    index: u64,
    op: &LeaseOp,
) -> Result<(LeaseOpResponse, LeaseWrites), ShardError> {
    let mut writes = LeaseWrites::new();
    let mut revoking = Vec::new();
    let record = match op {
        LeaseOp::Grant { id, ttl } => {
            if *id == 0 {
                let reason = "lease ID 0 means \"no lease\"; the server picks IDs".to_string();
                return Err(AtollError::Malformed { reason }.into());
            }
            if load(view, *id)?.is_some() {
                return Err(AtollError::LeaseExists.into());
            }
            let lease = LeaseRef { id: *id, grant_index: index };
            let record = LeaseRecord { lease, ttl: *ttl, remaining_ms: 0, revoking: false };
            put(&mut writes, &record)?;
            Some(record)
        }
        LeaseOp::Revoke { id, grant_index } => match load(view, *id)? {
            Some(mut record)
                if !record.revoking
                    && (*grant_index == 0 || record.lease.grant_index == *grant_index) =>
            {
                record.revoking = true;
                put(&mut writes, &record)?;
                Some(record)
            }
            // Already revoking: gone for clients, as etcd's revoke removes it at once.
            _ => return Err(AtollError::LeaseNotFound.into()),
        },
        LeaseOp::Revoked { lease } => {
            // Only the grant being revoked: a stale message never removes a later grant.
            if load(view, lease.id)?.is_some_and(|r| r.lease == *lease) {
                writes.insert(record_key(lease.id), None);
            }
            None
        }
        LeaseOp::RevokeBatch { leases } => {
            for lease in leases {
                // Read through this entry's writes: a lease named twice is marked once.
                match load_pending(view, &writes, lease.id)? {
                    Some(mut record) if !record.revoking && record.lease == *lease => {
                        record.revoking = true;
                        put(&mut writes, &record)?;
                        revoking.push(*lease);
                    }
                    // Revoked meanwhile, or a later grant of the ID: not this batch's.
                    _ => {}
                }
            }
            None
        }
        LeaseOp::RevokedBatch { leases } => {
            for lease in leases {
                if load_pending(view, &writes, lease.id)?.is_some_and(|r| r.lease == *lease) {
                    writes.insert(record_key(lease.id), None);
                }
            }
            None
        }
        LeaseOp::Checkpoint { remaining } => {
            for (id, remaining_ms) in remaining {
                if let Some(mut record) = load(view, *id)?.filter(|r| !r.revoking) {
                    record.remaining_ms = (*remaining_ms).max(0);
                    put(&mut writes, &record)?;
                }
            }
            None
        }
    };
    Ok((LeaseOpResponse { header: Default::default(), record, revoking }, writes))
}

fn load(view: &LeaseView<'_>, id: i64) -> Result<Option<LeaseRecord>, StorageError> {
    view.get(&record_key(id))?.map(|bytes| decode_lease_record(&bytes)).transpose()
}

/// The record of `id` as this entry left it so far: its own writes over `view`.
fn load_pending(
    view: &LeaseView<'_>,
    writes: &LeaseWrites,
    id: i64,
) -> Result<Option<LeaseRecord>, StorageError> {
    match writes.get(&record_key(id)) {
        Some(Some(bytes)) => decode_lease_record(bytes).map(Some),
        Some(None) => Ok(None),
        None => load(view, id),
    }
}

fn put(writes: &mut LeaseWrites, record: &LeaseRecord) -> Result<(), StorageError> {
    writes.insert(record_key(record.lease.id), Some(encode_lease_record(record)?));
    Ok(())
}
