//! The auth store of the meta shard (decision D21): users, roles, key-range permissions, the
//! enabled flag, the auth revision and the token signing key, kept as one record
//! `b'A'` in the `leases` keyspace beside the lease and member records, and changed only by
//! [`AuthOp`]s applied through the meta shard's log with etcd's rules
//! (`server/auth/store.go`).
//!
//! The permission checks are etcd's too: a request's range is permitted when the union of the
//! user's permissions of that kind covers it (etcd's interval tree `Contains`), a single key
//! when one permission holds it; the root role permits everything.

use crate::error::{ShardError, StorageError};
use crate::lease::{LeaseView, LeaseWrites};
use crate::storage::Storage;
use crate::storage::records::{decode_record, encode_record};
use atoll_proto::AtollError;
use atoll_proto::auth::{AuthOp, Permission, PermissionType, ROOT_ROLE, ROOT_USER, Role, User};
use fjall::{Readable, Snapshot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const AUTH_TAG: u8 = b'A';
const WHAT: &str = "auth store";

/// Whether `key` of the `leases` keyspace is the auth store (the meta shard's alone).
pub(crate) fn is_auth_record(key: &[u8]) -> bool {
    key == [AUTH_TAG]
}

/// The whole auth store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStore {
    /// Whether requests must carry a token.
    pub enabled: bool,
    /// Bumped by every change, as etcd's auth revision; tokens carry the one they were
    /// issued at.
    pub revision: u64,
    /// The key tokens are signed with (HMAC-SHA256), set by the first enable.
    pub signing_key: Vec<u8>,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Roles by name.
    pub roles: BTreeMap<String, Role>,
}

/// The auth store as `snap` holds it (an empty, disabled store when none was written).
pub fn load(storage: &Storage, snap: &Snapshot) -> Result<AuthStore, StorageError> {
    match snap.get(&storage.leases, [AUTH_TAG])? {
        Some(v) => decode_record(WHAT, &v),
        None => Ok(AuthStore::default()),
    }
}

/// Applies an [`AuthOp`] on the meta shard; a refused change writes nothing.
pub(crate) fn apply_auth_op(view: &LeaseView<'_>, op: &AuthOp) -> Result<LeaseWrites, ShardError> {
    let mut store = match view.get(&[AUTH_TAG])? {
        Some(v) => decode_record(WHAT, &v)?,
        None => AuthStore::default(),
    };
    if store.apply(op)? {
        store.revision += 1;
    }
    let mut writes = LeaseWrites::new();
    writes.insert(vec![AUTH_TAG], Some(encode_record(WHAT, &store)?));
    Ok(writes)
}

impl AuthStore {
    /// Applies `op` by etcd's rules; `Ok(false)` when nothing changed (enabling enabled auth,
    /// granting a role again), which leaves the revision alone as etcd does.
    pub fn apply(&mut self, op: &AuthOp) -> Result<bool, AtollError> {
        match op {
            AuthOp::Enable { signing_key } => {
                if self.enabled {
                    return Ok(false);
                }
                let root = self.users.get(ROOT_USER).ok_or(AtollError::RootUserNotExist)?;
                if !has_root_role(root) {
                    return Err(AtollError::RootRoleNotExist);
                }
                if self.signing_key.is_empty() {
                    self.signing_key.clone_from(signing_key);
                }
                self.enabled = true;
            }
            AuthOp::Disable => {
                if !self.enabled {
                    return Ok(false);
                }
                self.enabled = false;
            }
            AuthOp::UserAdd { name, password_hash, no_password } => {
                if name.is_empty() {
                    return Err(AtollError::UserEmpty);
                }
                if self.users.contains_key(name) {
                    return Err(AtollError::UserAlreadyExist);
                }
                let user = User {
                    name: name.clone(),
                    password_hash: if *no_password { String::new() } else { password_hash.clone() },
                    roles: Vec::new(),
                    no_password: *no_password,
                };
                self.users.insert(name.clone(), user);
            }
            AuthOp::UserDelete { name } => {
                if self.enabled && name == ROOT_USER {
                    return Err(AtollError::InvalidAuthMgmt);
                }
                self.users.remove(name).ok_or(AtollError::UserNotFound)?;
            }
            AuthOp::UserChangePassword { name, password_hash } => {
                let user = self.users.get_mut(name).ok_or(AtollError::UserNotFound)?;
                user.password_hash.clone_from(password_hash);
            }
            AuthOp::UserGrantRole { user, role } => {
                if role != ROOT_ROLE && !self.roles.contains_key(role) {
                    // etcd lets root be granted before a root role record exists.
                    return Err(AtollError::RoleNotFound);
                }
                let u = self.users.get_mut(user).ok_or(AtollError::UserNotFound)?;
                match u.roles.binary_search(role) {
                    Ok(_) => return Ok(false),
                    Err(at) => u.roles.insert(at, role.clone()),
                }
            }
            AuthOp::UserRevokeRole { user, role } => {
                if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
                    return Err(AtollError::InvalidAuthMgmt);
                }
                let u = self.users.get_mut(user).ok_or(AtollError::UserNotFound)?;
                let at = u.roles.binary_search(role).map_err(|_| AtollError::RoleNotGranted)?;
                u.roles.remove(at);
            }
            AuthOp::RoleAdd { name } => {
                if name.is_empty() {
                    return Err(AtollError::RoleEmpty);
                }
                if self.roles.contains_key(name) {
                    return Err(AtollError::RoleAlreadyExist);
                }
                self.roles.insert(name.clone(), Role { name: name.clone(), permissions: vec![] });
            }
            AuthOp::RoleDelete { name } => {
                if self.enabled && name == ROOT_ROLE {
                    return Err(AtollError::InvalidAuthMgmt);
                }
                self.roles.remove(name).ok_or(AtollError::RoleNotFound)?;
                // etcd revokes a deleted role from every user.
                for user in self.users.values_mut() {
                    user.roles.retain(|r| r != name);
                }
            }
            AuthOp::RoleGrantPermission { role, permission } => {
                let r = self.roles.get_mut(role).ok_or(AtollError::RoleNotFound)?;
                let same_range = |p: &Permission| {
                    (&p.key, &p.range_end).cmp(&(&permission.key, &permission.range_end))
                };
                match r.permissions.binary_search_by(same_range) {
                    Ok(at) => r.permissions[at].perm_type = permission.perm_type,
                    Err(at) => r.permissions.insert(at, permission.clone()),
                }
            }
            AuthOp::RoleRevokePermission { role, key, range_end } => {
                let r = self.roles.get_mut(role).ok_or(AtollError::RoleNotFound)?;
                let at = r
                    .permissions
                    .iter()
                    .position(|p| &p.key == key && &p.range_end == range_end)
                    .ok_or(AtollError::PermissionNotGranted)?;
                r.permissions.remove(at);
            }
        }
        Ok(true)
    }

    /// etcd's `IsAdminPermitted`: the user must exist and hold the root role.
    pub fn check_admin(&self, user: &str) -> Result<(), AtollError> {
        let u = self.users.get(user).ok_or(AtollError::UserNotFound)?;
        if has_root_role(u) { Ok(()) } else { Err(AtollError::PermissionDenied) }
    }

    /// Whether `user` holds `role` (etcd lets a user read the roles it holds).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    /// etcd's `isOpPermitted` after the token checks: `access` (`Read` or `Write`) on `key`
    /// alone when `range_end` is empty, on `[key, range_end)` otherwise (`"\0"`: every key
    /// from `key` on).
    pub fn check_range(
        &self,
        user: &str,
        key: &[u8],
        range_end: &[u8],
        access: PermissionType,
    ) -> Result<(), AtollError> {
        let u = self.users.get(user).ok_or(AtollError::PermissionDenied)?;
        if has_root_role(u) {
            return Ok(());
        }
        let perms = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.permissions.iter())
            .filter(|p| p.perm_type.allows(access));
        if covers(perms, key, range_end) { Ok(()) } else { Err(AtollError::PermissionDenied) }
    }
}

fn has_root_role(user: &User) -> bool {
    user.roles.iter().any(|r| r == ROOT_ROLE)
}

/// One end of an interval; `None` is past every key.
type End = Option<Vec<u8>>;

/// The interval a permission or request names, as etcd's `adt` builds it: a point `k` is
/// `[k, k ‖ 0)`, a range end of `"\0"` is unbounded.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    if range_end.is_empty() {
        let mut end = key.to_vec();
        end.push(0);
        return (key.to_vec(), Some(end));
    }
    if range_end == [0] {
        return (key.to_vec(), None);
    }
    (key.to_vec(), Some(range_end.to_vec()))
}

/// Whether the union of `perms` covers the request's interval (etcd's
/// `IntervalTree.Contains`): sweep from the request's start over the permissions sorted by
/// start, extending the covered prefix while they touch it.
fn covers<'p>(perms: impl Iterator<Item = &'p Permission>, key: &[u8], range_end: &[u8]) -> bool {
    let (start, end) = interval(key, range_end);
    if let Some(end) = &end
        && *end <= start
    {
        // An empty request range (etcd finds no interval to contain): not permitted.
        return false;
    }
    let mut ivls: Vec<(Vec<u8>, End)> = perms.map(|p| interval(&p.key, &p.range_end)).collect();
    ivls.sort();
    let mut covered = start;
    for (s, e) in ivls {
        if s > covered {
            break;
        }
        match e {
            None => return true,
            Some(e) if e > covered => covered = e,
            Some(_) => {}
        }
        if end.as_ref().is_some_and(|end| covered >= *end) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(t: PermissionType, key: &str, end: &str) -> Permission {
        Permission { perm_type: t, key: key.into(), range_end: end.into() }
    }

    fn store_with(perms: Vec<Permission>) -> AuthStore {
        let mut s = AuthStore::default();
        let ops = [
            AuthOp::UserAdd { name: "u".into(), password_hash: "h".into(), no_password: false },
            AuthOp::RoleAdd { name: "r".into() },
            AuthOp::UserGrantRole { user: "u".into(), role: "r".into() },
        ];
        for op in ops.iter() {
            s.apply(op).expect("setup");
        }
        for p in perms {
            s.apply(&AuthOp::RoleGrantPermission { role: "r".into(), permission: p })
                .expect("grant");
        }
        s
    }

    const R: PermissionType = PermissionType::Read;
    const W: PermissionType = PermissionType::Write;

    #[test]
    fn a_prefix_permission_covers_keys_and_ranges_inside_it_only() {
        let s = store_with(vec![perm(PermissionType::ReadWrite, "/app/", "/app0")]);
        assert!(s.check_range("u", b"/app/a", b"", R).is_ok());
        assert!(s.check_range("u", b"/app/a", b"", W).is_ok());
        assert!(s.check_range("u", b"/app/", b"/app0", R).is_ok());
        assert!(s.check_range("u", b"/app/a", b"/app/b", R).is_ok());
        assert_eq!(s.check_range("u", b"/other", b"", R), Err(AtollError::PermissionDenied));
        assert_eq!(s.check_range("u", b"/app/", b"/app1", R), Err(AtollError::PermissionDenied));
        assert_eq!(s.check_range("u", b"/ap", b"/app0", R), Err(AtollError::PermissionDenied));
        // A from-key request is unbounded: a bounded permission never covers it.
        assert_eq!(s.check_range("u", b"/app/", b"\0", R), Err(AtollError::PermissionDenied));
    }

    #[test]
    fn types_are_separate_and_readwrite_counts_for_both() {
        let s = store_with(vec![perm(R, "a", "c"), perm(W, "x", "")]);
        assert!(s.check_range("u", b"b", b"", R).is_ok());
        assert_eq!(s.check_range("u", b"b", b"", W), Err(AtollError::PermissionDenied));
        assert!(s.check_range("u", b"x", b"", W).is_ok());
        assert_eq!(s.check_range("u", b"x", b"", R), Err(AtollError::PermissionDenied));
        // A single-key permission does not cover the key's prefix range.
        assert_eq!(s.check_range("u", b"x", b"y", W), Err(AtollError::PermissionDenied));
    }

    #[test]
    fn adjacent_permissions_join_and_a_gap_denies() {
        let s = store_with(vec![perm(R, "a", "c"), perm(R, "c", "e"), perm(R, "f", "\0")]);
        assert!(s.check_range("u", b"a", b"e", R).is_ok());
        assert_eq!(s.check_range("u", b"a", b"f", R), Err(AtollError::PermissionDenied));
        assert!(s.check_range("u", b"f", b"\0", R).is_ok(), "from-key on a from-key permission");
        assert!(s.check_range("u", b"zzz", b"", R).is_ok());
        assert_eq!(s.check_range("u", b"e", b"", R), Err(AtollError::PermissionDenied));
    }

    #[test]
    fn root_may_do_everything_and_unknown_users_nothing() {
        let mut s = store_with(vec![]);
        s.apply(&AuthOp::UserAdd {
            name: "root".into(),
            password_hash: "h".into(),
            no_password: false,
        })
        .expect("add");
        assert_eq!(s.check_admin("root"), Err(AtollError::PermissionDenied));
        s.apply(&AuthOp::UserGrantRole { user: "root".into(), role: "root".into() })
            .expect("root role needs no record");
        assert!(s.check_admin("root").is_ok());
        assert!(s.check_range("root", b"any", b"\0", W).is_ok());
        assert_eq!(s.check_admin("u"), Err(AtollError::PermissionDenied));
        assert_eq!(s.check_admin("nobody"), Err(AtollError::UserNotFound));
        assert_eq!(s.check_range("nobody", b"a", b"", R), Err(AtollError::PermissionDenied));
    }

    #[test]
    fn etcd_rules_for_enable_delete_and_revoke() {
        let mut s = store_with(vec![perm(R, "a", "")]);
        let enable = AuthOp::Enable { signing_key: vec![7; 32] };
        assert_eq!(s.apply(&enable), Err(AtollError::RootUserNotExist));
        s.apply(&AuthOp::UserAdd {
            name: "root".into(),
            password_hash: "h".into(),
            no_password: false,
        })
        .expect("add");
        assert_eq!(s.apply(&enable), Err(AtollError::RootRoleNotExist));
        s.apply(&AuthOp::UserGrantRole { user: "root".into(), role: "root".into() }).expect("g");
        assert_eq!(s.apply(&enable), Ok(true));
        assert_eq!(s.apply(&enable), Ok(false), "enabling enabled auth changes nothing");
        assert_eq!(
            s.apply(&AuthOp::UserDelete { name: "root".into() }),
            Err(AtollError::InvalidAuthMgmt)
        );
        let revoke_root = AuthOp::UserRevokeRole { user: "root".into(), role: "root".into() };
        assert_eq!(s.apply(&revoke_root), Err(AtollError::InvalidAuthMgmt));
        let revoke = AuthOp::UserRevokeRole { user: "u".into(), role: "other".into() };
        assert_eq!(s.apply(&revoke), Err(AtollError::RoleNotGranted));
        let unperm = AuthOp::RoleRevokePermission {
            role: "r".into(),
            key: b"b".to_vec(),
            range_end: vec![],
        };
        assert_eq!(s.apply(&unperm), Err(AtollError::PermissionNotGranted));
        let add_again =
            AuthOp::UserAdd { name: "u".into(), password_hash: String::new(), no_password: true };
        assert_eq!(s.apply(&add_again), Err(AtollError::UserAlreadyExist));
        assert_eq!(
            s.apply(&AuthOp::RoleAdd { name: "r".into() }),
            Err(AtollError::RoleAlreadyExist)
        );
        let grant_missing = AuthOp::UserGrantRole { user: "u".into(), role: "missing".into() };
        assert_eq!(s.apply(&grant_missing), Err(AtollError::RoleNotFound));
        assert_eq!(s.apply(&AuthOp::RoleDelete { name: "r".into() }), Ok(true));
        assert!(s.users["u"].roles.is_empty(), "a deleted role leaves every user");
        assert_eq!(s.apply(&AuthOp::Disable), Ok(true));
        assert_eq!(s.apply(&AuthOp::UserDelete { name: "root".into() }), Ok(true));
    }
}
