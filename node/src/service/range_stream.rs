//! RangeStream (etcd 3.7, decision D22): the answer to a Range sent in chunks read at one
//! revision, so neither side holds the whole result.
//!
//! As etcd's `EtcdServer.rangeStream`: the first chunk is an ordinary Range (linearizable
//! or serializable, at the asked revision or now) with a small limit; every later chunk
//! reads the keys after the last one sent at the first chunk's revision, its limit doubled
//! or halved to land its encoded size near `--max-request-bytes`. Chunks carry keys only;
//! the last one carries the header (the first chunk's), `more` and `count`, which is the
//! keys sent plus, when a limit cut the range short, one count of the rest. A `count_only`
//! request is one Range, one message.
//!
//! Here the first chunk is a Range of the whole range (decision D15): for a linearizable
//! read, every shard of the range has answered a read index and is closed up to the cut,
//! so every later chunk reads at that revision from the local replicas without asking a
//! leader again. Chunks skip counting (`Counting::Skip`), so each costs what it returns,
//! not a scan of the rest of the range.

use super::NodeService;
use atoll_proto::{AtollError, RangeRequest, ResponseHeader, SortOrder, SortTarget};
use atoll_shard::mvcc::Counting;
use std::future::Future;

/// Keys in a stream's first chunk (etcd's `initialStreamChunkLimit`).
pub const RANGE_STREAM_FIRST_CHUNK_KEYS: i64 = 10;

/// One message of a range stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeChunk {
    /// Set on the last chunk only: the revision the stream was read at (etcd's header of a
    /// Range at that revision).
    pub header: Option<ResponseHeader>,
    /// The chunk's keys, after the previous chunk's.
    pub kvs: Vec<atoll_proto::KeyValue>,
    /// Last chunk: the limit cut the range short.
    pub more: bool,
    /// Last chunk: the keys in the whole range.
    pub count: i64,
}

/// The next chunk's limit from the last one's and its encoded size (etcd's
/// `adjustChunkLimit`): doubled below half the target, halved above twice it, at least 1.
pub fn next_chunk_keys(last_keys: i64, last_bytes: usize, target_bytes: usize) -> i64 {
    let keys = if last_bytes < target_bytes / 2 {
        last_keys.saturating_mul(2)
    } else if last_bytes > target_bytes.saturating_mul(2) {
        last_keys / 2
    } else {
        last_keys
    };
    keys.max(1)
}

impl NodeService {
    /// Serves `req` as a range stream: each chunk goes to `send`, which answers the chunk's
    /// encoded size, or `None` once the client has gone (the stream then stops reading).
    /// Sort orders and revision filters are the caller's to refuse (etcd refuses them before
    /// reading). The stream counts as one read in the node's request counters.
    pub async fn range_stream<F, Fut>(&self, req: RangeRequest, send: F) -> Result<(), AtollError>
    where
        F: FnMut(RangeChunk) -> Fut,
        Fut: Future<Output = Option<usize>>,
    {
        let counters = &self.inner.counters;
        counters.reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self.stream_chunks(req, send).await;
        if result.is_err() {
            counters.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    async fn stream_chunks<F, Fut>(&self, req: RangeRequest, mut send: F) -> Result<(), AtollError>
    where
        F: FnMut(RangeChunk) -> Fut,
        Fut: Future<Output = Option<usize>>,
    {
        if req.count_only {
            let r = self.range(req).await?;
            let only =
                RangeChunk { header: Some(r.header), count: r.count, ..RangeChunk::default() };
            send(only).await;
            return Ok(());
        }
        // NONE streams in key order whatever the target, as etcd's `IsDefaultOrdering` has
        // it (the unary Range sorts NONE with another target ascending by it); every chunk
        // must come in key order for the next to start after its last key.
        let req = RangeRequest { sort_order: SortOrder::None, sort_target: SortTarget::Key, ..req };
        let target_bytes = self.inner.limits.max_request_bytes;
        let total = if req.limit > 0 { req.limit } else { i64::MAX };
        let mut chunk = RangeRequest { limit: RANGE_STREAM_FIRST_CHUNK_KEYS.min(total), ..req };
        let mut header = None;
        let mut sent: i64 = 0;
        loop {
            let part = self.range_counted(chunk.clone(), Counting::Skip).await?;
            let header = header.get_or_insert_with(|| {
                // Later chunks read where the first did: at the asked revision, or at the
                // one its header names (the cut of a read of now). Every local replica of
                // the range has applied it, so no leader is asked again.
                if chunk.revision <= 0 {
                    chunk.revision = part.header.revision;
                }
                chunk.serializable = true;
                part.header.clone()
            });
            sent = sent.saturating_add(i64::try_from(part.kvs.len()).unwrap_or(i64::MAX));
            let next_key = match part.kvs.last() {
                Some(kv) if part.more => {
                    let mut next = kv.key.clone();
                    next.push(0);
                    Some(next)
                }
                _ => None,
            };
            let done = next_key.is_none() || sent >= total;
            let mut out = RangeChunk { kvs: part.kvs, ..RangeChunk::default() };
            if done {
                out.header = Some(header.clone());
                out.more = part.more;
                out.count = sent;
                if let Some(rest) = &next_key {
                    out.count += self.count_from(&chunk, rest).await?;
                }
            }
            let Some(bytes) = send(out).await else { return Ok(()) };
            let Some(next_key) = next_key.filter(|_| !done) else { return Ok(()) };
            chunk.key = next_key;
            chunk.limit = next_chunk_keys(chunk.limit, bytes, target_bytes).min(total - sent);
        }
    }

    /// The live keys of `[key, chunk.range_end)` at the stream's revision.
    async fn count_from(&self, chunk: &RangeRequest, key: &[u8]) -> Result<i64, AtollError> {
        let rest = RangeRequest { key: key.to_vec(), limit: 0, count_only: true, ..chunk.clone() };
        Ok(self.range(rest).await?.count)
    }
}

#[cfg(test)]
mod tests {
    use super::next_chunk_keys;

    #[test]
    fn chunks_grow_below_half_the_target_and_shrink_above_twice_it() {
        assert_eq!(next_chunk_keys(10, 100, 1000), 20);
        assert_eq!(next_chunk_keys(10, 500, 1000), 10);
        assert_eq!(next_chunk_keys(10, 2000, 1000), 10);
        assert_eq!(next_chunk_keys(10, 2001, 1000), 5);
        assert_eq!(next_chunk_keys(1, 5000, 1000), 1, "never below one key");
        assert_eq!(next_chunk_keys(i64::MAX, 0, 1000), i64::MAX);
    }
}
