//! Crash safety of a real node: kill -9 under concurrent writers, restart, and every
//! acknowledged write is there with its value, in revision order per writer.

mod support;

use atoll_proto::{PutRequest, RangeRequest};
use std::sync::{Arc, Mutex};
use support::{TestNode, free_port};

const WRITERS: usize = 16;
/// Acknowledged writes to wait for before each kill, so the kill lands mid-stream.
const ACKED_BEFORE_KILL: usize = 400;
const CRASHES: usize = 3;

#[derive(Clone, Debug)]
struct Acked {
    key: Vec<u8>,
    value: Vec<u8>,
    revision: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    for round in 0..CRASHES {
        eprintln!(
            "phase: round {round}: start the node, write with {WRITERS} clients, kill -9 mid-stream"
        );
        let node = TestNode::must_start(dir.path(), port);
        let client = node.must_client().await;
        let target = acked.lock().expect("lock").len() + ACKED_BEFORE_KILL;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let (client, acked) = (client.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let key = format!("crash/r{round}/w{w}/{n:06}").into_bytes();
                    let value = format!("value-{round}-{w}-{n}").into_bytes();
                    let put =
                        PutRequest { key: key.clone(), value: value.clone(), ..Default::default() };
                    match client.put(put).await {
                        Ok(resp) => acked.lock().expect("lock").push(Acked {
                            key,
                            value,
                            revision: resp.header.revision,
                        }),
                        Err(_) => return,
                    }
                }
            }));
        }
        while acked.lock().expect("lock").len() < target {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        node.kill9();
        for t in tasks {
            let _ = t.await;
        }
    }
    eprintln!("phase: restart and check every acknowledged write");
    let node = TestNode::must_start(dir.path(), port);
    let client = node.must_client().await;
    let acked = acked.lock().expect("lock").clone();
    assert!(acked.len() >= CRASHES * ACKED_BEFORE_KILL);
    for a in &acked {
        let resp = client
            .range(RangeRequest { key: a.key.clone(), ..Default::default() })
            .await
            .expect("get after restart");
        assert_eq!(
            resp.kvs.len(),
            1,
            "acknowledged key {:?} lost",
            String::from_utf8_lossy(&a.key)
        );
        assert_eq!(resp.kvs[0].value, a.value);
        assert_eq!(resp.kvs[0].mod_revision, a.revision, "revision changed across restart");
    }
    let mut revisions: Vec<i64> = acked.iter().map(|a| a.revision).collect();
    revisions.sort_unstable();
    revisions.dedup();
    assert_eq!(revisions.len(), acked.len(), "two acknowledged writes share a revision");
}
