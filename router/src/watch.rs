//! The client side of a watch stream: one bidirectional QUIC stream opened with a
//! `NativeRequest::Watch` frame, then [`WatchRequest`] frames out and watch responses in,
//! many watches at once (client-chosen watch IDs, as etcd 3.4+).
//!
//! A watch stream is not retried: when it fails the caller learns it from
//! [`WatchReceiver::recv`] and may open a new one from the revision after the last event it
//! saw, as etcd's clients do.

use crate::error::ClientError;
use atoll_proto::frame::{FRAME_HEADER_BYTES, FrameError, decode_payload, frame_payload_len};
use atoll_proto::{
    NativeRequest, NativeResponse, WatchCancelRequest, WatchCreateRequest, WatchProgressRequest,
    WatchRequest, WatchResponse, encode_frame,
};
use quinn::{RecvStream, SendStream};

/// The sending half of a watch stream: creates, cancels, progress requests.
pub struct WatchSender {
    send: SendStream,
    endpoint: String,
}

/// The receiving half of a watch stream: responses in the order the server sent them.
pub struct WatchReceiver {
    recv: RecvStream,
    endpoint: String,
    max_response_bytes: usize,
}

/// Opens a watch stream on `conn` with `first` as its opening request.
pub(crate) async fn open(
    conn: &quinn::Connection,
    endpoint: &str,
    first: WatchRequest,
    token: Option<String>,
    max_response_bytes: usize,
) -> Result<(WatchSender, WatchReceiver), ClientError> {
    let (send, recv) =
        conn.open_bi().await.map_err(|e| transport(endpoint, "opening a stream", e))?;
    let mut sender = WatchSender { send, endpoint: endpoint.to_string() };
    let opening = match token {
        // A stream opened with a token: its creates are checked (decision D21).
        Some(token) => NativeRequest::WithToken(atoll_proto::auth::TokenRequest {
            token,
            request: Box::new(NativeRequest::Watch(first)),
        }),
        None => NativeRequest::Watch(first),
    };
    sender.write(encode_frame(&opening)).await?;
    let receiver = WatchReceiver { recv, endpoint: endpoint.to_string(), max_response_bytes };
    Ok((sender, receiver))
}

impl WatchSender {
    /// Sends one request on the stream.
    pub async fn send(&mut self, req: WatchRequest) -> Result<(), ClientError> {
        self.write(encode_frame(&req)).await
    }

    /// Starts another watch on this stream.
    pub async fn create(&mut self, req: WatchCreateRequest) -> Result<(), ClientError> {
        self.send(WatchRequest::Create(req)).await
    }

    /// Cancels watch `watch_id`; its last response says `canceled`.
    pub async fn cancel(&mut self, watch_id: i64) -> Result<(), ClientError> {
        self.send(WatchRequest::Cancel(WatchCancelRequest { watch_id })).await
    }

    /// Asks for a progress notification for the whole stream (answered with watch ID -1).
    pub async fn request_progress(&mut self) -> Result<(), ClientError> {
        self.send(WatchRequest::Progress(WatchProgressRequest {})).await
    }

    /// Ends the client's side: the server ends every watch of the stream and then the stream.
    pub fn finish(&mut self) {
        let _ = self.send.finish();
    }

    async fn write(&mut self, frame: Result<Vec<u8>, FrameError>) -> Result<(), ClientError> {
        let frame = frame.map_err(|e| ClientError::Protocol {
            reason: format!("watch request does not encode: {e}"),
        })?;
        self.send.write_all(&frame).await.map_err(|e| transport(&self.endpoint, "sending", e))
    }
}

impl WatchReceiver {
    /// The next response; `None` once the server ended the stream. An error answer from the
    /// server becomes [`ClientError::Server`] and ends the stream.
    pub async fn recv(&mut self) -> Result<Option<WatchResponse>, ClientError> {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        match self.recv.read_exact(&mut header).await {
            Ok(()) => {}
            Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
            Err(e) => return Err(transport(&self.endpoint, "reading a watch response", e)),
        }
        let limit = self.max_response_bytes;
        let len = frame_payload_len(&header, limit).map_err(|e| self.protocol(e))?;
        let mut payload = vec![0u8; len];
        self.recv
            .read_exact(&mut payload)
            .await
            .map_err(|e| transport(&self.endpoint, "reading a watch response", e))?;
        match decode_payload::<NativeResponse>(&payload).map_err(|e| self.protocol(e))? {
            NativeResponse::Watch(response) => Ok(Some(response)),
            NativeResponse::Error(e) => Err(ClientError::Server(e)),
            _ => Err(self.protocol("a watch stream carried a response of another kind")),
        }
    }

    fn protocol(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol { reason: format!("watch stream from {}: {e}", self.endpoint) }
    }
}

fn transport(endpoint: &str, what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport { reason: format!("{what} (endpoint {endpoint}): {e}") }
}
