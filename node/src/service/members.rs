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
/// How long the meta leader must have been connected to a voter for the strict
/// reconfiguration check to count it as healthy (etcd's `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Rounds between two reminders of an unchanged membership to the data shards this node
/// leads (10 s): one actor message per led shard, so a thousand idle shards cost ~100
/// messages a second, not 2,000.
const FOLLOW_AGAIN_ROUNDS: u64 = 20;

/// The membership task's end: this member was removed from the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Removed(pub NodeId);

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // etcd's words when its removed member stops.
        write!(
            f,
            "the member has been permanently removed from the cluster (member {:x}); to serve \
             again, add it back with `member add` and start it with an empty data dir and \
             --initial-cluster-state existing",
            self.0.0
        )
    }
}

/// Where the membership task applies the peer set; `None` for a node without a peer
/// transport (a single member started without certificates).
pub trait PeerSet: Send + Sync + 'static {
    /// Adds or moves a peer.
    fn set_peer(&self, node: NodeId, peer_url: &str);
    /// Forgets a removed peer.
    fn remove_peer(&self, node: NodeId);
    /// Since when this node has been connected to `node`; `None` while it is not.
    fn connected_since(&self, node: NodeId) -> Option<std::time::Instant>;
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
        atoll_shard::member::members(storage, &storage.db.snapshot()).map_err(AtollError::from)
    }

    /// Whether this member is a learner by its member record (etcd's `IsLearner` on its
    /// membership), asked by the gateway for every gRPC request (decision D22): read again
    /// only after the meta shard applied a member change, so a promotion counts from the
    /// next request. A member whose record this node has not applied yet (joining) or that
    /// cannot be read counts as no learner, as etcd's check passes a member it does not know.
    pub fn is_learner(&self) -> bool {
        let generation = self.inner.shards.meta().store.records_generation();
        if let Ok(cached) = self.inner.learner.read()
            && let Some((read_at, learner)) = *cached
            && read_at == generation
        {
            return learner;
        }
        let storage = &self.inner.storage;
        let me = NodeId(self.inner.identity.member_id);
        match atoll_shard::member::member(storage, &storage.db.snapshot(), me) {
            Ok(record) => {
                let learner = record.is_some_and(|m| m.is_learner);
                // Read after the generation: a change since then bumped it, and the next
                // call reads again.
                if let Ok(mut cached) = self.inner.learner.write() {
                    *cached = Some((generation, learner));
                }
                learner
            }
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
        if self.strict_reconfig_check() {
            if !r.is_learner && !started_quorum(&members, Reconfig::Add) {
                return Err(AtollError::NotEnoughStartedMembers);
            }
            // etcd's `isConnectedFullySince`: every voter, learner or not being added.
            if !voter_ids(&members).all(|id| self.connected_for_health_interval(id)) {
                return Err(AtollError::Unhealthy);
            }
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
                atoll_shard::member::is_removed(storage, &snap, id).map_err(AtollError::from)?;
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
        if self.strict_reconfig_check() && !started_quorum(&self.members()?, Reconfig::Promote) {
            return Err(AtollError::NotEnoughStartedMembers);
        }
        let context = ConfChangeContext::Member(MemberChange::Promote(r.id));
        self.change_meta(vec![(r.id, ConfChangeType::AddNode)], context).await?;
        tracing::info!(member = r.id.0, "member promoted");
        Ok(())
    }

    async fn member_remove(&self, r: MemberIdRequest) -> Result<(), AtollError> {
        let members = self.members()?;
        let member = members.iter().find(|m| m.id == r.id).ok_or(AtollError::MemberNotFound)?;
        let voters_left = members.iter().filter(|m| !m.is_learner && m.id != r.id).count();
        if !member.is_learner {
            if voters_left == 0 {
                return Err(AtollError::NotEnoughStartedMembers);
            }
            if self.strict_reconfig_check() {
                self.check_voter_removal(&members, r.id)?;
            }
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
    /// name and client URLs, and the replicas of every data shard this node leads. A node
    /// started from an older data directory's `shard-map.json` (`migrate_shard_map`) also
    /// records that map in the meta shard once it leads it and the meta shard has none
    /// (decision D23). The task ends when this member finds itself removed from the cluster
    /// (the removal applied here, or found at start in a data dir of a removed member); the
    /// node then stops, as etcd's removed member does.
    pub fn start_membership_task(
        &self,
        runtime: &tokio::runtime::Runtime,
        name: String,
        client_urls: Vec<String>,
        migrate_shard_map: bool,
    ) -> tokio::task::JoinHandle<Removed> {
        let service = self.clone();
        runtime.spawn(async move {
            let mut map_recorded = !migrate_shard_map;
            let mut known: std::collections::BTreeMap<NodeId, Vec<String>> = Default::default();
            let mut followed: Option<(Vec<Member>, Vec<ShardId>)> = None;
            let mut ticker = tokio::time::interval(MEMBERSHIP_POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for round in 0u64.. {
                ticker.tick().await;
                if service.is_removed() {
                    break;
                }
                let members = match service.members() {
                    Ok(m) if !m.is_empty() => m,
                    // Not applied yet (a joining node catching up), or storage failed.
                    _ => continue,
                };
                if let Some(peers) = service.inner.peers.get() {
                    service.follow_peers(peers.as_ref(), &members, &mut known);
                }
                service.publish_self(&members, &name, &client_urls).await;
                if !map_recorded {
                    map_recorded = service.migrate_shard_map().await;
                }
                // At once when the membership or the shards this node leads changed;
                // otherwise now and then, for a learner that has caught up since or a change
                // that failed.
                let now = (members, service.led_data_shards());
                if followed.as_ref() != Some(&now) || round % FOLLOW_AGAIN_ROUNDS == 0 {
                    service.follow_in_data_shards(&now.0, &now.1);
                    followed = Some(now);
                }
            }
            Removed(NodeId(service.inner.identity.member_id))
        })
    }

    /// etcd's strict reconfiguration check on removing voter `id`: the started voters stay a
    /// quorum, and, unless it is down already, so do the voters connected for the health
    /// interval without it.
    fn check_voter_removal(&self, members: &[Member], id: NodeId) -> Result<(), AtollError> {
        if !started_quorum(members, Reconfig::Remove(id)) {
            return Err(AtollError::NotEnoughStartedMembers);
        }
        let down = id.0 != self.inner.identity.member_id && self.connected_since(id).is_none();
        let voters: Vec<NodeId> = voter_ids(members).collect();
        let active = voters.iter().filter(|v| self.connected_for_health_interval(**v)).count();
        if !down && !quorum_stays_connected(voters.len(), active) {
            return Err(AtollError::Unhealthy);
        }
        Ok(())
    }

    /// Whether membership changes go through etcd's strict reconfiguration check
    /// (`--strict-reconfig-check`, on by default as in etcd).
    fn strict_reconfig_check(&self) -> bool {
        self.inner.strict_reconfig_check.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The peer transport's view of the other members (a node that runs one): the
    /// membership task keeps it in line with the member records, and the strict
    /// reconfiguration check asks it for connection ages. Set once, before the task starts.
    pub fn set_peer_set(&self, peers: std::sync::Arc<dyn PeerSet>) {
        if self.inner.peers.set(peers).is_err() {
            tracing::warn!("peer set given twice; keeping the first");
        }
    }

    /// Turns etcd's strict reconfiguration check on or off.
    pub fn set_strict_reconfig_check(&self, strict: bool) {
        self.inner.strict_reconfig_check.store(strict, std::sync::atomic::Ordering::Relaxed);
    }

    /// Since when this node has been connected to member `id` (`None`: not connected, or no
    /// peer transport).
    fn connected_since(&self, id: NodeId) -> Option<std::time::Instant> {
        self.inner.peers.get()?.connected_since(id)
    }

    /// etcd's health test of a voter for the strict reconfiguration check: this node itself,
    /// or a peer it has been connected to for at least [`HEALTH_INTERVAL`].
    fn connected_for_health_interval(&self, id: NodeId) -> bool {
        if id.0 == self.inner.identity.member_id {
            return true;
        }
        let healthy_if_before = std::time::Instant::now().checked_sub(HEALTH_INTERVAL);
        self.connected_since(id).zip(healthy_if_before).is_some_and(|(since, by)| since <= by)
    }

    /// Whether this member was removed from the cluster: the removal applied here, or a
    /// peer that applied it refused this node for it (the member was down meanwhile).
    fn is_removed(&self) -> bool {
        self.inner.removed_by.get().is_some()
            || self.is_removed_member(NodeId(self.inner.identity.member_id))
    }

    /// Whether member `id` is among the removed ones, as applied here. A storage failure
    /// counts as not removed (asked again next time).
    pub fn is_removed_member(&self, id: NodeId) -> bool {
        let storage = &self.inner.storage;
        atoll_shard::member::is_removed(storage, &storage.db.snapshot(), id).unwrap_or(false)
    }

    /// Peer `by` refused this node as a member removed from the cluster; the membership
    /// task stops the node at its next round.
    pub fn removal_reported(&self, by: NodeId) {
        if self.inner.removed_by.set(by).is_ok() {
            tracing::warn!(peer = %by, "a peer refused this node: this member was removed from the cluster");
        }
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

/// A change of the voters, as etcd's strict reconfiguration check sees it.
#[derive(Clone, Copy, Debug)]
enum Reconfig {
    /// A new voter, not started yet.
    Add,
    /// A learner becomes a voter; it runs, so it counts as started.
    Promote,
    /// A voter leaves.
    Remove(NodeId),
}

/// The first half of etcd's strict reconfiguration check (`--strict-reconfig-check`, on by
/// default in etcd and here; `IsReadyToAddVotingMember` and its siblings): whether the voters that have
/// started (published their name, etcd's `IsStarted`) make a quorum of the voters after the
/// change. As in etcd, a second voter may join a single started one (restoring a cluster).
fn started_quorum(members: &[Member], change: Reconfig) -> bool {
    let leaving = match change {
        Reconfig::Remove(id) => Some(id),
        Reconfig::Add | Reconfig::Promote => None,
    };
    let voters = members.iter().filter(|m| !m.is_learner && Some(m.id) != leaving);
    let (mut count, mut started) =
        voters.fold((0, 0), |(n, s), m| (n + 1, s + usize::from(!m.name.is_empty())));
    match change {
        Reconfig::Add if count == 1 && started == 1 => return true,
        Reconfig::Add => count += 1,
        Reconfig::Promote => (count, started) = (count + 1, started + 1),
        Reconfig::Remove(_) => {}
    }
    started > count / 2
}

/// The voters among `members`.
fn voter_ids(members: &[Member]) -> impl Iterator<Item = NodeId> + '_ {
    members.iter().filter(|m| !m.is_learner).map(|m| m.id)
}

/// The second half of etcd's check on removing a voter that is up: of `voters` voters,
/// `active` are healthy (connected for the health interval, the leader included); without
/// the one leaving, the active ones must still make a quorum of the voters.
fn quorum_stays_connected(voters: usize, active: usize) -> bool {
    // etcd refuses when `active - 1 < 1 + (voters - 1) / 2`.
    active.saturating_sub(1) > voters.saturating_sub(1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_a_voter_that_is_up_keeps_a_connected_quorum_as_etcd_counts() {
        // Three voters all connected: one may go.
        assert!(quorum_stays_connected(3, 3));
        // Three voters, one not connected: removing another up voter would leave one.
        assert!(!quorum_stays_connected(3, 2));
        // Five voters, four connected: one may go; three connected: none may.
        assert!(quorum_stays_connected(5, 4));
        assert!(!quorum_stays_connected(5, 3));
        // Two voters, both connected: etcd's arithmetic lets one go.
        assert!(quorum_stays_connected(2, 2));
        assert!(!quorum_stays_connected(2, 1));
    }

    fn member(id: u64, started: bool, is_learner: bool) -> Member {
        let name = if started { format!("n{id}") } else { String::new() };
        Member { id: NodeId(id), name, is_learner, ..Default::default() }
    }

    #[test]
    fn the_strict_reconfig_check_counts_started_voters_as_etcd_does() {
        let three = [member(1, true, false), member(2, true, false), member(3, false, false)];
        // Four voters need three started; two of three are.
        assert!(!started_quorum(&three, Reconfig::Add));
        // A promoted learner counts as started: three of four.
        assert!(started_quorum(&three, Reconfig::Promote));
        // Without a started one, two voters need two started.
        assert!(!started_quorum(&three, Reconfig::Remove(NodeId(1))));
        assert!(started_quorum(&three, Reconfig::Remove(NodeId(3))));
        let all = [member(1, true, false), member(2, true, false), member(3, true, false)];
        assert!(started_quorum(&all, Reconfig::Add));
        // A second voter may join one started voter; not one that has not started.
        assert!(started_quorum(&[member(1, true, false)], Reconfig::Add));
        assert!(!started_quorum(&[member(1, false, false)], Reconfig::Add));
        // Learners are not voters: they neither count nor help.
        let with_learner = [member(1, true, false), member(2, true, true)];
        assert!(started_quorum(&with_learner, Reconfig::Add));
        assert!(!started_quorum(
            &[member(1, true, false), member(2, false, false)],
            Reconfig::Remove(NodeId(1))
        ));
    }
}
