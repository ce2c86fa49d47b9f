//! The QUIC endpoint that serves native clients (DESIGN §8): ALPN `atoll-client/1`, one
//! request frame and one response frame per bidirectional stream. Peers will share the
//! endpoint under `atoll-peer/1`; until they are served, other ALPNs are refused.
//!
//! This module only moves bytes: what a request means is the [`RequestHandler`]'s business.
//! Bad input on a stream gets an error answer on that stream and never affects the
//! connection or the server.

mod error;
pub mod limits;
pub mod peer;
mod server;
mod stream;

pub use error::TransportError;
pub use server::{QuicServer, QuicServerConfig};

use atoll_proto::{NativeRequest, NativeResponse};
use std::future::Future;
use std::pin::Pin;

/// Answers native requests. The transport calls it once per request, concurrently, each call
/// in its own task.
pub trait RequestHandler: Send + Sync + 'static {
    /// Handles one request. Errors are answered as `NativeResponse::Error`.
    fn handle(
        &self,
        req: NativeRequest,
    ) -> Pin<Box<dyn Future<Output = NativeResponse> + Send + 'static>>;
}
