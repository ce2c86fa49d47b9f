//! Table-driven etcd v3 semantics of Txn (etcd v3.5 `applierV3backend.Txn`, `applyCompare`
//! and `checkRequests` in `server/etcdserver/apply.go`; `storeTxnWrite` in
//! `server/mvcc/kvstore_txn.go`): compares, branches, reads of the Txn's own writes, one
//! revision per Txn, and failing as a whole. Nested Txns are in `mvcc_txn_nested.rs`.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, CompareResult, CompareTarget, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest, WriteOp,
};
use mvcc_common::table::*;
use mvcc_common::txn::*;
use mvcc_common::*;

#[test]
fn txn_compares_one_key_like_etcd() {
    use CompareResult::*;
    use CompareTarget::*;
    let h = history;
    let leased =
        with(h(), [leased(WriteOp::Put(PutRequest { lease: 5, ..put_req(b"c", b"3") }), &[5])]);
    let leased_after =
        range_resp(700, vec![a600(), kvl(b"c", b"3", 300, 700, 2, 5), d600()], false, 3);
    must_run(vec![
        c("version equal", h(), vec![cmp(b"a", Equal, Version(2))], true, unchanged()),
        c("version equal fails", h(), vec![cmp(b"a", Equal, Version(3))], false, unchanged()),
        c(
            "missing key is all zero",
            h(),
            vec![
                cmp(b"zz", Equal, Version(0)),
                cmp(b"zz", Equal, Create(0)),
                cmp(b"zz", Equal, Mod(0)),
                cmp(b"zz", Equal, Lease(0)),
            ],
            true,
            unchanged(),
        ),
        c(
            "deleted key is all zero",
            h(),
            vec![cmp(b"b", Equal, Create(0)), cmp(b"b", Less, Mod(1))],
            true,
            unchanged(),
        ),
        c(
            "value of a missing key is never equal",
            h(),
            vec![cmp(b"zz", Equal, Value(vec![]))],
            false,
            unchanged(),
        ),
        c(
            "value of a missing key is never not-equal",
            h(),
            vec![cmp(b"zz", NotEqual, Value(b"x".to_vec()))],
            false,
            unchanged(),
        ),
        c("value equal", h(), vec![cmp(b"a", Equal, Value(b"11".to_vec()))], true, unchanged()),
        c(
            "value greater is bytewise",
            h(),
            vec![cmp(b"a", Greater, Value(b"1".to_vec())), cmp(b"a", Less, Value(b"2".to_vec()))],
            true,
            unchanged(),
        ),
        c("mod less", h(), vec![cmp(b"a", Less, Mod(500))], true, unchanged()),
        c("mod greater fails", h(), vec![cmp(b"a", Greater, Mod(400))], false, unchanged()),
        c(
            "create not equal fails",
            h(),
            vec![cmp(b"a", NotEqual, Create(100))],
            false,
            unchanged(),
        ),
        c(
            "all compares must hold",
            h(),
            vec![cmp(b"a", Equal, Version(2)), cmp(b"c", Equal, Version(2))],
            false,
            unchanged(),
        ),
        c(
            "lease equal",
            leased.clone(),
            vec![cmp(b"c", Equal, Lease(5))],
            true,
            leased_after.clone(),
        ),
        c("lease not equal", leased, vec![cmp(b"a", NotEqual, Lease(5))], true, leased_after),
    ]);
}

#[test]
fn txn_compares_a_range_like_etcd() {
    use CompareResult::*;
    use CompareTarget::*;
    let h = history;
    must_run(vec![
        c(
            "range: every key holds",
            h(),
            vec![cmp_range(b"a", b"\0", Greater, Version(0))],
            true,
            unchanged(),
        ),
        c(
            "range: one key fails",
            h(),
            vec![cmp_range(b"a", b"\0", Less, Mod(500))],
            false,
            unchanged(),
        ),
        c("range: prefix", h(), vec![cmp_range(b"c", b"d", Equal, Create(300))], true, unchanged()),
        c(
            "empty range compares a zero pair",
            h(),
            vec![cmp_range(b"x", b"z", Equal, Version(0))],
            true,
            unchanged(),
        ),
        c(
            "empty range value is false",
            h(),
            vec![cmp_range(b"x", b"z", Equal, Value(vec![]))],
            false,
            unchanged(),
        ),
        c(
            "range over a deleted key is empty",
            h(),
            vec![cmp_range(b"b", b"c", Equal, Create(0))],
            true,
            unchanged(),
        ),
    ]);
}

#[test]
fn txn_takes_one_branch_like_etcd() {
    use CompareResult::*;
    use CompareTarget::*;
    let h = history;
    let a = a600();
    let with_e =
        range_resp(700, vec![a.clone(), c600(), d600(), kv(b"e", b"5", 700, 700, 1)], false, 4);
    must_run(vec![
        t(
            "success branch",
            h(),
            txn(
                vec![cmp(b"a", Equal, Version(2))],
                vec![op_put(b"e", b"5")],
                vec![op_range(b"a", b"")],
            ),
            Ok(txn_ok(700, true, vec![r_put(700, None)])),
            with_e.clone(),
        ),
        t(
            "failure branch, read-only",
            h(),
            txn(
                vec![cmp(b"a", Equal, Version(3))],
                vec![op_put(b"e", b"5")],
                vec![op_range(b"a", b"")],
            ),
            Ok(txn_ok(600, false, vec![r_range(600, vec![a.clone()], 1)])),
            unchanged(),
        ),
        t("empty txn", h(), TxnRequest::default(), Ok(txn_ok(600, true, vec![])), unchanged()),
    ]);
}

#[test]
fn txn_reads_see_earlier_writes_like_etcd() {
    let h = history;
    let (a, cc, d) = (a600(), c600(), d600());
    let e700 = kv(b"e", b"5", 700, 700, 1);
    let with_e = range_resp(700, vec![a.clone(), cc.clone(), d.clone(), e700.clone()], false, 4);
    let a12 = kv(b"a", b"12", 100, 700, 3);
    must_run(vec![
        t(
            "reads see earlier writes",
            h(),
            txn(vec![], vec![op_put(b"e", b"5"), op_range(b"e", b"")], vec![]),
            Ok(txn_ok(700, true, vec![r_put(700, None), r_range(700, vec![e700.clone()], 1)])),
            with_e.clone(),
        ),
        t(
            "headers before and after the first write",
            h(),
            txn(
                vec![],
                vec![
                    op_range(b"a", b""),
                    RequestOp::Put(PutRequest { prev_kv: true, ..put_req(b"a", b"12") }),
                    op_range(b"a", b""),
                ],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![
                    r_range(600, vec![a.clone()], 1),
                    r_put(700, Some(a.clone())),
                    r_range(700, vec![a12.clone()], 1),
                ],
            )),
            range_resp(700, vec![a12.clone(), cc.clone(), d.clone()], false, 3),
        ),
        t(
            "count sees own writes",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    RequestOp::Range(RangeRequest { count_only: true, ..range(b"\0", b"\0") }),
                ],
                vec![],
            ),
            Ok(txn_ok(700, true, vec![r_put(700, None), r_range(700, vec![], 4)])),
            with_e.clone(),
        ),
        t(
            "history read ignores own writes",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"a", b"12"),
                    RequestOp::Range(RangeRequest { revision: 400, ..range(b"a", b"") }),
                ],
                vec![],
            ),
            Ok(txn_ok(700, true, vec![r_put(700, None), r_range(700, vec![a.clone()], 1)])),
            range_resp(700, vec![a12.clone(), cc.clone(), d.clone()], false, 3),
        ),
    ]);
}

#[test]
fn txn_writes_share_one_revision_like_etcd() {
    let h = history;
    let (a, cc, d) = (a600(), c600(), d600());
    let e700 = kv(b"e", b"5", 700, 700, 1);
    let with_e = range_resp(700, vec![a.clone(), cc.clone(), d.clone(), e700.clone()], false, 4);
    must_run(vec![
        t(
            "writes share one revision",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    op_put(b"f", b"6"),
                    RequestOp::DeleteRange(DeleteRangeRequest {
                        prev_kv: true,
                        ..del_req(b"c", b"")
                    }),
                ],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![
                    r_put(700, None),
                    r_put(700, None),
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        header: hdr(700),
                        deleted: 1,
                        prev_kvs: vec![cc.clone()],
                    }),
                ],
            )),
            range_resp(
                700,
                vec![a.clone(), d.clone(), e700.clone(), kv(b"f", b"6", 700, 700, 1)],
                false,
                4,
            ),
        ),
        t(
            "delete of nothing before any write",
            h(),
            txn(
                vec![],
                vec![RequestOp::DeleteRange(del_req(b"zz", b"")), op_put(b"e", b"5")],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        header: hdr(600),
                        deleted: 0,
                        prev_kvs: vec![],
                    }),
                    r_put(700, None),
                ],
            )),
            with_e.clone(),
        ),
        t(
            "delete then range",
            h(),
            txn(
                vec![],
                vec![RequestOp::DeleteRange(del_req(b"a", b"")), op_range(b"\0", b"\0")],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        header: hdr(700),
                        deleted: 1,
                        prev_kvs: vec![],
                    }),
                    r_range(700, vec![cc.clone(), d.clone()], 2),
                ],
            )),
            range_resp(700, vec![cc.clone(), d.clone()], false, 2),
        ),
        write(
            "ignore_value inside a txn",
            h(),
            leased(
                WriteOp::Txn(txn(
                    vec![],
                    vec![RequestOp::Put(PutRequest {
                        ignore_value: true,
                        lease: 3,
                        ..put_req(b"a", b"")
                    })],
                    vec![],
                )),
                &[3],
            ),
            Ok(atoll_shard::mvcc::WriteResponse::Txn(txn_ok(700, true, vec![r_put(700, None)]))),
            range_resp(
                700,
                vec![kvl(b"a", b"11", 100, 700, 3, 3), cc.clone(), d.clone()],
                false,
                3,
            ),
        ),
    ]);
}

#[test]
fn txn_fails_as_a_whole_before_writing() {
    let h = history;
    must_run(vec![
        t(
            "ignore_value on a missing key fails the whole txn",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    RequestOp::Put(PutRequest { ignore_value: true, ..put_req(b"zz", b"") }),
                ],
                vec![],
            ),
            Err(AtollError::KeyNotFound),
            unchanged(),
        ),
        t(
            "future range fails the whole txn",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    RequestOp::Range(RangeRequest { revision: 700, ..range(b"a", b"") }),
                ],
                vec![],
            ),
            Err(AtollError::FutureRevision { current_revision: 600 }),
            unchanged(),
        ),
        t(
            "compacted range fails the whole txn",
            with(h(), [WriteOp::Compact(CompactionRequest { revision: 300, physical: false })]),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    RequestOp::Range(RangeRequest { revision: 200, ..range(b"a", b"") }),
                ],
                vec![],
            ),
            Err(AtollError::Compacted { compact_revision: 300 }),
            unchanged(),
        ),
    ]);
}
