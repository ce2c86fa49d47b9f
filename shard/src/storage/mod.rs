//! The node's fjall database and the keyspaces every shard shares (DESIGN §5): never a
//! keyspace per shard.

mod keyspaces;

pub use keyspaces::Storage;
