//! The compactor's storage work (decision D17): batched deletion that a crash can interrupt
//! anywhere without changing any read at or above the compacted revision (Range, HashKV,
//! watch history with prev_kv), the hash at the compacted revision taken in steps, and the
//! revision-mode retention target counted from the change log. Expected values are taken
//! before the deletion starts, never from the code under test afterwards.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, Event, RaftCommand, RangeRequest, RangeResponse, ShardId,
    WriteOp,
};
use atoll_shard::mvcc::{
    CompactionHash, MvccLimits, MvccStore, RetentionScan, RetentionStep, ShardRange,
};
use atoll_shard::watch::{WatchSpec, WatchStep};
use mvcc_common::*;

const KEYS: u64 = 40;
const ROUNDS: u64 = 25;

/// `KEYS` keys written `ROUNDS` times each, every fifth key deleted in the middle: 1,000 old
/// versions plus tombstones, in one apply call (revision = 100 × index).
fn must_write_history(fx: &mut Fixture) {
    let mut entries = Vec::new();
    let mut index = fx.state.applied_index;
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            index += 1;
            let key = format!("key/{k:03}");
            let op = if round == ROUNDS / 2 && k % 5 == 0 {
                del(key.as_bytes(), b"")
            } else {
                put(key.as_bytes(), format!("v{round}").as_bytes())
            };
            entries.push((index, Some(RaftCommand { revision_stamp: 100 * index as i64, op })));
        }
    }
    fx.store.apply_entries(&mut fx.state, &entries, &MvccLimits::default()).expect("apply");
}

/// What reads at and above `at` answer: Range at `at`, at `at + 100` and at the head; the
/// hash at `at` and at the head; every watch event from `at` with prev_kv (except for the
/// events at `at` itself, whose previous version is below the compacted revision and may be
/// removed: etcd then leaves prev_kv unset too).
#[derive(Debug, PartialEq)]
struct Visible {
    ranges: Vec<RangeResponse>,
    hashes: Vec<u32>,
    events: Vec<Event>,
}

async fn must_visible(fx: &Fixture, at: i64) -> Visible {
    let revisions = [at, at + 100, 0];
    let ranges = revisions
        .iter()
        .map(|r| {
            fx.must_range(&RangeRequest { revision: *r, ..range(b"\0", b"\0") }).expect("range")
        })
        .collect();
    let snap = fx.storage.db.snapshot();
    let hashes = [at, 0].iter().map(|r| fx.store.hash_kv(&snap, *r).expect("hash").hash).collect();
    let spec = WatchSpec { key: vec![0], range_end: vec![0], prev_kv: true, ..Default::default() };
    let mut watcher = fx.store.watch(spec, at).expect("watch");
    let mut events = Vec::new();
    loop {
        match watcher.next_step().await.expect("step") {
            WatchStep::Events { events: batch, .. } => {
                events.extend(batch.into_iter().map(|mut e| {
                    if e.kv.mod_revision == at {
                        e.prev_kv = None;
                    }
                    e
                }))
            }
            WatchStep::Synced { .. } => break,
            WatchStep::Compacted { compact_revision } => panic!("compacted at {compact_revision}"),
        }
    }
    Visible { ranges, hashes, events }
}

async fn must_refused_below(fx: &Fixture, at: i64) {
    let below = RangeRequest { revision: at - 1, ..range(b"\0", b"\0") };
    assert_eq!(fx.must_range(&below), Err(AtollError::Compacted { compact_revision: at }));
    let snap = fx.storage.db.snapshot();
    assert!(fx.store.hash_kv(&snap, at - 1).is_err(), "hash below the compacted revision");
    let spec = WatchSpec { key: vec![0], range_end: vec![0], ..Default::default() };
    let mut watcher = fx.store.watch(spec, at - 1).expect("watch");
    let first = watcher.next_step().await.expect("step");
    assert!(matches!(first, WatchStep::Compacted { compact_revision } if compact_revision == at));
}

#[tokio::test]
async fn batched_deletion_survives_crashes_and_changes_nothing_visible() {
    let mut fx = Fixture::must_open();
    must_write_history(&mut fx);
    let at = fx.state.revision - 100 * KEYS as i64 * 3;
    eprintln!("logical compaction at {at}: refused below at once, nothing removed yet");
    let before = must_visible(&fx, at).await;
    let compact = WriteOp::Compact(CompactionRequest { revision: at, physical: false });
    fx.must_apply(compact).expect("compact");
    must_refused_below(&fx, at).await;
    let expected = must_visible(&fx, at).await;
    // Hashes now cover only what survives the compaction (as etcd's HashKV); reads are the
    // same as before it.
    assert_eq!((&expected.ranges, &expected.events), (&before.ranges, &before.events));
    assert_ne!(expected.hashes, before.hashes);
    let stored_before = must_stored_revisions(&fx.storage, b"key/001").len();

    eprintln!("batches of 37 versions, the store reopened (a crash) after every other batch");
    let mut batches = 0;
    loop {
        let progress = fx.store.compact_step_with(at, 37).expect("step");
        assert!(progress.versions_removed <= 37);
        batches += 1;
        assert_eq!(must_visible(&fx, at).await, expected, "after batch {batches}");
        must_refused_below(&fx, at).await;
        if progress.finished {
            break;
        }
        if batches % 2 == 0 {
            fx = fx.must_reopen();
        }
    }
    assert!(batches > 20, "the deletion took {batches} batches; they are bounded");
    let stored_after = must_stored_revisions(&fx.storage, b"key/001").len();
    assert!(stored_after < stored_before, "{stored_after} versions left of {stored_before}");
    assert_eq!(must_visible(&fx, at).await, expected);
}

#[test]
fn the_compaction_hash_equals_a_scan_at_the_compacted_revision() {
    let mut fx = Fixture::must_open();
    must_write_history(&mut fx);
    let at = fx.state.revision - 100 * KEYS as i64;
    let compact = WriteOp::Compact(CompactionRequest { revision: at, physical: false });
    fx.must_apply(compact).expect("compact");
    let scanned = fx.store.hash_kv(&fx.storage.db.snapshot(), at).expect("hash").hash;

    eprintln!("taken in steps of 10 versions after the deletion, then kept");
    while !fx.store.compact_step(at).expect("step") {}
    let mut hash = CompactionHash::default();
    let mut steps = 0;
    let kept = loop {
        steps += 1;
        if let Some(value) = fx.store.compaction_hash_step(at, &mut hash, 10).expect("hash step") {
            break value;
        }
    };
    assert!(steps > 2, "{steps} steps");
    assert_eq!(kept, scanned);
    assert_eq!(fx.store.compaction_hash().expect("read"), Some((at, kept)));

    eprintln!("HashKV at the compacted revision answers from the kept hash, after a restart too");
    let fx = fx.must_reopen();
    let hash = fx.store.hash_kv(&fx.storage.db.snapshot(), at).expect("hash");
    assert_eq!((hash.hash, hash.compact_revision), (kept, at));
}

#[test]
fn retention_counts_the_shards_own_revisions_back_from_the_head() {
    let fx = Fixture::must_open_range(ShardRange { start: Vec::new(), end: b"m".to_vec() });
    let other = MvccStore::new(
        fx.storage.clone(),
        ShardId(8),
        ShardRange { start: b"m".to_vec(), end: Vec::new() },
    );
    let (low, mut low_state) = (fx.store.clone(), fx.state);
    let mut high_state = other.load_apply_state().expect("state");
    let limits = MvccLimits::default();
    eprintln!("20 revisions of the shard (a txn of two keys each), 3 of another shard between");
    for i in 1..=20u64 {
        let txn = atoll_proto::TxnRequest {
            success: vec![
                atoll_proto::RequestOp::Put(put_req(b"a", b"v")),
                atoll_proto::RequestOp::Put(put_req(b"b", b"v")),
            ],
            ..Default::default()
        };
        let cmd = RaftCommand { revision_stamp: 1000 * i as i64, op: WriteOp::Txn(txn) };
        low.apply(&mut low_state, i, &cmd, &limits).expect("storage").expect("txn");
        for j in 0..3u64 {
            let cmd =
                RaftCommand { revision_stamp: 1000 * i as i64 + 1 + j as i64, op: put(b"x", b"v") };
            other.apply(&mut high_state, 3 * i + j, &cmd, &limits).expect("storage").expect("put");
        }
    }
    let find = |keep: u64, records_max: usize| {
        let mut scan = RetentionScan::default();
        loop {
            match low.retention_step(keep, &mut scan, records_max).expect("step") {
                RetentionStep::More => continue,
                done => return done,
            }
        }
    };
    assert_eq!(find(5, 1), RetentionStep::Found(15_000), "5 revisions stay above 15,000");
    assert_eq!(find(5, 10_000), RetentionStep::Found(15_000));
    assert_eq!(find(1, 7), RetentionStep::Found(19_000));
    assert_eq!(find(19, 3), RetentionStep::Found(1_000));
    assert_eq!(find(20, 3), RetentionStep::TooFew);
}
