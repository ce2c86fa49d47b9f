//! Compaction on a real node (decision D17): a `physical` Compact, through the etcd gRPC
//! gateway and through atollctl, answers only once the history is removed; the removal
//! runs while writes keep coming (it used to wait for the apply queue to go idle, which a
//! steady load never allowed); auto-compaction compacts by itself.

mod support;

use etcd_client::{Client, CompactionOptions, GetOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{TestNode, free_port, free_tcp_port, must_metric, must_run_atollctl};

const DEADLINE: Duration = Duration::from_secs(60);

fn must_start(dir: &std::path::Path, extra: &[&str]) -> (TestNode, u16) {
    let http = free_tcp_port();
    let metrics_url = format!("http://127.0.0.1:{http}");
    let mut flags = vec!["--listen-metrics-urls", &metrics_url];
    flags.extend_from_slice(extra);
    (TestNode::must_start_with(dir, free_port(), &flags), http)
}

async fn must_grpc(node: &TestNode) -> Client {
    Client::connect([format!("http://{}", node.endpoint())], None).await.expect("connect")
}

/// Writes `rounds` versions of each of `keys` keys; returns the newest revision.
async fn must_write_history(client: &mut Client, keys: usize, rounds: usize) -> i64 {
    let mut revision = 0;
    for round in 0..rounds {
        for k in 0..keys {
            let resp = client.put(format!("/hist/{k}"), format!("v{round}"), None).await;
            revision = resp.expect("put").header().expect("header").revision();
        }
    }
    revision
}

async fn must_revision(client: &mut Client) -> i64 {
    client.get("/", None).await.expect("get").header().expect("header").revision()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn physical_compaction_completes_under_write_load_without_stalling_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Small batches: the removal takes many paced batches, writes run between them.
    let (node, http) = must_start(dir.path(), &["--compaction-batch-limit", "50"]);
    let mut client = must_grpc(&node).await;

    eprintln!("phase: history of 20 keys x 60 versions");
    let history_head = must_write_history(&mut client, 20, 60).await;

    eprintln!("phase: a steady write load from a second client");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writer_client = must_grpc(&node).await;
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                writer_client.put(format!("/load/{}", i % 16), "x", None).await.expect("put");
                written.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    while written.load(Ordering::Relaxed) < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    eprintln!("phase: a physical compaction through gRPC answers once the history is gone");
    let removed_before = must_metric(http, "atoll_mvcc_compaction_versions_removed_total");
    let at = must_revision(&mut client).await;
    let writes_before = written.load(Ordering::Relaxed);
    client.compact(at, Some(CompactionOptions::new().with_physical())).await.expect("compact");
    let writes_during = written.load(Ordering::Relaxed) - writes_before;
    assert_eq!(must_metric(http, "atoll_mvcc_compaction_pending_shards"), 0);
    let removed =
        must_metric(http, "atoll_mvcc_compaction_versions_removed_total") - removed_before;
    assert!(removed >= 20 * 59, "{removed} old versions removed, at least 1180 expected");
    assert!(writes_during > 0, "writes kept completing while the compaction ran");
    eprintln!("{removed} versions removed while {writes_during} writes completed");

    eprintln!("phase: reads below the compacted revision fail, at it they answer");
    let below = client.get("/hist/0", Some(GetOptions::new().with_revision(history_head - 1)));
    let err = below.await.expect_err("compacted");
    assert!(err.to_string().contains("required revision has been compacted"), "{err}");
    let kept = client.get("/hist/0", Some(GetOptions::new().with_revision(at))).await;
    assert_eq!(kept.expect("read at the compacted revision").kvs()[0].value(), b"v59");

    eprintln!("phase: atollctl compaction --physical, writes still going");
    must_write_history(&mut client, 20, 10).await;
    let at = must_revision(&mut client).await.to_string();
    let removed_before = must_metric(http, "atoll_mvcc_compaction_versions_removed_total");
    let endpoint = node.endpoint();
    let out = must_run_atollctl(
        &[
            "--endpoints",
            &endpoint,
            "--data-dir",
            dir.path().to_str().expect("utf8"),
            "compaction",
            &at,
            "--physical",
        ],
        &[],
        "",
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("compacted revision {at}\n"));
    assert_eq!(must_metric(http, "atoll_mvcc_compaction_pending_shards"), 0);
    let removed =
        must_metric(http, "atoll_mvcc_compaction_versions_removed_total") - removed_before;
    assert!(removed >= 20 * 10, "{removed} old versions removed by the second compaction");

    stop.store(true, Ordering::Relaxed);
    writer.await.expect("writer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_auto_compaction_compacts_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    eprintln!("phase: a node keeping one second of history (etcd's periodic mode)");
    let (node, http) = must_start(dir.path(), &["--auto-compaction-retention", "1s"]);
    let mut client = must_grpc(&node).await;
    let first = client.put("/auto", "0", None).await.expect("put");
    let first = first.header().expect("header").revision();
    let started = Instant::now();
    let mut i = 0;
    loop {
        i += 1;
        client.put("/auto", i.to_string(), None).await.expect("put");
        let old = client.get("/auto", Some(GetOptions::new().with_revision(first))).await;
        match old {
            Ok(_) => assert!(started.elapsed() < DEADLINE, "no auto compaction in {DEADLINE:?}"),
            Err(e) => {
                assert!(e.to_string().contains("required revision has been compacted"), "{e}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("phase: the compactor then removes the history by itself");
    while must_metric(http, "atoll_mvcc_compaction_versions_removed_total") == 0 {
        assert!(started.elapsed() < DEADLINE, "auto compaction removed nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
