//! What the meta shard's leader does for leases on its own (decision D16): every
//! [`LEASE_EXPIRY_PASS`] it revokes expired leases (rate-limited, ahead of ordinary traffic),
//! finishes revocations a former leader left half-done, and checkpoints remaining TTLs.
//!
//! A revocation cannot be atomic across shards, so it runs in steps, each safe to repeat:
//! 1. `Revoke` on the meta shard marks the record revoking: the lease is gone for clients,
//!    a new attach is refused, and a new leader knows to finish the revocation;
//! 2. `RevokeLeaseKeys` on every data shard that may hold keys of it deletes them in one
//!    entry and remembers the grant as revoked, so an attach checked before step 1 but
//!    applied after this is refused on that shard;
//! 3. `Revoked` on the meta shard removes the record.
//!
//! The expired leases of one pass take step 1 together, in one `RevokeBatch` entry; steps 2
//! and 3 are batched with every other revocation ready at the time (`lease_revocation`,
//! decision D24).

use super::NodeService;
use super::lease_manager::{
    Finishing, LEASE_CHECKPOINT_ENTRY_LEASES_MAX, LEASE_CHECKPOINTS_PER_PASS_MAX,
    LEASE_EXPIRY_PASS, LEASE_REVOCATION_BATCH_LEASES_MAX,
};
use atoll_proto::*;
use std::collections::BTreeSet;
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
            manager.queue_finish(Finishing { term, lease, permit: Some(permit), done: None });
        }
        let mut started = Vec::with_capacity(expired.len());
        for lease in expired {
            match self.revocation_permit() {
                Some(permit) => started.push((lease, permit)),
                None => {
                    manager.with_core(term, |core| core.revoke_failed(lease, now));
                }
            }
        }
        while !started.is_empty() {
            let rest = started.split_off(started.len().min(LEASE_REVOCATION_BATCH_LEASES_MAX));
            let batch = std::mem::replace(&mut started, rest);
            let this = self.clone();
            tokio::spawn(async move { this.revoke_expired(term, batch).await });
        }
        if let Some(interval_ms) = manager.checkpoint_due(now) {
            self.checkpoint(term, now, interval_ms);
        }
    }

    fn revocation_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.lease_manager().ok()?.revocations.clone().try_acquire_owned().ok()
    }

    /// Step 1 of the revocations of expired leases, in one entry; the ones it marked are
    /// queued to be finished.
    async fn revoke_expired(&self, term: u64, batch: Vec<(LeaseRef, OwnedSemaphorePermit)>) {
        let Ok(manager) = self.lease_manager() else { return };
        let leases = batch.iter().map(|(lease, _)| *lease).collect();
        match self.propose_meta(LeaseOp::RevokeBatch { leases }).await {
            Ok(answer) => {
                let marked: BTreeSet<LeaseRef> = answer.revoking.into_iter().collect();
                for (lease, permit) in batch {
                    if marked.contains(&lease) {
                        // The lease is gone for clients from here on: it expired.
                        manager.counters.expired.fetch_add(1, Ordering::Relaxed);
                        let permit = Some(permit);
                        manager.queue_finish(Finishing { term, lease, permit, done: None });
                    } else {
                        // Revoked meanwhile (a client's revoke, or a former leader's).
                        manager.with_core(term, |core| core.revoked(lease));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(count = batch.len(), error = %e, "expired leases not revoked yet");
                let now = manager.now_ms();
                manager.with_core(term, |core| {
                    for (lease, _) in &batch {
                        core.revoke_failed(*lease, now);
                    }
                });
            }
        }
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
