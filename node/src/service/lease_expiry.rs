//! What the meta shard's leader does for leases on its own (decision D16): every
//! [`LEASE_EXPIRY_PASS`] it revokes expired leases (rate-limited, ahead of ordinary traffic),
//! finishes revocations a former leader left half-done, and checkpoints remaining TTLs.
//!
//! A revocation cannot be atomic across shards, so it runs in steps, each safe to repeat:
//! 1. `Revoke` on the meta shard marks the record revoking: the lease is gone for clients,
//!    a new attach is refused, and a new leader knows to finish the revocation;
//! 2. `RevokeLeaseKeys` on every data shard deletes its keys of that grant in one entry and
//!    remembers the grant as revoked, so an attach checked before step 1 but applied after
//!    this is refused on that shard;
//! 3. `Revoked` on the meta shard removes the record.

use super::lease_manager::{
    LEASE_CHECKPOINT_ENTRY_LEASES_MAX, LEASE_CHECKPOINTS_PER_PASS_MAX, LEASE_EXPIRY_PASS,
};
use super::{NodeService, Origin};
use atoll_proto::*;
use std::sync::atomic::Ordering;
use tokio::sync::OwnedSemaphorePermit;

impl NodeService {
    /// The expiry loop of this node; acts only while it leads the meta shard.
    pub(super) async fn run_lease_expiry(self) {
        let mut pass = tokio::time::interval(LEASE_EXPIRY_PASS);
        pass.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            pass.tick().await;
            self.lease_pass().await;
        }
    }

    async fn lease_pass(&self) {
        let Ok(manager) = self.lease_manager() else { return };
        let meta = self.inner.shards.meta();
        if meta.published.leader() != self.inner.identity.member_id {
            // Followers keep no lease state (etcd 3.4's follower leak, #9395 aside).
            manager.step_down();
            return;
        }
        let term = match self.leading_term().await {
            Ok(term) => term,
            Err(e) => {
                tracing::debug!(error = %e, "lease state not loaded this pass");
                return;
            }
        };
        let now = manager.now_ms();
        let budget = manager.pass_budget();
        let Some((unfinished, expired)) = manager.with_core(term, |core| {
            let unfinished = core.take_unfinished(budget);
            let expired = core.take_expired(now, budget - unfinished.len());
            (unfinished, expired)
        }) else {
            return;
        };
        if !expired.is_empty() {
            tracing::debug!(count = expired.len(), "revoking expired leases");
        }
        for lease in unfinished {
            let Some(permit) = self.revocation_permit() else {
                manager.with_core(term, |core| core.finish_later(lease));
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Err(e) = this.finish_revocation(term, lease).await {
                    tracing::debug!(lease = lease.id, error = %e, "revocation not finished yet");
                }
            });
        }
        for lease in expired {
            let Some(permit) = self.revocation_permit() else {
                manager.with_core(term, |core| core.revoke_failed(lease, now));
                continue;
            };
            let this = self.clone();
            tokio::spawn(async move { this.revoke_expired(term, lease, permit).await });
        }
        if let Some(interval_ms) = manager.checkpoint_due(now) {
            self.checkpoint(term, now, interval_ms);
        }
    }

    fn revocation_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.lease_manager().ok()?.revocations.clone().try_acquire_owned().ok()
    }

    async fn revoke_expired(&self, term: u64, lease: LeaseRef, _permit: OwnedSemaphorePermit) {
        let Ok(manager) = self.lease_manager() else { return };
        let op = LeaseOp::Revoke { id: lease.id, grant_index: lease.grant_index };
        match self.propose_meta(op).await {
            Ok(_) => {
                // The lease is gone for clients from here on: it expired.
                manager.counters.expired.fetch_add(1, Ordering::Relaxed);
                if let Err(e) = self.finish_revocation(term, lease).await {
                    tracing::debug!(lease = lease.id, error = %e, "revocation not finished yet");
                }
            }
            // Revoked meanwhile (a client's revoke, or a former leader's).
            Err(AtollError::LeaseNotFound) => {
                manager.with_core(term, |core| core.revoked(lease));
            }
            Err(e) => {
                tracing::debug!(lease = lease.id, error = %e, "expired lease not revoked yet");
                let now = manager.now_ms();
                manager.with_core(term, |core| core.revoke_failed(lease, now));
            }
        }
    }

    /// Steps 2 and 3 of a revocation whose `Revoke` applied. On failure the lease is queued
    /// to be finished by a later pass (or by the next leader, from its revoking record).
    pub(super) async fn finish_revocation(
        &self,
        term: u64,
        lease: LeaseRef,
    ) -> Result<(), AtollError> {
        let manager = self.lease_manager()?;
        let result = self.delete_lease_keys(lease).await;
        let result = match result {
            Ok(()) => self.propose_meta(LeaseOp::Revoked { lease }).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match &result {
            Ok(()) => {
                manager.counters.revoked.fetch_add(1, Ordering::Relaxed);
                manager.with_core(term, |core| core.revoked(lease))
            }
            Err(_) => manager.with_core(term, |core| core.finish_later(lease)),
        };
        result
    }

    /// Every data shard deletes its keys of `lease` (through its leader, wherever it is).
    async fn delete_lease_keys(&self, lease: LeaseRef) -> Result<(), AtollError> {
        let shards: Vec<ShardId> = self.inner.shards.handles().map(|(id, _)| id).collect();
        // Each shard's step is idempotent (D16): all of them at once, one commit's wait.
        let deletes = shards.into_iter().map(|shard| {
            let op = WriteOp::RevokeLeaseKeys(RevokeLeaseKeysRequest { shard, lease });
            self.write_on(shard, op, Origin::Client)
        });
        futures::future::try_join_all(deletes).await?;
        Ok(())
    }

    /// Proposes the remaining TTLs due for a checkpoint, a bounded batch per entry, in a
    /// task of its own.
    fn checkpoint(&self, term: u64, now_ms: u64, interval_ms: u64) {
        let Ok(manager) = self.lease_manager() else { return };
        let Some(remaining) = manager.with_core(term, |core| {
            core.checkpoints(now_ms, interval_ms, LEASE_CHECKPOINTS_PER_PASS_MAX)
        }) else {
            return;
        };
        if remaining.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for chunk in remaining.chunks(LEASE_CHECKPOINT_ENTRY_LEASES_MAX) {
                let op = LeaseOp::Checkpoint { remaining: chunk.to_vec() };
                if let Err(e) = this.propose_meta(op).await {
                    tracing::debug!(error = %e, "lease checkpoint not applied");
                    return;
                }
            }
        });
    }
}
