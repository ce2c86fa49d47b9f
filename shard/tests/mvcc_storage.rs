//! Storage properties of the MVCC store: state and data survive a restart, an entry is never
//! applied twice, the applied index moves with the data, one batch per Ready, bad bytes are
//! errors and never panics, arbitrary key bytes keep raw order, and a shard sees only its
//! own range of the shared keyspaces.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, DeleteRangeRequest, PutRequest, RaftCommand, RangeRequest,
    RequestOp, ShardId, TxnRequest, WriteOp, prefix_range_end,
};
use atoll_shard::mvcc::{ApplyState, MvccLimits, MvccStore, ShardRange, WriteResponse};
use atoll_shard::{ShardError, StorageError};
use mvcc_common::*;

fn cmd(revision_stamp: i64, op: WriteOp) -> RaftCommand {
    RaftCommand { revision_stamp, op }
}

fn must_keys(fx: &Fixture, req: &RangeRequest) -> Vec<Vec<u8>> {
    fx.must_range(req).expect("range").kvs.into_iter().map(|kv| kv.key).collect()
}

#[test]
fn restart_keeps_state_and_data() {
    eprintln!("apply a history and a compaction, then restart: nothing is rebuilt, all is there");
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&history());
    fx.must_apply(WriteOp::Compact(CompactionRequest { revision: 300, physical: false }))
        .expect("compact");
    let state = fx.state;
    assert_eq!(state, ApplyState { applied_index: 7, revision: 600, compact_revision: 300 });
    let at_300 = fx.must_range(&RangeRequest { revision: 300, ..range(b"\0", b"\0") });

    let mut fx = fx.must_reopen();
    assert_eq!(fx.state, state);
    assert_eq!(fx.must_dump(), vec![a600(), c600(), d600()]);
    assert_eq!(fx.must_range(&RangeRequest { revision: 300, ..range(b"\0", b"\0") }), at_300);
    assert_eq!(
        fx.must_range(&RangeRequest { revision: 200, ..range(b"\0", b"\0") }),
        Err(AtollError::Compacted { compact_revision: 300 })
    );

    eprintln!("the next write continues from the persisted index and revision");
    fx.must_apply(put(b"a", b"12")).expect("put");
    assert_eq!(fx.state.revision, 800);
    assert_eq!(
        fx.must_range(&range(b"a", b"")).expect("a").kvs,
        vec![kv(b"a", b"12", 100, 800, 3)]
    );
}

#[test]
fn an_entry_is_never_applied_twice() {
    let mut fx = Fixture::must_open();
    let limits = MvccLimits::default();
    let first = cmd(100, put(b"k", b"v"));
    let state_before = fx.state;
    let answer = fx.store.apply(&mut fx.state, 1, &first, &limits).expect("storage");
    assert!(answer.is_ok());
    let after_first = fx.state;
    assert_ne!(after_first, state_before);

    eprintln!("re-applying index 1 (or an older one) is refused and writes nothing");
    for index in [1, 0] {
        let again = fx.store.apply(&mut fx.state, index, &first, &limits).expect("storage");
        assert!(matches!(again, Err(AtollError::Malformed { .. })), "{again:?}");
        assert_eq!(fx.state, after_first);
    }
    fx.store.apply_noop(&mut fx.state, 1).expect("noop");
    assert_eq!(fx.state, after_first);
    assert_eq!(fx.must_dump(), vec![kv(b"k", b"v", 100, 100, 1)]);
    let fx = fx.must_reopen();
    assert_eq!(fx.state, after_first);
}

#[test]
fn applied_index_moves_with_every_entry() {
    let mut fx = Fixture::must_open();
    eprintln!("an empty entry advances the applied index alone, durably");
    fx.store.apply_noop(&mut fx.state, 1).expect("noop");
    assert_eq!(fx.state, ApplyState { applied_index: 1, revision: 0, compact_revision: 0 });
    let mut fx = fx.must_reopen();
    assert_eq!(fx.state.applied_index, 1);

    eprintln!("a failed request advances the index but not the revision");
    let failed = WriteOp::Put(PutRequest { ignore_value: true, ..put_req(b"k", b"") });
    assert_eq!(fx.must_apply(failed), Err(AtollError::KeyNotFound));
    assert_eq!(fx.state, ApplyState { applied_index: 2, revision: 0, compact_revision: 0 });
    let mut fx = fx.must_reopen();
    assert_eq!(fx.state.applied_index, 2);

    eprintln!("a revision is max(stamp, last + 1): a stamp from a slow clock cannot go back");
    let limits = MvccLimits::default();
    let index = fx.state.applied_index;
    for (i, stamp, want) in [(1, 1000, 1000), (2, 500, 1001), (3, 0, 1002), (4, 5000, 5000)] {
        let op = put(b"k", format!("{i}").as_bytes());
        fx.store
            .apply(&mut fx.state, index + i, &cmd(stamp, op), &limits)
            .expect("storage")
            .expect("put");
        assert_eq!(fx.state.revision, want);
    }
    assert_eq!(fx.must_dump(), vec![kv(b"k", b"4", 1000, 5000, 4)]);
}

#[test]
fn apply_entries_is_one_batch_and_entries_see_each_other() {
    let mut fx = Fixture::must_open();
    let read_a_at = |revision| {
        WriteOp::Txn(TxnRequest {
            success: vec![RequestOp::Range(RangeRequest { revision, ..range(b"a", b"") })],
            ..Default::default()
        })
    };
    let delete_a = WriteOp::DeleteRange(DeleteRangeRequest { prev_kv: true, ..del_req(b"a", b"") });
    let entries = vec![
        (1, Some(cmd(100, put(b"a", b"1")))),
        (2, None),
        (3, Some(cmd(300, put(b"a", b"2")))),
        (4, Some(cmd(400, read_a_at(100)))),
        (5, Some(cmd(500, delete_a))),
        (5, Some(cmd(550, put(b"z", b"repeated index")))),
        (6, Some(cmd(600, WriteOp::Compact(CompactionRequest { revision: 300, physical: false })))),
        (7, Some(cmd(700, read_a_at(200)))),
    ];
    let answers =
        fx.store.apply_entries(&mut fx.state, &entries, &MvccLimits::default()).expect("storage");
    assert_eq!(answers.len(), entries.len());
    assert!(
        matches!(answers[1], Err(AtollError::Malformed { .. })),
        "no command: {:?}",
        answers[1]
    );
    let txn_kvs = |answer: &Result<WriteResponse, AtollError>| match answer {
        Ok(WriteResponse::Txn(t)) => match &t.responses[..] {
            [atoll_proto::ResponseOp::Range(r)] => Ok(r.kvs.clone()),
            other => panic!("unexpected responses {other:?}"),
        },
        Ok(other) => panic!("unexpected answer {other:?}"),
        Err(e) => Err(e.clone()),
    };
    eprintln!("entry 4 reads entry 1's version from the uncommitted batch history");
    assert_eq!(txn_kvs(&answers[3]), Ok(vec![kv(b"a", b"1", 100, 100, 1)]));
    match &answers[4] {
        Ok(WriteResponse::DeleteRange(d)) => {
            assert_eq!(d.prev_kvs, vec![kv(b"a", b"2", 100, 300, 2)])
        }
        other => panic!("unexpected delete answer {other:?}"),
    }
    assert!(matches!(answers[5], Err(AtollError::Malformed { .. })), "repeated index");
    eprintln!("a compaction inside the batch applies to the entries after it");
    assert_eq!(txn_kvs(&answers[7]), Err(AtollError::Compacted { compact_revision: 300 }));
    let want = ApplyState { applied_index: 7, revision: 500, compact_revision: 300 };
    assert_eq!(fx.state, want);

    let fx = fx.must_reopen();
    assert_eq!(fx.state, want);
    assert!(fx.must_dump().is_empty());
    let at_300 = fx.must_range(&RangeRequest { revision: 300, ..range(b"a", b"") }).expect("read");
    assert_eq!(at_300.kvs, vec![kv(b"a", b"2", 100, 300, 2)]);
}

#[test]
fn bad_bytes_are_errors_not_panics() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&history());
    let must_be_bad = |fx: &Fixture, req: &RangeRequest| {
        let snap = fx.storage.db.snapshot();
        match fx.store.range(&snap, req) {
            Err(ShardError::Storage(StorageError::BadRecord { .. })) => {}
            other => panic!("bad bytes must be a BadRecord error, got {other:?}"),
        }
    };
    eprintln!("a version record with an unknown version byte");
    let mut key = b"c\x00\x01".to_vec();
    key.extend_from_slice(&(!300u64).to_be_bytes());
    let original = fx.storage.mvcc.get(&key).expect("get").expect("c's version at 300");
    fx.storage.mvcc.insert(key.clone(), vec![9u8, 0, 1]).expect("insert");
    must_be_bad(&fx, &range(b"c", b""));
    must_be_bad(&fx, &range(b"\0", b"\0"));
    eprintln!("a truncated live record");
    fx.storage.mvcc.insert(key.clone(), vec![1u8, 0, 1, 2]).expect("insert");
    must_be_bad(&fx, &range(b"c", b""));
    fx.storage.mvcc.insert(key, original).expect("restore");

    eprintln!("a key too short to carry a revision");
    fx.storage.mvcc.insert(b"b5".to_vec(), vec![1u8, 1]).expect("insert");
    must_be_bad(&fx, &range(b"b", b"\0"));
    fx.storage.mvcc.remove(b"b5".to_vec()).expect("remove");
    assert_eq!(fx.must_dump(), vec![a600(), c600(), d600()]);

    eprintln!("a corrupt change record stops compaction with an error");
    let mut change = 100u64.to_be_bytes().to_vec();
    change.extend_from_slice(b"a\x00\x01");
    fx.storage.changes.insert(change, vec![1u8, 7]).expect("insert");
    fx.must_apply(WriteOp::Compact(CompactionRequest { revision: 600, physical: false }))
        .expect("compact");
    assert!(matches!(fx.store.compact_step(600), Err(StorageError::BadRecord { .. })));

    eprintln!("a corrupt apply state");
    let mut state_key = SHARD.0.to_be_bytes().to_vec();
    state_key.push(b'a');
    fx.storage.raft_state.insert(state_key, vec![1u8, 2, 3]).expect("insert");
    assert!(matches!(fx.store.load_apply_state(), Err(StorageError::BadRecord { .. })));
    must_be_bad(&fx, &range(b"a", b""));
}

#[test]
fn arbitrary_key_bytes_keep_raw_order() {
    let keys: Vec<&[u8]> = vec![
        b"\xff",
        b"a\x00",
        b"\x00",
        b"a",
        b"\x00\xff",
        b"\xff\xff",
        b"\x00\x00",
        b"a\x00b",
        b"\xff\x00",
        b"a\x01",
        b"\x01",
    ];
    let mut fx = Fixture::must_open();
    for key in &keys {
        fx.must_apply(put(key, key)).expect("put");
    }
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    let all = must_keys(&fx, &range(b"\0", b"\0"));
    assert_eq!(all, sorted, "a scan returns raw byte order");
    for key in &keys {
        let got = fx.must_range(&range(key, b"")).expect("get").kvs;
        assert_eq!(got.len(), 1, "single get of {key:?}");
        assert_eq!(got[0].value, key.to_vec());
    }
    let pick = |ks: &[&[u8]]| ks.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
    assert_eq!(
        must_keys(&fx, &range(b"\x00", &prefix_range_end(b"\x00"))),
        pick(&[b"\x00", b"\x00\x00", b"\x00\xff"])
    );
    assert_eq!(must_keys(&fx, &range(b"a", b"a\x00")), pick(&[b"a"]));
    assert_eq!(must_keys(&fx, &range(b"a\x00", b"a\x01")), pick(&[b"a\x00", b"a\x00b"]));
    assert_eq!(
        must_keys(&fx, &range(b"\xff", &prefix_range_end(b"\xff"))),
        pick(&[b"\xff", b"\xff\x00", b"\xff\xff"])
    );
    assert_eq!(must_keys(&fx, &range(b"\xff\x00", b"\0")), pick(&[b"\xff\x00", b"\xff\xff"]));

    fx.must_apply(del(b"\x00", b"\x01")).expect("delete");
    assert_eq!(must_keys(&fx, &range(b"\0", b"\x01\x00")), pick(&[b"\x01"]));
    assert_eq!(
        fx.must_range(&RangeRequest { count_only: true, ..range(b"\0", b"\0") })
            .expect("count")
            .count,
        8
    );
}

#[test]
fn a_shard_sees_only_its_range() {
    let fx = Fixture::must_open_range(ShardRange { start: Vec::new(), end: b"m".to_vec() });
    let (low, mut low_state) = (fx.store.clone(), fx.state);
    let high = MvccStore::new(
        fx.storage.clone(),
        ShardId(8),
        ShardRange { start: b"m".to_vec(), end: Vec::new() },
    );
    let mut high_state = high.load_apply_state().expect("state");
    let limits = MvccLimits::default();
    let apply = |store: &MvccStore, state: &mut ApplyState, stamp: i64, op: WriteOp| {
        let index = state.applied_index + 1;
        store.apply(state, index, &cmd(stamp, op), &limits).expect("storage")
    };
    apply(&low, &mut low_state, 100, put(b"a", b"1")).expect("put a");
    apply(&high, &mut high_state, 100, put(b"x", b"1")).expect("put x");
    apply(&high, &mut high_state, 200, put(b"m", b"1")).expect("put m");

    let snap = fx.storage.db.snapshot();
    let everything = range(b"\0", b"\0");
    let low_keys: Vec<_> =
        low.range(&snap, &everything).expect("low").kvs.into_iter().map(|k| k.key).collect();
    assert_eq!(low_keys, vec![b"a".to_vec()]);
    let high_read = high.range(&snap, &everything).expect("high");
    assert_eq!((high_read.count, high_read.header.revision), (2, 200));
    assert!(high.range(&snap, &range(b"a", b"")).expect("a from high").kvs.is_empty());

    eprintln!("a write outside the shard is refused; a delete of everything stays inside");
    let outside = apply(&low, &mut low_state, 300, put(b"x", b"2"));
    assert_eq!(outside, Err(AtollError::WrongShard { shard: SHARD, epoch: 0 }));
    apply(&low, &mut low_state, 400, del(b"\0", b"\0")).expect("delete all");
    let snap = fx.storage.db.snapshot();
    assert_eq!(high.range(&snap, &everything).expect("high").count, 2);
    assert_eq!(low.range(&snap, &everything).expect("low").count, 0);
}
