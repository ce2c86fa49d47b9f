//! Counters of the peer transport, for tests and metrics, and the rate limit of its
//! warnings.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Totals since the transport started.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct PeerStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// The live counters behind [`PeerStats`].
        #[derive(Debug, Default)]
        pub(crate) struct PeerCounters {
            $(pub(crate) $name: AtomicU64,)*
        }

        impl PeerCounters {
            pub(crate) fn stats(&self) -> PeerStats {
                PeerStats { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters!(
    /// Raft batch frames written.
    frames_sent,
    /// Raft messages written (inside those frames).
    messages_sent,
    /// Raft batch frames received from identified peers.
    frames_received,
    /// Raft messages received and delivered to the inbox.
    messages_received,
    /// Messages dropped because the peer's queue was full.
    messages_dropped_queue_full,
    /// Messages dropped because the addressee is not a known peer.
    messages_dropped_unknown_peer,
    /// Messages dropped because one message alone exceeds the frame limit.
    messages_dropped_too_large,
    /// Messages dropped because the connection failed while they were being written.
    messages_dropped_link_failed,
    /// Dials started.
    connect_attempts,
    /// Dials that failed, or whose connection the peer refused or closed.
    connect_failures,
    /// Incoming connections refused: failed handshake, bad or missing Hello, wrong cluster,
    /// unknown node, wrong dialing direction, or over the connection limit.
    connections_refused,
    /// Snapshots the receiver confirmed.
    snapshots_sent,
    /// Snapshots received whole and accepted by the sink.
    snapshots_received,
    /// Snapshots received in part and refused (bad chunk, sink refusal, stream failure).
    snapshots_refused,
    /// Forwarded requests this node sent and got an answer to.
    forwards_sent,
    /// Forwarded requests this node could not get answered (not connected, over the in-flight
    /// limit, too large, stream failure, timeout).
    forwards_failed,
    /// Forwarded requests received and handed to the inbox.
    forwards_served,
    /// Bidirectional streams that failed (the peer reset them, or the connection was lost)
    /// before their first frame was read, so whether they were snapshots or forwards is not
    /// known.
    streams_failed_unread,
    /// Bidirectional streams whose input was bad (too large, undecodable, unexpected frame),
    /// answered with an error response.
    forwards_refused,
);

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Lets one warning through per [`interval`](WarnLimiter::new), counting the suppressed
/// ones in between so the next warning can say how many there were.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    start: Instant,
    interval_ms: u64,
    /// Milliseconds after `start` of the last warning; `u64::MAX` for never.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    pub(crate) fn new(interval: Duration) -> WarnLimiter {
        WarnLimiter {
            start: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            last_ms: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(events suppressed since the last warning)` if a warning may be logged now.
    pub(crate) fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_ms.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= self.interval_ms;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_interval_and_the_rest_are_counted() {
        let limiter = WarnLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.check(), Some(0));
        for _ in 0..5 {
            assert_eq!(limiter.check(), None);
        }
        let limiter = WarnLimiter::new(Duration::ZERO);
        assert_eq!(limiter.check(), Some(0));
        assert_eq!(limiter.check(), Some(0));
    }
}
