//! A tiny lock-free pseudo-random generator (SplitMix64) for error injection,
//! latency jitter and cart ids. Not cryptographic; good enough for a demo app.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

pub struct Rng(AtomicU64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(AtomicU64::new(seed))
    }

    /// Seeded from /dev/urandom when available, mixed with std's randomly keyed
    /// hasher, the clock and the process id.
    pub fn from_entropy() -> Rng {
        let mut seed = 0u64;
        if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
            let mut b = [0u8; 8];
            if f.read_exact(&mut b).is_ok() {
                seed = u64::from_le_bytes(b);
            }
        }
        let mut h = RandomState::new().build_hasher();
        h.write_u64(seed);
        h.write_u32(std::process::id());
        if let Ok(d) = SystemTime::now().duration_since(UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        Rng::new(seed ^ h.finish())
    }

    pub fn next_u64(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n] (inclusive); 0 when n == 0.
    pub fn up_to(&self, n: u64) -> u64 {
        if n == 0 {
            0
        } else if n == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (n + 1)
        }
    }

    /// 32 lowercase hex characters (128 bits).
    pub fn hex_id(&self) -> String {
        format!("{:016x}{:016x}", self.next_u64(), self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f64_in_unit_interval_and_roughly_uniform() {
        let r = Rng::new(42);
        let mut below_half = 0;
        for _ in 0..10_000 {
            let x = r.next_f64();
            assert!((0.0..1.0).contains(&x));
            if x < 0.5 {
                below_half += 1;
            }
        }
        assert!((4_700..5_300).contains(&below_half), "{below_half}");
    }

    #[test]
    fn ids_are_hex_and_distinct() {
        let r = Rng::from_entropy();
        let a = r.hex_id();
        let b = r.hex_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[test]
    fn up_to_is_inclusive_and_bounded() {
        let r = Rng::new(7);
        assert_eq!(r.up_to(0), 0);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let v = r.up_to(3);
            assert!(v <= 3);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
