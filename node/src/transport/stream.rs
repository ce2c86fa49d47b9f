//! One request on one stream: read a bounded frame, call the handler, answer one frame.
//! Bad input is answered on the stream; only a vanished peer ends a stream unanswered.
//! A stream whose first frame opens a watch becomes a watch stream (`watch_stream.rs`).

use super::RequestHandler;
use super::limits::{READ_CHUNK_BYTES, REQUEST_READ_TIMEOUT};
use super::watch_stream::serve_watch_stream;
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError, decode_payload, frame_payload_len};
use atoll_proto::{AtollError, NativeRequest, NativeResponse, WatchRequest, encode_frame};
use quinn::{RecvStream, SendStream};
use std::sync::Arc;

/// What the first frame of a stream opened.
enum Opened {
    /// One request, one response.
    Single(NativeRequest),
    /// A watch stream, with its first request and the token it was opened with.
    Watch(WatchRequest, Option<String>),
}

/// Stream error code asking the client to stop sending a request that was refused unread.
const STOP_REFUSED: u32 = 1;
/// Stream error code: the request could not be answered (handler failed, or the client took
/// longer than [`REQUEST_READ_TIMEOUT`]).
const RESET_UNANSWERED: u32 = 2;

/// Why no request came out of a stream.
pub(super) enum Refusal {
    /// Bad input: answer with this error.
    Answer(AtollError),
    /// The peer is gone or stalled: nobody to answer.
    Abandon(String),
}

/// Serves one stream to completion.
pub(crate) async fn serve_stream(
    mut send: SendStream,
    mut recv: RecvStream,
    handler: Arc<dyn RequestHandler>,
    max_request_bytes: usize,
) {
    let read =
        tokio::time::timeout(REQUEST_READ_TIMEOUT, read_request(&mut recv, max_request_bytes))
            .await;
    let read =
        read.unwrap_or_else(|_| Err(Refusal::Abandon("request not complete in time".into())));
    let response = match read {
        Ok(Opened::Watch(first, token)) => {
            serve_watch_stream(send, recv, handler, first, token, max_request_bytes).await;
            return;
        }
        Ok(Opened::Single(req)) => match tokio::spawn(handler.handle(req)).await {
            Ok(response) => response,
            Err(e) => {
                tracing::error!(error = %e, "request handler failed");
                let _ = send.reset(RESET_UNANSWERED.into());
                return;
            }
        },
        Err(Refusal::Answer(error)) => {
            tracing::debug!(error = %error, "refusing request");
            // Refused without reading the rest: tell the client to stop sending it.
            let _ = recv.stop(STOP_REFUSED.into());
            NativeResponse::Error(error)
        }
        Err(Refusal::Abandon(reason)) => {
            tracing::debug!(reason = %reason, "abandoning stream");
            let _ = recv.stop(STOP_REFUSED.into());
            let _ = send.reset(RESET_UNANSWERED.into());
            return;
        }
    };
    write_response(&mut send, &response).await;
}

/// Reads one request frame: the header first, so an oversized or foreign frame is refused
/// before any of its payload is read, then at most the announced, checked length. A single
/// request must end the stream; a watch stream stays open.
async fn read_request(recv: &mut RecvStream, max_request_bytes: usize) -> Result<Opened, Refusal> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut header).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(got) => {
            malformed(FrameError::Truncated { got, need: FRAME_HEADER_BYTES })
        }
        quinn::ReadExactError::ReadError(e) => Refusal::Abandon(e.to_string()),
    })?;
    let len = frame_payload_len(&header, max_request_bytes).map_err(header_refusal)?;
    let payload = read_payload(recv, len).await?;
    match decode_payload(&payload).map_err(malformed)? {
        NativeRequest::Watch(first) => Ok(Opened::Watch(first, None)),
        // A watch stream opened with a token (decision D21): its creates are checked.
        NativeRequest::WithToken(t) if matches!(*t.request, NativeRequest::Watch(_)) => {
            match *t.request {
                NativeRequest::Watch(first) => Ok(Opened::Watch(first, Some(t.token))),
                _ => Err(Refusal::Answer(AtollError::Malformed {
                    reason: "a watch stream opens with a watch request".into(),
                })),
            }
        }
        req => {
            read_end(recv).await?;
            Ok(Opened::Single(req))
        }
    }
}

/// Reads exactly `len` payload bytes.
pub(super) async fn read_payload(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, Refusal> {
    let mut payload = Vec::with_capacity(len.min(READ_CHUNK_BYTES));
    while payload.len() < len {
        let want = (len - payload.len()).min(READ_CHUNK_BYTES);
        match recv.read_chunk(want, true).await {
            Ok(Some(chunk)) => payload.extend_from_slice(&chunk.bytes),
            Ok(None) => {
                return Err(malformed(FrameError::LengthMismatch {
                    expected: len,
                    got: payload.len(),
                }));
            }
            Err(e) => return Err(Refusal::Abandon(e.to_string())),
        }
    }
    Ok(payload)
}

/// Reads the end of the stream. The server acts on a single request only once its stream
/// is finished, which is what lets a client know that an unfinished request was not applied
/// and may be resent.
async fn read_end(recv: &mut RecvStream) -> Result<(), Refusal> {
    match recv.read_chunk(1, true).await {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(Refusal::Answer(AtollError::Malformed {
            reason: "bytes after the request frame; send one request per stream".into(),
        })),
        Err(e) => Err(Refusal::Abandon(e.to_string())),
    }
}

/// The answer to a request frame whose header was refused: the version and size errors
/// keep their own codes, anything else is malformed.
pub(super) fn header_refusal(e: FrameError) -> Refusal {
    match e {
        FrameError::UnsupportedVersion { version } => {
            Refusal::Answer(AtollError::UnsupportedVersion { version })
        }
        FrameError::TooLarge { len, max } => Refusal::Answer(AtollError::RequestTooLarge {
            request_bytes: len as u64,
            limit_bytes: max as u64,
        }),
        other => malformed(other),
    }
}

pub(super) fn malformed(e: FrameError) -> Refusal {
    Refusal::Answer(AtollError::Malformed { reason: e.to_string() })
}

/// Writes one response frame and finishes the stream.
async fn write_response(send: &mut SendStream, response: &NativeResponse) {
    if write_frame(send, response).await {
        let _ = send.finish();
    }
}

/// Writes one response frame; `false` when the stream is unusable (the client is gone or
/// the stream was reset).
pub(super) async fn write_frame(send: &mut SendStream, response: &NativeResponse) -> bool {
    let frame = encode_frame(response).or_else(|e| {
        tracing::warn!(error = %e, "response does not encode");
        encode_frame(&NativeResponse::Error(AtollError::Malformed {
            reason: format!(
                "the response does not fit in a frame ({e}); ask for less, e.g. with a limit"
            ),
        }))
    });
    let Ok(frame) = frame else {
        let _ = send.reset(RESET_UNANSWERED.into());
        return false;
    };
    if let Err(e) = send.write_all(&frame).await {
        tracing::debug!(error = %e, "client went away before the response");
        return false;
    }
    true
}
