//! RangeStream on the etcd gRPC gateway (decision D22), through a raw tonic client (the
//! `etcd-client` crate has no RangeStream): on a three-member cluster with several shards, a
//! range over every shard, far larger than one chunk, arrives complete, in key order and at
//! one revision while writers change it; limit, keys_only, count_only, an explicit revision
//! and serializable reads answer what the unary Range answers; sort orders and revision
//! filters are refused as etcd 3.7 refuses them.

mod support;

use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::etcdserverpb::kv_client::KvClient;
use atoll_proto::etcd::mvccpb::KeyValue;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use support::cluster::TestCluster;
use support::etcd::{must_connect, must_kv_client};
use tonic::Code;
use tonic::transport::Channel;

/// Keys written before the streams: 4 prefixes (3 shards) of this many.
const KEYS_PER_PREFIX: usize = 600;
const PREFIXES: [&str; 4] = ["/a/", "/b/", "/m/", "/z/"];
/// Bytes of each value: the whole range is ~2.4 MB, above `--max-request-bytes`.
const VALUE_BYTES: usize = 1000;

fn everything() -> pb::RangeRequest {
    pb::RangeRequest { key: b"/".to_vec(), range_end: b"0".to_vec(), ..Default::default() }
}

/// What a stream delivered: every chunk as it came, and their merge.
struct Streamed {
    chunks: Vec<pb::RangeResponse>,
    merged: pb::RangeResponse,
    /// How far `progress` moved between the first chunk and the end of the stream.
    progress_during: u64,
}

/// Reads a whole stream, `pause` between chunks (a slow client), checking etcd's layout:
/// only the last chunk carries header, more and count. With `late` (a client of the
/// streaming member), writes `/z/late-*` once the first chunk arrived: the server has then
/// read at most the chunks that fill the stream's buffer, so the range past them changes
/// on the streaming member before it is read.
async fn must_stream(
    client: &mut KvClient<Channel>,
    req: pb::RangeRequest,
    pause: Duration,
    progress: &AtomicU64,
    mut late: Option<&mut etcd_client::Client>,
) -> Streamed {
    let mut stream = client.range_stream(req).await.expect("range stream").into_inner();
    let mut chunks = Vec::new();
    let mut at_first = None;
    while let Some(msg) = stream.message().await.expect("chunk") {
        chunks.push(msg.range_response.expect("range_response"));
        at_first.get_or_insert(progress.load(Ordering::SeqCst));
        if let Some(writer) = late.take() {
            for i in 0..5 {
                writer.put(format!("/z/late-{i}"), "late", None).await.expect("late put");
            }
            // A linearizable read through the streaming member: its replica has applied them.
            writer.get("/z/late-4", None).await.expect("late get");
        }
        tokio::time::sleep(pause).await;
    }
    let progress_during = progress.load(Ordering::SeqCst) - at_first.unwrap_or(0);
    let (last, rest) = chunks.split_last().expect("at least one chunk");
    for c in rest {
        assert!(c.header.is_none() && !c.more && c.count == 0, "a middle chunk: {:?}", c.header);
    }
    let header = last.header.expect("the last chunk carries the header");
    let kvs: Vec<KeyValue> = chunks.iter().flat_map(|c| c.kvs.clone()).collect();
    let merged =
        pb::RangeResponse { header: Some(header), kvs, more: last.more, count: last.count };
    Streamed { chunks, merged, progress_during }
}

fn status<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    let s = result.expect_err("the call must fail");
    (s.code(), s.message().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_stream_arrives_whole_in_order_at_one_revision() {
    let root = tempfile::tempdir().expect("tempdir");
    let mut cluster = TestCluster::must_prepare(root.path(), 3, "/b/,/m/");
    cluster.must_start(0);
    cluster.must_start(1);
    // The third member serves metrics: a stream counts as one read.
    let metrics_port = support::free_tcp_port();
    cluster.extra_flags =
        vec!["--listen-metrics-urls".into(), format!("http://127.0.0.1:{metrics_port}")];
    cluster.must_start(2);
    let endpoints = cluster.endpoints(&[0, 1, 2]);
    let mut writer = must_connect(&endpoints[0]).await;
    let value = "v".repeat(VALUE_BYTES);
    for prefix in PREFIXES {
        // One txn per 100 keys of one shard: few round trips.
        for batch in 0..KEYS_PER_PREFIX / 100 {
            let puts: Vec<etcd_client::TxnOp> = (batch * 100..batch * 100 + 100)
                .map(|i| etcd_client::TxnOp::put(format!("{prefix}{i:05}"), value.clone(), None))
                .collect();
            writer.txn(etcd_client::Txn::new().and_then(puts)).await.expect("txn");
        }
    }
    let total = (KEYS_PER_PREFIX * PREFIXES.len()) as i64;
    let mut kv = must_kv_client(&endpoints[1]).await;

    eprintln!("phase: a stream while writers change the range is one revision's state");
    let written = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&written);
    let writers = tokio::spawn(async move {
        // Bounded: the stream ends long before, and the task is aborted then.
        // Into the last shard, which the stream reaches last: a stream that did not read
        // every chunk at its first chunk's revision would see these.
        for round in 0..10_000u64 {
            let key = format!("/z/{:05}", KEYS_PER_PREFIX as u64 - 1 - round % 100);
            writer.put(key, format!("changed {round}"), None).await.expect("put");
            writer.put(format!("/z/new-{round}"), "new", None).await.expect("put");
            progress.fetch_add(2, Ordering::SeqCst);
        }
    });
    // Writes under way before the stream starts.
    while written.load(Ordering::SeqCst) < 8 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streamed =
        must_stream(&mut kv, everything(), Duration::from_millis(50), &written, None).await;
    assert!(streamed.progress_during > 0, "writes landed while the stream was read");
    let revision = streamed.merged.header.expect("header").revision;
    assert!(streamed.chunks.len() > 3, "{} chunks", streamed.chunks.len());
    let keys: Vec<&[u8]> = streamed.merged.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys in order, each once");
    let mut at = everything();
    at.revision = revision;
    let unary = kv.range(at).await.expect("range at the stream's revision").into_inner();
    assert_eq!(streamed.merged.kvs, unary.kvs, "the stream is the range at its revision");
    assert_eq!((streamed.merged.count, streamed.merged.more), (unary.count, false));
    assert!(streamed.merged.count >= total);
    // Within one shard too, where no other shard's revision holds a read of now back.
    let last_shard =
        pb::RangeRequest { key: b"/z/".to_vec(), range_end: b"/z0".to_vec(), ..Default::default() };
    let mut late_writer = must_connect(&endpoints[1]).await;
    let streamed =
        must_stream(&mut kv, last_shard.clone(), Duration::ZERO, &written, Some(&mut late_writer))
            .await;
    let late = |kvs: &[KeyValue]| kvs.iter().any(|kv| kv.key.starts_with(b"/z/late-"));
    assert!(!late(&streamed.merged.kvs), "keys written after the first chunk are not streamed");
    let now = kv.range(last_shard.clone()).await.expect("range now").into_inner();
    assert!(late(&now.kvs), "they were written before the rest was read");
    assert!(streamed.chunks.len() > 3, "{} chunks", streamed.chunks.len());
    let at = pb::RangeRequest {
        revision: streamed.merged.header.expect("header").revision,
        ..last_shard
    };
    let unary = kv.range(at).await.expect("range at the stream's revision").into_inner();
    assert_eq!(streamed.merged.kvs, unary.kvs, "the stream is the range at its revision");
    writers.abort();
    let still = AtomicU64::new(0);

    eprintln!("phase: limit, keys_only, count_only, revision and serializable");
    let limited = must_stream(
        &mut kv,
        pb::RangeRequest { limit: 1_500, keys_only: true, ..everything() },
        Duration::ZERO,
        &still,
        None,
    )
    .await;
    let revision = limited.merged.header.expect("header").revision;
    let at = pb::RangeRequest { limit: 1_500, keys_only: true, revision, ..everything() };
    let unary = kv.range(at).await.expect("range").into_inner();
    assert_eq!(limited.merged.kvs.len(), 1_500);
    assert!(limited.merged.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(limited.merged.kvs, unary.kvs);
    assert_eq!((limited.merged.more, limited.merged.count), (true, unary.count));
    let counted = must_stream(
        &mut kv,
        pb::RangeRequest { count_only: true, revision, ..everything() },
        Duration::ZERO,
        &still,
        None,
    )
    .await;
    assert_eq!(counted.chunks.len(), 1);
    assert_eq!((counted.merged.count, counted.merged.kvs.len()), (unary.count, 0));
    let old = pb::RangeRequest { revision, ..everything() };
    let streamed = must_stream(&mut kv, old.clone(), Duration::ZERO, &still, None).await;
    assert_eq!(streamed.merged.kvs, kv.range(old).await.expect("range").into_inner().kvs);
    let mut follower = must_kv_client(&endpoints[2]).await;
    let serializable = pb::RangeRequest { serializable: true, ..everything() };
    let reads_before = support::must_metric(metrics_port, "atoll_server_reads_total");
    let streamed = must_stream(&mut follower, serializable, Duration::ZERO, &still, None).await;
    let reads = support::must_metric(metrics_port, "atoll_server_reads_total") - reads_before;
    assert_eq!(reads, 1, "one stream of {} chunks is one read", streamed.chunks.len());
    let revision = streamed.merged.header.expect("header").revision;
    let at = pb::RangeRequest { revision, ..everything() };
    assert_eq!(streamed.merged.kvs, follower.range(at).await.expect("range").into_inner().kvs);
    let empty = pb::RangeRequest {
        key: b"/nothing/".to_vec(),
        range_end: b"/nothing0".to_vec(),
        ..Default::default()
    };
    let streamed = must_stream(&mut kv, empty, Duration::ZERO, &still, None).await;
    assert_eq!((streamed.chunks.len(), streamed.merged.count), (1, 0));

    eprintln!("phase: what etcd 3.7 refuses");
    let sorted = pb::RangeRequest { sort_order: 2, ..everything() };
    let (code, message) = status(kv.range_stream(sorted).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::Unimplemented, "RangeStream does not support custom sort orders")
    );
    let filtered = pb::RangeRequest { min_mod_revision: 1, ..everything() };
    let (code, message) = status(kv.range_stream(filtered).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::Unimplemented, "RangeStream does not support revision filters")
    );
    let (code, message) = status(kv.range_stream(pb::RangeRequest::default()).await);
    assert_eq!(
        (code, message.as_str()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    // Ascending by key is key order: streamed, not refused.
    let ascending = pb::RangeRequest { sort_order: 1, sort_target: 0, limit: 5, ..everything() };
    assert_eq!(
        must_stream(&mut kv, ascending, Duration::ZERO, &still, None).await.merged.kvs.len(),
        5
    );
}
