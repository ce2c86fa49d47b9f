//! [`PeerTransport`]: the peer endpoint, its accept loop, and one link task per peer.

use super::connection::{self, CLOSE_MEMBERSHIP, CLOSE_SHUTDOWN, Side};
use super::limits::{
    FORWARD_STREAMS_PER_CONNECTION_MAX, PEER_CLOSE_DRAIN_TIMEOUT, PEER_CONNECTIONS_MAX,
    PEER_IDLE_TIMEOUT, PEER_KEEP_ALIVE_INTERVAL, PEER_STREAM_RECEIVE_WINDOW_BYTES,
    SNAPSHOT_STREAMS_PER_CONNECTION_MAX,
};
use super::link::{self, Dialer};
use super::sender::{Peer, PeerSender, Shared};
use super::stats::{PeerStats, add};
use super::{ALPN_JOIN, ALPN_PEER, PeerInbox, PeerTransportConfig};
use crate::transport::TransportError;
use crate::transport::error::describe_io_error;
use atoll_proto::NodeId;
use atoll_proto::peer::forward_request_bytes_max;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// The running peer transport of one node. Dropping it stops its tasks; [`close`] also
/// tells the peers and waits briefly for that to reach them.
///
/// [`close`]: PeerTransport::close
pub struct PeerTransport {
    shared: Arc<Shared>,
    dialer: Dialer,
    local_addr: SocketAddr,
    runtime: tokio::runtime::Handle,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    accept: Option<JoinHandle<()>>,
    links: HashMap<NodeId, JoinHandle<()>>,
}

impl std::fmt::Debug for PeerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTransport")
            .field("node_id", &self.shared.node_id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl PeerTransport {
    /// Binds the peer endpoint, starts accepting, and starts a link to every peer. Must be
    /// called inside a tokio runtime, whose tasks then carry the transport.
    pub fn start(
        cfg: PeerTransportConfig,
        inbox: Arc<dyn PeerInbox>,
    ) -> Result<PeerTransport, TransportError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TransportError::Config {
                reason: "the peer transport must be started inside a tokio runtime".into(),
            })?;
        if cfg.peers.contains_key(&cfg.node_id) {
            return Err(own_id_error(cfg.node_id));
        }
        let transport = Arc::new(transport_config()?);
        let server_tls = cfg.tls.peer_server_config(&[ALPN_PEER, ALPN_JOIN])?;
        let server_quic = QuicServerConfig::try_from(server_tls)
            .map_err(|e| TransportError::Config { reason: format!("TLS for QUIC: {e}") })?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_quic));
        server_config.transport_config(Arc::clone(&transport));
        let client_tls = cfg.tls.peer_client_config(&[ALPN_PEER])?;
        let client_quic = QuicClientConfig::try_from(client_tls)
            .map_err(|e| TransportError::Config { reason: format!("TLS for QUIC: {e}") })?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(client_quic));
        client_config.transport_config(transport);
        let bind_error = |e: std::io::Error| TransportError::Bind {
            addr: cfg.listen,
            reason: describe_io_error(&e),
        };
        let endpoint = quinn::Endpoint::server(server_config, cfg.listen).map_err(bind_error)?;
        let local_addr = endpoint.local_addr().map_err(bind_error)?;
        let shared = Arc::new(Shared::new(cfg.node_id, cfg.cluster_id, inbox));
        let accept = runtime.spawn(accept_loop(Arc::clone(&shared), endpoint.clone()));
        let tasks = Tasks { accept: Some(accept), links: HashMap::new() };
        let this = PeerTransport {
            shared,
            dialer: Dialer { endpoint, client_config },
            local_addr,
            runtime,
            tasks: Mutex::new(tasks),
        };
        for (node, addr) in cfg.peers {
            this.set_peer(node, addr)?;
        }
        let node_id = cfg.node_id;
        tracing::info!(node_id = %node_id, addr = %local_addr, "peer transport listening");
        Ok(this)
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node.
    pub fn node_id(&self) -> NodeId {
        self.shared.node_id
    }

    /// A handle for sending messages and snapshots.
    pub fn sender(&self) -> PeerSender {
        PeerSender { shared: Arc::clone(&self.shared) }
    }

    /// Totals since start.
    pub fn stats(&self) -> PeerStats {
        self.shared.counters.stats()
    }

    /// Sets the largest request this node forwards or accepts forwarded from
    /// `--max-request-bytes` (the frame may carry [`FRAME_OVERHEAD_BYTES`] more, up to the peer
    /// frame limit). Until called, etcd's default of 1.5 MiB applies. Every node of a cluster
    /// should use the same value: a larger request is refused before it leaves the node, and
    /// a receiver with a smaller limit answers `RequestTooLarge`.
    ///
    /// [`FRAME_OVERHEAD_BYTES`]: atoll_proto::limits::FRAME_OVERHEAD_BYTES
    pub fn set_max_request_bytes(&self, max_request_bytes: usize) {
        let bytes = forward_request_bytes_max(max_request_bytes);
        self.shared.forward_request_bytes_max.store(bytes, Ordering::Relaxed);
    }

    /// Adds a peer, or changes its address (its current connection is then closed and
    /// made again at the new address).
    pub fn set_peer(&self, node: NodeId, addr: SocketAddr) -> Result<(), TransportError> {
        if node == self.shared.node_id {
            return Err(own_id_error(node));
        }
        let mut peers = self.shared.peers.write().unwrap_or_else(|e| e.into_inner());
        if let Some(peer) = peers.get(&node) {
            let old = peer.addr.send_replace(addr);
            if old != addr {
                tracing::info!(peer = %node, old = %old, new = %addr, "peer address changed");
                if let Some(current) = peer.current_conn() {
                    current.conn.close(CLOSE_MEMBERSHIP.into(), b"peer address changed");
                }
            }
            return Ok(());
        }
        let (peer, rx) = Peer::new(node, addr);
        let peer = Arc::new(peer);
        peers.insert(node, Arc::clone(&peer));
        drop(peers);
        let task =
            self.runtime.spawn(link::run(Arc::clone(&self.shared), peer, rx, self.dialer.clone()));
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = tasks.links.insert(node, task) {
            old.abort();
        }
        tracing::info!(peer = %node, addr = %addr, "peer added");
        Ok(())
    }

    /// Since when this node has had its current connection to `node`; `None` while it has
    /// none (etcd's `ActiveSince`, which its strict reconfiguration check asks).
    pub fn connected_since(&self, node: NodeId) -> Option<std::time::Instant> {
        self.shared.peer(node)?.current_conn().map(|c| c.since)
    }

    /// Removes a peer: its queue is discarded and its connection closed; it can no longer
    /// connect to this node.
    pub fn remove_peer(&self, node: NodeId) {
        let removed = self.shared.peers.write().unwrap_or_else(|e| e.into_inner()).remove(&node);
        let task = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).links.remove(&node);
        if let Some(task) = task {
            task.abort();
        }
        if let Some(current) = removed.and_then(|peer| peer.current_conn()) {
            current.conn.close(CLOSE_MEMBERSHIP.into(), b"node removed from the peer set");
        }
        tracing::info!(peer = %node, "peer removed");
    }

    /// Closes every connection (peers see a shutdown, not a timeout), stops the tasks and
    /// releases the UDP port. Later sends answer [`super::PeerSendError::Closed`].
    pub async fn close(&self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.dialer.endpoint.close(CLOSE_SHUTDOWN.into(), b"node shutting down");
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let handles: Vec<_> = tasks.accept.into_iter().chain(tasks.links.into_values()).collect();
        for handle in &handles {
            handle.abort();
        }
        for handle in handles {
            let _ = handle.await;
        }
        let peers =
            std::mem::take(&mut *self.shared.peers.write().unwrap_or_else(|e| e.into_inner()));
        for peer in peers.values() {
            peer.conn.send_replace(None);
        }
        let _ =
            tokio::time::timeout(PEER_CLOSE_DRAIN_TIMEOUT, self.dialer.endpoint.wait_idle()).await;
        tracing::info!(node_id = %self.shared.node_id, "peer transport closed");
    }
}

impl Drop for PeerTransport {
    fn drop(&mut self) {
        if self.shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.dialer.endpoint.close(CLOSE_SHUTDOWN.into(), b"node shutting down");
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in tasks.accept.into_iter().chain(tasks.links.into_values()) {
            handle.abort();
        }
        self.shared.peers.write().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

fn own_id_error(node: NodeId) -> TransportError {
    TransportError::Config {
        reason: format!("node {node} is this node; remove it from the peer list"),
    }
}

/// Bidirectional streams a peer may open at once: every snapshot and forward permit, plus
/// a seventh more. quinn returns closed streams' credit to the peer only once more than an
/// eighth of the limit is owed (quinn-proto 0.11 `streams/state.rs`, the `MAX_STREAMS` update
/// rule), so up to an eighth can stay withheld; without the margin, forwards holding their
/// full permit count were seen waiting for credit that never came.
const fn bidi_streams_max() -> u32 {
    let permits = SNAPSHOT_STREAMS_PER_CONNECTION_MAX + FORWARD_STREAMS_PER_CONNECTION_MAX;
    permits + permits.div_ceil(7)
}

fn transport_config() -> Result<quinn::TransportConfig, TransportError> {
    let idle = quinn::IdleTimeout::try_from(PEER_IDLE_TIMEOUT)
        .map_err(|e| TransportError::Config { reason: format!("idle timeout: {e}") })?;
    let mut transport = quinn::TransportConfig::default();
    transport
        // One Raft stream per direction; snapshots and forwarded requests on bidirectional
        // streams, each bounded by its own sender-side permits (`Peer`), so neither kind can
        // take the other's share of this limit.
        .max_concurrent_uni_streams(1u32.into())
        .max_concurrent_bidi_streams(bidi_streams_max().into())
        .stream_receive_window(PEER_STREAM_RECEIVE_WINDOW_BYTES.into())
        .keep_alive_interval(Some(PEER_KEEP_ALIVE_INTERVAL))
        .max_idle_timeout(Some(idle));
    Ok(transport)
}

async fn accept_loop(shared: Arc<Shared>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let remote = incoming.remote_address();
        if endpoint.open_connections() >= PEER_CONNECTIONS_MAX {
            add(&shared.counters.connections_refused, 1);
            let limit = PEER_CONNECTIONS_MAX;
            tracing::warn!(remote = %remote, limit, "refusing peer connection over limit");
            incoming.refuse();
            continue;
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            match incoming.await {
                Ok(conn) => connection::serve(shared, conn, Side::Accepted).await,
                Err(e) => {
                    add(&shared.counters.connections_refused, 1);
                    tracing::warn!(
                        remote = %remote,
                        reason = %e,
                        "refusing peer connection: handshake failed"
                    );
                }
            }
        });
    }
}
