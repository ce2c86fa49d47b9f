//! Leases in a 3-node cluster with three data shards (decision D16): an expired lease's keys
//! go from every shard; an attach to a missing or revoked lease is refused; a keepalive
//! extends a lease; time-to-live lists keys across shards; a new meta shard leader continues
//! from the checkpointed remaining TTL instead of the full one.

mod support;

use atoll_proto::{
    AtollError, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, RangeRequest,
};
use atoll_router::{Client, ClientError};
use std::time::{Duration, Instant};
use support::cluster::{TestCluster, until_ok};

const SPLIT: &str = "/b/,/m/";
/// Generous patience for anything that waits on elections or expiry on a busy machine.
const PATIENCE: Duration = Duration::from_secs(60);

fn leased_put(key: &str, lease: i64) -> PutRequest {
    PutRequest { key: key.into(), value: b"v".to_vec(), lease, ..PutRequest::default() }
}

fn everything() -> RangeRequest {
    RangeRequest { key: vec![0], range_end: vec![0], keys_only: true, ..RangeRequest::default() }
}

async fn must_keys(client: &Client) -> Vec<String> {
    let all = until_ok(PATIENCE, "range", || client.range(everything())).await;
    all.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.key).into_owned()).collect()
}

async fn must_ttl(client: &Client, id: i64, keys: bool) -> LeaseTimeToLiveResponse {
    let req = LeaseTimeToLiveRequest { id, keys };
    until_ok(PATIENCE, "time to live", || client.lease_time_to_live(req.clone())).await
}

fn must_be_not_found<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    match result {
        Err(ClientError::Server(AtollError::LeaseNotFound)) => {}
        other => panic!("expected 'requested lease not found', got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_expire_revoke_and_renew_across_shards() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, SPLIT);
    cluster.must_start_all();
    let client = cluster.must_client(&[0]).await;
    let other = cluster.must_client(&[2]).await;

    eprintln!("phase: a lease with keys in all three shards lists them through any member");
    let grant = LeaseGrantRequest { ttl: 600, id: 0 };
    let long = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    for key in ["/a/1", "/b/1", "/m/1"] {
        until_ok(PATIENCE, "attach", || client.put(leased_put(key, long.id))).await;
    }
    let ttl = must_ttl(&other, long.id, true).await;
    assert_eq!(ttl.keys, [b"/a/1".to_vec(), b"/b/1".to_vec(), b"/m/1".to_vec()]);
    assert_eq!(ttl.granted_ttl, 600);

    eprintln!("phase: an attach to a lease that does not exist is refused");
    must_be_not_found(client.put(leased_put("/a/nothing", 0x0bad_cafe)).await);

    eprintln!("phase: a short lease's keys in two shards go once it expires");
    let grant = LeaseGrantRequest { ttl: 2, id: 0 };
    let short = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    for key in ["/a/short", "/m/short"] {
        until_ok(PATIENCE, "attach", || other.put(leased_put(key, short.id))).await;
    }
    until_ok(PATIENCE, "plain put", || client.put(leased_put("/m/plain", 0))).await;
    let deadline = Instant::now() + PATIENCE;
    while must_keys(&other).await.iter().any(|k| k.ends_with("/short")) {
        assert!(Instant::now() < deadline, "the expired lease's keys are still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(must_ttl(&client, short.id, false).await.ttl, -1, "expired");
    assert_eq!(must_keys(&client).await, ["/a/1", "/b/1", "/m/1", "/m/plain"]);
    let listed = until_ok(PATIENCE, "list", || client.lease_leases(LeaseLeasesRequest {})).await;
    assert!(listed.ids.contains(&long.id) && !listed.ids.contains(&short.id), "{listed:?}");
    must_be_not_found(client.put(leased_put("/b/late", short.id)).await);

    eprintln!("phase: a keepalive renews a lease to its full TTL");
    let grant = LeaseGrantRequest { ttl: 60, id: 0 };
    let renewable = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    while must_ttl(&client, renewable.id, false).await.ttl > 54 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keep = LeaseKeepAliveRequest { id: renewable.id };
    let renewed = until_ok(PATIENCE, "keepalive", || other.lease_keep_alive(keep.clone())).await;
    assert_eq!(renewed.ttl, 60);
    let after = must_ttl(&client, renewable.id, false).await.ttl;
    assert!(after > 54, "renewed to 60 s, {after} s left");

    eprintln!("phase: a revoke deletes the keys of every shard; re-attaching is refused");
    let revoke = LeaseRevokeRequest { id: long.id };
    until_ok(PATIENCE, "revoke", || other.lease_revoke(revoke.clone())).await;
    assert_eq!(must_keys(&client).await, ["/m/plain"]);
    must_be_not_found(client.put(leased_put("/m/1", long.id)).await);
    must_be_not_found(client.lease_revoke(revoke.clone()).await);
    let gone = other.lease_keep_alive(LeaseKeepAliveRequest { id: long.id }).await;
    assert_eq!(gone.expect("keepalive answer").ttl, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_meta_leader_continues_from_the_checkpointed_ttl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, SPLIT);
    cluster.extra_flags = vec!["--lease-checkpoint-interval".into(), "500ms".into()];
    cluster.must_start_all();
    let client = cluster.must_client(&[0, 1, 2]).await;

    eprintln!("phase: a 60 s lease runs down well below its TTL, checkpointed meanwhile");
    let grant = LeaseGrantRequest { ttl: 60, id: 0 };
    let lease = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    until_ok(PATIENCE, "attach", || client.put(leased_put("/m/kept", lease.id))).await;
    let mut ttl = must_ttl(&client, lease.id, false).await;
    while ttl.ttl > 50 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ttl = must_ttl(&client, lease.id, false).await;
    }
    // Lease answers come from the meta shard's leader, which stamps its own member ID.
    let meta_leader = ttl.header.member_id;
    // Two more checkpoint intervals, so one checkpoint is surely applied below 50 s.
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    eprintln!("phase: the meta shard's leader is killed; another takes over");
    let mut killed = None;
    for i in 0..3 {
        let endpoint = cluster.endpoints(&[i])[0].clone();
        let status = until_ok(PATIENCE, "status", || client.status(&endpoint)).await;
        if status.header.member_id == meta_leader {
            killed = Some(i);
        }
    }
    let killed = killed.expect("the meta leader is a member");
    cluster.kill9(killed);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != killed).collect();
    let client = cluster.must_client(&survivors).await;
    let deadline = Instant::now() + PATIENCE;
    let after = loop {
        let ttl = must_ttl(&client, lease.id, true).await;
        if ttl.header.member_id != meta_leader {
            break ttl;
        }
        assert!(Instant::now() < deadline, "no new meta leader");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Without checkpoints the new leader would start the lease over at 60 s (plus an
    // election timeout); from the checkpoint it has at most 50 s plus that left.
    assert_eq!(after.granted_ttl, 60);
    assert!(after.ttl > 0 && after.ttl <= 51, "remaining TTL reset to {} s", after.ttl);
    assert_eq!(after.keys, [b"/m/kept".to_vec()]);
}
