//! The membership records of the meta shard (decision D18), kept in the `leases` keyspace
//! beside the lease records, each kind under its own first byte:
//! - `b'M' ‖ member id (u64 BE)` → [`Member`];
//! - `b'X' ‖ member id (u64 BE)` → empty: a removed member, whose ID never returns (etcd's
//!   `ErrIDRemoved`).
//!
//! They change only through the meta shard's log: with the conf change that adds, promotes or
//! removes a member ([`ConfChangeContext`]), or by a [`MemberWrite`].

use crate::error::{ShardError, StorageError};
use crate::lease::{LeaseView, LeaseWrites};
use crate::storage::Storage;
use crate::storage::records::{decode_record, encode_record};
use atoll_proto::member::{ConfChangeContext, MemberChange, MemberWrite};
use atoll_proto::shard_map::Member;
use atoll_proto::{AtollError, NodeId};
use fjall::{Readable, Snapshot};

const MEMBER_TAG: u8 = b'M';
const REMOVED_TAG: u8 = b'X';
const WHAT: &str = "member record";

/// Whether `key` of the `leases` keyspace is a membership record (the meta shard's alone).
pub(crate) fn is_member_record(key: &[u8]) -> bool {
    key.first().is_some_and(|t| *t == MEMBER_TAG || *t == REMOVED_TAG)
}

fn member_key(id: NodeId) -> Vec<u8> {
    tagged(MEMBER_TAG, id)
}

fn removed_key(id: NodeId) -> Vec<u8> {
    tagged(REMOVED_TAG, id)
}

fn tagged(tag: u8, id: NodeId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

/// The members as `snap` (any fjall snapshot or the database) holds them, by ID.
pub fn members(storage: &Storage, snap: &Snapshot) -> Result<Vec<Member>, StorageError> {
    let mut out = Vec::new();
    for guard in snap.prefix(&storage.leases, [MEMBER_TAG]) {
        let (_, v) = guard.into_inner()?;
        out.push(decode_record(WHAT, &v)?);
    }
    Ok(out)
}

/// The record of member `id` as `snap` holds it; `None` when there is none (not applied
/// yet on a joining node, or removed).
pub fn member(
    storage: &Storage,
    snap: &Snapshot,
    id: NodeId,
) -> Result<Option<Member>, StorageError> {
    snap.get(&storage.leases, member_key(id))?.map(|v| decode_record(WHAT, &v)).transpose()
}

/// Whether `id` belonged to a removed member.
pub fn is_removed(storage: &Storage, snap: &Snapshot, id: NodeId) -> Result<bool, StorageError> {
    Ok(snap.get(&storage.leases, removed_key(id))?.is_some())
}

/// The writes of the conf change `context` applied on the meta shard. A change that no longer
/// fits the records (its member gone or already changed by an earlier entry) writes nothing:
/// the conf change itself was checked by Raft, and the records follow it.
pub(crate) fn apply_conf_context(
    view: &LeaseView<'_>,
    context: &ConfChangeContext,
) -> Result<LeaseWrites, StorageError> {
    let mut writes = LeaseWrites::new();
    match context {
        ConfChangeContext::Bootstrap { members } => {
            for m in members {
                put(&mut writes, m)?;
            }
        }
        ConfChangeContext::Member(MemberChange::Add(m)) => put(&mut writes, m)?,
        ConfChangeContext::Member(MemberChange::Promote(id)) => {
            if let Some(mut m) = load(view, *id)? {
                m.is_learner = false;
                put(&mut writes, &m)?;
            }
        }
        ConfChangeContext::Member(MemberChange::Remove(id)) => {
            writes.insert(member_key(*id), None);
            writes.insert(removed_key(*id), Some(Vec::new()));
        }
        ConfChangeContext::Follow => {}
    }
    Ok(writes)
}

/// Applies a [`MemberWrite`]: the member must exist.
pub(crate) fn apply_member_write(
    view: &LeaseView<'_>,
    write: &MemberWrite,
) -> Result<LeaseWrites, ShardError> {
    let id = match write {
        MemberWrite::Publish { id, .. } | MemberWrite::UpdatePeerUrls { id, .. } => *id,
    };
    let Some(mut m) = load(view, id)? else {
        return Err(AtollError::MemberNotFound.into());
    };
    match write {
        MemberWrite::Publish { name, client_urls, .. } => {
            m.name.clone_from(name);
            m.client_urls.clone_from(client_urls);
        }
        MemberWrite::UpdatePeerUrls { peer_urls, .. } => m.peer_urls.clone_from(peer_urls),
    }
    let mut writes = LeaseWrites::new();
    put(&mut writes, &m)?;
    Ok(writes)
}

fn load(view: &LeaseView<'_>, id: NodeId) -> Result<Option<Member>, StorageError> {
    view.get(&member_key(id))?.map(|v| decode_record(WHAT, &v)).transpose()
}

fn put(writes: &mut LeaseWrites, m: &Member) -> Result<(), StorageError> {
    writes.insert(member_key(m.id), Some(encode_record(WHAT, m)?));
    Ok(())
}
