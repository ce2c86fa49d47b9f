//! Auth (decision D21): etcd's `Auth` requests, and the check of every client request
//! against the auth store while auth is enabled.
//!
//! The store lives in the meta shard. Changes are served by its leader like any meta write
//! (forwarded there from any node); the node that receives a `UserAdd` or
//! `UserChangePassword` hashes the password first, so only the hash travels. Reads and
//! `Authenticate` are served by the receiving node after a read index of the meta shard, so
//! password checks spread over every node. Checks read this node's copy of the store, an
//! `Arc` swapped only when the meta shard applied an auth change: a check takes a read lock
//! just long enough to clone the `Arc`, never during bcrypt or any await.

use super::{NodeService, Origin};
use crate::auth::{AuthConfig, Caller, Claims, PasswordPool, sign, verify};
use atoll_proto::auth::{AuthOp, AuthRequest, AuthResponse, Permission, PermissionType, ROOT_ROLE};
use atoll_proto::*;
use atoll_shard::auth::AuthStore;
use std::sync::{Arc, OnceLock, RwLock};

/// Bytes of a fresh token signing key (HMAC-SHA256's block is 64; 32 bytes of entropy is the
/// hash's strength).
const SIGNING_KEY_BYTES: usize = 32;

/// The node's auth state: its copy of the store and its settings.
#[derive(Default)]
pub(super) struct AuthState {
    /// The store as last loaded, with the meta shard's auth generation it was loaded at.
    cache: RwLock<Option<(u64, Arc<AuthStore>)>>,
    settings: OnceLock<(AuthConfig, PasswordPool)>,
}

impl NodeService {
    /// Sets the node's bcrypt cost and token lifetime (before serving; a second call is
    /// ignored).
    pub fn configure_auth(&self, config: AuthConfig) {
        let pool = PasswordPool::new(config.bcrypt_cost);
        if self.inner.auth.settings.set((config, pool)).is_err() {
            tracing::warn!("auth configured twice; keeping the first");
        }
    }

    fn auth_settings(&self) -> &(AuthConfig, PasswordPool) {
        self.inner.auth.settings.get_or_init(|| {
            let config = AuthConfig::default();
            (config, PasswordPool::new(config.bcrypt_cost))
        })
    }

    /// The auth store as this node applied it: the cached copy unless the meta shard applied
    /// an auth change since it was loaded.
    pub fn auth_store(&self) -> Result<Arc<AuthStore>, AtollError> {
        let generation = self.inner.shards.meta().store.records_generation();
        if let Ok(cache) = self.inner.auth.cache.read()
            && let Some((loaded_at, store)) = cache.as_ref()
            && *loaded_at == generation
        {
            return Ok(store.clone());
        }
        // Loaded outside the lock. A change landing between reading the generation and the
        // load is newer than the generation recorded: the next call loads again.
        let storage = &self.inner.storage;
        let store =
            atoll_shard::auth::load(storage, &storage.db.snapshot()).map_err(AtollError::from)?;
        let store = Arc::new(store);
        if let Ok(mut cache) = self.inner.auth.cache.write() {
            *cache = Some((generation, store.clone()));
        }
        Ok(store)
    }

    /// Serves a client's request after checking its token and permissions while auth is
    /// enabled. A [`NativeRequest::WithToken`] brings its own token.
    pub async fn serve_as(&self, caller: Caller, req: NativeRequest) -> NativeResponse {
        let (caller, req) = match req {
            NativeRequest::WithToken(t) => (Caller::Client { token: Some(t.token) }, *t.request),
            req => (caller, req),
        };
        if let Err(e) = self.authorize(&caller, &req).await {
            return NativeResponse::Error(e);
        }
        self.serve(req).await
    }

    /// Whether `caller` may send `req` (etcd's checks in `v3_server.go`, `apply_auth.go`).
    pub async fn authorize(&self, caller: &Caller, req: &NativeRequest) -> Result<(), AtollError> {
        if needs_no_user(req) {
            return Ok(());
        }
        let Some((store, user)) = self.user_of(caller).await? else { return Ok(()) };
        check_request(&store, &user, req)?;
        // A write a router sends straight to the leader is checked as the write itself.
        let put = match req {
            NativeRequest::Put(p) => Some(p),
            NativeRequest::AtLeader(a) => match &a.write {
                KeyedWrite::Put(p) => Some(p),
                KeyedWrite::DeleteRange(_) | KeyedWrite::Txn(_) => None,
            },
            _ => None,
        };
        if let Some(p) = put.filter(|p| p.lease != 0) {
            return self.check_lease_keys(&store, &user, p.lease, PermissionType::Write).await;
        }
        match req {
            // etcd's `checkLeasePuts`: revoking a lease deletes its keys, and attaching a lease
            // lets its revocation delete the new key.
            NativeRequest::LeaseRevoke(r) => {
                self.check_lease_keys(&store, &user, r.id, PermissionType::Write).await
            }
            // etcd ≥ 3.4.26: the keys of a lease are only shown to who may read them all.
            NativeRequest::LeaseTimeToLive(r) => {
                self.check_lease_keys(&store, &user, r.id, PermissionType::Read).await
            }
            _ => Ok(()),
        }
    }

    /// Whether `caller` may read (`Read`) or write (`Write`) `[key, range_end)` (a watch, a
    /// lock or election name).
    pub async fn authorize_range(
        &self,
        caller: &Caller,
        key: &[u8],
        range_end: &[u8],
        access: PermissionType,
    ) -> Result<(), AtollError> {
        match self.user_of(caller).await? {
            Some((store, user)) => store.check_range(&user, key, range_end, access),
            None => Ok(()),
        }
    }

    /// Whether `caller` holds the root role (etcd's `IsAdminPermitted`: defragment, hash,
    /// snapshot).
    pub async fn authorize_admin(&self, caller: &Caller) -> Result<(), AtollError> {
        match self.user_of(caller).await? {
            Some((store, user)) => store.check_admin(&user),
            None => Ok(()),
        }
    }

    /// The store and the user a client's token names; `None` for the node itself or while
    /// auth is disabled (tokens are then ignored). A token issued at a newer auth revision
    /// than this node applied (another node issued it just now) waits for the meta shard's
    /// read index first.
    async fn user_of(
        &self,
        caller: &Caller,
    ) -> Result<Option<(Arc<AuthStore>, String)>, AtollError> {
        let Caller::Client { token } = caller else { return Ok(None) };
        let mut store = self.auth_store()?;
        if !store.enabled {
            return Ok(None);
        }
        // etcd: a request without a token has no user.
        let token = token.as_deref().ok_or(AtollError::UserEmpty)?;
        let claims = verify(&store.signing_key, token, now_unix())?;
        if claims.revision > store.revision {
            self.read_index(ShardId::META).await?;
            store = self.auth_store()?;
        }
        if claims.revision < store.revision {
            return Err(AtollError::AuthOldRevision);
        }
        Ok(Some((store, claims.user)))
    }

    async fn check_lease_keys(
        &self,
        store: &AuthStore,
        user: &str,
        lease: i64,
        access: PermissionType,
    ) -> Result<(), AtollError> {
        if store.check_admin(user).is_ok() {
            return Ok(());
        }
        let lookup =
            NativeRequest::LeaseTimeToLive(LeaseTimeToLiveRequest { id: lease, keys: true });
        match self.serve(lookup).await {
            NativeResponse::LeaseTimeToLive(r) => {
                r.keys.iter().try_for_each(|k| store.check_range(user, k, b"", access))
            }
            // No such lease: the request itself answers that.
            NativeResponse::Error(AtollError::LeaseNotFound) => Ok(()),
            NativeResponse::Error(e) => Err(e),
            other => Err(super::unexpected(&other)),
        }
    }

    /// Serves an `Auth` request (its caller already checked by [`Self::authorize`]).
    pub(super) async fn serve_auth(
        &self,
        req: AuthRequest,
        origin: Origin,
    ) -> Result<NativeResponse, AtollError> {
        let mut resp = AuthResponse::default();
        match req {
            AuthRequest::Authenticate { name, password } => {
                resp.token = self.authenticate(name, password).await?;
            }
            AuthRequest::Status => {
                let store = self.auth_store()?;
                resp.enabled = store.enabled;
                resp.auth_revision = store.revision;
            }
            AuthRequest::UserGet { name } => {
                let store = self.fresh_auth_store().await?;
                resp.roles = store.users.get(&name).ok_or(AtollError::UserNotFound)?.roles.clone();
            }
            AuthRequest::UserList => {
                resp.users = self.fresh_auth_store().await?.users.keys().cloned().collect();
            }
            AuthRequest::RoleGet { role } => {
                let store = self.fresh_auth_store().await?;
                let found = store.roles.get(&role).ok_or(AtollError::RoleNotFound)?;
                resp.permissions = if role == ROOT_ROLE {
                    // etcd shows the root role as read-write on every key.
                    vec![Permission {
                        perm_type: PermissionType::ReadWrite,
                        key: vec![],
                        range_end: vec![0],
                    }]
                } else {
                    found.permissions.clone()
                };
            }
            AuthRequest::RoleList => {
                resp.roles = self.fresh_auth_store().await?.roles.keys().cloned().collect();
            }
            change => {
                let op = self.auth_op(change).await?;
                self.write_on(ShardId::META, WriteOp::Auth(op), origin).await?;
                // The meta leader applied it; the node that answers the client applies it
                // too before answering, so its next request is checked by the new store.
                self.read_index(ShardId::META).await?;
            }
        }
        resp.header = self.header();
        Ok(NativeResponse::Auth(resp))
    }

    /// The store once this node applied everything the meta shard committed before now.
    async fn fresh_auth_store(&self) -> Result<Arc<AuthStore>, AtollError> {
        self.read_index(ShardId::META).await?;
        self.auth_store()
    }

    /// A token for `name` if `password` is theirs. The bcrypt check runs on the password
    /// pool with no lock held.
    async fn authenticate(&self, name: String, password: String) -> Result<String, AtollError> {
        let store = self.fresh_auth_store().await?;
        if !store.enabled {
            return Err(AtollError::AuthNotEnabled);
        }
        let user =
            store.users.get(&name).filter(|u| !u.no_password).ok_or(AtollError::AuthFailed)?;
        let (config, pool) = self.auth_settings();
        if !pool.verify(password, user.password_hash.clone()).await? {
            return Err(AtollError::AuthFailed);
        }
        let claims = Claims {
            user: name,
            revision: store.revision,
            expires_unix: now_unix().saturating_add(config.token_ttl.as_secs()),
        };
        Ok(sign(&store.signing_key, &claims))
    }

    /// The replicated change a request makes: passwords become bcrypt hashes here, and an
    /// enable brings a fresh signing key (kept only if the store has none).
    async fn auth_op(&self, req: AuthRequest) -> Result<AuthOp, AtollError> {
        Ok(match req {
            AuthRequest::Enable => AuthOp::Enable { signing_key: fresh_signing_key()? },
            AuthRequest::Disable => AuthOp::Disable,
            AuthRequest::UserAdd { name, password, hashed_password, no_password } => {
                if name.is_empty() {
                    return Err(AtollError::UserEmpty);
                }
                let password_hash = if no_password {
                    String::new()
                } else {
                    self.password_hash(password, hashed_password).await?
                };
                AuthOp::UserAdd { name, password_hash, no_password }
            }
            AuthRequest::UserChangePassword { name, password, hashed_password } => {
                let password_hash = self.password_hash(password, hashed_password).await?;
                AuthOp::UserChangePassword { name, password_hash }
            }
            AuthRequest::UserDelete { name } => AuthOp::UserDelete { name },
            AuthRequest::UserGrantRole { user, role } => AuthOp::UserGrantRole { user, role },
            AuthRequest::UserRevokeRole { user, role } => AuthOp::UserRevokeRole { user, role },
            AuthRequest::RoleAdd { name } => AuthOp::RoleAdd { name },
            AuthRequest::RoleDelete { role } => AuthOp::RoleDelete { name: role },
            AuthRequest::RoleGrantPermission { role, permission } => {
                AuthOp::RoleGrantPermission { role, permission }
            }
            AuthRequest::RoleRevokePermission { role, key, range_end } => {
                AuthOp::RoleRevokePermission { role, key, range_end }
            }
            read => {
                let reason = format!("not an auth change: {read:?}");
                return Err(AtollError::Malformed { reason });
            }
        })
    }

    /// The hash to store: of `password`, or `hashed` as given (etcd 3.5's `hashedPassword`)
    /// when no password is.
    async fn password_hash(&self, password: String, hashed: String) -> Result<String, AtollError> {
        if password.is_empty() && !hashed.is_empty() {
            return Ok(hashed);
        }
        self.auth_settings().1.hash(password).await
    }
}

/// Requests etcd serves to anyone while auth is enabled.
fn needs_no_user(req: &NativeRequest) -> bool {
    match req {
        NativeRequest::Status(_)
        | NativeRequest::MemberList(_)
        | NativeRequest::LeaseGrant(_)
        | NativeRequest::LeaseKeepAlive(_)
        | NativeRequest::LeaseLeases(_) => true,
        NativeRequest::Auth(a) => a.needs_no_token(),
        _ => false,
    }
}

/// The permission checks of `req` that need nothing but the store.
fn check_request(store: &AuthStore, user: &str, req: &NativeRequest) -> Result<(), AtollError> {
    use PermissionType::Read;
    match req {
        NativeRequest::Range(r) => store.check_range(user, &r.key, &r.range_end, Read),
        NativeRequest::Put(p) => check_put(store, user, p),
        NativeRequest::DeleteRange(d) => check_delete(store, user, d),
        NativeRequest::Txn(t) => check_txn(store, user, t),
        NativeRequest::Watch(WatchRequest::Create(w)) => {
            store.check_range(user, &w.key, &w.range_end, Read)
        }
        NativeRequest::Compact(_)
        | NativeRequest::HashKv(_)
        | NativeRequest::MemberAdd(_)
        | NativeRequest::MemberRemove(_)
        | NativeRequest::MemberPromote(_)
        | NativeRequest::MemberUpdate(_) => store.check_admin(user),
        NativeRequest::Auth(AuthRequest::UserGet { name }) if name == user => Ok(()),
        NativeRequest::Auth(AuthRequest::RoleGet { role }) if store.has_role(user, role) => Ok(()),
        NativeRequest::Auth(_) => store.check_admin(user),
        NativeRequest::WithToken(_) => Err(AtollError::Malformed {
            reason: "a request carries one token; do not wrap it twice".into(),
        }),
        // A write a router sends straight to the leader: checked as the write itself.
        NativeRequest::AtLeader(a) => match &a.write {
            KeyedWrite::Put(p) => check_put(store, user, p),
            KeyedWrite::DeleteRange(d) => check_delete(store, user, d),
            KeyedWrite::Txn(t) => check_txn(store, user, t),
        },
        // Lease keys are checked by `authorize`; peer-only requests are refused to clients.
        _ => Ok(()),
    }
}

fn check_put(store: &AuthStore, user: &str, p: &PutRequest) -> Result<(), AtollError> {
    store.check_range(user, &p.key, b"", PermissionType::Write)?;
    if p.prev_kv {
        store.check_range(user, &p.key, b"", PermissionType::Read)?;
    }
    Ok(())
}

fn check_delete(store: &AuthStore, user: &str, d: &DeleteRangeRequest) -> Result<(), AtollError> {
    if d.prev_kv {
        store.check_range(user, &d.key, &d.range_end, PermissionType::Read)?;
    }
    store.check_range(user, &d.key, &d.range_end, PermissionType::Write)
}

/// etcd's `checkTxnAuth`: every compare's key is read, and both branches are checked
/// whichever runs, nested txns included.
fn check_txn(store: &AuthStore, user: &str, t: &TxnRequest) -> Result<(), AtollError> {
    for c in &t.compare {
        store.check_range(user, &c.key, &c.range_end, PermissionType::Read)?;
    }
    for op in t.success.iter().chain(t.failure.iter()) {
        match op {
            RequestOp::Range(r) => {
                store.check_range(user, &r.key, &r.range_end, PermissionType::Read)?
            }
            RequestOp::Put(p) => check_put(store, user, p)?,
            RequestOp::DeleteRange(d) => check_delete(store, user, d)?,
            RequestOp::Txn(inner) => check_txn(store, user, inner)?,
        }
    }
    Ok(())
}

fn fresh_signing_key() -> Result<Vec<u8>, AtollError> {
    use ring::rand::SecureRandom as _;
    let mut key = vec![0u8; SIGNING_KEY_BYTES];
    ring::rand::SystemRandom::new().fill(&mut key).map_err(|_| AtollError::Malformed {
        reason: "the system's random source failed; cannot make a token signing key".into(),
    })?;
    Ok(key)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::auth::AuthOp;

    /// alice may read and write `/app/` and read `/pub`; root is root.
    fn store() -> AuthStore {
        let mut s = AuthStore::default();
        let perm = |perm_type, key: &str, range_end: &str| Permission {
            perm_type,
            key: key.into(),
            range_end: range_end.into(),
        };
        let ops = [
            AuthOp::UserAdd { name: "root".into(), password_hash: "h".into(), no_password: false },
            AuthOp::UserGrantRole { user: "root".into(), role: "root".into() },
            AuthOp::UserAdd { name: "alice".into(), password_hash: "h".into(), no_password: false },
            AuthOp::RoleAdd { name: "app".into() },
            AuthOp::RoleGrantPermission {
                role: "app".into(),
                permission: perm(PermissionType::ReadWrite, "/app/", "/app0"),
            },
            AuthOp::RoleGrantPermission {
                role: "app".into(),
                permission: perm(PermissionType::Read, "/pub", ""),
            },
            AuthOp::UserGrantRole { user: "alice".into(), role: "app".into() },
        ];
        for op in &ops {
            s.apply(op).expect("setup");
        }
        s
    }

    fn put(key: &str, prev_kv: bool) -> PutRequest {
        PutRequest { key: key.into(), prev_kv, ..PutRequest::default() }
    }

    #[test]
    fn every_op_and_compare_of_a_txn_is_checked_in_both_branches() {
        let s = store();
        let inside = TxnRequest {
            compare: vec![Compare { key: b"/pub".to_vec(), ..Compare::default() }],
            success: vec![RequestOp::Put(put("/app/a", true))],
            failure: vec![RequestOp::Range(RangeRequest {
                key: b"/app/".to_vec(),
                range_end: b"/app0".to_vec(),
                ..RangeRequest::default()
            })],
        };
        assert_eq!(check_request(&s, "alice", &NativeRequest::Txn(inside.clone())), Ok(()));
        let mut bad_failure = inside.clone();
        bad_failure.failure.push(RequestOp::Put(put("/pub", false)));
        let mut bad_compare = inside.clone();
        bad_compare.compare.push(Compare { key: b"/secret".to_vec(), ..Compare::default() });
        let mut bad_nested = inside;
        bad_nested.success.push(RequestOp::Txn(TxnRequest {
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"/x".to_vec(),
                ..DeleteRangeRequest::default()
            })],
            ..TxnRequest::default()
        }));
        for txn in [bad_failure, bad_compare, bad_nested] {
            let denied = check_request(&s, "alice", &NativeRequest::Txn(txn.clone()));
            assert_eq!(denied, Err(AtollError::PermissionDenied), "{txn:?}");
            assert_eq!(check_request(&s, "root", &NativeRequest::Txn(txn)), Ok(()));
        }
    }

    #[test]
    fn prev_kv_needs_read_and_admin_requests_need_root() {
        let s = store();
        let alice = |req: NativeRequest| check_request(&s, "alice", &req);
        assert_eq!(alice(NativeRequest::Put(put("/app/a", false))), Ok(()));
        // Alice may read /pub but not write it, nor put with prev_kv a key she cannot read.
        assert_eq!(
            alice(NativeRequest::Put(put("/pub", false))),
            Err(AtollError::PermissionDenied)
        );
        // A write sent straight to a shard leader is checked as the write it carries.
        let at_leader = |p: PutRequest| {
            NativeRequest::AtLeader(AtLeaderRequest { map_version: 1, write: KeyedWrite::Put(p) })
        };
        assert_eq!(alice(at_leader(put("/app/a", false))), Ok(()));
        assert_eq!(alice(at_leader(put("/pub", false))), Err(AtollError::PermissionDenied));
        assert_eq!(
            alice(NativeRequest::Compact(CompactionRequest::default())),
            Err(AtollError::PermissionDenied)
        );
        assert_eq!(
            alice(NativeRequest::Auth(AuthRequest::UserList)),
            Err(AtollError::PermissionDenied)
        );
        assert_eq!(
            alice(NativeRequest::Auth(AuthRequest::UserGet { name: "alice".into() })),
            Ok(())
        );
        assert_eq!(alice(NativeRequest::Auth(AuthRequest::RoleGet { role: "app".into() })), Ok(()));
        assert_eq!(
            alice(NativeRequest::Auth(AuthRequest::RoleGet { role: "root".into() })),
            Err(AtollError::PermissionDenied)
        );
        assert_eq!(check_request(&s, "root", &NativeRequest::Auth(AuthRequest::UserList)), Ok(()));
        assert!(needs_no_user(&NativeRequest::Auth(AuthRequest::Status)));
        assert!(!needs_no_user(&NativeRequest::Auth(AuthRequest::Disable)));
    }
}
