//! `etcdserverpb.Lease`: LeaseGrant, LeaseRevoke, LeaseKeepAlive (a bidirectional stream),
//! LeaseTimeToLive and LeaseLeases, converted to the native lease requests and served by the
//! node's router on the meta shard's leader (decision D16).

use super::{Gateway, ResponseStream, status_of, stream_of, unexpected};
use atoll_proto::NativeRequest as Req;
use atoll_proto::NativeResponse as Resp;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::lease as convert;
use atoll_proto::{LeaseLeasesRequest, NativeResponse};
use futures::StreamExt as _;
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

/// Keepalive answers queued ahead of a client that does not read them; the stream reads no
/// more requests until there is room.
pub const KEEPALIVE_RESPONSES_QUEUED_MAX: usize = 16;

/// The Lease service.
pub(super) struct LeaseService(pub(super) Arc<Gateway>);

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseService {
    type LeaseKeepAliveStream = ResponseStream<pb::LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        req: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let caller = super::caller_of(&req);
        match self
            .0
            .call(&caller, Req::LeaseGrant(convert::grant_from_pb(req.into_inner())))
            .await?
        {
            Resp::LeaseGrant(r) => Ok(Response::new(convert::grant_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_revoke(
        &self,
        req: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let caller = super::caller_of(&req);
        match self
            .0
            .call(&caller, Req::LeaseRevoke(convert::revoke_from_pb(req.into_inner())))
            .await?
        {
            Resp::LeaseRevoke(r) => Ok(Response::new(convert::revoke_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = req.into_inner();
        let (responses, responses_rx) = mpsc::channel(KEEPALIVE_RESPONSES_QUEUED_MAX);
        let gateway = self.0.clone();
        // One renewal at a time, in the order asked; the task ends with the client's side,
        // with the first error (sent to the client), or when the client stops listening.
        let serving = tokio::spawn(async move {
            while let Some(Ok(msg)) = inbound.next().await {
                let native = Req::LeaseKeepAlive(convert::keep_alive_from_pb(msg));
                let answer = match gateway.service.serve(native).await {
                    NativeResponse::LeaseKeepAlive(r) => Ok(convert::keep_alive_to_pb(r)),
                    NativeResponse::Error(e) => Err(status_of(e)),
                    other => Err(unexpected(&other)),
                };
                let failed = answer.is_err();
                if responses.send(answer).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(stream_of(responses_rx, serving)))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let caller = super::caller_of(&req);
        let native = Req::LeaseTimeToLive(convert::time_to_live_from_pb(req.into_inner()));
        match self.0.call(&caller, native).await? {
            Resp::LeaseTimeToLive(r) => Ok(Response::new(convert::time_to_live_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }

    async fn lease_leases(
        &self,
        req: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let caller = super::caller_of(&req);
        match self.0.call(&caller, Req::LeaseLeases(LeaseLeasesRequest {})).await? {
            Resp::LeaseLeases(r) => Ok(Response::new(convert::leases_to_pb(r))),
            other => Err(unexpected(&other)),
        }
    }
}
