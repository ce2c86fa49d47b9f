//! Actors: each owns its state and moves messages and bytes; decisions live in `core`.

pub mod compactor_actor;
pub mod messages;
pub mod peers;
pub mod replica_actor;
mod replica_ready;
mod replica_snapshot;
pub mod ticker_actor;

pub use compactor_actor::{CompactorActor, CompactorDeps};
pub use messages::*;
pub use peers::{NoPeers, PeerSink, SnapshotSendDone};
pub use replica_actor::{ReplicaActor, ReplicaDeps};
pub use ticker_actor::{AddTickedReplicas, TickedReplica, TickerActor};
