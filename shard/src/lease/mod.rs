//! Leases (DESIGN §4, decision D16). The meta shard owns them: its replicated lease records
//! (`meta_apply`) and, on its leader only, the expiry state ([`LeaseCore`]). Every data shard
//! keeps a lease → keys index of its own keys in fjall, maintained at apply, refuses writes
//! attaching a grant it has revoked and deletes a revoked lease's keys in one entry
//! (`data_apply`). All of it lives in the `leases` keyspace (`lease_keys`), written in the
//! same batch as the data and the applied index.
//!
//! This module must not route or forward: the node drives revocations across shards.

mod data_apply;
mod lease_core;
#[cfg(test)]
mod lease_core_tests;
pub(crate) mod lease_keys;
mod lease_read;
mod lease_writes;
mod meta_apply;

pub(crate) use data_apply::{check_not_revoked, revoke_leases_keys};
pub use lease_core::{LeaseCore, LeaseStats, REVOKE_RETRY_MS, Renewed, TimeToLive};
pub(crate) use lease_keys::{encode_grant, index_key};
pub use lease_read::{keys_of_lease, lease_records};
pub(crate) use lease_writes::{LeaseView, LeaseWrites};
pub(crate) use meta_apply::apply_lease_op;
