//! Range evaluation with etcd v3.5 semantics (`applierV3backend.Range`,
//! `server/etcdserver/apply.go`, and `storeTxnRead.rangeKeys`, `server/mvcc/kvstore_txn.go`).
//!
//! What etcd does, and what is kept here:
//! - `count` is the number of live keys in the range at the read revision, before limit and
//!   before the min/max revision filters.
//! - With `sort_order == NONE` and no filter, etcd fetches `limit + 1` keys in key order,
//!   then sorts them (ASCEND by the target when the target is not KEY), then truncates to
//!   `limit`; `more` says whether the fetched keys exceeded `limit`. Otherwise it fetches
//!   every key, drops the filtered ones, sorts, truncates.
//! - `count_only` returns no keys (so `more` is false); `keys_only` empties values.
//!
//! The scan stops decoding once it holds as many keys as the answer can use and keeps only
//! counting (it reads each key's tombstone flag, never its value). Filters are applied while
//! scanning; when the result is in key order anyway (no sort, or KEY ascending) the scan also
//! stops collecting after `limit + 1` kept keys, which gives etcd's answer without holding
//! every key. Sorting by anything else, or KEY descending, needs every kept key, as in etcd.
//!
//! Ties of a sort keep key order. etcd uses Go's unstable `sort.Sort`, which orders ties
//! the same way for up to 12 keys (insertion sort) and leaves them unspecified above.

use crate::error::StorageError;
use crate::mvcc::view::{View, Visible};
use atoll_proto::{KeyValue, RangeRequest, RangeResponse, SortOrder, SortTarget, sort_kvs};

/// Whether a Range counts the live keys of its whole range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// `count` is exact (etcd's answer): the scan runs to the end of the range, unless the
    /// directory counts of decision D8 know the number.
    Exact,
    /// The scan stops once it holds what the answer uses, and `count` is only the number of
    /// live keys scanned until then: for a caller that counts once elsewhere, as a range
    /// stream does for its chunks (etcd's `CountTotal = false`, decision D22).
    Skip,
}

/// Where `count` comes from: the scan, the caller, or nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CountSource {
    /// Count every live key of the range while scanning.
    Scan,
    /// The caller knows the number of live keys in the range (directory counts).
    Known(i64),
    /// Not wanted ([`Counting::Skip`]).
    Skipped,
}

/// Evaluates `req` against `view` at `revision`; the header is left for the caller.
/// `with_pending` is true for a read at the newest revision inside a Txn (it sees the Txn's
/// own writes). Unless `count` is [`CountSource::Scan`], the scan stops once it holds what
/// the answer uses, and a `count_only` request with a known count scans nothing.
pub(crate) fn evaluate_range(
    view: &View<'_>,
    req: &RangeRequest,
    revision: i64,
    with_pending: bool,
    count: CountSource,
) -> Result<RangeResponse, StorageError> {
    let plan = RangePlan::new(req);
    let mut kvs = Vec::new();
    let mut scanned: i64 = 0;
    let known = matches!(count, CountSource::Known(_));
    if !known || plan.collect_max > 0 {
        let mut scan = view.scan(&req.key, &req.range_end, revision, with_pending);
        while let Some(visible) = scan.next_visible()? {
            scanned += 1;
            if kvs.len() < plan.collect_max {
                keep_if_wanted(&visible, req, plan.decode_values, &mut kvs)?;
            } else if count != CountSource::Scan {
                break;
            }
        }
    }
    let count = match count {
        CountSource::Known(n) => n,
        CountSource::Scan | CountSource::Skipped => scanned,
    };
    if let Some(order) = plan.order {
        sort_kvs(&mut kvs, req.sort_target, order);
    }
    if req.keys_only {
        // etcd drops values when it assembles the response, after sorting by them.
        kvs.iter_mut().for_each(|kv| kv.value = Vec::new());
    }
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit)
        && limit > 0
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    Ok(RangeResponse { header: Default::default(), kvs, more, count })
}

/// How a range request is served.
struct RangePlan {
    /// Most keys worth decoding; the rest are only counted.
    collect_max: usize,
    /// The sort applied after collecting, if any.
    order: Option<SortOrder>,
    /// Whether values are decoded: not for `keys_only`, unless they are sorted on.
    decode_values: bool,
}

impl RangePlan {
    fn new(req: &RangeRequest) -> RangePlan {
        let filtered = req.has_revision_filters();
        let order = req.effective_sort_order();
        let key_ordered =
            matches!(order, None | Some(SortOrder::Ascend)) && req.sort_target == SortTarget::Key;
        // etcd fetches limit + 1 before sorting when nothing is filtered and no order was
        // asked; in key order, the first limit + 1 kept keys are what etcd ends up with too.
        let etcd_prefetches = req.sort_order == SortOrder::None && !filtered;
        let limit = usize::try_from(req.limit).unwrap_or(0);
        let collect_max = if req.count_only {
            0
        } else if limit > 0 && (etcd_prefetches || key_ordered) {
            limit.saturating_add(1)
        } else {
            usize::MAX
        };
        // The scan yields key order, so a key-ordered answer needs no sort.
        let order = if key_ordered { None } else { order };
        let decode_values =
            !req.keys_only || (order.is_some() && req.sort_target == SortTarget::Value);
        RangePlan { collect_max, order, decode_values }
    }
}

/// Decodes `visible` and keeps it if it passes the min/max revision filters (etcd's
/// `pruneKVs`; 0 means no bound).
fn keep_if_wanted(
    visible: &Visible<'_>,
    req: &RangeRequest,
    decode_values: bool,
    kvs: &mut Vec<KeyValue>,
) -> Result<(), StorageError> {
    let mod_revision = visible.mod_revision();
    if (req.max_mod_revision != 0 && mod_revision > req.max_mod_revision)
        || (req.min_mod_revision != 0 && mod_revision < req.min_mod_revision)
    {
        return Ok(());
    }
    let kv = visible.to_key_value(decode_values)?;
    if (req.max_create_revision != 0 && kv.create_revision > req.max_create_revision)
        || (req.min_create_revision != 0 && kv.create_revision < req.min_create_revision)
    {
        return Ok(());
    }
    kvs.push(kv);
    Ok(())
}
