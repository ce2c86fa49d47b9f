//! The retry policy as pure functions: which failures may be retried, where, and after how
//! long. The client only carries out what these return, so the rules are tested here.

use crate::limits::{BACKOFF_BASE, BACKOFF_MAX};
use atoll_proto::AtollError;
use std::hash::BuildHasher;
use std::time::Duration;

/// How far an attempt got before it failed; this decides whether the request may have been
/// applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No connection to the endpoint: nothing was sent.
    Connect,
    /// The connection failed before the request was complete on the wire. The server only
    /// handles a request once its stream is finished, so it was not applied.
    NotSent,
    /// The request was sent and the connection or stream failed before the answer: it may
    /// have been applied.
    MaybeSent,
    /// The server answered with this error.
    Server(AtollError),
    /// A failure that retrying cannot fix (undecodable or oversized answer).
    Fatal,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Retry on the same endpoint.
    RetrySame,
    /// Retry on the next endpoint.
    RetryNextEndpoint,
    /// Return the error.
    GiveUp,
}

/// Decides whether a failed attempt is retried. An idempotent request is retried whenever a
/// retry can succeed; a non-idempotent one only when the failure proves it was not applied
/// (etcd's clients follow the same rule: a timed-out Put is not resent).
pub fn next_step(failure: &Failure, idempotent: bool) -> Next {
    match failure {
        Failure::Connect | Failure::NotSent => Next::RetryNextEndpoint,
        Failure::MaybeSent if idempotent => Next::RetrySame,
        Failure::MaybeSent | Failure::Fatal => Next::GiveUp,
        Failure::Server(e) if !e.is_retryable() => Next::GiveUp,
        // This node does not lead the shard: another node may.
        Failure::Server(AtollError::NotLeader { .. }) => Next::RetryNextEndpoint,
        Failure::Server(e) if proves_not_applied(e) || idempotent => Next::RetrySame,
        Failure::Server(_) => Next::GiveUp,
    }
}

/// Errors a server answers only before it proposes the request, so the request was not
/// applied and may be resent even if it is not idempotent.
fn proves_not_applied(e: &AtollError) -> bool {
    matches!(
        e,
        AtollError::NotLeader { .. } | AtollError::NoLeader { .. } | AtollError::Busy { .. }
    )
}

/// The delay before retry number `retry` (0 for the first retry): exponential from
/// [`BACKOFF_BASE`], capped at [`BACKOFF_MAX`], the upper half scaled by `jitter` in [0, 1).
pub fn backoff_delay(retry: u32, jitter: f64) -> Duration {
    let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
    let cap = BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX);
    let half = cap / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A jitter value in [0, 1). Not cryptographic: it only has to differ between clients.
pub fn jitter() -> f64 {
    // Each RandomState is seeded differently, which is all the randomness needed here.
    let bits = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use atoll_proto::{NativeRequest, PutRequest, RangeRequest, ShardId};

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        assert_eq!(backoff_delay(0, 0.0), BACKOFF_BASE / 2);
        assert_eq!(backoff_delay(0, 0.999), BACKOFF_BASE / 2 + (BACKOFF_BASE / 2).mul_f64(0.999));
        let mut previous_max = Duration::ZERO;
        for retry in 0..40 {
            let low = backoff_delay(retry, 0.0);
            let high = backoff_delay(retry, 0.999_999);
            assert!(low <= high && high <= BACKOFF_MAX, "retry {retry}: {low:?}..{high:?}");
            assert!(low >= BACKOFF_BASE / 2);
            assert!(high >= previous_max || high >= BACKOFF_MAX / 2, "retry {retry} shrank");
            previous_max = high;
        }
        assert!(backoff_delay(u32::MAX, 1.0) <= BACKOFF_MAX);
        assert!(backoff_delay(30, 0.0) >= BACKOFF_MAX / 2);
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn non_idempotent_requests_are_not_resent_when_they_may_have_been_applied() {
        let put = NativeRequest::Put(PutRequest::default());
        let range = NativeRequest::Range(RangeRequest::default());
        assert!(!put.is_idempotent() && range.is_idempotent());
        let shard = ShardId(1);
        let cases = [
            (Failure::Connect, Next::RetryNextEndpoint, Next::RetryNextEndpoint),
            (Failure::NotSent, Next::RetryNextEndpoint, Next::RetryNextEndpoint),
            (Failure::MaybeSent, Next::RetrySame, Next::GiveUp),
            (Failure::Fatal, Next::GiveUp, Next::GiveUp),
            (Failure::Server(AtollError::Timeout), Next::RetrySame, Next::GiveUp),
            (
                Failure::Server(AtollError::NotLeader { shard, leader_hint: None }),
                Next::RetryNextEndpoint,
                Next::RetryNextEndpoint,
            ),
            (Failure::Server(AtollError::NoLeader { shard }), Next::RetrySame, Next::RetrySame),
            (
                Failure::Server(AtollError::Busy { limit: "x".into() }),
                Next::RetrySame,
                Next::RetrySame,
            ),
            (
                Failure::Server(AtollError::WrongShard { shard, epoch: 1 }),
                Next::RetrySame,
                Next::GiveUp,
            ),
            (Failure::Server(AtollError::KeyNotFound), Next::GiveUp, Next::GiveUp),
            (
                Failure::Server(AtollError::RequestTooLarge { request_bytes: 2, limit_bytes: 1 }),
                Next::GiveUp,
                Next::GiveUp,
            ),
        ];
        for (failure, for_range, for_put) in cases {
            assert_eq!(next_step(&failure, range.is_idempotent()), for_range, "{failure:?}");
            assert_eq!(next_step(&failure, put.is_idempotent()), for_put, "{failure:?}");
        }
    }
}
