//! The table runner of the semantics suites: a case is a setup history, one request, the
//! exact expected answer and, for writes, the exact state afterwards.

use super::{Fixture, Mismatches, range};
use atoll_proto::{AtollError, RangeRequest, RangeResponse, SortOrder, SortTarget, WriteOp};
use atoll_shard::mvcc::WriteResponse;

/// One case of a table.
pub struct Case {
    /// Printed when the case fails.
    pub name: &'static str,
    /// Writes applied first, one per index; their errors are ignored.
    pub setup: Vec<WriteOp>,
    /// The request under test.
    pub request: Request,
    /// Its exact expected answer.
    pub want: Outcome,
    /// For writes: the whole store (all keys at the newest revision) afterwards.
    pub after: Option<RangeResponse>,
}

/// What a case asks.
pub enum Request {
    /// A read.
    Range(RangeRequest),
    /// A write, applied at the next index.
    Write(WriteOp),
}

/// What a case got or expects.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// A read's answer.
    Range(Result<RangeResponse, AtollError>),
    /// A write's answer.
    Write(Result<WriteResponse, AtollError>),
}

/// Runs every case on a fresh store and reports all mismatches at once.
pub fn must_run(cases: Vec<Case>) {
    let total = cases.len();
    let mut mismatches = Mismatches::default();
    for case in cases {
        let mut fx = Fixture::must_open();
        fx.must_apply_all(&case.setup);
        let got = match case.request {
            Request::Range(req) => Outcome::Range(fx.must_range(&req)),
            Request::Write(op) => Outcome::Write(fx.must_apply(op)),
        };
        mismatches.check(case.name, &got, &case.want);
        if let Some(after) = case.after {
            let dump = fx.must_range(&range(b"\0", b"\0"));
            mismatches.check(&format!("{} (state after)", case.name), &dump, &Ok(after));
        }
    }
    mismatches.must_be_empty(total);
}

/// A read case.
pub fn read(
    name: &'static str,
    setup: Vec<WriteOp>,
    req: RangeRequest,
    want: Result<RangeResponse, AtollError>,
) -> Case {
    Case { name, setup, request: Request::Range(req), want: Outcome::Range(want), after: None }
}

/// A write case with the whole store expected afterwards.
pub fn write(
    name: &'static str,
    setup: Vec<WriteOp>,
    op: WriteOp,
    want: Result<WriteResponse, AtollError>,
    after: RangeResponse,
) -> Case {
    Case {
        name,
        setup,
        request: Request::Write(op),
        want: Outcome::Write(want),
        after: Some(after),
    }
}

/// A range over every key.
pub fn all() -> RangeRequest {
    range(b"\0", b"\0")
}

/// Every key, sorted.
pub fn sorted(order: SortOrder, target: SortTarget) -> RangeRequest {
    RangeRequest { sort_order: order, sort_target: target, ..all() }
}

/// `base` followed by `more`.
pub fn with<T>(base: Vec<T>, more: impl IntoIterator<Item = T>) -> Vec<T> {
    base.into_iter().chain(more).collect()
}

/// `kvs` without values.
pub fn keys_only(kvs: Vec<atoll_proto::KeyValue>) -> Vec<atoll_proto::KeyValue> {
    kvs.into_iter().map(|kv| atoll_proto::KeyValue { value: Vec::new(), ..kv }).collect()
}
