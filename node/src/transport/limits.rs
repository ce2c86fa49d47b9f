//! Limits of the QUIC server, each named once.

use std::time::Duration;

/// Requests a single connection may have in flight (QUIC `max_concurrent_bidi_streams`); a
/// client opening more waits for a stream to complete.
pub const STREAMS_PER_CONNECTION_MAX: u32 = 1024;
/// Connections the server holds at once; further handshakes are refused.
pub const CONNECTIONS_MAX: usize = 4096;
/// A connection that has heard nothing for this long is closed. Clients send keep-alives
/// more often than this (`atoll_router::limits::KEEP_ALIVE_INTERVAL`); QUIC uses the
/// smaller of the two sides' values.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a client has to deliver one whole request once its stream is open, so a stalled
/// client cannot hold a stream and its buffer forever.
pub const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest piece of a request read at once; the buffer grows as bytes arrive instead of
/// trusting the announced length up front.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Client requests (create, cancel, progress) a watch stream holds decoded before its reader
/// stops reading: a client that sends faster than they are served is slowed by QUIC flow
/// control, never buffered without bound.
pub const WATCH_REQUESTS_QUEUED_MAX: usize = 64;
/// Responses a watch stream holds before its watchers wait for the client to read: a client
/// that stops reading stalls only its own stream (its watchers then lag and catch up from
/// storage, holding no events in memory). With responses of at most
/// `atoll_shard::limits::WATCH_STEP_BYTES_MAX` (1 MiB), a stalled stream holds at most
/// about 16 MiB here.
pub const WATCH_RESPONSES_QUEUED_MAX: usize = 16;
