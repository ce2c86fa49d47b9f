//! The native client: one QUIC connection per endpoint shared by every clone and task, one
//! bidirectional stream per request, and retries by the rules in [`crate::retry`].

use crate::config::ClientConfig;
use crate::connection::{EndpointSlot, LocalEndpoints};
use crate::endpoint::parse_endpoint;
use crate::error::ClientError;
use crate::retry::{Failure, Next, backoff_delay, jitter, next_step};
use crate::tls::quic_client_config;
use crate::watch::{self, WatchReceiver, WatchSender};
use atoll_proto::WatchRequest;
use atoll_proto::auth::{AuthRequest, AuthResponse, TokenRequest};
use atoll_proto::frame::FRAME_HEADER_BYTES;
use atoll_proto::kv::*;
use atoll_proto::lease::*;
use atoll_proto::member::MembersResponse;
use atoll_proto::shard_map::{ShardMapRequest, ShardMapResponse};
use atoll_proto::{AtollError, decode_frame, encode_frame};
use atoll_proto::{
    HashKvRequest, HashKvResponse, NativeRequest, NativeResponse, StatusRequest, StatusResponse,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A client of an Atoll cluster. Cloning is cheap: clones share the QUIC endpoints and the
/// connections, and any number of tasks may send requests at once (each uses its own
/// stream; the server bounds how many are open per connection).
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) local: LocalEndpoints,
    slots: Vec<EndpointSlot>,
    /// Index into `slots` of the endpoint requests go to; advanced when it fails.
    current: AtomicUsize,
    /// The shard map and members for writes routed to leaders (`crate::routed`); `None`
    /// until first needed.
    pub(crate) routing: std::sync::Mutex<Option<crate::shard_map::ShardMapCache>>,
    /// Connections to the members' client URLs that routed writes went to.
    pub(crate) leader_slots: std::sync::Mutex<BTreeMap<String, Arc<EndpointSlot>>>,
    /// The user and password given to [`Client::authenticate`] and the token they got
    /// (decision D21): every request carries the token, renewed once when a node calls it
    /// invalid or stale.
    credentials: std::sync::RwLock<Option<Credentials>>,
}

#[derive(Clone)]
struct Credentials {
    name: String,
    password: String,
    token: String,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Tell servers now instead of letting them wait for the idle timeout.
        self.local.close(b"client closed");
    }
}

/// Which endpoints a request may use.
enum Route<'a> {
    /// The current endpoint, moving on to the next when it fails.
    Rotating,
    /// Only this one.
    Pinned(&'a EndpointSlot),
}

/// An attempt's failure: how far it got (for the retry rules) and the error to return.
pub(crate) type AttemptError = (Failure, ClientError);

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("endpoints", &self.inner.config.endpoints).finish()
    }
}

impl Client {
    /// Checks the configuration and connects to the first reachable endpoint, in order.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Config { reason: "no endpoints given".into() });
        }
        let slots = config
            .endpoints
            .iter()
            .map(|e| parse_endpoint(e, config.server_name.as_deref()).map(EndpointSlot::new))
            .collect::<Result<Vec<_>, _>>()?;
        let local = LocalEndpoints::bind(quic_client_config(&config.trust)?)?;
        let inner = Inner {
            config,
            local,
            slots,
            current: AtomicUsize::new(0),
            routing: std::sync::Mutex::new(None),
            leader_slots: std::sync::Mutex::new(BTreeMap::new()),
            credentials: std::sync::RwLock::new(None),
        };
        let client = Client { inner: Arc::new(inner) };
        client.dial_first_reachable().await?;
        Ok(client)
    }

    async fn dial_first_reachable(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        let mut reasons = Vec::new();
        for (index, slot) in inner.slots.iter().enumerate() {
            match slot.connection(&inner.local, inner.config.dial_timeout).await {
                Ok(_) => {
                    inner.current.store(index, Ordering::Relaxed);
                    return Ok(());
                }
                Err(ClientError::Connect { reason, .. }) if inner.slots.len() > 1 => {
                    reasons.push(format!("{}: {reason}", slot.target.endpoint));
                }
                Err(e) => return Err(e),
            }
        }
        Err(ClientError::Connect {
            endpoint: inner.config.endpoints.join(","),
            reason: reasons.join("; "),
        })
    }

    /// The endpoints as configured.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.config.endpoints
    }

    /// Sends a request and returns the server's answer; an error answer becomes
    /// [`ClientError::Server`]. Retries as [`crate::retry::next_step`] allows, within
    /// `request_timeout` overall.
    pub async fn request(&self, req: NativeRequest) -> Result<NativeResponse, ClientError> {
        self.request_via(&req, Route::Rotating).await
    }

    /// Asks `endpoint` (one of [`Client::endpoints`], or any other node) for its status.
    pub async fn status(&self, endpoint: &str) -> Result<StatusResponse, ClientError> {
        match self.request_pinned(endpoint, NativeRequest::Status(StatusRequest {})).await? {
            NativeResponse::Status(status) => Ok(status),
            other => Err(unexpected("status", &other)),
        }
    }

    /// Asks `endpoint` for the hash of every shard it hosts, as its own replicas hold them.
    pub async fn hash_kv(
        &self,
        endpoint: &str,
        req: HashKvRequest,
    ) -> Result<HashKvResponse, ClientError> {
        match self.request_pinned(endpoint, NativeRequest::HashKv(req)).await? {
            NativeResponse::HashKv(hashes) => Ok(hashes),
            other => Err(unexpected("hashkv", &other)),
        }
    }

    /// Sends `req` to `endpoint` only: a configured one, or any other node on a connection
    /// made just for this request.
    async fn request_pinned(
        &self,
        endpoint: &str,
        req: NativeRequest,
    ) -> Result<NativeResponse, ClientError> {
        let server_name = self.inner.config.server_name.as_deref();
        let wanted = parse_endpoint(endpoint, server_name)?;
        let known = self.inner.slots.iter().find(|s| {
            s.target.endpoint == endpoint
                || (s.target.host == wanted.host && s.target.port == wanted.port)
        });
        match known {
            Some(slot) => self.request_via(&req, Route::Pinned(slot)).await,
            None => self.request_via(&req, Route::Pinned(&EndpointSlot::new(wanted))).await,
        }
    }

    /// Authenticates as `name` (etcdctl's `--user`): every later request carries the token,
    /// which is renewed with the same password when a node answers that it is invalid
    /// (expired) or stale (the auth store changed).
    pub async fn authenticate(&self, name: &str, password: &str) -> Result<(), ClientError> {
        let token = self.fetch_token(name, password).await?;
        let creds = Credentials { name: name.into(), password: password.into(), token };
        if let Ok(mut slot) = self.inner.credentials.write() {
            *slot = Some(creds);
        }
        Ok(())
    }

    async fn fetch_token(&self, name: &str, password: &str) -> Result<String, ClientError> {
        let req = NativeRequest::Auth(AuthRequest::Authenticate {
            name: name.into(),
            password: password.into(),
        });
        // Sent as it is: Authenticate needs no token.
        match self.request_once(&req, &Route::Rotating).await? {
            NativeResponse::Auth(r) => Ok(r.token),
            other => Err(unexpected("authenticate", &other)),
        }
    }

    fn credentials(&self) -> Option<Credentials> {
        self.inner.credentials.read().ok().and_then(|c| c.clone())
    }

    /// `req` with the current token, if the client authenticated.
    fn with_token(&self, req: &NativeRequest) -> Option<NativeRequest> {
        let creds = self.credentials()?;
        Some(NativeRequest::WithToken(TokenRequest {
            token: creds.token,
            request: Box::new(req.clone()),
        }))
    }

    async fn request_via(
        &self,
        req: &NativeRequest,
        route: Route<'_>,
    ) -> Result<NativeResponse, ClientError> {
        let Some(with_token) = self.with_token(req) else {
            return self.request_once(req, &route).await;
        };
        match self.request_once(&with_token, &route).await {
            Err(ClientError::Server(
                AtollError::InvalidAuthToken | AtollError::AuthOldRevision,
            )) => {
                self.renew_token().await?;
                let again = self.with_token(req).unwrap_or(with_token);
                self.request_once(&again, &route).await
            }
            other => other,
        }
    }

    async fn renew_token(&self) -> Result<(), ClientError> {
        let Some(creds) = self.credentials() else { return Ok(()) };
        let token = self.fetch_token(&creds.name, &creds.password).await?;
        if let Ok(mut slot) = self.inner.credentials.write()
            && let Some(c) = slot.as_mut()
        {
            c.token = token;
        }
        Ok(())
    }

    async fn request_once(
        &self,
        req: &NativeRequest,
        route: &Route<'_>,
    ) -> Result<NativeResponse, ClientError> {
        let route = match route {
            Route::Rotating => Route::Rotating,
            Route::Pinned(slot) => Route::Pinned(slot),
        };
        let after = self.inner.config.request_timeout;
        match tokio::time::timeout(after, self.with_retries(req, route)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { after }),
        }
    }

    async fn with_retries(
        &self,
        req: &NativeRequest,
        route: Route<'_>,
    ) -> Result<NativeResponse, ClientError> {
        let frame = encode_frame(req).map_err(|e| ClientError::Protocol {
            reason: format!("request does not encode: {e}"),
        })?;
        let idempotent = req.is_idempotent();
        let mut retry = 0u32;
        loop {
            let (index, slot) = self.pick(&route);
            let (failure, error) = match self.attempt(slot, &frame).await {
                Ok(response) => return Ok(response),
                Err(failed) => failed,
            };
            let next = next_step(&failure, idempotent);
            if next == Next::GiveUp || retry >= self.inner.config.retries_max {
                return Err(error);
            }
            let endpoint = &slot.target.endpoint;
            tracing::debug!(endpoint = %endpoint, retry, error = %error, "retrying request");
            if next == Next::RetryNextEndpoint {
                self.advance_from(index);
            }
            tokio::time::sleep(backoff_delay(retry, jitter())).await;
            retry += 1;
        }
    }

    /// The endpoint requests currently go to (moved on by failures).
    pub(crate) fn current_slot(&self) -> (usize, &EndpointSlot) {
        self.pick(&Route::Rotating)
    }

    fn pick<'a>(&'a self, route: &Route<'a>) -> (usize, &'a EndpointSlot) {
        match route {
            Route::Pinned(slot) => (usize::MAX, slot),
            Route::Rotating => {
                let slots = &self.inner.slots;
                let index = self.inner.current.load(Ordering::Relaxed) % slots.len();
                (index, &slots[index])
            }
        }
    }

    /// Moves on from a failed endpoint, unless another task already did.
    pub(crate) fn advance_from(&self, index: usize) {
        let count = self.inner.slots.len();
        if index < count {
            let next = (index + 1) % count;
            let _ = self.inner.current.compare_exchange(
                index,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// One request on one stream.
    pub(crate) async fn attempt(
        &self,
        slot: &EndpointSlot,
        frame: &[u8],
    ) -> Result<NativeResponse, AttemptError> {
        let config = &self.inner.config;
        let endpoint = &slot.target.endpoint;
        let conn = slot
            .connection(&self.inner.local, config.dial_timeout)
            .await
            .map_err(|e| (Failure::Connect, e))?;
        let (mut send, mut recv) = conn
            .open_bi()
            .await
            .map_err(|e| (Failure::NotSent, transport(endpoint, "opening a stream", e)))?;
        // Until the stream is finished the server cannot have handled the request.
        let finished = match send.write_all(frame).await {
            Ok(()) => {
                let finish = send.finish();
                finish.map_err(|e| (Failure::NotSent, transport(endpoint, "finishing", e)))?;
                true
            }
            // The server stopped reading: it refused the request before reading all of it
            // (for example as too large) and its answer follows.
            Err(quinn::WriteError::Stopped(_)) => false,
            Err(e) => return Err((Failure::NotSent, transport(endpoint, "sending", e))),
        };
        let limit = config.max_response_bytes;
        let read = recv.read_to_end(limit.saturating_add(FRAME_HEADER_BYTES)).await;
        let bytes = read.map_err(|e| match e {
            quinn::ReadToEndError::TooLong => (Failure::Fatal, too_large_response(limit)),
            quinn::ReadToEndError::Read(e) => {
                let failure = if finished { Failure::MaybeSent } else { Failure::NotSent };
                (failure, transport(endpoint, "reading the response", e))
            }
        })?;
        let response: NativeResponse = decode_frame(&bytes, limit).map_err(|e| {
            (
                Failure::Fatal,
                ClientError::Protocol { reason: format!("response from {endpoint}: {e}") },
            )
        })?;
        match response {
            NativeResponse::Error(e) => Err((Failure::Server(e.clone()), ClientError::Server(e))),
            ok => Ok(ok),
        }
    }
}

impl Client {
    /// Opens a watch stream on the current endpoint with `first` as its opening request
    /// (normally a create). Responses arrive on the returned receiver; more creates,
    /// cancels and progress requests go on the sender. Not retried (see [`crate::watch`]).
    pub async fn watch(
        &self,
        first: WatchRequest,
    ) -> Result<(WatchSender, WatchReceiver), ClientError> {
        let config = &self.inner.config;
        let (_, slot) = self.pick(&Route::Rotating);
        let conn = slot.connection(&self.inner.local, config.dial_timeout).await?;
        let token = self.credentials().map(|c| c.token);
        let endpoint = &slot.target.endpoint;
        let opening = watch::open(&conn, endpoint, first, token, config.max_response_bytes);
        match tokio::time::timeout(config.request_timeout, opening).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout { after: config.request_timeout }),
        }
    }
}

macro_rules! typed_request {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $req:ty, $resp:ty, $kind:literal) => {
        $(#[$doc])*
        pub async fn $name(&self, r: $req) -> Result<$resp, ClientError> {
            match self.request(NativeRequest::$variant(r)).await? {
                NativeResponse::$variant(response) => Ok(response),
                other => Err(unexpected($kind, &other)),
            }
        }
    };
}

impl Client {
    typed_request!(
        /// Reads a key or a range.
        range, Range, RangeRequest, RangeResponse, "range"
    );
    typed_request!(
        /// Writes a key. Not retried once it may have been applied.
        put, Put, PutRequest, PutResponse, "put"
    );
    typed_request!(
        /// Deletes a key or a range. Not retried once it may have been applied.
        delete_range, DeleteRange, DeleteRangeRequest, DeleteRangeResponse, "delete"
    );
    typed_request!(
        /// Runs a transaction; one with writes is not retried once it may have been applied.
        txn, Txn, TxnRequest, TxnResponse, "txn"
    );
    typed_request!(
        /// Discards history up to a revision.
        compact, Compact, CompactionRequest, CompactionResponse, "compact"
    );
    typed_request!(
        /// Grants a lease. Not retried once it may have been applied (a server-chosen ID
        /// would grant two).
        lease_grant, LeaseGrant, LeaseGrantRequest, LeaseGrantResponse, "lease grant"
    );
    typed_request!(
        /// Revokes a lease and deletes its keys.
        lease_revoke, LeaseRevoke, LeaseRevokeRequest, LeaseRevokeResponse, "lease revoke"
    );
    typed_request!(
        /// Renews a lease once; TTL 0 in the answer: the lease is gone. A keepalive stream is
        /// this request repeated (decision D16).
        lease_keep_alive, LeaseKeepAlive, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
        "lease keep-alive"
    );
    typed_request!(
        /// How long a lease has left (TTL -1: gone), and its keys when asked.
        lease_time_to_live, LeaseTimeToLive, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
        "lease time-to-live"
    );
    typed_request!(
        /// Lists the leases.
        lease_leases, LeaseLeases, LeaseLeasesRequest, LeaseLeasesResponse, "lease list"
    );
    typed_request!(
        /// The shard map the meta shard holds, with its version (epoch), each shard's
        /// leader as the answering node sees it and the members' client URLs (decision D23).
        shard_map, ShardMap, ShardMapRequest, ShardMapResponse, "shard map"
    );

    /// Sends an auth request (etcd's `Auth` service, decision D21).
    pub async fn auth(&self, req: AuthRequest) -> Result<AuthResponse, ClientError> {
        match self.request(NativeRequest::Auth(req)).await? {
            NativeResponse::Auth(response) => Ok(response),
            other => Err(unexpected("auth", &other)),
        }
    }

    /// Sends a membership request (`MemberList`, `MemberAdd`, `MemberRemove`,
    /// `MemberPromote` or `MemberUpdate`); each answers with the members.
    pub async fn members(&self, req: NativeRequest) -> Result<MembersResponse, ClientError> {
        match self.request(req).await? {
            NativeResponse::Members(response) => Ok(response),
            other => Err(unexpected("members", &other)),
        }
    }
}

fn transport(endpoint: &str, what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport { reason: format!("{what} (endpoint {endpoint}): {e}") }
}

fn too_large_response(limit: usize) -> ClientError {
    ClientError::Protocol {
        reason: format!(
            "response is larger than max_response_bytes ({limit}); ask for less (a limit or a \
             narrower range) or raise max_response_bytes"
        ),
    }
}

pub(crate) fn unexpected(expected: &str, got: &NativeResponse) -> ClientError {
    let got = match got {
        NativeResponse::Range(_) => "range",
        NativeResponse::Put(_) => "put",
        NativeResponse::DeleteRange(_) => "delete",
        NativeResponse::Txn(_) => "txn",
        NativeResponse::Compact(_) => "compact",
        NativeResponse::Status(_) => "status",
        NativeResponse::HashKv(_) => "hashkv",
        NativeResponse::Watch(_) => "watch",
        NativeResponse::Close(_) => "close",
        NativeResponse::LeaseGrant(_) => "lease grant",
        NativeResponse::LeaseRevoke(_) => "lease revoke",
        NativeResponse::LeaseKeepAlive(_) => "lease keep-alive",
        NativeResponse::LeaseTimeToLive(_) => "lease time-to-live",
        NativeResponse::LeaseLeases(_) => "lease list",
        NativeResponse::LeaseLookup(_) => "lease lookup",
        NativeResponse::RevokeLeaseKeys(_) => "lease key revocation",
        NativeResponse::Error(_) => "error",
        NativeResponse::Members(_) => "members",
        NativeResponse::ShardMap(_) => "shard map",
        NativeResponse::Auth(_) => "auth",
    };
    ClientError::Protocol {
        reason: format!("expected a {expected} response, got a {got} response"),
    }
}
