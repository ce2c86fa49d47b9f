//! Leases in a 3-node cluster with three data shards (decision D16): an expired lease's keys
//! go from every shard; an attach to a missing or revoked lease is refused; a keepalive
//! extends a lease; time-to-live lists keys across shards; a new meta shard leader continues
//! from the checkpointed remaining TTL instead of the full one. Revocations batched and sent
//! only to the shards holding keys (decision D24): a lease with keys in two shards and one
//! with none are revoked together, a shard holding neither's keys gets no entry; a storm of
//! expiries whose meta leader is killed mid-way is finished by the next leader.

mod support;

use atoll_proto::{
    AtollError, HashKvRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, RangeRequest,
    ShardId,
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
    let killed = must_find_meta_leader(&cluster, &client, meta_leader).await;
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

/// The applied index of every data shard on member `i`, in shard (key) order.
async fn must_applied(cluster: &TestCluster, client: &Client, i: usize) -> Vec<u64> {
    let endpoint = cluster.endpoints(&[i])[0].clone();
    let hashes =
        until_ok(PATIENCE, "hashkv", || client.hash_kv(&endpoint, HashKvRequest::default())).await;
    hashes.hashes.iter().filter(|h| h.shard != ShardId::META).map(|h| h.applied_index).collect()
}

/// The member whose ID is `leader` (lease answers carry the meta shard's leader's).
async fn must_find_meta_leader(cluster: &TestCluster, client: &Client, leader: u64) -> usize {
    for i in 0..cluster.specs.len() {
        let endpoint = cluster.endpoints(&[i])[0].clone();
        let status = until_ok(PATIENCE, "status", || client.status(&endpoint)).await;
        if status.header.member_id == leader {
            return i;
        }
    }
    panic!("the meta leader {leader:x} is not a member");
}

async fn must_count(client: &Client, prefix: &str) -> i64 {
    let mut end = prefix.as_bytes().to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    let req =
        RangeRequest { key: prefix.into(), range_end: end, count_only: true, ..Default::default() };
    until_ok(PATIENCE, "count", || client.range(req.clone())).await.count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_visit_only_the_shards_holding_keys_of_the_lease() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, SPLIT);
    cluster.must_start_all();
    let client = cluster.must_client(&[0, 1, 2]).await;

    eprintln!("phase: lease A gets keys in the /b/ and /m/ shards, lease B none");
    let grant = LeaseGrantRequest { ttl: 600, id: 0 };
    let a = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    let b = until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await;
    for key in ["/b/a1", "/b/a2", "/m/a1"] {
        until_ok(PATIENCE, "attach", || client.put(leased_put(key, a.id))).await;
    }
    until_ok(PATIENCE, "plain put", || client.put(leased_put("/a/plain", 0))).await;
    let before = must_applied(&cluster, &client, 0).await;

    eprintln!("phase: both are revoked at once");
    let (ra, rb) = tokio::join!(
        until_ok(PATIENCE, "revoke A", || client.lease_revoke(LeaseRevokeRequest { id: a.id })),
        until_ok(PATIENCE, "revoke B", || client.lease_revoke(LeaseRevokeRequest { id: b.id })),
    );
    assert_ne!(ra.header.member_id, 0);
    assert_ne!(rb.header.member_id, 0);

    eprintln!("phase: the shards holding keys of neither lease got no entry");
    // Read before any range across shards, which would close revisions on every shard
    // with an entry of its own (D13).
    // The split makes five shards: before /b/, /b/, between, /m/, after /m/.
    assert_eq!(before.len(), 5, "five data shards: {before:?}");
    // Member 0 may apply the deletes a moment after their leaders answered.
    let deadline = Instant::now() + PATIENCE;
    let mut after = must_applied(&cluster, &client, 0).await;
    while after[1] <= before[1] || after[3] <= before[3] {
        assert!(Instant::now() < deadline, "A's shards got no entry: {before:?} -> {after:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = must_applied(&cluster, &client, 0).await;
    }
    for untouched in [0, 2, 4] {
        assert_eq!(
            after[untouched], before[untouched],
            "shard {untouched} visited: {before:?} -> {after:?}"
        );
    }

    eprintln!("phase: A's keys are gone, the rest stays; both leases are gone everywhere");
    assert_eq!(must_keys(&client).await, ["/a/plain"]);
    for id in [a.id, b.id] {
        assert_eq!(must_ttl(&client, id, true).await.ttl, -1, "lease {id:x} is gone");
        must_be_not_found(client.lease_revoke(LeaseRevokeRequest { id }).await);
        for key in ["/a/late", "/b/late", "/m/late"] {
            must_be_not_found(client.put(leased_put(key, id)).await);
        }
    }
    cluster.must_agree_on_hashes(&[0, 1, 2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_whose_meta_leader_is_killed_mid_way_is_finished_by_the_next() {
    const LEASES: usize = 200;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, SPLIT);
    // 40 revocations a second: the storm drains over about 5 s, long enough to kill the
    // meta leader while batches are in flight.
    cluster.extra_flags = vec!["--lease-revoke-rate".into(), "40".into()];
    cluster.must_start_all();
    let client = cluster.must_client(&[0, 1, 2]).await;

    eprintln!("phase: {LEASES} leases, a key each in /b/ and /m/, expiring together");
    let mut ids = Vec::new();
    for i in 0..LEASES {
        let grant = LeaseGrantRequest { ttl: 20, id: 0x5700 + i as i64 };
        ids.push(until_ok(PATIENCE, "grant", || client.lease_grant(grant.clone())).await.id);
    }
    for (i, id) in ids.iter().enumerate() {
        for prefix in ["/b/storm/", "/m/storm/"] {
            let put = leased_put(&format!("{prefix}{i:04}"), *id);
            until_ok(PATIENCE, "attach", || client.put(put.clone())).await;
        }
    }
    let leader_id = must_ttl(&client, ids[0], false).await.header.member_id;
    let meta_leader = must_find_meta_leader(&cluster, &client, leader_id).await;

    eprintln!(
        "phase: once the drain is under way, the meta leader (member {meta_leader}) is killed"
    );
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = must_count(&client, "/b/storm/").await + must_count(&client, "/m/storm/").await;
        if left > 0 && left < 2 * LEASES as i64 {
            eprintln!("{left} keys left when killed");
            break;
        }
        assert!(left > 0, "the storm drained before the kill; lower --lease-revoke-rate");
        assert!(Instant::now() < deadline, "the storm never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.kill9(meta_leader);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != meta_leader).collect();
    let client = cluster.must_client(&survivors).await;

    eprintln!("phase: the next leader finishes every revocation: no key, no record is left");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = must_count(&client, "/b/storm/").await + must_count(&client, "/m/storm/").await;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} keys left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for id in [ids[0], ids[LEASES - 1]] {
        must_be_not_found(client.put(leased_put("/m/storm/late", id)).await);
    }
    // A client-chosen ID is "already exists" while its record is there, revoking or not:
    // each grant succeeding shows the revocation's last step applied.
    for id in &ids {
        let grant = LeaseGrantRequest { ttl: 600, id: *id };
        until_ok(PATIENCE, "re-grant", || client.lease_grant(grant.clone())).await;
    }

    eprintln!("phase: the killed member comes back and agrees with the others");
    cluster.must_start(meta_leader);
    cluster.must_agree_on_hashes(&[0, 1, 2]).await;
}
