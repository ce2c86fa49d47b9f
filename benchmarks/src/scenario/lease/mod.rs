//! The lease scenarios (issues 4 and 6), each on a 3-member Atoll cluster pre-split so that
//! leases' keys live in two data shards (five data shards in all, plus the meta shard that
//! holds the leases, decision D16), and on a 3-member etcd 3.4 with its default durability:
//! - `lease-throughput`: grant, keepalive and revoke ops/s and latency;
//! - `lease-storm`: 100,000 leases with keys expiring together: time to drain, and the p99
//!   of ordinary writes meanwhile;
//! - `lease-churn`: grant, attach, revoke and expire for a while; the followers' RSS at the
//!   start and the end (followers must hold no expiry heap).

pub mod churn;
pub mod storm;
pub mod throughput;

use super::cluster::AtollCluster;
use super::context::ScenarioContext;
use super::etcd_node::{EtcdNode, etcd_version};
use crate::backend::Backend;
use crate::connect::ClientPool;
use crate::keys::KeySpace;
use anyhow::{anyhow, bail};
use atoll_proto::kv::{PutRequest, RequestOp, TxnRequest};
use serde_json::{Value, json};

/// Members of each cluster.
pub const MEMBERS: usize = 3;
/// Prefixes of the initial split: the keys under each are a data shard of their own, so the
/// leases' keys span two shards and the split makes five data shards in all.
pub const LEASE_PREFIXES: [&str; 2] = ["/lease/a/", "/lease/b/"];
/// Prefix of the ordinary writes measured beside lease work: in a shard of its own too.
pub const WRITE_PREFIX: &str = "/w/";
/// Client connections of each pool: one per member, as `compare --nodes 3` spreads them.
pub const CONNECTIONS: usize = 3;
/// Puts per attach txn: etcd's default `--max-txn-ops`.
pub const ATTACH_BATCH: usize = atoll_proto::limits::MAX_TXN_OPS_DEFAULT;

/// Which system a round measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum System {
    /// Atoll, 3 members, pre-split.
    Atoll,
    /// etcd, 3 members.
    Etcd,
}

impl System {
    /// The name in lines and tables.
    pub fn name(self) -> &'static str {
        match self {
            System::Atoll => "atoll",
            System::Etcd => "etcd",
        }
    }
}

/// The systems a lease scenario measures: Atoll, and etcd when installed (a full run
/// without etcd fails and says how to install it; `--smoke` goes on with Atoll alone).
pub fn systems(ctx: &ScenarioContext, scenario: &str) -> anyhow::Result<Vec<System>> {
    let mut systems = vec![System::Atoll];
    if ctx.etcd_wanted(scenario, "measured Atoll only")? {
        systems.push(System::Etcd);
    }
    Ok(systems)
}

/// A running 3-member cluster of either system; dropping it kills every member and removes
/// its directories.
pub enum Cluster {
    /// Atoll, and how many data shards it has.
    Atoll(AtollCluster, usize),
    /// etcd, and its version.
    Etcd(EtcdNode, String),
}

impl Cluster {
    /// Starts a fresh cluster of `system` for `tag` and waits until it serves.
    pub async fn start(
        ctx: &ScenarioContext,
        system: System,
        tag: &str,
    ) -> anyhow::Result<Cluster> {
        match system {
            System::Atoll => {
                let split = vec!["--initial-split".to_string(), LEASE_PREFIXES.join(",")];
                let cluster =
                    AtollCluster::start_with(&ctx.atoll_bin, tag, MEMBERS, &split).await?;
                let shards = cluster.shard_count().await?;
                Ok(Cluster::Atoll(cluster, shards))
            }
            System::Etcd => {
                let node = EtcdNode::start_members(&ctx.etcd_bin, tag, MEMBERS).await?;
                let version = etcd_version(&ctx.etcd_bin).unwrap_or_else(|| "unknown".into());
                Ok(Cluster::Etcd(node, version))
            }
        }
    }

    /// `connections` clients, through Atoll's native protocol or etcd's gRPC API.
    pub async fn pool(&self, connections: usize) -> anyhow::Result<ClientPool> {
        match self {
            Cluster::Atoll(c, _) => ClientPool::connect(&c.client_config()?, connections).await,
            Cluster::Etcd(e, _) => ClientPool::connect_etcd(&e.config(), connections).await,
        }
    }

    /// What the lines of this system carry: the target, the members, and Atoll's data
    /// shards or etcd's version.
    pub fn params(&self) -> Value {
        match self {
            Cluster::Atoll(_, shards) => {
                json!({ "target": "atoll", "members": MEMBERS, "shards_in_map": shards })
            }
            Cluster::Etcd(_, version) => {
                json!({ "target": "etcd", "members": MEMBERS, "etcd_version": version })
            }
        }
    }

    /// Every member's name and process ID.
    pub fn pids(&self) -> Vec<(String, u32)> {
        match self {
            Cluster::Atoll(c, _) => c.pids(),
            Cluster::Etcd(e, _) => e.pids(),
        }
    }
}

/// The keys of `leases` leases, `leases` under each of [`LEASE_PREFIXES`]: lease `i`'s keys
/// are key `i` of each space.
pub fn lease_key_spaces(leases: u64) -> anyhow::Result<Vec<KeySpace>> {
    LEASE_PREFIXES.iter().map(|prefix| KeySpace::new(prefix, leases, None)).collect()
}

/// Attaches one key in each of `spaces` to each lease of `ids` (`ids[i]` gets key `first + i`
/// of every space), in txns of [`ATTACH_BATCH`] puts within one space, so each txn stays in
/// one shard. Returns the txns sent.
pub async fn attach_keys(
    client: &Backend,
    spaces: &[KeySpace],
    first: u64,
    ids: &[i64],
    value: &[u8],
) -> anyhow::Result<u64> {
    let mut txns = 0;
    for space in spaces {
        for (chunk_at, chunk) in ids.chunks(ATTACH_BATCH).enumerate() {
            let base = first + (chunk_at * ATTACH_BATCH) as u64;
            let success = chunk
                .iter()
                .zip(base..)
                .map(|(id, index)| {
                    RequestOp::Put(PutRequest {
                        key: space.key(index),
                        value: value.to_vec(),
                        lease: *id,
                        ..Default::default()
                    })
                })
                .collect();
            let txn = TxnRequest { success, ..Default::default() };
            client.txn(txn).await.map_err(|e| anyhow!("attaching keys to leases failed: {e}"))?;
            txns += 1;
        }
    }
    Ok(txns)
}

/// Keys left under every prefix of `spaces`, by a linearizable count.
pub async fn keys_left(client: &Backend, spaces: &[KeySpace]) -> anyhow::Result<i64> {
    let mut left = 0;
    for space in spaces {
        let (key, range_end) = space.prefix_range();
        let req = atoll_proto::kv::RangeRequest {
            key,
            range_end,
            count_only: true,
            ..Default::default()
        };
        let answer = client.range(req).await.map_err(|e| anyhow!("counting keys failed: {e}"))?;
        left += answer.count;
    }
    Ok(left)
}

/// Live leases, as the system lists them.
pub async fn leases_left(client: &Backend) -> anyhow::Result<usize> {
    let answer = client.lease_leases().await.map_err(|e| anyhow!("listing leases failed: {e}"))?;
    Ok(answer.ids.len())
}

/// Fails unless `got` is `want`: what a scenario checks before it trusts a figure.
pub fn must_equal(what: &str, got: i64, want: i64) -> anyhow::Result<()> {
    if got != want {
        bail!("{what}: expected {want}, found {got}");
    }
    Ok(())
}
