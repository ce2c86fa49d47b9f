//! Conversions between the native request and response types (`atoll_proto::kv`, named after
//! etcd's) and the etcd v3 gRPC messages (`atoll_proto::etcd::etcdserverpb`), so every
//! workload builds one request and either target can send it. Pure functions, tested by round
//! trips; the gRPC-to-native request direction and native-to-gRPC response direction serve
//! the in-process stand-in etcd of the tests.

use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd::mvccpb;
use atoll_proto::kv::*;
use pb::compare::{CompareResult as PbResult, CompareTarget as PbTarget, TargetUnion};
use pb::range_request::{SortOrder as PbSortOrder, SortTarget as PbSortTarget};
use pb::request_op::Request as PbRequest;
use pb::response_op::Response as PbResponse;

/// A native range as an etcd `RangeRequest`.
pub fn range_to_pb(r: RangeRequest) -> pb::RangeRequest {
    let sort_order = match r.sort_order {
        SortOrder::None => PbSortOrder::None,
        SortOrder::Ascend => PbSortOrder::Ascend,
        SortOrder::Descend => PbSortOrder::Descend,
    };
    let sort_target = match r.sort_target {
        SortTarget::Key => PbSortTarget::Key,
        SortTarget::Version => PbSortTarget::Version,
        SortTarget::Create => PbSortTarget::Create,
        SortTarget::Mod => PbSortTarget::Mod,
        SortTarget::Value => PbSortTarget::Value,
    };
    pb::RangeRequest {
        key: r.key,
        range_end: r.range_end,
        limit: r.limit,
        revision: r.revision,
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

/// A native put as an etcd `PutRequest`.
pub fn put_to_pb(p: PutRequest) -> pb::PutRequest {
    pb::PutRequest {
        key: p.key,
        value: p.value,
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

/// A native delete as an etcd `DeleteRangeRequest`.
pub fn delete_to_pb(d: DeleteRangeRequest) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest { key: d.key, range_end: d.range_end, prev_kv: d.prev_kv }
}

/// A native compare as an etcd `Compare`: the target and its operand travel apart.
pub fn compare_to_pb(c: Compare) -> pb::Compare {
    let result = match c.result {
        CompareResult::Equal => PbResult::Equal,
        CompareResult::Greater => PbResult::Greater,
        CompareResult::Less => PbResult::Less,
        CompareResult::NotEqual => PbResult::NotEqual,
    };
    let (target, operand) = match c.target {
        CompareTarget::Version(v) => (PbTarget::Version, TargetUnion::Version(v)),
        CompareTarget::Create(v) => (PbTarget::Create, TargetUnion::CreateRevision(v)),
        CompareTarget::Mod(v) => (PbTarget::Mod, TargetUnion::ModRevision(v)),
        CompareTarget::Value(v) => (PbTarget::Value, TargetUnion::Value(v)),
        CompareTarget::Lease(v) => (PbTarget::Lease, TargetUnion::Lease(v)),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: c.key,
        target_union: Some(operand),
        range_end: c.range_end,
    }
}

/// A native txn as an etcd `TxnRequest`, nested txns included.
pub fn txn_to_pb(t: TxnRequest) -> pb::TxnRequest {
    let ops = |ops: Vec<RequestOp>| ops.into_iter().map(op_to_pb).collect();
    pb::TxnRequest {
        compare: t.compare.into_iter().map(compare_to_pb).collect(),
        success: ops(t.success),
        failure: ops(t.failure),
    }
}

fn op_to_pb(op: RequestOp) -> pb::RequestOp {
    let request = match op {
        RequestOp::Range(r) => PbRequest::RequestRange(range_to_pb(r)),
        RequestOp::Put(p) => PbRequest::RequestPut(put_to_pb(p)),
        RequestOp::DeleteRange(d) => PbRequest::RequestDeleteRange(delete_to_pb(d)),
        RequestOp::Txn(t) => PbRequest::RequestTxn(txn_to_pb(t)),
    };
    pb::RequestOp { request: Some(request) }
}

/// An etcd header; a missing one reads as zeros, as in etcd's Go client.
pub fn header_from_pb(h: Option<pb::ResponseHeader>) -> ResponseHeader {
    let h = h.unwrap_or_default();
    ResponseHeader {
        cluster_id: h.cluster_id,
        member_id: h.member_id,
        revision: h.revision,
        raft_term: h.raft_term,
    }
}

/// An etcd `KeyValue` as the native one.
pub fn kv_from_pb(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An etcd `RangeResponse` as the native one.
pub fn range_from_pb(r: pb::RangeResponse) -> RangeResponse {
    RangeResponse {
        header: header_from_pb(r.header),
        kvs: r.kvs.into_iter().map(kv_from_pb).collect(),
        more: r.more,
        count: r.count,
    }
}

/// An etcd `PutResponse` as the native one.
pub fn put_from_pb(p: pb::PutResponse) -> PutResponse {
    PutResponse { header: header_from_pb(p.header), prev_kv: p.prev_kv.map(kv_from_pb) }
}

/// An etcd `TxnResponse` as the native one. A `ResponseOp` without a response (which etcd
/// never sends) is dropped rather than invented.
pub fn txn_from_pb(t: pb::TxnResponse) -> TxnResponse {
    let responses = t
        .responses
        .into_iter()
        .filter_map(|op| op.response)
        .map(|op| match op {
            PbResponse::ResponseRange(r) => ResponseOp::Range(range_from_pb(r)),
            PbResponse::ResponsePut(p) => ResponseOp::Put(put_from_pb(p)),
            PbResponse::ResponseDeleteRange(d) => ResponseOp::DeleteRange(DeleteRangeResponse {
                header: header_from_pb(d.header),
                deleted: d.deleted,
                prev_kvs: d.prev_kvs.into_iter().map(kv_from_pb).collect(),
            }),
            PbResponse::ResponseTxn(t) => ResponseOp::Txn(txn_from_pb(t)),
        })
        .collect();
    TxnResponse { header: header_from_pb(t.header), succeeded: t.succeeded, responses }
}

/// The other directions, for the stand-in etcd server of the tests.
#[cfg(test)]
pub mod reverse {
    use super::*;

    /// An etcd `RangeRequest` as the native one (sorting dropped: the stand-in ignores it).
    pub fn range_from_pb(r: pb::RangeRequest) -> RangeRequest {
        RangeRequest {
            key: r.key,
            range_end: r.range_end,
            limit: r.limit,
            revision: r.revision,
            serializable: r.serializable,
            keys_only: r.keys_only,
            count_only: r.count_only,
            ..RangeRequest::default()
        }
    }

    /// An etcd `PutRequest` as the native one.
    pub fn put_from_pb(p: pb::PutRequest) -> PutRequest {
        PutRequest { key: p.key, value: p.value, lease: p.lease, ..PutRequest::default() }
    }

    /// An etcd `TxnRequest` as the native one (compares on mod revision and ops of range and
    /// put, what the workloads send).
    pub fn txn_from_pb(t: pb::TxnRequest) -> TxnRequest {
        let compare = t
            .compare
            .into_iter()
            .map(|c| Compare {
                result: CompareResult::Equal,
                target: match c.target_union {
                    Some(TargetUnion::ModRevision(rev)) => CompareTarget::Mod(rev),
                    Some(TargetUnion::Version(v)) => CompareTarget::Version(v),
                    _ => CompareTarget::Version(-1),
                },
                key: c.key,
                range_end: c.range_end,
            })
            .collect();
        let ops = |ops: Vec<pb::RequestOp>| {
            ops.into_iter()
                .filter_map(|op| match op.request {
                    Some(PbRequest::RequestRange(r)) => Some(RequestOp::Range(range_from_pb(r))),
                    Some(PbRequest::RequestPut(p)) => Some(RequestOp::Put(put_from_pb(p))),
                    _ => None,
                })
                .collect()
        };
        TxnRequest { compare, success: ops(t.success), failure: ops(t.failure) }
    }

    /// A native header as the etcd one.
    pub fn header_to_pb(h: ResponseHeader) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        })
    }

    /// A native key-value as the etcd one.
    pub fn kv_to_pb(kv: KeyValue) -> mvccpb::KeyValue {
        mvccpb::KeyValue {
            key: kv.key,
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value,
            lease: kv.lease,
        }
    }

    /// A native range answer as the etcd one.
    pub fn range_to_pb(r: RangeResponse) -> pb::RangeResponse {
        pb::RangeResponse {
            header: header_to_pb(r.header),
            kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
            more: r.more,
            count: r.count,
        }
    }

    /// A native put answer as the etcd one.
    pub fn put_to_pb(p: PutResponse) -> pb::PutResponse {
        pb::PutResponse { header: header_to_pb(p.header), prev_kv: p.prev_kv.map(kv_to_pb) }
    }

    /// A native txn answer as the etcd one (range and put answers).
    pub fn txn_to_pb(t: TxnResponse) -> pb::TxnResponse {
        let responses = t
            .responses
            .into_iter()
            .filter_map(|op| match op {
                ResponseOp::Range(r) => Some(PbResponse::ResponseRange(range_to_pb(r))),
                ResponseOp::Put(p) => Some(PbResponse::ResponsePut(put_to_pb(p))),
                _ => None,
            })
            .map(|response| pb::ResponseOp { response: Some(response) })
            .collect();
        pb::TxnResponse { header: header_to_pb(t.header), succeeded: t.succeeded, responses }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{get_request, range_request, txn_update_request};

    #[test]
    fn a_get_keeps_its_key_and_consistency() {
        let pb = range_to_pb(get_request(b"/k".to_vec(), true));
        assert_eq!((pb.key.as_slice(), pb.serializable, pb.limit), (&b"/k"[..], true, 0));
        assert!(pb.range_end.is_empty());
        let pb = range_to_pb(range_request(b"/a".to_vec(), b"/b".to_vec(), 100, false));
        assert_eq!((pb.range_end.as_slice(), pb.limit, pb.serializable), (&b"/b"[..], 100, false));
        let sorted = RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            ..RangeRequest::default()
        };
        let pb = range_to_pb(sorted);
        assert_eq!((pb.sort_order, pb.sort_target), (2, 3), "etcd's enum numbers");
    }

    #[test]
    fn the_kubernetes_update_txn_compares_mod_revision_with_its_operand() {
        let pb = txn_to_pb(txn_update_request(b"k".to_vec(), b"v".to_vec(), 7));
        let compare = &pb.compare[0];
        assert_eq!(
            (compare.result, compare.target),
            (PbResult::Equal as i32, PbTarget::Mod as i32)
        );
        assert_eq!(compare.target_union, Some(TargetUnion::ModRevision(7)));
        assert!(
            matches!(&pb.success[..], [pb::RequestOp { request: Some(PbRequest::RequestPut(p)) }] if p.key == b"k" && p.value == b"v")
        );
        assert!(
            matches!(&pb.failure[..], [pb::RequestOp { request: Some(PbRequest::RequestRange(r)) }] if r.key == b"k")
        );
    }

    #[test]
    fn every_compare_target_carries_its_operand() {
        for (target, pb_target, operand) in [
            (CompareTarget::Version(1), PbTarget::Version, TargetUnion::Version(1)),
            (CompareTarget::Create(2), PbTarget::Create, TargetUnion::CreateRevision(2)),
            (CompareTarget::Mod(3), PbTarget::Mod, TargetUnion::ModRevision(3)),
            (
                CompareTarget::Value(b"x".to_vec()),
                PbTarget::Value,
                TargetUnion::Value(b"x".to_vec()),
            ),
            (CompareTarget::Lease(4), PbTarget::Lease, TargetUnion::Lease(4)),
        ] {
            let c = Compare {
                result: CompareResult::NotEqual,
                target,
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
            };
            let pb = compare_to_pb(c);
            assert_eq!((pb.result, pb.target), (PbResult::NotEqual as i32, pb_target as i32));
            assert_eq!((pb.target_union, pb.range_end), (Some(operand), b"l".to_vec()));
        }
    }

    #[test]
    fn responses_round_trip_through_the_grpc_types() {
        let kv = KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            value: b"v".to_vec(),
            lease: 9,
        };
        let header = ResponseHeader { cluster_id: 1, member_id: 2, revision: 5, raft_term: 3 };
        let range =
            RangeResponse { header: header.clone(), kvs: vec![kv.clone()], more: true, count: 10 };
        assert_eq!(range_from_pb(reverse::range_to_pb(range.clone())), range);
        let put = PutResponse { header: header.clone(), prev_kv: Some(kv) };
        assert_eq!(put_from_pb(reverse::put_to_pb(put.clone())), put);
        let txn = TxnResponse {
            header,
            succeeded: false,
            responses: vec![ResponseOp::Range(range), ResponseOp::Put(put)],
        };
        assert_eq!(txn_from_pb(reverse::txn_to_pb(txn.clone())), txn);
        assert_eq!(header_from_pb(None), ResponseHeader::default());
    }

    #[test]
    fn requests_round_trip_through_the_grpc_types() {
        let txn = txn_update_request(b"k".to_vec(), b"v".to_vec(), 7);
        assert_eq!(reverse::txn_from_pb(txn_to_pb(txn.clone())), txn);
        let get = get_request(b"k".to_vec(), true);
        assert_eq!(reverse::range_from_pb(range_to_pb(get.clone())), get);
    }
}
