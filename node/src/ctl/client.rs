//! What atollctl needs from a client connection, as two small traits: the commands are
//! written against them, [`crate::ctl::router_client`] implements them with the router
//! library, and the command tests with an in-memory fake.

use crate::ctl::error::CtlError;
use atoll_proto::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse,
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, PutRequest, PutResponse, RangeRequest,
    RangeResponse, StatusResponse, TxnRequest, TxnResponse, WatchCreateRequest, WatchResponse,
};
use std::future::Future;

/// A connection to a cluster through one or more endpoints.
pub trait KvClient {
    /// Reads a key or range.
    fn range(&self, req: RangeRequest) -> impl Future<Output = Result<RangeResponse, CtlError>>;
    /// Writes a key.
    fn put(&self, req: PutRequest) -> impl Future<Output = Result<PutResponse, CtlError>>;
    /// Deletes a key or range.
    fn delete_range(
        &self,
        req: DeleteRangeRequest,
    ) -> impl Future<Output = Result<DeleteRangeResponse, CtlError>>;
    /// Runs a transaction.
    fn txn(&self, req: TxnRequest) -> impl Future<Output = Result<TxnResponse, CtlError>>;
    /// Discards history before a revision.
    fn compact(
        &self,
        req: CompactionRequest,
    ) -> impl Future<Output = Result<CompactionResponse, CtlError>>;
    /// Grants a lease.
    fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> impl Future<Output = Result<LeaseGrantResponse, CtlError>>;
    /// Revokes a lease.
    fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
    ) -> impl Future<Output = Result<LeaseRevokeResponse, CtlError>>;
    /// Renews a lease once.
    fn lease_keep_alive(
        &self,
        req: LeaseKeepAliveRequest,
    ) -> impl Future<Output = Result<LeaseKeepAliveResponse, CtlError>>;
    /// How long a lease has left.
    fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> impl Future<Output = Result<LeaseTimeToLiveResponse, CtlError>>;
    /// A membership request; every one answers with the members.
    fn members(
        &self,
        req: atoll_proto::NativeRequest,
    ) -> impl Future<Output = Result<atoll_proto::member::MembersResponse, CtlError>>;
    /// The shard map the meta shard holds (decision D23).
    fn shard_map(
        &self,
        req: atoll_proto::shard_map::ShardMapRequest,
    ) -> impl Future<Output = Result<atoll_proto::shard_map::ShardMapResponse, CtlError>>;
    /// Lists the leases.
    fn lease_leases(
        &self,
        req: LeaseLeasesRequest,
    ) -> impl Future<Output = Result<LeaseLeasesResponse, CtlError>>;
    /// An auth request (decision D21). Clients without auth refuse it.
    fn auth(
        &self,
        req: atoll_proto::auth::AuthRequest,
    ) -> impl Future<Output = Result<atoll_proto::auth::AuthResponse, CtlError>> {
        let _ = req;
        async { Err(CtlError::bad_args("this client does not speak auth")) }
    }
    /// Asks one endpoint (one of those connected through) for its status.
    fn status(&self, endpoint: &str) -> impl Future<Output = Result<StatusResponse, CtlError>>;

    /// The responses of an open watch.
    type Watch: WatchResponses;

    /// Opens a watch stream with one watch.
    fn watch(&self, req: WatchCreateRequest)
    -> impl Future<Output = Result<Self::Watch, CtlError>>;
}

/// The responses of one watch stream, in order.
pub trait WatchResponses {
    /// The next response; `None` once the server ended the stream.
    fn next(&mut self) -> impl Future<Output = Result<Option<WatchResponse>, CtlError>>;
}

/// Opens [`KvClient`]s.
pub trait Connector {
    /// The client type opened.
    type Client: KvClient;

    /// Connects through `endpoints` (host:port). Errors that mean "nothing answered" should
    /// be [`CtlError::Connect`], naming the endpoints.
    fn connect(&self, endpoints: &[String])
    -> impl Future<Output = Result<Self::Client, CtlError>>;
}
