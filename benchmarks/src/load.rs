//! `atoll-bench load`: writes keys `0..N` of a key space as fast as the server takes them,
//! as txns of up to 128 puts (etcd's `--max-txn-ops`) sent by many concurrent loops, so a
//! million keys load in seconds instead of a million round trips.

use crate::backend::{Backend, BackendError};
use crate::connect::ClientPool;
use crate::keys::KeySpace;
use crate::limits::{
    LOAD_ATTEMPTS_MAX, LOAD_BATCH_MAX, LOAD_REQUEST_BYTES_MAX, LOAD_RETRY_PAUSE, PUT_OVERHEAD_BYTES,
};
use crate::progress::Progress;
use crate::recorder::Counters;
use crate::report::{per_second, round3};
use crate::workload::put_request;
use anyhow::{Context as _, anyhow};
use atoll_proto::kv::{RequestOp, TxnRequest};
use serde::Serialize;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A load to run.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The keys written: every key of the space, in order.
    pub keys: KeySpace,
    /// The value of every key.
    pub value: Arc<Vec<u8>>,
    /// Puts per request (1: plain puts; more: a txn), capped by [`batch_size`].
    pub batch: usize,
    /// Concurrent request loops.
    pub clients: usize,
    /// Draw the live progress line.
    pub progress: bool,
}

/// What a load did; printed as one JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LoadReport {
    /// Keys written.
    pub keys: u64,
    /// Puts per request actually used.
    pub batch: usize,
    /// Concurrent request loops.
    pub clients: usize,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests re-sent after a failure.
    pub retries: u64,
    /// Wall time in seconds.
    pub duration_s: f64,
    /// Keys written per second.
    pub keys_per_s: f64,
}

/// The puts per request: the one asked for, capped at etcd's txn limit and so that a request
/// stays well below etcd's default request size limit.
pub fn batch_size(requested: usize, key_bytes: usize, value_bytes: usize) -> usize {
    let per_put = key_bytes + value_bytes + PUT_OVERHEAD_BYTES;
    requested.clamp(1, LOAD_BATCH_MAX).min((LOAD_REQUEST_BYTES_MAX / per_put).max(1))
}

/// The key indices of batch number `index`, or `None` past the end.
pub fn batch_range(index: u64, batch: usize, total: u64) -> Option<Range<u64>> {
    let first = index.checked_mul(batch as u64)?;
    (first < total).then(|| first..(first + batch as u64).min(total))
}

struct Shared {
    spec: LoadSpec,
    batch: usize,
    next_batch: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
    counters: Arc<Counters>,
}

/// Loads every key of `spec.keys`.
pub async fn load(pool: &ClientPool, spec: LoadSpec) -> anyhow::Result<LoadReport> {
    let batch = batch_size(spec.batch, spec.keys.key_bytes(), spec.value.len());
    let counters = Arc::new(Counters::default());
    let progress = Progress::start("load".into(), Arc::clone(&counters), spec.progress);
    let clients = spec.clients.max(1);
    let shared = Arc::new(Shared {
        spec,
        batch,
        next_batch: AtomicU64::new(0),
        requests: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        counters,
    });
    let start = Instant::now();
    let loops: Vec<_> = (0..clients)
        .map(|worker| tokio::spawn(load_loop(Arc::clone(&shared), pool.client(worker).clone())))
        .collect();
    for handle in loops {
        handle.await.map_err(|e| anyhow!("a load loop failed: {e}"))??;
    }
    let elapsed = start.elapsed();
    drop(progress);
    let keys = shared.spec.keys.size();
    Ok(LoadReport {
        keys,
        batch,
        clients,
        requests: shared.requests.load(Ordering::Relaxed),
        retries: shared.retries.load(Ordering::Relaxed),
        duration_s: round3(elapsed.as_secs_f64()),
        keys_per_s: round3(per_second(keys, elapsed)),
    })
}

async fn load_loop(shared: Arc<Shared>, client: Backend) -> anyhow::Result<()> {
    let total = shared.spec.keys.size();
    loop {
        let index = shared.next_batch.fetch_add(1, Ordering::Relaxed);
        let Some(range) = batch_range(index, shared.batch, total) else { return Ok(()) };
        let count = range.end - range.start;
        let first = shared.spec.keys.key(range.start);
        send_with_retries(&shared, &client, range).await.with_context(|| {
            format!("loading {count} keys from {}", String::from_utf8_lossy(&first))
        })?;
        shared.counters.succeeded.fetch_add(count, Ordering::Relaxed);
    }
}

/// Sends one batch, re-sending it after a failure: writing the same values again is harmless,
/// so a batch that may or may not have been applied can be repeated.
async fn send_with_retries(
    shared: &Shared,
    client: &Backend,
    range: Range<u64>,
) -> anyhow::Result<()> {
    let mut attempt = 1;
    loop {
        shared.requests.fetch_add(1, Ordering::Relaxed);
        match send_batch(&shared.spec, client, range.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= LOAD_ATTEMPTS_MAX => {
                return Err(anyhow!("failed {attempt} times, last: {e}"));
            }
            Err(_) => {
                attempt += 1;
                shared.retries.fetch_add(1, Ordering::Relaxed);
                shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(LOAD_RETRY_PAUSE).await;
            }
        }
    }
}

async fn send_batch(
    spec: &LoadSpec,
    client: &Backend,
    range: Range<u64>,
) -> Result<(), BackendError> {
    let put = |i| put_request(spec.keys.key(i), spec.value.to_vec());
    if range.end - range.start == 1 {
        return client.put(put(range.start)).await.map(drop);
    }
    let success = range.map(|i| RequestOp::Put(put(i))).collect();
    client.txn(TxnRequest { compare: Vec::new(), success, failure: Vec::new() }).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_txn_and_request_limits() {
        assert_eq!(batch_size(128, 16, 100), 128);
        assert_eq!(batch_size(1000, 16, 100), LOAD_BATCH_MAX);
        assert_eq!(batch_size(0, 16, 100), 1);
        // 64 KiB values: 15 puts fit in the request budget.
        assert_eq!(batch_size(128, 16, 64 * 1024), LOAD_REQUEST_BYTES_MAX / (16 + 65536 + 64));
        assert_eq!(batch_size(128, 16, 2 * 1024 * 1024), 1);
    }

    #[test]
    fn batches_cover_every_key_once() {
        let total = 1000;
        let mut covered = Vec::new();
        let mut index = 0;
        while let Some(range) = batch_range(index, 128, total) {
            covered.extend(range);
            index += 1;
        }
        assert_eq!(index, 8);
        assert_eq!(covered, (0..total).collect::<Vec<_>>());
        assert_eq!(batch_range(7, 128, total), Some(896..1000));
        assert_eq!(batch_range(u64::MAX, 128, total), None);
    }
}
