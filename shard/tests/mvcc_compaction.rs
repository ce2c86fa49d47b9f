//! Physical compaction (`MvccStore::compact_step`): etcd's `keyIndex.compact` rule (keep each
//! key's newest version at or below the compacted revision unless it is a tombstone), the
//! change log trimmed below it, bounded steps, resumption after a restart, and other shards'
//! history left alone. The raw keyspaces are inspected, so removal is checked, not assumed.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{AtollError, CompactionRequest, RaftCommand, RangeRequest, ShardId, WriteOp};
use atoll_shard::Storage;
use atoll_shard::limits::COMPACTION_BATCH_VERSIONS_MAX;
use atoll_shard::mvcc::{MvccLimits, MvccStore, ShardRange};
use mvcc_common::*;

/// Revisions of every change-log record, in log order.
fn must_change_revisions(storage: &Storage) -> Vec<i64> {
    let mut revisions = Vec::new();
    for guard in storage.changes.iter() {
        let raw = guard.key().expect("key");
        let prefix: [u8; 8] = raw[..8].try_into().expect("revision prefix");
        revisions.push(u64::from_be_bytes(prefix) as i64);
    }
    revisions
}

fn compact(revision: i64) -> WriteOp {
    WriteOp::Compact(CompactionRequest { revision, physical: true })
}

/// Runs compaction steps until done; returns how many steps it took.
fn must_compact_fully(store: &MvccStore, revision: i64) -> usize {
    for step in 1..=1_000 {
        if store.compact_step(revision).expect("compact step") {
            return step;
        }
    }
    panic!("compaction did not finish in 1000 steps");
}

#[test]
fn compaction_keeps_the_newest_version_at_or_below_the_compacted_revision() {
    let mut fx = Fixture::must_open();
    // 100 a, 200 a, 300 delete a, 400 b, 500 b, 600 c, then compact at 500.
    let ops = [
        put(b"a", b"1"),
        put(b"a", b"2"),
        del(b"a", b""),
        put(b"b", b"1"),
        put(b"b", b"2"),
        put(b"c", b"1"),
    ];
    fx.must_apply_all(&ops);
    fx.must_apply(compact(500)).expect("compact");
    let before_at_500 = fx.must_range(&RangeRequest { revision: 500, ..range(b"\0", b"\0") });
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![300, 200, 100]);

    eprintln!("logical compaction refuses old reads at once; physical removal follows");
    assert_eq!(
        fx.must_range(&RangeRequest { revision: 499, ..range(b"\0", b"\0") }),
        Err(AtollError::Compacted { compact_revision: 500 })
    );
    assert_eq!(must_compact_fully(&fx.store, 500), 1);
    assert_eq!(
        must_stored_revisions(&fx.storage, b"a"),
        Vec::<i64>::new(),
        "a tombstone at or below goes with its history"
    );
    assert_eq!(must_stored_revisions(&fx.storage, b"b"), vec![500]);
    assert_eq!(must_stored_revisions(&fx.storage, b"c"), vec![600]);
    assert_eq!(must_change_revisions(&fx.storage), vec![500, 600], "records below 500 are gone");

    eprintln!("reads at and above the compacted revision are unchanged by the removal");
    assert_eq!(
        fx.must_range(&RangeRequest { revision: 500, ..range(b"\0", b"\0") }),
        before_at_500
    );
    assert_eq!(fx.must_dump(), vec![kv(b"b", b"2", 400, 500, 2), kv(b"c", b"1", 600, 600, 1)]);
    assert_eq!(must_compact_fully(&fx.store, 500), 1, "compacting again is a no-op");
    assert_eq!(must_change_revisions(&fx.storage), vec![500, 600]);
}

#[test]
fn a_later_compaction_removes_versions_kept_by_an_earlier_one() {
    let mut fx = Fixture::must_open();
    // 100 a=1, 200 a=2, compact 150 (keeps a@100), 400 a=3, compact 250: a@200 is now the
    // newest at or below, so a@100 goes although its change record went with the first
    // compaction.
    fx.must_apply_all(&[put(b"a", b"1"), put(b"a", b"2")]);
    fx.must_apply(compact(150)).expect("compact 150");
    must_compact_fully(&fx.store, 150);
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![200, 100]);
    assert_eq!(must_change_revisions(&fx.storage), vec![200]);
    fx.must_apply(put(b"a", b"3")).expect("put");
    fx.must_apply(compact(250)).expect("compact 250");
    must_compact_fully(&fx.store, 250);
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![400, 200]);
    assert_eq!(must_change_revisions(&fx.storage), vec![400]);
    let at_250 = fx.must_range(&RangeRequest { revision: 250, ..range(b"a", b"") }).expect("read");
    assert_eq!(at_250.kvs, vec![kv(b"a", b"2", 100, 200, 2)]);
}

#[test]
fn compaction_runs_in_bounded_resumable_steps() {
    let mut fx = Fixture::must_open();
    let versions = 2 * COMPACTION_BATCH_VERSIONS_MAX + COMPACTION_BATCH_VERSIONS_MAX / 2;
    let entries: Vec<(u64, Option<RaftCommand>)> = (1..=versions as u64)
        .map(|i| (i, Some(RaftCommand { revision_stamp: 100 * i as i64, op: put(b"k", b"v") })))
        .collect();
    fx.store.apply_entries(&mut fx.state, &entries, &MvccLimits::default()).expect("apply");
    fx.must_apply(del(b"k", b"")).expect("delete");
    let tombstone = fx.state.revision;
    fx.must_apply(put(b"other", b"v")).expect("put");
    fx.must_apply(compact(tombstone)).expect("compact");

    eprintln!("each step removes at most the batch limit; the tombstone goes last");
    assert!(!fx.store.compact_step(tombstone).expect("step 1"));
    let left = must_stored_revisions(&fx.storage, b"k");
    assert_eq!(left.len(), versions + 1 - COMPACTION_BATCH_VERSIONS_MAX);
    assert_eq!(left[0], tombstone, "the tombstone stays while older versions remain");
    assert!(fx.must_range(&range(b"k", b"")).expect("read").kvs.is_empty());

    eprintln!("a restart in the middle resumes from the persisted cursor");
    let fx = fx.must_reopen();
    assert!(!fx.store.compact_step(tombstone).expect("step 2"));
    assert!(fx.store.compact_step(tombstone).expect("step 3"));
    assert!(must_stored_revisions(&fx.storage, b"k").is_empty());
    assert_eq!(must_change_revisions(&fx.storage), vec![tombstone, tombstone + 100]);
    assert_eq!(fx.must_dump(), vec![kv(b"other", b"v", tombstone + 100, tombstone + 100, 1)]);
}

#[test]
fn compaction_is_capped_at_the_applied_compacted_revision() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&history());
    eprintln!("without an applied Compact, a step removes nothing whatever it is asked");
    assert!(fx.store.compact_step(600).expect("step"));
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![400, 100]);
    fx.must_apply(compact(300)).expect("compact");
    must_compact_fully(&fx.store, 600);
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![400, 100]);
    assert_eq!(must_stored_revisions(&fx.storage, b"b"), vec![500, 200]);
    assert_eq!(must_change_revisions(&fx.storage), vec![300, 400, 500, 600]);
}

#[test]
fn compaction_leaves_other_shards_alone() {
    let fx = Fixture::must_open_range(ShardRange { start: Vec::new(), end: b"m".to_vec() });
    let high = MvccStore::new(
        fx.storage.clone(),
        ShardId(8),
        ShardRange { start: b"m".to_vec(), end: Vec::new() },
    );
    let mut high_state = high.load_apply_state().expect("state");
    let (low, mut low_state) = (fx.store.clone(), fx.state);
    let limits = MvccLimits::default();
    for i in 1..=5u64 {
        let stamp = 100 * i as i64;
        let low_cmd = RaftCommand { revision_stamp: stamp, op: put(b"a", b"v") };
        low.apply(&mut low_state, i, &low_cmd, &limits).expect("storage").expect("put a");
        let high_cmd = RaftCommand { revision_stamp: stamp, op: put(b"x", b"v") };
        high.apply(&mut high_state, i, &high_cmd, &limits).expect("storage").expect("put x");
    }
    let compact_cmd = RaftCommand { revision_stamp: 600, op: compact(500) };
    low.apply(&mut low_state, 6, &compact_cmd, &limits).expect("storage").expect("compact");
    must_compact_fully(&low, 500);
    assert_eq!(must_stored_revisions(&fx.storage, b"a"), vec![500]);
    assert_eq!(must_stored_revisions(&fx.storage, b"x"), vec![500, 400, 300, 200, 100]);
    let snap = fx.storage.db.snapshot();
    let old = high.range(&snap, &RangeRequest { revision: 100, ..range(b"x", b"") }).expect("read");
    assert_eq!(old.kvs, vec![kv(b"x", b"v", 100, 100, 1)]);
}
