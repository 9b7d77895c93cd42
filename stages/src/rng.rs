//! A small seeded RNG (SplitMix64) for weight init and shuffling, independent of torch's global
//! generator, so nodes training concurrently in one process stay deterministic.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The generator's whole state (64 bits), for checkpoints; [`Rng::from_state`] restores it.
    pub fn state(&self) -> u64 {
        self.0
    }

    /// A generator continuing exactly where the one whose [`Rng::state`] this was stopped.
    pub fn from_state(state: u64) -> Self {
        Rng(state)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Fisher-Yates permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<i64> {
        let mut p: Vec<i64> = (0..n as i64).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permutation_is_a_permutation_and_seeded() {
        let mut a = super::Rng::new(7);
        let mut p = a.permutation(100);
        let q = super::Rng::new(7).permutation(100);
        assert_eq!(p, q);
        p.sort();
        assert_eq!(p, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn state_round_trips() {
        let mut a = super::Rng::new(3);
        a.permutation(10);
        let mut b = super::Rng::from_state(a.state());
        assert_eq!(a.permutation(50), b.permutation(50));
    }
}
