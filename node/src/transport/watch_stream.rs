//! A watch stream: after the opening frame, a reader task decodes the client's
//! `WatchRequest` frames into a bounded queue, the handler serves them, and this task writes
//! the handler's responses in order. The stream ends when the client ends its side (or sends
//! a bad frame, answered with one error) or when the client is gone.

use super::limits::{WATCH_REQUESTS_QUEUED_MAX, WATCH_RESPONSES_QUEUED_MAX};
use super::stream::{Refusal, header_refusal, malformed, read_payload, write_frame};
use super::{RequestHandler, WatchStreamIo};
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError, decode_payload, frame_payload_len};
use atoll_proto::{NativeResponse, WatchRequest};
use quinn::{RecvStream, SendStream};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Serves a watch stream opened by `first` until it ends.
pub(super) async fn serve_watch_stream(
    mut send: SendStream,
    recv: RecvStream,
    handler: Arc<dyn RequestHandler>,
    first: WatchRequest,
    token: Option<String>,
    max_request_bytes: usize,
) {
    let (requests_tx, requests) = mpsc::channel(WATCH_REQUESTS_QUEUED_MAX);
    let (responses, mut responses_rx) = mpsc::channel(WATCH_RESPONSES_QUEUED_MAX);
    // The queue is empty: the opening request always fits.
    let _ = requests_tx.try_send(first);
    let reader =
        tokio::spawn(read_requests(recv, requests_tx, responses.clone(), max_request_bytes));
    let caller = crate::auth::Caller::Client { token };
    let serving = tokio::spawn(handler.watch(WatchStreamIo { requests, responses, caller }));
    // The handler and the reader hold the only senders: the loop ends once both are done.
    while let Some(response) = responses_rx.recv().await {
        if !write_frame(&mut send, &response).await {
            break;
        }
    }
    // Dropping the handler's future drops its watchers, which leave their hubs.
    serving.abort();
    reader.abort();
    let _ = send.finish();
}

/// Reads request frames until the client ends its side of the stream; a bad frame is
/// answered with one error and ends the stream.
async fn read_requests(
    mut recv: RecvStream,
    requests: mpsc::Sender<WatchRequest>,
    responses: mpsc::Sender<NativeResponse>,
    max_request_bytes: usize,
) {
    loop {
        match read_one(&mut recv, max_request_bytes).await {
            Ok(Some(req)) => {
                if requests.send(req).await.is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(Refusal::Answer(e)) => {
                tracing::debug!(error = %e, "refusing watch request");
                let _ = recv.stop(0u32.into());
                let _ = responses.send(NativeResponse::Error(e)).await;
                return;
            }
            Err(Refusal::Abandon(reason)) => {
                tracing::debug!(reason = %reason, "watch stream abandoned by the client");
                return;
            }
        }
    }
}

/// One request frame, or `None` at a clean end of the stream (between frames).
async fn read_one(
    recv: &mut RecvStream,
    max_request_bytes: usize,
) -> Result<Option<WatchRequest>, Refusal> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    match recv.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(got)) => {
            return Err(malformed(FrameError::Truncated { got, need: FRAME_HEADER_BYTES }));
        }
        Err(quinn::ReadExactError::ReadError(e)) => return Err(Refusal::Abandon(e.to_string())),
    }
    let len = frame_payload_len(&header, max_request_bytes).map_err(header_refusal)?;
    let payload = read_payload(recv, len).await?;
    decode_payload(&payload).map(Some).map_err(malformed)
}
