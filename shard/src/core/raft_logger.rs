//! raft-rs logs through slog; this drain forwards its records to `tracing`, so the node has one
//! log stream with one subscriber.

use slog::{Drain, Level, OwnedKVList, Record};

/// A slog drain that emits tracing events.
pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let msg = record.msg().to_string();
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(target: "raft", "{msg}"),
            Level::Warning => tracing::warn!(target: "raft", "{msg}"),
            Level::Info => tracing::debug!(target: "raft", "{msg}"),
            Level::Debug | Level::Trace => tracing::trace!(target: "raft", "{msg}"),
        }
        Ok(())
    }
}

/// A slog logger for one replica.
pub fn raft_logger(shard: u64, node: u64) -> slog::Logger {
    slog::Logger::root(TracingDrain.fuse(), slog::o!("shard_id" => shard, "node_id" => node))
}
