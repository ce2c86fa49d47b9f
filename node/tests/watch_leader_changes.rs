//! Watches have no gap, no duplicate and strict revision order across repeated leader changes
//! (issue 4). A three-member cluster with three data shards; four writers; watchers through
//! the native client and through the etcd gateway (the `etcd-client` crate), on a prefix
//! inside one shard and on a range spanning every data shard, all started from a past
//! revision so history and live events join. Meanwhile leadership moves (etcd's MoveLeader)
//! and the member leading the first data shard is killed with SIGKILL and restarted, again
//! and again. A watcher whose stream breaks watches again on another member from the
//! revision after its last event, as etcd's clients do; its joined stream is what is
//! checked: exactly the final history read back from the change log, which itself agrees
//! with a final Range and contains every acknowledged write once.

mod support;

use atoll_proto::*;
use atoll_router::{Client, ClientConfig, ClientError, Trust};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::cluster::{TestCluster, until_ok};

/// Upper bound on waiting for anything here; hitting it is a failure.
const DEADLINE: Duration = Duration::from_secs(60);
/// Three data shards: `[.., /m/)`, `[/m/, /s/)`, `[/s/, ..)`.
const SPLIT: &str = "/m/,/s/";
/// (a): a prefix inside the first data shard, the one whose leader is moved and killed.
const ONE_SHARD: &[u8] = b"/a/w/";
/// (b): a range spanning the three data shards.
const SPANNING: (&[u8], &[u8]) = (b"/a/", b"/t/");
/// Writers and the prefix each writes under: two share the first data shard.
const WRITER_PREFIXES: [&str; 4] = ["/a/w/0/", "/a/w/1/", "/m/w/", "/s/w/"];
const WRITES_PER_WRITER: usize = 150;
/// Writes before the watchers start: the history they join.
const HISTORY_WRITES: usize = 20;
/// Leader changes during the run, alternately a MoveLeader and a kill -9 with a restart.
const LEADER_CHANGES: usize = 6;

/// One event as the checks compare it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    revision: i64,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// What the writers did: every value they sent (each attempt's is unique) and the writes
/// acknowledged, with their revisions.
#[derive(Default)]
struct Written {
    attempted: BTreeSet<Vec<u8>>,
    acknowledged: Vec<Seen>,
}

/// Which client library a watcher uses.
#[derive(Clone, Copy, Debug)]
enum Via {
    Native,
    Etcd,
}

/// One watcher: its range, where it starts and the member it watches on first.
#[derive(Clone)]
struct WatchPlan {
    via: Via,
    key: Vec<u8>,
    range_end: Vec<u8>,
    start_revision: i64,
    first_member: usize,
}

/// A joined stream as it grows: every event across re-watches, and how often it watched
/// again. Shared with the test, which stops the watcher once it has what it waits for.
#[derive(Clone, Default)]
struct Joined {
    events: Arc<Mutex<Vec<Seen>>>,
    rewatches: Arc<AtomicUsize>,
}

impl Joined {
    fn last_revision(&self) -> Option<i64> {
        self.events.lock().expect("events").last().map(|e| e.revision)
    }

    fn push(&self, e: Seen) {
        self.events.lock().expect("events").push(e);
    }
}

fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
    key >= start && key < end
}

fn put(key: Vec<u8>, value: Vec<u8>) -> PutRequest {
    PutRequest { key, value, ..Default::default() }
}

/// A native client of `endpoint` only, failing fast when the member is down.
async fn native_client(ca: &[Vec<u8>], endpoint: &str) -> Result<Client, ClientError> {
    let mut cfg = ClientConfig::new(vec![endpoint.to_string()], Trust::CaDer(ca.to_vec()));
    cfg.request_timeout = Duration::from_secs(5);
    cfg.dial_timeout = Duration::from_secs(2);
    cfg.retries_max = 0;
    Client::connect(cfg).await
}

/// A stream's next response, or why the stream is over.
fn next_or_why<T, E: std::fmt::Display>(next: Result<Option<T>, E>) -> Result<T, String> {
    match next {
        Ok(Some(response)) => Ok(response),
        Ok(None) => Err("stream ended".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Adds the events of one watch stream from `from` on to `joined` until the stream breaks;
/// returns why it broke.
async fn watch_once(
    plan: &WatchPlan,
    ca: &[Vec<u8>],
    endpoint: &str,
    from: i64,
    joined: &Joined,
) -> Result<Infallible, String> {
    let (key, range_end) = (plan.key.clone(), plan.range_end.clone());
    match plan.via {
        Via::Native => {
            let client = native_client(ca, endpoint).await.map_err(|e| e.to_string())?;
            let create =
                WatchCreateRequest { key, range_end, start_revision: from, ..Default::default() };
            let (_tx, mut rx) =
                client.watch(WatchRequest::Create(create)).await.map_err(|e| e.to_string())?;
            loop {
                let r = next_or_why(rx.recv().await)?;
                assert!(!r.canceled, "native watch canceled: {r:?}");
                for e in r.events {
                    let (revision, key, value) = (e.kv.mod_revision, e.kv.key, e.kv.value);
                    joined.push(Seen { revision, key, value });
                }
            }
        }
        Via::Etcd => {
            let connected = etcd_client::Client::connect([endpoint], None).await;
            let mut client = connected.map_err(|e| e.to_string())?;
            let options =
                etcd_client::WatchOptions::new().with_range(range_end).with_start_revision(from);
            let mut stream = client.watch(key, Some(options)).await.map_err(|e| e.to_string())?;
            loop {
                let r = next_or_why(stream.message().await)?;
                assert!(!r.canceled(), "etcd watch canceled: {r:?}");
                for e in r.events() {
                    let kv = e.kv().expect("an event has a kv");
                    let (key, value) = (kv.key().to_vec(), kv.value().to_vec());
                    joined.push(Seen { revision: kv.mod_revision(), key, value });
                }
            }
        }
    }
}

/// Watches by `plan` until aborted, watching again on the next member from the revision
/// after the last event whenever a stream breaks (a client of a killed member sees its
/// connection fail: TCP is reset, QUIC's idle timeout or a stateless reset ends it).
async fn watch_joined(plan: WatchPlan, ca: Vec<Vec<u8>>, endpoints: Vec<String>, joined: Joined) {
    let mut member = plan.first_member;
    loop {
        let from = joined.last_revision().map_or(plan.start_revision, |r| r + 1);
        let Err(why) = watch_once(&plan, &ca, &endpoints[member], from, &joined).await;
        eprintln!("{:?} watch on member {member} broke ({why}); watching again", plan.via);
        joined.rewatches.fetch_add(1, Ordering::SeqCst);
        member = (member + 1) % endpoints.len();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `joined` has an event at or above `last`; past the deadline the watch
/// stalled, which fails the test.
async fn must_reach(joined: &Joined, last: i64, what: &str) {
    let deadline = Instant::now() + DEADLINE;
    while joined.last_revision().is_none_or(|r| r < last) {
        assert!(
            Instant::now() < deadline,
            "{what} stalled at {:?}, waiting for revision {last}",
            joined.last_revision()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One writer: puts the keys `indexes` under `prefix`, retrying each until acknowledged;
/// every attempt carries its own value, so a retried write that was applied twice shows as
/// two writes, not as a duplicate event.
async fn write(
    client: Client,
    prefix: &'static str,
    indexes: std::ops::Range<usize>,
    written: Arc<Mutex<Written>>,
    progress: Arc<AtomicUsize>,
) {
    for i in indexes {
        let key = format!("{prefix}{i:03}").into_bytes();
        let deadline = Instant::now() + DEADLINE;
        for attempt in 0.. {
            let value = format!("{prefix}{i:03}#{attempt}").into_bytes();
            written.lock().expect("written").attempted.insert(value.clone());
            match client.put(put(key.clone(), value.clone())).await {
                Ok(r) => {
                    let seen = Seen { revision: r.header.revision, key: key.clone(), value };
                    written.lock().expect("written").acknowledged.push(seen);
                    break;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "put {prefix}{i:03}: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        progress.fetch_add(1, Ordering::SeqCst);
    }
}

/// The member leading the first data shard, as the live members see it; `None` while they
/// know of none.
async fn leader_of_first_shard(cluster: &TestCluster, client: &Client) -> Option<(usize, u64)> {
    let mut ids = BTreeMap::new();
    let mut leader = 0;
    for (i, endpoint) in cluster.endpoints(&[0, 1, 2]).iter().enumerate() {
        if cluster.nodes[i].is_none() {
            continue;
        }
        if let Ok(status) = client.status(endpoint).await {
            ids.insert(status.header.member_id, i);
            leader = leader.max(status.leader);
        }
    }
    ids.get(&leader).map(|i| (*i, leader))
}

/// Member IDs by index (from each member's status).
async fn member_ids(cluster: &TestCluster, client: &Client) -> Vec<u64> {
    let mut ids = Vec::new();
    for endpoint in cluster.endpoints(&[0, 1, 2]) {
        let status = until_ok(DEADLINE, "status", || client.status(&endpoint)).await;
        ids.push(status.header.member_id);
    }
    ids
}

/// Waits until the writers have made `more` further writes (or all finished).
async fn must_progress(progress: &AtomicUsize, from: usize, more: usize) {
    let total = WRITER_PREFIXES.len() * WRITES_PER_WRITER;
    let deadline = Instant::now() + DEADLINE;
    while progress.load(Ordering::SeqCst) < (from + more).min(total) {
        assert!(
            Instant::now() < deadline,
            "writers stalled at {}",
            progress.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Hands leadership away from the first data shard's leader: MoveLeader (through the etcd
/// gateway, as `etcdctl move-leader`) on even rounds, kill -9 and restart on odd ones.
/// Returns whether the leader changed hands.
async fn change_leader(
    cluster: &mut TestCluster,
    client: &Client,
    ids: &[u64],
    round: usize,
    progress: &AtomicUsize,
) -> bool {
    let deadline = Instant::now() + DEADLINE;
    let (leader, leader_id) = loop {
        if let Some(found) = leader_of_first_shard(cluster, client).await {
            break found;
        }
        assert!(Instant::now() < deadline, "no leader of the first data shard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    if round.is_multiple_of(2) {
        // Alternately to each other member, so leaders (and then the kills) move around
        // the members the watchers are attached to.
        let target = ids[(leader + 1 + round / 2 % 2) % 3];
        eprintln!("phase: round {round}: member {leader} moves its leaderships to {target:x}");
        let moved = async {
            let mut etcd = etcd_client::Client::connect([&endpoints[leader]], None).await?;
            etcd.move_leader(target).await
        };
        match moved.await {
            Ok(_) => true,
            Err(e) => {
                eprintln!("move-leader failed: {e}");
                false
            }
        }
    } else {
        eprintln!("phase: round {round}: member {leader} ({leader_id:x}) is killed with -9");
        cluster.kill9(leader);
        let before = progress.load(Ordering::SeqCst);
        must_progress(progress, before, 20).await;
        eprintln!("phase: round {round}: member {leader} restarts");
        tokio::task::block_in_place(|| cluster.must_start(leader));
        true
    }
}

/// Checks the history read back from the change log against the final Range and the
/// writers' record; returns it.
fn must_check_reference(reference: &[Seen], range: &RangeResponse, written: &Written) {
    for pair in reference.windows(2) {
        assert!(pair[0] < pair[1], "order (revision, then key across shards): {pair:?}");
    }
    let values: BTreeSet<&Vec<u8>> = reference.iter().map(|e| &e.value).collect();
    assert_eq!(values.len(), reference.len(), "an event came twice");
    for e in reference {
        assert!(written.attempted.contains(&e.value), "an event nobody wrote: {e:?}");
    }
    for w in &written.acknowledged {
        assert!(reference.contains(w), "acknowledged write missing from the history: {w:?}");
    }
    // Each key was only put: its newest event is the Range's, and it has `version` events.
    let mut per_key: BTreeMap<&[u8], (usize, &Seen)> = BTreeMap::new();
    for e in reference {
        let slot = per_key.entry(&e.key).or_insert((0, e));
        *slot = (slot.0 + 1, e);
    }
    assert_eq!(per_key.len(), range.kvs.len(), "keys in the history and in the Range");
    for kv in &range.kvs {
        let (count, newest) = per_key.get(kv.key.as_slice()).expect("a key of the Range");
        assert_eq!((newest.revision, &newest.value), (kv.mod_revision, &kv.value), "{kv:?}");
        assert_eq!(*count as i64, kv.version, "events of {kv:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_join_history_and_live_events_without_gaps_across_leader_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, SPLIT);
    cluster.must_start_all();
    let client = cluster.must_client(&[0, 1, 2]).await;
    let ca = atoll_router::tls::read_pem_certs(&cluster.root.join("ca/ca.pem")).expect("ca");
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let ids = member_ids(&cluster, &client).await;
    let written = Arc::new(Mutex::new(Written::default()));
    let progress = Arc::new(AtomicUsize::new(0));

    eprintln!("phase: {HISTORY_WRITES} writes per writer before any watch: the history joined");
    for prefix in WRITER_PREFIXES {
        let w = Arc::clone(&written);
        write(client.clone(), prefix, 0..HISTORY_WRITES, w, Arc::clone(&progress)).await;
    }
    let start_revision = {
        let w = written.lock().expect("written");
        w.acknowledged.iter().map(|s| s.revision).min().expect("history written")
    };

    eprintln!("phase: watchers from revision {start_revision} on (a) one shard, (b) all three");
    let plans = [
        (Via::Native, ONE_SHARD.to_vec(), prefix_range_end(ONE_SHARD), 0),
        (Via::Native, SPANNING.0.to_vec(), SPANNING.1.to_vec(), 1),
        (Via::Etcd, ONE_SHARD.to_vec(), prefix_range_end(ONE_SHARD), 2),
        (Via::Etcd, SPANNING.0.to_vec(), SPANNING.1.to_vec(), 0),
    ];
    let watchers: Vec<_> = plans
        .into_iter()
        .map(|(via, key, range_end, first_member)| {
            let plan = WatchPlan { via, key, range_end, start_revision, first_member };
            let joined = Joined::default();
            let task = watch_joined(plan.clone(), ca.clone(), endpoints.clone(), joined.clone());
            (plan, joined, tokio::spawn(task))
        })
        .collect();

    eprintln!("phase: {} writers, {LEADER_CHANGES} leader changes", WRITER_PREFIXES.len());
    let writers: Vec<_> = WRITER_PREFIXES
        .into_iter()
        .map(|prefix| {
            let (w, p) = (Arc::clone(&written), Arc::clone(&progress));
            tokio::spawn(write(client.clone(), prefix, HISTORY_WRITES..WRITES_PER_WRITER, w, p))
        })
        .collect();
    let mut changed = 0;
    for round in 0..LEADER_CHANGES {
        let before = progress.load(Ordering::SeqCst);
        must_progress(&progress, before, 30).await;
        changed += usize::from(change_leader(&mut cluster, &client, &ids, round, &progress).await);
    }
    for w in writers {
        w.await.expect("writer");
    }
    assert!(changed >= LEADER_CHANGES / 2, "leadership changed hands only {changed} times");

    eprintln!("phase: the final Range and the history read back from the change log agree");
    let (start, end) = (SPANNING.0.to_vec(), SPANNING.1.to_vec());
    let everything =
        RangeRequest { key: start.clone(), range_end: end.clone(), ..Default::default() };
    let range = until_ok(DEADLINE, "final range", || client.range(everything.clone())).await;
    let last_in = |key: &[u8], range_end: &[u8]| {
        let kvs = range.kvs.iter().filter(|kv| in_range(&kv.key, key, range_end));
        kvs.map(|kv| kv.mod_revision).max().expect("keys written")
    };
    let plan = WatchPlan {
        via: Via::Native,
        key: start.clone(),
        range_end: end.clone(),
        start_revision,
        first_member: 0,
    };
    let reference = Joined::default();
    let reading = tokio::spawn(watch_joined(plan, ca, endpoints, reference.clone()));
    must_reach(&reference, last_in(&start, &end), "the history read").await;
    reading.abort();
    let reference = reference.events.lock().expect("events").clone();
    let written = std::mem::take(&mut *written.lock().expect("written"));
    must_check_reference(&reference, &range, &written);
    eprintln!(
        "{} events, {} acknowledged writes, {} attempts",
        reference.len(),
        written.acknowledged.len(),
        written.attempted.len()
    );

    eprintln!("phase: every watcher's joined stream is exactly that history, filtered");
    let mut rewatches_total = 0;
    for (plan, joined, task) in watchers {
        let what = format!("{:?} watch of {:?}", plan.via, String::from_utf8_lossy(&plan.key));
        must_reach(&joined, last_in(&plan.key, &plan.range_end), &what).await;
        task.abort();
        let got = joined.events.lock().expect("events").clone();
        let want: Vec<Seen> = reference
            .iter()
            .filter(|e| in_range(&e.key, &plan.key, &plan.range_end))
            .cloned()
            .collect();
        let rewatches = joined.rewatches.load(Ordering::SeqCst);
        rewatches_total += rewatches;
        eprintln!("{what}: {} events, {rewatches} re-watches", got.len());
        if got != want {
            let at = got.iter().zip(&want).position(|(g, w)| g != w).unwrap_or(want.len());
            panic!(
                "{what} differs from the history at event {at} of {}: got {:?}, want {:?}",
                want.len(),
                got.get(at),
                want.get(at)
            );
        }
    }
    // Every member led and was killed while writers wrote, so some stream broke and was
    // joined again; otherwise the joins were not tested.
    assert!(rewatches_total > 0, "no watch stream broke: the kills came too late");
}
