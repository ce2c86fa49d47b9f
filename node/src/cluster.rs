//! What a node knows about its cluster at start-up: the members and their peer addresses,
//! the shard map (read from the meta shard's applied state, decision D23, or from an older
//! data directory's `shard-map.json`), and the bridge between the peer transport and the
//! local replicas.

use crate::config::{NodeConfig, url_socket_addr};
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
use atoll_shard::Storage;
use atoll_shard::actors::{PeerSink, PeerUnreachable, ReplicaActor, SnapshotSendDone, Step};
use atoll_shard::snapshot::GeneratedSnapshot;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// The shard map file of data directories from before decision D23.
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

/// The shard map file of data directories from before the map moved into the meta shard
/// (decision D23): read, never written.
pub fn read_legacy_map(cfg: &NodeConfig) -> anyhow::Result<Option<ShardMap>> {
    let path = cfg.data_dir.join(SHARD_MAP_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let shown = path.display();
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {shown}"))?;
    let map: ShardMap = serde_json::from_str(&text)
        .with_context(|| format!("{shown} is not a shard map; restore it from a backup"))?;
    if let Err(e) = validate(&map) {
        bail!("{shown} holds an invalid shard map: {e}");
    }
    Ok(Some(map))
}

/// The shard map a new cluster starts with: `--initial-split` over every initial member, all
/// voters, in ID order. Every initial member computes the same map from the same flags
/// whatever order its `--initial-cluster` lists them in, and the meta shard's bootstrap
/// records it (decision D23).
pub fn initial_shard_map(cfg: &NodeConfig) -> anyhow::Result<ShardMap> {
    let mut replicas: Vec<ReplicaDescriptor> = cfg
        .initial_members()
        .iter()
        .map(|m| ReplicaDescriptor { node: m.id, role: ReplicaRole::Voter })
        .collect();
    replicas.sort_by_key(|r| r.node);
    replicas.dedup();
    Ok(bootstrap_map(&cfg.cluster.initial_split, &replicas)?)
}

/// How often start-up looks for the shard map in the meta shard's applied state.
const SHARD_MAP_POLL: Duration = Duration::from_millis(10);
/// How often start-up says it is still waiting for the shard map.
const SHARD_MAP_WAIT_LOG: Duration = Duration::from_secs(5);

/// Where this node's shard map came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapSource {
    /// The meta shard's applied state (decision D23).
    MetaShard,
    /// `shard-map.json` of an older data directory whose meta shard holds no map yet; the
    /// meta leader writes it into the meta shard (`NodeService::migrate_shard_map`).
    LegacyFile,
}

/// The shard map from the meta shard's applied state, waiting until it is there: at once on
/// a restart, after the local bootstrap entries are applied on a new cluster's first start
/// (milliseconds), after the meta shard caught up from its leader on a joining node. A data
/// directory from before decision D23 (a `shard-map.json`, no map record) uses its file.
/// `wanted` is the map the flags ask for, compared only to warn.
pub fn await_shard_map(
    storage: &Storage,
    legacy: Option<ShardMap>,
    wanted: Option<&ShardMap>,
) -> anyhow::Result<(ShardMap, MapSource)> {
    let started = Instant::now();
    let mut told = started;
    loop {
        let snap = storage.db.snapshot();
        if let Some(map) = atoll_shard::shard_map_record::load(storage, &snap)? {
            if let Err(e) = validate(&map) {
                bail!("the meta shard holds an invalid shard map: {e}");
            }
            if wanted.is_some_and(|w| w.shards != map.shards) {
                tracing::warn!(
                    "the meta shard's shard map differs from --initial-cluster/--initial-split; \
                     the meta shard's is used (initial flags only apply to a new cluster)"
                );
            }
            return Ok((map, MapSource::MetaShard));
        }
        if let Some(map) = legacy {
            tracing::info!(
                file = SHARD_MAP_FILE,
                "the meta shard holds no shard map yet; using the data directory's file until \
                 the meta leader records it"
            );
            return Ok((map, MapSource::LegacyFile));
        }
        if told.elapsed() >= SHARD_MAP_WAIT_LOG {
            told = Instant::now();
            tracing::warn!(
                waited_s = started.elapsed().as_secs(),
                "waiting for the meta shard to hold the shard map (a joining node gets it from \
                 the meta leader; check that a member is reachable on its peer URL)"
            );
        }
        std::thread::sleep(SHARD_MAP_POLL);
    }
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

    fn connected_since(&self, node: NodeId) -> Option<std::time::Instant> {
        PeerTransport::connected_since(self, node)
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
    /// The local replicas: the meta shard's first, the data shards' once the meta shard
    /// gave the map (decision D23). Read per delivered batch, written twice per run.
    replicas: RwLock<Arc<BTreeMap<ShardId, Addr<ReplicaActor>>>>,
    /// Whether every local replica is started (before, a message for a data shard is
    /// expected and not worth a warning).
    all_started: std::sync::atomic::AtomicBool,
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

    /// Adds where incoming messages go (as replicas start); `all` once every local replica
    /// is among them.
    pub fn add_replicas(&self, replicas: BTreeMap<ShardId, Addr<ReplicaActor>>, all: bool) {
        let mut guard = self.replicas.write().unwrap_or_else(|e| e.into_inner());
        let mut merged = BTreeMap::clone(&guard);
        merged.extend(replicas);
        *guard = Arc::new(merged);
        self.all_started.store(all, std::sync::atomic::Ordering::Release);
    }

    fn replicas(&self) -> Arc<BTreeMap<ShardId, Addr<ReplicaActor>>> {
        self.replicas.read().unwrap_or_else(|e| e.into_inner()).clone()
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
        // Replicas start after the transport; Raft retransmits what is lost here.
        let replicas = self.replicas();
        let all_started = self.all_started.load(std::sync::atomic::Ordering::Acquire);
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
                None if all_started => tracing::warn!(
                    shard_id = msg.shard.0,
                    from = from.0,
                    "raft message for a shard this node does not host"
                ),
                None => tracing::debug!(
                    shard_id = msg.shard.0,
                    from = from.0,
                    "raft message for a shard not started yet"
                ),
            }
        }
    }

    fn peer_unreachable(&self, node: NodeId) {
        let replicas = self.replicas();
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

    fn is_removed_member(&self, node: NodeId) -> bool {
        self.service.get().is_some_and(|service| service.is_removed_member(node))
    }

    fn removed_from_cluster(&self, by: NodeId) {
        match self.service.get() {
            Some(service) => service.removal_reported(by),
            // The link dials again and is refused again once the service exists.
            None => tracing::debug!(peer = %by, "removed from the cluster, said before start"),
        }
    }

    fn snapshot(&self, header: &SnapshotHeader) -> Result<Box<dyn SnapshotSink>, SinkRefused> {
        let refused = |why: &str| SinkRefused {
            reason: format!("shard {} snapshot refused: {why}", header.shard.0),
        };
        let replicas = self.replicas();
        let replica = replicas
            .get(&header.shard)
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
