//! The node's identity: its member ID (also its Raft ID) and the cluster ID, chosen on first
//! start and kept in the data directory so restarts keep them.

use serde::{Deserialize, Serialize};
use std::io::Write;
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

impl NodeIdentity {
    /// Loads the identity from the data directory, or creates it on first start.
    pub fn load_or_create(
        data_dir: &Path,
        cluster_token: &str,
        name: &str,
    ) -> Result<NodeIdentity, String> {
        let path = data_dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                format!(
                    "data directory {} has a corrupt {IDENTITY_FILE} ({}); restore it from a backup or use another --data-dir",
                    data_dir.display(),
                    e.message()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = NodeIdentity::derive(cluster_token, name);
                write_atomically(&path, &identity).map_err(|e| {
                    format!("cannot write {}: {e}", path.display())
                })?;
                Ok(identity)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Derives IDs as etcd does in spirit: the cluster ID from the token, the member ID from
    /// the token, the name and the time of creation (so a re-created node gets a new ID).
    fn derive(cluster_token: &str, name: &str) -> NodeIdentity {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let cluster_id = fnv1a(cluster_token.as_bytes()).max(1);
        let member_id = fnv1a(format!("{cluster_token}/{name}/{nanos}").as_bytes()).max(1);
        NodeIdentity { member_id, cluster_id }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

fn write_atomically(path: &Path, identity: &NodeIdentity) -> std::io::Result<()> {
    let text = toml::to_string(identity).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    // Durable before the rename publishes it: a crash must not leave an empty identity.
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_is_created_once_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = NodeIdentity::load_or_create(dir.path(), "tok", "n1").expect("create");
        let b = NodeIdentity::load_or_create(dir.path(), "tok", "n1").expect("load");
        assert_eq!(a, b);
        assert_ne!(a.member_id, 0);
        std::fs::write(dir.path().join(IDENTITY_FILE), "garbage = [").expect("write");
        let e = NodeIdentity::load_or_create(dir.path(), "tok", "n1").expect_err("corrupt");
        assert!(e.contains("corrupt"), "{e}");
    }
}
