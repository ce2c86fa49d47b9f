//! Cluster membership (decision D18): the requests of etcd's `Cluster` service in native form,
//! the changes the meta shard replicates, and the join exchange of a node started with
//! `--initial-cluster-state existing`.
//!
//! The meta shard holds one record per member. Adding, promoting and removing a member is a
//! Raft conf change of the meta shard whose context is a [`ConfChangeContext::Member`], so the
//! member record and the meta shard's voters change in the same entry; every data shard's
//! leader then follows the membership with conf changes of its own
//! ([`ConfChangeContext::Follow`]). A member's name and client URLs, and its peer URLs, are
//! ordinary writes of the meta shard ([`MemberWrite`]).

use crate::ResponseHeader;
use crate::ids::NodeId;
use crate::shard_map::{Member, ShardMap};
use serde::{Deserialize, Serialize};

/// Why a Raft conf change entry was proposed; carried in the entry's context.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfChangeContext {
    /// The first entry of every shard's log, written identically by every bootstrapping node:
    /// it makes the initial members voters, and on the meta shard it also creates their
    /// records. A node that joins later replays it like any other entry.
    Bootstrap {
        /// The initial members (names and peer URLs from `--initial-cluster`).
        members: Vec<Member>,
    },
    /// A membership change of the meta shard.
    Member(MemberChange),
    /// A data shard's leader bringing its replicas in line with the membership.
    Follow,
}

/// A change of the membership, applied by the meta shard with the conf change that makes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberChange {
    /// A new member, a voter or a learner of every shard.
    Add(Member),
    /// A learner becomes a voter.
    Promote(NodeId),
    /// A member leaves; its ID can never return.
    Remove(NodeId),
}

/// A change of a member's attributes (meta shard only); not a conf change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberWrite {
    /// A started node records its name and client URLs, as etcd's members publish theirs.
    Publish {
        /// The member.
        id: NodeId,
        /// Its `--name`.
        name: String,
        /// Its `--advertise-client-urls`.
        client_urls: Vec<String>,
    },
    /// `member update`: new peer URLs.
    UpdatePeerUrls {
        /// The member.
        id: NodeId,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
}

/// `Cluster.MemberList`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberListRequest {
    /// Read the membership through the meta shard's leader (etcd 3.5's `linearizable`);
    /// otherwise the serving node's applied membership.
    pub linearizable: bool,
}

/// `Cluster.MemberAdd`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAddRequest {
    /// The new member's peer URLs.
    pub peer_urls: Vec<String>,
    /// Add it as a learner of every shard.
    pub is_learner: bool,
}

/// `Cluster.MemberRemove` and `Cluster.MemberPromote`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberIdRequest {
    /// The member.
    pub id: NodeId,
}

/// `Cluster.MemberUpdate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdateRequest {
    /// The member.
    pub id: NodeId,
    /// Its new peer URLs.
    pub peer_urls: Vec<String>,
}

/// The answer to every membership request, shaped like etcd's responses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// The member added (MemberAdd only).
    pub member: Option<Member>,
    /// Every member after the change.
    pub members: Vec<Member>,
}

/// What a node started with `--initial-cluster-state existing` asks a member of the cluster
/// it joins, on the peer port under the join protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The joining node's peer URLs, as `member add` was given them.
    pub peer_urls: Vec<String>,
}

/// The answer to a [`JoinRequest`]: who the joining node is and what it must host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinResponse {
    /// The joining node's member ID, chosen by `member add`.
    pub member_id: NodeId,
    /// The cluster's ID.
    pub cluster_id: u64,
    /// The members as the answering node knows them (the joining node's peers).
    pub members: Vec<Member>,
    /// The data shards as the answering node routes by them. Kept in the wire format; since
    /// decision D23 the joining node takes the map from its meta shard instead.
    pub shard_map: ShardMap,
}

/// Checks the peer URLs given to `member add` and `member update`: at least one, each
/// `http(s)://host:port`.
pub fn check_peer_urls(peer_urls: &[String]) -> Result<(), crate::AtollError> {
    let valid = |u: &String| {
        let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
        rest.is_some_and(|r| !r.is_empty() && r.contains(':'))
    };
    if peer_urls.is_empty() || !peer_urls.iter().all(valid) {
        return Err(crate::AtollError::MemberBadUrls);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_need_a_scheme_a_host_and_a_port() {
        assert!(check_peer_urls(&["https://127.0.0.1:2380".into()]).is_ok());
        assert!(check_peer_urls(&[]).is_err());
        assert!(check_peer_urls(&["127.0.0.1:2380".into()]).is_err());
        assert!(check_peer_urls(&["https://".into()]).is_err());
    }
}
