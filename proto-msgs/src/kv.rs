//! Key-value messages with etcd v3 semantics. Field names follow `etcdserverpb`/`mvccpb`
//! (ETCD_API.md §1.3) so the gRPC gateway is a field-by-field copy.

use serde::{Deserialize, Serialize};

/// Filled by the server on every response, as etcd fills it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The ID of the member (node) that answered.
    pub member_id: u64,
    /// The store's revision when the request was served.
    pub revision: i64,
    /// The Raft term of the shard that served the request.
    pub raft_term: u64,
}

/// `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key; never empty.
    pub key: Vec<u8>,
    /// Revision of the write that created the key (since its last delete).
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of writes since creation; a delete resets it to 0.
    pub version: i64,
    /// The value; empty when `keys_only` was asked.
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// `RangeRequest.SortOrder`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// No sorting: results come in key order.
    #[default]
    None,
    /// Lowest target first.
    Ascend,
    /// Highest target first.
    Descend,
}

/// `RangeRequest.SortTarget`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// Sort by key.
    #[default]
    Key,
    /// Sort by version.
    Version,
    /// Sort by create revision.
    Create,
    /// Sort by mod revision.
    Mod,
    /// Sort by value.
    Value,
}

/// `RangeRequest`: `[key, range_end)`; see ETCD_API.md §1.3 for the conventions of
/// `range_end` (empty: the single key; `"\0"`: every key >= key; key+1: a prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key of the range.
    pub key: Vec<u8>,
    /// End of the range, exclusive.
    pub range_end: Vec<u8>,
    /// At most this many keys; 0 for no limit.
    pub limit: i64,
    /// Read at this revision; <= 0 for the newest.
    pub revision: i64,
    /// Sort order of the result.
    pub sort_order: SortOrder,
    /// What to sort by.
    pub sort_target: SortTarget,
    /// Serve from the local replica without a ReadIndex round (may be stale).
    pub serializable: bool,
    /// Return keys without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Only keys with mod_revision >= this (0: no bound).
    pub min_mod_revision: i64,
    /// Only keys with mod_revision <= this (0: no bound).
    pub max_mod_revision: i64,
    /// Only keys with create_revision >= this (0: no bound).
    pub min_create_revision: i64,
    /// Only keys with create_revision <= this (0: no bound).
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// Whether any min/max mod or create revision filter is set (0 means no bound).
    pub fn has_revision_filters(&self) -> bool {
        self.min_mod_revision != 0
            || self.max_mod_revision != 0
            || self.min_create_revision != 0
            || self.max_create_revision != 0
    }

    /// The sort etcd applies to the kept keys; `None` leaves them in key order. etcd sorts
    /// ASCEND by default "only when target is not 'KEY'".
    pub fn effective_sort_order(&self) -> Option<SortOrder> {
        match (self.sort_order, self.sort_target) {
            (SortOrder::None, SortTarget::Key) => None,
            (SortOrder::None, _) => Some(SortOrder::Ascend),
            (order, _) => Some(order),
        }
    }
}

/// Sorts `kvs` by `target` in `order`, stably: ties keep their input order (key order when
/// the input is in key order). etcd's unstable sort agrees for up to 12 keys (D7).
pub fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    let by_target = |a: &KeyValue, b: &KeyValue| -> std::cmp::Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend => kvs.sort_by(by_target),
        SortOrder::Descend => kvs.sort_by(|a, b| by_target(b, a)),
    }
}

/// `RangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The keys found, after limit.
    pub kvs: Vec<KeyValue>,
    /// Whether more keys matched than `kvs` holds.
    pub more: bool,
    /// Number of keys in the range (before limit).
    pub count: i64,
}

/// `PutRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key; must not be empty.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Lease to attach, 0 for none.
    pub lease: i64,
    /// Return the previous key-value pair.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// `PutResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The previous pair, if asked for and it existed.
    pub prev_kv: Option<KeyValue>,
}

/// `DeleteRangeRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// First key of the range.
    pub key: Vec<u8>,
    /// End of the range, exclusive; same conventions as [`RangeRequest::range_end`].
    pub range_end: Vec<u8>,
    /// Return the deleted pairs.
    pub prev_kv: bool,
}

/// `DeleteRangeResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Number of keys deleted.
    pub deleted: i64,
    /// The deleted pairs, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// `Compare.CompareResult`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Target equals the operand.
    #[default]
    Equal,
    /// Target is greater than the operand.
    Greater,
    /// Target is less than the operand.
    Less,
    /// Target differs from the operand.
    NotEqual,
}

/// `Compare.target_union`: what is compared, with its operand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The key's version.
    Version(i64),
    /// The key's create revision.
    Create(i64),
    /// The key's mod revision.
    Mod(i64),
    /// The key's value.
    Value(Vec<u8>),
    /// The key's lease.
    Lease(i64),
}

impl Default for CompareTarget {
    fn default() -> Self {
        CompareTarget::Version(0)
    }
}

/// `Compare`: one guard of a Txn. With a `range_end`, every key of the range must pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// The relation tested.
    pub result: CompareResult,
    /// The target and its operand.
    pub target: CompareTarget,
    /// The key compared.
    pub key: Vec<u8>,
    /// End of a compared range, exclusive; empty for the single key.
    pub range_end: Vec<u8>,
}

/// `RequestOp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A range read.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// `ResponseOp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    /// Answer to a range read.
    Range(RangeResponse),
    /// Answer to a put.
    Put(PutResponse),
    /// Answer to a delete.
    DeleteRange(DeleteRangeResponse),
    /// Answer to a nested transaction.
    Txn(TxnResponse),
}

/// `TxnRequest`: if every compare holds, run `success`, else `failure`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// The guards.
    pub compare: Vec<Compare>,
    /// Operations run when all guards hold.
    pub success: Vec<RequestOp>,
    /// Operations run otherwise.
    pub failure: Vec<RequestOp>,
}

/// `TxnResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Whether the success branch ran.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// `CompactionRequest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionRequest {
    /// Discard history before this revision.
    pub revision: i64,
    /// Wait until the history is physically removed.
    pub physical: bool,
}

/// `CompactionResponse`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionResponse {
    /// Response header.
    pub header: ResponseHeader,
}

/// Returns the `range_end` that makes `[key, range_end)` the prefix range of `key`
/// (etcd's `GetPrefixRangeEnd`): the key with its last non-0xff byte incremented and the
/// rest dropped, or `"\0"` (to the end) when the key is all 0xff or empty.
pub fn prefix_range_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_end_matches_etcd() {
        assert_eq!(prefix_range_end(b"aa"), b"ab");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
    }
}
