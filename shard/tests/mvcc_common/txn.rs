//! Builders of Txn cases.

use super::table::{Case, write};
use super::{a600, c600, d600, hdr, put_req, range, range_resp};
use atoll_proto::{
    AtollError, Compare, CompareResult, CompareTarget, KeyValue, PutResponse, RangeResponse,
    RequestOp, ResponseOp, TxnRequest, TxnResponse, WriteOp,
};
use atoll_shard::mvcc::WriteResponse;

/// A compare of one key.
pub fn cmp(key: &[u8], result: CompareResult, target: CompareTarget) -> Compare {
    Compare { result, target, key: key.to_vec(), range_end: Vec::new() }
}

/// A compare of every key of `[key, end)`.
pub fn cmp_range(key: &[u8], end: &[u8], result: CompareResult, target: CompareTarget) -> Compare {
    Compare { range_end: end.to_vec(), ..cmp(key, result, target) }
}

/// A Txn request.
pub fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest { compare, success, failure }
}

/// A put op.
pub fn op_put(key: &[u8], value: &[u8]) -> RequestOp {
    RequestOp::Put(put_req(key, value))
}

/// A range op.
pub fn op_range(key: &[u8], end: &[u8]) -> RequestOp {
    RequestOp::Range(range(key, end))
}

/// A Txn answer.
pub fn txn_ok(rev: i64, succeeded: bool, responses: Vec<ResponseOp>) -> TxnResponse {
    TxnResponse { header: hdr(rev), succeeded, responses }
}

/// A put answer inside a Txn.
pub fn r_put(rev: i64, prev_kv: Option<KeyValue>) -> ResponseOp {
    ResponseOp::Put(PutResponse { header: hdr(rev), prev_kv })
}

/// A range answer inside a Txn (never `more`).
pub fn r_range(rev: i64, kvs: Vec<KeyValue>, count: i64) -> ResponseOp {
    ResponseOp::Range(range_resp(rev, kvs, false, count))
}

/// The store of [`history`] untouched.
pub fn unchanged() -> RangeResponse {
    range_resp(600, vec![a600(), c600(), d600()], false, 3)
}

/// A Txn case.
pub fn t(
    name: &'static str,
    setup: Vec<WriteOp>,
    req: TxnRequest,
    want: Result<TxnResponse, AtollError>,
    after: RangeResponse,
) -> Case {
    write(name, setup, WriteOp::Txn(req), want.map(WriteResponse::Txn), after)
}

/// A compare-only case: answers `succeeded` with no ops, leaves the store alone.
pub fn c(
    name: &'static str,
    setup: Vec<WriteOp>,
    compare: Vec<Compare>,
    succeeded: bool,
    after: RangeResponse,
) -> Case {
    let rev = after.header.revision;
    t(name, setup, txn(compare, vec![], vec![]), Ok(txn_ok(rev, succeeded, vec![])), after)
}
