//! Apply of lease commands on a data shard (decision D16): refusing writes that attach a
//! revoked grant, and deleting the keys of a revoked lease in one entry, at one revision.

use crate::error::{ShardError, StorageError};
use crate::lease::lease_keys::{
    decode_grant, encode_grant, index_entry_key, index_prefix, revoked_key,
};
use crate::lease::lease_writes::LeaseView;
use crate::mvcc::codec::decode_key;
use crate::mvcc::write_txn::WriteTxn;
use atoll_proto::{AtollError, DeleteRangeRequest, LeaseRef, ShardId};

/// Refuses a write attaching a grant this shard has revoked: the attach was checked at the
/// meta shard's leader before the revocation reached this shard, so its key would outlive the
/// lease. A later grant of the same ID (a higher grant index) is another lease and passes.
pub(crate) fn check_not_revoked(
    view: &LeaseView<'_>,
    shard: ShardId,
    leases: &[LeaseRef],
) -> Result<(), ShardError> {
    for lease in leases {
        if revoked_grant(view, shard, lease.id)?.is_some_and(|g| g >= lease.grant_index) {
            return Err(AtollError::LeaseNotFound.into());
        }
    }
    Ok(())
}

fn revoked_grant(
    view: &LeaseView<'_>,
    shard: ShardId,
    lease: i64,
) -> Result<Option<u64>, StorageError> {
    view.get(&revoked_key(shard, lease))?.map(|bytes| decode_grant(&bytes)).transpose()
}

/// Deletes every key of the shard attached to `lease` (at or before its grant) through
/// `txn`, so they share the command's revision, and records the revocation so later
/// attaches of that grant are refused. Repeating it finds nothing more to delete.
pub(crate) fn revoke_lease_keys(
    txn: &mut WriteTxn<'_>,
    view: &LeaseView<'_>,
    shard: ShardId,
    lease: LeaseRef,
) -> Result<i64, ShardError> {
    let mut deleted = 0;
    for (entry_key, grant) in view.prefix(&index_prefix(lease.id))? {
        let encoded = index_entry_key(&entry_key);
        let key = decode_key(encoded)?;
        // The index is shared by the node's shards: another shard's keys are not ours.
        if !txn.range.contains(&key) || decode_grant(&grant)? > lease.grant_index {
            continue;
        }
        let req = DeleteRangeRequest { key, ..Default::default() };
        deleted += txn.delete_range(&req)?.deleted;
        // A key the index names but that no longer carries the lease leaves no entry.
        txn.lease_writes.insert(entry_key, None);
    }
    // The marker as this entry left it (a batch may name two grants of one ID), else as
    // stored: it only ever rises.
    let marker = revoked_key(shard, lease.id);
    let before = match txn.lease_writes.get(&marker) {
        Some(Some(bytes)) => Some(decode_grant(bytes)?),
        _ => revoked_grant(view, shard, lease.id)?,
    };
    let newest = before.unwrap_or(0).max(lease.grant_index);
    txn.lease_writes.insert(marker, Some(encode_grant(newest)));
    Ok(deleted)
}

/// [`revoke_lease_keys`] of every lease of `leases` through one `txn`: one entry, one
/// revision for all their keys (decision D24).
pub(crate) fn revoke_leases_keys(
    txn: &mut WriteTxn<'_>,
    view: &LeaseView<'_>,
    shard: ShardId,
    leases: &[LeaseRef],
) -> Result<i64, ShardError> {
    let mut deleted = 0;
    for lease in leases {
        deleted += revoke_lease_keys(txn, view, shard, *lease)?;
    }
    Ok(deleted)
}
