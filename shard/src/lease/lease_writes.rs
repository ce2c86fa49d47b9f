//! The `leases` keyspace as apply sees it: a fjall snapshot under the writes of the apply
//! batch not committed yet, which the batch commits together with the data and the applied
//! index (DESIGN §5, decision D2).

use crate::error::StorageError;
use fjall::{Keyspace, Readable, Snapshot};
use std::collections::BTreeMap;

/// Pending writes to `leases`: `Some` a new value, `None` a delete.
pub(crate) type LeaseWrites = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Entries of `leases` read under a prefix: (key, value) in key order.
pub(crate) type LeaseEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// A read view of `leases`: `snap` under `pending`.
pub(crate) struct LeaseView<'a> {
    /// State before the batch.
    pub snap: &'a Snapshot,
    /// The `leases` keyspace.
    pub leases: &'a Keyspace,
    /// Writes of the batch so far.
    pub pending: &'a LeaseWrites,
}

impl LeaseView<'_> {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(pending) = self.pending.get(key) {
            return Ok(pending.clone());
        }
        Ok(self.snap.get(self.leases, key)?.map(|v| v.to_vec()))
    }

    /// Every entry under `prefix`, in key order.
    pub(crate) fn prefix(&self, prefix: &[u8]) -> Result<LeaseEntries, StorageError> {
        let mut found: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for guard in self.snap.prefix(self.leases, prefix) {
            let (k, v) = guard.into_inner()?;
            found.insert(k.to_vec(), v.to_vec());
        }
        let pending =
            self.pending.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix));
        for (k, v) in pending {
            match v {
                Some(v) => found.insert(k.clone(), v.clone()),
                None => found.remove(k),
            };
        }
        Ok(found.into_iter().collect())
    }
}
