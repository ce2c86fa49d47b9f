//! `v3electionpb.Election`: Campaign, Proclaim, Leader, Observe and Resign, etcd's
//! server-side elections (`server/etcdserver/api/v3election`, built on
//! `client/v3/concurrency/election.go`) on the node's own request path, so its keys are the
//! ones etcd's client-side elections (`etcdctl elect`) use too.
//!
//! A candidate puts `<name>/<lease hex>` with its value and the lease, and leads once no key
//! of the name with a lower create revision is left. The leader key (name, key, create
//! revision, lease) it is answered proves leadership: Proclaim replaces the value and Resign
//! deletes the key only while the key still has that create revision. The leader's
//! announcement is the oldest key's value; Observe streams each announcement in order.

use super::concurrency::{
    self, ClientGone, RecipeError, Watch, created_at, first_created, key_prefix, owner_key,
};
use super::{Gateway, ResponseStream, stream_of};
use crate::service::NodeService;
use atoll_proto::etcd::v3electionpb as pb;
use atoll_proto::etcd_convert::response::{header_to_pb, kv_to_pb};
use atoll_proto::watch::EventType;
use atoll_proto::{
    DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, prefix_range_end,
};
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Announcements queued ahead of an observer that does not read them; the observation
/// waits for room (etcd's observer blocks on an unbuffered channel).
pub const OBSERVE_RESPONSES_QUEUED_MAX: usize = 16;

/// The Election service.
pub(super) struct ElectionService(pub(super) Arc<Gateway>);

#[tonic::async_trait]
impl pb::election_server::Election for ElectionService {
    type ObserveStream = ResponseStream<pb::LeaderResponse>;

    async fn campaign(
        &self,
        req: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::CampaignResponse>, Status> {
        let caller = super::caller_of(&req);
        let req = req.into_inner();
        self.0.check_recipe_keys(&caller, &req.name, true).await?;
        concurrency::detached(&self.0, move |service, gone| async move {
            campaign(&service, req, gone).await
        })
        .await
    }

    async fn proclaim(
        &self,
        req: Request<pb::ProclaimRequest>,
    ) -> Result<Response<pb::ProclaimResponse>, Status> {
        let caller = super::caller_of(&req);
        let pb::ProclaimRequest { leader, value } = req.into_inner();
        if let Some(l) = &leader {
            self.0.check_recipe_keys(&caller, &l.key, false).await?;
        }
        let service = &self.0.service;
        let proclaimed = async {
            let leader = leader.ok_or(RecipeError::MissingLeaderKey)?;
            let lease = concurrency::session_lease(service, leader.lease).await?;
            proclaim(service, &leader.key, leader.rev, lease, value).await
        };
        let header = proclaimed.await.map_err(RecipeError::into_status)?;
        Ok(Response::new(pb::ProclaimResponse { header: header_to_pb(header) }))
    }

    async fn leader(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<pb::LeaderResponse>, Status> {
        let caller = super::caller_of(&req);
        let name = req.into_inner().name;
        self.0.check_recipe_keys(&caller, &name, true).await?;
        let prefix = key_prefix(&name);
        let read = concurrency::range(&self.0.service, first_created(&prefix)).await;
        let read = read.map_err(RecipeError::into_status)?;
        let Some(kv) = read.kvs.into_iter().next() else {
            return Err(RecipeError::NoLeader.into_status());
        };
        Ok(Response::new(leader_response(read.header, kv)))
    }

    async fn observe(
        &self,
        req: Request<pb::LeaderRequest>,
    ) -> Result<Response<Self::ObserveStream>, Status> {
        let caller = super::caller_of(&req);
        let name = req.into_inner().name;
        self.0.check_recipe_keys(&caller, &name, true).await?;
        let permit = self.0.recipe_permit()?;
        let prefix = key_prefix(&name);
        let (responses, responses_rx) = mpsc::channel(OBSERVE_RESPONSES_QUEUED_MAX);
        let service = self.0.service.clone();
        let observing = tokio::spawn(async move {
            let _permit = permit;
            // etcd's observer ends the stream, without an error, on any failure: the client
            // sees the stream end and observes again (etcdctl: "elect: observer lost").
            if let Err(e) = observe(&service, &prefix, &responses).await {
                tracing::debug!(error = %e, "election observer ended");
            }
        });
        Ok(Response::new(stream_of(responses_rx, observing)))
    }

    async fn resign(
        &self,
        req: Request<pb::ResignRequest>,
    ) -> Result<Response<pb::ResignResponse>, Status> {
        let caller = super::caller_of(&req);
        let leader = req.into_inner().leader;
        if let Some(l) = &leader {
            self.0.check_recipe_keys(&caller, &l.key, false).await?;
        }
        let service = &self.0.service;
        let resigned = async {
            let leader = leader.ok_or(RecipeError::MissingLeaderKey)?;
            // etcd's server opens a session (granting a lease for lease 0) before resigning.
            concurrency::session_lease(service, leader.lease).await?;
            resign(service, &leader.key, leader.rev).await
        };
        let header = resigned.await.map_err(RecipeError::into_status)?;
        Ok(Response::new(pb::ResignResponse { header: header_to_pb(header) }))
    }
}

/// etcd's `Election.Campaign` as the v3election server runs it. A candidate whose lease ended
/// while it waited is refused with "election: session expired" where etcd answers success
/// with a key that no longer exists (docs/decisions.md, "Lock and Election").
async fn campaign(
    service: &NodeService,
    req: pb::CampaignRequest,
    mut gone: ClientGone,
) -> Result<pb::CampaignResponse, RecipeError> {
    let lease = concurrency::session_lease(service, req.lease).await?;
    let prefix = key_prefix(&req.name);
    let key = owner_key(&prefix, lease);
    let queued = concurrency::txn(service, enter(&key, &req.value, lease)).await?;
    let rev = concurrency::own_revision(&queued)?;
    if !queued.succeeded && announced(&queued) != Some(req.value.as_slice()) {
        // The lease campaigns already, with another value: announce this one.
        if let Err(e) = proclaim(service, &key, rev, lease, req.value.clone()).await {
            let _ = resign(service, &key, rev).await;
            return Err(e);
        }
    }
    let spans_shards = !service.in_one_shard(&prefix, &prefix_range_end(&prefix));
    let turn = concurrency::wait_turn(service, &prefix, &key, rev, spans_shards, &mut gone).await;
    let turn = turn.and_then(|held| {
        if held.is_some() && gone.has_gone() { Err(RecipeError::ClientGone) } else { Ok(held) }
    });
    match turn {
        Ok(Some(_)) => {
            let leader = pb::LeaderKey { name: req.name, key, rev, lease };
            Ok(pb::CampaignResponse { header: header_to_pb(queued.header), leader: Some(leader) })
        }
        Ok(None) => Err(RecipeError::ElectionSessionExpired),
        // Only a client that went away gives up its place, as etcd resigns only when the
        // campaign's context ends; after other errors the key stays queued with its lease.
        Err(RecipeError::ClientGone) => {
            let _ = resign(service, &key, rev).await;
            Err(RecipeError::ClientGone)
        }
        Err(e) => Err(e),
    }
}

/// etcd's campaign txn: put `key` with `value` and `lease` unless it exists, else read it.
fn enter(key: &[u8], value: &[u8], lease: i64) -> TxnRequest {
    let put =
        PutRequest { key: key.to_vec(), value: value.to_vec(), lease, ..PutRequest::default() };
    let get = RangeRequest { key: key.to_vec(), ..RangeRequest::default() };
    TxnRequest {
        compare: vec![created_at(key, 0)],
        success: vec![RequestOp::Put(put)],
        failure: vec![RequestOp::Range(get)],
    }
}

/// The value of the existing key the campaign txn read, if it read one.
fn announced(resp: &atoll_proto::TxnResponse) -> Option<&[u8]> {
    match resp.responses.first() {
        Some(ResponseOp::Range(r)) => r.kvs.first().map(|kv| kv.value.as_slice()),
        _ => None,
    }
}

/// etcd's `Election.Proclaim`: replaces the value of the leader key `key` while it still has
/// create revision `rev`, with `lease`; otherwise "election: not leader".
async fn proclaim(
    service: &NodeService,
    key: &[u8],
    rev: i64,
    lease: i64,
    value: Vec<u8>,
) -> Result<ResponseHeader, RecipeError> {
    let put = PutRequest { key: key.to_vec(), value, lease, ..PutRequest::default() };
    let txn = TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![RequestOp::Put(put)],
        failure: Vec::new(),
    };
    let resp = concurrency::txn(service, txn).await?;
    if !resp.succeeded {
        return Err(RecipeError::NotLeader);
    }
    Ok(resp.header)
}

/// etcd's `Election.Resign`: deletes the leader key `key` if it still has create revision
/// `rev`. Resigning a leadership already lost succeeds, as in etcd.
async fn resign(
    service: &NodeService,
    key: &[u8],
    rev: i64,
) -> Result<ResponseHeader, RecipeError> {
    let delete = DeleteRangeRequest { key: key.to_vec(), ..DeleteRangeRequest::default() };
    let txn = TxnRequest {
        compare: vec![created_at(key, rev)],
        success: vec![RequestOp::DeleteRange(delete)],
        failure: Vec::new(),
    };
    Ok(concurrency::txn(service, txn).await?.header)
}

fn leader_response(header: ResponseHeader, kv: KeyValue) -> pb::LeaderResponse {
    pb::LeaderResponse { header: header_to_pb(header), kv: Some(kv_to_pb(kv)) }
}

/// etcd's `Election.observe`: the current leader's announcement, then each new value of its
/// key until it is deleted, then the next leader's; while nobody leads, the first key put.
/// Returns when the observer is gone or on the first error.
async fn observe(
    service: &NodeService,
    prefix: &[u8],
    out: &mpsc::Sender<Result<pb::LeaderResponse, Status>>,
) -> Result<(), RecipeError> {
    let spans_shards = !service.in_one_shard(prefix, &prefix_range_end(prefix));
    loop {
        let read = concurrency::range(service, first_created(prefix)).await?;
        let (header, kv) = match read.kvs.into_iter().next() {
            Some(kv) if !spans_shards => (read.header, kv),
            // A read across shards answers the newest shard's revision, not the cut it read
            // (D15): the leader's key is read again on its own, whose revision is its watch's
            // start.
            Some(kv) => match concurrency::current(service, &kv.key, kv.create_revision).await? {
                Some(now) => now,
                None => continue,
            },
            None => {
                match first_candidate(service, prefix, read.header.revision, spans_shards).await? {
                    Some(first) => first,
                    None => continue,
                }
            }
        };
        let from = header.revision + 1;
        let key = kv.key.clone();
        out.send(Ok(leader_response(header, kv))).await.map_err(|_| RecipeError::ClientGone)?;
        follow(service, key, from, out).await?;
    }
}

/// While nobody leads: the first key put under `prefix` after the read that found none,
/// answered at header revision `read_at` (etcd watches from there for the first put). With
/// a prefix across shards the read is repeated at exactly `read_at` first, since the first
/// read was a cut below it; `None` if that read finds a key after all.
async fn first_candidate(
    service: &NodeService,
    prefix: &[u8],
    read_at: i64,
    spans_shards: bool,
) -> Result<Option<(ResponseHeader, KeyValue)>, RecipeError> {
    if spans_shards {
        let at = RangeRequest { revision: read_at, ..first_created(prefix) };
        if !concurrency::range(service, at).await?.kvs.is_empty() {
            return Ok(None);
        }
    }
    let mut watch =
        Watch::open(service, prefix.to_vec(), prefix_range_end(prefix), read_at).await?;
    loop {
        let resp = watch.next().await?;
        if let Some(put) = resp.events.into_iter().find(|e| e.kind == EventType::Put) {
            // etcd answers the put's revision: a response may hold later events too.
            let header = ResponseHeader { revision: put.kv.mod_revision, ..resp.header };
            return Ok(Some((header, put.kv)));
        }
    }
}

/// Sends every new value of `key` from `revision` on; returns once the key is deleted.
async fn follow(
    service: &NodeService,
    key: Vec<u8>,
    revision: i64,
    out: &mpsc::Sender<Result<pb::LeaderResponse, Status>>,
) -> Result<(), RecipeError> {
    let mut watch = Watch::open(service, key, Vec::new(), revision).await?;
    loop {
        let resp = watch.next().await?;
        for event in resp.events {
            if event.kind == EventType::Delete {
                return Ok(());
            }
            let announcement = leader_response(resp.header.clone(), event.kv);
            out.send(Ok(announcement)).await.map_err(|_| RecipeError::ClientGone)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::{CompareTarget, RangeResponse, TxnResponse};

    #[test]
    fn the_campaign_txn_is_etcds() {
        let txn = enter(b"e/1f", b"v", 0x1f);
        assert_eq!(
            (txn.compare[0].key.as_slice(), &txn.compare[0].target),
            (&b"e/1f"[..], &CompareTarget::Create(0))
        );
        match (&txn.success[..], &txn.failure[..]) {
            ([RequestOp::Put(put)], [RequestOp::Range(get)]) => {
                assert_eq!(
                    (put.key.as_slice(), put.value.as_slice(), put.lease),
                    (&b"e/1f"[..], &b"v"[..], 0x1f)
                );
                assert_eq!(
                    (get.key.as_slice(), get.range_end.as_slice()),
                    (&b"e/1f"[..], &b""[..])
                );
            }
            other => panic!("unexpected ops {other:?}"),
        }
    }

    #[test]
    fn a_queued_candidate_reads_its_announced_value() {
        let kv = KeyValue { value: b"old".to_vec(), ..Default::default() };
        let existing = TxnResponse {
            responses: vec![ResponseOp::Range(RangeResponse {
                kvs: vec![kv],
                ..Default::default()
            })],
            ..Default::default()
        };
        assert_eq!(announced(&existing), Some(&b"old"[..]));
        assert_eq!(announced(&TxnResponse::default()), None);
    }
}
