//! A tiny seeded random number generator (wyrand).
//!
//! Exists so the emulator's output depends only on its seed, never on the version of an outside
//! crate, and because generation must be fast: one multiply per draw.

/// Deterministic, fast, non-cryptographic randomness for generated content.
#[derive(Debug, Clone)]
pub struct FastRng(u64);

impl FastRng {
    pub fn new(seed: u64) -> Self {
        let mut rng = FastRng(seed ^ 0x2545_f491_4f6c_dd1d);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a collection of `len` items (`len` must not be 0).
    pub fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `[lo, hi)`.
    pub fn range_f64(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// One of the given static strings.
    pub fn pick_str(&mut self, items: &[&'static str]) -> &'static str {
        items[self.index(items.len())]
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.index(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_bounds_hold() {
        let mut a = FastRng::new(7);
        let mut b = FastRng::new(7);
        let mut c = FastRng::new(8);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            let v = a.below(10);
            assert!(v < 10);
            seen[v as usize] = true;
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert!(
            seen.iter().all(|s| *s),
            "every value of 0..10 should come up in 1000 draws"
        );
    }
}
