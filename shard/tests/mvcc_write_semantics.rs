//! Table-driven etcd v3 semantics of Put and DeleteRange (etcd v3.5 `applierV3backend.Put`
//! and `.DeleteRange` in `server/etcdserver/apply.go`, `storeTxnWrite.put` and
//! `.deleteRange` in `server/mvcc/kvstore_txn.go`): versions, create and mod revisions,
//! prev_kv, ignore_value/ignore_lease, leases, tombstones, and when the revision moves; and of
//! Compact (`applierV3backend.Compaction`, `store.updateCompactRev`).

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, WriteOp, prefix_range_end,
};
use atoll_shard::mvcc::WriteResponse;
use mvcc_common::table::*;
use mvcc_common::txn::unchanged;
use mvcc_common::*;

#[test]
fn put_follows_etcd() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    let put_with = |f: fn(&mut PutRequest)| {
        let mut req = put_req(b"a", b"");
        f(&mut req);
        WriteOp::Put(req)
    };
    let ok = |rev, prev| Ok(WriteResponse::Put(PutResponse { header: hdr(rev), prev_kv: prev }));
    let leased_c =
        with(h(), [leased(WriteOp::Put(PutRequest { lease: 5, ..put_req(b"c", b"3") }), &[5])]);
    must_run(vec![
        write(
            "create",
            h(),
            put(b"e", b"5"),
            ok(700, None),
            range_resp(
                700,
                vec![a.clone(), c.clone(), d.clone(), kv(b"e", b"5", 700, 700, 1)],
                false,
                4,
            ),
        ),
        write(
            "update with prev_kv",
            h(),
            WriteOp::Put(PutRequest { prev_kv: true, ..put_req(b"a", b"12") }),
            ok(700, Some(a.clone())),
            range_resp(700, vec![kv(b"a", b"12", 100, 700, 3), c.clone(), d.clone()], false, 3),
        ),
        write(
            "update without prev_kv",
            h(),
            put(b"a", b"12"),
            ok(700, None),
            range_resp(700, vec![kv(b"a", b"12", 100, 700, 3), c.clone(), d.clone()], false, 3),
        ),
        write(
            "prev_kv of a new key",
            h(),
            WriteOp::Put(PutRequest { prev_kv: true, ..put_req(b"e", b"5") }),
            ok(700, None),
            range_resp(
                700,
                vec![a.clone(), c.clone(), d.clone(), kv(b"e", b"5", 700, 700, 1)],
                false,
                4,
            ),
        ),
        write(
            "put after delete is a create",
            h(),
            WriteOp::Put(PutRequest { prev_kv: true, ..put_req(b"b", b"22") }),
            ok(700, None),
            range_resp(
                700,
                vec![a.clone(), kv(b"b", b"22", 700, 700, 1), c.clone(), d.clone()],
                false,
                4,
            ),
        ),
        write(
            "ignore_value keeps the value",
            h(),
            leased(
                put_with(|r| {
                    r.ignore_value = true;
                    r.lease = 9
                }),
                &[9],
            ),
            ok(700, None),
            range_resp(700, vec![kvl(b"a", b"11", 100, 700, 3, 9), c.clone(), d.clone()], false, 3),
        ),
        write(
            "ignore_lease keeps the lease",
            leased_c.clone(),
            WriteOp::Put(PutRequest { ignore_lease: true, ..put_req(b"c", b"33") }),
            ok(800, None),
            range_resp(800, vec![a.clone(), kvl(b"c", b"33", 300, 800, 3, 5), d.clone()], false, 3),
        ),
        write(
            "a put without ignore_lease drops the lease",
            leased_c,
            put(b"c", b"33"),
            ok(800, None),
            range_resp(800, vec![a.clone(), kv(b"c", b"33", 300, 800, 3), d.clone()], false, 3),
        ),
        write(
            "a vouched-for lease is stored",
            h(),
            leased(WriteOp::Put(PutRequest { lease: 42, ..put_req(b"e", b"5") }), &[42]),
            ok(700, None),
            range_resp(
                700,
                vec![a.clone(), c.clone(), d.clone(), kvl(b"e", b"5", 700, 700, 1, 42)],
                false,
                4,
            ),
        ),
        write(
            "ignore_value on a missing key",
            h(),
            WriteOp::Put(PutRequest { ignore_value: true, ..put_req(b"zz", b"") }),
            Err(AtollError::KeyNotFound),
            range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3),
        ),
        write(
            "ignore_lease on a deleted key",
            h(),
            WriteOp::Put(PutRequest { ignore_lease: true, ..put_req(b"b", b"x") }),
            Err(AtollError::KeyNotFound),
            range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3),
        ),
        write(
            "a failed put leaves the revision",
            with(h(), [WriteOp::Put(PutRequest { ignore_value: true, ..put_req(b"zz", b"") })]),
            put(b"e", b"5"),
            ok(800, None),
            range_resp(
                800,
                vec![a.clone(), c.clone(), d.clone(), kv(b"e", b"5", 800, 800, 1)],
                false,
                4,
            ),
        ),
        write(
            "empty value",
            h(),
            put(b"e", b""),
            ok(700, None),
            range_resp(
                700,
                vec![a.clone(), c.clone(), d.clone(), kv(b"e", b"", 700, 700, 1)],
                false,
                4,
            ),
        ),
    ]);
}

#[test]
fn delete_range_follows_etcd() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    let del_prev = |key: &[u8], end: &[u8]| {
        WriteOp::DeleteRange(DeleteRangeRequest { prev_kv: true, ..del_req(key, end) })
    };
    let ok = |rev, deleted, prev_kvs| {
        Ok(WriteResponse::DeleteRange(DeleteRangeResponse { header: hdr(rev), deleted, prev_kvs }))
    };
    must_run(vec![
        write(
            "single key with prev_kv",
            h(),
            del_prev(b"a", b""),
            ok(700, 1, vec![a.clone()]),
            range_resp(700, vec![c.clone(), d.clone()], false, 2),
        ),
        write(
            "single key without prev_kv",
            h(),
            del(b"a", b""),
            ok(700, 1, vec![]),
            range_resp(700, vec![c.clone(), d.clone()], false, 2),
        ),
        write(
            "deleted key: nothing, revision unchanged",
            h(),
            del_prev(b"b", b""),
            ok(600, 0, vec![]),
            range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3),
        ),
        write(
            "empty range: nothing",
            h(),
            del(b"e", b"z"),
            ok(600, 0, vec![]),
            range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3),
        ),
        write(
            "half-open range",
            h(),
            del_prev(b"a", b"d"),
            ok(700, 2, vec![a.clone(), c.clone()]),
            range_resp(700, vec![d.clone()], false, 1),
        ),
        write(
            "from key",
            h(),
            del_prev(b"b", b"\0"),
            ok(700, 2, vec![c.clone(), d.clone()]),
            range_resp(700, vec![a.clone()], false, 1),
        ),
        write(
            "all keys",
            h(),
            del(b"\0", b"\0"),
            ok(700, 3, vec![]),
            range_resp(700, vec![], false, 0),
        ),
        write(
            "prefix",
            h(),
            del(b"a", &prefix_range_end(b"a")),
            ok(700, 1, vec![]),
            range_resp(700, vec![c.clone(), d.clone()], false, 2),
        ),
        write(
            "a delete of nothing leaves the next revision",
            with(h(), [del(b"zz", b"")]),
            put(b"e", b"5"),
            Ok(WriteResponse::Put(PutResponse { header: hdr(800), prev_kv: None })),
            range_resp(
                800,
                vec![a.clone(), c.clone(), d.clone(), kv(b"e", b"5", 800, 800, 1)],
                false,
                4,
            ),
        ),
    ]);
}

#[test]
fn compact_follows_etcd() {
    let h = history;
    let compact = |revision| WriteOp::Compact(CompactionRequest { revision, physical: false });
    let ok = |rev| Ok(WriteResponse::Compact(CompactionResponse { header: hdr(rev) }));
    must_run(vec![
        write("compact", h(), compact(300), ok(600), unchanged()),
        write("compact at the current revision", h(), compact(600), ok(600), unchanged()),
        write(
            "compact again at the same revision",
            with(h(), [compact(300)]),
            compact(300),
            Err(AtollError::Compacted { compact_revision: 300 }),
            unchanged(),
        ),
        write(
            "compact below the compacted revision",
            with(h(), [compact(300)]),
            compact(200),
            Err(AtollError::Compacted { compact_revision: 300 }),
            unchanged(),
        ),
        write(
            "compact in the future",
            h(),
            compact(601),
            Err(AtollError::FutureRevision { current_revision: 600 }),
            unchanged(),
        ),
        write(
            "compact at zero",
            h(),
            compact(0),
            Err(AtollError::Compacted { compact_revision: 0 }),
            unchanged(),
        ),
        write(
            "compaction leaves the revision",
            with(h(), [compact(300)]),
            put(b"e", b"5"),
            Ok(WriteResponse::Put(PutResponse { header: hdr(800), prev_kv: None })),
            range_resp(800, vec![a600(), c600(), d600(), kv(b"e", b"5", 800, 800, 1)], false, 4),
        ),
    ]);
}
