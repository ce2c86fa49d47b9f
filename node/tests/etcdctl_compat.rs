//! etcdctl 3.4 (Debian's `etcd-client` package, which `.ci/run` installs) against a 3-node
//! Atoll cluster with several shards, over the etcd gRPC gateway: the commands operators run
//! print what they print against etcd, and errors keep etcd's text.

mod support;

use std::time::{Duration, Instant};
use support::cluster::TestCluster;
use support::etcdctl::{
    etcdctl, lines, must_fail, must_ok, must_ok_once_healthy, must_wait_ready, watch_lines,
};

fn grpc_endpoints(cluster: &TestCluster) -> Vec<String> {
    cluster.endpoints(&[0, 1, 2])
}

#[test]
fn etcdctl_works_against_a_sharded_three_node_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(dir.path(), 3, "/b/,/m/");
    cluster.must_start_all();
    let endpoints = grpc_endpoints(&cluster);
    must_wait_ready(&endpoints);
    let all = endpoints.join(",");
    let (first, second, third) = (&endpoints[0], &endpoints[1], &endpoints[2]);

    // put and get, on keys of three shards, written and read through different members.
    for (i, key) in ["/a/1", "/b/1", "/m/1", "/m/2"].iter().enumerate() {
        let value = format!("v{i}");
        assert_eq!(must_ok(&endpoints[i % 3], &["put", key, &value]), "OK\n");
    }
    assert_eq!(lines(&must_ok(second, &["get", "/b/1"])), ["/b/1", "v1"]);
    assert_eq!(
        lines(&must_ok(third, &["get", "/", "--prefix"])),
        ["/a/1", "v0", "/b/1", "v1", "/m/1", "v2", "/m/2", "v3"],
        "a prefix spanning three shards comes back whole and in key order"
    );
    assert_eq!(
        lines(&must_ok(first, &["get", "/", "--prefix", "--keys-only"])),
        ["/a/1", "", "/b/1", "", "/m/1", "", "/m/2", ""]
    );
    assert_eq!(
        lines(&must_ok(first, &["get", "/", "--prefix", "--limit", "2"])),
        ["/a/1", "v0", "/b/1", "v1"]
    );
    assert_eq!(
        lines(&must_ok(
            first,
            &["get", "/", "--prefix", "--sort-by=KEY", "--order=DESCEND", "--limit", "1"]
        )),
        ["/m/2", "v3"]
    );
    assert_eq!(lines(&must_ok(first, &["get", "/m/1", "--print-value-only"])), ["v2"]);
    assert_eq!(must_ok(first, &["get", "/missing"]), "");

    // JSON output carries etcd's header and base64 keys.
    let json: serde_json::Value =
        serde_json::from_str(&must_ok(first, &["get", "/b/1", "-w", "json"])).expect("json");
    assert_eq!(json["kvs"][0]["key"], "L2IvMQ==", "{json}");
    assert_eq!(json["kvs"][0]["value"], "djE=", "{json}");
    assert_eq!(json["count"], 1);
    let header = &json["header"];
    assert!(header["cluster_id"].as_u64().unwrap_or(0) != 0, "{json}");
    assert!(header["member_id"].as_u64().unwrap_or(0) != 0, "{json}");
    assert!(header["revision"].as_i64().unwrap_or(0) > 0, "{json}");
    assert!(header["raft_term"].as_u64().unwrap_or(0) > 0, "{json}");
    let count: serde_json::Value = serde_json::from_str(&must_ok(
        first,
        &["get", "/", "--prefix", "--limit", "1", "-w", "json"],
    ))
    .expect("json");
    assert_eq!((&count["count"], &count["more"]), (&4.into(), &true.into()), "{count}");

    // txn in etcdctl's interactive syntax: the Kubernetes create shape, then a failing compare.
    let txn = "mod(\"/m/new\") = \"0\"\n\nput /m/new created\n\nget /m/new\n\n";
    let out = etcdctl(second, &["txn"], txn);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&String::from_utf8_lossy(&out.stdout)), ["SUCCESS", "", "OK"]);
    let out = etcdctl(third, &["txn"], txn);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(lines(&String::from_utf8_lossy(&out.stdout)), ["FAILURE", "", "/m/new", "created"]);
    // A txn over keys of two shards is refused with a clear error.
    let out = etcdctl(first, &["txn"], "\nput /a/x 1\nput /m/x 2\n\n\n");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("a txn whose keys span shards is not supported"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // del: one key, then a prefix spanning shards, with the previous pairs.
    assert_eq!(must_ok(first, &["del", "/a/1"]), "1\n");
    assert_eq!(must_ok(first, &["del", "/a/1"]), "0\n");
    assert_eq!(
        lines(&must_ok(second, &["del", "/", "--prefix", "--prev-kv"])),
        ["4", "/b/1", "v1", "/m/1", "v2", "/m/2", "v3", "/m/new", "created"]
    );
    assert_eq!(must_ok(third, &["get", "/", "--prefix"]), "");

    // compaction, and reading below it fails with etcd's error.
    let put: serde_json::Value =
        serde_json::from_str(&must_ok(first, &["put", "/c/1", "x", "-w", "json"])).expect("json");
    let revision = put["header"]["revision"].as_i64().expect("revision");
    // Above every shard: refused, and nothing compacted (no shard at its own head either).
    let stderr = must_fail(first, &["compaction", &(revision * 2).to_string()]);
    assert!(stderr.contains("required revision is a future revision"), "{stderr}");
    must_ok(second, &["get", "/c/1", "--rev", &(revision - 1).to_string()]);
    assert_eq!(
        must_ok(first, &["compaction", &revision.to_string()]),
        format!("compacted revision {revision}\n")
    );
    let stderr = must_fail(second, &["get", "/c/1", "--rev", &(revision - 1).to_string()]);
    assert!(stderr.contains("etcdserver: mvcc: required revision has been compacted"), "{stderr}");
    let stderr = must_fail(second, &["get", "/c/1", "--rev", &(revision * 2).to_string()]);
    assert!(
        stderr.contains("etcdserver: mvcc: required revision is a future revision"),
        "{stderr}"
    );

    // Bad input: an empty key, a value over --max-request-bytes.
    let stderr = must_fail(first, &["put", "", "v"]);
    assert!(stderr.contains("Error: etcdserver: key is not provided"), "{stderr}");
    // Over the 1.5 MiB limit, under etcdctl's own 2 MiB send limit.
    let big = "x".repeat(1_700_000);
    // (etcdctl reads a missing value from stdin; 1.7 MB is too long for an argument.)
    let out = etcdctl(first, &["put", "/big"], &big);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("etcdserver: request is too large"),
        "{stderr}"
    );

    // member list: every member, started, with its peer URL.
    let members = must_ok(first, &["member", "list"]);
    assert_eq!(members.lines().count(), 3, "{members}");
    for (i, spec) in cluster.specs.iter().enumerate() {
        let line = members
            .lines()
            .find(|l| l.contains(&format!(", {}, ", spec.name)))
            .unwrap_or_else(|| panic!("member {i} missing: {members}"));
        assert!(line.contains(", started, "), "{line}");
        assert!(line.contains(&format!("https://127.0.0.1:{}", spec.peer_port)), "{line}");
        assert!(line.ends_with(", false"), "{line}");
    }
    // member add --learner / promote / remove (decision D18), with etcdctl's output.
    let add = ["member", "add", "n9", "--peer-urls=https://127.0.0.1:1", "--learner"];
    let added = must_ok_once_healthy(first, &add);
    let id = added
        .strip_prefix("Member ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{added}"))
        .to_string();
    assert!(added.contains(" added to cluster "), "{added}");
    assert!(added.contains("ETCD_NAME=\"n9\""), "{added}");
    assert!(added.contains("n9=https://127.0.0.1:1"), "{added}");
    assert!(added.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""), "{added}");
    let listed = must_ok(first, &["member", "list"]);
    assert!(
        listed.contains(&format!("{id}, unstarted, , https://127.0.0.1:1, , true")),
        "{listed}"
    );
    let not_ready = must_fail(first, &["member", "promote", &id]);
    assert!(
        not_ready.contains("can only promote a learner member which is in sync with leader"),
        "{not_ready}"
    );
    let removed = must_ok(first, &["member", "remove", &id]);
    // etcdctl prints IDs with `%16x`: an ID with a leading zero nibble is padded by a space.
    assert!(removed.starts_with(&format!("Member {id:>16} removed from cluster ")), "{removed}");
    assert_eq!(must_ok(first, &["member", "list"]).lines().count(), 3);

    // endpoint status / health / hashkv, for every member at once.
    let status = must_ok(&all, &["endpoint", "status"]);
    assert_eq!(status.lines().count(), 3, "{status}");
    let leaders = status.lines().filter(|l| l.split(", ").nth(4) == Some("true")).count();
    assert_eq!(leaders, 1, "exactly one member leads the first shard: {status}");
    let health = etcdctl(&all, &["endpoint", "health"], "");
    let health_out = String::from_utf8_lossy(&health.stdout).to_string()
        + &String::from_utf8_lossy(&health.stderr);
    assert!(health.status.success(), "{health_out}");
    assert_eq!(health_out.matches("is healthy").count(), 3, "{health_out}");
    // Once every member applied the same writes, they report the same hash.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let hashes = must_ok(&all, &["endpoint", "hashkv"]);
        let values: Vec<&str> = hashes.lines().filter_map(|l| l.split(", ").nth(1)).collect();
        assert_eq!(values.len(), 3, "{hashes}");
        if values.iter().all(|v| *v == values[0]) {
            break;
        }
        assert!(Instant::now() < deadline, "hashes differ: {hashes}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // move-leader: etcdctl finds the member leading (the first shard) and asks it to hand
    // its shards to another member; endpoint status then names the new leader.
    let column = |line: &str, i: usize| line.split(", ").nth(i).unwrap_or_default().to_string();
    let old_leader = column(status.lines().find(|l| column(l, 4) == "true").expect("a leader"), 1);
    let target = status.lines().map(|l| column(l, 1)).find(|id| *id != old_leader).expect("other");
    let moved = must_ok(&all, &["move-leader", &target]);
    assert_eq!(moved.trim(), format!("Leadership transferred from {old_leader} to {target}"));
    let status = must_ok(&all, &["endpoint", "status"]);
    let leading: Vec<String> =
        status.lines().filter(|l| column(l, 4) == "true").map(|l| column(l, 1)).collect();
    assert_eq!(leading, std::slice::from_ref(&target), "{status}");
    let stderr = must_fail(&all, &["move-leader", "1234"]);
    assert!(stderr.contains("etcdserver: bad leader transferee"), "{stderr}");

    // snapshot save: a backup of the member's state that etcdctl accepts, and that Atoll's
    // reader verifies and parses back to the keys written.
    let saved = cluster.root.join("backup.db");
    let out = etcdctl(first, &["snapshot", "save", &saved.display().to_string()], "");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("Snapshot saved at"), "{stdout}");
    let bytes = std::fs::read(&saved).expect("backup written");
    let records = atoll_shard::storage::backup::read_backup(&bytes).expect("a valid backup");
    assert!(records.iter().any(|r| r.keyspace == 2), "it holds MVCC versions");

    // watch: history from a revision across shards, printed as etcdctl prints it.
    let put: serde_json::Value =
        serde_json::from_str(&must_ok(first, &["put", "/a/w", "1", "-w", "json"])).expect("json");
    let from = put["header"]["revision"].as_i64().expect("revision").to_string();
    must_ok(second, &["put", "/m/w", "2"]);
    let watched = watch_lines(third, &["watch", "/", "--prefix", "--rev", &from], 6);
    assert_eq!(watched, ["PUT", "/a/w", "1", "PUT", "/m/w", "2"]);

    must_serve_leases(first, second, third);

    // alarm list: no alarm; defrag succeeds.
    assert_eq!(must_ok(first, &["alarm", "list"]), "");
    let defrag = must_ok(first, &["defrag"]);
    assert!(defrag.starts_with("Finished defragmenting etcd member"), "{defrag}");

    // Auth is disabled: etcd's answers for that state.
    let stderr = must_fail(first, &["auth", "enable"]);
    assert!(stderr.contains("etcdserver: root user does not exist"), "{stderr}");
    assert_eq!(must_ok(first, &["user", "list"]), "");
    assert_eq!(must_ok(first, &["role", "list"]), "");

    // A member that is down: the others still serve, and the client gets a clear error from
    // the dead endpoint alone.
    // A write in flight when its shard's leader dies fails with etcd's "leader changed" or
    // "no leader" until the survivors elect a new leader.
    cluster.kill9(2);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = etcdctl(first, &["put", "/after-kill", "1"], "");
        if out.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("etcdserver: leader changed")
                || stderr.contains("etcdserver: no leader"),
            "{stderr}"
        );
        assert!(Instant::now() < deadline, "no new leader: {stderr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(lines(&must_ok(second, &["get", "/after-kill"])), ["/after-kill", "1"]);
    let stderr = must_fail(third, &["get", "/after-kill", "--dial-timeout=1s"]);
    assert!(stderr.contains("Error"), "{stderr}");
}

#[test]
fn etcdctl_speaks_tls_to_an_https_client_url() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = support::free_port();
    let url = format!("https://127.0.0.1:{port}");
    let _node =
        support::TestNode::must_start_with(dir.path(), port, &["--listen-client-urls", &url]);
    let cacert = format!("--cacert={}", dir.path().join("certs/ca.pem").display());
    assert_eq!(must_ok(&url, &[&cacert, "put", "k", "v"]), "OK\n");
    assert_eq!(lines(&must_ok(&url, &[&cacert, "get", "k"])), ["k", "v"]);
    // Without the CA the server's certificate is not trusted and nothing is sent.
    let stderr = must_fail(&url, &["get", "k", "--dial-timeout=2s"]);
    assert!(stderr.contains("Error"), "{stderr}");
}

/// `etcdctl lease ...` and `put --lease` over three shards through three members.
fn must_serve_leases(first: &str, second: &str, third: &str) {
    let granted = must_ok(first, &["lease", "grant", "600"]);
    let id = granted.split_whitespace().nth(1).expect("lease ID").to_string();
    assert_eq!(granted, format!("lease {id} granted with TTL(600s)\n"));
    assert_eq!(id.len(), 16, "{granted}");
    for (endpoint, key) in [(first, "/a/l"), (second, "/b/l"), (third, "/m/l")] {
        assert_eq!(must_ok(endpoint, &["put", "--lease", &id, key, "v"]), "OK\n");
    }
    let ttl = must_ok(second, &["lease", "timetolive", &id, "--keys"]);
    let prefix = format!("lease {id} granted with TTL(600s), remaining(");
    assert!(ttl.starts_with(&prefix), "{ttl}");
    assert!(ttl.ends_with("s), attached keys([/a/l /b/l /m/l])\n"), "{ttl}");
    assert_eq!(
        must_ok(third, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(600)\n")
    );
    let listed = must_ok(first, &["lease", "list"]);
    assert!(listed.starts_with("found ") && listed.lines().any(|l| l == id), "{listed}");
    let json: serde_json::Value =
        serde_json::from_str(&must_ok(first, &["lease", "timetolive", &id, "-w", "json"]))
            .expect("json");
    assert_eq!(json["granted-ttl"], 600, "{json}");
    assert_eq!(json["keys"], serde_json::Value::Null, "{json}");

    assert_eq!(must_ok(third, &["lease", "revoke", &id]), format!("lease {id} revoked\n"));
    assert_eq!(
        must_ok(first, &["get", "/", "--prefix", "--keys-only"])
            .lines()
            .filter(|l| l.ends_with("/l"))
            .count(),
        0
    );
    assert_eq!(
        must_ok(second, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    let stderr = must_fail(first, &["put", "--lease", &id, "/a/late", "v"]);
    assert!(stderr.contains("Error: etcdserver: requested lease not found"), "{stderr}");
    let stderr = must_fail(first, &["lease", "keep-alive", "--once", &id]);
    assert!(stderr.contains("Error: etcdserver: requested lease not found"), "{stderr}");
    let stderr = must_fail(second, &["lease", "revoke", &id]);
    assert!(
        stderr.contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{stderr}"
    );
    let stderr = must_fail(second, &["lease", "grant", "9000000001"]);
    assert!(stderr.contains("etcdserver: too large lease TTL"), "{stderr}");
}
