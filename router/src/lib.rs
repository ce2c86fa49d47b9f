//! Atoll's client library: connects to nodes over QUIC, sends native requests, and retries
//! idempotent requests on retryable errors with bounded backoff. Later it caches the shard map
//! and routes by key to shard leaders.
