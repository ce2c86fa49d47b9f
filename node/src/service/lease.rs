//! Lease requests (decision D16): served by the meta shard's leader, forwarded to it from any
//! other node like a write; and the attach check of a Put or Txn that names leases.

use super::lease_manager::{Finishing, LEASE_ID_ATTEMPTS_MAX, LeaseManager};
use super::{NodeService, Origin, propose};
use atoll_proto::*;
use atoll_shard::lease::{keys_of_lease, lease_records};
use atoll_shard::mvcc::WriteResponse;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl NodeService {
    pub(super) fn lease_manager(&self) -> Result<&Arc<LeaseManager>, AtollError> {
        self.inner.leases.get().ok_or(AtollError::Stopping)
    }

    /// Serves a lease request on the meta shard's leader: here, or forwarded there for a
    /// client, retried across elections like a write.
    pub(super) async fn serve_lease(
        &self,
        req: NativeRequest,
        origin: Origin,
    ) -> Result<NativeResponse, AtollError> {
        self.until_led(origin, |deadline| self.lease_once(req.clone(), origin, deadline)).await
    }

    /// `None` on the meta shard's leader, which serves `req` itself; elsewhere the leader's
    /// answer to `req` forwarded from a client, or `NotLeader` to a peer (which retries).
    pub(super) async fn unless_meta_leader(
        &self,
        req: &NativeRequest,
        origin: Origin,
        deadline: Instant,
    ) -> Result<Option<NativeResponse>, AtollError> {
        let meta = self.wait_for_leader(ShardId::META, deadline).await?;
        let leader = meta.published.leader();
        if leader == self.inner.identity.member_id {
            return Ok(None);
        }
        if origin == Origin::Client {
            return self.forward(meta, leader, req.clone()).await.map(Some);
        }
        Err(AtollError::NotLeader { shard: ShardId::META, leader_hint: Some(NodeId(leader)) })
    }

    async fn lease_once(
        &self,
        req: NativeRequest,
        origin: Origin,
        deadline: Instant,
    ) -> Result<NativeResponse, AtollError> {
        if let Some(answer) = self.unless_meta_leader(&req, origin, deadline).await? {
            return Ok(answer);
        }
        Ok(match req {
            NativeRequest::LeaseGrant(r) => NativeResponse::LeaseGrant(self.lease_grant(r).await?),
            NativeRequest::LeaseRevoke(r) => {
                NativeResponse::LeaseRevoke(self.lease_revoke(r).await?)
            }
            NativeRequest::LeaseKeepAlive(r) => {
                NativeResponse::LeaseKeepAlive(self.lease_keep_alive(r).await?)
            }
            NativeRequest::LeaseTimeToLive(r) => {
                NativeResponse::LeaseTimeToLive(self.lease_time_to_live(r).await?)
            }
            NativeRequest::LeaseLeases(_) => {
                NativeResponse::LeaseLeases(self.lease_leases().await?)
            }
            NativeRequest::LeaseLookup(r) => NativeResponse::LeaseLookup(LeaseLookupResponse {
                leases: self.lease_lookup_here(&r.ids, r.shard).await?,
            }),
            other => {
                let reason = format!("not a lease request: {other:?}");
                return Err(AtollError::Malformed { reason });
            }
        })
    }

    /// Makes sure this node leads the meta shard and holds the lease state of its current
    /// term, loading it from the records the first time (etcd's `Promote`); returns the term.
    pub(super) async fn leading_term(&self) -> Result<u64, AtollError> {
        let manager = self.lease_manager()?;
        let meta = self.inner.shards.meta();
        let me = self.inner.identity.member_id;
        let term = meta.published.term();
        let not_leader = || AtollError::NotLeader {
            shard: ShardId::META,
            leader_hint: Some(NodeId(meta.published.leader())).filter(|n| n.0 != 0),
        };
        if meta.published.leader() != me {
            return Err(not_leader());
        }
        if manager.holds(term) {
            return Ok(term);
        }
        let _loading = manager.loading.lock().await;
        if manager.holds(term) {
            return Ok(term);
        }
        // A read index confirmed in this term is applied only after every entry of earlier
        // terms: the records read next include every grant, revoke and checkpoint before.
        self.read_index(ShardId::META).await?;
        let store = meta.store.clone();
        let db = self.inner.storage.db.clone();
        let records = tokio::task::spawn_blocking(move || lease_records(&store, &db.snapshot()))
            .await
            .map_err(|_| AtollError::Stopping)?
            .map_err(AtollError::from)?;
        if meta.published.term() != term || meta.published.leader() != me {
            return Err(AtollError::LeaderChanged);
        }
        manager.promote(term, records);
        Ok(term)
    }

    /// Proposes a lease record change to the local meta replica and waits for it to apply,
    /// however long that takes: callers run it in their own task so the outcome is always
    /// known to the lease state, even when the client gave up.
    pub(super) async fn propose_meta(&self, op: LeaseOp) -> Result<LeaseOpResponse, AtollError> {
        let rx = propose(self.inner.shards.meta(), WriteOp::Lease(op)).await?;
        match rx.await {
            Ok(Ok(WriteResponse::Lease(r))) => Ok(r),
            Ok(Ok(other)) => {
                Err(AtollError::Malformed { reason: format!("lease op answered {other:?}") })
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(AtollError::Stopping),
        }
    }

    /// Runs `work` in its own task and waits for it up to the request timeout; the task goes
    /// on when the caller stops waiting.
    async fn detached<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, AtollError>> + Send + 'static,
    ) -> Result<T, AtollError> {
        let task = tokio::spawn(work);
        match tokio::time::timeout(self.inner.request_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AtollError::Stopping),
            Err(_) => Err(AtollError::Timeout),
        }
    }

    async fn lease_grant(&self, req: LeaseGrantRequest) -> Result<LeaseGrantResponse, AtollError> {
        if req.ttl > LEASE_TTL_MAX_SECONDS {
            return Err(AtollError::LeaseTtlTooLarge);
        }
        let term = self.leading_term().await?;
        let ttl = req.ttl.max(self.lease_manager()?.config.min_ttl_seconds);
        let this = self.clone();
        let record = self.detached(async move { this.grant_in(term, req.id, ttl).await }).await?;
        let (id, ttl) = (record.lease.id, record.ttl);
        Ok(LeaseGrantResponse { header: self.header_at(term), id, ttl })
    }

    async fn grant_in(&self, term: u64, asked: i64, ttl: i64) -> Result<LeaseRecord, AtollError> {
        let manager = self.lease_manager()?;
        for _ in 0..LEASE_ID_ATTEMPTS_MAX {
            let id = match asked {
                0 => manager.with_core(term, fresh_id).ok_or(AtollError::LeaderChanged)??,
                id => id,
            };
            match self.propose_meta(LeaseOp::Grant { id, ttl }).await {
                Ok(LeaseOpResponse { record: Some(record), .. }) => {
                    let now = manager.now_ms();
                    manager.with_core(term, |core| core.granted(record, now));
                    manager.counters.granted.fetch_add(1, Ordering::Relaxed);
                    return Ok(record);
                }
                Ok(other) => {
                    let reason = format!("grant answered without a record: {other:?}");
                    return Err(AtollError::Malformed { reason });
                }
                Err(AtollError::LeaseExists) if asked == 0 => continue,
                Err(e @ (AtollError::Stopping | AtollError::Timeout)) => {
                    // The grant may have applied without the lease state hearing of it: load
                    // the state anew from the records rather than let a lease never expire.
                    manager.step_down();
                    return Err(e);
                }
                // Refused or replaced before it applied: nothing to learn.
                Err(e) => return Err(e),
            }
        }
        Err(AtollError::LeaseExists)
    }

    async fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, AtollError> {
        let term = self.leading_term().await?;
        let this = self.clone();
        self.detached(async move {
            let op = LeaseOp::Revoke { id: req.id, grant_index: 0 };
            let record = this.propose_meta(op).await?.record.ok_or(AtollError::LeaseNotFound)?;
            let manager = this.lease_manager()?;
            // Marked before the batch asks which shards to visit: no attach after this.
            manager.with_core(term, |core| core.revoking(req.id));
            let (done, finished) = tokio::sync::oneshot::channel();
            let lease = record.lease;
            manager.queue_finish(Finishing { term, lease, permit: None, done: Some(done) });
            finished.await.map_err(|_| AtollError::Stopping)?
        })
        .await?;
        Ok(LeaseRevokeResponse { header: self.header_at(term) })
    }

    async fn lease_keep_alive(
        &self,
        req: LeaseKeepAliveRequest,
    ) -> Result<LeaseKeepAliveResponse, AtollError> {
        let term = self.leading_term().await?;
        let manager = self.lease_manager()?;
        let now = manager.now_ms();
        let renewed = manager
            .with_core(term, |core| core.renew(req.id, now))
            .ok_or(AtollError::LeaderChanged)?;
        let header = self.header_at(term);
        let Some(renewed) = renewed else {
            // etcd answers a keepalive of an unknown lease with TTL 0 on its stream.
            return Ok(LeaseKeepAliveResponse { header, id: req.id, ttl: 0 });
        };
        if renewed.clear_checkpoint {
            // A checkpointed remaining TTL would survive a leader change and undo this
            // renewal: clear it before answering, as etcd's Renew does.
            let this = self.clone();
            let op = LeaseOp::Checkpoint { remaining: vec![(req.id, 0)] };
            self.detached(async move { this.propose_meta(op).await }).await?;
        }
        Ok(LeaseKeepAliveResponse { header, id: req.id, ttl: renewed.ttl_seconds })
    }

    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, AtollError> {
        let term = self.leading_term().await?;
        let manager = self.lease_manager()?;
        let now = manager.now_ms();
        let found = manager
            .with_core(term, |core| core.time_to_live(req.id, now))
            .ok_or(AtollError::LeaderChanged)?;
        let header = self.header_at(term);
        let Some(ttl) = found else {
            // etcd: an expired or unknown lease answers TTL -1, not an error.
            return Ok(LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                ..Default::default()
            });
        };
        let keys = if req.keys { self.keys_of_lease(ttl.lease).await? } else { Vec::new() };
        Ok(LeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: ttl.remaining_seconds,
            granted_ttl: ttl.granted_seconds,
            keys,
        })
    }

    /// The keys attached to `lease` on every data shard, read linearizably from this node's
    /// replicas (each after a read index), in key order.
    async fn keys_of_lease(&self, lease: LeaseRef) -> Result<Vec<Vec<u8>>, AtollError> {
        let shards: Vec<_> =
            self.inner.shards.handles().map(|(id, h)| (id, h.store.clone())).collect();
        futures::future::try_join_all(shards.iter().map(|(id, _)| self.read_index(*id))).await?;
        let _permit = self.inner.reads.acquire().await.map_err(|_| AtollError::Stopping)?;
        let db = self.inner.storage.db.clone();
        let mut keys = tokio::task::spawn_blocking(move || {
            let snap = db.snapshot();
            let mut keys = Vec::new();
            for (_, store) in &shards {
                keys.extend(keys_of_lease(store, &snap, lease)?);
            }
            Ok::<_, atoll_shard::StorageError>(keys)
        })
        .await
        .map_err(|_| AtollError::Stopping)?
        .map_err(AtollError::from)?;
        keys.sort();
        Ok(keys)
    }

    async fn lease_leases(&self) -> Result<LeaseLeasesResponse, AtollError> {
        let term = self.leading_term().await?;
        let ids = self
            .lease_manager()?
            .with_core(term, |core| core.ids())
            .ok_or(AtollError::LeaderChanged)?;
        Ok(LeaseLeasesResponse { header: self.header_at(term), ids })
    }

    /// The grants of live leases a write attaches on `shard`, on the meta shard's leader
    /// (etcd's `lessor.Lookup`); the core remembers the shard for their revocation (D24).
    async fn lease_lookup_here(
        &self,
        ids: &[i64],
        shard: ShardId,
    ) -> Result<Vec<LeaseRef>, AtollError> {
        let term = self.leading_term().await?;
        let found = self
            .lease_manager()?
            .with_core(term, |core| {
                ids.iter().map(|id| core.attach(*id, shard)).collect::<Option<Vec<_>>>()
            })
            .ok_or(AtollError::LeaderChanged)?;
        found.ok_or(AtollError::LeaseNotFound)
    }

    /// A Put or Txn naming leases, going to `shard`, becomes a [`LeasedWrite`] carrying the
    /// grants the meta shard's leader vouched for; other writes pass unchanged.
    pub(super) async fn attach_leases(
        &self,
        op: WriteOp,
        shard: ShardId,
        origin: Origin,
    ) -> Result<WriteOp, AtollError> {
        let mut ids = Vec::new();
        match &op {
            WriteOp::Put(p) => lease_of_put(p, &mut ids),
            WriteOp::Txn(t) => leases_of_txn(t, &mut ids),
            _ => {}
        }
        if ids.is_empty() {
            return Ok(op);
        }
        ids.sort_unstable();
        ids.dedup();
        let req = NativeRequest::LeaseLookup(LeaseLookupRequest { ids, shard });
        let leases = match self.serve_lease(req, origin).await? {
            NativeResponse::LeaseLookup(r) => r.leases,
            other => return Err(super::unexpected(&other)),
        };
        Ok(WriteOp::Leased(LeasedWrite { leases, op: Box::new(op) }))
    }
}

fn lease_of_put(put: &PutRequest, ids: &mut Vec<i64>) {
    if put.lease != 0 && !put.ignore_lease {
        ids.push(put.lease);
    }
}

fn leases_of_txn(txn: &TxnRequest, ids: &mut Vec<i64>) {
    for op in txn.success.iter().chain(&txn.failure) {
        match op {
            RequestOp::Put(p) => lease_of_put(p, ids),
            RequestOp::Txn(t) => leases_of_txn(t, ids),
            RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
        }
    }
}

/// A random positive lease ID not held yet (etcd draws from its request ID generator).
fn fresh_id(core: &mut atoll_shard::lease::LeaseCore) -> Result<i64, AtollError> {
    use ring::rand::SecureRandom as _;
    let rng = ring::rand::SystemRandom::new();
    for _ in 0..LEASE_ID_ATTEMPTS_MAX {
        let mut bytes = [0u8; 8];
        rng.fill(&mut bytes).map_err(|_| AtollError::Busy { limit: "system randomness".into() })?;
        let id = i64::from_be_bytes(bytes) & i64::MAX;
        if id != 0 && !core.contains(id) {
            return Ok(id);
        }
    }
    Err(AtollError::LeaseExists)
}
