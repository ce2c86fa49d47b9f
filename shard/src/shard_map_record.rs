//! The shard map record of the meta shard (decision D23), kept in the `leases` keyspace beside
//! the lease and member records under its own first byte: the single key `b'S'` → the
//! [`ShardMap`] (version byte then bincode, as every record). Its `version` is the map's
//! epoch.
//!
//! It changes only through the meta shard's log ([`ShardMapWrite`]): a new cluster's meta log
//! carries the initial map right after its bootstrap conf changes, written identically by
//! every initial member ([`bootstrap_entry`]), so a node that joins later, or installs a meta
//! snapshot, gets the same record by applying the same log.

use crate::error::StorageError;
use crate::lease::{LeaseView, LeaseWrites};
use crate::storage::Storage;
use crate::storage::records::{decode_record, encode_record};
use atoll_proto::shard_map::{ShardMap, ShardMapWrite};
use atoll_proto::{RaftCommand, WriteOp, frame};
use fjall::{Readable, Snapshot};
use raft::eraftpb::{Entry, EntryType};

const MAP_TAG: u8 = b'S';
const WHAT: &str = "shard map record";

/// The record's key.
fn map_key() -> [u8; 1] {
    [MAP_TAG]
}

/// Whether `key` of the `leases` keyspace is the shard map record (the meta shard's alone).
pub(crate) fn is_shard_map_record(key: &[u8]) -> bool {
    key == map_key()
}

/// The shard map as `snap` holds it; `None` while the meta shard has applied none.
pub fn load(storage: &Storage, snap: &Snapshot) -> Result<Option<ShardMap>, StorageError> {
    snap.get(&storage.leases, map_key())?.map(|v| decode_record(WHAT, &v)).transpose()
}

/// The writes of a [`ShardMapWrite`] applied on the meta shard.
pub(crate) fn apply_shard_map_write(
    view: &LeaseView<'_>,
    write: &ShardMapWrite,
) -> Result<LeaseWrites, StorageError> {
    let mut writes = LeaseWrites::new();
    match write {
        // The first map wins: a later Init (a migration proposed by two leaders in turn, or
        // one replayed after the bootstrap entry) changes nothing.
        ShardMapWrite::Init { map } => {
            if view.get(&map_key())?.is_none() {
                writes.insert(map_key().to_vec(), Some(encode_record(WHAT, map)?));
            }
        }
    }
    Ok(writes)
}

/// The meta shard's bootstrap entry that records the initial `map`, at `index` and `term`:
/// a normal entry whose command is `ShardMapWrite::Init`. Its revision stamp is 0 (the
/// write creates no MVCC version, and a clock reading would differ between members), so
/// every member encodes the same bytes from the same map.
pub(crate) fn bootstrap_entry(
    index: u64,
    term: u64,
    map: &ShardMap,
) -> Result<Entry, StorageError> {
    let cmd = RaftCommand {
        revision_stamp: 0,
        op: WriteOp::ShardMap(ShardMapWrite::Init { map: map.clone() }),
    };
    let data = frame::encode_frame(&cmd)
        .map_err(|e| StorageError::BadRecord { what: "bootstrap entry", detail: e.to_string() })?;
    let mut e = Entry { index, term, data: data.into(), ..Entry::default() };
    e.set_entry_type(EntryType::EntryNormal);
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::shard_map::{Epoch, ReplicaDescriptor, ReplicaRole, ShardDescriptor};
    use atoll_proto::{NodeId, ShardId};

    fn map(version: u64, split: &[u8]) -> ShardMap {
        let replicas = vec![
            ReplicaDescriptor { node: NodeId(3), role: ReplicaRole::Voter },
            ReplicaDescriptor { node: NodeId(9), role: ReplicaRole::Voter },
        ];
        let epoch = Epoch { range_version: 1, conf_version: 1 };
        let shard = |id, start: &[u8], end: &[u8]| ShardDescriptor {
            id: ShardId(id),
            start: start.to_vec(),
            end: end.to_vec(),
            epoch,
            replicas: replicas.clone(),
        };
        ShardMap { version, shards: vec![shard(1, b"", split), shard(2, split, b"")] }
    }

    #[test]
    fn the_record_round_trips_with_its_version_byte() {
        let m = map(4, b"/registry/");
        let bytes = encode_record(WHAT, &m).expect("encode");
        assert_eq!(bytes[0], 1, "records start with their version byte");
        assert_eq!(decode_record::<ShardMap>(WHAT, &bytes).expect("decode"), m);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(decode_record::<ShardMap>(WHAT, &trailing).is_err(), "trailing bytes refused");
        assert!(decode_record::<ShardMap>(WHAT, &bytes[..bytes.len() - 1]).is_err());
        let mut future = bytes;
        future[0] = 2;
        assert!(decode_record::<ShardMap>(WHAT, &future).is_err(), "unknown version refused");
    }

    #[test]
    fn the_bootstrap_entry_is_the_same_bytes_for_the_same_map() {
        let a = bootstrap_entry(4, 1, &map(1, b"/r/")).expect("entry");
        let b = bootstrap_entry(4, 1, &map(1, b"/r/")).expect("entry");
        assert_eq!(a, b);
        assert_eq!((a.index, a.term, a.get_entry_type()), (4, 1, EntryType::EntryNormal));
        let other = bootstrap_entry(4, 1, &map(1, b"/s/")).expect("entry");
        assert_ne!(a.data, other.data, "another map is another entry");
        let cmd: RaftCommand =
            frame::decode_frame(&a.data, atoll_proto::limits::FRAME_BYTES_MAX).expect("decode");
        assert_eq!(cmd.revision_stamp, 0);
        assert_eq!(cmd.op, WriteOp::ShardMap(ShardMapWrite::Init { map: map(1, b"/r/") }));
    }

    #[test]
    fn the_first_map_written_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 8 << 20).expect("storage");
        let snap = storage.db.snapshot();
        let pending = LeaseWrites::new();
        let view = LeaseView { snap: &snap, leases: &storage.leases, pending: &pending };
        let first = ShardMapWrite::Init { map: map(1, b"/a/") };
        let writes = apply_shard_map_write(&view, &first).expect("apply");
        assert_eq!(writes.len(), 1);
        let view = LeaseView { snap: &snap, leases: &storage.leases, pending: &writes };
        let second = ShardMapWrite::Init { map: map(1, b"/b/") };
        assert!(apply_shard_map_write(&view, &second).expect("apply").is_empty());
        let mut batch = storage.db.batch();
        for (k, v) in &writes {
            batch.insert(&storage.leases, k.as_slice(), v.clone().expect("a put").as_slice());
        }
        batch.commit().expect("commit");
        let loaded = load(&storage, &storage.db.snapshot()).expect("load");
        assert_eq!(loaded, Some(map(1, b"/a/")));
    }

    /// The raw `raft_log` and `raft_state` records of `shard` in `storage`.
    fn must_log_bytes(storage: &Storage, shard: ShardId) -> Vec<(Vec<u8>, Vec<u8>)> {
        let snap = storage.db.snapshot();
        let prefix = shard.0.to_be_bytes();
        let mut out = Vec::new();
        for ks in [&storage.raft_log, &storage.raft_state] {
            for guard in snap.prefix(ks, prefix) {
                let (k, v) = guard.into_inner().expect("read");
                out.push((k.to_vec(), v.to_vec()));
            }
        }
        out
    }

    #[test]
    fn every_member_bootstraps_the_meta_log_with_the_same_bytes() {
        use crate::storage::raft_log::bootstrap_shard;
        use atoll_proto::shard_map::Member;
        let members: Vec<Member> = [9u64, 3]
            .iter()
            .map(|id| Member {
                id: NodeId(*id),
                name: format!("n{id}"),
                peer_urls: vec![format!("https://127.0.0.1:{id}")],
                ..Member::default()
            })
            .collect();
        let the_map = map(1, b"/registry/");
        let mut logs = Vec::new();
        // Two members given the voters in different orders, as two nodes' flags may be.
        for voters in [[3u64, 9], [9, 3]] {
            let dir = tempfile::tempdir().expect("tempdir");
            let storage = Storage::open(dir.path(), 8 << 20).expect("storage");
            bootstrap_shard(&storage, ShardId::META, &voters, &members, Some(&the_map))
                .expect("bootstrap");
            logs.push(must_log_bytes(&storage, ShardId::META));
            // A data shard's log never carries the map.
            bootstrap_shard(&storage, ShardId(1), &voters, &members, Some(&the_map))
                .expect("bootstrap");
            let data = must_log_bytes(&storage, ShardId(1));
            assert_eq!(data.iter().filter(|(k, _)| k.len() == 16).count(), 2, "two conf changes");
        }
        assert_eq!(logs[0], logs[1], "byte-identical bootstrap on every member");
        let entries: Vec<&(Vec<u8>, Vec<u8>)> =
            logs[0].iter().filter(|(k, _)| k.len() == 16).collect();
        assert_eq!(entries.len(), 3, "two conf changes, then the map");
        let last = crate::storage::records::decode_entry(&entries[2].1).expect("entry");
        assert_eq!(last, bootstrap_entry(3, 1, &the_map).expect("entry"));
    }

    #[test]
    fn a_joining_node_writes_no_bootstrap_and_no_map() {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage = Storage::open(dir.path(), 8 << 20).expect("storage");
        let the_map = map(1, b"/r/");
        crate::storage::raft_log::bootstrap_shard(
            &storage,
            ShardId::META,
            &[],
            &[],
            Some(&the_map),
        )
        .expect("bootstrap");
        let log = must_log_bytes(&storage, ShardId::META);
        assert!(log.iter().all(|(k, _)| k.len() != 16), "no log entry: {log:?}");
    }
}
