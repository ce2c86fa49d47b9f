//! The join exchange (decision D18): a node started with `--initial-cluster-state existing`
//! and an empty data directory knows neither its member ID nor the cluster's ID nor its
//! shards, so it cannot say Hello. It dials a member's peer port under its own ALPN, with its
//! node certificate from the cluster CA like any peer, sends [`PeerFrame::Join`] with its peer
//! URLs on one bidirectional stream and reads [`PeerFrame::Joined`]: the member that
//! `member add` created for those URLs, the cluster ID, the members and the shard map.

use super::frames::{read_frame, write_frame};
use super::limits::{PEER_DIAL_TIMEOUT, PEER_HELLO_TIMEOUT};
use super::sender::Shared;
use super::{ALPN_JOIN, limits::PEER_CONTROL_FRAME_BYTES_MAX};
use crate::certs::TlsMaterial;
use crate::transport::TransportError;
use atoll_proto::member::{JoinRequest, JoinResponse};
use atoll_proto::peer::PeerFrame;
use quinn::crypto::rustls::QuicClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest join answer: the member list and the shard map.
const JOIN_ANSWER_BYTES_MAX: usize = 16 << 20;
/// Wait between rounds over the members while none knows the joining node yet.
const JOIN_RETRY: Duration = Duration::from_millis(500);

/// Serves one join connection: reads the request, answers it, and lets the joining node close.
pub(crate) async fn serve(shared: Arc<Shared>, conn: quinn::Connection) {
    let remote = conn.remote_address();
    // TLS already demands a certificate from the cluster CA; checked again as for peers.
    if conn.peer_identity().is_none() {
        conn.close(super::connection::CLOSE_REFUSED.into(), b"no client certificate");
        return;
    }
    let answered = tokio::time::timeout(PEER_HELLO_TIMEOUT, async {
        let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
        let frame =
            read_frame(&mut recv, PEER_CONTROL_FRAME_BYTES_MAX).await.map_err(|e| e.to_string())?;
        let Some(PeerFrame::Join(req)) = frame else {
            return Err("the first frame is not a join request".to_string());
        };
        let answer = shared.inbox.join(&req);
        if let Err(reason) = &answer {
            tracing::warn!(remote = %remote, %reason, "join refused");
        }
        write_frame(&mut send, &PeerFrame::Joined(answer)).await?;
        send.finish().map_err(|e| e.to_string())
    })
    .await;
    match answered {
        Ok(Ok(())) => {
            // The joining node closes once it has read the answer.
            let _ = tokio::time::timeout(PEER_HELLO_TIMEOUT, conn.closed()).await;
        }
        Ok(Err(reason)) => tracing::warn!(remote = %remote, %reason, "bad join request"),
        Err(_) => tracing::warn!(remote = %remote, "no join request in time"),
    }
}

/// Asks the members at `seeds` in turn, until one answers or `patience` runs out: a member
/// that does not know the joining node yet (the `member add` is not applied there) is asked
/// again after the others.
pub async fn join_cluster(
    tls: &TlsMaterial,
    seeds: &[SocketAddr],
    req: &JoinRequest,
    patience: Duration,
) -> Result<JoinResponse, TransportError> {
    let config = |reason: String| TransportError::Config { reason };
    let client_tls = tls.peer_client_config(&[ALPN_JOIN])?;
    let client_quic =
        QuicClientConfig::try_from(client_tls).map_err(|e| config(format!("TLS for QUIC: {e}")))?;
    let client_config = quinn::ClientConfig::new(Arc::new(client_quic));
    let any: SocketAddr = ([0, 0, 0, 0], 0).into();
    let endpoint = quinn::Endpoint::client(any).map_err(|e| config(e.to_string()))?;
    let deadline = tokio::time::Instant::now() + patience;
    let mut last = String::from("no member to ask: --initial-cluster lists no other member");
    loop {
        for addr in seeds {
            match ask(&endpoint, &client_config, *addr, req).await {
                Ok(answer) => {
                    endpoint.close(0u32.into(), b"joined");
                    return Ok(answer);
                }
                Err(reason) => {
                    tracing::info!(member = %addr, %reason, "join attempt failed");
                    last = format!("{addr}: {reason}");
                }
            }
        }
        if tokio::time::Instant::now() + JOIN_RETRY >= deadline {
            return Err(config(format!("could not join the cluster within {patience:?}: {last}")));
        }
        tokio::time::sleep(JOIN_RETRY).await;
    }
}

async fn ask(
    endpoint: &quinn::Endpoint,
    client_config: &quinn::ClientConfig,
    addr: SocketAddr,
    req: &JoinRequest,
) -> Result<JoinResponse, String> {
    let connecting = endpoint
        .connect_with(client_config.clone(), addr, &addr.ip().to_string())
        .map_err(|e| format!("cannot dial: {e}"))?;
    let conn = tokio::time::timeout(PEER_DIAL_TIMEOUT, connecting)
        .await
        .map_err(|_| format!("no handshake within {PEER_DIAL_TIMEOUT:?}"))?
        .map_err(|e| format!("handshake failed: {e}"))?;
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        write_frame(&mut send, &PeerFrame::Join(req.clone())).await?;
        send.finish().map_err(|e| e.to_string())?;
        match read_frame(&mut recv, JOIN_ANSWER_BYTES_MAX).await.map_err(|e| e.to_string())? {
            Some(PeerFrame::Joined(answer)) => answer,
            _ => Err("the member answered something other than a join answer".to_string()),
        }
    };
    let answer = tokio::time::timeout(PEER_HELLO_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no join answer within {PEER_HELLO_TIMEOUT:?}"))?;
    conn.close(0u32.into(), b"done");
    answer
}
