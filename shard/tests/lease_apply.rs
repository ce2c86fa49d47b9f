//! Leases at apply (decision D16): the meta shard's records, a data shard's lease → keys
//! index through every kind of write, revocation of a lease's keys and the refusal of
//! attaches to a revoked grant.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, LeaseOp, LeaseOpResponse, LeaseRef, PutRequest, RaftCommand,
    RequestOp, RevokeLeaseKeysBatchRequest, RevokeLeaseKeysRequest, ShardId, TxnRequest, WriteOp,
};
use atoll_shard::lease::{keys_of_lease, lease_records};
use atoll_shard::mvcc::{ApplyState, MvccLimits, MvccStore, ShardRange, WriteResponse};
use mvcc_common::*;

fn put_leased(key: &[u8], lease: i64, grant_index: u64) -> WriteOp {
    let put = WriteOp::Put(PutRequest { lease, ..put_req(key, b"v") });
    WriteOp::Leased(atoll_proto::LeasedWrite {
        leases: vec![LeaseRef { id: lease, grant_index }],
        op: Box::new(put),
    })
}

fn revoke(shard: ShardId, id: i64, grant_index: u64) -> WriteOp {
    WriteOp::RevokeLeaseKeys(RevokeLeaseKeysRequest { shard, lease: LeaseRef { id, grant_index } })
}

fn must_keys(store: &MvccStore, id: i64, grant_index: u64) -> Vec<Vec<u8>> {
    let snap = store.storage().db.snapshot();
    keys_of_lease(store, &snap, LeaseRef { id, grant_index }).expect("read the index")
}

/// A meta shard's store in `dir`, empty.
fn must_meta(dir: &std::path::Path) -> (MvccStore, ApplyState) {
    let storage = must_storage(dir);
    let meta = MvccStore::new(storage, ShardId::META, ShardRange { start: vec![0], end: vec![0] });
    (meta, ApplyState::default())
}

/// Applies `op` as the meta shard's next entry.
fn must_apply_meta(
    meta: &MvccStore,
    state: &mut ApplyState,
    op: LeaseOp,
) -> Result<LeaseOpResponse, AtollError> {
    let index = state.applied_index + 1;
    let cmd = RaftCommand { revision_stamp: 1, op: WriteOp::Lease(op) };
    match meta.apply(state, index, &cmd, &MvccLimits::default()).expect("storage") {
        Ok(WriteResponse::Lease(r)) => Ok(r),
        Ok(other) => panic!("answered {other:?}"),
        Err(e) => Err(e),
    }
}

fn keys(list: &[&[u8]]) -> Vec<Vec<u8>> {
    list.iter().map(|k| k.to_vec()).collect()
}

#[test]
fn the_index_follows_puts_deletes_txns_and_lease_changes() {
    let mut fx = Fixture::must_open();
    for key in [b"k1", b"k2", b"k3"] {
        fx.must_apply(put_leased(key, 5, 1)).expect("attach");
    }
    fx.must_apply(put(b"k3", b"no lease")).expect("detach");
    fx.must_apply(del(b"k2", b"")).expect("delete");
    let put_k4 = RequestOp::Put(PutRequest { lease: 5, ..put_req(b"k4", b"v") });
    let txn = WriteOp::Txn(TxnRequest { success: vec![put_k4], ..Default::default() });
    fx.must_apply(leased(txn, &[5])).expect("txn attaches");
    fx.must_apply(put_leased(b"k1", 6, 2)).expect("move to another lease");
    assert_eq!(must_keys(&fx.store, 5, 1), keys(&[b"k4"]));
    assert_eq!(must_keys(&fx.store, 6, 2), keys(&[b"k1"]));
    // Compaction drops old versions only: the index of live keys stays.
    let rev = fx.state.revision;
    fx.must_apply(WriteOp::Compact(CompactionRequest { revision: rev, physical: true }))
        .expect("compact");
    while !fx.store.compact_step(rev).expect("compaction step") {}
    let fx = fx.must_reopen();
    assert_eq!(must_keys(&fx.store, 5, 1), keys(&[b"k4"]), "the index survives a restart");
}

#[test]
fn an_unvouched_lease_is_refused_and_the_store_is_unchanged() {
    let mut fx = Fixture::must_open();
    let bare = WriteOp::Put(PutRequest { lease: 5, ..put_req(b"k", b"v") });
    assert_eq!(fx.must_apply(bare), Err(AtollError::LeaseNotFound));
    let other = WriteOp::Leased(atoll_proto::LeasedWrite {
        leases: vec![LeaseRef { id: 6, grant_index: 1 }],
        op: Box::new(WriteOp::Put(PutRequest { lease: 5, ..put_req(b"k", b"v") })),
    });
    assert_eq!(fx.must_apply(other), Err(AtollError::LeaseNotFound));
    assert_eq!(fx.state.revision, 0);
}

#[test]
fn revoking_deletes_the_grants_keys_at_one_revision_and_refuses_late_attaches() {
    let mut fx = Fixture::must_open();
    fx.must_apply(put_leased(b"a", 5, 1)).expect("attach");
    fx.must_apply(put_leased(b"b", 5, 1)).expect("attach");
    fx.must_apply(put(b"c", b"stays")).expect("put");
    let before = fx.state.revision;
    let Ok(WriteResponse::RevokeLeaseKeys(r)) = fx.must_apply(revoke(SHARD, 5, 1)) else {
        panic!("revocation failed")
    };
    assert_eq!(r.deleted, 2);
    assert!(r.header.revision > before);
    let all = fx.must_range(&range(b"\0", b"\0")).expect("range");
    assert_eq!(all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), keys(&[b"c"]));
    assert!(must_keys(&fx.store, 5, 1).is_empty());
    // An attach checked before the revocation and applied after it.
    assert_eq!(fx.must_apply(put_leased(b"late", 5, 1)), Err(AtollError::LeaseNotFound));
    // A later grant of the same client-chosen ID is another lease.
    fx.must_apply(put_leased(b"new", 5, 9)).expect("a new grant attaches");
    let Ok(WriteResponse::RevokeLeaseKeys(stale)) = fx.must_apply(revoke(SHARD, 5, 1)) else {
        panic!("a repeated revocation is answered")
    };
    assert_eq!(stale.deleted, 0, "a stale revocation leaves the new grant's keys");
    assert_eq!(must_keys(&fx.store, 5, 9), keys(&[b"new"]));
}

#[test]
fn a_shard_revokes_only_its_own_keys_of_the_shared_index() {
    let mut left = Fixture::must_open_range(ShardRange { start: vec![], end: b"m".to_vec() });
    let right_store = MvccStore::new(
        left.storage.clone(),
        ShardId(8),
        ShardRange { start: b"m".to_vec(), end: vec![] },
    );
    let mut right_state = ApplyState::default();
    let apply_right = |state: &mut ApplyState, op: WriteOp| {
        let index = state.applied_index + 1;
        let cmd = RaftCommand { revision_stamp: 100 * index as i64, op };
        right_store.apply(state, index, &cmd, &MvccLimits::default()).expect("storage")
    };
    left.must_apply(put_leased(b"a", 5, 1)).expect("left attach");
    apply_right(&mut right_state, put_leased(b"z", 5, 1)).expect("right attach");
    left.must_apply(revoke(SHARD, 5, 1)).expect("left revokes");
    assert!(must_keys(&left.store, 5, 1).is_empty());
    assert_eq!(must_keys(&right_store, 5, 1), keys(&[b"z"]));
    // Only the left shard remembers the revocation.
    apply_right(&mut right_state, put_leased(b"y", 5, 1)).expect("right still attaches");
}

#[test]
fn the_meta_shard_grants_revokes_and_checkpoints() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (meta, mut state) = must_meta(dir.path());
    let mut apply = |op: LeaseOp| must_apply_meta(&meta, &mut state, op).map(|r| r.record);
    let granted = apply(LeaseOp::Grant { id: 7, ttl: 60 }).expect("grant").expect("record");
    assert_eq!((granted.lease, granted.ttl), (LeaseRef { id: 7, grant_index: 1 }, 60));
    assert_eq!(apply(LeaseOp::Grant { id: 7, ttl: 5 }), Err(AtollError::LeaseExists));
    apply(LeaseOp::Checkpoint { remaining: vec![(7, 30_000), (99, 1)] }).expect("checkpoint");
    let stale = LeaseOp::Revoke { id: 7, grant_index: 42 };
    assert_eq!(apply(stale), Err(AtollError::LeaseNotFound), "another grant is not revoked");
    let revoking = apply(LeaseOp::Revoke { id: 7, grant_index: 0 }).expect("revoke").expect("rec");
    assert!(revoking.revoking);
    assert_eq!(revoking.remaining_ms, 30_000);
    assert_eq!(apply(LeaseOp::Revoke { id: 7, grant_index: 0 }), Err(AtollError::LeaseNotFound));
    assert_eq!(apply(LeaseOp::Grant { id: 7, ttl: 5 }), Err(AtollError::LeaseExists));
    let records = lease_records(&meta, &meta.storage().db.snapshot()).expect("records");
    assert_eq!(records, vec![revoking], "a new leader finds the revocation to finish");
    apply(LeaseOp::Revoked { lease: LeaseRef { id: 7, grant_index: 2 } }).expect("other grant");
    assert_eq!(lease_records(&meta, &meta.storage().db.snapshot()).expect("records").len(), 1);
    apply(LeaseOp::Revoked { lease: revoking.lease }).expect("revoked");
    assert!(lease_records(&meta, &meta.storage().db.snapshot()).expect("records").is_empty());
    let regranted = apply(LeaseOp::Grant { id: 7, ttl: 5 }).expect("grant").expect("record");
    assert!(regranted.lease.grant_index > revoking.lease.grant_index);
}

#[test]
fn a_batch_deletes_the_keys_of_every_lease_it_names_at_one_revision() {
    let mut fx = Fixture::must_open();
    fx.must_apply(put_leased(b"a", 5, 1)).expect("attach");
    fx.must_apply(put_leased(b"b", 6, 2)).expect("attach");
    fx.must_apply(put_leased(b"c", 6, 2)).expect("attach");
    fx.must_apply(put_leased(b"d", 8, 4)).expect("attach");
    let before = fx.state.revision;
    // Lease 7 has no key here; lease 5 is named twice, once with an older grant.
    let leases =
        [(5, 1), (6, 2), (7, 3), (5, 0)].map(|(id, grant_index)| LeaseRef { id, grant_index });
    let batch = RevokeLeaseKeysBatchRequest { shard: SHARD, leases: leases.to_vec() };
    let Ok(WriteResponse::RevokeLeaseKeys(r)) = fx.must_apply(WriteOp::RevokeLeaseKeysBatch(batch))
    else {
        panic!("batch revocation failed")
    };
    assert_eq!(r.deleted, 3);
    assert!(r.header.revision > before);
    assert_eq!(r.header.revision, fx.state.revision, "one entry, one revision for every delete");
    let all = fx.must_range(&range(b"\0", b"\0")).expect("range");
    assert_eq!(all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), keys(&[b"d"]));
    // Every lease of the batch is remembered as revoked, the older grant named last
    // notwithstanding, and attaches checked before it are refused.
    for (key, id, grant) in [(b"x", 5, 1), (b"y", 6, 2), (b"z", 7, 3)] {
        assert_eq!(fx.must_apply(put_leased(key, id, grant)), Err(AtollError::LeaseNotFound));
    }
    fx.must_apply(put_leased(b"d2", 8, 4)).expect("a lease not in the batch still attaches");
    fx.must_apply(put_leased(b"n", 5, 9)).expect("a later grant of a revoked ID attaches");
}

#[test]
fn the_meta_shard_revokes_and_removes_a_batch_of_grants() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (meta, mut state) = must_meta(dir.path());
    let mut apply = |op: LeaseOp| must_apply_meta(&meta, &mut state, op).expect("applies");
    let mut granted = Vec::new();
    for id in [1, 2, 3] {
        granted.push(apply(LeaseOp::Grant { id, ttl: 60 }).record.expect("record").lease);
    }
    apply(LeaseOp::Revoke { id: 3, grant_index: 0 });
    let stale = LeaseRef { id: 2, grant_index: 99 };
    let missing = LeaseRef { id: 4, grant_index: 1 };
    let leases = vec![granted[0], granted[1], granted[2], stale, missing, granted[0]];
    let answer = apply(LeaseOp::RevokeBatch { leases });
    assert_eq!(answer.revoking, vec![granted[0], granted[1]], "only held, not yet revoking grants");
    let records = lease_records(&meta, &meta.storage().db.snapshot()).expect("records");
    assert!(records.iter().all(|r| r.revoking), "all three are gone for clients");
    let done = vec![granted[0], stale, granted[2]];
    assert!(apply(LeaseOp::RevokedBatch { leases: done }).revoking.is_empty());
    let records = lease_records(&meta, &meta.storage().db.snapshot()).expect("records");
    assert_eq!(records.iter().map(|r| r.lease).collect::<Vec<_>>(), vec![granted[1]]);
}
