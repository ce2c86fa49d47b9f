//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn and Compact, converted to the native
//! requests and served by the node's router.

use super::{Gateway, status_of, unexpected};
use atoll_proto::NativeRequest as Req;
use atoll_proto::NativeResponse as Resp;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::{request, response};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The KV service.
pub(super) struct KvService(pub(super) Arc<Gateway>);

#[tonic::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = request::range_from_pb(req.into_inner()).map_err(status_of)?;
        match self.0.call(&caller, Req::Range(native)).await? {
            Resp::Range(r) => Ok(Response::new(response::range_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = request::put_from_pb(req.into_inner());
        match self.0.call(&caller, Req::Put(native)).await? {
            Resp::Put(r) => Ok(Response::new(response::put_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn delete_range(
        &self,
        req: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = request::delete_from_pb(req.into_inner());
        match self.0.call(&caller, Req::DeleteRange(native)).await? {
            Resp::DeleteRange(r) => Ok(Response::new(response::delete_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn txn(&self, req: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = request::txn_from_pb(req.into_inner()).map_err(status_of)?;
        match self.0.call(&caller, Req::Txn(native)).await? {
            Resp::Txn(r) => Ok(Response::new(response::txn_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn compact(
        &self,
        req: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = request::compact_from_pb(req.into_inner());
        match self.0.call(&caller, Req::Compact(native)).await? {
            Resp::Compact(r) => Ok(Response::new(response::compact_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }
}
