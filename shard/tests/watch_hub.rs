//! The watch hub (`atoll_shard::watch`): history from the change log, live events published
//! by apply, the switch between them without gaps or duplicates, filters, prev_kv,
//! compaction, lagging watchers that catch up from storage with bounded memory, and the
//! progress revision. Expected events are computed from the writes, never read back from the
//! code under test.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::RaftCommand;
use atoll_proto::{CompactionRequest, Event, EventType, KeyValue, WriteOp};
use atoll_shard::limits::{WATCH_STEP_EVENTS_MAX, WATCHER_BUFFER_EVENTS_MAX};
use atoll_shard::mvcc::{MvccLimits, MvccStore, ShardRange};
use atoll_shard::watch::{WatchSpec, WatchStep, Watcher};
use mvcc_common::*;
use std::time::Duration;

fn spec(key: &[u8], range_end: &[u8]) -> WatchSpec {
    WatchSpec { key: key.to_vec(), range_end: range_end.to_vec(), ..Default::default() }
}

fn put_event(kv: KeyValue) -> Event {
    Event { kind: EventType::Put, kv, prev_kv: None }
}

fn del_event(key: &[u8], revision: i64) -> Event {
    let kv = KeyValue { key: key.to_vec(), mod_revision: revision, ..Default::default() };
    Event { kind: EventType::Delete, kv, prev_kv: None }
}

/// Takes steps until the watcher is synced; returns the events and the synced revision.
async fn must_drain(w: &mut Watcher) -> (Vec<Event>, i64) {
    let (steps, synced) = must_drain_steps(w).await;
    (steps.concat(), synced)
}

/// Takes steps until the watcher is synced; returns each step's events and the synced
/// revision. Checks what every step promises: never empty, at most a step's worth of events
/// except to finish the revision the step is in, no revision continued in the next step.
async fn must_drain_steps(w: &mut Watcher) -> (Vec<Vec<Event>>, i64) {
    let mut steps: Vec<Vec<Event>> = Vec::new();
    loop {
        match w.next_step().await.expect("watch step") {
            WatchStep::Events { events: batch, revision } => {
                assert!(!batch.is_empty(), "an events step is never empty");
                if let Some(over) = batch.get(WATCH_STEP_EVENTS_MAX - 1..) {
                    let last = over[0].kv.mod_revision;
                    assert!(over.iter().all(|e| e.kv.mod_revision == last), "step too long");
                }
                assert!(batch.iter().all(|e| e.kv.mod_revision <= revision));
                let previous = steps.last().and_then(|s| s.last()).map(|e| e.kv.mod_revision);
                assert_ne!(previous, Some(batch[0].kv.mod_revision), "a revision was split");
                steps.push(batch);
            }
            WatchStep::Synced { revision } => return (steps, revision),
            WatchStep::Compacted { compact_revision } => {
                panic!("unexpected compaction at {compact_revision}")
            }
        }
    }
}

#[tokio::test]
async fn history_then_live_events_without_gap_or_duplicate() {
    let mut fx = Fixture::must_open();
    eprintln!("three writes before the watch: 100 a, 200 b, 300 delete a");
    fx.must_apply_all(&[put(b"a", b"1"), put(b"b", b"1"), del(b"a", b"")]);
    let mut w = fx.store.watch(spec(b"", b"\0"), 200).expect("watch");
    eprintln!("history from 200 is read from the change log");
    let (events, synced) = must_drain(&mut w).await;
    assert_eq!(events, vec![put_event(kv(b"b", b"1", 200, 200, 1)), del_event(b"a", 300)]);
    assert_eq!(synced, 300);

    eprintln!("live writes after the watch come from the hub buffer");
    fx.must_apply_all(&[put(b"a", b"2"), put(b"b", b"2")]);
    tokio::time::timeout(Duration::from_secs(5), w.changed()).await.expect("woken by apply");
    let (events, synced) = must_drain(&mut w).await;
    assert_eq!(
        events,
        vec![put_event(kv(b"a", b"2", 400, 400, 1)), put_event(kv(b"b", b"2", 200, 500, 2))]
    );
    assert_eq!(synced, 500);
}

#[tokio::test]
async fn a_watch_from_now_sees_only_later_writes_and_its_own_keys() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&[put(b"a", b"1")]);
    let mut single = fx.store.watch(spec(b"a", b""), 0).expect("watch");
    let mut prefix = fx.store.watch(spec(b"a", b"b"), 0).expect("watch");
    assert_eq!(must_drain(&mut single).await, (vec![], 100));
    fx.must_apply_all(&[put(b"ab", b"1"), put(b"a", b"2"), put(b"b", b"1")]);
    let (single_events, _) = must_drain(&mut single).await;
    assert_eq!(single_events, vec![put_event(kv(b"a", b"2", 100, 300, 2))]);
    let (prefix_events, synced) = must_drain(&mut prefix).await;
    let keys: Vec<&[u8]> = prefix_events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(keys, vec![b"ab".as_slice(), b"a".as_slice()]);
    assert_eq!(synced, 400);
}

#[tokio::test]
async fn filters_and_prev_kv_apply_to_history_and_live_events() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&[put(b"k", b"1"), put(b"k", b"2")]);
    let with_prev = WatchSpec { prev_kv: true, ..spec(b"k", b"") };
    let no_put = WatchSpec { no_put: true, ..spec(b"k", b"") };
    let no_delete = WatchSpec { no_delete: true, ..spec(b"k", b"") };
    let mut w_prev = fx.store.watch(with_prev, 100).expect("watch");
    let mut w_no_put = fx.store.watch(no_put, 100).expect("watch");
    let mut w_no_delete = fx.store.watch(no_delete, 100).expect("watch");
    fx.must_apply_all(&[del(b"k", b""), put(b"k", b"3")]);

    let (events, _) = must_drain(&mut w_prev).await;
    let prev = |e: &Event| e.prev_kv.as_ref().map(|p| (p.mod_revision, p.value.clone()));
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.kv.mod_revision, prev(e))).collect();
    assert_eq!(
        kinds,
        vec![
            (EventType::Put, 100, None),
            (EventType::Put, 200, Some((100, b"1".to_vec()))),
            (EventType::Delete, 300, Some((200, b"2".to_vec()))),
            (EventType::Put, 400, None),
        ]
    );
    let (events, _) = must_drain(&mut w_no_put).await;
    assert_eq!(events, vec![del_event(b"k", 300)]);
    let (events, _) = must_drain(&mut w_no_delete).await;
    let revisions: Vec<i64> = events.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(revisions, vec![100, 200, 400]);
}

#[tokio::test]
async fn a_compacted_start_revision_ends_the_watch_with_the_compacted_revision() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&[put(b"a", b"1"), put(b"a", b"2"), put(b"a", b"3")]);
    fx.must_apply(WriteOp::Compact(CompactionRequest { revision: 200, physical: false }))
        .expect("compact");
    let mut old = fx.store.watch(spec(b"a", b""), 100).expect("watch");
    assert_eq!(old.next_step().await.ok(), Some(WatchStep::Compacted { compact_revision: 200 }));
    assert_eq!(old.next_step().await.ok(), Some(WatchStep::Compacted { compact_revision: 200 }));
    eprintln!("the compacted revision itself is still watchable (etcd keeps it)");
    let mut at = fx.store.watch(spec(b"a", b""), 200).expect("watch");
    let (events, _) = must_drain(&mut at).await;
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), vec![200, 300]);
    drop(old);
    assert_eq!(fx.store.watch_hub().watcher_count(), 1, "an ended watcher leaves the hub");
}

#[tokio::test]
async fn a_lagging_watcher_drops_its_buffer_and_catches_up_from_storage() {
    let mut fx = Fixture::must_open();
    let mut slow = fx.store.watch(spec(b"", b"\0"), 0).expect("watch");
    let mut fast = fx.store.watch(spec(b"", b"\0"), 0).expect("watch");
    let writes = WATCHER_BUFFER_EVENTS_MAX * 3;
    let mut fast_seen = Vec::new();
    eprintln!("the slow watcher never reads while {writes} writes go in; the fast one reads");
    for i in 0..writes {
        let key = format!("k{:05}", i % 700);
        fx.must_apply(put(key.as_bytes(), b"v")).expect("put");
        if i % 100 == 0 {
            fast_seen.extend(must_drain(&mut fast).await.0);
        }
        // The fast watcher holds at most 100 events; the slow one never more than its bound.
        assert!(fx.store.watch_hub().buffered_events() <= WATCHER_BUFFER_EVENTS_MAX + 100);
    }
    fast_seen.extend(must_drain(&mut fast).await.0);
    let (slow_seen, synced) = must_drain(&mut slow).await;
    let expected: Vec<i64> = (1..=writes as i64).map(|i| 100 * i).collect();
    let revisions = |events: &[Event]| events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>();
    assert_eq!(revisions(&fast_seen), expected);
    assert_eq!(revisions(&slow_seen), expected, "no gap and no duplicate after catching up");
    assert_eq!(slow_seen, fast_seen);
    assert_eq!(synced, 100 * writes as i64);

    eprintln!("after catching up the slow watcher is live again");
    fx.must_apply(put(b"z", b"1")).expect("put");
    let (events, _) = must_drain(&mut slow).await;
    assert_eq!(revisions(&events), vec![100 * (writes as i64 + 1)]);
}

#[tokio::test]
async fn a_revision_larger_than_a_step_is_handed_out_whole() {
    let mut fx = Fixture::must_open();
    let keys = WATCHER_BUFFER_EVENTS_MAX + WATCH_STEP_EVENTS_MAX / 2;
    let mut live = fx.store.watch(spec(b"k", b"l"), 0).expect("watch");
    eprintln!("{keys} puts, then one DeleteRange of all of them: one revision of {keys} events");
    for i in 0..keys {
        fx.must_apply(put(format!("k{i:05}").as_bytes(), b"v")).expect("put");
        if i % 500 == 0 {
            must_drain_steps(&mut live).await;
        }
    }
    must_drain_steps(&mut live).await;
    fx.must_apply(del(b"k", b"l")).expect("delete range");
    let deleted_at = 100 * (keys as i64 + 1);

    eprintln!("the live watcher lagged (the revision is larger than its buffer) and caught up");
    let (steps, synced) = must_drain_steps(&mut live).await;
    assert_eq!(synced, deleted_at);
    assert_eq!(steps.len(), 1, "one step holds the whole revision");
    assert_eq!(steps[0].len(), keys);

    eprintln!("a watcher reading it all from history gets every revision whole");
    let mut history = fx.store.watch(spec(b"k", b"l"), 1).expect("watch");
    let (steps, _) = must_drain_steps(&mut history).await;
    let last = steps.last().expect("steps");
    let deletes: Vec<&Event> = last.iter().filter(|e| e.kv.mod_revision == deleted_at).collect();
    assert_eq!(deletes.len(), keys, "the DeleteRange's events are all in the last step");
    assert!(deletes.iter().all(|e| e.kind == EventType::Delete));
    assert_eq!(steps.concat().len(), 2 * keys);
}

#[tokio::test]
async fn watchers_joining_while_a_writer_applies_see_exactly_the_change_log() {
    let fx = Fixture::must_open();
    let store = fx.store.clone();
    let writes = 3_000usize;
    eprintln!("a writer thread applies {writes} writes while watchers join at various revisions");
    let writer = std::thread::spawn(move || {
        let mut state = store.load_apply_state().expect("state");
        for i in 1..=writes as u64 {
            let op = if i % 7 == 0 {
                del(format!("k{:03}", i % 50).as_bytes(), b"")
            } else {
                put(format!("k{:03}", i % 50).as_bytes(), b"v")
            };
            let cmd = RaftCommand { revision_stamp: 10 * i as i64, op };
            store.apply(&mut state, i, &cmd, &MvccLimits::default()).expect("apply").ok();
        }
        state.revision
    });
    let mut watchers = Vec::new();
    for start in [10i64, 2_000, 9_000, 0] {
        watchers.push((start, fx.store.watch(spec(b"k", b"l"), start).expect("watch")));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut seen: Vec<Vec<Event>> = vec![Vec::new(); watchers.len()];
    let last = loop {
        for (i, (_, w)) in watchers.iter_mut().enumerate() {
            seen[i].extend(must_drain(w).await.0);
        }
        if writer.is_finished() {
            break writer.join().expect("writer");
        }
        tokio::task::yield_now().await;
    };
    for (i, (_, w)) in watchers.iter_mut().enumerate() {
        let (events, synced) = must_drain(w).await;
        seen[i].extend(events);
        assert_eq!(synced, last);
    }
    let first_live = seen[3].first().map(|e| e.kv.mod_revision).unwrap_or(i64::MAX);
    for (i, (start, _)) in watchers.iter().enumerate() {
        let revisions: Vec<i64> = seen[i].iter().map(|e| e.kv.mod_revision).collect();
        let from = if *start > 0 { *start } else { first_live };
        // Deletes of a key already deleted change nothing and take no revision.
        let all = must_change_log(&fx, from, last);
        assert_eq!(revisions, all, "watcher from {start}: every change once, in order");
    }
}

/// Revisions in the change log of keys under `k`, from `from` to `to`, read from the raw
/// keyspace (not through the watch code).
fn must_change_log(fx: &Fixture, from: i64, to: i64) -> Vec<i64> {
    let mut out = Vec::new();
    for guard in fx.storage.changes.iter() {
        let raw = guard.key().expect("key");
        let revision = u64::from_be_bytes(raw[..8].try_into().expect("prefix")) as i64;
        if revision >= from && revision <= to && raw[8] == b'k' {
            out.push(revision);
        }
    }
    out
}

#[tokio::test]
async fn a_watch_sees_only_its_own_shards_keys_in_the_shared_change_log() {
    let fx = Fixture::must_open_range(ShardRange { start: b"a".to_vec(), end: b"m".to_vec() });
    let other = MvccStore::new(
        fx.storage.clone(),
        atoll_proto::ShardId(8),
        ShardRange { start: b"m".to_vec(), end: Vec::new() },
    );
    let mut fx = fx;
    let mut other_state = other.load_apply_state().expect("state");
    fx.must_apply_all(&[put(b"b", b"1")]);
    let cmd = RaftCommand { revision_stamp: 150, op: put(b"x", b"1") };
    other.apply(&mut other_state, 1, &cmd, &MvccLimits::default()).expect("apply").ok();
    fx.must_apply_all(&[put(b"c", b"1")]);
    let mut w = fx.store.watch(spec(b"", b"\0"), 1).expect("watch");
    let (events, _) = must_drain(&mut w).await;
    let keys: Vec<&[u8]> = events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(keys, vec![b"b".as_slice(), b"c".as_slice()]);
}

#[tokio::test]
async fn a_closed_revision_raises_the_floor_and_wakes_a_waiting_watcher() {
    let mut fx = Fixture::must_open();
    fx.must_apply_all(&[put(b"a", b"1")]);
    let mut w = fx.store.watch(spec(b"a", b""), 0).expect("watch");
    assert_eq!(must_drain(&mut w).await, (vec![], 100));
    w.wake_at(5_000);
    eprintln!("closing at 5000 publishes the revision without events and wakes the watcher");
    let close = atoll_proto::CloseRequest { shard: SHARD, revision: 5_000 };
    fx.must_apply(WriteOp::Close(close.clone())).expect("close");
    assert_eq!(fx.state.revision, 5_000);
    tokio::time::timeout(Duration::from_secs(5), w.changed()).await.expect("woken by the close");
    assert_eq!(must_drain(&mut w).await, (vec![], 5_000));
    eprintln!("a later write gets a revision above the closed one, whatever its stamp");
    fx.must_apply_all(&[put(b"a", b"2")]);
    let (events, _) = must_drain(&mut w).await;
    assert_eq!(events.iter().map(|e| e.kv.mod_revision).collect::<Vec<_>>(), vec![5_001]);
    eprintln!("closing below the current revision changes nothing");
    let close = atoll_proto::CloseRequest { shard: SHARD, revision: 10 };
    fx.must_apply(WriteOp::Close(close)).expect("close");
    assert_eq!(fx.state.revision, 5_001);
}
