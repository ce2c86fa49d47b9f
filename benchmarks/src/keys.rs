//! The keys and values a workload uses. Key `i` of a key space is the prefix followed by `i`
//! in zero-padded decimal, so keys are unique within the space, sort in index order (a
//! sequential workload appends), and a narrower prefix selects a known number of them.

use anyhow::bail;
use rand::SeedableRng;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::SmallRng;

/// A set of `size` distinct keys under one prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    prefix: Vec<u8>,
    /// Decimal digits after the prefix.
    width: usize,
    size: u64,
}

/// Decimal digits needed to write every index below `size` (at least one).
pub fn index_digits(size: u64) -> usize {
    let mut largest = size.saturating_sub(1);
    let mut digits = 1;
    while largest >= 10 {
        largest /= 10;
        digits += 1;
    }
    digits
}

impl KeySpace {
    /// A key space of `size` keys under `prefix`. With `key_bytes`, every key is padded to
    /// exactly that length; it is an error if the prefix and the index do not fit.
    pub fn new(prefix: &str, size: u64, key_bytes: Option<usize>) -> anyhow::Result<KeySpace> {
        if size == 0 {
            bail!("the key space must hold at least one key");
        }
        let digits = index_digits(size);
        let needed = prefix.len() + digits;
        let width = match key_bytes {
            None => digits,
            Some(bytes) if bytes >= needed => bytes - prefix.len(),
            Some(bytes) => bail!(
                "--key-size {bytes} cannot hold the prefix {prefix:?} and {digits} digits for \
                 {size} keys; use --key-size {needed} or more, or a shorter --prefix"
            ),
        };
        Ok(KeySpace { prefix: prefix.as_bytes().to_vec(), width, size })
    }

    /// Number of keys.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The common prefix of every key.
    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Length of every key in bytes.
    pub fn key_bytes(&self) -> usize {
        self.prefix.len() + self.width
    }

    /// Key number `index` (taken modulo the size).
    pub fn key(&self, index: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.key_bytes());
        key.extend_from_slice(&self.prefix);
        let index = index % self.size;
        key.extend_from_slice(format!("{index:0width$}", width = self.width).as_bytes());
        key
    }

    /// The `[key, range_end)` pair of the whole prefix.
    pub fn prefix_range(&self) -> (Vec<u8>, Vec<u8>) {
        (self.prefix.clone(), atoll_proto::prefix_range_end(&self.prefix))
    }

    /// A longer prefix that selects exactly the first `10^exponent` keys (indices below it),
    /// or `None` if the space has fewer keys. Used to compare a query over a narrow prefix with
    /// the same query over the whole space.
    pub fn leading_prefix(&self, exponent: u32) -> Option<(Vec<u8>, u64)> {
        let keys = 10u64.checked_pow(exponent)?;
        if keys > self.size || exponent as usize > self.width {
            return None;
        }
        let mut prefix = self.prefix.clone();
        prefix.resize(self.prefix.len() + self.width - exponent as usize, b'0');
        Some((prefix, keys))
    }
}

/// The largest power of ten that is at most `keys` and at most `cap` (at least 1): the size of
/// the narrow prefix of a prefix query.
pub fn narrow_exponent(keys: u64, cap: u64) -> u32 {
    let bound = keys.min(cap).max(1);
    let mut exponent = 0;
    while 10u64.pow(exponent + 1) <= bound {
        exponent += 1;
    }
    exponent
}

/// A value of `bytes` printable random characters from `seed`: random so the storage engine's
/// compression does not flatter the numbers, printable so `atollctl get` shows it.
pub fn make_value(bytes: usize, seed: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    Alphanumeric.sample_string(&mut rng, bytes).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn must_space(prefix: &str, size: u64, key_bytes: Option<usize>) -> KeySpace {
        KeySpace::new(prefix, size, key_bytes).expect("valid key space")
    }

    #[test]
    fn keys_are_unique_sorted_and_wrap_around() {
        let space = must_space("/bench/", 1000, None);
        let keys: Vec<Vec<u8>> = (0..1000).map(|i| space.key(i)).collect();
        assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 1000);
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys sort in index order");
        assert_eq!(space.key(0), b"/bench/000");
        assert_eq!(space.key(999), b"/bench/999");
        assert_eq!(space.key(1000), space.key(0));
        assert!(keys.iter().all(|k| k.len() == space.key_bytes() && k.starts_with(b"/bench/")));
    }

    #[test]
    fn key_size_pads_or_is_refused() {
        let space = must_space("/b/", 10, Some(8));
        assert_eq!(space.key(7), b"/b/00007");
        let err = KeySpace::new("/bench/", 1_000_000, Some(8)).expect_err("too small");
        assert!(err.to_string().contains("--key-size 13"), "{err}");
        assert!(KeySpace::new("/b/", 0, None).is_err());
    }

    #[test]
    fn digits_cover_the_largest_index() {
        assert_eq!(index_digits(1), 1);
        assert_eq!(index_digits(10), 1);
        assert_eq!(index_digits(11), 2);
        assert_eq!(index_digits(1_000_000), 6);
        assert_eq!(index_digits(1_000_001), 7);
    }

    #[test]
    fn leading_prefix_selects_exactly_the_first_keys() {
        let space = must_space("/k/", 2000, None);
        let (prefix, keys) = space.leading_prefix(3).expect("fits");
        assert_eq!((prefix.as_slice(), keys), (&b"/k/0"[..], 1000));
        let matching = (0..space.size()).filter(|i| space.key(*i).starts_with(&prefix)).count();
        assert_eq!(matching, 1000);
        assert_eq!(space.leading_prefix(4), None, "2000 keys hold no full 10,000 block");
        let million = must_space("/k/", 1_000_000, None);
        assert_eq!(million.leading_prefix(4), Some((b"/k/00".to_vec(), 10_000)));
    }

    #[test]
    fn narrow_exponent_is_the_largest_fitting_power_of_ten() {
        assert_eq!(narrow_exponent(1_000_000, 10_000), 4);
        assert_eq!(narrow_exponent(2000, 10_000), 3);
        assert_eq!(narrow_exponent(9, 10_000), 0);
        assert_eq!(narrow_exponent(0, 10_000), 0);
    }

    #[test]
    fn values_are_deterministic_and_sized() {
        assert_eq!(make_value(100, 7), make_value(100, 7));
        assert_ne!(make_value(100, 7), make_value(100, 8));
        assert_eq!(make_value(0, 1).len(), 0);
        assert!(make_value(64, 1).iter().all(u8::is_ascii_alphanumeric));
    }
}
