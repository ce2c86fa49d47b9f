//! The operator endpoints of a real node: /health goes through Raft, /metrics shows the group
//! commit at work, unknown paths are 404.

mod support;

use atoll_proto::PutRequest;
use std::io::{Read, Write};
use support::{TestNode, free_port, free_tcp_port};

fn must_get(port: u16, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect http");
    write!(s, "GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).expect("status");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let http = free_tcp_port();
    let metrics_url = format!("http://127.0.0.1:{http}");
    let node = TestNode::must_start_with(
        dir.path(),
        free_port(),
        &["--listen-metrics-urls", &metrics_url],
    );
    eprintln!("phase: /health answers after a linearizable read index");
    let (status, body) = must_get(http, "/health");
    assert_eq!((status, body.trim()), (200, r#"{"health":"true","reason":""}"#));
    eprintln!("phase: writes show up in the log writer's counters");
    let client = node.must_client().await;
    for i in 0..10 {
        let put = PutRequest { key: format!("m{i}").into_bytes(), ..Default::default() };
        client.put(put).await.expect("put");
    }
    let (status, body) = must_get(http, "/metrics");
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
    assert_eq!(must_get(http, "/nope").0, 404);
    assert_eq!(must_get(http, "/livez"), (200, "ok\n".to_string()));
}
