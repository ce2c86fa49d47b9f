//! Plain-HTTP endpoint on `--listen-metrics-urls`: `/metrics` (Prometheus text),
//! `/health` (etcd's shape, answered only after a linearizable read index succeeds, so a node
//! without a working Raft group reports unhealthy), `/livez` and `/readyz`.
//!
//! A deliberately small HTTP/1.1 responder: one request per connection, bounded request size,
//! bounded concurrent connections; it serves operators and scrapers, not clients.

use crate::service::NodeService;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Largest HTTP request head read.
pub const HTTP_REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Connections served at once; more wait in the kernel's accept queue.
pub const HTTP_CONNECTIONS_MAX: usize = 64;
/// How long a client may take to send its request.
pub const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `/health` waits for the read index.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// Serves the operator endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, service: NodeService) {
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &service).await {
                tracing::debug!(peer = %peer, error = %e, "http connection failed");
            }
            drop(permit);
        });
    }
}

/// Binds the listener; the error names the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}/tcp for metrics: {e}"))
}

async fn handle(mut stream: tokio::net::TcpStream, service: &NodeService) -> std::io::Result<()> {
    let mut buf = vec![0u8; HTTP_REQUEST_BYTES_MAX];
    let mut len = 0;
    let head_done = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n");
    while !head_done(&buf[..len]) {
        if len == buf.len() {
            return respond(&mut stream, 431, "text/plain", "request header too large\n").await;
        }
        match tokio::time::timeout(HTTP_READ_TIMEOUT, stream.read(&mut buf[len..])).await {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Ok(n)) => len += n,
            Ok(Err(e)) => return Err(e),
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method != "GET" {
        return respond(&mut stream, 405, "text/plain", "only GET is served\n").await;
    }
    match path {
        "/metrics" => {
            respond(&mut stream, 200, "text/plain; version=0.0.4", &metrics(service).await).await
        }
        "/health" | "/readyz" => {
            let (ok, reason) = match service.check_health(HEALTH_TIMEOUT).await {
                Ok(()) => (true, String::new()),
                Err(e) => (false, e.to_string()),
            };
            let body = if path == "/health" {
                format!("{{\"health\":\"{ok}\",\"reason\":{}}}\n", json_string(&reason))
            } else if ok {
                "ok\n".to_string()
            } else {
                format!("not ready: {reason}\n")
            };
            let kind = if path == "/health" { "application/json" } else { "text/plain" };
            respond(&mut stream, if ok { 200 } else { 503 }, kind, &body).await
        }
        "/livez" => respond(&mut stream, 200, "text/plain", "ok\n").await,
        _ => {
            respond(
                &mut stream,
                404,
                "text/plain",
                "not found: try /metrics, /health, /livez or /readyz\n",
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut tokio::net::TcpStream,
    status: u16,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Renders the node's metrics in the Prometheus text format; names follow
/// `atoll_<area>_<noun>_<unit>`.
async fn metrics(service: &NodeService) -> String {
    let mut out = String::new();
    for (name, help, kind, value) in service.metric_samples().await {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
    }
    out
}
