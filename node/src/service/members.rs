//! Cluster membership (decision D18): etcd's `Cluster` requests, served by the meta shard's
//! leader, and the membership task every node runs to follow the membership.
//!
//! A change is one conf change of the meta shard, which changes the member records in the same
//! entry. The data shards follow on their own: every node's membership task tells each data
//! shard it leads the membership, and that leader adds, promotes and removes replicas to match
//! (`ReplicaCore::follow_members`). The same task keeps the peer transport's peer set, and this
//! node's published name and client URLs, in line with the records.

use super::{NodeService, Origin};
use crate::identity;
use atoll_proto::member::{
    ConfChangeContext, JoinRequest, JoinResponse, MemberAddRequest, MemberChange, MemberIdRequest,
    MemberUpdateRequest, MemberWrite, MembersResponse, check_peer_urls,
};
use atoll_proto::shard_map::Member;
use atoll_proto::{AtollError, NativeRequest, NativeResponse, NodeId, ShardId, WriteOp};
use atoll_shard::ConfChangeType;
use atoll_shard::actors::{FollowMembers, LearnerReady, ProposeConfChange, TransferLeader};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How often the membership task looks at the member records.
pub const MEMBERSHIP_POLL: Duration = Duration::from_millis(500);
/// Rounds between two reminders of an unchanged membership to the data shards this node
/// leads (10 s): one actor message per led shard, so a thousand idle shards cost ~100
/// messages a second, not 2,000.
const FOLLOW_AGAIN_ROUNDS: u64 = 20;

/// Where the membership task applies the peer set; `None` for a node without a peer
/// transport (a single member started without certificates).
pub trait PeerSet: Send + Sync + 'static {
    /// Adds or moves a peer.
    fn set_peer(&self, node: NodeId, peer_url: &str);
    /// Forgets a removed peer.
    fn remove_peer(&self, node: NodeId);
}

impl NodeService {
    /// Serves a membership request: a list from this node's records (or through the meta
    /// leader when linearizable), a change at the meta shard's leader.
    pub(super) async fn serve_members(
        &self,
        req: NativeRequest,
        origin: Origin,
    ) -> Result<NativeResponse, AtollError> {
        if let NativeRequest::MemberList(list) = &req
            && !list.linearizable
        {
            return Ok(NativeResponse::Members(self.members_response(None)?));
        }
        self.until_led(origin, |deadline| self.members_once(req.clone(), origin, deadline)).await
    }

    async fn members_once(
        &self,
        req: NativeRequest,
        origin: Origin,
        deadline: Instant,
    ) -> Result<NativeResponse, AtollError> {
        if let Some(answer) = self.unless_meta_leader(&req, origin, deadline).await? {
            return Ok(answer);
        }
        // Every change below is checked against what the leader has applied of its term.
        self.read_index(ShardId::META).await?;
        let added = match req {
            NativeRequest::MemberList(_) => None,
            NativeRequest::MemberAdd(r) => Some(self.member_add(r).await?),
            NativeRequest::MemberRemove(r) => {
                self.member_remove(r).await?;
                None
            }
            NativeRequest::MemberPromote(r) => {
                self.member_promote(r).await?;
                None
            }
            NativeRequest::MemberUpdate(r) => {
                self.member_update(r, origin).await?;
                None
            }
            other => {
                let reason = format!("not a membership request: {other:?}");
                return Err(AtollError::Malformed { reason });
            }
        };
        Ok(NativeResponse::Members(self.members_response(added)?))
    }

    /// The members as this node has applied them.
    pub fn members(&self) -> Result<Vec<Member>, AtollError> {
        let storage = &self.inner.storage;
        atoll_shard::member::members(storage, &storage.db.snapshot()).map_err(storage_error)
    }

    /// Whether this member is a learner by its member record (etcd's `IsLearner` on its
    /// membership): a point read, cheap enough for every gRPC request the gateway gates
    /// (decision D22). A member whose record this node has not applied yet (joining) or that
    /// cannot be read counts as no learner, as etcd's check passes a member it does not know.
    pub fn is_learner(&self) -> bool {
        let storage = &self.inner.storage;
        let me = NodeId(self.inner.identity.member_id);
        match atoll_shard::member::member(storage, &storage.db.snapshot(), me) {
            Ok(record) => record.is_some_and(|m| m.is_learner),
            Err(e) => {
                tracing::warn!(error = %e, "reading this member's record failed");
                false
            }
        }
    }

    fn members_response(&self, member: Option<Member>) -> Result<MembersResponse, AtollError> {
        Ok(MembersResponse { header: self.header(), member, members: self.members()? })
    }

    async fn member_add(&self, r: MemberAddRequest) -> Result<Member, AtollError> {
        check_peer_urls(&r.peer_urls)?;
        let members = self.members()?;
        if members.iter().any(|m| m.peer_urls.iter().any(|u| r.peer_urls.contains(u))) {
            return Err(AtollError::PeerUrlExists);
        }
        let id = self.fresh_member_id(&r.peer_urls, &members)?;
        let member = Member {
            id,
            name: String::new(),
            peer_urls: r.peer_urls,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let change =
            if r.is_learner { ConfChangeType::AddLearnerNode } else { ConfChangeType::AddNode };
        let context = ConfChangeContext::Member(MemberChange::Add(member.clone()));
        self.change_meta(vec![(id, change)], context).await?;
        tracing::info!(member = id.0, learner = member.is_learner, urls = ?member.peer_urls, "member added");
        Ok(member)
    }

    /// etcd's `member add` ID: derived from the peer URLs and the time, so a member re-added
    /// with the same URLs after a removal gets another ID (a removed ID never returns).
    fn fresh_member_id(
        &self,
        peer_urls: &[String],
        members: &[Member],
    ) -> Result<NodeId, AtollError> {
        let storage = &self.inner.storage;
        let snap = storage.db.snapshot();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for salt in 0..16u128 {
            let token = format!("{:x}-{}", self.inner.identity.cluster_id, now + salt);
            let id = NodeId(identity::member_id(peer_urls, &token));
            let removed =
                atoll_shard::member::is_removed(storage, &snap, id).map_err(storage_error)?;
            if !removed && members.iter().all(|m| m.id != id) {
                return Ok(id);
            }
        }
        Err(AtollError::MemberExists)
    }

    async fn member_promote(&self, r: MemberIdRequest) -> Result<(), AtollError> {
        let member = self.member(r.id)?;
        if !member.is_learner {
            return Err(AtollError::MemberNotLearner);
        }
        let meta = self.inner.shards.meta();
        meta.addr.send(LearnerReady(r.id)).await.map_err(|_| AtollError::Stopping)??;
        let context = ConfChangeContext::Member(MemberChange::Promote(r.id));
        self.change_meta(vec![(r.id, ConfChangeType::AddNode)], context).await?;
        tracing::info!(member = r.id.0, "member promoted");
        Ok(())
    }

    async fn member_remove(&self, r: MemberIdRequest) -> Result<(), AtollError> {
        let members = self.members()?;
        let member = members.iter().find(|m| m.id == r.id).ok_or(AtollError::MemberNotFound)?;
        let voters_left = members.iter().filter(|m| !m.is_learner && m.id != r.id).count();
        if !member.is_learner && voters_left == 0 {
            return Err(AtollError::NotEnoughStartedMembers);
        }
        if r.id.0 == self.inner.identity.member_id {
            // The leader does not remove itself: it hands the meta shard to a voter that
            // stays, and the request retries there.
            let to = members
                .iter()
                .find(|m| !m.is_learner && m.id != r.id)
                .map(|m| m.id)
                .ok_or(AtollError::NotEnoughStartedMembers)?;
            let meta = self.inner.shards.meta();
            meta.addr.send(TransferLeader(to)).await.map_err(|_| AtollError::Stopping)??;
            return Err(AtollError::NotLeader { shard: ShardId::META, leader_hint: Some(to) });
        }
        let context = ConfChangeContext::Member(MemberChange::Remove(r.id));
        self.change_meta(vec![(r.id, ConfChangeType::RemoveNode)], context).await?;
        tracing::info!(member = r.id.0, "member removed");
        Ok(())
    }

    async fn member_update(
        &self,
        r: MemberUpdateRequest,
        origin: Origin,
    ) -> Result<(), AtollError> {
        check_peer_urls(&r.peer_urls)?;
        let members = self.members()?;
        if !members.iter().any(|m| m.id == r.id) {
            return Err(AtollError::MemberNotFound);
        }
        let taken =
            |m: &Member| m.id != r.id && m.peer_urls.iter().any(|u| r.peer_urls.contains(u));
        if members.iter().any(taken) {
            return Err(AtollError::PeerUrlExists);
        }
        let op = WriteOp::Member(MemberWrite::UpdatePeerUrls { id: r.id, peer_urls: r.peer_urls });
        self.write_on(ShardId::META, op, origin).await?;
        Ok(())
    }

    fn member(&self, id: NodeId) -> Result<Member, AtollError> {
        self.members()?.into_iter().find(|m| m.id == id).ok_or(AtollError::MemberNotFound)
    }

    /// Proposes a conf change of the meta shard on this node's replica (its leader) and
    /// waits until it is applied.
    async fn change_meta(
        &self,
        changes: Vec<(NodeId, ConfChangeType)>,
        context: ConfChangeContext,
    ) -> Result<(), AtollError> {
        let (reply, rx) = oneshot::channel();
        let msg = ProposeConfChange { changes, context, reply };
        self.inner.shards.meta().addr.send(msg).await.map_err(|_| AtollError::Stopping)?;
        self.wait(rx).await.map(|_| ())
    }

    /// The answer to a node joining with `--initial-cluster-state existing`: the member
    /// `member add` created for its peer URLs.
    pub fn join_answer(&self, req: &JoinRequest) -> Result<JoinResponse, String> {
        let members = self.members().map_err(|e| e.to_string())?;
        let mut wanted = req.peer_urls.clone();
        wanted.sort();
        let me = members.iter().find(|m| {
            let mut urls = m.peer_urls.clone();
            urls.sort();
            urls == wanted
        });
        let Some(me) = me else {
            return Err(format!(
                "no member has the peer URLs {}; add it first with `atollctl member add` (or \
                 etcdctl member add) on a member of the cluster",
                req.peer_urls.join(",")
            ));
        };
        Ok(JoinResponse {
            member_id: me.id,
            cluster_id: self.inner.identity.cluster_id,
            members,
            shard_map: self.inner.shards.map().clone(),
        })
    }

    /// Follows the member records until the node stops: the peer set, this node's published
    /// name and client URLs, and the replicas of every data shard this node leads.
    pub fn start_membership_task(
        &self,
        runtime: &tokio::runtime::Runtime,
        peers: Option<std::sync::Arc<dyn PeerSet>>,
        name: String,
        client_urls: Vec<String>,
    ) {
        let service = self.clone();
        runtime.spawn(async move {
            let mut known: std::collections::BTreeMap<NodeId, Vec<String>> = Default::default();
            let mut followed: Option<(Vec<Member>, Vec<ShardId>)> = None;
            let mut ticker = tokio::time::interval(MEMBERSHIP_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for round in 0u64.. {
                ticker.tick().await;
                let members = match service.members() {
                    Ok(m) if !m.is_empty() => m,
                    // Not applied yet (a joining node catching up), or storage failed.
                    _ => continue,
                };
                if let Some(peers) = &peers {
                    service.follow_peers(peers.as_ref(), &members, &mut known);
                }
                service.publish_self(&members, &name, &client_urls).await;
                // At once when the membership or the shards this node leads changed;
                // otherwise now and then, for a learner that has caught up since or a change
                // that failed.
                let now = (members, service.led_data_shards());
                if followed.as_ref() != Some(&now) || round % FOLLOW_AGAIN_ROUNDS == 0 {
                    service.follow_in_data_shards(&now.0, &now.1);
                    followed = Some(now);
                }
            }
        });
    }

    fn follow_peers(
        &self,
        peers: &dyn PeerSet,
        members: &[Member],
        known: &mut std::collections::BTreeMap<NodeId, Vec<String>>,
    ) {
        let me = NodeId(self.inner.identity.member_id);
        for m in members.iter().filter(|m| m.id != me) {
            if known.get(&m.id) != Some(&m.peer_urls)
                && let Some(url) = m.peer_urls.first()
            {
                peers.set_peer(m.id, url);
                known.insert(m.id, m.peer_urls.clone());
            }
        }
        let gone: Vec<NodeId> =
            known.keys().filter(|id| members.iter().all(|m| m.id != **id)).copied().collect();
        for id in gone {
            peers.remove_peer(id);
            known.remove(&id);
        }
    }

    async fn publish_self(&self, members: &[Member], name: &str, client_urls: &[String]) {
        let me = NodeId(self.inner.identity.member_id);
        let Some(record) = members.iter().find(|m| m.id == me) else { return };
        if record.name == name && record.client_urls == client_urls {
            return;
        }
        let op = WriteOp::Member(MemberWrite::Publish {
            id: me,
            name: name.to_string(),
            client_urls: client_urls.to_vec(),
        });
        // Retried on the next round until it is applied.
        if let Err(e) = self.write_on(ShardId::META, op, Origin::Client).await {
            tracing::debug!(error = %e, "publishing this member's name and client URLs failed");
        }
    }

    fn led_data_shards(&self) -> Vec<ShardId> {
        let me = self.inner.identity.member_id;
        let handles = self.inner.shards.handles();
        handles.filter(|(_, h)| h.published.leader() == me).map(|(id, _)| id).collect()
    }

    fn follow_in_data_shards(&self, members: &[Member], led: &[ShardId]) {
        let desired: Vec<(NodeId, bool)> = members.iter().map(|m| (m.id, m.is_learner)).collect();
        for id in led {
            // A full mailbox skips this round; a later one asks again.
            if let Ok(handle) = self.inner.shards.handle(*id) {
                let _ = handle.addr.try_send(FollowMembers(desired.clone()));
            }
        }
    }
}

fn storage_error(e: atoll_shard::StorageError) -> AtollError {
    AtollError::StorageFailed { reason: e.to_string() }
}
