//! Errors of the QUIC transport, each one line saying what failed and where.

use crate::certs::CertError;
use std::net::SocketAddr;

/// Why the QUIC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}/udp: {reason}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why, e.g. "address in use".
        reason: String,
    },
    /// The certificates do not make a TLS configuration.
    #[error("TLS setup failed: {0}")]
    Tls(#[from] CertError),
    /// A setting is out of range.
    #[error("invalid transport configuration: {reason}")]
    Config {
        /// What to fix.
        reason: String,
    },
}

/// Short, stable wording for the socket errors operators meet.
pub(crate) fn describe_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address in use".to_string(),
        std::io::ErrorKind::AddrNotAvailable => "address not available on this host".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}
