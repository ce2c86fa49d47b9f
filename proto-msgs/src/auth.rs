//! Authentication and authorization (decision D21): etcd's users, roles and key-range
//! permissions in native form, the requests of etcd's `Auth` service, and the changes the
//! meta shard replicates.
//!
//! The meta shard holds the whole auth store as one record; every change is an [`AuthOp`]
//! applied by etcd's rules (`atoll_shard::auth`). Passwords never travel through Raft: the
//! node that receives a `UserAdd` or `UserChangePassword` hashes the password (bcrypt, as
//! etcd 3.5 does) and forwards the hash.

use crate::ResponseHeader;
use serde::{Deserialize, Serialize};

/// The user every admin operation needs, and that must exist before auth is enabled.
pub const ROOT_USER: &str = "root";
/// The role that grants everything; the root user must hold it before auth is enabled.
pub const ROOT_ROLE: &str = "root";

/// What a permission allows (etcd's `authpb.Permission.Type`: READ 0, WRITE 1, READWRITE 2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PermissionType {
    /// Range and watch.
    #[default]
    Read,
    /// Put and delete.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionType {
    /// Whether this permission allows `access` (`Read` or `Write`).
    pub fn allows(self, access: PermissionType) -> bool {
        self == PermissionType::ReadWrite || self == access
    }
}

/// A key-range permission: one key when `range_end` is empty, `[key, range_end)` otherwise,
/// and every key from `key` on when `range_end` is `"\0"` (etcd's `--from-key`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Permission {
    /// What it allows.
    pub perm_type: PermissionType,
    /// The first key.
    pub key: Vec<u8>,
    /// The end of the range, exclusive; see the type's description.
    pub range_end: Vec<u8>,
}

/// A user of the auth store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name.
    pub name: String,
    /// The bcrypt hash of the password; empty for a user without password.
    pub password_hash: String,
    /// Granted roles, sorted.
    pub roles: Vec<String>,
    /// etcd's `UserAddOptions.no_password`: the user cannot authenticate with a password.
    pub no_password: bool,
}

/// A role of the auth store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// The name.
    pub name: String,
    /// Granted permissions, sorted by key then range end (at most one per range).
    pub permissions: Vec<Permission>,
}

/// A change of the auth store, replicated through the meta shard's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthOp {
    /// Enable auth; the signing key is kept if the store already has one.
    Enable {
        /// A fresh random key for signing tokens (decision D21).
        signing_key: Vec<u8>,
    },
    /// Disable auth.
    Disable,
    /// Add a user.
    UserAdd {
        /// Its name.
        name: String,
        /// The bcrypt hash of its password (empty with `no_password`).
        password_hash: String,
        /// A user without password.
        no_password: bool,
    },
    /// Delete a user.
    UserDelete {
        /// Its name.
        name: String,
    },
    /// Change a user's password.
    UserChangePassword {
        /// Its name.
        name: String,
        /// The bcrypt hash of the new password.
        password_hash: String,
    },
    /// Grant a role to a user.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Revoke a role from a user.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Add a role.
    RoleAdd {
        /// Its name.
        name: String,
    },
    /// Delete a role (and revoke it from every user).
    RoleDelete {
        /// Its name.
        name: String,
    },
    /// Grant a permission to a role (replacing the type of one on the same range).
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission.
        permission: Permission,
    },
    /// Revoke the permission on exactly `[key, range_end)` from a role.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The permission's key.
        key: Vec<u8>,
        /// The permission's range end.
        range_end: Vec<u8>,
    },
}

/// A request of etcd's `Auth` service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthRequest {
    /// `AuthEnable`.
    Enable,
    /// `AuthDisable`.
    Disable,
    /// `AuthStatus`.
    Status,
    /// `Authenticate`: a token for a user and password.
    Authenticate {
        /// The user.
        name: String,
        /// The password.
        password: String,
    },
    /// `UserAdd`.
    UserAdd {
        /// The user.
        name: String,
        /// The password in clear; the receiving node replaces it by `hashed_password`.
        password: String,
        /// The bcrypt hash (etcd 3.5's `hashedPassword`), used when `password` is empty.
        hashed_password: String,
        /// A user without password.
        no_password: bool,
    },
    /// `UserGet`: the user's roles.
    UserGet {
        /// The user.
        name: String,
    },
    /// `UserList`.
    UserList,
    /// `UserDelete`.
    UserDelete {
        /// The user.
        name: String,
    },
    /// `UserChangePassword`.
    UserChangePassword {
        /// The user.
        name: String,
        /// The new password in clear; the receiving node replaces it by `hashed_password`.
        password: String,
        /// The bcrypt hash of the new password, used when `password` is empty.
        hashed_password: String,
    },
    /// `UserGrantRole`.
    UserGrantRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// `UserRevokeRole`.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// `RoleAdd`.
    RoleAdd {
        /// The role.
        name: String,
    },
    /// `RoleGet`: the role's permissions.
    RoleGet {
        /// The role.
        role: String,
    },
    /// `RoleList`.
    RoleList,
    /// `RoleDelete`.
    RoleDelete {
        /// The role.
        role: String,
    },
    /// `RoleGrantPermission`.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission.
        permission: Permission,
    },
    /// `RoleRevokePermission`.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The permission's key.
        key: Vec<u8>,
        /// The permission's range end.
        range_end: Vec<u8>,
    },
}

impl AuthRequest {
    /// Whether the request needs no token even while auth is enabled (etcd: Authenticate
    /// proves who the caller is; the status tells a client whether to authenticate).
    pub fn needs_no_token(&self) -> bool {
        matches!(self, AuthRequest::Authenticate { .. } | AuthRequest::Status)
    }
}

/// The answer to an [`AuthRequest`]; only the fields of the request's etcd response are set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// `Authenticate`: the token.
    pub token: String,
    /// `AuthStatus`: whether auth is enabled.
    pub enabled: bool,
    /// `AuthStatus`: the auth store's revision.
    pub auth_revision: u64,
    /// `UserGet`: the user's roles; `RoleList`: the roles.
    pub roles: Vec<String>,
    /// `UserList`: the users.
    pub users: Vec<String>,
    /// `RoleGet`: the role's permissions.
    pub permissions: Vec<Permission>,
}

/// A request sent with a token (decision D21): the native protocol's equivalent of etcd's
/// `token` gRPC metadata. Nodes check the token and the caller's permissions, then serve
/// `request`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// A token from `Authenticate`.
    pub token: String,
    /// The request.
    pub request: Box<crate::NativeRequest>,
}
