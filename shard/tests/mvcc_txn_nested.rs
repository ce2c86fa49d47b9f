//! Table-driven etcd v3 semantics of nested Txns (etcd 3.3+, `compareToPath`, `applyTxn` and
//! `newTxnResp` in `server/etcdserver/apply.go`, v3.5).

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{AtollError, CompareResult, CompareTarget, PutRequest, RequestOp, ResponseOp};
use mvcc_common::table::*;
use mvcc_common::txn::*;
use mvcc_common::*;

#[test]
fn nested_txns_like_etcd() {
    use CompareResult::*;
    use CompareTarget::*;
    let h = history;
    let (cc, d) = (c600(), d600());
    let a12 = kv(b"a", b"12", 100, 700, 3);
    let inner = |compare, success, failure| RequestOp::Txn(txn(compare, success, failure));
    must_run(vec![
        // etcd evaluates every compare of the Txn tree before writing (compareToPath): the
        // nested compare sees version 2 although the outer put already made it 3.
        t(
            "nested compares see the state before the txn",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"a", b"12"),
                    inner(vec![cmp(b"a", Equal, Version(2))], vec![op_range(b"a", b"")], vec![]),
                ],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![
                    r_put(700, None),
                    ResponseOp::Txn(txn_ok(700, true, vec![r_range(700, vec![a12.clone()], 1)])),
                ],
            )),
            range_resp(700, vec![a12.clone(), cc.clone(), d.clone()], false, 3),
        ),
        t(
            "nested failure branch",
            h(),
            txn(
                vec![],
                vec![inner(
                    vec![cmp(b"a", Equal, Version(9))],
                    vec![op_put(b"x", b"1")],
                    vec![op_put(b"y", b"2")],
                )],
                vec![],
            ),
            Ok(txn_ok(
                700,
                true,
                vec![ResponseOp::Txn(txn_ok(700, false, vec![r_put(700, None)]))],
            )),
            range_resp(
                700,
                vec![a600(), cc.clone(), d.clone(), kv(b"y", b"2", 700, 700, 1)],
                false,
                4,
            ),
        ),
        t(
            "nested read-only txn",
            h(),
            txn(vec![], vec![inner(vec![], vec![op_range(b"d", b"")], vec![])], vec![]),
            Ok(txn_ok(
                600,
                true,
                vec![ResponseOp::Txn(txn_ok(600, true, vec![r_range(600, vec![d.clone()], 1)]))],
            )),
            unchanged(),
        ),
        t(
            "nested txn in the failure branch",
            h(),
            txn(
                vec![cmp(b"a", Equal, Version(0))],
                vec![],
                vec![inner(vec![], vec![op_put(b"e", b"5")], vec![])],
            ),
            Ok(txn_ok(
                700,
                false,
                vec![ResponseOp::Txn(txn_ok(700, true, vec![r_put(700, None)]))],
            )),
            range_resp(
                700,
                vec![a600(), cc.clone(), d.clone(), kv(b"e", b"5", 700, 700, 1)],
                false,
                4,
            ),
        ),
        t(
            "nested ignore_value on a missing key fails everything",
            h(),
            txn(
                vec![],
                vec![
                    op_put(b"e", b"5"),
                    inner(
                        vec![],
                        vec![RequestOp::Put(PutRequest {
                            ignore_lease: true,
                            ..put_req(b"zz", b"v")
                        })],
                        vec![],
                    ),
                ],
                vec![],
            ),
            Err(AtollError::KeyNotFound),
            unchanged(),
        ),
    ]);
}
