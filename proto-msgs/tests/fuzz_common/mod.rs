//! What the frame fuzz tests share: a seeded generator and the mutations of a valid frame
//! (bit flips, byte overwrites, truncation, extension, length-prefix lies, random bytes).

use atoll_proto::frame::FRAME_HEADER_BYTES;

/// Inputs tried per run.
pub const CASES: usize = 20_000;

/// xorshift64: a fixed, dependency-free pseudo-random sequence.
pub struct XorShift(pub u64);

impl XorShift {
    /// The generator of `ATOLL_FUZZ_SEED`, or of `default_seed`; prints the seed and the
    /// command that replays it (`test` names the test target).
    pub fn from_env(default_seed: u64, test: &str) -> XorShift {
        let seed = std::env::var("ATOLL_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_seed);
        eprintln!(
            "seed {seed} (replay: ATOLL_FUZZ_SEED={seed} cargo test -p atoll-proto --test {test})"
        );
        XorShift(seed.max(1))
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random mutation of `base`.
pub fn mutate(rng: &mut XorShift, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match rng.below(6) {
        0 => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        1 => {
            for _ in 0..=rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
        }
        2 => b.truncate(rng.below(b.len())),
        3 => b.extend((0..rng.below(64)).map(|_| rng.next() as u8)),
        4 if b.len() >= FRAME_HEADER_BYTES => {
            // A length prefix that lies about the payload.
            let claimed = (rng.next() as u32).to_be_bytes();
            b[1..FRAME_HEADER_BYTES].copy_from_slice(&claimed);
        }
        _ => b = (0..rng.below(256)).map(|_| rng.next() as u8).collect(),
    }
    b
}
