//! Membership changes on real `atoll` processes (decision D18): a three-member cluster with
//! two data shards grows by a learner that joins with `--initial-cluster-state existing`,
//! catches up on the data shards by snapshot (D20), is promoted, and an original member is
//! removed and stops by itself, as does a member removed while it was down once a peer
//! refuses it on restart; the errors of etcd's Cluster API along the way, etcd's strict
//! reconfiguration check among them.

mod support;

use atoll_proto::member::{MemberAddRequest, MemberIdRequest, MemberListRequest, MembersResponse};
use atoll_proto::shard_map::Member;
use atoll_proto::{AtollError, NativeRequest, NodeId, PutRequest, RangeRequest};
use atoll_router::{Client, ClientError};
use std::time::{Duration, Instant};
use support::cluster::{TestCluster, until_ok};

const PATIENCE: Duration = Duration::from_secs(30);
/// `--snapshot-catchup-entries`: the log tail a leader keeps behind its applied index.
const RETAINED: u64 = 20;

async fn members(client: &Client, req: NativeRequest) -> Result<MembersResponse, ClientError> {
    client.members(req).await
}

fn list() -> NativeRequest {
    NativeRequest::MemberList(MemberListRequest { linearizable: true })
}

fn must_refuse(result: Result<MembersResponse, ClientError>, expected: AtollError) {
    match result {
        Err(ClientError::Server(e)) => assert_eq!(e, expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

/// Adds learners until the meta leader refuses one as etcd does while a voter is down
/// ("etcdserver: unhealthy cluster"): the leader notices a killed peer only once its
/// connection times out. A learner added before that is removed again.
async fn must_refuse_while_a_voter_is_down(client: &Client) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = format!("https://127.0.0.1:{}", support::free_port());
        let add =
            NativeRequest::MemberAdd(MemberAddRequest { peer_urls: vec![url], is_learner: true });
        match members(client, add).await {
            Err(ClientError::Server(AtollError::Unhealthy)) => return,
            Ok(added) => {
                let id = added.member.expect("the added member").id;
                let remove = NativeRequest::MemberRemove(MemberIdRequest { id });
                until_ok(PATIENCE, "remove the learner", || members(client, remove.clone())).await;
            }
            Err(e) => eprintln!("member add: {e}; trying again"),
        }
        assert!(Instant::now() < deadline, "no unhealthy refusal within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `cond` holds for the members as the cluster reports them.
async fn must_see_members(client: &Client, what: &str, cond: impl Fn(&[Member]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = members(client, list()).await
            && cond(&r.members)
        {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs atollctl against the first member; its stdout.
fn ctl(cluster: &TestCluster, args: &[&str]) -> String {
    let out = run_ctl(cluster, args);
    assert!(out.status.success(), "atollctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs atollctl, which must fail; its stderr.
fn ctl_failing(cluster: &TestCluster, args: &[&str]) -> String {
    let out = run_ctl(cluster, args);
    assert!(!out.status.success(), "atollctl {args:?} succeeded");
    String::from_utf8(out.stderr).expect("utf-8")
}

fn run_ctl(cluster: &TestCluster, args: &[&str]) -> std::process::Output {
    let endpoint = cluster.endpoints(&[0]).join(",");
    let ca = cluster.root.join("ca/ca.pem").display().to_string();
    let mut all = vec!["--endpoints", &endpoint, "--cacert", &ca];
    all.extend_from_slice(args);
    support::must_run_atollctl(&all, &[], "", &cluster.root)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_catches_up_is_promoted_and_a_member_leaves() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(root.path(), 3, "/b/");
    // A short log tail: the leaders truncate past the bootstrap entries before the learner
    // joins, so it can only catch up by snapshot (decision D20).
    cluster.extra_flags = vec!["--snapshot-catchup-entries".into(), RETAINED.to_string()];
    cluster.must_start_all();
    let client = cluster.must_client(&[0, 1, 2]).await;
    for i in 0..5 * RETAINED {
        for key in [format!("/a/{i}"), format!("/b/{i}")] {
            let put =
                PutRequest { key: key.into(), value: b"before".to_vec(), ..Default::default() };
            until_ok(PATIENCE, "put", || client.put(put.clone())).await;
        }
    }

    eprintln!("phase: the members publish their names and client URLs");
    must_see_members(&client, "three named members", |m| {
        m.len() == 3 && m.iter().all(|m| !m.name.is_empty() && !m.client_urls.is_empty())
    })
    .await;

    eprintln!("phase: atollctl lists them as etcdctl does");
    let listed = ctl(&cluster, &["member", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 3, "{listed}");
    for i in 0..3 {
        let wanted = format!(", started, n{}, {}, ", i + 1, cluster.peer_url(i));
        let line = lines.iter().find(|l| l.contains(&wanted)).expect("the member's line");
        assert!(line.ends_with(", false"), "{line}");
    }

    eprintln!("phase: bad requests are refused with etcd's errors");
    let taken = cluster.peer_url(0);
    let add = |peer_urls: Vec<String>, is_learner| {
        NativeRequest::MemberAdd(MemberAddRequest { peer_urls, is_learner })
    };
    must_refuse(members(&client, add(vec![taken], true)).await, AtollError::PeerUrlExists);
    must_refuse(
        members(&client, add(vec!["not a url".into()], true)).await,
        AtollError::MemberBadUrls,
    );
    let nobody = NativeRequest::MemberRemove(MemberIdRequest { id: NodeId(42) });
    must_refuse(members(&client, nobody).await, AtollError::MemberNotFound);

    eprintln!("phase: a learner is added and joins with --initial-cluster-state existing");
    let joiner = cluster.must_prepare_joiner();
    let added = until_ok(PATIENCE, "member add", || {
        members(&client, add(vec![cluster.peer_url(joiner)], true))
    })
    .await;
    let learner = added.member.expect("the added member");
    assert!(learner.is_learner && learner.name.is_empty());
    assert_eq!(added.members.len(), 4);
    let promote = NativeRequest::MemberPromote(MemberIdRequest { id: learner.id });
    let metrics_port = support::free_tcp_port();
    let flags_before = cluster.extra_flags.clone();
    cluster
        .extra_flags
        .extend(["--listen-metrics-urls".into(), format!("http://127.0.0.1:{metrics_port}")]);
    cluster.must_start_joining(joiner);
    cluster.extra_flags = flags_before;
    must_see_members(&client, "the learner publishes its name", |m| {
        m.iter().any(|m| m.id == learner.id && m.name == format!("n{}", joiner + 1))
    })
    .await;

    eprintln!("phase: the learner has every shard's data");
    let after = PutRequest { key: "/b/2".into(), value: b"after".to_vec(), ..Default::default() };
    until_ok(PATIENCE, "put", || client.put(after.clone())).await;
    cluster.must_agree_on_hashes(&[0, 1, 2, joiner]).await;
    let installed = support::must_metric(metrics_port, "atoll_raft_snapshots_installed_total");
    assert!(installed >= 2, "both data shards reached the learner by snapshot: {installed}");

    eprintln!("phase: the caught-up learner is promoted; promoting it again is refused");
    until_ok(PATIENCE, "member promote", || members(&client, promote.clone())).await;
    must_refuse(members(&client, promote.clone()).await, AtollError::MemberNotLearner);
    let again = ctl_failing(&cluster, &["member", "promote", &format!("{:x}", learner.id.0)]);
    assert!(again.contains("etcdserver: can only promote a learner member"), "{again}");
    must_see_members(&client, "four voters", |m| m.len() == 4 && m.iter().all(|m| !m.is_learner))
        .await;

    eprintln!("phase: an original member is removed; the others keep serving");
    let first = members(&client, list()).await.expect("list").members;
    let leaving = first.iter().find(|m| m.name == "n1").expect("n1").id;
    let remove = NativeRequest::MemberRemove(MemberIdRequest { id: leaving });
    until_ok(PATIENCE, "member remove", || members(&client, remove.clone())).await;
    let rest = cluster.must_client(&[1, 2, joiner]).await;
    must_see_members(&rest, "three members without n1", |m| {
        m.len() == 3 && m.iter().all(|m| m.id != leaving)
    })
    .await;
    must_refuse(members(&rest, remove.clone()).await, AtollError::MemberNotFound);
    let last = PutRequest { key: "/a/2".into(), value: b"last".to_vec(), ..Default::default() };
    until_ok(PATIENCE, "put after the removal", || rest.put(last.clone())).await;
    let read = RangeRequest { key: b"/a/2".to_vec(), ..Default::default() };
    let got = until_ok(PATIENCE, "read after the removal", || rest.range(read.clone())).await;
    assert_eq!(got.kvs[0].value, b"last");
    cluster.must_agree_on_hashes(&[1, 2, joiner]).await;

    eprintln!("phase: the removed member stops by itself, and refuses to start again");
    let status = cluster.wait_for_exit(0, PATIENCE).expect("the removed member stopped");
    assert!(!status.success(), "{status}");
    let (status, stderr) = cluster.must_run_to_exit(0, PATIENCE);
    assert!(!status.success(), "{status}");
    let gone = "the member has been permanently removed from the cluster";
    assert!(
        stderr.lines().any(|l| l.starts_with("atoll: error: ") && l.contains(gone)),
        "{stderr}"
    );

    eprintln!("phase: with n2 down, etcd's strict check refuses to add a member: unhealthy");
    cluster.kill9(1);
    let survivors = cluster.must_client(&[2, joiner]).await;
    must_refuse_while_a_voter_is_down(&survivors).await;

    eprintln!("phase: a member removed while it was down is told so by a peer, and stops");
    let down = first.iter().find(|m| m.name == "n2").expect("n2").id;
    let remove = NativeRequest::MemberRemove(MemberIdRequest { id: down });
    until_ok(PATIENCE, "member remove", || members(&survivors, remove.clone())).await;
    // Whether n2 dials its peers or waits for them (the lower ID dials), one refuses it as
    // removed within the knock interval.
    let (status, stderr) = cluster.must_run_to_exit(1, PATIENCE);
    assert!(!status.success(), "{status}");
    assert!(
        stderr.lines().any(|l| l.starts_with("atoll: error: ") && l.contains(gone)),
        "{stderr}"
    );
}
