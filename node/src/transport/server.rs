//! The accept loop: one task per connection, one task per stream.

use super::RequestHandler;
use super::error::{TransportError, describe_io_error};
use super::limits::{CONNECTIONS_MAX, IDLE_TIMEOUT, STREAMS_PER_CONNECTION_MAX};
use super::stream::serve_stream;
use crate::certs::TlsMaterial;
use atoll_proto::limits::FRAME_BYTES_MAX;
use atoll_router::tls::ALPN_CLIENT;
use quinn::crypto::rustls::{HandshakeData, QuicServerConfig as RustlsQuicConfig};
use std::net::SocketAddr;
use std::sync::Arc;

/// Application close code: the server is shutting down.
const CLOSE_SHUTDOWN: u32 = 0;
/// Application close code: the connection negotiated an ALPN this server does not serve.
const CLOSE_UNKNOWN_ALPN: u32 = 1;

/// Where and how the QUIC server listens.
#[derive(Clone, Debug)]
pub struct QuicServerConfig {
    /// The UDP address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The node's certificates.
    pub tls: TlsMaterial,
    /// Largest request payload accepted (etcd's `--max-request-bytes`); larger requests are
    /// answered "etcdserver: request is too large" without being read.
    pub max_request_bytes: usize,
}

/// A bound QUIC server. Clones share the endpoint, so one clone can [`QuicServer::run`]
/// while another [`QuicServer::close`]s it.
#[derive(Clone)]
pub struct QuicServer {
    endpoint: quinn::Endpoint,
    handler: Arc<dyn RequestHandler>,
    max_request_bytes: usize,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for QuicServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicServer").field("local_addr", &self.local_addr).finish()
    }
}

impl QuicServer {
    /// Binds the UDP socket and prepares TLS. Must be called inside a tokio runtime.
    pub fn bind(
        cfg: QuicServerConfig,
        handler: Arc<dyn RequestHandler>,
    ) -> Result<QuicServer, TransportError> {
        if cfg.max_request_bytes == 0 || cfg.max_request_bytes > FRAME_BYTES_MAX {
            return Err(TransportError::Config {
                reason: format!(
                    "max-request-bytes is {}; it must be between 1 and {FRAME_BYTES_MAX}",
                    cfg.max_request_bytes
                ),
            });
        }
        let tls = cfg.tls.server_config(&[ALPN_CLIENT])?;
        let quic = RustlsQuicConfig::try_from(tls)
            .map_err(|e| TransportError::Config { reason: format!("TLS for QUIC: {e}") })?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        server_config.transport_config(Arc::new(transport_config()?));
        let bind_error = |e: std::io::Error| TransportError::Bind {
            addr: cfg.listen,
            reason: describe_io_error(&e),
        };
        let endpoint = quinn::Endpoint::server(server_config, cfg.listen).map_err(bind_error)?;
        let local_addr = endpoint.local_addr().map_err(bind_error)?;
        tracing::info!(addr = %local_addr, "quic server listening");
        Ok(QuicServer { endpoint, handler, max_request_bytes: cfg.max_request_bytes, local_addr })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Accepts connections until [`QuicServer::close`] is called.
    pub async fn run(self) {
        while let Some(incoming) = self.endpoint.accept().await {
            if self.endpoint.open_connections() >= CONNECTIONS_MAX {
                let remote = incoming.remote_address();
                let limit = CONNECTIONS_MAX;
                tracing::warn!(remote = %remote, limit, "refusing connection over limit");
                incoming.refuse();
                continue;
            }
            let handler = Arc::clone(&self.handler);
            tokio::spawn(serve_connection(incoming, handler, self.max_request_bytes));
        }
        tracing::info!(addr = %self.local_addr, "quic server stopped");
    }

    /// Stops accepting and closes every connection; requests in flight are abandoned.
    pub fn close(&self) {
        self.endpoint.close(CLOSE_SHUTDOWN.into(), b"server shutting down");
    }
}

fn transport_config() -> Result<quinn::TransportConfig, TransportError> {
    let idle = quinn::IdleTimeout::try_from(IDLE_TIMEOUT)
        .map_err(|e| TransportError::Config { reason: format!("idle timeout: {e}") })?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(STREAMS_PER_CONNECTION_MAX.into())
        .max_concurrent_uni_streams(0u32.into())
        .max_idle_timeout(Some(idle));
    Ok(transport)
}

async fn serve_connection(
    incoming: quinn::Incoming,
    handler: Arc<dyn RequestHandler>,
    max_request_bytes: usize,
) {
    let remote = incoming.remote_address();
    let conn = match incoming.await {
        Ok(conn) => conn,
        Err(e) => {
            tracing::debug!(remote = %remote, error = %e, "handshake failed");
            return;
        }
    };
    let alpn = conn
        .handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol);
    if alpn.as_deref() != Some(ALPN_CLIENT) {
        tracing::debug!(remote = %remote, "closing connection with unknown alpn");
        conn.close(CLOSE_UNKNOWN_ALPN.into(), b"unknown application protocol");
        return;
    }
    tracing::debug!(remote = %remote, "client connected");
    loop {
        match conn.accept_bi().await {
            Ok((send, recv)) => {
                tokio::spawn(serve_stream(send, recv, Arc::clone(&handler), max_request_bytes));
            }
            Err(e) => {
                tracing::debug!(remote = %remote, reason = %e, "client disconnected");
                return;
            }
        }
    }
}
