//! One request on one stream: read a bounded frame, call the handler, answer one frame.
//! Bad input is answered on the stream; only a vanished peer ends a stream unanswered.

use super::RequestHandler;
use super::limits::{READ_CHUNK_BYTES, REQUEST_READ_TIMEOUT};
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError, decode_payload, frame_payload_len};
use atoll_proto::{AtollError, NativeRequest, NativeResponse, encode_frame};
use quinn::{RecvStream, SendStream};
use std::sync::Arc;

/// Stream error code asking the client to stop sending a request that was refused unread.
const STOP_REFUSED: u32 = 1;
/// Stream error code: the request could not be answered (handler failed, or the client took
/// longer than [`REQUEST_READ_TIMEOUT`]).
const RESET_UNANSWERED: u32 = 2;

/// Why no request came out of a stream.
enum Refusal {
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
        Ok(req) => match tokio::spawn(handler.handle(req)).await {
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
/// before any of its payload is read, then at most the announced, checked length.
async fn read_request(
    recv: &mut RecvStream,
    max_request_bytes: usize,
) -> Result<NativeRequest, Refusal> {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    recv.read_exact(&mut header).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(got) => {
            malformed(FrameError::Truncated { got, need: FRAME_HEADER_BYTES })
        }
        quinn::ReadExactError::ReadError(e) => Refusal::Abandon(e.to_string()),
    })?;
    let len = frame_payload_len(&header, max_request_bytes).map_err(|e| match e {
        FrameError::UnsupportedVersion { version } => {
            Refusal::Answer(AtollError::UnsupportedVersion { version })
        }
        FrameError::TooLarge { len, max } => Refusal::Answer(AtollError::RequestTooLarge {
            request_bytes: len as u64,
            limit_bytes: max as u64,
        }),
        other => malformed(other),
    })?;
    let payload = read_payload(recv, len).await?;
    decode_payload(&payload).map_err(malformed)
}

/// Reads exactly `len` payload bytes and the end of the stream. The server acts only on a
/// finished stream, which is what lets a client know that an unfinished request was not
/// applied and may be resent.
async fn read_payload(recv: &mut RecvStream, len: usize) -> Result<Vec<u8>, Refusal> {
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
    match recv.read_chunk(1, true).await {
        Ok(None) => Ok(payload),
        Ok(Some(_)) => Err(Refusal::Answer(AtollError::Malformed {
            reason: "bytes after the request frame; send one request per stream".into(),
        })),
        Err(e) => Err(Refusal::Abandon(e.to_string())),
    }
}

fn malformed(e: FrameError) -> Refusal {
    Refusal::Answer(AtollError::Malformed { reason: e.to_string() })
}

async fn write_response(send: &mut SendStream, response: &NativeResponse) {
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
        return;
    };
    if let Err(e) = send.write_all(&frame).await {
        tracing::debug!(error = %e, "client went away before the response");
        return;
    }
    let _ = send.finish();
}
