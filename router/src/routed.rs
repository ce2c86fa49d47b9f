//! Writes routed by key straight to their shard's leader (DESIGN §6, decision D23): the
//! client caches the shard map and the members' client URLs, fetched from any node; it sends
//! each keyed write to the leader it believes in, which serves it without a forwarding hop.
//! A node that does not lead the shard answers `NotLeader` with its leader as the hint: the
//! client follows the hint, learning the client URLs of a member it does not know (one added
//! after bootstrap, decision D18) from a fresh member list first. `WrongShard` (the node's
//! map is newer) refreshes the map. Retries are bounded in number
//! ([`ROUTED_ATTEMPTS_MAX`]) and time (the request timeout), with the client's backoff.

use crate::client::{AttemptError, Client};
use crate::connection::EndpointSlot;
use crate::endpoint::parse_endpoint;
use crate::error::ClientError;
use crate::limits::ROUTED_ATTEMPTS_MAX;
use crate::retry::{Failure, backoff_delay, jitter};
use crate::shard_map::{ShardMapCache, ShardUpdate};
use atoll_proto::shard_map::{ShardMapRequest, ShardMapResponse};
use atoll_proto::{AtLeaderRequest, AtollError, KeyedWrite, NativeRequest, NativeResponse};
use atoll_proto::{NodeId, ShardId, encode_frame};
use std::sync::{Arc, MutexGuard};
use tokio::time::Instant;

/// Where one routed attempt goes.
enum Target {
    /// A member's client URL (the believed leader).
    Url(String),
    /// The client's current endpoint: no leader known yet.
    Current,
}

impl Client {
    /// Fetches the shard map, each shard's leader and the members from a node (through the
    /// meta shard's leader, so it is current) and takes them into the routing cache; returns
    /// the map's version. An older map than the cached one is not taken.
    pub async fn refresh_shard_map(&self) -> Result<u64, ClientError> {
        let resp = self.shard_map(ShardMapRequest { linearizable: true }).await?;
        let mut routing = self.routing();
        let cache = match routing.as_mut() {
            Some(cache) => {
                cache.replace(resp.map.clone()).map_err(invalid_map)?;
                cache
            }
            None => routing.insert(ShardMapCache::new(resp.map.clone()).map_err(invalid_map)?),
        };
        take_answer(cache, &resp);
        Ok(cache.map().version)
    }

    /// The routing cache's copy of the shard map, if one was fetched.
    pub fn cached_shard_map(&self) -> Option<atoll_proto::shard_map::ShardMap> {
        self.routing().as_ref().map(|c| c.map().clone())
    }

    /// The leader the routing cache believes leads the shard of `key`, if any.
    pub fn cached_leader(&self, key: &[u8]) -> Option<NodeId> {
        let routing = self.routing();
        let cache = routing.as_ref()?;
        cache.leader_hint(cache.shard_for_key(key).id)
    }

    /// Sends a keyed write to the leader of its shard (see the module documentation). A
    /// `NotLeader` answer proves the write was not applied, so following it is safe for
    /// every write; any other failure is returned as [`Client::request`] would.
    pub async fn write_at_leader(&self, write: KeyedWrite) -> Result<NativeResponse, ClientError> {
        let after = self.inner.config.request_timeout;
        let deadline = Instant::now() + after;
        match tokio::time::timeout_at(deadline, self.routed_attempts(write)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { after }),
        }
    }

    async fn routed_attempts(&self, write: KeyedWrite) -> Result<NativeResponse, ClientError> {
        if self.routing().is_none() {
            self.refresh_shard_map().await?;
        }
        let mut last = None;
        // Failures other than a redirect count against the client's `retries_max`, as they
        // do for any request; following a leader hint or a newer map does not.
        let mut retries = 0u32;
        let retries_max = self.inner.config.retries_max;
        for retry in 0..ROUTED_ATTEMPTS_MAX {
            if retry > 0 {
                tokio::time::sleep(backoff_delay(retry - 1, jitter())).await;
            }
            let (shard, map_version, target) = self.route(write.routing_key());
            let req =
                NativeRequest::AtLeader(AtLeaderRequest { map_version, write: write.clone() });
            let (failure, error) = match self.send_to(&target, &req).await {
                Ok(response) => return Ok(response),
                Err(failed) => failed,
            };
            tracing::debug!(shard_id = shard.0, retry, error = %error, "routed write refused");
            match failure {
                Failure::Server(AtollError::NotLeader { shard, leader_hint }) => {
                    self.follow_hint(shard, leader_hint).await?;
                }
                Failure::Server(AtollError::WrongShard { .. }) => {
                    self.refresh_shard_map().await?;
                }
                Failure::Server(AtollError::NoLeader { .. } | AtollError::Busy { .. })
                    if retries < retries_max =>
                {
                    retries += 1;
                }
                // The believed leader is unreachable: forget it, ask elsewhere.
                Failure::Connect | Failure::NotSent if retries < retries_max => {
                    retries += 1;
                    self.routing().as_mut().map(|c| c.on_not_leader(shard, None));
                    if matches!(target, Target::Current) {
                        self.advance_from(self.current_slot().0);
                    }
                }
                // Any other refusal, a write that may have been applied, or retries spent.
                _ => return Err(error),
            }
            last = Some(error);
        }
        Err(last.unwrap_or(ClientError::Timeout { after: self.inner.config.request_timeout }))
    }

    /// The shard of `key`, the cached map's version and where to send: the believed
    /// leader's first client URL, or the current endpoint.
    fn route(&self, key: &[u8]) -> (ShardId, u64, Target) {
        let routing = self.routing();
        let Some(cache) = routing.as_ref() else {
            return (ShardId(0), 0, Target::Current);
        };
        let shard = cache.shard_for_key(key).id;
        let target = match cache.leader_urls(shard).first() {
            Some(url) => Target::Url(url.clone()),
            None => Target::Current,
        };
        (shard, cache.map().version, target)
    }

    /// Takes a `NotLeader` hint; a hint naming a member the cache does not know, or whose
    /// client URLs it lacks, refreshes the map and the member list first.
    async fn follow_hint(
        &self,
        shard: ShardId,
        leader_hint: Option<NodeId>,
    ) -> Result<(), ClientError> {
        let known = {
            let mut routing = self.routing();
            let Some(cache) = routing.as_mut() else { return Ok(()) };
            let update = cache.on_not_leader(shard, leader_hint);
            update == ShardUpdate::Applied
                && (leader_hint.is_none() || !cache.leader_urls(shard).is_empty())
        };
        if !known {
            self.refresh_shard_map().await?;
            if let Some(cache) = self.routing().as_mut() {
                cache.on_not_leader(shard, leader_hint);
            }
        }
        Ok(())
    }

    async fn send_to(
        &self,
        target: &Target,
        req: &NativeRequest,
    ) -> Result<NativeResponse, AttemptError> {
        let frame = encode_frame(req).map_err(|e| {
            let reason = format!("request does not encode: {e}");
            (Failure::Fatal, ClientError::Protocol { reason })
        })?;
        match target {
            Target::Current => self.attempt(self.current_slot().1, &frame).await,
            Target::Url(url) => {
                let slot = self.leader_slot(url).map_err(|e| (Failure::Fatal, e))?;
                self.attempt(&slot, &frame).await
            }
        }
    }

    /// The connection slot of a member's client URL, made on first use and kept.
    fn leader_slot(&self, url: &str) -> Result<Arc<EndpointSlot>, ClientError> {
        let mut slots = self.inner.leader_slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(url) {
            return Ok(slot.clone());
        }
        let target = parse_endpoint(url, self.inner.config.server_name.as_deref())?;
        let slot = Arc::new(EndpointSlot::new(target));
        slots.insert(url.to_string(), slot.clone());
        Ok(slot)
    }

    fn routing(&self) -> MutexGuard<'_, Option<ShardMapCache>> {
        self.inner.routing.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Takes the members and the leaders a map answer names.
fn take_answer(cache: &mut ShardMapCache, resp: &ShardMapResponse) {
    cache.set_members(&resp.members);
    for (shard, leader) in resp.map.shards.iter().zip(&resp.leaders) {
        if leader.0 != 0 {
            cache.set_leader(shard.id, *leader);
        }
    }
}

fn invalid_map(e: crate::shard_map::ShardMapError) -> ClientError {
    ClientError::Protocol { reason: format!("the node answered an invalid shard map: {e}") }
}
