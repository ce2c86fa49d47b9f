//! Merging the Range answers of several shards into one etcd answer (pure).
//!
//! A Range whose keys span shards is sent to each shard clipped to its keys
//! ([`crate::shard_map::ShardMapCache::shards_for_range`]), with the request that
//! [`shard_request`] returns, and the answers are combined by [`merge_ranges`]. The result is
//! what one etcd store holding every key would answer (etcd v3.5 `applierV3backend.Range`,
//! the same rules as `atoll-shard`'s `mvcc/range.rs`):
//!
//! - `count` is the number of keys in the range, before limit and filters: the sum of the
//!   shards' counts.
//! - The min/max revision filters drop keys, then the kept keys are sorted by the requested
//!   order (etcd: "sort ASCEND by default only when target is not KEY"; ties keep key order,
//!   docs/decisions.md D7), then cut to `limit`; `more` says whether more kept keys existed.
//!   Each shard's first `limit` keys in that order hold every key of the global first
//!   `limit` that it owns, so asking each shard for `limit` keys is enough, and a shard that
//!   answered `more` proves that more keys existed.
//! - One exception: with no sort order, a non-KEY target, no filter and a limit, etcd fetches
//!   the first `limit + 1` keys *in key order* and sorts only those. A shard's answer to the
//!   same request sorts its own first keys, not the global ones, so each shard is asked for
//!   its first `limit + 1` keys in key order instead, and the merge sorts the global first
//!   `limit + 1`.
//! - `keys_only` drops values after sorting; when the sort is by value, shards are asked for
//!   values and the merge drops them. `count_only` returns no key and `more` false.
//! - Every shard is read at the same revision (DESIGN §4, closed revisions); the header's
//!   revision is the highest of the parts (for a read of "now", the node gives every part
//!   the revision read at, decision D15).

use atoll_proto::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget, sort_kvs};

/// How etcd evaluates a Range, as far as merging is concerned.
struct MergePlan {
    /// The sort applied to the kept keys; `None` leaves them in key order.
    order: Option<SortOrder>,
    /// etcd's limit + 1 prefetch in key order before sorting by a non-KEY target.
    prefetch_then_sort: bool,
    /// Keys returned at most; `None` for no limit.
    limit: Option<usize>,
    /// Whether shards must return values even for `keys_only` (the merge sorts by value).
    needs_values: bool,
}

impl MergePlan {
    fn new(req: &RangeRequest) -> MergePlan {
        let order = req.effective_sort_order();
        let limit = usize::try_from(req.limit).ok().filter(|&l| l > 0);
        let prefetch_then_sort = req.sort_order == SortOrder::None
            && req.sort_target != SortTarget::Key
            && !req.has_revision_filters()
            && limit.is_some();
        let needs_values = order.is_some() && req.sort_target == SortTarget::Value;
        MergePlan { order, prefetch_then_sort, limit, needs_values }
    }
}

/// The request to send to one shard for `req`, clipped to `[key, range_end)` (a span from
/// `shards_for_range`). Everything else is `req`'s, except what the merge needs to get
/// etcd's answer: values when the sort is by value, and the first `limit + 1` keys in key
/// order for etcd's prefetch case (see the module documentation).
pub fn shard_request(req: &RangeRequest, key: &[u8], range_end: &[u8]) -> RangeRequest {
    let plan = MergePlan::new(req);
    let mut shard_req =
        RangeRequest { key: key.to_vec(), range_end: range_end.to_vec(), ..req.clone() };
    if plan.needs_values {
        shard_req.keys_only = false;
    }
    if plan.prefetch_then_sort {
        shard_req.sort_target = SortTarget::Key;
        shard_req.limit = req.limit.saturating_add(1);
    }
    shard_req
}

/// Combines the shards' answers to [`shard_request`]s for `req` into etcd's answer for
/// `req`. `parts` are in key order of their shards. No part (a range that holds no key)
/// gives an empty answer with a default header.
pub fn merge_ranges(req: &RangeRequest, parts: Vec<RangeResponse>) -> RangeResponse {
    let plan = MergePlan::new(req);
    let mut header = parts.first().map(|p| p.header.clone()).unwrap_or_default();
    header.revision = parts.iter().map(|p| p.header.revision).max().unwrap_or_default();
    let count = parts.iter().map(|p| p.count).sum();
    let part_more = parts.iter().any(|p| p.more);
    let mut kvs: Vec<KeyValue> = parts.into_iter().flat_map(|p| p.kvs).collect();
    let mut more = false;
    if plan.prefetch_then_sort {
        // etcd sorts the first limit + 1 keys in key order, then cuts to limit.
        let fetched = plan.limit.map_or(usize::MAX, |l| l.saturating_add(1));
        kvs.truncate(fetched);
    } else {
        more = part_more;
    }
    if let Some(order) = plan.order {
        sort_kvs(&mut kvs, req.sort_target, order);
    }
    if req.keys_only {
        kvs.iter_mut().for_each(|kv| kv.value = Vec::new());
    }
    if let Some(limit) = plan.limit
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    if req.count_only {
        kvs.clear();
        more = false;
    }
    RangeResponse { header, kvs, more, count }
}
