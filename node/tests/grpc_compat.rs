//! The `etcd-client` crate (a real etcd v3 client library) against a 3-node Atoll cluster with
//! several shards, over the etcd gRPC gateway: every KV option, watches, leases, the
//! maintenance, cluster and auth answers, and etcd's error codes and texts.

mod support;

use etcd_client::{
    AlarmAction, AlarmType, Client, CompactionOptions, Compare, CompareOp, DeleteOptions,
    GetOptions, LeaseGrantOptions, LeaseTimeToLiveOptions, MemberAddOptions, PutOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use std::time::{Duration, Instant};
use support::cluster::TestCluster;
use support::etcd::{must_connect, must_member_add, status};
use tonic::Code;

fn keys(resp: &etcd_client::GetResponse) -> Vec<String> {
    resp.kvs().iter().map(|kv| String::from_utf8_lossy(kv.key()).into_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_client_library_works_against_a_sharded_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, "/b/,/m/");
    cluster.must_start_all();
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let mut a = must_connect(&endpoints[0]).await;
    let mut b = must_connect(&endpoints[1]).await;
    let mut c = must_connect(&endpoints[2]).await;

    // Put: prev_kv, ignore_value; keys in several shards through several members.
    let first = a.put("/a/1", "one", None).await.expect("put");
    let r1 = first.header().expect("header").revision();
    b.put("/b/1", "two", None).await.expect("put");
    c.put("/m/1", "three", None).await.expect("put");
    let replaced =
        b.put("/a/1", "uno", Some(PutOptions::new().with_prev_key())).await.expect("put");
    let prev = replaced.prev_key().expect("prev kv");
    assert_eq!((prev.value(), prev.mod_revision(), prev.version()), (&b"one"[..], r1, 1));
    let kept = c.put("/a/1", "", Some(PutOptions::new().with_ignore_value())).await.expect("put");
    let r_ignore = kept.header().expect("header").revision();
    let got = a.get("/a/1", None).await.expect("get");
    let kv = &got.kvs()[0];
    assert_eq!((kv.value(), kv.version(), kv.mod_revision()), (&b"uno"[..], 3, r_ignore));
    assert_eq!(kv.create_revision(), r1);
    let header = got.header().expect("header");
    assert!(header.cluster_id() != 0 && header.member_id() != 0 && header.raft_term() > 0);
    let (code, message) =
        status(a.put("/none", "", Some(PutOptions::new().with_ignore_value())).await);
    assert_eq!((code, message.as_str()), (Code::InvalidArgument, "etcdserver: key not found"));

    // Get: a prefix across shards, limit, sort, keys_only, count_only, serializable, revision
    // and the min/max filters.
    let all = b.get("/", Some(GetOptions::new().with_prefix())).await.expect("get");
    assert_eq!(keys(&all), ["/a/1", "/b/1", "/m/1"]);
    assert_eq!((all.count(), all.more()), (3, false));
    let limited =
        c.get("/", Some(GetOptions::new().with_prefix().with_limit(2))).await.expect("get");
    assert_eq!(
        (keys(&limited), limited.count(), limited.more()),
        (vec!["/a/1".into(), "/b/1".into()], 3, true)
    );
    let sorted = a
        .get(
            "/",
            Some(GetOptions::new().with_prefix().with_sort(SortTarget::Key, SortOrder::Descend)),
        )
        .await
        .expect("get");
    assert_eq!(keys(&sorted), ["/m/1", "/b/1", "/a/1"]);
    let by_version = a
        .get(
            "/",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Version, SortOrder::Descend)
                    .with_limit(1),
            ),
        )
        .await
        .expect("get");
    assert_eq!(keys(&by_version), ["/a/1"], "version 3 is the highest");
    let keys_only =
        a.get("/", Some(GetOptions::new().with_prefix().with_keys_only())).await.expect("get");
    assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()));
    let count_only =
        a.get("/", Some(GetOptions::new().with_prefix().with_count_only())).await.expect("get");
    assert_eq!((count_only.kvs().len(), count_only.count()), (0, 3));
    let serializable =
        c.get("/b/1", Some(GetOptions::new().with_serializable())).await.expect("get");
    assert!(serializable.kvs().len() <= 1, "a serializable read may lag but never invents keys");
    let old = a.get("/a/1", Some(GetOptions::new().with_revision(r1))).await.expect("get");
    assert_eq!(old.kvs()[0].value(), b"one");
    let newer = a
        .get("/", Some(GetOptions::new().with_prefix().with_min_mod_revision(r1 + 1)))
        .await
        .expect("get");
    assert_eq!(keys(&newer), ["/a/1", "/b/1", "/m/1"], "every key changed after r1");
    let created_first = a
        .get("/", Some(GetOptions::new().with_prefix().with_max_create_revision(r1)))
        .await
        .expect("get");
    assert_eq!(keys(&created_first), ["/a/1"]);

    // Txn: the Kubernetes shapes, every compare target, a nested txn; the errors.
    let create = Txn::new()
        .when([Compare::mod_revision("/m/pod", CompareOp::Equal, 0)])
        .and_then([TxnOp::put("/m/pod", "v1", None)])
        .or_else([TxnOp::get("/m/pod", None)]);
    let created = a.txn(create.clone()).await.expect("txn");
    assert!(created.succeeded());
    let rev = created.header().expect("header").revision();
    let again = b.txn(create).await.expect("txn");
    assert!(!again.succeeded());
    match &again.op_responses()[..] {
        [TxnOpResponse::Get(g)] => assert_eq!(g.kvs()[0].mod_revision(), rev),
        other => panic!("unexpected {other:?}"),
    }
    let guarded = Txn::new()
        .when([
            Compare::version("/m/pod", CompareOp::Equal, 1),
            Compare::create_revision("/m/pod", CompareOp::Equal, rev),
            Compare::value("/m/pod", CompareOp::Equal, "v1"),
            Compare::lease("/m/pod", CompareOp::Equal, 0),
            Compare::mod_revision("/m/", CompareOp::Greater, 0).with_prefix(),
        ])
        .and_then([
            TxnOp::put("/m/pod", "v2", Some(PutOptions::new().with_prev_key())),
            TxnOp::txn(Txn::new().and_then([TxnOp::delete("/m/1", None)])),
        ]);
    let updated = c.txn(guarded).await.expect("txn");
    assert!(updated.succeeded());
    match &updated.op_responses()[..] {
        [TxnOpResponse::Put(p), TxnOpResponse::Txn(inner)] => {
            assert_eq!(p.prev_key().expect("prev").value(), b"v1");
            match &inner.op_responses()[..] {
                [TxnOpResponse::Delete(d)] => assert_eq!(d.deleted(), 1),
                other => panic!("unexpected {other:?}"),
            }
        }
        other => panic!("unexpected {other:?}"),
    }
    let ops: Vec<TxnOp> = (0..129).map(|i| TxnOp::get(format!("/m/{i}"), None)).collect();
    let (code, message) = status(a.txn(Txn::new().and_then(ops)).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: too many operations in txn request")
    );
    let twice = Txn::new().and_then([TxnOp::put("/m/x", "1", None), TxnOp::put("/m/x", "2", None)]);
    let (code, message) = status(a.txn(twice).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: duplicate key given in txn request")
    );
    let spanning =
        Txn::new().and_then([TxnOp::put("/a/x", "1", None), TxnOp::put("/m/x", "2", None)]);
    let (code, message) = status(a.txn(spanning).await);
    assert_eq!(code, Code::InvalidArgument);
    assert!(message.contains("a txn whose keys span shards is not supported"), "{message}");

    // Delete: prev_kv over a range spanning shards.
    let deleted = b
        .delete("/", Some(DeleteOptions::new().with_prefix().with_prev_key()))
        .await
        .expect("delete");
    assert_eq!(deleted.deleted(), 3);
    let gone: Vec<String> = deleted
        .prev_kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert_eq!(gone, ["/a/1", "/b/1", "/m/pod"]);
    assert_eq!(a.get("/", Some(GetOptions::new().with_prefix())).await.expect("get").count(), 0);

    // Compact (physical) at the newest revision; reads below it and above the store fail.
    let last = a.put("/c/1", "x", None).await.expect("put").header().expect("header").revision();
    a.compact(last, Some(CompactionOptions::new().with_physical())).await.expect("compact");
    let (code, message) =
        status(b.get("/c/1", Some(GetOptions::new().with_revision(last - 1))).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
    );
    let (code, message) = status(c.compact(last - 1, None).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::OutOfRange, "etcdserver: mvcc: required revision has been compacted")
    );
    let (code, message) =
        status(b.get("/c/1", Some(GetOptions::new().with_revision(last * 2))).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::OutOfRange, "etcdserver: mvcc: required revision is a future revision")
    );

    // Maintenance: status names one leader; every member reports the same hash once the
    // writes are applied everywhere; no alarm; defragment succeeds.
    let mut leaders = Vec::new();
    for client in [&mut a, &mut b, &mut c] {
        let s = client.status().await.expect("status");
        assert!(s.raft_index() > 0 && s.raft_term() > 0 && !s.is_learner());
        leaders.push(s.leader());
    }
    assert!(leaders.iter().all(|l| *l == leaders[0] && *l != 0), "{leaders:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut hashes = Vec::new();
        for client in [&mut a, &mut b, &mut c] {
            let h = client.hash_kv(0).await.expect("hashkv");
            assert_eq!(h.compact_version(), last);
            hashes.push(h.hash());
        }
        if hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "hashes differ: {hashes:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let alarms = a.alarm(AlarmAction::Get, AlarmType::None, None).await.expect("alarm");
    assert!(alarms.alarms().is_empty());
    a.defragment().await.expect("defragment");

    // Cluster: three started voters with their peer URLs.
    let members = b.member_list().await.expect("member list");
    let mut names: Vec<&str> = members.members().iter().map(|m| m.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["n1", "n2", "n3"]);
    assert!(members.members().iter().all(|m| !m.is_learner() && m.id() != 0));
    // A learner that never starts: added, not promotable, removed (decision D18).
    let learner = MemberAddOptions::new().with_is_learner();
    let added = must_member_add(&mut b, &["https://127.0.0.1:1"], Some(learner)).await;
    let id = added.member().expect("the added member").id();
    assert_eq!(added.member_list().len(), 4);
    assert!(added.member().is_some_and(|m| m.is_learner() && m.name().is_empty()));
    let (code, message) = status(b.member_promote(id).await);
    assert_eq!(code, Code::FailedPrecondition);
    assert_eq!(
        message,
        "etcdserver: can only promote a learner member which is in sync with leader"
    );
    let (code, message) = status(a.member_add(["https://127.0.0.1:1"], None).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::AlreadyExists, "etcdserver: Peer URLs already exists")
    );
    let removed = a.member_remove(id).await.expect("member remove");
    assert_eq!(removed.members().len(), 3);
    let (code, message) = status(a.member_remove(id).await);
    assert_eq!((code, message.as_str()), (Code::NotFound, "etcdserver: member not found"));

    // Watch: history from a revision then live events, prev_kv, across shards (merged in
    // revision order), a progress request, cancel; a compacted start revision cancels.
    let start = a.put("/w/a", "1", None).await.expect("put").header().expect("h").revision();
    let mut stream = b
        .watch(
            "/",
            Some(WatchOptions::new().with_prefix().with_prev_key().with_start_revision(start)),
        )
        .await
        .expect("watch");
    a.put("/b/w", "2", None).await.expect("put");
    c.put("/w/a", "3", None).await.expect("put");
    b.delete("/b/w", None).await.expect("delete");
    let mut seen = Vec::new();
    let mut watch_id = None;
    while seen.len() < 4 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("events in time")
            .expect("stream ok")
            .expect("stream open");
        watch_id.get_or_insert(resp.watch_id());
        for e in resp.events() {
            let kv = e.kv().expect("kv");
            let prev = e.prev_kv().map(|p| String::from_utf8_lossy(p.value()).into_owned());
            seen.push((
                format!("{:?}", e.event_type()),
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.mod_revision(),
                prev,
            ));
        }
    }
    let order: Vec<(&str, &str, Option<&str>)> =
        seen.iter().map(|(t, k, _, p)| (t.as_str(), k.as_str(), p.as_deref())).collect();
    assert_eq!(
        order,
        [
            ("Put", "/w/a", None),
            ("Put", "/b/w", None),
            ("Put", "/w/a", Some("1")),
            ("Delete", "/b/w", Some("2")),
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].2 < w[1].2), "strict revision order: {seen:?}");
    stream.request_progress().await.expect("progress");
    let progress = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("progress in time")
        .expect("ok")
        .expect("open");
    assert!(progress.events().is_empty() && progress.watch_id() == -1, "{progress:?}");
    assert!(progress.header().expect("header").revision() >= seen[3].2);
    stream.cancel(watch_id.expect("id")).await.expect("cancel");
    let canceled = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("cancel in time")
        .expect("ok")
        .expect("open");
    assert!(canceled.canceled(), "{canceled:?}");
    let mut old = a
        .watch("/c/", Some(WatchOptions::new().with_prefix().with_start_revision(last - 1)))
        .await
        .expect("watch");
    let mut compacted = None;
    while compacted.is_none() {
        let resp = tokio::time::timeout(Duration::from_secs(10), old.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("open");
        if resp.canceled() {
            compacted = Some(resp.compact_revision());
        }
    }
    assert_eq!(compacted, Some(last));

    // Auth is disabled.
    c.auth_disable().await.expect("disabling disabled auth succeeds, as in etcd");
    assert!(c.role_list().await.expect("role list").roles().is_empty());
    let (code, message) = status(c.auth_enable().await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: root user does not exist")
    );

    must_serve_leases(&mut a, &mut b, &mut c).await;
}

/// The Lease service: grant (server- and client-chosen IDs), keys attached in three shards,
/// time-to-live with keys, the keepalive stream, list, revoke; etcd's errors.
async fn must_serve_leases(a: &mut Client, b: &mut Client, c: &mut Client) {
    let granted = a.lease_grant(600, None).await.expect("grant");
    let id = granted.id();
    assert!(id > 0 && granted.ttl() == 600, "{granted:?}");
    let header = granted.header().expect("header");
    assert!(header.revision() > 0, "the store's revision, as etcd's lease answers: {header:?}");
    for (i, key) in ["/a/leased", "/b/leased", "/m/leased"].iter().enumerate() {
        let client = [&mut *a, &mut *b, &mut *c].into_iter().nth(i).expect("client");
        client.put(*key, "v", Some(PutOptions::new().with_lease(id))).await.expect("attach");
    }
    let got = c.get("/m/leased", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), id);
    let ttl = b
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!((ttl.id(), ttl.granted_ttl()), (id, 600));
    assert!(ttl.ttl() > 0 && ttl.ttl() <= 600, "{ttl:?}");
    let attached: Vec<&[u8]> = ttl.keys().iter().map(Vec::as_slice).collect();
    assert_eq!(attached, [&b"/a/leased"[..], b"/b/leased", b"/m/leased"]);
    let (mut keeper, mut stream) = c.lease_keep_alive(id).await.expect("keepalive stream");
    for _ in 0..2 {
        keeper.keep_alive().await.expect("send keepalive");
        let renewed = stream.message().await.expect("answer").expect("stream open");
        assert_eq!((renewed.id(), renewed.ttl()), (id, 600));
    }
    let chosen = b.lease_grant(1, Some(LeaseGrantOptions::new().with_id(0x1234))).await;
    let chosen = chosen.expect("grant a chosen ID");
    assert_eq!(chosen.id(), 0x1234);
    assert!(chosen.ttl() >= 1, "a TTL below the minimum is raised, never lowered");
    let (code, message) =
        status(a.lease_grant(60, Some(LeaseGrantOptions::new().with_id(id))).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::FailedPrecondition, "etcdserver: lease already exists")
    );
    let (code, message) = status(a.lease_grant(9_000_000_001, None).await);
    assert_eq!((code, message.as_str()), (Code::OutOfRange, "etcdserver: too large lease TTL"));
    let listed: Vec<i64> =
        a.leases().await.expect("leases").leases().iter().map(|l| l.id()).collect();
    assert!(listed.contains(&id), "{listed:?}");

    a.lease_revoke(id).await.expect("revoke");
    let left = b.get("/", Some(GetOptions::new().with_prefix())).await.expect("get");
    assert!(!keys(&left).iter().any(|k| k.ends_with("/leased")), "{:?}", keys(&left));
    let gone = c.lease_time_to_live(id, None).await.expect("time to live of a revoked lease");
    assert_eq!(gone.ttl(), -1, "etcd answers TTL -1 for a lease that is gone");
    let (code, message) = status(b.lease_revoke(id).await);
    assert_eq!((code, message.as_str()), (Code::NotFound, "etcdserver: requested lease not found"));
    let (code, message) =
        status(c.put("/m/late", "v", Some(PutOptions::new().with_lease(id))).await);
    assert_eq!((code, message.as_str()), (Code::NotFound, "etcdserver: requested lease not found"));
    keeper.keep_alive().await.expect("send keepalive");
    let lost = stream.message().await.expect("answer").expect("stream open");
    assert_eq!(lost.ttl(), 0, "etcd answers a keepalive of a gone lease with TTL 0");
}
