//! Snapshot streams: one bidirectional stream per snapshot. The sender writes a header,
//! checksummed chunks and a final checksum, then reads the receiver's verdict; the receiver
//! verifies each chunk before its sink sees it and awaits the sink before reading on, so
//! QUIC flow control carries the sink's pace back to the sender.

use super::SnapshotSink;
use super::error::SnapshotSendError;
use super::frames::{ReadError, read_frame, read_raw, write_frame};
use super::limits::{
    PEER_CONTROL_FRAME_BYTES_MAX, SNAPSHOT_CONNECT_TIMEOUT, SNAPSHOT_FRAME_TIMEOUT,
    SNAPSHOT_VERDICT_TIMEOUT,
};
use super::sender::{PeerConn, PeerSender, Shared};
use super::stats::add;
use atoll_proto::peer::{
    PeerFrame, RaftMessage, SNAPSHOT_CHUNK_BYTES_MAX, SNAPSHOT_REFUSED_REASON_BYTES_MAX,
    SnapshotChunk, SnapshotEnd, SnapshotHeader, SnapshotVerifier,
};
use atoll_proto::{NodeId, ShardId};
use quinn::{RecvStream, SendStream};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Stream error code: the receiver refused the snapshot and stops reading it.
const STOP_REFUSED: u32 = 1;
/// Stream error code: the sender gave up (its source failed).
const RESET_ABANDONED: u32 = 2;

impl PeerSender {
    /// Sends a snapshot of `shard` to node `to` on a stream of its own: `message` is the
    /// `MsgSnapshot` with the snapshot metadata, `source` yields exactly `total_bytes` bytes,
    /// read [`SNAPSHOT_CHUNK_BYTES_MAX`] at a time. Returns once the receiver verified the
    /// whole snapshot and its sink accepted it; any error means the snapshot failed (report
    /// it to Raft, which retries).
    pub async fn send_snapshot<R>(
        &self,
        to: NodeId,
        shard: ShardId,
        message: RaftMessage,
        total_bytes: u64,
        mut source: R,
    ) -> Result<(), SnapshotSendError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let shared = &self.shared;
        let pc = wait_for_connection(shared, to).await?;
        // Held until the verdict: QUIC's stream limit also admits forwarded requests, so
        // this is what keeps snapshots to their share.
        let _permit = acquire_permit(shared, to).await?;
        let stream_error = |reason: String| SnapshotSendError::Stream { peer: to, reason };
        let (mut send, mut recv) =
            pc.conn.open_bi().await.map_err(|e| stream_error(e.to_string()))?;
        let header = SnapshotHeader { shard, from: shared.node_id, to, message, total_bytes };
        let written = write_snapshot(&mut send, header, total_bytes, &mut source).await;
        match written {
            Ok(()) => {}
            Err(WriteFailure::Source(e)) => {
                let _ = send.reset(RESET_ABANDONED.into());
                return Err(e);
            }
            // The receiver may have refused and stopped reading: its verdict says why.
            Err(WriteFailure::Stream(reason)) => {
                return match read_verdict(&mut recv, to).await {
                    Err(refused @ SnapshotSendError::Refused { .. }) => Err(refused),
                    _ => Err(stream_error(reason)),
                };
            }
        }
        read_verdict(&mut recv, to).await?;
        add(&shared.counters.snapshots_sent, 1);
        tracing::info!(peer = %to, shard_id = %shard, total_bytes, "snapshot sent");
        Ok(())
    }
}

async fn wait_for_connection(shared: &Shared, to: NodeId) -> Result<PeerConn, SnapshotSendError> {
    let peer = shared.peer(to).ok_or(SnapshotSendError::UnknownPeer { peer: to })?;
    let mut rx = peer.conn.subscribe();
    let waited = tokio::time::timeout(SNAPSHOT_CONNECT_TIMEOUT, rx.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(current)) => current
            .clone()
            .ok_or(SnapshotSendError::NotConnected { peer: to, waited: SNAPSHOT_CONNECT_TIMEOUT }),
        _ => Err(SnapshotSendError::NotConnected { peer: to, waited: SNAPSHOT_CONNECT_TIMEOUT }),
    }
}

async fn acquire_permit(
    shared: &Shared,
    to: NodeId,
) -> Result<tokio::sync::OwnedSemaphorePermit, SnapshotSendError> {
    let peer = shared.peer(to).ok_or(SnapshotSendError::UnknownPeer { peer: to })?;
    // The semaphore is never closed; an error would mean the peer is gone.
    Arc::clone(&peer.snapshot_permits)
        .acquire_owned()
        .await
        .map_err(|_| SnapshotSendError::UnknownPeer { peer: to })
}

enum WriteFailure {
    Source(SnapshotSendError),
    Stream(String),
}

async fn write_snapshot<R: AsyncRead + Unpin + Send>(
    send: &mut SendStream,
    header: SnapshotHeader,
    total_bytes: u64,
    source: &mut R,
) -> Result<(), WriteFailure> {
    write_frame(send, &PeerFrame::SnapshotHeader(Box::new(header)))
        .await
        .map_err(WriteFailure::Stream)?;
    let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES_MAX];
    let mut offset = 0u64;
    let mut hasher = crc32fast::Hasher::new();
    loop {
        let n = fill(source, &mut buf).await?;
        if n == 0 {
            break;
        }
        let read = offset + n as u64;
        if read > total_bytes {
            return Err(WriteFailure::Source(SnapshotSendError::SourceLength {
                announced: total_bytes,
                read,
            }));
        }
        let data = &buf[..n];
        let chunk = SnapshotChunk::for_data(offset, data);
        write_frame(send, &PeerFrame::SnapshotChunk(chunk)).await.map_err(WriteFailure::Stream)?;
        send.write_all(data).await.map_err(|e| WriteFailure::Stream(e.to_string()))?;
        hasher.update(data);
        offset = read;
    }
    if offset != total_bytes {
        return Err(WriteFailure::Source(SnapshotSendError::SourceLength {
            announced: total_bytes,
            read: offset,
        }));
    }
    let end = SnapshotEnd { total_crc32: hasher.finalize() };
    write_frame(send, &PeerFrame::SnapshotEnd(end)).await.map_err(WriteFailure::Stream)?;
    send.finish().map_err(|e| WriteFailure::Stream(e.to_string()))
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
async fn fill<R: AsyncRead + Unpin + Send>(
    source: &mut R,
    buf: &mut [u8],
) -> Result<usize, WriteFailure> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = source.read(&mut buf[filled..]).await.map_err(|e| {
            WriteFailure::Source(SnapshotSendError::Source { reason: e.to_string() })
        })?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

async fn read_verdict(recv: &mut RecvStream, to: NodeId) -> Result<(), SnapshotSendError> {
    let stream_error = |reason: String| SnapshotSendError::Stream { peer: to, reason };
    let frame = tokio::time::timeout(
        SNAPSHOT_VERDICT_TIMEOUT,
        read_frame(recv, PEER_CONTROL_FRAME_BYTES_MAX),
    )
    .await
    .map_err(|_| stream_error(format!("no verdict within {SNAPSHOT_VERDICT_TIMEOUT:?}")))?
    .map_err(|e| stream_error(e.to_string()))?;
    match frame {
        Some(PeerFrame::SnapshotReceived) => Ok(()),
        Some(PeerFrame::SnapshotRefused { reason }) => {
            Err(SnapshotSendError::Refused { peer: to, reason })
        }
        Some(_) => Err(stream_error("unexpected frame instead of a verdict".into())),
        None => Err(stream_error("stream ended without a verdict".into())),
    }
}

/// Receives one snapshot stream from the identified node `from`, whose header was read,
/// and answers its verdict.
pub(crate) async fn receive(
    shared: Arc<Shared>,
    from: NodeId,
    header: SnapshotHeader,
    mut send: SendStream,
    mut recv: RecvStream,
) {
    let verdict = match receive_into_sink(&shared, from, header, &mut recv).await {
        Ok(total_bytes) => {
            add(&shared.counters.snapshots_received, 1);
            tracing::info!(peer = %from, total_bytes, "snapshot received");
            PeerFrame::SnapshotReceived
        }
        Err(mut reason) => {
            add(&shared.counters.snapshots_refused, 1);
            tracing::warn!(peer = %from, reason = %reason, "snapshot refused");
            let _ = recv.stop(STOP_REFUSED.into());
            truncate_reason(&mut reason);
            PeerFrame::SnapshotRefused { reason }
        }
    };
    if write_frame(&mut send, &verdict).await.is_ok() {
        let _ = send.finish();
        // Keep the stream until the verdict is delivered (or the peer stops caring).
        let _ = send.stopped().await;
    }
}

fn truncate_reason(reason: &mut String) {
    if reason.len() > SNAPSHOT_REFUSED_REASON_BYTES_MAX {
        let mut cut = SNAPSHOT_REFUSED_REASON_BYTES_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
}

/// Checks the header, opens the inbox's sink and feeds it verified chunks; returns the
/// snapshot's size, or why it was refused.
async fn receive_into_sink(
    shared: &Shared,
    from: NodeId,
    header: SnapshotHeader,
    recv: &mut RecvStream,
) -> Result<u64, String> {
    if header.from != from || header.to != shared.node_id {
        return Err(format!(
            "snapshot header says node {} to node {}, but it came from node {from} to node {}",
            header.from, header.to, shared.node_id
        ));
    }
    let mut sink = shared.inbox.snapshot(&header).map_err(|e| e.reason)?;
    match feed_sink(recv, sink.as_mut(), header.total_bytes).await {
        Ok(()) => sink.finish().await.map_err(|e| e.reason).map(|()| header.total_bytes),
        Err(reason) => {
            sink.abort(&reason);
            Err(reason)
        }
    }
}

async fn feed_sink(
    recv: &mut RecvStream,
    sink: &mut dyn SnapshotSink,
    total_bytes: u64,
) -> Result<(), String> {
    let mut verifier = SnapshotVerifier::new(total_bytes);
    loop {
        match timed_frame(recv, PEER_CONTROL_FRAME_BYTES_MAX).await? {
            Some(PeerFrame::SnapshotChunk(chunk)) => {
                // Checked before reading, so a lying length allocates nothing.
                verifier.check_header(&chunk).map_err(|e| e.to_string())?;
                let data = tokio::time::timeout(
                    SNAPSHOT_FRAME_TIMEOUT,
                    read_raw(recv, chunk.len as usize),
                )
                .await
                .map_err(|_| stalled())?
                .map_err(|e| e.to_string())?;
                verifier.accept_chunk(&chunk, &data).map_err(|e| e.to_string())?;
                sink.write(data).await.map_err(|e| e.reason)?;
            }
            Some(PeerFrame::SnapshotEnd(end)) => {
                return verifier.finish(&end).map_err(|e| e.to_string());
            }
            Some(_) => return Err("unexpected frame on a snapshot stream".into()),
            None => {
                return Err(format!(
                    "snapshot stream ended after {} of {total_bytes} bytes",
                    verifier.received()
                ));
            }
        }
    }
}

async fn timed_frame(recv: &mut RecvStream, max: usize) -> Result<Option<PeerFrame>, String> {
    tokio::time::timeout(SNAPSHOT_FRAME_TIMEOUT, read_frame(recv, max))
        .await
        .map_err(|_| stalled())?
        .map_err(|e: ReadError| e.to_string())
}

fn stalled() -> String {
    format!("snapshot sender stalled for {SNAPSHOT_FRAME_TIMEOUT:?}")
}
