//! Authentication for the request paths (decision D21): signed tokens valid on every node
//! (`token.rs`) and password hashing and checking on a bounded pool, off every lock
//! (`password.rs`). The auth store itself is the meta shard's (`atoll_shard::auth`); the
//! request service checks each client request against it (`service/auth.rs`).

mod password;
mod token;

pub use password::PasswordPool;
pub use token::{Claims, sign, verify};

use std::time::Duration;

/// etcd's default bcrypt cost (`--bcrypt-cost`).
pub const BCRYPT_COST_DEFAULT: u32 = 10;
/// etcd's default token lifetime (`--auth-token-ttl`, 300 s).
pub const TOKEN_TTL_DEFAULT: Duration = Duration::from_secs(300);

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The node itself (the gateway's recipes after their own check, a forwarded request):
    /// nothing to check.
    Node,
    /// A client, with the token it sent, if any; checked while auth is enabled.
    Client {
        /// The token from `Authenticate`.
        token: Option<String>,
    },
}

/// The auth settings of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// bcrypt cost of the hashes this node makes (etcd's `--bcrypt-cost`, 4..=31).
    pub bcrypt_cost: u32,
    /// How long a token from `Authenticate` stays valid (etcd's `--auth-token-ttl`).
    pub token_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { bcrypt_cost: BCRYPT_COST_DEFAULT, token_ttl: TOKEN_TTL_DEFAULT }
    }
}
