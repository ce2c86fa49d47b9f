//! Revision stamping on the leader (DESIGN §4): `max(last + 1, clock micros)`.
//!
//! Stamps only need to be increasing on one leader; apply computes the final revision as
//! `max(stamp, applied + 1)`, so a new leader with a slower clock still yields strictly
//! increasing revisions on every replica.

/// Stamps proposals with revisions.
#[derive(Clone, Copy, Debug, Default)]
pub struct RevisionStamper {
    last: i64,
}

impl RevisionStamper {
    /// Notes a revision that exists already (applied, or stamped by an earlier leader).
    pub fn observe(&mut self, revision: i64) {
        self.last = self.last.max(revision);
    }

    /// The stamp for the next proposal.
    pub fn next(&mut self, now_micros: i64) -> i64 {
        self.last = (self.last + 1).max(now_micros);
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_follow_the_clock_and_never_go_back() {
        let mut s = RevisionStamper::default();
        assert_eq!(s.next(1_000), 1_000);
        assert_eq!(s.next(1_000), 1_001, "same microsecond still increases");
        assert_eq!(s.next(500), 1_002, "clock going back does not");
        s.observe(5_000);
        assert_eq!(s.next(2_000), 5_001);
        assert_eq!(s.next(9_000), 9_000);
    }
}
