//! What the watch scenarios count, kept free of IO so it is tested on its own: which writes
//! each watcher received, and from that the events lost, duplicated or out of order.
//!
//! A write is identified by its sequence number `seq` (the writer's n-th put, encoded in the
//! key). Events on one prefix come in revision order, so once a watcher has received revision
//! `r`, every acknowledged write at or below `r` that it has not received is **lost**; the
//! acknowledged writes above its last revision are **undelivered** (it was still behind when
//! the scenario stopped waiting), which is slowness, not loss. Writes that failed or timed
//! out are expected by nobody: they may or may not have been applied.

/// What one watcher received.
#[derive(Clone, Debug)]
pub struct WatcherTally {
    /// Bit `seq` is set once the event of write `seq` arrived.
    seen: Vec<u64>,
    /// Events received, duplicates included.
    pub received: u64,
    /// Events whose write had already been received.
    pub duplicates: u64,
    /// Events whose revision was below one received before.
    pub out_of_order: u64,
    /// Events whose key was not one the writer writes.
    pub foreign: u64,
    /// Highest revision received (0: none yet).
    pub last_revision: i64,
    /// The server ended the watch.
    pub canceled: bool,
}

impl WatcherTally {
    /// A watcher expecting at most `writes` writes.
    pub fn new(writes: u64) -> WatcherTally {
        WatcherTally {
            seen: vec![0; (writes as usize).div_ceil(64)],
            received: 0,
            duplicates: 0,
            out_of_order: 0,
            foreign: 0,
            last_revision: 0,
            canceled: false,
        }
    }

    /// Records the event of write `seq` (`None`: a key the writer never writes) at
    /// `revision`; true if it is the first copy of a known write.
    pub fn on_event(&mut self, seq: Option<u64>, revision: i64) -> bool {
        self.received += 1;
        if revision < self.last_revision {
            self.out_of_order += 1;
        }
        self.last_revision = self.last_revision.max(revision);
        let Some((word, bit)) = seq.and_then(|s| self.slot(s)) else {
            self.foreign += 1;
            return false;
        };
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        self.seen[word] |= bit;
        true
    }

    /// Whether write `seq`'s event arrived.
    pub fn has(&self, seq: u64) -> bool {
        self.slot(seq).is_some_and(|(word, bit)| self.seen[word] & bit != 0)
    }

    fn slot(&self, seq: u64) -> Option<(usize, u64)> {
        let word = usize::try_from(seq / 64).ok()?;
        (word < self.seen.len()).then_some((word, 1 << (seq % 64)))
    }
}

/// The outcome over every watcher.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Watchers.
    pub watchers: u64,
    /// Acknowledged writes, each expected once by every watcher.
    pub acked_writes: u64,
    /// Events received over all watchers (duplicates included).
    pub received: u64,
    /// Acknowledged writes at or below a watcher's last revision that it did not receive,
    /// summed over watchers: must be 0.
    pub lost: u64,
    /// Acknowledged writes above a watcher's last revision, summed over watchers: still on
    /// their way when the scenario stopped waiting.
    pub undelivered: u64,
    /// Watchers that had not received the last acknowledged write.
    pub watchers_behind: u64,
    /// Events received twice, summed over watchers.
    pub duplicates: u64,
    /// Events that came after a higher revision, summed over watchers.
    pub out_of_order: u64,
    /// Events of keys the writer never wrote.
    pub foreign: u64,
    /// Watchers the server canceled.
    pub canceled: u64,
}

impl Delivery {
    /// Whether every watcher saw exactly what it should have, in order, up to where it got.
    pub fn is_correct(&self) -> bool {
        self.lost == 0
            && self.duplicates == 0
            && self.out_of_order == 0
            && self.foreign == 0
            && self.canceled == 0
    }
}

/// Judges `watchers` against the acknowledged writes `(seq, revision)`.
pub fn judge<'a>(
    watchers: impl IntoIterator<Item = &'a WatcherTally>,
    acked: &[(u64, i64)],
) -> Delivery {
    let last = acked.iter().map(|&(_, revision)| revision).max().unwrap_or(0);
    let mut d = Delivery { acked_writes: acked.len() as u64, ..Delivery::default() };
    for w in watchers {
        d.watchers += 1;
        d.received += w.received;
        d.duplicates += w.duplicates;
        d.out_of_order += w.out_of_order;
        d.foreign += w.foreign;
        d.canceled += u64::from(w.canceled);
        if w.last_revision < last {
            d.watchers_behind += 1;
        }
        for &(seq, revision) in acked {
            if w.has(seq) {
                continue;
            }
            if revision <= w.last_revision {
                d.lost += 1;
            } else {
                d.undelivered += 1;
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes 0..n acknowledged at revisions 10, 11, ...
    fn acked(n: u64) -> Vec<(u64, i64)> {
        (0..n).map(|seq| (seq, 10 + seq as i64)).collect()
    }

    #[test]
    fn a_watcher_that_saw_everything_is_correct() {
        let mut w = WatcherTally::new(100);
        for seq in 0..100 {
            assert!(w.on_event(Some(seq), 10 + seq as i64));
        }
        let d = judge([&w], &acked(100));
        assert_eq!((d.received, d.lost, d.undelivered, d.watchers_behind), (100, 0, 0, 0));
        assert!(d.is_correct());
    }

    #[test]
    fn a_gap_below_the_last_revision_is_a_loss_and_a_tail_is_only_undelivered() {
        let mut gap = WatcherTally::new(10);
        let mut behind = WatcherTally::new(10);
        for seq in 0..10 {
            if seq != 4 {
                gap.on_event(Some(seq), 10 + seq as i64);
            }
            if seq < 6 {
                behind.on_event(Some(seq), 10 + seq as i64);
            }
        }
        let d = judge([&gap, &behind], &acked(10));
        assert_eq!((d.lost, d.undelivered, d.watchers_behind), (1, 4, 1));
        assert!(!d.is_correct());
        assert!(judge([&behind], &acked(10)).is_correct(), "slow is not wrong");
    }

    #[test]
    fn duplicates_disorder_foreign_keys_and_cancels_are_counted() {
        let mut w = WatcherTally::new(3);
        assert!(w.on_event(Some(1), 11));
        assert!(!w.on_event(Some(1), 11), "a second copy");
        assert!(w.on_event(Some(0), 10), "first copy, but after a higher revision");
        assert!(!w.on_event(None, 12));
        assert!(!w.on_event(Some(999), 13), "beyond the writes planned");
        w.canceled = true;
        let d = judge([&w], &acked(2));
        assert_eq!((d.duplicates, d.out_of_order, d.foreign, d.canceled), (1, 1, 2, 1));
        assert_eq!((d.lost, d.undelivered), (0, 0));
        assert!(!d.is_correct());
    }

    #[test]
    fn failed_writes_are_expected_by_nobody() {
        let mut w = WatcherTally::new(3);
        w.on_event(Some(0), 10);
        w.on_event(Some(2), 12);
        // Write 1 failed: not acknowledged, so its absence is no loss.
        let d = judge([&w], &[(0, 10), (2, 12)]);
        assert_eq!((d.acked_writes, d.lost, d.undelivered), (2, 0, 0));
        assert!(d.is_correct());
    }
}
