//! A learner on the etcd gRPC gateway (decision D22): three voters and one learner on
//! loopback with several shards. The learner refuses what etcd's learners refuse, with
//! etcd's error, serves Status (is_learner) and every Range, serializable from its own
//! replicas and linearizable through each shard leader's read index, so a read on the
//! learner sees a write the voters acknowledged just before, and RangeStream. The native
//! protocol on the learner serves everything, writes forwarded as from any member. After
//! `member promote` the gateway serves everything.

mod support;

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, MemberAddOptions, PutOptions, Txn, TxnOp,
};
use std::time::{Duration, Instant};
use support::cluster::{TestCluster, until_ok};
use support::etcd::{must_connect, must_member_add, status};
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(30);
const LEARNER_ERROR: &str = "etcdserver: rpc not supported for learner";

fn values(resp: &etcd_client::GetResponse) -> Vec<(String, String)> {
    resp.kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            (key, String::from_utf8_lossy(kv.value()).into_owned())
        })
        .collect()
}

/// Fails the test unless `result` is etcd's learner refusal.
fn must_refuse_as_learner<T: std::fmt::Debug>(what: &str, result: Result<T, etcd_client::Error>) {
    let (code, message) = status(result);
    assert_eq!((code, message.as_str()), (Code::FailedPrecondition, LEARNER_ERROR), "{what}");
}

/// Waits until the member behind `client` reports `is_learner == learner` in Status.
async fn must_report_learner(client: &mut Client, learner: bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(s) = client.status().await
            && s.is_learner() == learner
        {
            return;
        }
        assert!(Instant::now() < deadline, "Status never said is_learner = {learner}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_serves_reads_refuses_the_rest_and_serves_everything_once_promoted() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(root.path(), 3, "/b/,/m/");
    cluster.must_start_all();
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let mut voter = must_connect(&endpoints[0]).await;
    for key in ["/a/1", "/b/1", "/m/1", "/z/1"] {
        voter.put(key, "before", None).await.expect("put on a voter");
    }

    eprintln!("phase: a learner is added through the gateway and joins");
    let joiner = cluster.must_prepare_joiner();
    let peer_url = cluster.peer_url(joiner);
    let learner = Some(MemberAddOptions::new().with_is_learner());
    let added = must_member_add(&mut voter, &[peer_url.as_str()], learner).await;
    let learner_id = added.member().expect("the added member").id();
    cluster.must_start_joining(joiner);
    let learner_endpoint = cluster.endpoints(&[joiner]).remove(0);
    let mut learner = must_connect(&learner_endpoint).await;
    must_report_learner(&mut learner, true).await;

    eprintln!("phase: the learner refuses every RPC etcd's learners refuse, with etcd's error");
    must_refuse_as_learner("put", learner.put("/a/2", "x", None).await);
    must_refuse_as_learner("delete", learner.delete("/a/1", None).await);
    let txn = Txn::new()
        .when([Compare::version("/a/1", CompareOp::Greater, 0)])
        .and_then([TxnOp::put("/a/1", "y", None)]);
    must_refuse_as_learner("txn", learner.txn(txn).await);
    must_refuse_as_learner("compact", learner.compact(1, None).await);
    must_refuse_as_learner("lease grant", learner.lease_grant(10, None).await);
    must_refuse_as_learner("watch", learner.watch("/a/", None).await.map(|_| ()));
    must_refuse_as_learner("member list", learner.member_list().await);
    must_refuse_as_learner("hashkv", learner.hash_kv(0).await);
    must_refuse_as_learner("lock", learner.lock("/locks/x", None).await);

    eprintln!("phase: serializable reads come from the learner's own replicas");
    let all = || Some(GetOptions::new().with_prefix());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = learner
            .get("/", Some(GetOptions::new().with_prefix().with_serializable()))
            .await
            .expect("serializable get on the learner");
        if got.count() == 4 {
            assert!(values(&got).iter().all(|(_, v)| v == "before"), "{:?}", values(&got));
            break;
        }
        assert!(Instant::now() < deadline, "the learner never caught up: {:?}", values(&got));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    eprintln!("phase: a linearizable read on the learner sees the write just acknowledged");
    for i in 0..20 {
        let key = ["/a/1", "/b/1", "/m/1", "/z/1"][i % 4];
        let value = format!("v{i}");
        let put = voter.put(key, value.as_str(), None).await.expect("put on a voter");
        let acknowledged = put.header().expect("header").revision();
        let got = learner.get(key, None).await.expect("linearizable get on the learner");
        assert_eq!(values(&got), [(key.to_string(), value.clone())], "read {i}");
        assert!(got.header().expect("header").revision() >= acknowledged);
        // Across every shard at one revision (decision D15), on the learner too.
        let listed = learner.get("/", all()).await.expect("linearizable list on the learner");
        assert!(values(&listed).contains(&(key.to_string(), value)), "{:?}", values(&listed));
        assert_eq!(listed.count(), 4);
    }
    let status = learner.status().await.expect("status on the learner");
    assert!(status.is_learner());
    assert!(status.leader() != 0 && status.leader() != learner_id, "{status:?}");

    eprintln!("phase: the native protocol on the learner forwards writes as any member does");
    let native = cluster.must_client(&[joiner]).await;
    let put = atoll_proto::PutRequest {
        key: b"/b/native".to_vec(),
        value: b"through the learner".to_vec(),
        ..Default::default()
    };
    until_ok(PATIENCE, "native put through the learner", || native.put(put.clone())).await;
    let got = voter.get("/b/native", None).await.expect("get on a voter");
    assert_eq!(values(&got), [("/b/native".to_string(), "through the learner".to_string())]);

    eprintln!("phase: the learner serves RangeStream, a Range in chunks");
    let mut kv = support::etcd::must_kv_client(&learner_endpoint).await;
    let everything = atoll_proto::etcd::etcdserverpb::RangeRequest {
        key: b"/".to_vec(),
        range_end: b"0".to_vec(),
        ..Default::default()
    };
    let mut stream = kv.range_stream(everything).await.expect("range stream").into_inner();
    let mut streamed = Vec::new();
    while let Some(chunk) = stream.message().await.expect("chunk") {
        let chunk = chunk.range_response.expect("range_response");
        streamed.extend(chunk.kvs.into_iter().map(|kv| kv.key));
    }
    assert_eq!(streamed, [&b"/a/1"[..], b"/b/1", b"/b/native", b"/m/1", b"/z/1"]);

    eprintln!("phase: etcdctl against the learner gets etcd's message");
    let stderr = support::etcdctl::must_fail(&learner_endpoint, &["put", "/a/ctl", "x"]);
    assert!(stderr.contains(LEARNER_ERROR), "{stderr}");
    let out = support::etcdctl::must_ok(&learner_endpoint, &["get", "/z/1"]);
    assert_eq!(support::etcdctl::lines(&out), ["/z/1", "v19"], "{out}");

    eprintln!("phase: once promoted, the member serves every RPC");
    let deadline = Instant::now() + PATIENCE;
    while let Err(e) = voter.member_promote(learner_id).await {
        assert!(Instant::now() < deadline, "promote never succeeded: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    must_report_learner(&mut learner, false).await;
    let put = learner
        .put("/a/after", "promoted", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put on the promoted member");
    assert!(put.prev_key().is_none());
    let got = voter.get("/a/after", None).await.expect("get on a voter");
    assert_eq!(values(&got), [("/a/after".to_string(), "promoted".to_string())]);
    let members = learner.member_list().await.expect("member list on the promoted member");
    assert_eq!(members.members().len(), 4);
    assert!(members.members().iter().all(|m| !m.is_learner()));
    learner.lease_grant(10, None).await.expect("lease grant on the promoted member");
}
