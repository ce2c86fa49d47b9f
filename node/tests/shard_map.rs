//! The shard map in the meta shard (decision D23), on real `atoll` processes: three members
//! pre-split agree on the map their meta shards applied; a restart keeps it whatever its
//! flags say; a fourth member joining through `member add` gets it from the meta shard and
//! serves keys of every shard; a router client connected only to that member follows a
//! `NotLeader` hint to it; and a data directory from before D23 (a `shard-map.json`, no map
//! record) starts and has its map recorded in the meta shard.

mod support;

use atoll_proto::member::{MemberAddRequest, MemberIdRequest, MembersResponse};
use atoll_proto::shard_map::{
    ReplicaDescriptor, ReplicaRole, ShardMap, ShardMapRequest, ShardMapResponse,
};
use atoll_proto::{KeyedWrite, NativeRequest, NativeResponse, NodeId, PutRequest, RangeRequest};
use atoll_router::Client;
use std::time::{Duration, Instant};
use support::TestNode;
use support::cluster::{TestCluster, until_ok};

const PATIENCE: Duration = Duration::from_secs(30);
const SPLIT: &str = "/b/,/c/";
/// One key in each of the five data shards of [`SPLIT`].
const KEYS: [&str; 5] = ["/a/k", "/b/k", "/b1k", "/c/k", "/d/k"];

/// The map member `i` serves from its own meta replica (not through the meta leader).
async fn map_of(cluster: &TestCluster, i: usize) -> ShardMapResponse {
    let client = cluster.must_client(&[i]).await;
    let local = ShardMapRequest { linearizable: false };
    until_ok(PATIENCE, "shard map", || client.shard_map(local.clone())).await
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest { key: key.into(), value: value.into(), ..Default::default() }
}

async fn members(client: &Client, req: NativeRequest) -> MembersResponse {
    until_ok(PATIENCE, "membership request", || client.members(req.clone())).await
}

fn ctl(cluster: &TestCluster, args: &[&str]) -> String {
    let endpoint = cluster.endpoints(&[0]).join(",");
    let ca = cluster.root.join("ca/ca.pem").display().to_string();
    let mut all = vec!["--endpoints", &endpoint, "--cacert", &ca];
    all.extend_from_slice(args);
    let out = support::must_run_atollctl(&all, &[], "", &cluster.root);
    assert!(out.status.success(), "atollctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The leader of the first data shard as member `i` reports it (`endpoint status`).
async fn first_shard_leader(client: &Client, endpoint: &str) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(status) = client.status(endpoint).await
            && status.leader != 0
        {
            return status.leader;
        }
        assert!(Instant::now() < deadline, "no leader of the first data shard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meta_shard_holds_the_map_every_member_and_a_joiner_agree_on() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(root.path(), 3, SPLIT);
    cluster.must_start_all();

    eprintln!("phase: every member's meta shard holds the bootstrap map, the same on each");
    let first = map_of(&cluster, 0).await;
    assert!(first.from_meta_shard);
    let ids: Vec<NodeId> = first.members.iter().map(|m| m.id).collect();
    assert_eq!(ids.len(), 3);
    let voters: Vec<ReplicaDescriptor> =
        ids.iter().map(|id| ReplicaDescriptor { node: *id, role: ReplicaRole::Voter }).collect();
    let prefixes: Vec<Vec<u8>> = SPLIT.split(',').map(|p| p.as_bytes().to_vec()).collect();
    let wanted = atoll_router::shard_map::bootstrap_map(&prefixes, &voters).expect("map");
    assert_eq!(first.map, wanted);
    assert_eq!((first.map.version, first.map.shards.len()), (1, 5));
    for i in 1..3 {
        assert_eq!(map_of(&cluster, i).await.map, wanted, "member {i}");
    }
    for spec in &cluster.specs {
        assert!(!spec.data_dir.join("shard-map.json").exists(), "no map file is written");
    }
    let client = cluster.must_client(&[0, 1, 2]).await;
    for key in KEYS {
        until_ok(PATIENCE, "put", || client.put(put(key, "v1"))).await;
    }

    eprintln!("phase: atollctl shard list shows the map");
    let listed = ctl(&cluster, &["shard", "list"]);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 5, "{listed}");
    assert!(lines[0].starts_with("1, \"\", \"/b/\", "), "{listed}");
    assert!(lines[4].starts_with("5, \"/c0\", +inf, "), "{listed}");
    assert!(lines.iter().all(|l| l.ends_with(", 1.1, 1")), "{listed}");
    let json = ctl(&cluster, &["shard", "list", "-w", "json"]);
    assert!(json.contains("\"version\":1,\"shards\":[{\"ID\":1,"), "{json}");

    eprintln!("phase: a member restarted with another --initial-split keeps the meta shard's map");
    cluster.kill9(1);
    cluster.initial_split = "/x/".into();
    cluster.must_start(1);
    cluster.initial_split = SPLIT.into();
    assert_eq!(map_of(&cluster, 1).await.map, wanted);
    let only_n2 = cluster.must_client(&[1]).await;
    let read = RangeRequest { key: b"/c/k".to_vec(), ..Default::default() };
    let got =
        until_ok(PATIENCE, "read on the restarted member", || only_n2.range(read.clone())).await;
    assert_eq!(got.kvs[0].value, b"v1");

    eprintln!("phase: a fourth member joins and gets the map from the meta shard");
    let joiner = cluster.must_prepare_joiner();
    let add = NativeRequest::MemberAdd(MemberAddRequest {
        peer_urls: vec![cluster.peer_url(joiner)],
        is_learner: true,
    });
    let added = members(&client, add).await.member.expect("the added member");
    cluster.must_start_joining(joiner);
    assert_eq!(map_of(&cluster, joiner).await.map, wanted);
    let only_n4 = cluster.must_client(&[joiner]).await;
    for key in KEYS {
        let read = RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() };
        let got = until_ok(PATIENCE, "read on the joiner", || only_n4.range(read.clone())).await;
        assert_eq!(got.kvs.first().map(|kv| kv.value.as_slice()), Some(&b"v1"[..]), "{key}");
    }
    cluster.must_agree_on_hashes(&[0, 1, 2, joiner]).await;
    let promote = NativeRequest::MemberPromote(MemberIdRequest { id: added.id });
    members(&client, promote).await;

    eprintln!("phase: a router connected only to the joiner routes a write to the leader");
    let key = "/a/routed";
    only_n4.refresh_shard_map().await.expect("map from the joiner");
    // A second router, connected only to an initial member, caches the same leader.
    let only_n1 = cluster.must_client(&[0]).await;
    only_n1.refresh_shard_map().await.expect("map from n1");
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let leader = first_shard_leader(&only_n4, &endpoints[0]).await;
    assert_eq!(must_routed_put(&only_n4, key, "v2").await, leader, "served by the leader itself");
    assert_eq!(only_n4.cached_leader(key.as_bytes()), Some(NodeId(leader)));
    assert_eq!(only_n1.cached_leader(key.as_bytes()), Some(NodeId(leader)));

    eprintln!("phase: leadership moves to the joiner; the routers follow the NotLeader hint");
    // The data shards promote the joiner's replicas once caught up (decision D18); until
    // then it is no valid transferee.
    let joiner_endpoint = cluster.endpoints(&[joiner]).remove(0);
    let mut member_ids = Vec::new();
    for endpoint in &endpoints {
        let status = until_ok(PATIENCE, "status", || only_n4.status(endpoint)).await;
        member_ids.push(status.header.member_id);
    }
    let deadline = Instant::now() + PATIENCE;
    while first_shard_leader(&only_n4, &joiner_endpoint).await != added.id.0 {
        let now = first_shard_leader(&only_n4, &joiner_endpoint).await;
        let at = member_ids.iter().position(|id| *id == now).expect("an initial member leads");
        let moved = async {
            let mut etcd = etcd_client::Client::connect([&endpoints[at]], None).await?;
            etcd.move_leader(added.id.0).await
        };
        if let Err(e) = moved.await {
            eprintln!("move-leader: {e}; retrying");
        }
        assert!(Instant::now() < deadline, "the joiner never led the first shard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Both caches still name the old leader, whose hint names the joiner, which the map's
    // replica lists (the initial members) do not: the routers find it in the member list.
    // The router on n1 has no other way to the joiner: its own endpoint does not lead.
    assert!(!wanted.shards[0].replicas.iter().any(|r| r.node == added.id));
    assert_eq!(must_routed_put(&only_n1, key, "v3").await, added.id.0, "hint followed");
    assert_eq!(only_n1.cached_leader(key.as_bytes()), Some(added.id));
    assert_eq!(must_routed_put(&only_n4, key, "v4").await, added.id.0, "hint followed");
    assert_eq!(only_n4.cached_leader(key.as_bytes()), Some(added.id));
    let read = RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() };
    let got = until_ok(PATIENCE, "read the routed write", || client.range(read.clone())).await;
    assert_eq!(got.kvs[0].value, b"v4");
}

/// Puts `key` through [`Client::write_at_leader`]; the member that served it.
async fn must_routed_put(client: &Client, key: &str, value: &str) -> u64 {
    let write = KeyedWrite::Put(put(key, value));
    match client.write_at_leader(write).await.expect("routed put") {
        NativeResponse::Put(resp) => resp.header.member_id,
        other => panic!("a put answers a put: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_with_only_shard_map_json_starts_and_records_its_map() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("n1");
    let port = support::free_port();
    let flags = ["--initial-split", "/b/"];

    eprintln!("phase: a node runs, then its data directory is made one of before D23");
    let node = TestNode::must_start_with(&dir, port, &flags);
    let client = node.must_client().await;
    let map =
        until_ok(PATIENCE, "shard map", || client.shard_map(ShardMapRequest::default())).await.map;
    until_ok(PATIENCE, "put", || client.put(put("/b/old", "v1"))).await;
    drop(client);
    node.kill9();
    must_make_legacy(&dir, &map);

    eprintln!("phase: it starts from shard-map.json and the meta leader records the map");
    let node = TestNode::must_start_with(&dir, port, &flags);
    let client = node.must_client().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let resp =
            until_ok(PATIENCE, "shard map", || client.shard_map(ShardMapRequest::default())).await;
        assert_eq!(resp.map, map);
        if resp.from_meta_shard {
            break;
        }
        assert!(Instant::now() < deadline, "the map was never recorded in the meta shard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A synced Raft append after the record: the apply batch that wrote it is durable too
    // (one journal, decision D2).
    until_ok(PATIENCE, "put", || client.put(put("/a/new", "v2"))).await;
    drop(client);
    node.kill9();

    eprintln!("phase: without the file it starts from the meta shard's map");
    std::fs::remove_file(dir.join("shard-map.json")).expect("remove the file");
    let node = TestNode::must_start_with(&dir, port, &flags);
    let client = node.must_client().await;
    let resp =
        until_ok(PATIENCE, "shard map", || client.shard_map(ShardMapRequest::default())).await;
    assert!(resp.from_meta_shard);
    assert_eq!(resp.map, map);
    for (key, value) in [("/b/old", "v1"), ("/a/new", "v2")] {
        let read = RangeRequest { key: key.as_bytes().to_vec(), ..Default::default() };
        let got = until_ok(PATIENCE, "read", || client.range(read.clone())).await;
        assert_eq!(got.kvs[0].value, value.as_bytes());
    }
}

/// Removes the meta shard's map record and writes `shard-map.json`, as a data directory
/// created before decision D23 has them.
fn must_make_legacy(dir: &std::path::Path, map: &ShardMap) {
    let storage = atoll_shard::Storage::open(&dir.join("db"), 8 << 20).expect("open storage");
    let snap = storage.db.snapshot();
    let recorded = atoll_shard::shard_map_record::load(&storage, &snap).expect("load");
    assert_eq!(recorded.as_ref(), Some(map), "the meta shard recorded the bootstrap map");
    let mut batch = storage.db.batch();
    batch.remove(&storage.leases, [b'S']);
    batch.commit().expect("commit");
    storage.sync().expect("sync");
    drop(storage);
    let text = serde_json::to_string_pretty(map).expect("json");
    std::fs::write(dir.join("shard-map.json"), text).expect("write shard-map.json");
}
