//! Named limits of atollctl. Each bounds what one invocation may buffer or retry, so a
//! runaway pipe or a huge response fails with a clear error instead of exhausting memory.

/// Most bytes `put <key>` reads from standard input as the value. etcd itself refuses
/// requests over `--max-request-bytes` (1.5 MiB by default, ETCD_API.md §1.10); this is a
/// generous client-side ceiling that still stops `cat /dev/zero | atollctl put k`.
pub const STDIN_VALUE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Most bytes `txn` reads from standard input (all three blocks together).
pub const TXN_INPUT_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Largest response the client library accepts. Large prefix reads are legitimate (etcdctl
/// accepts up to `MaxInt32`), so this is well above any single request limit.
pub const RESPONSE_BYTES_MAX: usize = 512 * 1024 * 1024;

/// How often the client library retries an idempotent request on a retryable error.
pub const CLIENT_RETRIES_MAX: u32 = 3;

/// Extra time granted past `--dial-timeout` before atollctl gives up on a connect attempt
/// itself, so the client library's own (more precise) error normally wins the race.
pub const DIAL_GRACE_MILLIS: u64 = 250;
