//! Conversions between the native key-value messages ([`crate::kv`], named after etcd's) and
//! the etcd v3 gRPC messages ([`crate::etcd::etcdserverpb`]), in both directions: the gateway
//! turns gRPC requests into native ones and native answers into gRPC ones; gRPC clients (the
//! bench's etcd target, tests) go the other way. Pure functions.
//!
//! Where etcd's Go server reads a field leniently, the conversion does the same: a compare
//! whose `target_union` is missing or of another kind than its `target` compares against the
//! zero value of the target (etcd's `compareKV`). Enum numbers etcd does not define are
//! refused with a one-line [`AtollError::Malformed`].

use crate::error::AtollError;
use crate::etcd::etcdserverpb as pb;
use crate::etcd::mvccpb;
use crate::kv::*;
use pb::compare::{CompareResult as PbResult, CompareTarget as PbTarget, TargetUnion};
use pb::range_request::{SortOrder as PbSortOrder, SortTarget as PbSortTarget};
use pb::request_op::Request as PbRequest;
use pb::response_op::Response as PbResponse;

pub mod lease;

fn unknown(what: &str, value: i32) -> AtollError {
    AtollError::Malformed { reason: format!("unknown {what} {value}") }
}

/// Requests: native to gRPC (clients) and gRPC to native (the gateway).
pub mod request {
    use super::*;

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

    /// An etcd `RangeRequest` as the native one.
    pub fn range_from_pb(r: pb::RangeRequest) -> Result<RangeRequest, AtollError> {
        let sort_order = match PbSortOrder::try_from(r.sort_order) {
            Ok(PbSortOrder::None) => SortOrder::None,
            Ok(PbSortOrder::Ascend) => SortOrder::Ascend,
            Ok(PbSortOrder::Descend) => SortOrder::Descend,
            Err(_) => return Err(unknown("sort order", r.sort_order)),
        };
        let sort_target = match PbSortTarget::try_from(r.sort_target) {
            Ok(PbSortTarget::Key) => SortTarget::Key,
            Ok(PbSortTarget::Version) => SortTarget::Version,
            Ok(PbSortTarget::Create) => SortTarget::Create,
            Ok(PbSortTarget::Mod) => SortTarget::Mod,
            Ok(PbSortTarget::Value) => SortTarget::Value,
            Err(_) => return Err(unknown("sort target", r.sort_target)),
        };
        Ok(RangeRequest {
            key: r.key,
            range_end: r.range_end,
            limit: r.limit,
            revision: r.revision,
            sort_order,
            sort_target,
            serializable: r.serializable,
            keys_only: r.keys_only,
            count_only: r.count_only,
            min_mod_revision: r.min_mod_revision,
            max_mod_revision: r.max_mod_revision,
            min_create_revision: r.min_create_revision,
            max_create_revision: r.max_create_revision,
        })
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

    /// An etcd `PutRequest` as the native one.
    pub fn put_from_pb(p: pb::PutRequest) -> PutRequest {
        PutRequest {
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

    /// An etcd `DeleteRangeRequest` as the native one.
    pub fn delete_from_pb(d: pb::DeleteRangeRequest) -> DeleteRangeRequest {
        DeleteRangeRequest { key: d.key, range_end: d.range_end, prev_kv: d.prev_kv }
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

    /// An etcd `Compare` as the native one. The operand comes from `target_union` when it is
    /// of the target's kind and is the zero value otherwise, as etcd reads it.
    pub fn compare_from_pb(c: pb::Compare) -> Result<Compare, AtollError> {
        let result = match PbResult::try_from(c.result) {
            Ok(PbResult::Equal) => CompareResult::Equal,
            Ok(PbResult::Greater) => CompareResult::Greater,
            Ok(PbResult::Less) => CompareResult::Less,
            Ok(PbResult::NotEqual) => CompareResult::NotEqual,
            Err(_) => return Err(unknown("compare result", c.result)),
        };
        let operand = c.target_union;
        let target = match PbTarget::try_from(c.target) {
            Ok(PbTarget::Version) => CompareTarget::Version(match operand {
                Some(TargetUnion::Version(v)) => v,
                _ => 0,
            }),
            Ok(PbTarget::Create) => CompareTarget::Create(match operand {
                Some(TargetUnion::CreateRevision(v)) => v,
                _ => 0,
            }),
            Ok(PbTarget::Mod) => CompareTarget::Mod(match operand {
                Some(TargetUnion::ModRevision(v)) => v,
                _ => 0,
            }),
            Ok(PbTarget::Value) => CompareTarget::Value(match operand {
                Some(TargetUnion::Value(v)) => v,
                _ => Vec::new(),
            }),
            Ok(PbTarget::Lease) => CompareTarget::Lease(match operand {
                Some(TargetUnion::Lease(v)) => v,
                _ => 0,
            }),
            Err(_) => return Err(unknown("compare target", c.target)),
        };
        Ok(Compare { result, target, key: c.key, range_end: c.range_end })
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

    /// An etcd `TxnRequest` as the native one, nested txns included. A `RequestOp` without a
    /// request is refused (etcd's own server would fail on it).
    pub fn txn_from_pb(t: pb::TxnRequest) -> Result<TxnRequest, AtollError> {
        let ops = |ops: Vec<pb::RequestOp>| -> Result<Vec<RequestOp>, AtollError> {
            ops.into_iter().map(op_from_pb).collect()
        };
        Ok(TxnRequest {
            compare: t.compare.into_iter().map(compare_from_pb).collect::<Result<_, _>>()?,
            success: ops(t.success)?,
            failure: ops(t.failure)?,
        })
    }

    fn op_from_pb(op: pb::RequestOp) -> Result<RequestOp, AtollError> {
        Ok(match op.request {
            Some(PbRequest::RequestRange(r)) => RequestOp::Range(range_from_pb(r)?),
            Some(PbRequest::RequestPut(p)) => RequestOp::Put(put_from_pb(p)),
            Some(PbRequest::RequestDeleteRange(d)) => RequestOp::DeleteRange(delete_from_pb(d)),
            Some(PbRequest::RequestTxn(t)) => RequestOp::Txn(txn_from_pb(t)?),
            None => {
                return Err(AtollError::Malformed { reason: "txn operation is empty".into() });
            }
        })
    }

    /// A native compaction as an etcd `CompactionRequest`.
    pub fn compact_to_pb(c: CompactionRequest) -> pb::CompactionRequest {
        pb::CompactionRequest { revision: c.revision, physical: c.physical }
    }

    /// An etcd `CompactionRequest` as the native one.
    pub fn compact_from_pb(c: pb::CompactionRequest) -> CompactionRequest {
        CompactionRequest { revision: c.revision, physical: c.physical }
    }
}

/// Responses: native to gRPC (the gateway) and gRPC to native (clients).
pub mod response {
    use super::*;

    /// A native header as the etcd one (always present, as etcd sends it).
    pub fn header_to_pb(h: ResponseHeader) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        })
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

    /// A native range answer as the etcd one.
    pub fn range_to_pb(r: RangeResponse) -> pb::RangeResponse {
        pb::RangeResponse {
            header: header_to_pb(r.header),
            kvs: r.kvs.into_iter().map(kv_to_pb).collect(),
            more: r.more,
            count: r.count,
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

    /// A native put answer as the etcd one.
    pub fn put_to_pb(p: PutResponse) -> pb::PutResponse {
        pb::PutResponse { header: header_to_pb(p.header), prev_kv: p.prev_kv.map(kv_to_pb) }
    }

    /// An etcd `PutResponse` as the native one.
    pub fn put_from_pb(p: pb::PutResponse) -> PutResponse {
        PutResponse { header: header_from_pb(p.header), prev_kv: p.prev_kv.map(kv_from_pb) }
    }

    /// A native delete answer as the etcd one.
    pub fn delete_to_pb(d: DeleteRangeResponse) -> pb::DeleteRangeResponse {
        pb::DeleteRangeResponse {
            header: header_to_pb(d.header),
            deleted: d.deleted,
            prev_kvs: d.prev_kvs.into_iter().map(kv_to_pb).collect(),
        }
    }

    /// An etcd `DeleteRangeResponse` as the native one.
    pub fn delete_from_pb(d: pb::DeleteRangeResponse) -> DeleteRangeResponse {
        DeleteRangeResponse {
            header: header_from_pb(d.header),
            deleted: d.deleted,
            prev_kvs: d.prev_kvs.into_iter().map(kv_from_pb).collect(),
        }
    }

    /// A native txn answer as the etcd one, nested answers included.
    pub fn txn_to_pb(t: TxnResponse) -> pb::TxnResponse {
        let responses = t
            .responses
            .into_iter()
            .map(|op| {
                let response = match op {
                    ResponseOp::Range(r) => PbResponse::ResponseRange(range_to_pb(r)),
                    ResponseOp::Put(p) => PbResponse::ResponsePut(put_to_pb(p)),
                    ResponseOp::DeleteRange(d) => PbResponse::ResponseDeleteRange(delete_to_pb(d)),
                    ResponseOp::Txn(t) => PbResponse::ResponseTxn(txn_to_pb(t)),
                };
                pb::ResponseOp { response: Some(response) }
            })
            .collect();
        pb::TxnResponse { header: header_to_pb(t.header), succeeded: t.succeeded, responses }
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
                PbResponse::ResponseDeleteRange(d) => ResponseOp::DeleteRange(delete_from_pb(d)),
                PbResponse::ResponseTxn(t) => ResponseOp::Txn(txn_from_pb(t)),
            })
            .collect();
        TxnResponse { header: header_from_pb(t.header), succeeded: t.succeeded, responses }
    }

    /// A native compaction answer as the etcd one.
    pub fn compact_to_pb(c: CompactionResponse) -> pb::CompactionResponse {
        pb::CompactionResponse { header: header_to_pb(c.header) }
    }
}

/// Watch messages: requests from gRPC (the gateway), responses to gRPC.
pub mod watch {
    use super::*;
    use crate::watch::{
        Event, EventType, WatchCancelRequest, WatchCreateRequest, WatchFilter,
        WatchProgressRequest, WatchRequest, WatchResponse,
    };
    use pb::watch_create_request::FilterType;
    use pb::watch_request::RequestUnion;

    /// An etcd `WatchRequest` as the native one; `None` for a request with no content,
    /// which etcd's server skips without ending the stream. Filter numbers etcd does not
    /// define are ignored, as etcd ignores them.
    pub fn request_from_pb(req: pb::WatchRequest) -> Option<WatchRequest> {
        Some(match req.request_union? {
            RequestUnion::CreateRequest(c) => WatchRequest::Create(WatchCreateRequest {
                key: c.key,
                range_end: c.range_end,
                start_revision: c.start_revision,
                progress_notify: c.progress_notify,
                filters: c
                    .filters
                    .iter()
                    .filter_map(|f| match FilterType::try_from(*f) {
                        Ok(FilterType::Noput) => Some(WatchFilter::NoPut),
                        Ok(FilterType::Nodelete) => Some(WatchFilter::NoDelete),
                        Err(_) => None,
                    })
                    .collect(),
                prev_kv: c.prev_kv,
                watch_id: c.watch_id,
                fragment: c.fragment,
            }),
            RequestUnion::CancelRequest(c) => {
                WatchRequest::Cancel(WatchCancelRequest { watch_id: c.watch_id })
            }
            RequestUnion::ProgressRequest(_) => WatchRequest::Progress(WatchProgressRequest {}),
        })
    }

    /// A native watch response as etcd's.
    pub fn response_to_pb(r: WatchResponse) -> pb::WatchResponse {
        pb::WatchResponse {
            header: response::header_to_pb(r.header),
            watch_id: r.watch_id,
            created: r.created,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            cancel_reason: r.cancel_reason,
            fragment: r.fragment,
            events: r.events.into_iter().map(event_to_pb).collect(),
        }
    }

    /// A native create as etcd's request (a client's side: atoll-bench's etcd target).
    pub fn create_to_pb(c: WatchCreateRequest) -> pb::WatchRequest {
        let filters = c
            .filters
            .iter()
            .map(|f| match f {
                WatchFilter::NoPut => FilterType::Noput as i32,
                WatchFilter::NoDelete => FilterType::Nodelete as i32,
            })
            .collect();
        let create = pb::WatchCreateRequest {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            progress_notify: c.progress_notify,
            filters,
            prev_kv: c.prev_kv,
            watch_id: c.watch_id,
            fragment: c.fragment,
        };
        pb::WatchRequest { request_union: Some(RequestUnion::CreateRequest(create)) }
    }

    /// An etcd watch response as the native one (a client's side).
    pub fn response_from_pb(r: pb::WatchResponse) -> WatchResponse {
        WatchResponse {
            header: response::header_from_pb(r.header),
            watch_id: r.watch_id,
            created: r.created,
            canceled: r.canceled,
            compact_revision: r.compact_revision,
            cancel_reason: r.cancel_reason,
            fragment: r.fragment,
            events: r.events.into_iter().map(event_from_pb).collect(),
        }
    }

    fn event_from_pb(e: mvccpb::Event) -> Event {
        let kind = if e.r#type == mvccpb::event::EventType::Delete as i32 {
            EventType::Delete
        } else {
            EventType::Put
        };
        Event {
            kind,
            kv: e.kv.map(response::kv_from_pb).unwrap_or_default(),
            prev_kv: e.prev_kv.map(response::kv_from_pb),
        }
    }

    fn event_to_pb(e: Event) -> mvccpb::Event {
        let kind = match e.kind {
            EventType::Put => mvccpb::event::EventType::Put,
            EventType::Delete => mvccpb::event::EventType::Delete,
        };
        mvccpb::Event {
            r#type: kind as i32,
            kv: Some(response::kv_to_pb(e.kv)),
            prev_kv: e.prev_kv.map(response::kv_to_pb),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_responses_come_back_as_the_gateway_sent_them() {
        use crate::watch::{Event, EventType, WatchResponse};
        let at = |key: &[u8], rev| KeyValue { mod_revision: rev, ..kv(key) };
        let native = WatchResponse {
            watch_id: 7,
            events: vec![
                Event { kind: EventType::Put, kv: at(b"/a", 5), prev_kv: Some(at(b"/a", 4)) },
                Event { kind: EventType::Delete, kv: at(b"/b", 6), prev_kv: None },
            ],
            ..WatchResponse::default()
        };
        let back = watch::response_from_pb(watch::response_to_pb(native.clone()));
        assert_eq!(back, native);
    }

    #[test]
    fn watch_creates_come_back_whole_filters_included() {
        use crate::watch::{WatchCreateRequest, WatchFilter, WatchRequest};
        let create = WatchCreateRequest {
            key: b"/w/".to_vec(),
            range_end: b"/w0".to_vec(),
            start_revision: 3,
            progress_notify: true,
            filters: vec![WatchFilter::NoPut, WatchFilter::NoDelete],
            prev_kv: true,
            watch_id: 9,
            fragment: true,
        };
        let back = watch::request_from_pb(watch::create_to_pb(create.clone()));
        assert_eq!(back, Some(WatchRequest::Create(create)));
    }

    fn kv(key: &[u8]) -> KeyValue {
        KeyValue {
            key: key.to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 3,
            value: b"v".to_vec(),
            lease: 9,
        }
    }

    fn every_request_op() -> TxnRequest {
        let range = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 3,
            revision: 4,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Value,
            serializable: true,
            keys_only: true,
            count_only: false,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        let put = PutRequest {
            key: b"k".to_vec(),
            value: Vec::new(),
            lease: 0,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        let delete =
            DeleteRangeRequest { key: b"d".to_vec(), range_end: b"e".to_vec(), prev_kv: true };
        let compare = |target| Compare {
            result: CompareResult::Less,
            target,
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
        };
        TxnRequest {
            compare: vec![
                compare(CompareTarget::Version(1)),
                compare(CompareTarget::Create(2)),
                compare(CompareTarget::Mod(3)),
                compare(CompareTarget::Value(b"x".to_vec())),
                compare(CompareTarget::Lease(4)),
            ],
            success: vec![RequestOp::Range(range), RequestOp::Put(put)],
            failure: vec![
                RequestOp::DeleteRange(delete),
                RequestOp::Txn(TxnRequest { failure: vec![], ..TxnRequest::default() }),
            ],
        }
    }

    #[test]
    fn every_request_field_round_trips() {
        let txn = every_request_op();
        assert_eq!(request::txn_from_pb(request::txn_to_pb(txn.clone())), Ok(txn));
        let compact = CompactionRequest { revision: 7, physical: true };
        assert_eq!(request::compact_from_pb(request::compact_to_pb(compact.clone())), compact);
    }

    #[test]
    fn every_response_field_round_trips() {
        let header = ResponseHeader { cluster_id: 1, member_id: 2, revision: 5, raft_term: 3 };
        let range =
            RangeResponse { header: header.clone(), kvs: vec![kv(b"a")], more: true, count: 10 };
        let put = PutResponse { header: header.clone(), prev_kv: Some(kv(b"p")) };
        let delete =
            DeleteRangeResponse { header: header.clone(), deleted: 2, prev_kvs: vec![kv(b"d")] };
        let inner = TxnResponse { header: header.clone(), succeeded: true, responses: vec![] };
        let txn = TxnResponse {
            header,
            succeeded: false,
            responses: vec![
                ResponseOp::Range(range),
                ResponseOp::Put(put),
                ResponseOp::DeleteRange(delete),
                ResponseOp::Txn(inner),
            ],
        };
        assert_eq!(response::txn_from_pb(response::txn_to_pb(txn.clone())), txn);
        assert_eq!(response::header_from_pb(None), ResponseHeader::default());
    }

    #[test]
    fn etcds_enum_numbers_are_kept() {
        let pb = request::range_to_pb(RangeRequest {
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Mod,
            ..RangeRequest::default()
        });
        assert_eq!((pb.sort_order, pb.sort_target), (2, 3));
        let pb = request::compare_to_pb(Compare {
            result: CompareResult::NotEqual,
            target: CompareTarget::Lease(1),
            ..Compare::default()
        });
        assert_eq!((pb.result, pb.target), (3, 4));
    }

    #[test]
    fn a_missing_or_mismatched_operand_compares_with_zero_as_in_etcd() {
        let mut c = pb::Compare {
            target: PbTarget::Mod as i32,
            target_union: Some(TargetUnion::Version(5)),
            ..pb::Compare::default()
        };
        assert_eq!(
            request::compare_from_pb(c.clone()).map(|c| c.target),
            Ok(CompareTarget::Mod(0))
        );
        c.target = PbTarget::Value as i32;
        c.target_union = None;
        assert_eq!(
            request::compare_from_pb(c).map(|c| c.target),
            Ok(CompareTarget::Value(Vec::new()))
        );
    }

    #[test]
    fn watch_requests_and_responses_keep_etcds_meaning() {
        use crate::watch::{EventType, WatchFilter, WatchRequest};
        let create = pb::WatchCreateRequest {
            key: b"k".to_vec(),
            range_end: b"l".to_vec(),
            start_revision: 7,
            progress_notify: true,
            filters: vec![1, 0, 9],
            prev_kv: true,
            watch_id: 3,
            fragment: false,
        };
        let req = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(create)),
        };
        let Some(WatchRequest::Create(c)) = watch::request_from_pb(req) else { panic!("a create") };
        assert_eq!(c.filters, [WatchFilter::NoDelete, WatchFilter::NoPut], "9 is ignored");
        assert_eq!((c.start_revision, c.watch_id, c.prev_kv), (7, 3, true));
        assert_eq!(watch::request_from_pb(pb::WatchRequest { request_union: None }), None);
        let resp = crate::watch::WatchResponse {
            watch_id: 3,
            events: vec![crate::watch::Event {
                kind: EventType::Delete,
                kv: kv(b"k"),
                prev_kv: Some(kv(b"k")),
            }],
            ..Default::default()
        };
        let pb = watch::response_to_pb(resp);
        assert_eq!((pb.watch_id, pb.events[0].r#type), (3, 1), "DELETE is 1");
        assert!(pb.events[0].prev_kv.is_some());
    }

    #[test]
    fn unknown_enum_numbers_and_empty_ops_are_one_line_errors() {
        let range = pb::RangeRequest { sort_order: 9, ..pb::RangeRequest::default() };
        let err = request::range_from_pb(range).expect_err("refused");
        assert_eq!(err.to_string(), "atoll: malformed request: unknown sort order 9");
        let range = pb::RangeRequest { sort_target: -1, ..pb::RangeRequest::default() };
        assert!(request::range_from_pb(range).is_err());
        let compare = pb::Compare { result: 4, ..pb::Compare::default() };
        assert!(request::compare_from_pb(compare).is_err());
        let compare = pb::Compare { target: 5, ..pb::Compare::default() };
        assert!(request::compare_from_pb(compare).is_err());
        let txn =
            pb::TxnRequest { success: vec![pb::RequestOp { request: None }], ..Default::default() };
        let err = request::txn_from_pb(txn).expect_err("refused");
        assert_eq!(err.to_string(), "atoll: malformed request: txn operation is empty");
    }
}
