//! The lease manager's sans-IO core: what the meta shard's leader knows about leases beyond
//! the replicated records — when each expires — and the decisions made from it: which leases
//! to revoke now, which remaining TTLs to checkpoint, what a keepalive or a time-to-live
//! answers. Only the leader has one; a new leader builds it from the records it applied
//! (etcd's `lessor.Promote`), so followers hold no expiry heap (etcd 3.4's follower leak).
//!
//! Time is the caller's monotonic clock in milliseconds, so tests drive it by hand.

use atoll_proto::{LeaseRecord, LeaseRef, ShardId};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

/// Milliseconds before a revocation that failed (a leader change, a timeout) is tried again.
pub const REVOKE_RETRY_MS: u64 = 500;

/// One lease the leader holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    lease: LeaseRef,
    ttl_seconds: i64,
    expiry_ms: u64,
    /// A remaining TTL is checkpointed in the record (a renewal must clear it).
    checkpointed: bool,
    /// A revocation is under way; the lease is gone for clients.
    revoking: bool,
}

/// What a keepalive did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewed {
    /// The lease's TTL, seconds.
    pub ttl_seconds: i64,
    /// The record holds a checkpointed remaining TTL that a new leader would use instead of
    /// the renewal: the caller must clear it through Raft (etcd's `Renew` does the same).
    pub clear_checkpoint: bool,
}

/// A lease's time to live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    /// The lease and its grant.
    pub lease: LeaseRef,
    /// TTL granted, seconds.
    pub granted_seconds: i64,
    /// Seconds left, rounded down (etcd truncates too), never below 0.
    pub remaining_seconds: i64,
}

/// What the leader's lease state holds, for the node's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Live leases (not expired, not being revoked).
    pub active: usize,
    /// Leases expired or being revoked whose revocation has not finished, plus revocations
    /// a former leader left to finish.
    pub revocation_backlog: usize,
    /// Entries of the expiry heap, stale ones included.
    pub heap_entries: usize,
}

/// The leader's lease state.
#[derive(Debug, Default)]
pub struct LeaseCore {
    /// By ID, so listing and checkpoint passes go in one order.
    leases: BTreeMap<i64, Held>,
    /// (expiry, id), earliest first; entries whose expiry changed since are skipped.
    heap: BinaryHeap<Reverse<(u64, i64)>>,
    /// Revocations a former leader started and did not finish.
    unfinished: VecDeque<LeaseRef>,
    /// Where the next checkpoint pass starts (IDs above it go first).
    checkpoint_cursor: Option<i64>,
    /// For each lease this core granted: its grant and the data shards attaches of it were
    /// approved for (decision D24). Every approval of such a lease is this core's (it was
    /// granted in this term, and lookups are answered from the core), so a revocation
    /// deletes keys on these shards only. A lease loaded at promotion has no entry: an
    /// earlier leader approved its attaches, so its revocation visits every data shard.
    attached: BTreeMap<i64, (u64, Vec<ShardId>)>,
}

impl LeaseCore {
    /// The state of a new leader from the records it applied: every lease expires after its
    /// checkpointed remaining TTL (or its full TTL) plus `extend_ms`, an election timeout, so
    /// clients whose keepalives went to the old leader have time to find this one (etcd's
    /// `Promote(extend)`). Records left revoking are queued to be finished.
    pub fn promote(records: Vec<LeaseRecord>, now_ms: u64, extend_ms: u64) -> LeaseCore {
        let mut core = LeaseCore::default();
        for record in records {
            if record.revoking {
                core.unfinished.push_back(record.lease);
                continue;
            }
            let left_ms = match record.remaining_ms {
                0 => ttl_ms(record.ttl),
                ms => u64::try_from(ms).unwrap_or(0),
            };
            let expiry_ms = now_ms.saturating_add(left_ms).saturating_add(extend_ms);
            core.hold(record, expiry_ms, record.remaining_ms > 0);
        }
        core
    }

    fn hold(&mut self, record: LeaseRecord, expiry_ms: u64, checkpointed: bool) {
        let held = Held {
            lease: record.lease,
            ttl_seconds: record.ttl,
            expiry_ms,
            checkpointed,
            revoking: false,
        };
        self.leases.insert(record.lease.id, held);
        self.heap.push(Reverse((expiry_ms, record.lease.id)));
    }

    /// A grant was applied: the lease lives its full TTL from now.
    pub fn granted(&mut self, record: LeaseRecord, now_ms: u64) {
        self.hold(record, now_ms.saturating_add(ttl_ms(record.ttl)), false);
        self.attached.insert(record.lease.id, (record.lease.grant_index, Vec::new()));
    }

    /// Whether `id` is held, revoking or not (a server-chosen ID must be new).
    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    /// The grant of a live lease; `None` if absent or being revoked.
    pub fn lookup(&self, id: i64) -> Option<LeaseRef> {
        self.live(id).map(|h| h.lease)
    }

    /// The grant of a live lease a write is about to attach on `shard` (etcd's
    /// `lessor.Lookup`); remembers the shard, so the lease's revocation goes there.
    /// `None` if absent or being revoked.
    pub fn attach(&mut self, id: i64, shard: ShardId) -> Option<LeaseRef> {
        let lease = self.lookup(id)?;
        if let Some((grant, shards)) = self.attached.get_mut(&id)
            && *grant == lease.grant_index
            && !shards.contains(&shard)
        {
            shards.push(shard);
        }
        Some(lease)
    }

    /// The data shards that may hold keys of `lease`, asked once its revocation started
    /// (the lease is marked revoking, so no attach is approved after): the shards this core
    /// approved attaches for, or `None` if it does not know them all (a lease loaded at
    /// promotion, or one it no longer holds): then every data shard.
    pub fn shards_of(&self, lease: LeaseRef) -> Option<Vec<ShardId>> {
        match self.attached.get(&lease.id) {
            Some((grant, shards)) if *grant == lease.grant_index => Some(shards.clone()),
            _ => None,
        }
    }

    fn live(&self, id: i64) -> Option<&Held> {
        self.leases.get(&id).filter(|h| !h.revoking)
    }

    /// A keepalive: the lease lives its full TTL from now. `None` if absent, revoking or
    /// already expired: an expired lease is being revoked even if its revocation has not
    /// started yet, and etcd's `Renew` refuses it too.
    pub fn renew(&mut self, id: i64, now_ms: u64) -> Option<Renewed> {
        let held = self.leases.get_mut(&id).filter(|h| !h.revoking && h.expiry_ms > now_ms)?;
        held.expiry_ms = now_ms.saturating_add(ttl_ms(held.ttl_seconds));
        let renewed =
            Renewed { ttl_seconds: held.ttl_seconds, clear_checkpoint: held.checkpointed };
        held.checkpointed = false;
        let entry = Reverse((held.expiry_ms, id));
        self.heap.push(entry);
        Some(renewed)
    }

    /// How long a live lease has left.
    pub fn time_to_live(&self, id: i64, now_ms: u64) -> Option<TimeToLive> {
        let held = self.live(id)?;
        let left_ms = held.expiry_ms.saturating_sub(now_ms);
        Some(TimeToLive {
            lease: held.lease,
            granted_seconds: held.ttl_seconds,
            remaining_seconds: i64::try_from(left_ms / 1000).unwrap_or(i64::MAX),
        })
    }

    /// Counts for the metrics at `now_ms`: one pass over the held leases.
    pub fn stats(&self, now_ms: u64) -> LeaseStats {
        let waiting = self.leases.values().filter(|h| h.revoking || h.expiry_ms <= now_ms).count();
        // A revocation queued to finish is counted once: held and revoking, or (a former
        // leader's) queued alone.
        let queued_alone = self
            .unfinished
            .iter()
            .filter(|l| !self.leases.get(&l.id).is_some_and(|h| h.revoking && h.lease == **l))
            .count();
        LeaseStats {
            active: self.leases.len() - waiting,
            revocation_backlog: waiting + queued_alone,
            heap_entries: self.heap.len(),
        }
    }

    /// The live leases' IDs, ascending.
    pub fn ids(&self) -> Vec<i64> {
        self.leases.values().filter(|h| !h.revoking).map(|h| h.lease.id).collect()
    }

    /// Up to `max` leases expired at `now_ms`, earliest first, marked revoking so they are
    /// taken once.
    pub fn take_expired(&mut self, now_ms: u64, max: usize) -> Vec<LeaseRef> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(Reverse((expiry_ms, id))) = self.heap.peek().copied() else { break };
            if expiry_ms > now_ms {
                break;
            }
            self.heap.pop();
            // A stale heap entry: the lease was renewed, revoked or re-granted since.
            if let Some(held) = self.leases.get_mut(&id)
                && held.expiry_ms == expiry_ms
                && !held.revoking
            {
                held.revoking = true;
                out.push(held.lease);
            }
        }
        out
    }

    /// Up to `max` revocations a former leader left unfinished.
    pub fn take_unfinished(&mut self, max: usize) -> Vec<LeaseRef> {
        let n = max.min(self.unfinished.len());
        self.unfinished.drain(..n).collect()
    }

    /// A revocation of `id` started (its `Revoke` applied): the lease is gone for clients.
    pub fn revoking(&mut self, id: i64) {
        if let Some(held) = self.leases.get_mut(&id) {
            held.revoking = true;
        }
    }

    /// A revocation of `lease` finished, or found the lease already gone.
    pub fn revoked(&mut self, lease: LeaseRef) {
        if self.leases.get(&lease.id).is_some_and(|h| h.lease == lease) {
            self.leases.remove(&lease.id);
        }
        if self.attached.get(&lease.id).is_some_and(|(grant, _)| *grant == lease.grant_index) {
            self.attached.remove(&lease.id);
        }
    }

    /// A revocation of an expired lease failed before its `Revoke` applied: it is tried
    /// again after [`REVOKE_RETRY_MS`].
    pub fn revoke_failed(&mut self, lease: LeaseRef, now_ms: u64) {
        if let Some(held) = self.leases.get_mut(&lease.id).filter(|h| h.lease == lease) {
            held.revoking = false;
            held.expiry_ms = now_ms.saturating_add(REVOKE_RETRY_MS);
            let entry = Reverse((held.expiry_ms, lease.id));
            self.heap.push(entry);
        }
    }

    /// A revocation that had started (its `Revoke` applied) could not finish here: it is
    /// queued to be finished again.
    pub fn finish_later(&mut self, lease: LeaseRef) {
        self.unfinished.push_back(lease);
    }

    /// Up to `max` remaining TTLs to checkpoint: live leases with more than `interval_ms`
    /// left (a lease expiring before the next pass is not worth one, as in etcd's
    /// `scheduleCheckpointIfNeeded`), continuing where the last pass stopped. Each is marked
    /// checkpointed, so its next renewal clears the checkpoint.
    pub fn checkpoints(&mut self, now_ms: u64, interval_ms: u64, max: usize) -> Vec<(i64, i64)> {
        let start = self.checkpoint_cursor.take();
        let after = start.map_or(i64::MIN, |c| c.saturating_add(1));
        let order: Vec<i64> = self
            .leases
            .range(after..)
            .chain(self.leases.range(..after))
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for id in order {
            if out.len() >= max {
                self.checkpoint_cursor = out.last().map(|(id, _)| *id);
                break;
            }
            let Some(held) = self.leases.get_mut(&id).filter(|h| !h.revoking) else { continue };
            let left_ms = held.expiry_ms.saturating_sub(now_ms);
            if left_ms > interval_ms {
                held.checkpointed = true;
                out.push((id, i64::try_from(left_ms).unwrap_or(i64::MAX)));
            }
        }
        out
    }
}

fn ttl_ms(ttl_seconds: i64) -> u64 {
    u64::try_from(ttl_seconds).unwrap_or(0).saturating_mul(1000)
}
