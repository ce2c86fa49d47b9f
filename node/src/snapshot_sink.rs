//! The node's side of Raft snapshot transfers (decision D20): a received snapshot is written
//! chunk by chunk to a file in the snapshot directory, made durable and verified whole, and
//! only then handed to the replica of its shard; a snapshot to send is streamed from the
//! file its leader generated. Neither ever sits whole in memory.

use crate::transport::peer::{PeerSender, SinkFuture, SinkRefused, SnapshotSink};
use actix::Addr;
use atoll_proto::peer::{RaftMessage, ShardMessage, ShardPayload, SnapshotHeader};
use atoll_proto::{NodeId, ShardId};
use atoll_shard::actors::{ReceiveSnapshot, ReplicaActor, SnapshotSendDone};
use atoll_shard::snapshot::{GeneratedSnapshot, verify_file};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;

/// Numbers received files so two transfers never share one.
static RECEIVED_FILES: AtomicU64 = AtomicU64::new(0);

/// Streams `snapshot` to node `to` on the IO runtime and reports the outcome to `done`.
pub(crate) fn spawn_send(
    runtime: &tokio::runtime::Handle,
    sender: PeerSender,
    to: NodeId,
    msg: ShardMessage,
    snapshot: Arc<GeneratedSnapshot>,
    done: SnapshotSendDone,
) {
    let ShardPayload::Raft(message) = msg.message else {
        tracing::error!(shard_id = msg.shard.0, "a snapshot to send without its raft message");
        return done(false);
    };
    let shard = msg.shard;
    runtime.spawn(async move {
        let sent = async {
            let file = tokio::fs::File::open(&snapshot.path).await.map_err(|e| e.to_string())?;
            let source = tokio::io::BufReader::new(file);
            sender
                .send_snapshot(to, shard, message, snapshot.bytes, source)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = sent.await;
        if let Err(reason) = &outcome {
            tracing::warn!(shard_id = shard.0, peer = %to, reason = %reason, "snapshot not sent");
        }
        // The file stays while `snapshot` lives, i.e. until the transfer is over.
        drop(snapshot);
        done(outcome.is_ok());
    });
}

/// Opens the sink of a snapshot stream for the replica `replica` of `header.shard`.
/// Creating a file is one quick call, made from the transport's stream task.
pub(crate) fn open_sink(
    dir: &Path,
    header: &SnapshotHeader,
    replica: Addr<ReplicaActor>,
) -> Result<FileSink, SinkRefused> {
    let refused = |reason: String| SinkRefused { reason };
    let (index, term) = snapshot_position(&header.message)
        .ok_or_else(|| refused("a snapshot stream without snapshot metadata".into()))?;
    let n = RECEIVED_FILES.fetch_add(1, Ordering::Relaxed);
    let name = format!("recv-{}-{index}-{term}-{}-{n}.snap", header.shard.0, header.from.0);
    let path = dir.join(name);
    let file = std::fs::File::create(&path)
        .map_err(|e| refused(format!("cannot create {}: {e}", path.display())))?;
    Ok(FileSink {
        file: tokio::fs::File::from_std(file),
        path,
        shard: header.shard,
        from: header.from,
        position: (index, term),
        message: header.message.clone(),
        replica,
    })
}

fn snapshot_position(message: &RaftMessage) -> Option<(u64, u64)> {
    message.snapshot.as_ref().map(|s| (s.metadata.index.0, s.metadata.term.0))
}

/// A received snapshot on its way to disk.
pub(crate) struct FileSink {
    file: tokio::fs::File,
    path: PathBuf,
    shard: ShardId,
    from: NodeId,
    position: (u64, u64),
    message: RaftMessage,
    replica: Addr<ReplicaActor>,
}

impl SnapshotSink for FileSink {
    fn write(&mut self, chunk: Vec<u8>) -> SinkFuture<'_> {
        Box::pin(async move {
            self.file
                .write_all(&chunk)
                .await
                .map_err(|e| SinkRefused { reason: format!("cannot write the snapshot: {e}") })
        })
    }

    fn finish(self: Box<Self>) -> SinkFuture<'static> {
        Box::pin(async move {
            let FileSink { mut file, path, shard, from, position, message, replica } = *self;
            let kept = async {
                file.flush().await.map_err(|e| e.to_string())?;
                // Durable before the replica may install it and acknowledge the leader.
                file.sync_all().await.map_err(|e| e.to_string())?;
                drop(file);
                let checked = path.clone();
                let meta = tokio::task::spawn_blocking(move || verify_file(&checked))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                if (meta.shard, meta.index, meta.term) != (shard.0, position.0, position.1) {
                    return Err(format!(
                        "the file is shard {} at {}/{}, the message says shard {} at {}/{}",
                        meta.shard, meta.index, meta.term, shard.0, position.0, position.1
                    ));
                }
                Ok(())
            };
            if let Err(reason) = kept.await {
                remove(&path);
                return Err(SinkRefused { reason });
            }
            // do_send: the replica must learn of the file it now owns (it deletes it).
            replica.do_send(ReceiveSnapshot { from, message, path });
            Ok(())
        })
    }

    fn abort(self: Box<Self>, reason: &str) {
        tracing::debug!(shard_id = self.shard.0, reason, "snapshot transfer aborted");
        remove(&self.path);
    }
}

fn remove(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "snapshot file not removed");
    }
}
