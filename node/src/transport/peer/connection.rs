//! One identified peer connection, either side: check the peer's Hello, then deliver its
//! Raft batches and accept its bidirectional streams (snapshots, forwarded requests, told
//! apart by their first frame) until the connection ends.

use super::frames::{ReadError, read_frame};
use super::limits::{
    PEER_CONTROL_FRAME_BYTES_MAX, PEER_HELLO_TIMEOUT, PEER_STREAM_FIRST_FRAME_TIMEOUT,
};
use super::sender::{Peer, Shared};
use super::stats::add;
use super::{ALPN_JOIN, ALPN_PEER};
use super::{forward, join, snapshot};
use atoll_proto::NodeId;
use atoll_proto::peer::{PEER_FRAME_BYTES_MAX, PeerFrame};
use quinn::crypto::rustls::HandshakeData;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Application close code: the node is shutting down.
pub(crate) const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the Hello was missing or refused (reason in the close frame).
pub(crate) const CLOSE_REFUSED: u32 = 1;
/// Application close code: a newer connection from the same peer replaced this one.
pub(crate) const CLOSE_REPLACED: u32 = 2;
/// Application close code: the peer sent bytes that break the protocol.
pub(crate) const CLOSE_PROTOCOL: u32 = 3;
/// Application close code: the peer was removed from the peer set or moved.
pub(crate) const CLOSE_MEMBERSHIP: u32 = 4;
/// Application close code: the dialing node is a member removed from the cluster (it was
/// down when it was removed, decision D18); it stops when it reads this.
pub(crate) const CLOSE_REMOVED: u32 = 5;

/// How the connection came about.
pub(crate) enum Side {
    /// The peer dialed this node: any peer with a lower ID may be on the other end.
    Accepted,
    /// This node dialed `expected`; `identified` fires once its Hello checked out.
    Dialed { expected: NodeId, identified: oneshot::Sender<()> },
}

/// Why a connection was refused, one line for the log and the close frame.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(
        "no application protocol {}; this port serves peers only",
        String::from_utf8_lossy(ALPN_PEER)
    )]
    Alpn,
    #[error("no client certificate; peers must present one from the cluster CA")]
    NoCertificate,
    #[error("no hello within {PEER_HELLO_TIMEOUT:?}")]
    NoHello,
    #[error("no hello: {0}")]
    BadHello(String),
    #[error("cluster id {got:#x} is not this cluster's {expected:#x}")]
    WrongCluster { got: u64, expected: u64 },
    #[error("node {0} is not a member of this node's peer set")]
    UnknownNode(NodeId),
    #[error("node {0} was removed from the cluster")]
    Removed(NodeId),
    #[error("node {from} dials node {to}, but the lower node id dials")]
    WrongDirection { from: NodeId, to: NodeId },
    #[error("dialed node {expected}, but node {got} answered")]
    Unexpected { expected: NodeId, got: NodeId },
}

/// Serves a connection until it ends.
pub(crate) async fn serve(shared: Arc<Shared>, conn: quinn::Connection, side: Side) {
    let remote = conn.remote_address();
    let expected = match &side {
        Side::Accepted => None,
        Side::Dialed { expected, .. } => Some(*expected),
    };
    if expected.is_none() && alpn_of(&conn).as_deref() == Some(ALPN_JOIN) {
        return join::serve(shared, conn).await;
    }
    let (peer, recv) = match identify(&shared, &conn, expected).await {
        Ok(found) => found,
        Err(_) if conn.close_reason().is_some() => {
            // Closed by the other side (it refused us) or by shutdown: nothing to refuse.
            tracing::debug!(remote = %remote, "peer connection closed before its hello");
            return;
        }
        Err(refusal) => {
            add(&shared.counters.connections_refused, 1);
            tracing::warn!(remote = %remote, reason = %refusal, "refusing peer connection");
            let reason = refusal.to_string();
            let code = match refusal {
                Refusal::Removed(_) => CLOSE_REMOVED,
                _ => CLOSE_REFUSED,
            };
            conn.close(code.into(), reason.as_bytes());
            return;
        }
    };
    match side {
        Side::Accepted => publish(&shared, &peer, &conn),
        Side::Dialed { identified, .. } => {
            let _ = identified.send(());
        }
    }
    tracing::info!(peer = %peer.id, remote = %remote, "peer connected");
    tokio::join!(
        read_raft_stream(&shared, &conn, peer.id, recv),
        accept_streams(&shared, &conn, peer.id)
    );
    let reason = conn.closed().await;
    tracing::info!(peer = %peer.id, remote = %remote, reason = %reason, "peer disconnected");
    // The only way a node learns that a peer died while the shards it leads hibernate and
    // send nothing (decision D14): QUIC keep-alives run per connection whatever the shards do.
    shared.inbox.peer_unreachable(peer.id);
    let id = conn.stable_id();
    peer.conn.send_if_modified(|current| {
        let ours = current.as_ref().is_some_and(|c| c.conn.stable_id() == id);
        if ours {
            *current = None;
        }
        ours
    });
}

/// Reads the peer's Hello (the first frame of its first unidirectional stream) and checks
/// it against this node's cluster and peer set.
async fn identify(
    shared: &Shared,
    conn: &quinn::Connection,
    expected: Option<NodeId>,
) -> Result<(Arc<Peer>, quinn::RecvStream), Refusal> {
    if alpn_of(conn).as_deref() != Some(ALPN_PEER) {
        return Err(Refusal::Alpn);
    }
    // TLS already demands a certificate chained to the CA (`peer_server_config`); checked
    // again so a configuration slip can never admit an anonymous peer.
    if conn.peer_identity().is_none() {
        return Err(Refusal::NoCertificate);
    }
    let first = tokio::time::timeout(PEER_HELLO_TIMEOUT, async {
        let mut recv = conn.accept_uni().await.map_err(|e| ReadError::Stream(e.to_string()))?;
        let frame = read_frame(&mut recv, PEER_CONTROL_FRAME_BYTES_MAX).await?;
        Ok::<_, ReadError>((recv, frame))
    })
    .await
    .map_err(|_| Refusal::NoHello)?;
    let (recv, frame) = first.map_err(|e| Refusal::BadHello(e.to_string()))?;
    let Some(PeerFrame::Hello { cluster_id, from }) = frame else {
        return Err(Refusal::BadHello("the first frame is not a hello".into()));
    };
    if cluster_id != shared.cluster_id {
        return Err(Refusal::WrongCluster { got: cluster_id, expected: shared.cluster_id });
    }
    // A removed member is told so before anything else, whichever side should dial: a
    // member removed while it was down learns it only from a peer (etcd's peers answer it
    // "removed" in the same way).
    let peer = match shared.peer(from) {
        Some(peer) => peer,
        None if shared.inbox.is_removed_member(from) => return Err(Refusal::Removed(from)),
        None => return Err(Refusal::UnknownNode(from)),
    };
    match expected {
        None if from > shared.node_id => {
            return Err(Refusal::WrongDirection { from, to: shared.node_id });
        }
        Some(expected) if expected != from => {
            return Err(Refusal::Unexpected { expected, got: from });
        }
        _ => {}
    }
    Ok((peer, recv))
}

/// Whether the peer closed `conn` because this node is a member removed from the cluster.
pub(crate) fn closed_as_removed(conn: &quinn::Connection) -> bool {
    matches!(
        conn.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == quinn::VarInt::from_u32(CLOSE_REMOVED)
    )
}

fn alpn_of(conn: &quinn::Connection) -> Option<Vec<u8>> {
    conn.handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol)
}

/// Makes an accepted connection the peer's current one; an older one (the peer restarted
/// and dialed again) is closed.
fn publish(shared: &Shared, peer: &Peer, conn: &quinn::Connection) {
    let old = peer.conn.send_replace(Some(shared.identified(conn.clone())));
    if let Some(old) = old
        && old.conn.stable_id() != conn.stable_id()
    {
        old.conn.close(CLOSE_REPLACED.into(), b"replaced by a newer connection");
    }
}

async fn read_raft_stream(
    shared: &Shared,
    conn: &quinn::Connection,
    from: NodeId,
    mut recv: quinn::RecvStream,
) {
    loop {
        match read_frame(&mut recv, PEER_FRAME_BYTES_MAX).await {
            Ok(Some(PeerFrame::Raft(batch))) => {
                add(&shared.counters.frames_received, 1);
                add(&shared.counters.messages_received, batch.len() as u64);
                shared.inbox.deliver(from, batch);
            }
            Ok(Some(_)) => {
                let reason = "unexpected frame on the raft stream";
                tracing::warn!(peer = %from, reason, "closing peer connection");
                conn.close(CLOSE_PROTOCOL.into(), reason.as_bytes());
                return;
            }
            Ok(None) => {
                tracing::debug!(peer = %from, "peer finished its raft stream");
                return;
            }
            Err(ReadError::Stream(reason)) => {
                tracing::debug!(peer = %from, reason = %reason, "raft stream ended");
                return;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(peer = %from, reason = %reason, "closing peer connection");
                conn.close(CLOSE_PROTOCOL.into(), reason.as_bytes());
                return;
            }
        }
    }
}

async fn accept_streams(shared: &Arc<Shared>, conn: &quinn::Connection, from: NodeId) {
    while let Ok((send, recv)) = conn.accept_bi().await {
        tokio::spawn(serve_stream(Arc::clone(shared), from, send, recv));
    }
}

/// Serves one bidirectional stream by its first frame: a snapshot header or a forwarded
/// request. Bad input is answered on the stream (as a forward's error response, which a
/// snapshot sender also reports as a failure); it never closes the connection.
async fn serve_stream(
    shared: Arc<Shared>,
    from: NodeId,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    // The forward limit (at least `FRAME_OVERHEAD_BYTES`, 512 KiB) also bounds a snapshot
    // header, which holds snapshot metadata only (its bytes follow in chunks).
    let limit = shared.forward_request_bytes_max();
    let first =
        tokio::time::timeout(PEER_STREAM_FIRST_FRAME_TIMEOUT, read_frame(&mut recv, limit)).await;
    let refusal = match first {
        Ok(Ok(Some(PeerFrame::SnapshotHeader(header)))) => {
            return snapshot::receive(shared, from, *header, send, recv).await;
        }
        Ok(Ok(Some(PeerFrame::ForwardRequest(req)))) => {
            return forward::serve(shared, from, req, send, recv).await;
        }
        Ok(Ok(Some(_))) => forward::malformed(
            "a peer stream must start with a snapshot header or a forwarded request",
        ),
        Ok(Ok(None)) => forward::malformed("the peer stream ended before its first frame"),
        Ok(Err(ReadError::Stream(reason))) => {
            add(&shared.counters.streams_failed_unread, 1);
            tracing::debug!(peer = %from, reason = %reason, "peer stream failed");
            return;
        }
        Ok(Err(e)) => forward::read_error(e),
        Err(_) => return forward::abandon(from, send, recv),
    };
    forward::refuse(&shared, from, send, recv, refusal).await;
}
