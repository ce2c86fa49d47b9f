//! `etcdserverpb.KV`: Range, Put, DeleteRange, Txn and Compact, converted to the native
//! requests and served by the node's router; RangeStream, served in chunks
//! ([`crate::service::RangeChunk`], decision D22).

use super::{Gateway, ResponseStream, status_of, stream_of, unexpected};
use crate::service::RangeChunk;
use atoll_proto::NativeRequest as Req;
use atoll_proto::NativeResponse as Resp;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::{request, response};
use atoll_proto::{RangeRequest, RangeResponse, SortOrder, SortTarget};
use prost::Message as _;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Chunks of one range stream read ahead of a slow client.
pub const RANGE_STREAM_CHUNKS_BUFFERED: usize = 2;

/// etcd's `checkRangeStreamRequest`, after the checks every Range gets: a sort other than
/// key order and the min/max revision filters need the whole result before the first key
/// goes out, which streaming is meant to avoid, so etcd refuses them (a Range serves them).
fn check_range_stream(req: &RangeRequest) -> Result<(), Status> {
    atoll_shard::mvcc::validate_range(req).map_err(status_of)?;
    let key_order = req.sort_order == SortOrder::None
        || (req.sort_order == SortOrder::Ascend && req.sort_target == SortTarget::Key);
    if !key_order {
        return Err(Status::unimplemented("RangeStream does not support custom sort orders"));
    }
    if req.has_revision_filters() {
        return Err(Status::unimplemented("RangeStream does not support revision filters"));
    }
    Ok(())
}

/// A chunk as etcd sends it: no header but on the last one.
fn chunk_to_pb(chunk: RangeChunk) -> pb::RangeStreamResponse {
    let last = chunk.header.is_some();
    let RangeChunk { header, kvs, more, count } = chunk;
    let mut r = response::range_to_pb(RangeResponse {
        header: header.unwrap_or_default(),
        kvs,
        more,
        count,
    });
    if !last {
        r.header = None;
    }
    pb::RangeStreamResponse { range_response: Some(r) }
}

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

    type RangeStreamStream = ResponseStream<pb::RangeStreamResponse>;

    async fn range_stream(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let native = request::range_from_pb(req.into_inner()).map_err(status_of)?;
        check_range_stream(&native)?;
        let service = self.0.service.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(RANGE_STREAM_CHUNKS_BUFFERED);
        let task = tokio::spawn(async move {
            let send = |chunk: RangeChunk| {
                let tx = tx.clone();
                async move {
                    let msg = chunk_to_pb(chunk);
                    let bytes = msg.encoded_len();
                    // A closed channel: the client went away.
                    tx.send(Ok(msg)).await.ok().map(|()| bytes)
                }
            };
            if let Err(e) = service.range_stream(native, send).await {
                let _ = tx.send(Err(status_of(e))).await;
            }
        });
        Ok(Response::new(stream_of(rx, task)))
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
