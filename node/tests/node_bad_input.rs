//! Bad input never panics and never loses data: unknown flags, a locked or corrupt data
//! directory, an oversized request, a request only nodes may send. Each gives a clear one-line
//! error.

mod support;

use atoll_proto::{
    AtollError, CloseRequest, CompactShardRequest, CompactionRequest, NativeRequest, PutRequest,
    RangeRequest, ShardId,
};
use atoll_router::ClientError;
use std::process::Stdio;
use support::{TestNode, atoll_command, free_port};

fn must_fail(cmd: &mut std::process::Command) -> String {
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("run atoll");
    assert!(!out.status.success(), "atoll should have failed");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert!(!stderr.contains("panicked"), "no panic on bad input: {stderr}");
    let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(error_lines.len(), 1, "exactly one error line, got: {stderr}");
    stderr
}

#[test]
fn unknown_flag_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = must_fail(&mut atoll_command(dir.path(), free_port(), &["--no-such-flag"]));
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn bad_flag_value_is_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr =
        must_fail(&mut atoll_command(dir.path(), free_port(), &["--max-request-bytes", "lots"]));
    assert!(stderr.contains("max-request-bytes"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_data_dir_is_refused_and_the_first_node_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    eprintln!("phase: first node owns the data directory");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    client
        .put(PutRequest { key: b"k".to_vec(), value: b"v".to_vec(), ..Default::default() })
        .await
        .expect("put");
    eprintln!("phase: a second node on the same directory fails with one line");
    let stderr = must_fail(&mut atoll_command(dir.path(), free_port(), &[]));
    assert!(stderr.contains("locked"), "{stderr}");
    eprintln!("phase: the first node still serves its data");
    let resp =
        client.range(RangeRequest { key: b"k".to_vec(), ..Default::default() }).await.expect("get");
    assert_eq!(resp.kvs[0].value, b"v");
}

#[test]
fn corrupt_data_dir_is_one_line_and_non_zero() {
    eprintln!("phase: a data directory whose database is a file, not a directory");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("db"), b"not a database").expect("write");
    let stderr = must_fail(&mut atoll_command(dir.path(), free_port(), &[]));
    assert!(stderr.contains("data directory") || stderr.contains("db"), "{stderr}");

    eprintln!("phase: a real database whose files were overwritten with garbage");
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let node = TestNode::must_start(dir.path(), free_port());
        node.kill9();
    }
    corrupt_every_file(&dir.path().join("db"));
    let stderr = must_fail(&mut atoll_command(dir.path(), free_port(), &[]));
    assert!(stderr.contains("corrupt") || stderr.contains("data directory"), "{stderr}");
}

fn corrupt_every_file(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            corrupt_every_file(&path);
        } else if path.file_name().is_some_and(|n| n != "lock") {
            let len = std::fs::metadata(&path).expect("meta").len().max(64) as usize;
            std::fs::write(&path, vec![0xA5u8; len]).expect("overwrite");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_is_refused_and_nothing_is_lost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    client
        .put(PutRequest { key: b"keep".to_vec(), value: b"me".to_vec(), ..Default::default() })
        .await
        .expect("put");
    eprintln!("phase: a 2 MiB value is over the 1.5 MiB default");
    let big = PutRequest { key: b"big".to_vec(), value: vec![7u8; 2 << 20], ..Default::default() };
    let err = client.put(big).await.expect_err("too large");
    assert_eq!(err.to_string(), "etcdserver: request is too large");
    eprintln!("phase: the node still serves and kept the earlier write");
    let resp = client
        .range(RangeRequest { key: b"keep".to_vec(), ..Default::default() })
        .await
        .expect("get");
    assert_eq!(resp.kvs[0].value, b"me");
    let missing = client
        .range(RangeRequest { key: b"big".to_vec(), ..Default::default() })
        .await
        .expect("get");
    assert!(missing.kvs.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_meant_for_nodes_are_refused_from_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = TestNode::must_start(dir.path(), free_port());
    let client = node.must_client().await;
    let revision = client
        .put(PutRequest { key: b"k".to_vec(), value: b"1".to_vec(), ..Default::default() })
        .await
        .expect("put")
        .header
        .revision;
    let shard = ShardId(1);
    let refused = [
        NativeRequest::Close(CloseRequest { shard, revision: revision + 1_000_000 }),
        NativeRequest::CompactShard(CompactShardRequest {
            shard,
            compaction: CompactionRequest { revision, physical: false },
        }),
    ];
    for req in refused {
        match client.request(req.clone()).await {
            Err(ClientError::Server(AtollError::Malformed { reason })) => {
                assert!(reason.contains("for nodes only"), "{reason}");
            }
            other => panic!("{req:?} from a client must be refused, got {other:?}"),
        }
    }
    eprintln!("phase: neither raised nor compacted the shard");
    let before = RangeRequest { key: b"k".to_vec(), revision: revision - 1, ..Default::default() };
    let resp = client.range(before).await.expect("a read below the put is not compacted");
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.header.revision, revision, "the shard's revision was not raised");
}
