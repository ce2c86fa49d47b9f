//! Every limit and default of the client in one place, so each is named once and can be
//! reasoned about (STYLE "Everything has a named limit").

use std::time::Duration;

/// How long dialing one endpoint (QUIC and TLS handshake) may take before the next one is
/// tried. etcd's clients default to 5 s as well.
pub const DIAL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// How long one call to [`crate::Client::request`] may take, retries included.
pub const REQUEST_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// How many times a request is retried after its first attempt.
pub const RETRIES_MAX_DEFAULT: u32 = 5;
/// Largest response payload the client accepts. A range over many large values can be big,
/// but an unbounded read would let a broken server exhaust the client's memory.
pub const MAX_RESPONSE_BYTES_DEFAULT: usize = 64 * 1024 * 1024;
/// Attempts of one write routed to its shard's leader (`Client::write_at_leader`): each
/// `NotLeader` hint followed, refresh or election waited out costs one.
pub const ROUTED_ATTEMPTS_MAX: u32 = 10;
/// First retry delay; each further retry doubles it up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest delay between two attempts. Half of it is fixed and half is random ("equal
/// jitter") so that many clients retrying a busy node do not retry in lockstep.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A long-lived client pings this often so an idle connection stays open (well under the
/// idle timeout, so one lost ping does not close it).
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// A connection that has heard nothing from the server for this long is closed and redialed
/// on the next request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The UDP port native clients dial when an endpoint names none: the client port, as etcd's
/// 2379 (docs/decisions.md D5).
pub const NATIVE_PORT_DEFAULT: u16 = 2379;
