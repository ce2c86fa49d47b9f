//! The system under test as the workloads see it: the native protocol (`atoll-router`'s
//! client over QUIC) or any etcd v3 gRPC endpoint. Both take and answer the same request
//! types, so every workload runs unchanged against either (`--target native|etcd`). The
//! native client sends puts and txns straight to their shard's leader, as the router does for
//! any application (`Client::write_at_leader`, decision D23); etcd's clients send every
//! request to their endpoint, whose server forwards writes to its leader.

use crate::error_kind::{error_kind, snake_case};
use crate::etcd_client::{EtcdClient, EtcdError, EtcdKeepAlive};
use atoll_proto::kv::*;
use atoll_proto::lease::*;
use atoll_proto::{KeyedWrite, NativeResponse};
use atoll_router::{Client, ClientError};
use std::fmt;

/// One connection to the system under test.
#[derive(Clone, Debug)]
pub enum Backend {
    /// Atoll's native protocol.
    Native(Client),
    /// The etcd v3 gRPC API.
    Etcd(EtcdClient),
}

/// Why a request failed, by target.
#[derive(Debug)]
pub enum BackendError {
    /// A native client error.
    Native(ClientError),
    /// An etcd gRPC error.
    Etcd(EtcdError),
}

impl BackendError {
    /// The name of this failure in a report's `errors` map: the native kinds
    /// (`server_busy`, `timeout`...), or for gRPC `grpc_<status code>` (`grpc_unavailable`,
    /// `grpc_resource_exhausted`...), `connect` and `timeout`.
    pub fn kind(&self) -> String {
        match self {
            BackendError::Native(e) => error_kind(e),
            BackendError::Etcd(EtcdError::Status(status)) => {
                format!("grpc_{}", snake_case(&format!("{:?}", status.code())))
            }
            BackendError::Etcd(EtcdError::Connect { .. }) => "connect".into(),
            BackendError::Etcd(EtcdError::Timeout { .. }) => "timeout".into(),
        }
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Native(e) => e.fmt(f),
            BackendError::Etcd(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BackendError {}

/// A native answer of another kind than the request's: the server broke the protocol.
fn unexpected(resp: &NativeResponse) -> BackendError {
    let reason = format!("unexpected answer to a routed write: {resp:?}");
    BackendError::Native(ClientError::Protocol { reason })
}

impl From<ClientError> for BackendError {
    fn from(e: ClientError) -> Self {
        BackendError::Native(e)
    }
}

impl From<EtcdError> for BackendError {
    fn from(e: EtcdError) -> Self {
        BackendError::Etcd(e)
    }
}

impl Backend {
    /// Writes one key.
    pub async fn put(&self, req: PutRequest) -> Result<PutResponse, BackendError> {
        match self {
            Backend::Native(c) => match c.write_at_leader(KeyedWrite::Put(req)).await? {
                NativeResponse::Put(r) => Ok(r),
                other => Err(unexpected(&other)),
            },
            Backend::Etcd(c) => Ok(c.put(req).await?),
        }
    }

    /// Reads a key or a range.
    pub async fn range(&self, req: RangeRequest) -> Result<RangeResponse, BackendError> {
        match self {
            Backend::Native(c) => Ok(c.range(req).await?),
            Backend::Etcd(c) => Ok(c.range(req).await?),
        }
    }

    /// Compacts the history.
    pub async fn compact(
        &self,
        req: CompactionRequest,
    ) -> Result<CompactionResponse, BackendError> {
        match self {
            Backend::Native(c) => Ok(c.compact(req).await?),
            Backend::Etcd(c) => Ok(c.compact(req).await?),
        }
    }

    /// Runs a transaction.
    pub async fn txn(&self, req: TxnRequest) -> Result<TxnResponse, BackendError> {
        match self {
            Backend::Native(c) => match c.write_at_leader(KeyedWrite::Txn(req)).await? {
                NativeResponse::Txn(r) => Ok(r),
                other => Err(unexpected(&other)),
            },
            Backend::Etcd(c) => Ok(c.txn(req).await?),
        }
    }

    /// Grants a lease.
    pub async fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, BackendError> {
        match self {
            Backend::Native(c) => Ok(c.lease_grant(req).await?),
            Backend::Etcd(c) => Ok(c.lease_grant(req).await?),
        }
    }

    /// Revokes a lease and deletes its keys.
    pub async fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, BackendError> {
        match self {
            Backend::Native(c) => Ok(c.lease_revoke(req).await?),
            Backend::Etcd(c) => Ok(c.lease_revoke(req).await?),
        }
    }

    /// Lists the live leases.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, BackendError> {
        match self {
            Backend::Native(c) => Ok(c.lease_leases(LeaseLeasesRequest {}).await?),
            Backend::Etcd(c) => Ok(c.lease_leases().await?),
        }
    }

    /// A renewer of leases for one request loop: native renewals are single requests; etcd's
    /// go over a `LeaseKeepAlive` stream, opened at the first renewal.
    pub fn renewer(&self) -> Renewer {
        match self {
            Backend::Native(c) => Renewer::Native(c.clone()),
            Backend::Etcd(c) => Renewer::Etcd(c.clone(), None),
        }
    }
}

/// Renews leases for one request loop, one renewal at a time (see [`Backend::renewer`]).
#[derive(Debug)]
pub enum Renewer {
    /// One native request per renewal (decision D16).
    Native(Client),
    /// One gRPC stream, opened at the first renewal and again after one fails.
    Etcd(EtcdClient, Option<Box<EtcdKeepAlive>>),
}

impl Renewer {
    /// Renews a lease once; TTL 0 in the answer: the lease is gone.
    pub async fn renew(&mut self, id: i64) -> Result<LeaseKeepAliveResponse, BackendError> {
        let req = LeaseKeepAliveRequest { id };
        match self {
            Renewer::Native(c) => Ok(c.lease_keep_alive(req).await?),
            Renewer::Etcd(client, stream) => {
                // A failed stream is taken and not put back: the next renewal opens another.
                let (open, answer) = match stream.take() {
                    Some(mut open) => {
                        let answer = open.renew(req).await?;
                        (open, answer)
                    }
                    None => {
                        let (open, answer) = client.lease_keep_alive_stream(req).await?;
                        (Box::new(open), answer)
                    }
                };
                *stream = Some(open);
                Ok(answer)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grpc_failures_are_named_by_status_code() {
        let status = BackendError::Etcd(EtcdError::Status(tonic::Status::resource_exhausted(
            "etcdserver: too many requests",
        )));
        assert_eq!(status.kind(), "grpc_resource_exhausted");
        let status = BackendError::Etcd(EtcdError::Status(tonic::Status::unavailable("x")));
        assert_eq!(status.kind(), "grpc_unavailable");
        let timeout = BackendError::Etcd(EtcdError::Timeout { after: Duration::from_secs(1) });
        assert_eq!(timeout.kind(), "timeout");
        let native = BackendError::Native(ClientError::Timeout { after: Duration::from_secs(1) });
        assert_eq!(native.kind(), "timeout");
    }
}
