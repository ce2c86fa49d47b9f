//! `etcdserverpb.Maintenance`. Status reports the first data shard as etcd reports its one
//! Raft group; Hash and HashKV combine the hashes of every shard this node hosts, so members
//! that applied the same logs agree; MoveLeader hands every shard this node leads to the
//! target; Snapshot streams a backup of the node's state
//! (`atoll_shard::storage::backup`, from one consistent read); Defragment succeeds at once because the LSM storage
//! needs no defragmentation; Alarm lists no alarms because Atoll raises none yet.

use super::{Gateway, SNAPSHOT_CHUNKS_BUFFERED, not_supported, status_of, unexpected};
use crate::auth::Caller;
use atoll_proto::etcd::etcdserverpb as pb;
use atoll_proto::etcd_convert::response::header_to_pb;
use atoll_proto::{HashKvRequest, HashKvResponse, NativeRequest, NativeResponse, StatusRequest};
use atoll_shard::storage::backup::{BackupError, backup_size, write_backup};
use pb::alarm_request::AlarmAction;
use std::pin::Pin;
use std::sync::Arc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// The Maintenance service.
pub(super) struct MaintenanceService(pub(super) Arc<Gateway>);

impl MaintenanceService {
    async fn hashes(&self, caller: &Caller, revision: i64) -> Result<HashKvResponse, Status> {
        match self.0.call(caller, NativeRequest::HashKv(HashKvRequest { revision })).await? {
            NativeResponse::HashKv(h) => Ok(h),
            other => Err(unexpected(&other)),
        }
    }
}

/// One crc32 over every shard's (id, hash), in shard order: equal on members whose
/// replicas hold the same state.
pub fn combined_hash(resp: &HashKvResponse) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for shard in &resp.hashes {
        h.update(&shard.shard.0.to_be_bytes());
        h.update(&shard.hash.to_be_bytes());
    }
    h.finalize()
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn alarm(
        &self,
        req: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let req = req.into_inner();
        match AlarmAction::try_from(req.action) {
            // No alarm is ever raised yet, so there is none to list or to disarm.
            Ok(AlarmAction::Get | AlarmAction::Deactivate) => {
                Ok(Response::new(pb::AlarmResponse { header: self.0.header(), alarms: vec![] }))
            }
            Ok(AlarmAction::Activate) => Err(not_supported("raising an alarm")),
            Err(_) => Err(Status::invalid_argument(format!(
                "atoll: malformed request: unknown alarm action {}",
                req.action
            ))),
        }
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let caller = super::caller_of(&req);
        let s = match self.0.call(&caller, NativeRequest::Status(StatusRequest {})).await? {
            NativeResponse::Status(s) => s,
            other => return Err(unexpected(&other)),
        };
        Ok(Response::new(pb::StatusResponse {
            header: header_to_pb(s.header),
            version: s.version,
            db_size: s.db_size,
            leader: s.leader,
            raft_index: s.raft_index,
            raft_term: s.raft_term,
            raft_applied_index: s.raft_applied_index,
            errors: s.errors,
            // The LSM has no free pages to reclaim: all of it is in use.
            db_size_in_use: s.db_size,
            is_learner: s.is_learner,
        }))
    }

    async fn defragment(
        &self,
        req: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let caller = super::caller_of(&req);
        // etcd's `authMaintenanceServer`: defragment, hash and snapshot need root.
        self.0.service.authorize_admin(&caller).await.map_err(status_of)?;
        Ok(Response::new(pb::DefragmentResponse { header: self.0.header() }))
    }

    async fn hash(
        &self,
        req: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let caller = super::caller_of(&req);
        let hashes = self.hashes(&caller, 0).await?;
        let hash = combined_hash(&hashes);
        Ok(Response::new(pb::HashResponse { header: header_to_pb(hashes.header), hash }))
    }

    async fn hash_kv(
        &self,
        req: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let caller = super::caller_of(&req);
        let hashes = self.hashes(&caller, req.into_inner().revision).await?;
        let hash = combined_hash(&hashes);
        let compact_revision = hashes.hashes.iter().map(|h| h.compact_revision).max().unwrap_or(0);
        Ok(Response::new(pb::HashKvResponse {
            header: header_to_pb(hashes.header),
            hash,
            compact_revision,
        }))
    }

    type SnapshotStream =
        Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send + 'static>>;

    async fn snapshot(
        &self,
        req: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let caller = super::caller_of(&req);
        self.0.service.authorize_admin(&caller).await.map_err(status_of)?;
        let permit = self
            .0
            .snapshots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Status::resource_exhausted("etcdserver: too many requests"))?;
        let header = self.0.header();
        let storage = self.0.service.storage().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(SNAPSHOT_CHUNKS_BUFFERED);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // One fjall snapshot for the size and the records: the dump is consistent.
            let snap = storage.db.snapshot();
            let total = match backup_size(&storage, &snap) {
                Ok(total) => total,
                Err(e) => {
                    let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
                    return;
                }
            };
            let mut sent = 0u64;
            let result = write_backup(&storage, &snap, |blob| {
                sent += blob.len() as u64;
                let remaining_bytes = total.saturating_sub(sent);
                let msg = pb::SnapshotResponse { header, remaining_bytes, blob };
                // A closed channel: the client went away; stop reading the database.
                tx.blocking_send(Ok(msg)).map_err(|_| ())
            });
            if let Err(e @ (BackupError::Storage(_) | BackupError::Corrupt(_))) = result {
                let _ = tx.blocking_send(Err(Status::internal(e.to_string())));
            }
        });
        let stream =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
            );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn move_leader(
        &self,
        req: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let target = atoll_proto::NodeId(req.into_inner().target_id);
        self.0.service.move_leader(target).await.map_err(super::status_of)?;
        Ok(Response::new(pb::MoveLeaderResponse { header: self.0.header() }))
    }

    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(not_supported("Downgrade"))
    }
}
