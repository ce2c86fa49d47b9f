//! `etcdserverpb.Cluster`: MemberList from the cluster's configured members. Membership
//! changes (add, remove, update, promote) need Raft conf changes of every shard, which Atoll
//! does not do yet; they are refused with a clear error.

use super::{Gateway, not_supported};
use atoll_proto::etcd::etcdserverpb as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Cluster service.
pub(super) struct ClusterService(pub(super) Arc<Gateway>);

impl ClusterService {
    fn members(&self) -> Vec<pb::Member> {
        self.0
            .members
            .iter()
            .map(|m| pb::Member {
                id: m.id.0,
                name: m.name.clone(),
                peer_ur_ls: m.peer_urls.clone(),
                client_ur_ls: m.client_urls.clone(),
                is_learner: m.is_learner,
            })
            .collect()
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(not_supported("MemberAdd"))
    }

    async fn member_remove(
        &self,
        _: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(not_supported("MemberRemove"))
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(not_supported("MemberUpdate"))
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let header = self.0.header();
        Ok(Response::new(pb::MemberListResponse { header, members: self.members() }))
    }

    async fn member_promote(
        &self,
        _: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(not_supported("MemberPromote"))
    }
}
