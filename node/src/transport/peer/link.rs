//! The task behind one peer: get a connection (dial it when this node has the lower ID,
//! otherwise wait for the peer's, and knock now and then while none comes), open the Raft
//! stream, and drain the peer's queue into it, one frame per flush; after a failure, start
//! over with bounded backoff.

use super::connection::{self, CLOSE_REFUSED, Side};
use super::frames::write_frame;
use super::limits::{
    PEER_DIAL_TIMEOUT, PEER_FLUSH_MESSAGES_MAX, PEER_FRAME_OVERHEAD_BYTES, PEER_HELLO_TIMEOUT,
    PEER_KNOCK_AFTER, PEER_REDIAL_BACKOFF_MAX, PEER_REDIAL_BACKOFF_MIN,
};
use super::sender::{Peer, PeerConn, Shared};
use super::stats::add;
use atoll_proto::peer::{PEER_FRAME_BYTES_MAX, PeerFrame, ShardMessage};
use quinn::SendStream;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What a link needs to dial.
#[derive(Clone)]
pub(crate) struct Dialer {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) client_config: quinn::ClientConfig,
}

/// Why a connection stopped carrying messages.
enum LinkEnd {
    /// The queue's senders are gone: the peer was removed or the transport closed.
    QueueClosed,
    /// The connection failed or could not be made.
    Failed(String),
}

/// Runs until the peer is removed or the transport closes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    peer: Arc<Peer>,
    mut rx: mpsc::Receiver<ShardMessage>,
    dialer: Dialer,
) {
    let dials = shared.node_id < peer.id;
    let mut backoff = PEER_REDIAL_BACKOFF_MIN;
    let mut last_generation = 0;
    let mut failures_in_row = 0u32;
    loop {
        let started = Instant::now();
        let connected = if dials {
            dial(&shared, &peer, &dialer).await.inspect_err(|_| {
                add(&shared.counters.connect_failures, 1);
            })
        } else {
            match await_peer(&shared, &peer, &dialer, last_generation).await {
                Some(Awaited::Accepted(pc)) => {
                    last_generation = pc.generation;
                    open_raft_stream(&shared, &pc.conn).await.map(|stream| (pc, stream))
                }
                Some(Awaited::Knocked((pc, stream))) => {
                    last_generation = pc.generation;
                    Ok((pc, stream))
                }
                None => return,
            }
        };
        let end = match connected {
            Ok((pc, stream)) => drain(&shared, &peer, &mut rx, &pc.conn, stream).await,
            Err(reason) => LinkEnd::Failed(reason),
        };
        let reason = match end {
            LinkEnd::QueueClosed => return,
            LinkEnd::Failed(reason) => reason,
        };
        if started.elapsed() > PEER_REDIAL_BACKOFF_MAX {
            // The connection was up a while: this is a new outage, retry promptly.
            backoff = PEER_REDIAL_BACKOFF_MIN;
            failures_in_row = 0;
        }
        failures_in_row += 1;
        if failures_in_row == 1 {
            tracing::warn!(peer = %peer.id, reason = %reason, "peer link down");
        } else {
            tracing::debug!(peer = %peer.id, reason = %reason, failures_in_row, "peer link down");
        }
        if dials {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(PEER_REDIAL_BACKOFF_MAX);
        }
    }
}

/// What the side that does not dial got.
enum Awaited {
    /// The peer's connection.
    Accepted(PeerConn),
    /// This node's own, from a knock the peer accepted.
    Knocked((PeerConn, SendStream)),
}

/// Waits for the peer's connection; `None` if the peer is gone. While none comes for
/// [`PEER_KNOCK_AFTER`], dials the peer anyway: it may be down or cut off, or it may no
/// longer count this node as a member, and then only a dial tells this node so (the peer
/// refuses it as removed, which `dial` reports). A peer that knows this node refuses the
/// knock (the lower ID dials) and keeps dialing it.
async fn await_peer(
    shared: &Arc<Shared>,
    peer: &Peer,
    dialer: &Dialer,
    after: u64,
) -> Option<Awaited> {
    loop {
        if let Ok(found) =
            tokio::time::timeout(PEER_KNOCK_AFTER, wait_for_accepted(peer, after)).await
        {
            return found.map(Awaited::Accepted);
        }
        match dial(shared, peer, dialer).await {
            Ok(found) => return Some(Awaited::Knocked(found)),
            Err(reason) => {
                tracing::debug!(peer = %peer.id, reason = %reason, "knocked on a peer that dials");
            }
        }
    }
}

/// Dials the peer, sends this node's Hello, waits for the peer's, then publishes the
/// connection as the peer's current one. A peer that refuses this node as a removed member
/// is reported to the inbox.
async fn dial(
    shared: &Arc<Shared>,
    peer: &Peer,
    dialer: &Dialer,
) -> Result<(PeerConn, SendStream), String> {
    let addr = *peer.addr.borrow();
    add(&shared.counters.connect_attempts, 1);
    let server_name = addr.ip().to_string();
    let connecting = dialer
        .endpoint
        .connect_with(dialer.client_config.clone(), addr, &server_name)
        .map_err(|e| format!("cannot dial {addr}: {e}"))?;
    let conn = tokio::time::timeout(PEER_DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no handshake with {addr} within {PEER_DIAL_TIMEOUT:?}"))?
        .map_err(|e| format!("handshake with {addr} failed: {e}"))?;
    let (identified_tx, identified_rx) = oneshot::channel();
    let side = Side::Dialed { expected: peer.id, identified: identified_tx };
    tokio::spawn(connection::serve(Arc::clone(shared), conn.clone(), side));
    // Our Hello goes first: the accepting peer checks it before it sends its own.
    let identified = async {
        let stream = open_raft_stream(shared, &conn).await?;
        match tokio::time::timeout(PEER_HELLO_TIMEOUT, identified_rx).await {
            Ok(Ok(())) => Ok(stream),
            _ => Err(format!("{addr} sent no valid hello")),
        }
    };
    let stream = match identified.await {
        Ok(stream) => stream,
        Err(reason) => {
            if connection::closed_as_removed(&conn) {
                shared.inbox.removed_from_cluster(peer.id);
            }
            let reason = close_reason(&conn).unwrap_or(reason);
            conn.close(CLOSE_REFUSED.into(), b"no valid hello");
            return Err(reason);
        }
    };
    let pc = shared.identified(conn);
    peer.conn.send_replace(Some(pc.clone()));
    Ok((pc, stream))
}

/// Waits for an accepted connection newer than `after`; `None` if the peer is gone.
async fn wait_for_accepted(peer: &Peer, after: u64) -> Option<PeerConn> {
    let mut rx = peer.conn.subscribe();
    let found = rx.wait_for(|c| c.as_ref().is_some_and(|c| c.generation > after)).await.ok()?;
    found.clone()
}

/// Opens this node's Raft stream on `conn` and writes the Hello.
async fn open_raft_stream(shared: &Shared, conn: &quinn::Connection) -> Result<SendStream, String> {
    let mut stream = conn.open_uni().await.map_err(|e| format!("cannot open raft stream: {e}"))?;
    let hello = PeerFrame::Hello { cluster_id: shared.cluster_id, from: shared.node_id };
    write_frame(&mut stream, &hello).await.map_err(|e| format!("cannot send hello: {e}"))?;
    Ok(stream)
}

/// The peer's reason for closing `conn`, if it closed it.
fn close_reason(conn: &quinn::Connection) -> Option<String> {
    match conn.close_reason()? {
        quinn::ConnectionError::ApplicationClosed(close) => {
            Some(format!("peer closed the connection: {}", String::from_utf8_lossy(&close.reason)))
        }
        other => Some(other.to_string()),
    }
}

/// Moves queued messages onto the Raft stream until the connection fails or the queue
/// closes. Each flush takes everything queued and writes it as one frame, cut only where
/// the frame would exceed [`PEER_FRAME_BYTES_MAX`].
async fn drain(
    shared: &Shared,
    peer: &Peer,
    rx: &mut mpsc::Receiver<ShardMessage>,
    conn: &quinn::Connection,
    mut stream: SendStream,
) -> LinkEnd {
    let mut queued = Vec::with_capacity(PEER_FLUSH_MESSAGES_MAX);
    loop {
        let received = tokio::select! {
            n = rx.recv_many(&mut queued, PEER_FLUSH_MESSAGES_MAX) => n,
            e = conn.closed() => return LinkEnd::Failed(close_reason(conn).unwrap_or(e.to_string())),
        };
        if received == 0 {
            return LinkEnd::QueueClosed;
        }
        let mut batch = Vec::new();
        let mut batch_bytes = PEER_FRAME_OVERHEAD_BYTES;
        let mut pending = queued.drain(..);
        while let Some(msg) = pending.next() {
            let bytes = msg.encoded_bytes_max();
            if bytes + PEER_FRAME_OVERHEAD_BYTES > PEER_FRAME_BYTES_MAX {
                drop_too_large(shared, peer, bytes);
                continue;
            }
            if batch_bytes + bytes > PEER_FRAME_BYTES_MAX {
                let full = std::mem::take(&mut batch);
                batch_bytes = PEER_FRAME_OVERHEAD_BYTES;
                if let Err(reason) = flush(shared, &mut stream, full).await {
                    add(&shared.counters.messages_dropped_link_failed, 1 + pending.len() as u64);
                    return LinkEnd::Failed(reason);
                }
            }
            batch_bytes += bytes;
            batch.push(msg);
        }
        drop(pending);
        if !batch.is_empty()
            && let Err(reason) = flush(shared, &mut stream, batch).await
        {
            return LinkEnd::Failed(reason);
        }
    }
}

/// Writes one batch frame; on failure its messages count as dropped.
async fn flush(
    shared: &Shared,
    stream: &mut SendStream,
    batch: Vec<ShardMessage>,
) -> Result<(), String> {
    let count = batch.len() as u64;
    match write_frame(stream, &PeerFrame::Raft(batch)).await {
        Ok(()) => {
            add(&shared.counters.frames_sent, 1);
            add(&shared.counters.messages_sent, count);
            Ok(())
        }
        Err(reason) => {
            add(&shared.counters.messages_dropped_link_failed, count);
            Err(format!("raft stream write failed: {reason}"))
        }
    }
}

fn drop_too_large(shared: &Shared, peer: &Peer, bytes: usize) {
    add(&shared.counters.messages_dropped_too_large, 1);
    if let Some(suppressed) = peer.drop_warn.check() {
        let limit = PEER_FRAME_BYTES_MAX;
        tracing::warn!(
            peer = %peer.id,
            bytes,
            limit,
            suppressed,
            "dropping raft message larger than a peer frame"
        );
    }
}
