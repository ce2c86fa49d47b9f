//! One cached QUIC connection per endpoint: shared by every request to that endpoint, and
//! redialed on the next request after it closes.

use crate::endpoint::Target;
use crate::error::ClientError;
use quinn::{Connection, Endpoint};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::Mutex;

/// The client's local QUIC endpoints: one per address family, so an IPv4 dial never depends
/// on a dual-stack socket (some hosts forbid them) and IPv6 works where it exists.
pub(crate) struct LocalEndpoints {
    v4: Option<Endpoint>,
    v6: Option<Endpoint>,
}

impl LocalEndpoints {
    /// Binds an ephemeral UDP port per family; an error only if neither family works.
    pub(crate) fn bind(config: quinn::ClientConfig) -> Result<LocalEndpoints, ClientError> {
        let bind = |addr: &str| -> Result<Endpoint, String> {
            let addr: SocketAddr = addr.parse().map_err(|e| format!("{e}"))?;
            let mut endpoint = Endpoint::client(addr).map_err(|e| e.to_string())?;
            endpoint.set_default_client_config(config.clone());
            Ok(endpoint)
        };
        let v4 = bind("0.0.0.0:0");
        let v6 = bind("[::]:0");
        match (v4, v6) {
            (Err(e4), Err(e6)) => Err(ClientError::Transport {
                reason: format!("cannot open a UDP socket: ipv4: {e4}; ipv6: {e6}"),
            }),
            (v4, v6) => Ok(LocalEndpoints { v4: v4.ok(), v6: v6.ok() }),
        }
    }

    fn for_addr(&self, addr: &SocketAddr) -> Option<&Endpoint> {
        if addr.is_ipv4() { self.v4.as_ref().or(self.v6.as_ref()) } else { self.v6.as_ref() }
    }

    /// Closes both endpoints; in-flight requests fail.
    pub(crate) fn close(&self, reason: &[u8]) {
        for endpoint in self.v4.iter().chain(self.v6.iter()) {
            endpoint.close(0u32.into(), reason);
        }
    }
}

/// An endpoint and its cached connection.
pub(crate) struct EndpointSlot {
    pub(crate) target: Target,
    connection: Mutex<Option<Connection>>,
}

impl EndpointSlot {
    pub(crate) fn new(target: Target) -> EndpointSlot {
        EndpointSlot { target, connection: Mutex::new(None) }
    }

    /// The open connection, dialing a new one if there is none or it closed. Callers that
    /// arrive during a dial wait for it instead of dialing too.
    pub(crate) async fn connection(
        &self,
        local: &LocalEndpoints,
        dial_timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let mut cached = self.connection.lock().await;
        if let Some(conn) = cached.as_ref().filter(|c| c.close_reason().is_none()) {
            return Ok(conn.clone());
        }
        let conn = self.dial(local, dial_timeout).await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Dials each resolved address in turn until one answers.
    async fn dial(
        &self,
        local: &LocalEndpoints,
        timeout: Duration,
    ) -> Result<Connection, ClientError> {
        let target = &self.target;
        let addrs = target.resolve().await?;
        let mut reasons = Vec::new();
        for addr in addrs.iter().copied() {
            let Some(endpoint) = local.for_addr(&addr) else {
                reasons.push(format!("{addr}: no local socket of that address family"));
                continue;
            };
            match dial_addr(endpoint, addr, &target.server_name, timeout).await {
                Ok(conn) => {
                    tracing::debug!(endpoint = %target.endpoint, remote = %addr, "connected");
                    return Ok(conn);
                }
                Err(reason) if addrs.len() == 1 => reasons.push(reason),
                Err(reason) => reasons.push(format!("{addr}: {reason}")),
            }
        }
        tracing::debug!(endpoint = %target.endpoint, reasons = %reasons.join("; "), "dial failed");
        Err(ClientError::Connect { endpoint: target.endpoint.clone(), reason: reasons.join("; ") })
    }
}

async fn dial_addr(
    endpoint: &Endpoint,
    addr: SocketAddr,
    server_name: &str,
    timeout: Duration,
) -> Result<Connection, String> {
    let connecting = endpoint.connect(addr, server_name).map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(format!("no answer within {timeout:?}")),
        Ok(Err(e)) => Err(explain_connection_error(&e)),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// TLS alerts (RFC 8446 §6) whose usual cause a hint can name.
const ALERT_BAD_CERTIFICATE: u8 = 42;
const ALERT_UNKNOWN_CA: u8 = 48;
const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

/// Connection errors, with a hint where the TLS alert says what usually went wrong.
fn explain_connection_error(e: &quinn::ConnectionError) -> String {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => Some(t.code),
        quinn::ConnectionError::ConnectionClosed(c) => Some(c.error_code),
        _ => None,
    };
    let alert = |alert: u8| code == Some(quinn::TransportErrorCode::crypto(alert));
    let hint = if alert(ALERT_UNKNOWN_CA) {
        "the server's certificate is not signed by a trusted CA; pass its CA with --cacert, \
         or use --insecure-skip-tls-verify"
    } else if alert(ALERT_BAD_CERTIFICATE) {
        "the server's certificate was refused; if it is not valid for the name dialed, set the \
         server name it carries"
    } else if alert(ALERT_NO_APPLICATION_PROTOCOL) {
        "the server does not speak the atoll client protocol (ALPN atoll-client/1)"
    } else {
        return e.to_string();
    };
    format!("{e}: {hint}")
}
