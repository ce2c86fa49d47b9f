//! The state shared by the transport's tasks and senders, and [`PeerSender`], the
//! non-blocking way in for outgoing messages.

use super::PeerInbox;
use super::error::PeerSendError;
use super::limits::{
    FORWARD_STREAMS_PER_CONNECTION_MAX, PEER_DROP_WARN_INTERVAL, PEER_QUEUE_MESSAGES_MAX,
    SNAPSHOT_STREAMS_PER_CONNECTION_MAX,
};
use super::stats::{PeerCounters, WarnLimiter, add};
use atoll_proto::NodeId;
use atoll_proto::limits::MAX_REQUEST_BYTES_DEFAULT;
use atoll_proto::peer::{ShardMessage, forward_request_bytes_max};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Semaphore, mpsc, watch};

/// A live, identified connection to a peer. `generation` tells a new connection from the
/// one that just failed.
#[derive(Clone, Debug)]
pub(crate) struct PeerConn {
    pub(crate) generation: u64,
    pub(crate) conn: quinn::Connection,
    /// When the connection was identified (its Hello checked out).
    pub(crate) since: std::time::Instant,
}

/// One peer node as senders and tasks see it.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) id: NodeId,
    /// Messages waiting for the peer's link task.
    pub(crate) queue: mpsc::Sender<ShardMessage>,
    /// Where the peer listens; changed by membership updates.
    pub(crate) addr: watch::Sender<SocketAddr>,
    /// The current connection, published by whichever side made it.
    pub(crate) conn: watch::Sender<Option<PeerConn>>,
    pub(crate) drop_warn: WarnLimiter,
    /// Permits for forwarded-request streams to the peer
    /// ([`FORWARD_STREAMS_PER_CONNECTION_MAX`]); a forward without one fails as busy.
    pub(crate) forward_permits: Arc<Semaphore>,
    /// Permits for snapshot streams to the peer ([`SNAPSHOT_STREAMS_PER_CONNECTION_MAX`]); a
    /// snapshot without one waits. Needed because QUIC's stream limit also admits forwards.
    pub(crate) snapshot_permits: Arc<Semaphore>,
}

impl Peer {
    pub(crate) fn new(id: NodeId, addr: SocketAddr) -> (Peer, mpsc::Receiver<ShardMessage>) {
        let (queue, rx) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
        let peer = Peer {
            id,
            queue,
            addr: watch::Sender::new(addr),
            conn: watch::Sender::new(None),
            drop_warn: WarnLimiter::new(PEER_DROP_WARN_INTERVAL),
            forward_permits: Arc::new(Semaphore::new(FORWARD_STREAMS_PER_CONNECTION_MAX as usize)),
            snapshot_permits: Arc::new(Semaphore::new(
                SNAPSHOT_STREAMS_PER_CONNECTION_MAX as usize,
            )),
        };
        (peer, rx)
    }

    /// The current connection, if any.
    pub(crate) fn current_conn(&self) -> Option<PeerConn> {
        self.conn.borrow().clone()
    }
}

/// State shared by the transport, its tasks and every [`PeerSender`]. It holds no endpoint,
/// so senders that outlive the transport do not keep its UDP port bound.
pub(crate) struct Shared {
    pub(crate) node_id: NodeId,
    pub(crate) cluster_id: u64,
    pub(crate) inbox: Arc<dyn PeerInbox>,
    pub(crate) counters: PeerCounters,
    pub(crate) peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    pub(crate) closed: AtomicBool,
    /// Largest forwarded-request payload sent or accepted, from `--max-request-bytes`.
    pub(crate) forward_request_bytes_max: AtomicUsize,
    next_generation: AtomicU64,
    unknown_warn: WarnLimiter,
}

impl Shared {
    pub(crate) fn new(node_id: NodeId, cluster_id: u64, inbox: Arc<dyn PeerInbox>) -> Shared {
        Shared {
            node_id,
            cluster_id,
            inbox,
            counters: PeerCounters::default(),
            peers: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
            forward_request_bytes_max: AtomicUsize::new(forward_request_bytes_max(
                MAX_REQUEST_BYTES_DEFAULT,
            )),
            next_generation: AtomicU64::new(1),
            unknown_warn: WarnLimiter::new(PEER_DROP_WARN_INTERVAL),
        }
    }

    pub(crate) fn peer(&self, id: NodeId) -> Option<Arc<Peer>> {
        self.peers.read().unwrap_or_else(|e| e.into_inner()).get(&id).cloned()
    }

    /// `conn` as a peer's current connection, identified now: the next generation, and the
    /// time its age counts from.
    pub(crate) fn identified(&self, conn: quinn::Connection) -> PeerConn {
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        PeerConn { generation, conn, since: std::time::Instant::now() }
    }

    pub(crate) fn forward_request_bytes_max(&self) -> usize {
        self.forward_request_bytes_max.load(Ordering::Relaxed)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// Sends Raft messages and snapshots to peers. Cheap to clone; [`PeerSender::send`] never
/// blocks, so actors on arbiter threads call it directly.
#[derive(Clone)]
pub struct PeerSender {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for PeerSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerSender").field("node_id", &self.shared.node_id).finish()
    }
}

impl PeerSender {
    /// Queues `msg` for node `to`. When the peer's queue is full (its connection is down or
    /// slow) or the peer is unknown, the message is dropped, counted and warned about at a
    /// limited rate, and the error says why; Raft retransmits.
    pub fn send(&self, to: NodeId, msg: ShardMessage) -> Result<(), PeerSendError> {
        if self.shared.is_closed() {
            return Err(PeerSendError::Closed);
        }
        let Some(peer) = self.shared.peer(to) else {
            add(&self.shared.counters.messages_dropped_unknown_peer, 1);
            if let Some(suppressed) = self.shared.unknown_warn.check() {
                tracing::warn!(peer = %to, suppressed, "dropping raft message to unknown node");
            }
            return Err(PeerSendError::UnknownPeer { peer: to });
        };
        match peer.queue.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                add(&self.shared.counters.messages_dropped_queue_full, 1);
                if let Some(suppressed) = peer.drop_warn.check() {
                    let limit = PEER_QUEUE_MESSAGES_MAX;
                    tracing::warn!(
                        peer = %to,
                        limit,
                        suppressed,
                        "peer queue full, dropping raft messages"
                    );
                }
                Err(PeerSendError::QueueFull { peer: to, limit: PEER_QUEUE_MESSAGES_MAX })
            }
            // The link task is gone: the peer is being removed or the transport closed.
            Err(mpsc::error::TrySendError::Closed(_)) => Err(PeerSendError::Closed),
        }
    }
}
