//! Sans-IO cores: decisions that take events and return what to do, unit-tested without
//! actors, threads or disks.

pub mod clock;
pub mod proposals;
pub mod raft_logger;
pub mod revision;

pub use clock::{Clock, SystemClock};
pub use proposals::{PendingProposal, PendingProposals};
pub use revision::RevisionStamper;
