//! The client's configuration: where to connect, whom to trust, and its time and size limits.

use crate::limits::{
    DIAL_TIMEOUT_DEFAULT, MAX_RESPONSE_BYTES_DEFAULT, REQUEST_TIMEOUT_DEFAULT, RETRIES_MAX_DEFAULT,
};
use std::time::Duration;

/// Which server certificates the client accepts.
#[derive(Clone, PartialEq, Eq)]
pub enum Trust {
    /// Certificates that chain to one of these CA certificates (DER).
    CaDer(Vec<Vec<u8>>),
    /// Any certificate (handshake signatures are still checked). For development only: it
    /// gives up protection against an impostor server.
    InsecureSkipVerify,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::CaDer(cas) => write!(f, "CaDer({} certificates)", cas.len()),
            Trust::InsecureSkipVerify => f.write_str("InsecureSkipVerify"),
        }
    }
}

/// How a [`crate::Client`] connects and how long it waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// Nodes to connect to, tried in order: `"127.0.0.1:2379"`, `"localhost:2379"`,
    /// `"https://127.0.0.1:2379"`, `"[::1]:2379"`. Without a port,
    /// [`crate::limits::NATIVE_PORT_DEFAULT`] is used.
    pub endpoints: Vec<String>,
    /// Which server certificates to accept.
    pub trust: Trust,
    /// The name the server certificate must carry. Default: the endpoint's host if it is a
    /// DNS name, else `"localhost"` (development certificates carry it).
    pub server_name: Option<String>,
    /// How long dialing one endpoint may take.
    pub dial_timeout: Duration,
    /// How long one request may take, retries included.
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub retries_max: u32,
    /// Largest response payload accepted.
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// A configuration with the default limits (5 s dial, 30 s per request, 5 retries,
    /// 64 MiB responses).
    pub fn new(endpoints: Vec<String>, trust: Trust) -> Self {
        ClientConfig {
            endpoints,
            trust,
            server_name: None,
            dial_timeout: DIAL_TIMEOUT_DEFAULT,
            request_timeout: REQUEST_TIMEOUT_DEFAULT,
            retries_max: RETRIES_MAX_DEFAULT,
            max_response_bytes: MAX_RESPONSE_BYTES_DEFAULT,
        }
    }
}
