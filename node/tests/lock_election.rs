//! etcd's Lock and Election services against a 3-node Atoll cluster with several shards: the
//! `etcd-client` crate calls them (mutual exclusion, hand-over, lease expiry, clients that
//! give up, campaign, proclaim, leader, observe, resign, etcd's errors), and etcdctl 3.4's
//! `lock` and `elect` (etcd's client-side recipes over KV, Watch and Lease) queue under the
//! same keys.
//!
//! The cluster is split at `/x/7`, inside the prefix `/x/` of the names `/x`: keys
//! `/x/7…` and `/x/1…` live in different shards, so those names exercise the path where a
//! name's keys span shards.

mod support;

use etcd_client::{Client, LeaderKey, LockOptions, ProclaimOptions, ResignOptions};
use std::time::{Duration, Instant};
use support::cluster::TestCluster;
use support::etcd::{must_connect, status};
use support::etcdctl::{Running, must_fail, must_ok};
use tokio::task::JoinHandle;
use tonic::Code;

/// How long a waiter that must stay blocked is watched for before the test moves on.
const STILL_BLOCKED: Duration = Duration::from_millis(500);
/// How long anything that must happen may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `key` exists (`true`) or is gone (`false`).
async fn must_see(client: &mut Client, key: &str, present: bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = !client.get(key, None).await.expect("get").kvs().is_empty();
        if found == present {
            return;
        }
        assert!(Instant::now() < deadline, "{key} never became present={present}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a call that must complete.
async fn must_finish<T>(call: JoinHandle<T>) -> T {
    tokio::time::timeout(PATIENCE, call).await.expect("finishes in time").expect("task ran")
}

/// A lease of `ttl` seconds, with `id` chosen unless 0.
async fn must_grant(client: &mut Client, ttl: i64, id: i64) -> i64 {
    let options = (id != 0).then(|| etcd_client::LeaseGrantOptions::new().with_id(id));
    client.lease_grant(ttl, options).await.expect("grant").id()
}

fn lock_key(name: &str, lease: i64) -> String {
    format!("{name}/{lease:x}")
}

fn leased(lease: i64) -> Option<LockOptions> {
    Some(LockOptions::new().with_lease(lease))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_and_elections_work_against_a_sharded_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, "/b/,/m/,/x/7");
    cluster.must_start_all();
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let mut a = must_connect(&endpoints[0]).await;
    let mut b = must_connect(&endpoints[1]).await;
    let mut c = must_connect(&endpoints[2]).await;

    must_lock(&mut a, &mut b, &mut c).await;
    must_lock_across_shards(&mut a, &mut b).await;
    must_elect(&mut a, &mut b, &mut c).await;
    must_elect_across_shards(&mut a, &mut b, &mut c).await;
    must_share_keys_with_etcdctl(&endpoints, &mut a).await;
}

/// Lock and Unlock on a name inside one shard.
async fn must_lock(a: &mut Client, b: &mut Client, c: &mut Client) {
    eprintln!("phase: an uncontended lock answers its key at once, with the txn's header");
    let la = must_grant(a, 60, 0).await;
    let lb = must_grant(b, 60, 0).await;
    let held = a.lock("/b/lk", leased(la)).await.expect("lock");
    let key_a = lock_key("/b/lk", la);
    assert_eq!(held.key(), key_a.as_bytes());
    let got = c.get(key_a.as_str(), None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!((kv.lease(), kv.value()), (la, &b""[..]));
    assert_eq!(held.header().expect("header").revision(), kv.create_revision());
    let again = a.lock("/b/lk", leased(la)).await.expect("the same lease locks again");
    assert_eq!(again.key(), key_a.as_bytes(), "a lock is re-entrant per lease");

    eprintln!("phase: a second locker waits until the holder unlocks");
    let mut waiter = b.clone();
    let second = tokio::spawn(async move { waiter.lock("/b/lk", leased(lb)).await });
    let key_b = lock_key("/b/lk", lb);
    must_see(c, &key_b, true).await;
    tokio::time::sleep(STILL_BLOCKED).await;
    assert!(!second.is_finished(), "two holders of one lock");
    let unlocked = a.unlock(key_a.as_str()).await.expect("unlock");
    let unlocked_at = unlocked.header().expect("header").revision();
    let handed = must_finish(second).await.expect("the waiter gets the lock");
    assert_eq!(handed.key(), key_b.as_bytes());
    assert!(handed.header().expect("header").revision() >= unlocked_at);

    eprintln!("phase: a holder's lease that expires releases the lock");
    let short = must_grant(c, 1, 0).await;
    let lc = must_grant(c, 60, 0).await;
    b.unlock(key_b.as_str()).await.expect("unlock");
    c.lock("/m/lk", leased(short)).await.expect("lock with a short lease");
    let mut waiter = a.clone();
    let next = tokio::spawn(async move { waiter.lock("/m/lk", leased(lc)).await });
    let taken = must_finish(next).await.expect("the lock is released by the expiry");
    assert_eq!(taken.key(), lock_key("/m/lk", lc).as_bytes());
    must_see(a, &lock_key("/m/lk", short), false).await;

    eprintln!("phase: a waiter whose own lease expires never gets the lock");
    let doomed = must_grant(b, 1, 0).await;
    let mut waiter = b.clone();
    let late = tokio::spawn(async move { waiter.lock("/m/lk", leased(doomed)).await });
    must_see(a, &lock_key("/m/lk", doomed), true).await;
    must_see(a, &lock_key("/m/lk", doomed), false).await;
    a.unlock(taken.key()).await.expect("unlock");
    let (code, message) = status(must_finish(late).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "mutex: session is expired"));

    eprintln!("phase: a waiter whose client gives up leaves the queue");
    let holder = must_grant(a, 60, 0).await;
    let quitter = must_grant(b, 60, 0).await;
    let held = a.lock("/m/lk", leased(holder)).await.expect("lock");
    let mut waiter = b.clone();
    let queued = tokio::spawn(async move { waiter.lock("/m/lk", leased(quitter)).await });
    must_see(a, &lock_key("/m/lk", quitter), true).await;
    queued.abort();
    must_see(a, &lock_key("/m/lk", quitter), false).await;
    a.unlock(held.key()).await.expect("unlock");

    eprintln!("phase: lease 0 locks with a fresh lease of etcd's 60 s session TTL");
    let fresh = c.lock("/m/fresh", None).await.expect("lock without a lease");
    let key = String::from_utf8(fresh.key().to_vec()).expect("utf-8 key");
    let hex = key.strip_prefix("/m/fresh/").expect("under the name");
    let lease = i64::from_str_radix(hex, 16).expect("a lease ID in hex");
    let ttl = c.lease_time_to_live(lease, None).await.expect("time to live");
    assert_eq!(ttl.granted_ttl(), 60);
    c.unlock(key.as_str()).await.expect("unlock");

    eprintln!("phase: errors are etcd's: Unknown with the store's text");
    let (code, message) = status(a.lock("/m/lk", leased(0x5eed)).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "etcdserver: requested lease not found"));
    let header = a.unlock("/m/never-held").await.expect("unlocking a missing key succeeds");
    assert!(header.header().expect("header").revision() > 0);
}

/// A lock named `/x`, whose keys span two shards: one txn cannot read them all.
async fn must_lock_across_shards(a: &mut Client, b: &mut Client) {
    eprintln!("phase: a lock whose keys span shards still excludes and hands over");
    let first = must_grant(a, 60, 0x7001).await;
    let second = must_grant(b, 60, 0x1001).await;
    let held = a.lock("/x", leased(first)).await.expect("lock");
    assert_eq!(held.key(), b"/x/7001");
    let mut waiter = b.clone();
    let queued = tokio::spawn(async move { waiter.lock("/x", leased(second)).await });
    must_see(a, "/x/1001", true).await;
    tokio::time::sleep(STILL_BLOCKED).await;
    assert!(!queued.is_finished(), "the later key must wait though it sorts first");
    a.unlock("/x/7001").await.expect("unlock");
    let handed = must_finish(queued).await.expect("hand-over across shards");
    assert_eq!(handed.key(), b"/x/1001");
    b.unlock("/x/1001").await.expect("unlock");
}

fn leader_key(k: &LeaderKey) -> (String, String, i64, i64) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(k.name()), text(k.key()), k.rev(), k.lease())
}

/// The next announcement on `observed`: (key, value).
async fn must_observe(observed: &mut etcd_client::ObserveStream) -> (String, String) {
    let resp = tokio::time::timeout(PATIENCE, observed.message())
        .await
        .expect("an announcement in time")
        .expect("stream ok")
        .expect("stream open");
    let kv = resp.kv().expect("kv");
    assert!(resp.header().expect("header").revision() >= kv.mod_revision());
    (
        String::from_utf8_lossy(kv.key()).into_owned(),
        String::from_utf8_lossy(kv.value()).into_owned(),
    )
}

/// Campaign, Proclaim, Leader, Observe and Resign on a name inside one shard.
async fn must_elect(a: &mut Client, b: &mut Client, c: &mut Client) {
    eprintln!("phase: no leader yet; an observer waits for the first candidate");
    let (code, message) = status(c.leader("/m/el").await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "election: no leader"));
    let mut observed = c.observe("/m/el").await.expect("observe");

    eprintln!("phase: the first candidate leads at once; the second waits");
    let l1 = must_grant(a, 60, 0).await;
    let l2 = must_grant(b, 60, 0).await;
    let won = a.campaign("/m/el", "one", l1).await.expect("campaign");
    let lead = won.leader().expect("leader key").clone();
    let key1 = lock_key("/m/el", l1);
    assert_eq!(leader_key(&lead), ("/m/el".into(), key1.clone(), lead.rev(), l1));
    assert_eq!(won.header().expect("header").revision(), lead.rev(), "the txn's header");
    assert_eq!(must_observe(&mut observed).await, (key1.clone(), "one".into()));
    let mut rival = b.clone();
    let waiting = tokio::spawn(async move { rival.campaign("/m/el", "two", l2).await });
    let key2 = lock_key("/m/el", l2);
    must_see(c, &key2, true).await;
    tokio::time::sleep(STILL_BLOCKED).await;
    assert!(!waiting.is_finished(), "two leaders of one election");

    eprintln!("phase: the leader proclaims; a stale or missing leader key is refused");
    let proclaim = |k: &LeaderKey| Some(ProclaimOptions::new().with_leader(k.clone()));
    a.proclaim("uno", proclaim(&lead)).await.expect("proclaim");
    let now = c.leader("/m/el").await.expect("leader");
    assert_eq!(now.kv().expect("kv").value(), b"uno");
    assert_eq!(must_observe(&mut observed).await, (key1.clone(), "uno".into()));
    let stale = lead.clone().with_rev(lead.rev() - 1);
    let (code, message) = status(a.proclaim("x", proclaim(&stale)).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "election: not leader"));
    let (code, message) = status(a.proclaim("x", None).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "\"leader\" field must be provided"));
    let (code, message) = status(a.resign(None).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "\"leader\" field must be provided"));

    eprintln!("phase: campaigning again with the same lease announces the new value");
    let again = a.campaign("/m/el", "eins", l1).await.expect("campaign again");
    assert_eq!(leader_key(again.leader().expect("leader key")), leader_key(&lead));
    assert_eq!(must_observe(&mut observed).await, (key1.clone(), "eins".into()));

    eprintln!("phase: resigning hands leadership to the waiting candidate");
    let resign = |k: &LeaderKey| Some(ResignOptions::new().with_leader(k.clone()));
    a.resign(resign(&lead)).await.expect("resign");
    let second = must_finish(waiting).await.expect("the waiter leads");
    let lead2 = second.leader().expect("leader key").clone();
    assert_eq!((lead2.key(), lead2.lease()), (key2.as_bytes(), l2));
    assert_eq!(must_observe(&mut observed).await, (key2.clone(), "two".into()));
    a.resign(resign(&lead)).await.expect("resigning a lost leadership succeeds, as in etcd");

    eprintln!("phase: a candidate whose client gives up resigns");
    let quitter = must_grant(c, 60, 0).await;
    let mut rival = c.clone();
    let queued = tokio::spawn(async move { rival.campaign("/m/el", "q", quitter).await });
    must_see(a, &lock_key("/m/el", quitter), true).await;
    queued.abort();
    must_see(a, &lock_key("/m/el", quitter), false).await;

    eprintln!("phase: the leader's lease ends; a waiter whose lease ends is refused");
    let doomed = must_grant(a, 1, 0).await;
    let mut rival = a.clone();
    let late = tokio::spawn(async move { rival.campaign("/m/el", "late", doomed).await });
    must_see(c, &lock_key("/m/el", doomed), true).await;
    must_see(c, &lock_key("/m/el", doomed), false).await;
    b.lease_revoke(l2).await.expect("revoke");
    let (code, message) = status(must_finish(late).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "election: session expired"));
    let (code, _) = status(c.leader("/m/el").await);
    assert_eq!(code, Code::Unknown, "nobody leads once the leader's lease is gone");
    let (code, message) = status(c.campaign("/m/el", "v", 0x5eed).await);
    assert_eq!((code, message.as_str()), (Code::Unknown, "etcdserver: requested lease not found"));
}

/// An election named `/x`, whose keys span two shards.
async fn must_elect_across_shards(a: &mut Client, b: &mut Client, c: &mut Client) {
    eprintln!("phase: an election whose keys span shards elects the oldest candidate");
    let mut observed = c.observe("/x").await.expect("observe");
    let first = must_grant(a, 60, 0x7003).await;
    let second = must_grant(b, 60, 0x1003).await;
    let won = a.campaign("/x", "seven", first).await.expect("campaign");
    let lead = won.leader().expect("leader key").clone();
    assert_eq!(must_observe(&mut observed).await, ("/x/7003".into(), "seven".into()));
    let mut rival = b.clone();
    let waiting = tokio::spawn(async move { rival.campaign("/x", "one", second).await });
    must_see(c, "/x/1003", true).await;
    let leader = c.leader("/x").await.expect("leader");
    assert_eq!(leader.kv().expect("kv").key(), b"/x/7003", "the oldest key leads, not the lowest");
    a.resign(Some(ResignOptions::new().with_leader(lead))).await.expect("resign");
    let next = must_finish(waiting).await.expect("the waiter leads");
    assert_eq!(next.leader().expect("leader key").key(), b"/x/1003");
    assert_eq!(must_observe(&mut observed).await, ("/x/1003".into(), "one".into()));
    b.lease_revoke(second).await.expect("revoke");
}

/// etcdctl's own lock and election (client-side, over KV, Watch and Lease) interoperate
/// with the services: the same keys, the same queue.
async fn must_share_keys_with_etcdctl(endpoints: &[String], a: &mut Client) {
    let (first, second) = (endpoints[0].as_str(), endpoints[1].as_str());
    eprintln!("phase: etcdctl lock prints its key and holds the lock until interrupted");
    let holder = Running::start(first, &["lock", "/b/ctl"]);
    let printed = holder.lines(2, PATIENCE);
    assert_eq!(printed.len(), 2, "{printed:?}");
    let hex = printed[0].strip_prefix("/b/ctl/").expect("the ownership key");
    assert!(!hex.is_empty() && hex.chars().all(|ch| ch.is_ascii_hexdigit()), "{printed:?}");
    assert_eq!(printed[1], "", "the key's value is empty");
    let lease = must_grant(a, 60, 0).await;
    let mut waiter = a.clone();
    let service = tokio::spawn(async move { waiter.lock("/b/ctl", leased(lease)).await });
    must_see(a, &lock_key("/b/ctl", lease), true).await;
    tokio::time::sleep(STILL_BLOCKED).await;
    assert!(!service.is_finished(), "the service must queue behind etcdctl's key");
    let queued =
        Running::start(second, &["lock", "/b/ctl", "--", "sh", "-c", "echo \"$ETCD_LOCK_KEY\""]);
    assert!(holder.interrupt(), "etcdctl unlocks on SIGINT and exits 0");
    let taken = must_finish(service).await.expect("the service takes the lock next");
    let early = queued.line_within(STILL_BLOCKED);
    assert_eq!(early, None, "etcdctl queued after the service must wait");
    a.unlock(taken.key()).await.expect("unlock");
    let ran = queued.lines(1, PATIENCE);
    assert!(ran.len() == 1 && ran[0].starts_with("/b/ctl/"), "{ran:?}");

    eprintln!("phase: etcdctl elect campaigns and observes over the same keys");
    let observer = Running::start(second, &["elect", "-l", "/b/ctl-el"]);
    let candidate = Running::start(first, &["elect", "/b/ctl-el", "one"]);
    let elected = candidate.lines(2, PATIENCE);
    assert!(elected.len() == 2 && elected[0].starts_with("/b/ctl-el/"), "{elected:?}");
    assert_eq!(elected[1], "one");
    assert_eq!(observer.lines(2, PATIENCE), elected, "the observer prints key and value");
    let leader = a.leader("/b/ctl-el").await.expect("the service sees etcdctl's leader");
    assert_eq!(leader.kv().expect("kv").key(), elected[0].as_bytes());
    let lease = must_grant(a, 60, 0).await;
    let mut rival = a.clone();
    let waiting = tokio::spawn(async move { rival.campaign("/b/ctl-el", "two", lease).await });
    must_see(a, &lock_key("/b/ctl-el", lease), true).await;
    assert!(candidate.interrupt(), "etcdctl resigns on SIGINT and exits 0");
    must_finish(waiting).await.expect("the service's candidate leads next");
    assert_eq!(observer.lines(2, PATIENCE), [lock_key("/b/ctl-el", lease), "two".into()]);

    eprintln!("phase: etcdctl's own mutex cannot span shards: its txn reads the whole prefix");
    let stderr = must_fail(first, &["lock", "/x", "true"]);
    assert!(stderr.contains("span shards"), "{stderr}");
    assert_eq!(must_ok(first, &["get", "/x/", "--prefix", "--keys-only"]), "");
}
