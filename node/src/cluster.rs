//! What a node knows about its cluster at start-up: the members and their peer addresses,
//! the shard map (created from the flags on first start and kept in the data directory so a
//! restart with other flags cannot silently re-cut the key space), and the bridge between
//! the peer transport and the local replicas.

use crate::config::{NodeConfig, url_socket_addr};
use crate::durable_file::write_atomically;
use crate::service::{Forwarder, NodeService, PeerSet};
use crate::snapshot_sink;
use crate::transport::peer::{
    PeerForwardError, PeerInbox, PeerSender, PeerTransport, SinkRefused, SnapshotSink,
};
use actix::Addr;
use anyhow::{Context as _, bail};
use atoll_proto::member::{JoinRequest, JoinResponse};
use atoll_proto::peer::{ShardMessage, SnapshotHeader};
use atoll_proto::shard_map::{Member, ReplicaDescriptor, ReplicaRole, ShardMap};
use atoll_proto::{AtollError, NativeRequest, NativeResponse, NodeId, ShardId};
use atoll_router::shard_map::{bootstrap_map, validate};
use atoll_shard::actors::{PeerSink, PeerUnreachable, ReplicaActor, SnapshotSendDone, Step};
use atoll_shard::snapshot::GeneratedSnapshot;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

/// The shard map file in the data directory.
pub const SHARD_MAP_FILE: &str = "shard-map.json";

/// The members other than `me` and the UDP address of each one's peer endpoint.
pub fn peer_addresses(
    members: &[Member],
    me: NodeId,
) -> anyhow::Result<HashMap<NodeId, SocketAddr>> {
    let mut peers = HashMap::new();
    for member in members.iter().filter(|m| m.id != me) {
        let url = member
            .peer_urls
            .first()
            .with_context(|| format!("member {} has no peer URL", member.name))?;
        peers.insert(member.id, url_socket_addr(url)?);
    }
    Ok(peers)
}

/// The shard map of this node: the stored one, or on first start the bootstrap map of
/// `--initial-split` over every initial member (all voters), stored before it is used.
pub fn load_or_create_shard_map(cfg: &NodeConfig) -> anyhow::Result<ShardMap> {
    let path = cfg.data_dir.join(SHARD_MAP_FILE);
    let replicas: Vec<ReplicaDescriptor> = cfg
        .initial_members()
        .iter()
        .map(|m| ReplicaDescriptor { node: m.id, role: ReplicaRole::Voter })
        .collect();
    let wanted = bootstrap_map(&cfg.cluster.initial_split, &replicas)?;
    if path.exists() {
        let stored = read_map(&path)?;
        if stored != wanted {
            tracing::warn!(
                path = %path.display(),
                "the stored shard map differs from --initial-cluster/--initial-split; the \
                 stored one is used (initial flags only apply to a new data directory)"
            );
        }
        return Ok(stored);
    }
    write_map(&path, &wanted)?;
    Ok(wanted)
}

/// Stores the shard map a joining node was given (decision D18) and returns it.
pub fn store_joined_shard_map(cfg: &NodeConfig, map: &ShardMap) -> anyhow::Result<ShardMap> {
    if let Err(e) = validate(map) {
        bail!("the cluster answered the join with an invalid shard map: {e}");
    }
    write_map(&cfg.data_dir.join(SHARD_MAP_FILE), map)?;
    Ok(map.clone())
}

fn read_map(path: &Path) -> anyhow::Result<ShardMap> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {shown}"))?;
    let map: ShardMap = serde_json::from_str(&text)
        .with_context(|| format!("{shown} is not a shard map; restore it from a backup"))?;
    if let Err(e) = validate(&map) {
        bail!("{shown} holds an invalid shard map: {e}");
    }
    Ok(map)
}

/// Writes the map so that a crash leaves either no map or the whole map.
fn write_map(path: &Path, map: &ShardMap) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(map)?;
    write_atomically(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

impl PeerSet for PeerTransport {
    fn set_peer(&self, node: NodeId, peer_url: &str) {
        let added = url_socket_addr(peer_url)
            .map_err(|e| e.to_string())
            .and_then(|addr| PeerTransport::set_peer(self, node, addr).map_err(|e| e.to_string()));
        if let Err(reason) = added {
            tracing::warn!(peer = node.0, url = peer_url, %reason, "cannot add peer");
        }
    }

    fn remove_peer(&self, node: NodeId) {
        PeerTransport::remove_peer(self, node);
    }
}

/// Connects replicas to the peer transport both ways: outgoing Raft messages into the
/// transport's queues, incoming ones to the replica of their shard. It also carries
/// forwarded requests both ways: the service's forwards out through the transport
/// ([`Forwarder`]), and requests forwarded by peers in to the service.
#[derive(Default)]
pub struct PeerBridge {
    sender: OnceLock<PeerSender>,
    /// The IO runtime, where snapshot transfers run.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Where received snapshots are written (decision D20).
    snapshot_dir: OnceLock<PathBuf>,
    replicas: OnceLock<BTreeMap<ShardId, Addr<ReplicaActor>>>,
    service: OnceLock<NodeService>,
}

impl PeerBridge {
    /// Sets where outgoing messages go (once the transport is started); called on the IO
    /// runtime, whose handle runs snapshot transfers.
    pub fn set_sender(&self, sender: PeerSender) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let _ = self.runtime.set(handle);
        }
        if self.sender.set(sender).is_err() {
            tracing::warn!("peer sender set twice; keeping the first");
        }
    }

    /// Sets where incoming messages go (once the replicas are started).
    pub fn set_replicas(&self, replicas: BTreeMap<ShardId, Addr<ReplicaActor>>) {
        if self.replicas.set(replicas).is_err() {
            tracing::warn!("replicas set twice; keeping the first");
        }
    }

    /// Sets the directory received snapshots are written to.
    pub fn set_snapshot_dir(&self, dir: PathBuf) {
        if self.snapshot_dir.set(dir).is_err() {
            tracing::warn!("snapshot directory set twice; keeping the first");
        }
    }

    /// Sets who serves requests forwarded by peers (once the service is built).
    pub fn set_service(&self, service: NodeService) {
        if self.service.set(service).is_err() {
            tracing::warn!("node service set twice; keeping the first");
        }
    }
}

impl PeerSink for PeerBridge {
    fn send(&self, to: NodeId, msg: ShardMessage) {
        match self.sender.get() {
            // A refused message was counted and warned about by the transport.
            Some(sender) => {
                let _ = sender.send(to, msg);
            }
            None => tracing::debug!(to = to.0, "raft message before the peer transport started"),
        }
    }

    fn send_snapshot(
        &self,
        to: NodeId,
        msg: ShardMessage,
        snapshot: Arc<GeneratedSnapshot>,
        done: SnapshotSendDone,
    ) {
        match (self.sender.get(), self.runtime.get()) {
            (Some(sender), Some(runtime)) => {
                snapshot_sink::spawn_send(runtime, sender.clone(), to, msg, snapshot, done);
            }
            _ => done(false),
        }
    }
}

impl PeerInbox for PeerBridge {
    fn deliver(&self, from: NodeId, batch: Vec<ShardMessage>) {
        let Some(replicas) = self.replicas.get() else {
            // Replicas start right after the transport; Raft retransmits what is lost here.
            return;
        };
        for msg in batch {
            match replicas.get(&msg.shard) {
                // A full mailbox drops the message like a lossy network would; Raft
                // retransmits. do_send would let a fast peer grow the mailbox without bound.
                Some(addr) => {
                    if addr.try_send(Step(msg.message)).is_err() {
                        tracing::debug!(
                            shard_id = msg.shard.0,
                            from = from.0,
                            "replica mailbox full; raft message dropped"
                        );
                    }
                }
                None => tracing::warn!(
                    shard_id = msg.shard.0,
                    from = from.0,
                    "raft message for a shard this node does not host"
                ),
            }
        }
    }

    fn peer_unreachable(&self, node: NodeId) {
        let Some(replicas) = self.replicas.get() else { return };
        // Every replica hears it and its core decides (only followers of a leader on that
        // node act). A full mailbox misses it: that replica is busy with messages, each of
        // which wakes it, and it then elects a leader on Raft's own timeout (D14).
        let mut missed = 0usize;
        for addr in replicas.values() {
            if addr.try_send(PeerUnreachable(node)).is_err() {
                missed += 1;
            }
        }
        tracing::info!(peer = node.0, replicas = replicas.len(), missed, "peer unreachable");
    }

    fn snapshot(&self, header: &SnapshotHeader) -> Result<Box<dyn SnapshotSink>, SinkRefused> {
        let refused = |why: &str| SinkRefused {
            reason: format!("shard {} snapshot refused: {why}", header.shard.0),
        };
        let replica = self
            .replicas
            .get()
            .and_then(|r| r.get(&header.shard))
            .ok_or_else(|| refused("this node does not host the shard"))?;
        let dir = self.snapshot_dir.get().ok_or_else(|| refused("the node is starting"))?;
        let sink = snapshot_sink::open_sink(dir, header, replica.clone())?;
        Ok(Box::new(sink))
    }

    fn join(&self, req: &JoinRequest) -> Result<JoinResponse, String> {
        match self.service.get() {
            Some(service) => service.join_answer(req),
            None => Err("the member is starting; ask again".into()),
        }
    }

    fn serve_forwarded(
        &self,
        _from: NodeId,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>> {
        match self.service.get() {
            Some(service) => {
                let service = service.clone();
                Box::pin(async move { service.serve_forwarded(req).await })
            }
            // The transport starts before the service exists; the forwarding node's client
            // sees a retryable refusal, nothing was applied.
            None => Box::pin(std::future::ready(NativeResponse::Error(AtollError::Stopping))),
        }
    }
}

impl Forwarder for PeerBridge {
    fn forward(
        &self,
        to: NodeId,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<NativeResponse, AtollError>> + Send + 'static>> {
        let Some(sender) = self.sender.get() else {
            let refused = AtollError::Busy { limit: format!("connection to node {to}") };
            return Box::pin(std::future::ready(Err(refused)));
        };
        let forwarded = sender.forward(to, req);
        Box::pin(async move { forwarded.await.map_err(forward_error) })
    }
}

/// The client-facing error of a failed forward. What decides the variant is whether the
/// request may have reached the leader's node, because that decides whether a client may
/// resend a non-idempotent write:
/// - it cannot have (no connection, unknown node, too many in flight, stream failed before
///   the request was finished): `Busy`, retryable after a backoff, with the `limit` naming
///   what was exhausted. `NoLeader` would say the same to a client but needs a shard, which
///   a forward does not know; `Timeout` would wrongly forbid resending a write;
/// - it may have (stream failed after the request was sent, no answer in time): `Timeout`,
///   etcd's "may or may not have been applied";
/// - too large: `RequestTooLarge`, not retryable; transport closed: `Stopping`.
fn forward_error(e: PeerForwardError) -> AtollError {
    tracing::debug!(reason = %e, "forwarded request failed");
    match e {
        PeerForwardError::UnknownPeer { peer } | PeerForwardError::NotConnected { peer, .. } => {
            AtollError::Busy { limit: format!("connection to node {peer}") }
        }
        PeerForwardError::Busy { peer, limit } => AtollError::Busy {
            limit: format!("{limit} forwarded requests in flight to node {peer}"),
        },
        PeerForwardError::Stream { peer, request_sent: false, .. } => {
            AtollError::Busy { limit: format!("connection to node {peer}") }
        }
        PeerForwardError::Stream { request_sent: true, .. } | PeerForwardError::TimedOut { .. } => {
            AtollError::Timeout
        }
        PeerForwardError::TooLarge { request_bytes, limit_bytes } => {
            AtollError::RequestTooLarge { request_bytes, limit_bytes }
        }
        PeerForwardError::Closed => AtollError::Stopping,
    }
}
