//! The operator endpoints of a real node: /health goes through Raft, /metrics shows the group
//! commit at work, unknown paths are 404.

mod support;

use atoll_proto::PutRequest;
use support::{TestNode, must_http_get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (node, http) = TestNode::must_start_with_metrics(dir.path());
    eprintln!("phase: /health answers after a linearizable read index");
    let (status, body) = must_http_get(http, "/health");
    assert_eq!((status, body.trim()), (200, r#"{"health":"true","reason":""}"#));
    eprintln!("phase: writes show up in the log writer's counters");
    let client = node.must_client().await;
    for i in 0..10 {
        let put = PutRequest { key: format!("m{i}").into_bytes(), ..Default::default() };
        client.put(put).await.expect("put");
    }
    let (status, body) = must_http_get(http, "/metrics");
    assert_eq!(status, 200);
    let writes =
        body.lines().find(|l| l.starts_with("atoll_server_writes_total ")).expect("writes");
    assert_eq!(writes, "atoll_server_writes_total 10");
    let syncs: u64 = body
        .lines()
        .find_map(|l| l.strip_prefix("atoll_log_writer_syncs_total "))
        .and_then(|v| v.parse().ok())
        .expect("syncs metric");
    assert!(syncs >= 1, "{body}");
    assert!(body.contains("atoll_shard_is_leader 1"), "{body}");
    eprintln!("phase: unknown paths and methods");
    assert_eq!(must_http_get(http, "/nope").0, 404);
    assert_eq!(must_http_get(http, "/livez"), (200, "ok\n".to_string()));
}
