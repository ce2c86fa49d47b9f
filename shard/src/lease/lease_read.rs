//! Reads of the `leases` keyspace from a fjall snapshot, off the apply path: the meta shard's
//! records (a new leader rebuilds its expiry heap from them) and a data shard's keys of a
//! lease (`LeaseTimeToLive` with keys).

use crate::error::StorageError;
use crate::lease::lease_keys::{
    decode_grant, decode_lease_record, index_entry_key, index_prefix, record_prefix,
};
use crate::mvcc::MvccStore;
use crate::mvcc::codec::decode_key;
use atoll_proto::{LeaseRecord, LeaseRef};
use fjall::{Readable, Snapshot};

/// Every lease record of the meta shard as of `snap`, revoking ones included.
pub fn lease_records(store: &MvccStore, snap: &Snapshot) -> Result<Vec<LeaseRecord>, StorageError> {
    let mut out = Vec::new();
    for guard in snap.prefix(&store.storage().leases, record_prefix()) {
        let (_, value) = guard.into_inner()?;
        out.push(decode_lease_record(&value)?);
    }
    Ok(out)
}

/// The keys of `store`'s shard attached to `lease` as of `snap`, in key order.
pub fn keys_of_lease(
    store: &MvccStore,
    snap: &Snapshot,
    lease: LeaseRef,
) -> Result<Vec<Vec<u8>>, StorageError> {
    let mut out = Vec::new();
    for guard in snap.prefix(&store.storage().leases, index_prefix(lease.id)) {
        let (entry_key, grant) = guard.into_inner()?;
        let key = decode_key(index_entry_key(&entry_key))?;
        if store.key_range().contains(&key) && decode_grant(&grant)? <= lease.grant_index {
            out.push(key);
        }
    }
    Ok(out)
}
