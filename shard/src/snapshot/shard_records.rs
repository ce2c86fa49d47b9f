//! Which records of the node's shared keyspaces are one shard's state (DESIGN §5: keyspaces
//! are shared by every shard, and MVCC data is keyed by user key, so a shard's data is its
//! key range). Generation streams exactly these records; install deletes exactly these before
//! it writes the snapshot's, so the two can never disagree about what a shard owns.

use crate::error::StorageError;
use crate::lease::lease_keys;
use crate::mvcc::MvccStore;
use crate::mvcc::codec::{decode_key, split_change_key};
use crate::storage::records::StateTag;
use atoll_proto::ShardId;
use fjall::{Keyspace, Readable, Snapshot};

/// The keyspace a snapshot record belongs to (its tag in the snapshot file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordSpace {
    /// `raft_state`: the shard's apply state, compaction cursor and hash, directory counts.
    RaftState = 1,
    /// `mvcc`: every version of every key in the shard's range.
    Mvcc = 2,
    /// `changes`: the change-log records of keys in the shard's range.
    Changes = 3,
    /// `leases`: lease records (meta shard), lease index entries and revoked markers.
    Leases = 4,
}

impl RecordSpace {
    /// Every keyspace, in the order a snapshot holds them.
    pub const ALL: [RecordSpace; 4] =
        [RecordSpace::RaftState, RecordSpace::Mvcc, RecordSpace::Changes, RecordSpace::Leases];

    /// The tag read back from a snapshot file.
    pub fn from_tag(tag: u8) -> Option<RecordSpace> {
        RecordSpace::ALL.into_iter().find(|s| *s as u8 == tag)
    }

    /// The keyspace of the node's storage.
    pub fn keyspace(self, store: &MvccStore) -> &Keyspace {
        let storage = store.storage();
        match self {
            RecordSpace::RaftState => &storage.raft_state,
            RecordSpace::Mvcc => &storage.mvcc,
            RecordSpace::Changes => &storage.changes,
            RecordSpace::Leases => &storage.leases,
        }
    }
}

/// Whether a record of `space` with `key` is part of the shard's state: the test install
/// applies to every record it deletes and to every record a snapshot brings.
pub fn owns(store: &MvccStore, space: RecordSpace, key: &[u8]) -> Result<bool, StorageError> {
    let shard = store.shard();
    let in_range = |encoded: &[u8]| -> Result<bool, StorageError> {
        Ok(store.key_range().contains(&decode_key(encoded)?))
    };
    match space {
        RecordSpace::RaftState => {
            Ok(key.len() > 8 && key[..8] == shard.0.to_be_bytes() && !is_raft_owned(key[8]))
        }
        RecordSpace::Mvcc => {
            let (encoded, _) = crate::mvcc::codec::split_version_key(key)?;
            in_range(encoded)
        }
        RecordSpace::Changes => in_range(split_change_key(key)?.1),
        RecordSpace::Leases => lease_owned(shard, key, in_range),
    }
}

/// Raft's own records (hard state, conf state, truncation) are not part of the state
/// machine: install writes them from the snapshot's metadata instead.
fn is_raft_owned(tag: u8) -> bool {
    [StateTag::HardState, StateTag::ConfState, StateTag::Truncated].iter().any(|t| *t as u8 == tag)
}

fn lease_owned(
    shard: ShardId,
    key: &[u8],
    in_range: impl Fn(&[u8]) -> Result<bool, StorageError>,
) -> Result<bool, StorageError> {
    if key.starts_with(&lease_keys::record_prefix())
        || crate::member::is_member_record(key)
        || crate::shard_map_record::is_shard_map_record(key)
        || crate::auth::is_auth_record(key)
    {
        // Lease, member, shard map and auth records belong to the meta shard alone
        // (decisions D16, D18, D21, D23).
        return Ok(shard == ShardId::META);
    }
    if key.starts_with(&lease_keys::revoked_shard_prefix(shard)) {
        return Ok(true);
    }
    if lease_keys::is_index_key(key) {
        return in_range(lease_keys::index_entry_key(key));
    }
    Ok(false)
}

/// Calls `f` with every record of the shard in `snap`, keyspace by keyspace in
/// [`RecordSpace::ALL`] order, keys ascending within each. The change log and the lease
/// index are shared by every shard and ordered by revision or lease first, so they are read
/// whole and filtered; the MVCC data is read over the shard's key range only.
pub fn for_each_record(
    store: &MvccStore,
    snap: &Snapshot,
    mut f: impl FnMut(RecordSpace, &[u8], &[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    for space in RecordSpace::ALL {
        let keyspace = space.keyspace(store);
        let iter = match space {
            RecordSpace::RaftState => snap.prefix(keyspace, store.shard().0.to_be_bytes()),
            RecordSpace::Mvcc => match store.key_range().encoded_bounds() {
                Some(bounds) => snap.range(keyspace, bounds),
                None => continue,
            },
            RecordSpace::Changes | RecordSpace::Leases => snap.iter(keyspace),
        };
        for guard in iter {
            let (key, value) = guard.into_inner()?;
            if owns(store, space, &key)? {
                f(space, &key, &value)?;
            }
        }
    }
    Ok(())
}
