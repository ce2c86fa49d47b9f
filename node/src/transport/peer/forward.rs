//! Forwarded-request streams (DESIGN §6, §8): a node that cannot serve a client request
//! itself sends it to the node leading the request's shard on a bidirectional stream of its
//! own, on the one connection of the node pair, whichever side dialed it. The sender writes
//! one [`PeerFrame::ForwardRequest`] and finishes its half; the receiver acts only on a
//! finished stream (so a sender whose stream failed mid-request knows it was not acted on)
//! and answers one [`PeerFrame::ForwardResponse`]. Bad input is answered with an error
//! response; it never closes the connection, which also carries Raft.

use super::error::PeerForwardError;
use super::frames::{ReadError, read_frame};
use super::limits::{
    FORWARD_CONNECT_TIMEOUT, FORWARD_STREAMS_PER_CONNECTION_MAX, FORWARD_TIMEOUT,
    PEER_STREAM_FIRST_FRAME_TIMEOUT,
};
use super::sender::{Peer, PeerConn, PeerSender, Shared};
use super::stats::add;
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError};
use atoll_proto::limits::FRAME_BYTES_MAX;
use atoll_proto::peer::{PEER_FRAME_BYTES_MAX, PeerFrame};
use atoll_proto::{AtollError, NativeRequest, NativeResponse, NodeId, encode_frame};
use quinn::{RecvStream, SendStream};
use std::future::Future;
use std::sync::Arc;

/// Largest answer a forward reads or sends: a peer frame.
const FORWARD_RESPONSE_BYTES_MAX: usize = PEER_FRAME_BYTES_MAX;
/// Stream error code: the receiver refused the stream's input and stops reading it.
const STOP_REFUSED: u32 = 1;
/// Stream error code: the receiver abandons a stream whose sender stalled.
const RESET_ABANDONED: u32 = 2;

impl PeerSender {
    /// Forwards `req` to node `to` on a stream of its own and returns `to`'s answer (which
    /// may itself be a [`NativeResponse::Error`]). Fails without sending when `to` is not a
    /// peer, has had no connection for [`FORWARD_CONNECT_TIMEOUT`], already has
    /// [`FORWARD_STREAMS_PER_CONNECTION_MAX`] forwards in flight, or `req` is over the
    /// forward limit ([`super::PeerTransport::set_max_request_bytes`]); fails after sending
    /// when the stream breaks or no answer comes within [`FORWARD_TIMEOUT`]. The future owns
    /// what it needs, so it can be boxed and awaited anywhere.
    pub fn forward(
        &self,
        to: NodeId,
        req: NativeRequest,
    ) -> impl Future<Output = Result<NativeResponse, PeerForwardError>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move {
            let result = forward(&shared, to, req).await;
            match &result {
                Ok(_) => add(&shared.counters.forwards_sent, 1),
                Err(e) => {
                    add(&shared.counters.forwards_failed, 1);
                    tracing::debug!(peer = %to, reason = %e, "forward failed");
                }
            }
            result
        }
    }
}

async fn forward(
    shared: &Shared,
    to: NodeId,
    req: NativeRequest,
) -> Result<NativeResponse, PeerForwardError> {
    if shared.is_closed() {
        return Err(PeerForwardError::Closed);
    }
    let peer = shared.peer(to).ok_or(PeerForwardError::UnknownPeer { peer: to })?;
    let frame = encode_request(shared, req)?;
    let _permit = Arc::clone(&peer.forward_permits).try_acquire_owned().map_err(|_| {
        PeerForwardError::Busy { peer: to, limit: FORWARD_STREAMS_PER_CONNECTION_MAX }
    })?;
    let pc = wait_for_connection(&peer).await?;
    tokio::time::timeout(FORWARD_TIMEOUT, exchange(&pc.conn, to, &frame))
        .await
        .unwrap_or(Err(PeerForwardError::TimedOut { peer: to, waited: FORWARD_TIMEOUT }))
}

/// Encodes the request frame, refusing it above the forward limit before anything is sent.
fn encode_request(shared: &Shared, req: NativeRequest) -> Result<Vec<u8>, PeerForwardError> {
    let limit = shared.forward_request_bytes_max();
    let too_large = |request_bytes: usize| PeerForwardError::TooLarge {
        request_bytes: request_bytes as u64,
        limit_bytes: limit as u64,
    };
    // The encoder refuses only messages above the codec's ceiling.
    let frame = encode_frame(&PeerFrame::ForwardRequest(req))
        .map_err(|_| too_large(FRAME_BYTES_MAX.saturating_add(1)))?;
    let payload_bytes = frame.len() - FRAME_HEADER_BYTES;
    if payload_bytes > limit {
        return Err(too_large(payload_bytes));
    }
    Ok(frame)
}

async fn wait_for_connection(peer: &Peer) -> Result<PeerConn, PeerForwardError> {
    let not_connected =
        || PeerForwardError::NotConnected { peer: peer.id, waited: FORWARD_CONNECT_TIMEOUT };
    let mut rx = peer.conn.subscribe();
    let waited = tokio::time::timeout(FORWARD_CONNECT_TIMEOUT, rx.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(current)) => current.clone().ok_or_else(not_connected),
        _ => Err(not_connected()),
    }
}

/// Writes the request frame, finishes the stream and reads the answer.
async fn exchange(
    conn: &quinn::Connection,
    to: NodeId,
    frame: &[u8],
) -> Result<NativeResponse, PeerForwardError> {
    let stream_error = |reason: String, request_sent: bool| PeerForwardError::Stream {
        peer: to,
        reason,
        request_sent,
    };
    let (mut send, mut recv) =
        conn.open_bi().await.map_err(|e| stream_error(format!("cannot open: {e}"), false))?;
    let written = match send.write_all(frame).await {
        Ok(()) => send.finish().map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let answer = read_answer(&mut recv).await;
    match (written, answer) {
        // Even a request refused unread is answered, and the answer says why.
        (_, Ok(response)) => Ok(response),
        // Unfinished streams are never acted on: the request was not applied.
        (Err(reason), Err(_)) => Err(stream_error(format!("cannot send: {reason}"), false)),
        (Ok(()), Err(reason)) => Err(stream_error(reason, true)),
    }
}

async fn read_answer(recv: &mut RecvStream) -> Result<NativeResponse, String> {
    match read_frame(recv, FORWARD_RESPONSE_BYTES_MAX).await {
        Ok(Some(PeerFrame::ForwardResponse(response))) => Ok(response),
        Ok(Some(_)) => Err("unexpected frame instead of an answer".into()),
        Ok(None) => Err("stream ended without an answer".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Serves a forwarded request whose frame was read from an identified peer: waits for the
/// end of the sender's half, hands the request to the inbox and answers its response.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    from: NodeId,
    req: NativeRequest,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    // Act only on a finished stream: a sender whose stream failed before finishing it can
    // then tell its client that the request was not applied.
    let end = tokio::time::timeout(PEER_STREAM_FIRST_FRAME_TIMEOUT, recv.read_chunk(1, true)).await;
    match end {
        Ok(Ok(None)) => {}
        Ok(Ok(Some(_))) => {
            let reason = "bytes after the forwarded request; send one request per stream";
            return refuse(&shared, from, send, recv, malformed(reason)).await;
        }
        Ok(Err(e)) => {
            tracing::debug!(peer = %from, reason = %e, "forward stream failed before its end");
            return;
        }
        Err(_) => return abandon(from, send, recv),
    }
    add(&shared.counters.forwards_served, 1);
    let response = shared.inbox.serve_forwarded(from, req).await;
    answer(&mut send, from, response).await;
}

/// Answers a stream whose input was bad with `error`, without reading the rest.
pub(crate) async fn refuse(
    shared: &Shared,
    from: NodeId,
    mut send: SendStream,
    mut recv: RecvStream,
    error: AtollError,
) {
    add(&shared.counters.forwards_refused, 1);
    tracing::warn!(peer = %from, error = %error, "refusing a peer stream with bad input");
    let _ = recv.stop(STOP_REFUSED.into());
    answer(&mut send, from, NativeResponse::Error(error)).await;
}

/// Gives up on a stream whose sender stalled.
pub(crate) fn abandon(from: NodeId, mut send: SendStream, mut recv: RecvStream) {
    tracing::debug!(
        peer = %from,
        timeout = ?PEER_STREAM_FIRST_FRAME_TIMEOUT,
        "abandoning a stalled peer stream"
    );
    let _ = recv.stop(STOP_REFUSED.into());
    let _ = send.reset(RESET_ABANDONED.into());
}

/// The error answered for a first frame that could not be read.
pub(crate) fn read_error(e: ReadError) -> AtollError {
    match e {
        ReadError::Protocol(FrameError::TooLarge { len, max }) => {
            AtollError::RequestTooLarge { request_bytes: len as u64, limit_bytes: max as u64 }
        }
        ReadError::Protocol(FrameError::UnsupportedVersion { version }) => {
            AtollError::UnsupportedVersion { version }
        }
        other => AtollError::Malformed { reason: other.to_string() },
    }
}

pub(crate) fn malformed(reason: &str) -> AtollError {
    AtollError::Malformed { reason: reason.into() }
}

async fn answer(send: &mut SendStream, to: NodeId, response: NativeResponse) {
    let frame = match encode_frame(&PeerFrame::ForwardResponse(response)) {
        Ok(frame) if frame.len() - FRAME_HEADER_BYTES <= FORWARD_RESPONSE_BYTES_MAX => Ok(frame),
        other => {
            let size = other.map_or_else(|e| e.to_string(), |f| format!("{} bytes", f.len()));
            tracing::warn!(peer = %to, size = %size, "forwarded answer does not fit a peer frame");
            let reason = format!(
                "the answer does not fit in a peer frame ({size}, limit \
                 {FORWARD_RESPONSE_BYTES_MAX} bytes); ask for less, e.g. with a limit"
            );
            encode_frame(&PeerFrame::ForwardResponse(NativeResponse::Error(malformed(&reason))))
        }
    };
    let Ok(frame) = frame else {
        let _ = send.reset(RESET_ABANDONED.into());
        return;
    };
    if let Err(e) = send.write_all(&frame).await {
        tracing::debug!(peer = %to, reason = %e, "forwarding peer went away before the answer");
        return;
    }
    let _ = send.finish();
}
