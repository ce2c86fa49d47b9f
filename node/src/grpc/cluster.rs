//! `etcdserverpb.Cluster`: every RPC, served through the node's membership requests
//! (decision D18), so a change goes to the meta shard's leader from whichever node took it.

use super::Gateway;
use crate::auth::Caller;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::response::header_to_pb;
use atoll_proto::member::{
    MemberAddRequest, MemberIdRequest, MemberListRequest, MemberUpdateRequest, MembersResponse,
};
use atoll_proto::shard_map::Member;
use atoll_proto::{NativeRequest, NativeResponse, NodeId};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Cluster service.
pub(super) struct ClusterService(pub(super) Arc<Gateway>);

impl ClusterService {
    /// Serves a membership request; the answer's header and members in etcd's form.
    async fn members(
        &self,
        caller: &Caller,
        req: NativeRequest,
    ) -> Result<(Option<pb::ResponseHeader>, Option<pb::Member>, Vec<pb::Member>), Status> {
        let MembersResponse { header, member, members } = match self.0.call(caller, req).await? {
            NativeResponse::Members(r) => r,
            other => return Err(Status::internal(format!("unexpected answer {other:?}"))),
        };
        let header = header_to_pb(header);
        Ok((header, member.map(member_to_pb), members.into_iter().map(member_to_pb).collect()))
    }
}

fn member_to_pb(m: Member) -> pb::Member {
    pb::Member {
        id: m.id.0,
        name: m.name,
        peer_ur_ls: m.peer_urls,
        client_ur_ls: m.client_urls,
        is_learner: m.is_learner,
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let caller = super::caller_of(&req);
        let r = req.into_inner();
        let add = MemberAddRequest { peer_urls: r.peer_ur_ls, is_learner: r.is_learner };
        let (header, member, members) =
            self.members(&caller, NativeRequest::MemberAdd(add)).await?;
        Ok(Response::new(pb::MemberAddResponse { header, member, members }))
    }

    async fn member_remove(
        &self,
        req: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let caller = super::caller_of(&req);
        let id = MemberIdRequest { id: NodeId(req.into_inner().id) };
        let (header, _, members) = self.members(&caller, NativeRequest::MemberRemove(id)).await?;
        Ok(Response::new(pb::MemberRemoveResponse { header, members }))
    }

    async fn member_update(
        &self,
        req: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        let caller = super::caller_of(&req);
        let r = req.into_inner();
        let update = MemberUpdateRequest { id: NodeId(r.id), peer_urls: r.peer_ur_ls };
        let (header, _, members) =
            self.members(&caller, NativeRequest::MemberUpdate(update)).await?;
        Ok(Response::new(pb::MemberUpdateResponse { header, members }))
    }

    async fn member_list(
        &self,
        req: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let caller = super::caller_of(&req);
        let list = MemberListRequest { linearizable: req.into_inner().linearizable };
        let (header, _, members) = self.members(&caller, NativeRequest::MemberList(list)).await?;
        Ok(Response::new(pb::MemberListResponse { header, members }))
    }

    async fn member_promote(
        &self,
        req: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let caller = super::caller_of(&req);
        let id = MemberIdRequest { id: NodeId(req.into_inner().id) };
        let (header, _, members) = self.members(&caller, NativeRequest::MemberPromote(id)).await?;
        Ok(Response::new(pb::MemberPromoteResponse { header, members }))
    }
}
