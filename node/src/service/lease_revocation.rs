//! Steps 2 and 3 of lease revocations (decisions D16 and D24), batched: the revocations
//! whose `Revoke` applied wait in the lease manager's queue, and each batch takes every one
//! waiting (up to [`LEASE_REVOCATION_BATCH_LEASES_MAX`]) and finishes them with one
//! `RevokeLeaseKeysBatch` entry on each data shard that may hold keys of any of them, all
//! shards at once, then one `RevokedBatch` entry on the meta shard. A storm's pass of 500
//! expired leases costs four entries instead of 3,500; concurrent client revokes share
//! batches the way concurrent writes share an fsync.
//!
//! Which shards: those the leader approved attaches of the lease for (`LeaseCore::
//! shards_of`, asked after the lease was marked revoking, so no later attach exists), or
//! every data shard when it does not know them (a lease it did not grant in this term).

use super::lease_manager::{Finishing, LEASE_REVOCATION_BATCH_LEASES_MAX};
use super::{NodeService, Origin};
use atoll_proto::*;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

impl NodeService {
    /// The loop that finishes revocations in batches, within the batches in flight; runs on
    /// every node (only the meta shard's leader queues any).
    pub(super) async fn run_lease_revocations(self) {
        let Ok(manager) = self.lease_manager().cloned() else { return };
        loop {
            // A batch slot first: revocations queued while every slot is busy go together.
            let Ok(slot) = manager.batches.clone().acquire_owned().await else { return };
            let batch = loop {
                let batch = manager.take_finishing(LEASE_REVOCATION_BATCH_LEASES_MAX);
                if !batch.is_empty() {
                    break batch;
                }
                manager.finishing_ready.notified().await;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                this.finish_batch(batch).await;
            });
        }
    }

    async fn finish_batch(&self, batch: Vec<Finishing>) {
        let Ok(manager) = self.lease_manager() else { return };
        let planned: Vec<(Finishing, Vec<ShardId>)> = batch
            .into_iter()
            .map(|f| {
                let shards = self.shards_of(&f);
                (f, shards)
            })
            .collect();
        let failed_shards = self.delete_keys_of(&shards_to_visit(&planned)).await;
        let mut done = Vec::with_capacity(planned.len());
        for (f, shards) in planned {
            match shards.iter().find_map(|s| failed_shards.get(s)) {
                None => done.push(f),
                Some(error) => {
                    tracing::debug!(lease = f.lease.id, error = %error, "revocation not finished yet");
                    finish_later(manager, f, error.clone());
                }
            }
        }
        if done.is_empty() {
            return;
        }
        let leases = done.iter().map(|f| f.lease).collect();
        match self.propose_meta(LeaseOp::RevokedBatch { leases }).await {
            Ok(_) => {
                manager.counters.revoked.fetch_add(done.len() as u64, Ordering::Relaxed);
                for f in done {
                    manager.with_core(f.term, |core| core.revoked(f.lease));
                    if let Some(done) = f.done {
                        // The client may have stopped waiting; the revocation stands.
                        let _ = done.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(count = done.len(), error = %e, "revocations not finished yet");
                for f in done {
                    finish_later(manager, f, e.clone());
                }
            }
        }
    }

    /// The data shards that may hold keys of `f`'s lease.
    fn shards_of(&self, f: &Finishing) -> Vec<ShardId> {
        let known = self
            .lease_manager()
            .ok()
            .and_then(|m| m.with_core(f.term, |core| core.shards_of(f.lease)).flatten());
        known.unwrap_or_else(|| self.inner.shards.handles().map(|(id, _)| id).collect())
    }

    /// Deletes the keys of the leases on each shard of `visit` (through its leader,
    /// wherever it is), every shard at once: each shard's step is idempotent (D16). Returns
    /// the shards that failed, with their error.
    async fn delete_keys_of(
        &self,
        visit: &BTreeMap<ShardId, Vec<LeaseRef>>,
    ) -> BTreeMap<ShardId, AtollError> {
        let deletes = visit.iter().map(|(shard, leases)| async move {
            let req = RevokeLeaseKeysBatchRequest { shard: *shard, leases: leases.clone() };
            let result = self.write_on(*shard, WriteOp::RevokeLeaseKeysBatch(req), Origin::Client);
            (*shard, result.await)
        });
        let results = futures::future::join_all(deletes).await;
        results.into_iter().filter_map(|(shard, r)| r.err().map(|e| (shard, e))).collect()
    }
}

/// For each data shard to visit, the leases of `planned` whose keys it may hold.
fn shards_to_visit(planned: &[(Finishing, Vec<ShardId>)]) -> BTreeMap<ShardId, Vec<LeaseRef>> {
    let mut visit: BTreeMap<ShardId, Vec<LeaseRef>> = BTreeMap::new();
    for (f, shards) in planned {
        for shard in shards {
            visit.entry(*shard).or_default().push(f.lease);
        }
    }
    visit
}

/// A revocation that could not finish now is queued in the core to be finished by a later
/// pass (or by the next leader, from its revoking record); a waiting client hears why.
fn finish_later(manager: &super::lease_manager::LeaseManager, f: Finishing, error: AtollError) {
    manager.with_core(f.term, |core| core.finish_later(f.lease));
    if let Some(done) = f.done {
        let _ = done.send(Err(error));
    }
}
