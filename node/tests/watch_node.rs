//! Watch streams against a real node: history plus live events without gaps, duplicates or
//! reordering under concurrent writers; a client that never reads delays nobody else; a long
//! history does not starve a live watch on the same stream; compaction, progress requests
//! and the refusal of a watch spanning shards.

mod support;

use atoll_proto::watch::INVALID_WATCH_ID;
use atoll_proto::*;
use atoll_router::Client;
use atoll_router::watch::WatchReceiver;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use support::{TestNode, free_port, must_http_get};
use tokio::sync::Barrier;

/// Upper bound on waiting for anything here; hitting it is a failure.
const DEADLINE: Duration = Duration::from_secs(60);

fn create(key: &[u8], range_end: &[u8], start_revision: i64, watch_id: i64) -> WatchRequest {
    WatchRequest::Create(WatchCreateRequest {
        key: key.to_vec(),
        range_end: range_end.to_vec(),
        start_revision,
        watch_id,
        ..Default::default()
    })
}

async fn must_recv(rx: &mut WatchReceiver) -> WatchResponse {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("a watch response before the deadline")
        .expect("watch stream works")
        .expect("watch stream still open")
}

/// Reads responses until watch `id` has delivered an event at `last`; returns its events.
/// A response that does not come before the deadline fails with how far the watch got.
async fn must_events_until(rx: &mut WatchReceiver, id: i64, last: i64) -> Vec<Event> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e: &Event| e.kv.mod_revision < last) {
        let Ok(r) = tokio::time::timeout(DEADLINE, rx.recv()).await else {
            let reached = events.last().map_or(0, |e| e.kv.mod_revision);
            panic!(
                "watch {id} stalled: {} events, the newest at revision {reached}, none since \
                 for {DEADLINE:?}; waiting for revision {last}",
                events.len()
            );
        };
        let r = r.expect("watch stream works").expect("watch stream still open");
        assert!(!r.canceled, "watch canceled: {r:?}");
        if r.watch_id == id {
            events.extend(r.events);
        }
    }
    events
}

async fn must_put(client: &Client, key: &[u8], value: &[u8]) -> i64 {
    let req = PutRequest { key: key.to_vec(), value: value.to_vec(), ..Default::default() };
    client.put(req).await.expect("put").header.revision
}

/// Puts keys `key(0..100)` with `value` in one Txn; returns its revision.
async fn must_put_100(client: &Client, key: impl Fn(usize) -> String, value: &[u8]) -> i64 {
    let success = (0..100)
        .map(|i| {
            let put = PutRequest {
                key: key(i).into_bytes(),
                value: value.to_vec(),
                ..Default::default()
            };
            RequestOp::Put(put)
        })
        .collect();
    let txn = TxnRequest { success, ..Default::default() };
    client.txn(txn).await.expect("txn").header.revision
}

fn assert_strictly_increasing(events: &[Event]) {
    for pair in events.windows(2) {
        assert!(pair[0].kv.mod_revision < pair[1].kv.mod_revision, "order: {pair:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_live_events_have_no_gap_duplicate_or_reordering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    eprintln!("phase: four writers put 150 keys each; watches join before, during and after");
    let first = must_put(&client, b"w/start", b"0").await;
    let (_tx_all, mut from_first) =
        client.watch(create(b"w/", b"w0", first, 1)).await.expect("watch");
    assert!(must_recv(&mut from_first).await.created);
    // The watch "from now" joins once every writer is halfway, while they go on; a sleep
    // instead let it join after the last write on a quiet machine, and then it never saw
    // the event it waited for.
    let halfway = Arc::new(Barrier::new(5));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            let halfway = Arc::clone(&halfway);
            tokio::spawn(async move {
                let mut revisions = Vec::new();
                for i in 0..150 {
                    if i == 75 {
                        halfway.wait().await;
                    }
                    let key = format!("w/{w}/{i:03}");
                    revisions.push(must_put(&client, key.as_bytes(), b"v").await);
                }
                revisions
            })
        })
        .collect();
    halfway.wait().await;
    let (_tx_live, mut live) = client.watch(create(b"w/", b"w0", 0, 2)).await.expect("watch");
    assert!(must_recv(&mut live).await.created);
    let mut written = BTreeSet::from([first]);
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    // A last write after every watch has joined: each of them must deliver it.
    let last = must_put(&client, b"w/end", b"1").await;
    written.insert(last);
    assert_eq!(written.len(), 602, "every put has its own revision");
    let (_tx_late, mut late) = client.watch(create(b"w/", b"w0", first, 3)).await.expect("watch");
    assert!(must_recv(&mut late).await.created);

    eprintln!("phase: each watch sees exactly the writes from its start, in order");
    let all = must_events_until(&mut from_first, 1, last).await;
    assert_strictly_increasing(&all);
    let seen: BTreeSet<i64> = all.iter().map(|e| e.kv.mod_revision).collect();
    assert_eq!(seen, written);
    let late_events = must_events_until(&mut late, 3, last).await;
    assert_eq!(late_events, all, "history read after the fact equals what was seen live");
    let live_events = must_events_until(&mut live, 2, last).await;
    assert!(!live_events.is_empty());
    let start = all.iter().position(|e| *e == live_events[0]).expect("live start is in history");
    assert_eq!(live_events, all[start..], "a watch from now sees a contiguous suffix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_delays_no_other_watch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, http) = TestNode::must_start_with_metrics(dir.path());
    let writer = node.must_client().await;
    let stalled_client = node.must_client().await;
    let fast_client = node.must_client().await;
    eprintln!("phase: a stream whose client never reads, and a fast one on another connection");
    let (_stalled_tx, _stalled_rx) =
        stalled_client.watch(create(b"s/", b"s0", 0, 0)).await.expect("watch");
    let (_fast_tx, mut fast) = fast_client.watch(create(b"s/", b"s0", 0, 0)).await.expect("watch");
    assert!(must_recv(&mut fast).await.created);
    eprintln!("phase: 4,000 events, 40 MiB; the stalled stream fills long before that");
    let value = vec![b'x'; 10 * 1024];
    let mut last = 0;
    for batch in 0..40 {
        last = must_put_100(&writer, |i| format!("s/{batch}/{i}"), &value).await;
        // The fast watch keeps up while the stalled one holds its stream full.
        let events = must_events_until(&mut fast, 0, last).await;
        assert_eq!(events.len(), 100);
    }
    eprintln!("phase: after the bulk, a small write reaches the fast watch at once");
    let small = must_put(&writer, b"s/after", b"1").await;
    let events =
        tokio::time::timeout(Duration::from_secs(5), must_events_until(&mut fast, 0, small))
            .await
            .expect("the fast watch is not held up by the stalled one");
    assert_eq!(events.len(), 1);
    assert!(last < small);
    eprintln!("phase: the stalled watch lags and holds no events in the node's memory");
    let (_, metrics) = must_http_get(http, "/metrics");
    assert!(metrics.contains("atoll_watch_watchers 2\n"), "{metrics}");
    let buffered = metrics
        .lines()
        .find_map(|l| l.strip_prefix("atoll_watch_buffered_events "))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .expect("buffered events metric");
    assert!(buffered <= atoll_shard::limits::WATCHER_BUFFER_EVENTS_MAX, "{buffered} buffered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_does_not_starve_a_live_watch_on_the_same_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    eprintln!("phase: 3,000 events of 10 KiB of history");
    let value = vec![b'h'; 10 * 1024];
    let mut first = 0;
    for batch in 0..30 {
        let revision = must_put_100(&client, |i| format!("h/{batch:02}/{i:03}"), &value).await;
        if first == 0 {
            first = revision;
        }
    }
    eprintln!("phase: one stream, a watch replaying it all and a live watch");
    let (mut tx, mut rx) = client.watch(create(b"h/", b"h0", first, 1)).await.expect("watch");
    tx.create(WatchCreateRequest { key: b"live".to_vec(), watch_id: 2, ..Default::default() })
        .await
        .expect("create");
    let mut history_events = 0;
    let mut live_created = false;
    let mut live_revision = 0;
    loop {
        let r = must_recv(&mut rx).await;
        match r.watch_id {
            1 => history_events += r.events.len(),
            2 if r.created => {
                live_created = true;
                live_revision = must_put(&client, b"live", b"now").await;
            }
            2 => {
                assert_eq!(r.events.len(), 1);
                assert_eq!(r.events[0].kv.mod_revision, live_revision);
                break;
            }
            other => panic!("unexpected watch {other}"),
        }
    }
    assert!(live_created);
    eprintln!("the live event arrived after {history_events} of 3000 history events");
    assert!(history_events < 3000, "the live watch waited for the whole history");
}

#[tokio::test]
async fn a_revision_is_never_split_unless_the_client_asks_for_fragments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limit = 256 * 1024;
    let node =
        TestNode::must_start_with(dir.path(), free_port(), &["--max-request-bytes", "262144"]);
    let client = node.must_client().await;
    let value = vec![b'f'; 10 * 1024];
    let mut first = 0;
    for i in 0..100 {
        let revision = must_put(&client, format!("f/{i:03}").as_bytes(), &value).await;
        first = if first == 0 { revision } else { first };
    }
    eprintln!("phase: one DeleteRange whose 100 events with prev_kv hold 1 MiB, 4x the limit");
    let del = DeleteRangeRequest { key: b"f/".to_vec(), range_end: b"f0".to_vec(), prev_kv: false };
    let deleted_at = client.delete_range(del).await.expect("delete").header.revision;
    let watch = |watch_id, fragment| {
        WatchRequest::Create(WatchCreateRequest {
            key: b"f/".to_vec(),
            range_end: b"f0".to_vec(),
            start_revision: first,
            prev_kv: true,
            watch_id,
            fragment,
            ..Default::default()
        })
    };
    let (_tx, mut whole) = client.watch(watch(1, false)).await.expect("watch");
    let (_tx2, mut split) = client.watch(watch(2, true)).await.expect("watch");

    eprintln!("phase: without fragment the revision comes in one response");
    let mut responses = Vec::new();
    while responses.last().is_none_or(|r: &WatchResponse| {
        r.events.last().is_none_or(|e| e.kv.mod_revision < deleted_at)
    }) {
        responses.push(must_recv(&mut whole).await);
    }
    let last = responses.last().expect("responses");
    assert!(responses.iter().all(|r| !r.fragment));
    assert_eq!(last.events.iter().filter(|e| e.kv.mod_revision == deleted_at).count(), 100);

    eprintln!("phase: with fragment it comes in pieces of at most the limit, joined by the flag");
    let mut pieces: Vec<WatchResponse> = Vec::new();
    let mut joined: Vec<Event> = Vec::new();
    while joined.len() < 200 {
        let r = must_recv(&mut split).await;
        if r.events.is_empty() {
            continue;
        }
        let bytes: usize = r.events.iter().map(atoll_shard::watch::event_bytes).sum();
        assert!(bytes <= limit || r.events.len() == 1, "a fragment of {bytes} bytes");
        joined.extend(r.events.iter().cloned());
        pieces.push(r);
    }
    let deletes: Vec<&WatchResponse> =
        pieces.iter().filter(|r| r.events[0].kv.mod_revision == deleted_at).collect();
    assert!(deletes.len() >= 4, "the 1 MiB revision came in {} pieces", deletes.len());
    let flags: Vec<bool> = deletes.iter().map(|r| r.fragment).collect();
    assert!(flags[..flags.len() - 1].iter().all(|f| *f) && !flags[flags.len() - 1], "{flags:?}");
    assert_eq!(joined.len(), 200);
    assert!(joined[100..].iter().all(|e| e.kind == EventType::Delete && e.prev_kv.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_progress_and_ids_follow_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    let r1 = must_put(&client, b"c/a", b"1").await;
    let r2 = must_put(&client, b"c/a", b"2").await;
    client.compact(CompactionRequest { revision: r2, physical: false }).await.expect("compact");

    eprintln!("phase: a compacted start revision is created, then canceled with the revision");
    let (mut tx, mut rx) = client.watch(create(b"c/a", b"", r1, 0)).await.expect("watch");
    let created = must_recv(&mut rx).await;
    assert!(created.created && !created.canceled);
    assert_eq!(created.watch_id, 0, "etcd's first automatic watch ID is 0");
    let canceled = must_recv(&mut rx).await;
    assert!(canceled.canceled);
    assert_eq!(canceled.compact_revision, r2);

    eprintln!("phase: a duplicate watch ID is refused; a progress request is ordered");
    tx.send(create(b"c/", b"c0", r2, 5)).await.expect("create");
    assert!(must_recv(&mut rx).await.created);
    tx.send(create(b"c/", b"c0", 0, 5)).await.expect("create");
    let mut history = Vec::new();
    let mut duplicate = None;
    while history.is_empty() || duplicate.is_none() {
        let r = must_recv(&mut rx).await;
        if r.canceled {
            duplicate = Some(r.cancel_reason);
        } else {
            history.extend(r.events);
        }
    }
    assert_eq!(duplicate.as_deref(), Some("mvcc: duplicate watch ID provided on the WatchStream"));
    let r3 = must_put(&client, b"c/b", b"3").await;
    tx.request_progress().await.expect("progress");
    let mut revisions: Vec<i64> = history.iter().map(|e| e.kv.mod_revision).collect();
    let progress = loop {
        let r = must_recv(&mut rx).await;
        if r.watch_id == INVALID_WATCH_ID {
            break r;
        }
        revisions.extend(r.events.iter().map(|e| e.kv.mod_revision));
    };
    assert!(progress.is_progress_notify());
    assert!(progress.header.revision >= r3, "progress after the last write");
    assert_eq!(revisions, vec![r2, r3], "every event up to the progress revision came first");

    eprintln!("phase: cancel answers canceled and ends the watch");
    tx.cancel(5).await.expect("cancel");
    let r = must_recv(&mut rx).await;
    assert!(r.canceled && r.watch_id == 5 && r.compact_revision == 0);
    must_put(&client, b"c/c", b"4").await;
    tx.request_progress().await.expect("progress");
    let r = must_recv(&mut rx).await;
    assert_eq!(r.watch_id, INVALID_WATCH_ID, "no event of the canceled watch: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_progress_and_a_watch_merging_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let node = TestNode::must_start_with(
        dir.path(),
        port,
        &["--initial-split", "m/", "--experimental-watch-progress-notify-interval", "200ms"],
    );
    let client = node.must_client().await;
    let r = must_put(&client, b"a", b"1").await;
    eprintln!("phase: an idle watch with progress_notify hears from the server periodically");
    let notify =
        WatchCreateRequest { key: b"a".to_vec(), progress_notify: true, ..Default::default() };
    let (tx, mut rx) = client.watch(WatchRequest::Create(notify)).await.expect("watch");
    assert!(must_recv(&mut rx).await.created);
    let tick = must_recv(&mut rx).await;
    assert!(tick.is_progress_notify() && tick.watch_id == 0);
    assert!(tick.header.revision >= r);

    eprintln!("phase: a watch over every key merges three shards in revision order");
    let (_all_tx, mut all) = client.watch(create(b"", b"\0", 0, 1)).await.expect("watch");
    assert!(must_recv(&mut all).await.created);
    let mut written = Vec::new();
    for i in 0..30 {
        // Mostly one shard, so the others are idle and must be closed on demand.
        let key = match i % 5 {
            0 => format!("m/{i:02}"),
            1 => format!("z{i:02}"),
            _ => format!("b{i:02}"),
        };
        written.push((key.clone().into_bytes(), must_put(&client, key.as_bytes(), b"v").await));
    }
    let last = written.iter().map(|(_, r)| *r).max().expect("writes");
    let events = must_events_until(&mut all, 1, last).await;
    assert_strictly_increasing(&events);
    let seen: Vec<(Vec<u8>, i64)> =
        events.iter().map(|e| (e.kv.key.clone(), e.kv.mod_revision)).collect();
    let mut want = written.clone();
    want.sort_by_key(|(_, r)| *r);
    assert_eq!(seen, want, "every write once, in revision order");

    eprintln!("phase: a write to one shard alone is delivered (the idle shards close up to it)");
    let lone = must_put(&client, b"c", b"v").await;
    let events = must_events_until(&mut all, 1, lone).await;
    assert_eq!(events.len(), 1);

    eprintln!("phase: the same history replayed from the first write's revision");
    let first = want[0].1;
    let (_h_tx, mut history) = client.watch(create(b"", b"\0", first, 2)).await.expect("watch");
    assert!(must_recv(&mut history).await.created);
    let replayed = must_events_until(&mut history, 2, lone).await;
    let replayed: Vec<(Vec<u8>, i64)> =
        replayed.iter().map(|e| (e.kv.key.clone(), e.kv.mod_revision)).collect();
    want.push((b"c".to_vec(), lone));
    assert_eq!(replayed, want);

    eprintln!("phase: three writers, one per shard, at once; the merged watch stays ordered");
    let writers: Vec<_> = ["d", "m/w", "zz"]
        .into_iter()
        .map(|prefix| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..50 {
                    let key = format!("{prefix}{i:02}").into_bytes();
                    out.push((key.clone(), must_put(&client, &key, b"v").await));
                }
                out
            })
        })
        .collect();
    let mut concurrent = Vec::new();
    for w in writers {
        concurrent.extend(w.await.expect("writer"));
    }
    // Revisions are strictly increasing per shard; two shards may stamp the same one, so
    // the merged order is by revision, then key.
    concurrent.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let mut seen: Vec<(Vec<u8>, i64)> = Vec::new();
    while seen.len() < concurrent.len() {
        let r = must_recv(&mut all).await;
        seen.extend(r.events.into_iter().map(|e| (e.kv.key, e.kv.mod_revision)));
    }
    assert_eq!(seen, concurrent, "every write once, in (revision, key) order");
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn atollctl_watch_prints_like_etcdctl() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    let first = must_put(&client, b"ctl/k", b"v1").await;
    must_put(&client, b"ctl/k", b"v2").await;
    client
        .delete_range(DeleteRangeRequest { key: b"ctl/k".to_vec(), ..Default::default() })
        .await
        .expect("delete");
    eprintln!(
        "phase: atollctl watch --prefix --rev --prev-kv replays history as etcdctl prints it"
    );
    let data_dir = dir.path().to_str().expect("utf8 path");
    let rev = first.to_string();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_atollctl"))
        .args(["--endpoints", &node.endpoint(), "--data-dir", data_dir])
        .args(["watch", "ctl/", "--prefix", "--rev", &rev, "--prev-kv"])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn atollctl");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let expected = [
        "PUT", "ctl/k", "v1", "PUT", "ctl/k", "v1", "ctl/k", "v2", "DELETE", "ctl/k", "v2",
        "ctl/k", "",
    ];
    while lines.len() < expected.len() {
        match rx.recv_timeout(DEADLINE) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("atollctl printed {lines:?} then {e}"),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(lines, expected);
}
