//! The checks made before a write is proposed, as etcd makes them at its API layer
//! (`checkPutRequest`, `checkDeleteRequest`, `checkTxnRequest`, `checkIntervals` in
//! `server/etcdserver/api/v3rpc/key.go`, v3.5), plus the request size limit, and apply's
//! re-check of the configuration-independent part.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::limits::TXN_NESTING_DEPTH_MAX;
use atoll_proto::{
    AtollError, CompactionRequest, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
    WriteOp,
};
use atoll_shard::mvcc::{MvccLimits, validate_range, validate_write};
use mvcc_common::*;

fn put_op(key: &[u8]) -> RequestOp {
    RequestOp::Put(put_req(key, b"v"))
}

fn del_op(key: &[u8], end: &[u8]) -> RequestOp {
    RequestOp::DeleteRange(del_req(key, end))
}

fn read_op() -> RequestOp {
    RequestOp::Range(range(b"r", b""))
}

fn then(ops: Vec<RequestOp>) -> WriteOp {
    WriteOp::Txn(TxnRequest { success: ops, ..Default::default() })
}

fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
    RequestOp::Txn(TxnRequest { compare: vec![], success, failure })
}

fn cmps(n: usize) -> Vec<Compare> {
    (0..n).map(|_| Compare { key: b"k".to_vec(), ..Default::default() }).collect()
}

/// A Txn with `depth` Txns nested one in the other (the top level is depth 0).
fn nested_depth(depth: usize) -> WriteOp {
    let mut txn = TxnRequest { success: vec![put_op(b"k")], ..Default::default() };
    for _ in 0..depth {
        txn = TxnRequest { success: vec![RequestOp::Txn(txn)], ..Default::default() };
    }
    WriteOp::Txn(txn)
}

#[test]
fn validate_write_matches_etcd_api_checks() {
    let too_many = Err(AtollError::TooManyTxnOps { limit: 128 });
    let dup = Err(AtollError::DuplicateKey);
    let cases: Vec<(&str, WriteOp, Result<(), AtollError>)> = vec![
        ("put", put(b"k", b"v"), Ok(())),
        ("put empty key", put(b"", b"v"), Err(AtollError::EmptyKey)),
        (
            "ignore_value with a value",
            WriteOp::Put(PutRequest { ignore_value: true, ..put_req(b"k", b"v") }),
            Err(AtollError::ValueProvided),
        ),
        (
            "ignore_value without a value",
            WriteOp::Put(PutRequest { ignore_value: true, ..put_req(b"k", b"") }),
            Ok(()),
        ),
        (
            "ignore_lease with a lease",
            WriteOp::Put(PutRequest { ignore_lease: true, lease: 1, ..put_req(b"k", b"") }),
            Err(AtollError::LeaseProvided),
        ),
        ("delete empty key", del(b"", b"z"), Err(AtollError::EmptyKey)),
        ("compact", WriteOp::Compact(CompactionRequest { revision: 5, physical: true }), Ok(())),
        (
            "txn compare empty key",
            WriteOp::Txn(TxnRequest { compare: vec![Compare::default()], ..Default::default() }),
            Err(AtollError::EmptyKey),
        ),
        (
            "txn range empty key",
            then(vec![RequestOp::Range(RangeRequest::default())]),
            Err(AtollError::EmptyKey),
        ),
        (
            "txn nested put check",
            then(vec![nested(
                vec![RequestOp::Put(PutRequest { ignore_value: true, ..put_req(b"k", b"v") })],
                vec![],
            )]),
            Err(AtollError::ValueProvided),
        ),
        (
            "128 compares",
            WriteOp::Txn(TxnRequest { compare: cmps(128), ..Default::default() }),
            Ok(()),
        ),
        (
            "129 compares",
            WriteOp::Txn(TxnRequest { compare: cmps(129), ..Default::default() }),
            too_many.clone(),
        ),
        ("129 success ops", then((0..129).map(|_| read_op()).collect()), too_many.clone()),
        (
            "129 failure ops",
            WriteOp::Txn(TxnRequest {
                failure: (0..129).map(|_| read_op()).collect(),
                ..Default::default()
            }),
            too_many.clone(),
        ),
        (
            "128 per branch is fine",
            WriteOp::Txn(TxnRequest {
                compare: cmps(128),
                success: (0..128).map(|_| read_op()).collect(),
                failure: (0..128).map(|_| read_op()).collect(),
            }),
            Ok(()),
        ),
        (
            "nested txn gets what its parent leaves",
            then(
                (0..99)
                    .map(|_| read_op())
                    .chain([nested((0..29).map(|_| read_op()).collect(), vec![])])
                    .collect(),
            ),
            too_many.clone(),
        ),
        (
            "nested txn within what its parent leaves",
            then(
                (0..99)
                    .map(|_| read_op())
                    .chain([nested((0..28).map(|_| read_op()).collect(), vec![])])
                    .collect(),
            ),
            Ok(()),
        ),
        ("same key put twice", then(vec![put_op(b"k"), put_op(b"k")]), dup.clone()),
        ("put then delete", then(vec![put_op(b"k"), del_op(b"k", b"")]), dup.clone()),
        ("delete then put", then(vec![del_op(b"k", b""), put_op(b"k")]), dup.clone()),
        ("put inside a deleted range", then(vec![del_op(b"a", b"m"), put_op(b"k")]), dup.clone()),
        ("put at a deleted range's end", then(vec![del_op(b"a", b"k"), put_op(b"k")]), Ok(())),
        ("put under a from-key delete", then(vec![del_op(b"a", b"\0"), put_op(b"k")]), dup.clone()),
        ("put below a from-key delete", then(vec![del_op(b"m", b"\0"), put_op(b"k")]), Ok(())),
        ("two deletes of one key", then(vec![del_op(b"k", b""), del_op(b"k", b"")]), Ok(())),
        (
            "same put in both branches of a nested txn",
            then(vec![nested(vec![put_op(b"k")], vec![put_op(b"k")])]),
            Ok(()),
        ),
        (
            "put and delete in exclusive branches",
            then(vec![nested(vec![put_op(b"k")], vec![del_op(b"k", b"")])]),
            Ok(()),
        ),
        (
            "nested put and outer put",
            then(vec![nested(vec![put_op(b"k")], vec![]), put_op(b"k")]),
            dup.clone(),
        ),
        (
            "nested put and outer delete",
            then(vec![del_op(b"k", b""), nested(vec![put_op(b"k")], vec![])]),
            dup.clone(),
        ),
        (
            "nested delete and outer put",
            then(vec![nested(vec![], vec![del_op(b"a", b"z")]), put_op(b"k")]),
            dup.clone(),
        ),
        (
            "sibling put then sibling delete",
            then(vec![nested(vec![put_op(b"k")], vec![]), nested(vec![del_op(b"k", b"")], vec![])]),
            dup.clone(),
        ),
        (
            "sibling delete then sibling put",
            then(vec![nested(vec![del_op(b"k", b"")], vec![]), nested(vec![put_op(b"k")], vec![])]),
            dup.clone(),
        ),
        (
            "same key in success and failure",
            WriteOp::Txn(TxnRequest {
                compare: vec![],
                success: vec![put_op(b"k")],
                failure: vec![put_op(b"k")],
            }),
            Ok(()),
        ),
        ("deepest nesting accepted", nested_depth(TXN_NESTING_DEPTH_MAX), Ok(())),
    ];
    let total = cases.len();
    let mut mismatches = Mismatches::default();
    for (name, op, want) in cases {
        mismatches.check(name, &validate_write(&op, &MvccLimits::default()), &want);
    }
    mismatches.must_be_empty(total);
}

#[test]
fn validate_write_refuses_deep_nesting_and_large_requests() {
    let deep = validate_write(&nested_depth(TXN_NESTING_DEPTH_MAX + 1), &MvccLimits::default());
    assert!(matches!(deep, Err(AtollError::Malformed { .. })), "{deep:?}");

    let limits = MvccLimits::default();
    let big = put(b"k", &vec![7; limits.max_request_bytes]);
    match validate_write(&big, &limits) {
        Err(AtollError::RequestTooLarge { request_bytes, limit_bytes }) => {
            assert!(request_bytes > limit_bytes && limit_bytes == limits.max_request_bytes as u64);
        }
        other => panic!("a value of max-request-bytes must be refused, got {other:?}"),
    }
    let small = put(b"k", &vec![7; limits.max_request_bytes - 64]);
    assert_eq!(validate_write(&small, &limits), Ok(()));
    let tight = MvccLimits { max_txn_ops: 2, ..MvccLimits::default() };
    let three = then(vec![read_op(), read_op(), read_op()]);
    assert_eq!(validate_write(&three, &tight), Err(AtollError::TooManyTxnOps { limit: 2 }));
}

#[test]
fn validate_range_refuses_an_empty_key() {
    assert_eq!(validate_range(&range(b"", b"z")), Err(AtollError::EmptyKey));
    assert_eq!(validate_range(&range(b"\0", b"\0")), Ok(()));
}

#[test]
fn apply_rechecks_shape_but_not_configured_limits() {
    eprintln!("a committed write that skipped validation must not corrupt the change log");
    let mut fx = Fixture::must_open();
    assert_eq!(
        fx.must_apply(then(vec![put_op(b"k"), put_op(b"k")])),
        Err(AtollError::DuplicateKey)
    );
    assert_eq!(fx.must_apply(put(b"", b"v")), Err(AtollError::EmptyKey));
    assert!(matches!(
        fx.must_apply(nested_depth(TXN_NESTING_DEPTH_MAX + 1)),
        Err(AtollError::Malformed { .. })
    ));
    assert_eq!((fx.state.applied_index, fx.state.revision), (3, 0));
    assert!(fx.must_dump().is_empty());

    eprintln!("op counts are configuration: every replica must apply the same entry alike");
    let many = then((0..200).map(|i: u32| put_op(&i.to_be_bytes())).collect());
    assert!(fx.must_apply(many).is_ok());
    assert_eq!(fx.must_dump().len(), 200);
    assert_eq!(fx.state.revision, 400);
}
