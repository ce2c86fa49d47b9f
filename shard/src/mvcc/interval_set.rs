//! A set of disjoint key intervals, merged on insert, for the put/delete overlap check of a
//! Txn. Lookups are logarithmic, so checking a large Txn is not quadratic (etcd uses an
//! interval tree for the same reason).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Disjoint intervals `[start, end)`; an end of `None` is unbounded.
#[derive(Clone, Debug, Default)]
pub(crate) struct IntervalSet {
    by_start: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

/// The later of two exclusive ends, `None` being unbounded.
fn max_end(a: Option<Vec<u8>>, b: Option<Vec<u8>>) -> Option<Vec<u8>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    }
}

impl IntervalSet {
    /// Adds the keys a DeleteRange addresses: the key alone when `range_end` is empty, every
    /// key from `key` on when it is `"\0"`, else `[key, range_end)` (nothing if inverted).
    pub(crate) fn insert_request_range(&mut self, key: &[u8], range_end: &[u8]) {
        let end = match range_end {
            [] => {
                let mut successor = key.to_vec();
                successor.push(0);
                Some(successor)
            }
            [0] => None,
            end => Some(end.to_vec()),
        };
        self.insert(key.to_vec(), end);
    }

    /// Adds `[start, end)`, merging it with every interval it overlaps or touches.
    pub(crate) fn insert(&mut self, start: Vec<u8>, end: Option<Vec<u8>>) {
        if end.as_ref().is_some_and(|e| *e <= start) {
            return;
        }
        let (mut start, mut end) = (start, end);
        let before = self.by_start.range(..=start.clone()).next_back();
        if let Some((s, e)) = before
            && e.as_ref().is_none_or(|e| *e >= start)
        {
            let (s, e) = (s.clone(), e.clone());
            self.by_start.remove(&s);
            start = s;
            end = max_end(end, e);
        }
        loop {
            let next =
                self.by_start.range((Bound::Excluded(start.clone()), Bound::Unbounded)).next();
            let Some((s, e)) = next else { break };
            if end.as_ref().is_some_and(|end| s > end) {
                break;
            }
            let (s, e) = (s.clone(), e.clone());
            self.by_start.remove(&s);
            end = max_end(end, e);
        }
        self.by_start.insert(start, end);
    }

    /// Adds every interval of `other`.
    pub(crate) fn union(&mut self, other: &IntervalSet) {
        for (start, end) in &other.by_start {
            self.insert(start.clone(), end.clone());
        }
    }

    /// Whether `key` lies in an interval.
    pub(crate) fn contains(&self, key: &[u8]) -> bool {
        self.by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .is_some_and(|(_, end)| end.as_deref().is_none_or(|e| key < e))
    }

    /// Whether any key of `keys` lies in an interval.
    pub(crate) fn intersects_any(&self, keys: &BTreeSet<Vec<u8>>) -> bool {
        self.by_start.iter().any(|(start, end)| {
            keys.range::<[u8], _>((Bound::Included(start.as_slice()), Bound::Unbounded))
                .next()
                .is_some_and(|k| end.as_ref().is_none_or(|e| k < e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_answers_membership() {
        let mut set = IntervalSet::default();
        set.insert_request_range(b"b", b"d");
        set.insert_request_range(b"f", b"");
        set.insert_request_range(b"c", b"e");
        set.insert_request_range(b"z", b"a");
        assert!(set.contains(b"b") && set.contains(b"d\xff") && set.contains(b"f"));
        assert!(!set.contains(b"a") && !set.contains(b"e") && !set.contains(b"f\x00"));
        assert!(!set.contains(b"z"));
        set.insert_request_range(b"x", b"\0");
        assert!(set.contains(b"\xff\xff") && !set.contains(b"w"));
        let keys: BTreeSet<Vec<u8>> = [b"a".to_vec(), b"e".to_vec()].into();
        assert!(!set.intersects_any(&keys));
        let keys: BTreeSet<Vec<u8>> = [b"a".to_vec(), b"y".to_vec()].into();
        assert!(set.intersects_any(&keys));
        assert_eq!(set.by_start.len(), 3);
    }
}
