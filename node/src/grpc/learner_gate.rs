//! What a learner answers on the gateway (decision D22): etcd's interceptors
//! (`api/v3rpc/interceptor.go`, `isRPCSupportedForLearner` in `util.go`) refuse every RPC on
//! a learner except `Status`, a serializable `Range` and the `Snapshot` stream, with
//! "etcdserver: rpc not supported for learner" (FailedPrecondition). Atoll refuses the same
//! RPCs the same way, and also serves every `Range` (linearizable through a read index asked
//! of each shard's leader, DESIGN §7) and `RangeStream`, which is a Range in chunks.
//!
//! The gate is a tower layer in front of every service, as etcd's interceptor is in front of
//! every handler, so Cluster, Auth, Lock and Election are covered without a check in each.
//! Whether this member is a learner is read from its member record on every request, so a
//! promotion takes effect with the first request after the meta shard applied it here.

use super::status_of;
use crate::service::NodeService;
use atoll_proto::AtollError;
use futures::future::{Either, Ready, ready};
use std::task::{Context, Poll};
use tonic::codegen::{Service, http};

/// gRPC methods a learner serves.
const LEARNER_METHODS: [&str; 4] = [
    "/etcdserverpb.KV/Range",
    "/etcdserverpb.KV/RangeStream",
    "/etcdserverpb.Maintenance/Status",
    "/etcdserverpb.Maintenance/Snapshot",
];

/// Whether a learner serves the gRPC method at `path` (`/package.Service/Method`).
pub(super) fn learner_serves(path: &str) -> bool {
    LEARNER_METHODS.contains(&path)
}

/// Puts a [`LearnerGate`] in front of a service.
#[derive(Clone)]
pub(super) struct LearnerGateLayer {
    pub(super) service: NodeService,
}

impl<S> tower_layer::Layer<S> for LearnerGateLayer {
    type Service = LearnerGate<S>;

    fn layer(&self, inner: S) -> LearnerGate<S> {
        LearnerGate { inner, service: self.service.clone() }
    }
}

/// Answers etcd's learner error to the RPCs a learner does not serve; passes the rest on.
#[derive(Clone)]
pub(super) struct LearnerGate<S> {
    inner: S,
    service: NodeService,
}

impl<S, B, ResBody> Service<http::Request<B>> for LearnerGate<S>
where
    S: Service<http::Request<B>, Response = http::Response<ResBody>>,
    ResBody: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // The path check first: the learner flag costs a storage read.
        if !learner_serves(req.uri().path()) && self.service.is_learner() {
            let refused = status_of(AtollError::NotSupportedForLearner).into_http();
            return Either::Left(ready(Ok(refused)));
        }
        Either::Right(self.inner.call(req))
    }
}

#[cfg(test)]
mod tests {
    use super::learner_serves;

    #[test]
    fn a_learner_serves_reads_status_and_snapshots_only() {
        for served in [
            "/etcdserverpb.KV/Range",
            "/etcdserverpb.KV/RangeStream",
            "/etcdserverpb.Maintenance/Status",
            "/etcdserverpb.Maintenance/Snapshot",
        ] {
            assert!(learner_serves(served), "{served}");
        }
        for refused in [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.KV/Txn",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.Lease/LeaseGrant",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Maintenance/HashKV",
            "/etcdserverpb.Maintenance/Alarm",
            "/etcdserverpb.Auth/AuthStatus",
            "/v3lockpb.Lock/Lock",
            "/v3electionpb.Election/Leader",
            // A prefix or suffix of a served method is another method.
            "/etcdserverpb.KV/RangeX",
            "/etcdserverpb.KV/Rang",
        ] {
            assert!(!learner_serves(refused), "{refused}");
        }
    }
}
