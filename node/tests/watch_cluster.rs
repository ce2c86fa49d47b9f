//! A watch served by a follower of a three-member cluster while writers keep writing and the
//! shard's leader is killed: the events are exactly the writes that were applied, each once,
//! in strictly increasing revision order.

mod support;

use atoll_proto::*;
use atoll_router::Client;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::cluster::{TestCluster, until_ok};

/// Upper bound on waiting for anything here; hitting it is a failure.
const DEADLINE: Duration = Duration::from_secs(60);
/// Keys of the first data shard (below the split), the one `endpoint status` reports on.
const PREFIX: &[u8] = b"/a/w/";

/// Index of the member leading the first data shard, as member 0 sees it.
async fn must_leader(cluster: &TestCluster) -> usize {
    let client = cluster.must_client(&[0, 1, 2]).await;
    let mut ids = Vec::new();
    for endpoint in cluster.endpoints(&[0, 1, 2]) {
        let status = until_ok(DEADLINE, "status", || client.status(&endpoint)).await;
        ids.push((status.header.member_id, status.leader));
    }
    let leader = ids.iter().find_map(|(_, l)| (*l != 0).then_some(*l)).expect("a leader");
    ids.iter().position(|(id, _)| *id == leader).expect("leader is a member")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_watch_has_no_gap_or_duplicate_across_a_leader_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, "/s/");
    cluster.must_start_all();
    let warmup = cluster.must_client(&[0]).await;
    let put = |key: Vec<u8>| PutRequest { key, value: b"v".to_vec(), ..Default::default() };
    until_ok(DEADLINE, "first put", || warmup.put(put(b"/a/start".to_vec()))).await;
    let leader = must_leader(&cluster).await;
    let follower = (leader + 1) % 3;
    eprintln!("phase: watch through member {follower}; member {leader} leads and will be killed");
    let watcher: Client = cluster.must_client(&[follower]).await;
    let create = WatchCreateRequest {
        key: PREFIX.to_vec(),
        range_end: prefix_range_end(PREFIX),
        ..Default::default()
    };
    let (_tx, mut rx) = watcher.watch(WatchRequest::Create(create)).await.expect("watch");
    let created = rx.recv().await.expect("stream").expect("created");
    assert!(created.created && !created.canceled);
    // Every key: three shards merged; closes of idle shards go to their leaders.
    let all = WatchCreateRequest { key: vec![0], range_end: vec![0], ..Default::default() };
    let (_all_tx, mut merged) = watcher.watch(WatchRequest::Create(all)).await.expect("watch");
    let created = merged.recv().await.expect("stream").expect("created");
    assert!(created.created && !created.canceled);

    eprintln!("phase: two writers through the follower; the leader dies after 100 writes");
    let written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let client = watcher.clone();
            let written = Arc::clone(&written);
            tokio::spawn(async move {
                for i in 0..150 {
                    let mut key = PREFIX.to_vec();
                    key.extend_from_slice(format!("{w}/{i:03}").as_bytes());
                    // A write that fails may still have been applied; the final range is
                    // the truth the watch is checked against.
                    let _ = until_ok(DEADLINE, "put", || client.put(put(key.clone()))).await;
                    written.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    let deadline = Instant::now() + DEADLINE;
    while written.load(Ordering::SeqCst) < 100 {
        assert!(Instant::now() < deadline, "writers stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.kill9(leader);
    for w in writers {
        w.await.expect("writer");
    }

    eprintln!("phase: the watch saw exactly the applied writes, once each, in order");
    let everything = RangeRequest {
        key: PREFIX.to_vec(),
        range_end: prefix_range_end(PREFIX),
        ..Default::default()
    };
    let applied = until_ok(DEADLINE, "range", || watcher.range(everything.clone())).await;
    let want: BTreeMap<Vec<u8>, i64> =
        applied.kvs.iter().map(|kv| (kv.key.clone(), kv.mod_revision)).collect();
    assert_eq!(want.len(), 300, "every write was applied (retries write the same key)");
    let last = *want.values().max().expect("writes");
    let mut seen: Vec<(Vec<u8>, i64)> = Vec::new();
    while seen.last().is_none_or(|(_, r)| *r < last) {
        let r = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("events before the deadline")
            .expect("stream works")
            .expect("stream open");
        assert!(!r.canceled, "{r:?}");
        seen.extend(r.events.into_iter().map(|e| (e.kv.key, e.kv.mod_revision)));
    }
    for pair in seen.windows(2) {
        assert!(pair[0].1 < pair[1].1, "strict revision order: {pair:?}");
    }
    // A retried put of the same key after an unacknowledged success is a second version:
    // the watch must show it too, and the key's newest revision is the range's.
    let mut newest: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (key, revision) in &seen {
        newest.insert(key.clone(), *revision);
    }
    assert_eq!(newest, want, "the watch's view ends where the store does");
    // Each key was only put, so its version counts its writes: one event each.
    let writes: i64 = applied.kvs.iter().map(|kv| kv.version).sum();
    assert_eq!(seen.len() as i64, writes, "no gap and (with the strict order) no duplicate");

    eprintln!("phase: the watch merging every shard saw the same events, in the same order");
    let mut merged_seen: Vec<(Vec<u8>, i64)> = Vec::new();
    while merged_seen.last().is_none_or(|(_, r)| *r < last) {
        let r = tokio::time::timeout(DEADLINE, merged.recv())
            .await
            .expect("merged events before the deadline")
            .expect("stream works")
            .expect("stream open");
        assert!(!r.canceled, "{r:?}");
        merged_seen.extend(r.events.into_iter().map(|e| (e.kv.key, e.kv.mod_revision)));
    }
    merged_seen.retain(|(key, _)| key.starts_with(PREFIX));
    assert_eq!(merged_seen, seen);
}
