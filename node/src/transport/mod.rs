//! The QUIC endpoint that serves native clients (DESIGN §8): ALPN `atoll-client/1`, one
//! request frame and one response frame per bidirectional stream, except watch streams,
//! which open with a `NativeRequest::Watch` frame and then carry `WatchRequest` frames one
//! way and `NativeResponse::Watch` frames the other until either side ends them. Peers
//! have their own endpoint on the peer URL ([`peer`], decision D9); any other ALPN is refused
//! here.
//!
//! This module only moves bytes: what a request means is the [`RequestHandler`]'s business.
//! Bad input on a stream gets an error answer on that stream and never affects the
//! connection or the server.

mod error;
pub mod limits;
pub mod peer;
mod server;
mod stream;
mod watch_stream;

pub use error::TransportError;
pub use server::{QuicServer, QuicServerConfig};

use atoll_proto::{AtollError, NativeRequest, NativeResponse, WatchRequest};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::mpsc;

/// The two directions of an open watch stream as a handler sees them. Both are bounded
/// ([`limits::WATCH_REQUESTS_QUEUED_MAX`], [`limits::WATCH_RESPONSES_QUEUED_MAX`]).
pub struct WatchStreamIo {
    /// Requests in the order the client sent them, the opening one first; closed when the
    /// client ends its side of the stream or sends a bad frame.
    pub requests: mpsc::Receiver<WatchRequest>,
    /// Responses, written to the client in this order. Closed when the client is gone.
    pub responses: mpsc::Sender<NativeResponse>,
    /// Who opened the stream: its creates are checked while auth is enabled (decision D21).
    pub caller: crate::auth::Caller,
}

/// Answers native requests. The transport calls it once per request, concurrently, each call
/// in its own task.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request. Errors are answered as `NativeResponse::Error`.
    fn handle(
        &self,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>>;

    /// Serves one watch stream until its requests end or its client is gone. A handler that
    /// serves no watches keeps this default, which answers one error and ends the stream.
    fn watch(&self, io: WatchStreamIo) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(async move {
            let reason = "this server does not serve watch streams".to_string();
            let _ =
                io.responses.send(NativeResponse::Error(AtollError::Malformed { reason })).await;
        })
    }
}
