//! Sans-IO cores: decisions that take events and return what to do, unit-tested without
//! actors, threads or disks.

pub mod auto_compaction;
pub mod clock;
pub mod effects;
pub mod proposals;
pub mod raft_logger;
pub mod replica_core;
mod replica_core_conf;
mod replica_core_hibernate;
#[cfg(test)]
mod replica_core_hibernate_tests;
mod replica_core_ready;
mod replica_core_snapshot;
#[cfg(test)]
mod replica_core_tests;
pub mod replica_status;
pub mod revision;

pub use auto_compaction::{
    AutoAction, AutoCompactionConfig, AutoCompactor, AutoOutcome, AutoPlan, Retention, ShardSample,
};
pub use clock::{Clock, SystemClock};
pub use effects::{ConfChangeOutcome, Effect, LogWrite, LogWriteDone};
pub use proposals::{PendingProposal, PendingProposals};
pub use replica_core::{PENDING_READS_MAX, ReplicaCore, ReplicaCoreDeps};
pub use replica_core_conf::DesiredReplica;
pub use replica_core_hibernate::Hibernation;
pub use replica_status::{ReadReady, ReplicaRole, ReplicaStatus};
pub use revision::RevisionStamper;
