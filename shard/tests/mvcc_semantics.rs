//! Table-driven etcd v3 semantics of Range (etcd v3.5 `applierV3backend.Range` in
//! `server/etcdserver/apply.go` and `rangeKeys` in `server/mvcc/kvstore_txn.go`): selection,
//! limit, count, projection, history, sort and filters. Each case runs on a fresh store: a
//! setup history, one request, the exact expected response. Put and DeleteRange are in
//! `mvcc_write_semantics.rs`, Txn, Compact and validation in `mvcc_txn_semantics.rs`.

#[allow(dead_code)]
mod mvcc_common;

use atoll_proto::{
    AtollError, CompactionRequest, RangeRequest, SortOrder, SortTarget, WriteOp, prefix_range_end,
};
use mvcc_common::table::*;
use mvcc_common::*;

#[test]
fn range_selects_keys_like_etcd() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    must_run(vec![
        read("single key", h(), range(b"a", b""), Ok(range_resp(600, vec![a.clone()], false, 1))),
        read("deleted key", h(), range(b"b", b""), Ok(range_resp(600, vec![], false, 0))),
        read("never written key", h(), range(b"zz", b""), Ok(range_resp(600, vec![], false, 0))),
        read(
            "prefix",
            h(),
            range(b"a", &prefix_range_end(b"a")),
            Ok(range_resp(600, vec![a.clone()], false, 1)),
        ),
        read(
            "half-open range",
            h(),
            range(b"a", b"d"),
            Ok(range_resp(600, vec![a.clone(), c.clone()], false, 2)),
        ),
        read(
            "from key",
            h(),
            range(b"b", b"\0"),
            Ok(range_resp(600, vec![c.clone(), d.clone()], false, 2)),
        ),
        read(
            "all keys",
            h(),
            all(),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read("end below key", h(), range(b"c", b"a"), Ok(range_resp(600, vec![], false, 0))),
        read("end equals key", h(), range(b"c", b"c"), Ok(range_resp(600, vec![], false, 0))),
        read("empty key", h(), range(b"", b""), Err(AtollError::EmptyKey)),
        read("empty store", vec![], all(), Ok(range_resp(0, vec![], false, 0))),
    ]);
}

#[test]
fn range_limit_count_and_projection_like_etcd() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    let lim = |limit| RangeRequest { limit, ..all() };
    must_run(vec![
        read(
            "limit below count",
            h(),
            lim(2),
            Ok(range_resp(600, vec![a.clone(), c.clone()], true, 3)),
        ),
        read(
            "limit equals count",
            h(),
            lim(3),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "limit above count",
            h(),
            lim(10),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "negative limit is none",
            h(),
            lim(-1),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "count_only",
            h(),
            RangeRequest { count_only: true, ..all() },
            Ok(range_resp(600, vec![], false, 3)),
        ),
        read(
            "count_only ignores limit for more",
            h(),
            RangeRequest { count_only: true, limit: 1, ..all() },
            Ok(range_resp(600, vec![], false, 3)),
        ),
        read(
            "keys_only",
            h(),
            RangeRequest { keys_only: true, ..all() },
            Ok(range_resp(600, keys_only(vec![a.clone(), c.clone(), d.clone()]), false, 3)),
        ),
        read(
            "keys_only with limit",
            h(),
            RangeRequest { keys_only: true, limit: 1, ..all() },
            Ok(range_resp(600, keys_only(vec![a.clone()]), true, 3)),
        ),
    ]);
}

#[test]
fn range_reads_history_at_a_revision() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    let at = |revision| RangeRequest { revision, ..all() };
    let (a1, b2, c3) = (kv(b"a", b"1", 100, 100, 1), kv(b"b", b"2", 200, 200, 1), c.clone());
    let compacted =
        with(h(), [WriteOp::Compact(CompactionRequest { revision: 300, physical: false })]);
    let deleted_a = with(h(), [del(b"a", b"")]);
    let reput_a = with(h(), [del(b"a", b""), put(b"a", b"n")]);
    must_run(vec![
        read(
            "at 300",
            h(),
            at(300),
            Ok(range_resp(600, vec![a1.clone(), b2.clone(), c3.clone()], false, 3)),
        ),
        read(
            "between revisions",
            h(),
            at(450),
            Ok(range_resp(600, vec![a.clone(), b2.clone(), c3.clone()], false, 3)),
        ),
        read(
            "at the delete",
            h(),
            at(500),
            Ok(range_resp(600, vec![a.clone(), c3.clone()], false, 2)),
        ),
        read(
            "at the current revision",
            h(),
            at(600),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read("before the first write", h(), at(50), Ok(range_resp(600, vec![], false, 0))),
        read(
            "negative is newest",
            h(),
            at(-5),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "future revision",
            h(),
            at(601),
            Err(AtollError::FutureRevision { current_revision: 600 }),
        ),
        read(
            "count_only at 300",
            h(),
            RangeRequest { count_only: true, ..at(300) },
            Ok(range_resp(600, vec![], false, 3)),
        ),
        read(
            "limit at 300",
            h(),
            RangeRequest { limit: 1, ..at(300) },
            Ok(range_resp(600, vec![a1.clone()], true, 3)),
        ),
        read(
            "single key at 300",
            h(),
            RangeRequest { revision: 300, ..range(b"a", b"") },
            Ok(range_resp(600, vec![a1.clone()], false, 1)),
        ),
        read(
            "below compaction",
            compacted.clone(),
            at(299),
            Err(AtollError::Compacted { compact_revision: 300 }),
        ),
        read(
            "at compaction",
            compacted.clone(),
            at(300),
            Ok(range_resp(600, vec![a1.clone(), b2.clone(), c3.clone()], false, 3)),
        ),
        read(
            "current after compaction",
            compacted,
            all(),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "deleted key keeps its history",
            deleted_a.clone(),
            RangeRequest { revision: 600, ..range(b"a", b"") },
            Ok(range_resp(700, vec![a.clone()], false, 1)),
        ),
        read(
            "deleted key is gone now",
            deleted_a,
            range(b"a", b""),
            Ok(range_resp(700, vec![], false, 0)),
        ),
        read(
            "put after delete is a create",
            reput_a,
            range(b"a", b""),
            Ok(range_resp(800, vec![kv(b"a", b"n", 800, 800, 1)], false, 1)),
        ),
    ]);
}

#[test]
fn range_sorts_and_filters_like_etcd() {
    let h = history;
    let (a, c, d) = (a600(), c600(), d600());
    let values = || vec![put(b"a", b"z"), put(b"b", b"y"), put(b"c", b"x")];
    let (az, by, cx) =
        (kv(b"a", b"z", 100, 100, 1), kv(b"b", b"y", 200, 200, 1), kv(b"c", b"x", 300, 300, 1));
    let filter = |f: fn(&mut RangeRequest)| {
        let mut req = all();
        f(&mut req);
        req
    };
    must_run(vec![
        read(
            "key descend",
            h(),
            sorted(SortOrder::Descend, SortTarget::Key),
            Ok(range_resp(600, vec![d.clone(), c.clone(), a.clone()], false, 3)),
        ),
        read(
            "key ascend limit",
            h(),
            RangeRequest { limit: 2, ..sorted(SortOrder::Ascend, SortTarget::Key) },
            Ok(range_resp(600, vec![a.clone(), c.clone()], true, 3)),
        ),
        read(
            "mod ascend",
            h(),
            sorted(SortOrder::Ascend, SortTarget::Mod),
            Ok(range_resp(600, vec![c.clone(), a.clone(), d.clone()], false, 3)),
        ),
        read(
            "mod descend limit",
            h(),
            RangeRequest { limit: 1, ..sorted(SortOrder::Descend, SortTarget::Mod) },
            Ok(range_resp(600, vec![d.clone()], true, 3)),
        ),
        read(
            "create descend",
            h(),
            sorted(SortOrder::Descend, SortTarget::Create),
            Ok(range_resp(600, vec![d.clone(), c.clone(), a.clone()], false, 3)),
        ),
        read(
            "version descend keeps ties in key order",
            h(),
            sorted(SortOrder::Descend, SortTarget::Version),
            Ok(range_resp(600, vec![a.clone(), c.clone(), d.clone()], false, 3)),
        ),
        read(
            "order none with a non-key target ascends",
            h(),
            sorted(SortOrder::None, SortTarget::Version),
            Ok(range_resp(600, vec![c.clone(), d.clone(), a.clone()], false, 3)),
        ),
        read(
            "order none sorts only the limit+1 prefetch",
            values(),
            RangeRequest { limit: 1, ..sorted(SortOrder::None, SortTarget::Value) },
            Ok(range_resp(300, vec![by.clone()], true, 3)),
        ),
        read(
            "explicit ascend sorts everything",
            values(),
            RangeRequest { limit: 1, ..sorted(SortOrder::Ascend, SortTarget::Value) },
            Ok(range_resp(300, vec![cx.clone()], true, 3)),
        ),
        read(
            "value sort with keys_only",
            values(),
            RangeRequest { keys_only: true, ..sorted(SortOrder::Ascend, SortTarget::Value) },
            Ok(range_resp(300, keys_only(vec![cx.clone(), by.clone(), az.clone()]), false, 3)),
        ),
        read(
            "min mod",
            h(),
            filter(|r| r.min_mod_revision = 400),
            Ok(range_resp(600, vec![a.clone(), d.clone()], false, 3)),
        ),
        read(
            "max mod",
            h(),
            filter(|r| r.max_mod_revision = 400),
            Ok(range_resp(600, vec![a.clone(), c.clone()], false, 3)),
        ),
        read(
            "min create",
            h(),
            filter(|r| r.min_create_revision = 300),
            Ok(range_resp(600, vec![c.clone(), d.clone()], false, 3)),
        ),
        read(
            "max create with limit",
            h(),
            filter(|r| {
                r.max_create_revision = 300;
                r.limit = 1
            }),
            Ok(range_resp(600, vec![a.clone()], true, 3)),
        ),
        read(
            "filter leaves fewer than limit",
            h(),
            filter(|r| {
                r.max_create_revision = 100;
                r.limit = 1
            }),
            Ok(range_resp(600, vec![a.clone()], false, 3)),
        ),
        read(
            "filter and sort",
            h(),
            filter(|r| {
                r.min_mod_revision = 400;
                r.sort_order = SortOrder::Descend;
                r.sort_target = SortTarget::Create;
                r.limit = 1
            }),
            Ok(range_resp(600, vec![d.clone()], true, 3)),
        ),
        read(
            "filter at a revision",
            h(),
            filter(|r| {
                r.min_mod_revision = 500;
                r.revision = 300
            }),
            Ok(range_resp(600, vec![], false, 3)),
        ),
    ]);
}
