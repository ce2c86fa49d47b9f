//! The node's identity: its member ID (also its Raft ID) and the cluster ID, chosen on first
//! start and kept in the data directory so restarts keep them.
//!
//! IDs are derived as etcd derives them for an initial cluster
//! (`membership.computeMemberId` and `RaftCluster.genID`), so every node given the same
//! `--initial-cluster` and `--initial-cluster-token` computes the same IDs for every member
//! without talking to the others.

use crate::config::ClusterState;
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, digest};
use serde::{Deserialize, Serialize};
use std::path::Path;

const IDENTITY_FILE: &str = "identity.toml";

/// Who this node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeIdentity {
    /// Member ID, never 0 (Raft reserves 0 for "none").
    pub member_id: u64,
    /// Cluster ID.
    pub cluster_id: u64,
}

/// Where [`NodeIdentity::load_or_init`] took the identity from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    /// The data directory had none: the one derived from the flags was written.
    Created,
    /// The data directory's identity, which matches the flags (or the flags do not derive
    /// one: `--initial-cluster-state existing`).
    Stored,
    /// The data directory's identity, which differs from what the flags derive; the stored
    /// one is kept, as etcd ignores the initial flags once a data directory exists.
    StoredDiffersFromFlags {
        /// What the flags derive.
        derived: NodeIdentity,
    },
}

/// etcd's member ID: the first 8 bytes, big-endian, of SHA-1 over the member's peer URLs
/// sorted and joined without separator, followed by the cluster token
/// (`membership.computeMemberId` without the time salt that `member add` uses).
pub fn member_id(peer_urls: &[String], cluster_token: &str) -> u64 {
    let mut urls: Vec<&str> = peer_urls.iter().map(String::as_str).collect();
    urls.sort_unstable();
    let mut bytes = urls.concat().into_bytes();
    bytes.extend_from_slice(cluster_token.as_bytes());
    id_from_sha1(&bytes)
}

/// etcd's cluster ID: the first 8 bytes, big-endian, of SHA-1 over the sorted member IDs,
/// each as 8 big-endian bytes (`RaftCluster.genID`).
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    id_from_sha1(&bytes)
}

/// SHA-1 (an ID, not a security boundary: etcd's choice, kept for equal IDs) truncated to
/// a nonzero u64.
fn id_from_sha1(bytes: &[u8]) -> u64 {
    let hash = digest(&SHA1_FOR_LEGACY_USE_ONLY, bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    nonzero_id(u64::from_be_bytes(first))
}

/// raft-rs reserves ID 0 for "no node", so a hash of 0 (odds 2^-64) becomes 1.
fn nonzero_id(id: u64) -> u64 {
    id.max(1)
}

impl NodeIdentity {
    /// Loads the identity from the data directory, or on first start stores `derived`, the
    /// identity the initial cluster flags give ([`crate::config::NodeConfig::initial_identity`]).
    /// A stored identity always wins; when it differs from `derived` under
    /// `--initial-cluster-state new` this is logged (etcd ignores the initial flags once a
    /// data directory exists). With `existing`, a node takes its member ID from the running
    /// cluster that added it: the join stores it first ([`NodeIdentity::store`]), and an empty
    /// data directory is refused.
    pub fn load_or_init(
        data_dir: &Path,
        derived: NodeIdentity,
        state: ClusterState,
    ) -> Result<(NodeIdentity, IdentitySource), String> {
        let path = data_dir.join(IDENTITY_FILE);
        let stored = match std::fs::read_to_string(&path) {
            Ok(text) => parse_identity(data_dir, &text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if state == ClusterState::Existing {
                    return Err(format!(
                        "data directory {} has no {IDENTITY_FILE}: --initial-cluster-state existing takes the member ID from the running cluster when joining it",
                        data_dir.display()
                    ));
                }
                write_atomically(&path, &derived)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                return Ok((derived, IdentitySource::Created));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        if state == ClusterState::New && stored != derived {
            tracing::warn!(
                stored_member_id = %format_args!("{:x}", stored.member_id),
                stored_cluster_id = %format_args!("{:x}", stored.cluster_id),
                flags_member_id = %format_args!("{:x}", derived.member_id),
                flags_cluster_id = %format_args!("{:x}", derived.cluster_id),
                "data directory identity differs from the initial cluster flags; keeping the stored identity"
            );
            return Ok((stored, IdentitySource::StoredDiffersFromFlags { derived }));
        }
        Ok((stored, IdentitySource::Stored))
    }
}

impl NodeIdentity {
    /// Whether the data directory holds an identity.
    pub fn is_stored(data_dir: &Path) -> bool {
        data_dir.join(IDENTITY_FILE).exists()
    }

    /// Stores the identity a joining node was given by the cluster (decision D18).
    pub fn store(&self, data_dir: &Path) -> Result<(), String> {
        let path = data_dir.join(IDENTITY_FILE);
        std::fs::create_dir_all(data_dir)
            .and_then(|()| write_atomically(&path, self))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn parse_identity(data_dir: &Path, text: &str) -> Result<NodeIdentity, String> {
    toml::from_str(text).map_err(|e| {
        format!(
            "data directory {} has a corrupt {IDENTITY_FILE} ({}); restore it from a backup or use another --data-dir",
            data_dir.display(),
            e.message()
        )
    })
}

fn write_atomically(path: &Path, identity: &NodeIdentity) -> std::io::Result<()> {
    let text = toml::to_string(identity).map_err(std::io::Error::other)?;
    crate::durable_file::write_atomically(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let derived =
            NodeIdentity { member_id: member_id(&["http://n1:2380".into()], "tok"), cluster_id: 7 };
        let (a, _) =
            NodeIdentity::load_or_init(dir.path(), derived, ClusterState::New).expect("create");
        let (b, _) =
            NodeIdentity::load_or_init(dir.path(), derived, ClusterState::New).expect("load");
        assert_eq!(a, b);
        assert_ne!(a.member_id, 0);
        std::fs::write(dir.path().join(IDENTITY_FILE), "garbage = [").expect("write");
        let e = NodeIdentity::load_or_init(dir.path(), derived, ClusterState::New)
            .expect_err("corrupt");
        assert!(e.contains("corrupt"), "{e}");
    }

    #[test]
    fn ids_match_etcds_for_its_default_member() {
        // etcd started with no flags logs member 8e9e05c52164694d in cluster
        // cdf818194e3a8c32: peer URL http://localhost:2380, token "etcd-cluster".
        let member = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(member, 0x8e9e_05c5_2164_694d);
        assert_eq!(cluster_id(&[member]), 0xcdf8_1819_4e3a_8c32);
    }

    #[test]
    fn ids_do_not_depend_on_the_order_urls_and_members_are_given_in() {
        let urls = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = member_id(&urls(&["https://b:2380", "https://a:2380"]), "tok");
        assert_eq!(a, member_id(&urls(&["https://a:2380", "https://b:2380"]), "tok"));
        assert_ne!(a, member_id(&urls(&["https://a:2380"]), "tok"));
        assert_ne!(a, member_id(&urls(&["https://a:2380", "https://b:2380"]), "tok2"));
        assert_eq!(cluster_id(&[3, 1, 2]), cluster_id(&[1, 2, 3]));
        assert_ne!(cluster_id(&[1, 2]), cluster_id(&[1, 2, 3]));
        assert_eq!(nonzero_id(0), 1, "raft-rs reserves 0");
        assert_eq!(nonzero_id(42), 42);
    }

    #[test]
    fn a_stored_identity_wins_over_the_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeIdentity { member_id: 11, cluster_id: 22 };
        let (got, source) =
            NodeIdentity::load_or_init(dir.path(), first, ClusterState::New).expect("create");
        assert_eq!((got, source), (first, IdentitySource::Created));
        let (got, source) =
            NodeIdentity::load_or_init(dir.path(), first, ClusterState::New).expect("load");
        assert_eq!((got, source), (first, IdentitySource::Stored));
        let other = NodeIdentity { member_id: 12, cluster_id: 23 };
        let (got, source) =
            NodeIdentity::load_or_init(dir.path(), other, ClusterState::New).expect("load");
        assert_eq!(got, first, "etcd ignores the initial flags once a data dir exists");
        assert_eq!(source, IdentitySource::StoredDiffersFromFlags { derived: other });
        let (got, source) =
            NodeIdentity::load_or_init(dir.path(), other, ClusterState::Existing).expect("load");
        assert_eq!((got, source), (first, IdentitySource::Stored));
        let empty = tempfile::tempdir().expect("tempdir");
        let e = NodeIdentity::load_or_init(empty.path(), other, ClusterState::Existing)
            .expect_err("existing needs an identity");
        assert!(e.contains("when joining it") && !e.contains('\n'), "{e}");
        assert!(!empty.path().join(IDENTITY_FILE).exists(), "nothing written");
    }
}
