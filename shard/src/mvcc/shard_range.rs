//! The key range a shard owns and the translation of etcd's `key`/`range_end` conventions
//! into a span of keys clipped to it.
//!
//! The `mvcc` keyspace holds the keys of every shard on the node (DESIGN §5: data is keyed by
//! user key so a split is metadata only), so every scan of a shard is clipped to its range:
//! a shard never sees, counts or deletes another shard's keys.

use crate::mvcc::codec::{encode_key, escape_bound};
use std::ops::Bound;

/// Lower and upper bound of a scan over encoded keys.
pub(crate) type EncodedBounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// A shard's keys: `[start, end)`; an empty `end` means unbounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRange {
    /// First key of the shard (inclusive); empty for the lowest key.
    pub start: Vec<u8>,
    /// End of the shard (exclusive); empty for unbounded.
    pub end: Vec<u8>,
}

/// The keys a request addresses within a shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeySpan {
    /// No key of the shard.
    Empty,
    /// Exactly one key (etcd: `range_end` empty).
    Single(Vec<u8>),
    /// `[start, end)`; `None` is unbounded.
    Range {
        /// First key, inclusive.
        start: Vec<u8>,
        /// End, exclusive; `None` for no end.
        end: Option<Vec<u8>>,
    },
}

impl ShardRange {
    /// The range of every key: a cluster's first data shard.
    pub fn all() -> ShardRange {
        ShardRange { start: Vec::new(), end: Vec::new() }
    }

    /// Whether `key` belongs to this shard.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && (self.end.is_empty() || key < self.end.as_slice())
    }

    /// The span of `[key, range_end)` inside this shard, with etcd's conventions: an empty
    /// `range_end` is the single key, `"\0"` means every key >= key (etcd's `mkGteRange`),
    /// and an end at or below the key is empty.
    pub(crate) fn span(&self, key: &[u8], range_end: &[u8]) -> KeySpan {
        if range_end.is_empty() {
            return if self.contains(key) { KeySpan::Single(key.to_vec()) } else { KeySpan::Empty };
        }
        let start = key.max(self.start.as_slice()).to_vec();
        let asked_end = (range_end != [0]).then_some(range_end);
        let shard_end = (!self.end.is_empty()).then_some(self.end.as_slice());
        let end = match (asked_end, shard_end) {
            (Some(a), Some(s)) => Some(a.min(s)),
            (a, s) => a.or(s),
        };
        match end {
            Some(end) if end <= start.as_slice() => KeySpan::Empty,
            end => KeySpan::Range { start, end: end.map(<[u8]>::to_vec) },
        }
    }

    /// The bounds of every `mvcc` key of this shard's keys (encoded key plus revision), or
    /// `None` when the shard owns no key (the meta shard).
    pub(crate) fn encoded_bounds(&self) -> Option<EncodedBounds> {
        let KeySpan::Range { start, end } = self.span(&[0], &[0]) else {
            return None;
        };
        let upper = match end.as_deref().map(escape_bound) {
            Some(upper) => Bound::Excluded(upper),
            None => Bound::Unbounded,
        };
        Some((Bound::Included(encode_key(&start)), upper))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(start: &[u8], end: &[u8]) -> ShardRange {
        ShardRange { start: start.to_vec(), end: end.to_vec() }
    }

    #[test]
    fn spans_follow_etcd_conventions_and_clip_to_the_shard() {
        let all = ShardRange::all();
        assert_eq!(all.span(b"a", b""), KeySpan::Single(b"a".to_vec()));
        assert_eq!(all.span(b"a", b"\0"), KeySpan::Range { start: b"a".to_vec(), end: None });
        assert_eq!(all.span(b"b", b"a"), KeySpan::Empty);
        assert_eq!(all.span(b"a", b"a"), KeySpan::Empty);
        let mid = shard(b"c", b"m");
        assert_eq!(mid.span(b"a", b""), KeySpan::Empty);
        assert_eq!(mid.span(b"m", b""), KeySpan::Empty);
        let clipped = KeySpan::Range { start: b"c".to_vec(), end: Some(b"m".to_vec()) };
        assert_eq!(mid.span(b"\0", b"\0"), clipped);
        assert_eq!(mid.span(b"x", b"\0"), KeySpan::Empty);
        assert!(mid.contains(b"c") && !mid.contains(b"m") && !mid.contains(b"b"));
    }
}
