//! `v3lockpb.Lock`: Lock and Unlock, etcd's server-side mutex (`server/etcdserver/api/
//! v3lock`, built on `client/v3/concurrency/mutex.go`) on the node's own request path, so
//! its keys are the ones etcd's client-side mutex (`etcdctl lock`) queues under too.
//!
//! Lock puts `<name>/<lease hex>` with the lease unless it exists, and holds the lock once
//! no key of the name with a lower create revision is left; it answers that ownership key,
//! which exists exactly as long as the lock is held. Unlock deletes it; so does the end of
//! the lease. A lock is re-entrant per lease: a second Lock with the same lease finds its
//! key and holds the lock as soon as the first does.

use super::Gateway;
use super::concurrency::{
    self, ClientGone, RecipeError, created_at, first_created, key_prefix, owner_key,
};
use crate::service::NodeService;
use atoll_proto::etcd::v3lockpb as pb;
use atoll_proto::etcd_convert::response::header_to_pb;
use atoll_proto::{
    PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest, TxnResponse, prefix_range_end,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The Lock service.
pub(super) struct LockService(pub(super) Arc<Gateway>);

#[tonic::async_trait]
impl pb::lock_server::Lock for LockService {
    async fn lock(
        &self,
        req: Request<pb::LockRequest>,
    ) -> Result<Response<pb::LockResponse>, Status> {
        let caller = super::caller_of(&req);
        let req = req.into_inner();
        self.0.check_recipe_keys(&caller, &req.name, true).await?;
        concurrency::detached(&self.0, move |service, gone| async move {
            lock(&service, req, gone).await
        })
        .await
    }

    async fn unlock(
        &self,
        req: Request<pb::UnlockRequest>,
    ) -> Result<Response<pb::UnlockResponse>, Status> {
        let caller = super::caller_of(&req);
        let key = req.into_inner().key;
        self.0.check_recipe_keys(&caller, &key, false).await?;
        let deleted = concurrency::delete(&self.0.service, &key).await;
        let header = deleted.map_err(RecipeError::into_status)?.header;
        Ok(Response::new(pb::UnlockResponse { header: header_to_pb(header) }))
    }
}

/// etcd's `Mutex.Lock` as the v3lock server runs it, with etcd 3.5's check that the key
/// still exists after waiting (3.4 answered success for a key its expired lease had taken
/// away, so two callers could both believe they held the lock).
async fn lock(
    service: &NodeService,
    req: pb::LockRequest,
    mut gone: ClientGone,
) -> Result<pb::LockResponse, RecipeError> {
    let lease = concurrency::session_lease(service, req.lease).await?;
    let prefix = key_prefix(&req.name);
    let key = owner_key(&prefix, lease);
    // A Txn may read the name's keys only when they all live in one shard; otherwise the
    // owner is found by the reads of the wait, which then also break ties (module doc of
    // `concurrency`).
    let whole = service.in_one_shard(&prefix, &prefix_range_end(&prefix));
    let queued = concurrency::txn(service, acquire(&prefix, &key, lease, whole)).await?;
    let revision = concurrency::own_revision(&queued)?;
    let held = if whole && owns_first(&queued, revision) {
        Ok(Some(queued.header))
    } else {
        concurrency::wait_turn(service, &prefix, &key, revision, !whole, &mut gone).await
    };
    // A lock taken for a client that went away meanwhile is nobody's: give it back.
    let held = held.and_then(|h| {
        if h.is_some() && gone.has_gone() { Err(RecipeError::ClientGone) } else { Ok(h) }
    });
    match held {
        Ok(Some(header)) => Ok(pb::LockResponse { header: header_to_pb(header), key }),
        Ok(None) => Err(RecipeError::MutexSessionExpired),
        Err(e) => {
            // Leave the queue, or the key would take the lock later for nobody (etcd's
            // `m.Unlock(client.Ctx())`); the first error is the answer.
            let _ = concurrency::delete(service, &key).await;
            Err(e)
        }
    }
}

/// etcd's acquiring txn: queue `key` with `lease` unless it exists, else read it; with
/// `owner`, both branches also read the name's oldest key, so an uncontended lock takes one
/// request.
fn acquire(prefix: &[u8], key: &[u8], lease: i64, owner: bool) -> TxnRequest {
    let put = PutRequest { key: key.to_vec(), lease, ..PutRequest::default() };
    let get = RangeRequest { key: key.to_vec(), ..RangeRequest::default() };
    let mut success = vec![RequestOp::Put(put)];
    let mut failure = vec![RequestOp::Range(get)];
    if owner {
        success.push(RequestOp::Range(first_created(prefix)));
        failure.push(RequestOp::Range(first_created(prefix)));
    }
    TxnRequest { compare: vec![created_at(key, 0)], success, failure }
}

/// Whether the oldest key the acquiring txn read is ours (or there was none).
fn owns_first(resp: &TxnResponse, revision: i64) -> bool {
    match resp.responses.get(1) {
        Some(ResponseOp::Range(owner)) => {
            owner.kvs.first().is_none_or(|kv| kv.create_revision == revision)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::{CompareTarget, KeyValue, RangeResponse};

    #[test]
    fn the_acquiring_txn_is_etcds() {
        let txn = acquire(b"l/", b"l/1f", 0x1f, true);
        assert_eq!(txn.compare.len(), 1);
        assert_eq!(
            (txn.compare[0].key.as_slice(), &txn.compare[0].target),
            (&b"l/1f"[..], &CompareTarget::Create(0))
        );
        match (&txn.success[..], &txn.failure[..]) {
            (
                [RequestOp::Put(put), RequestOp::Range(owner)],
                [RequestOp::Range(get), RequestOp::Range(owner2)],
            ) => {
                assert_eq!(
                    (put.key.as_slice(), put.value.as_slice(), put.lease),
                    (&b"l/1f"[..], &b""[..], 0x1f)
                );
                assert_eq!(
                    (get.key.as_slice(), get.range_end.as_slice()),
                    (&b"l/1f"[..], &b""[..])
                );
                assert_eq!(owner, &first_created(b"l/"));
                assert_eq!(owner2, owner);
            }
            other => panic!("unexpected ops {other:?}"),
        }
        let spanning = acquire(b"l/", b"l/1f", 0x1f, false);
        assert_eq!(
            (spanning.success.len(), spanning.failure.len()),
            (1, 1),
            "no range across shards"
        );
    }

    #[test]
    fn the_lock_is_held_when_the_oldest_key_is_ours_or_none_is_left() {
        let answer = |owner: Option<i64>| TxnResponse {
            succeeded: true,
            responses: vec![
                ResponseOp::Put(Default::default()),
                ResponseOp::Range(RangeResponse {
                    kvs: owner
                        .map(|rev| KeyValue { create_revision: rev, ..Default::default() })
                        .into_iter()
                        .collect(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        assert!(owns_first(&answer(Some(7)), 7));
        assert!(owns_first(&answer(None), 7));
        assert!(!owns_first(&answer(Some(3)), 7));
        assert!(!owns_first(&TxnResponse::default(), 7), "no owner read: not known to own");
    }
}
