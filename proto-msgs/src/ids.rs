//! Identifier newtypes. Index, count and size are never mixed: each has its own type.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// One `atoll` server process with one data directory.
    NodeId(u64)
);
id_type!(
    /// A contiguous key range plus the Raft group that replicates it. Shard 0 is the meta shard.
    ShardId(u64)
);
id_type!(
    /// Position of an entry in a shard's Raft log.
    LogIndex(u64)
);
id_type!(
    /// A Raft term.
    Term(u64)
);
id_type!(
    /// The MVCC version stamp of a write: `max(last + 1, clock micros)` (DESIGN §4). Signed
    /// because etcd's wire type is int64 and `<= 0` means "the newest".
    Revision(i64)
);

impl ShardId {
    /// The meta shard: shard map, membership, leases, users and alarms.
    pub const META: ShardId = ShardId(0);
}
