//! What a watcher watches: a key, a prefix or a range with etcd's `range_end` conventions,
//! its filters and whether it wants previous key-values.

use atoll_proto::{EventType, WatchCreateRequest, WatchFilter};

/// The keys and events one watcher wants.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchSpec {
    /// First key watched.
    pub key: Vec<u8>,
    /// etcd conventions: empty for the single key, `"\0"` for every key from `key` on, else
    /// the exclusive end.
    pub range_end: Vec<u8>,
    /// Deliver each event's previous key-value.
    pub prev_kv: bool,
    /// Leave out put events.
    pub no_put: bool,
    /// Leave out delete events.
    pub no_delete: bool,
}

impl WatchSpec {
    /// The spec of a create request.
    pub fn from_request(req: &WatchCreateRequest) -> WatchSpec {
        WatchSpec {
            key: req.key.clone(),
            range_end: req.range_end.clone(),
            prev_kv: req.prev_kv,
            no_put: req.filters.contains(&WatchFilter::NoPut),
            no_delete: req.filters.contains(&WatchFilter::NoDelete),
        }
    }

    /// Whether `key` is watched.
    pub fn matches_key(&self, key: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => key == self.key.as_slice(),
            [0] => key >= self.key.as_slice(),
            end => key >= self.key.as_slice() && key < end,
        }
    }

    /// Whether events of `kind` pass the filters.
    pub fn wants(&self, kind: EventType) -> bool {
        match kind {
            EventType::Put => !self.no_put,
            EventType::Delete => !self.no_delete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(key: &[u8], end: &[u8]) -> WatchSpec {
        WatchSpec { key: key.to_vec(), range_end: end.to_vec(), ..Default::default() }
    }

    #[test]
    fn keys_follow_etcd_range_conventions() {
        assert!(spec(b"a", b"").matches_key(b"a"));
        assert!(!spec(b"a", b"").matches_key(b"ab"));
        assert!(spec(b"a", b"\0").matches_key(b"zzz"));
        assert!(!spec(b"b", b"\0").matches_key(b"a"));
        assert!(spec(b"a", b"b").matches_key(b"a\xff"));
        assert!(!spec(b"a", b"b").matches_key(b"b"));
        assert!(spec(b"", b"\0").matches_key(b""));
    }

    #[test]
    fn filters_drop_their_kind_only() {
        let req = WatchCreateRequest { filters: vec![WatchFilter::NoPut], ..Default::default() };
        let s = WatchSpec::from_request(&req);
        assert!(!s.wants(EventType::Put) && s.wants(EventType::Delete));
    }
}
