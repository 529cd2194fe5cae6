//! The project's one seeded PRNG, without the `rand` crate: the simulator's draws, the
//! worker's power-of-two choices and backoff jitter, the stand-in instance's fault dice.
//!
//! xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators",
//! 2018) seeded through SplitMix64, as its authors recommend: fast, 256 bits of state,
//! good statistical quality, and the same sequence on every platform. The seed is the
//! caller's (a scenario's, or one the caller drew from the process), so the rules that
//! draw stay pure; [`Rng::derived`] gives independent streams of one seed, so changing
//! how one use consumes numbers never shifts another.

/// What one SplitMix64 step adds to its state.
pub const SPLITMIX_INCREMENT: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014): used to expand seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(SPLITMIX_INCREMENT);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256**.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    /// The second normal of the last Box–Muller pair.
    spare_normal: Option<f64>,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut s = [0u64; 4];
        for x in &mut s {
            *x = splitmix64(&mut sm);
        }
        // The all-zero state is the one fixed point; SplitMix64 never yields four zeros,
        // but keep the guarantee explicit.
        if s == [0; 4] {
            s[0] = 1;
        }
        Rng {
            s,
            spare_normal: None,
        }
    }

    /// Stream number `stream` of the seed `seed`, independent of its other streams.
    pub fn derived(seed: u64, stream: u64) -> Rng {
        let mut sm = seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
        Rng::new(splitmix64(&mut sm))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1), 53 bits.
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) (Lemire's multiply-shift; the tiny bias for huge `n`
    /// does not matter here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        p >= 1.0 || (p > 0.0 && self.next_f64() < p)
    }

    /// Exponential with the given mean.
    pub fn exponential(&mut self, mean: f64) -> f64 {
        // 1 - U is in (0, 1], so the log is finite.
        -mean * (1.0 - self.next_f64()).ln()
    }

    /// Standard normal (Box–Muller; each pair of uniforms gives two normals).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare_normal = Some(r * sin);
        r * cos
    }

    /// Number of successes in `n` trials of probability `p`. Exact: one draw per trial
    /// for small `n`, otherwise geometric skips between successes (also exact).
    pub fn binomial(&mut self, n: u64, p: f64) -> u64 {
        if p >= 1.0 {
            return n;
        }
        if p <= 0.0 || n == 0 {
            return 0;
        }
        if n <= 16 || p > 0.3 {
            return (0..n).filter(|_| self.next_f64() < p).count() as u64;
        }
        // Skip ahead by geometric gaps: the index of the next success.
        let log_q = (1.0 - p).ln();
        let mut successes = 0;
        let mut i: u64 = 0;
        loop {
            let gap = ((1.0 - self.next_f64()).ln() / log_q).floor();
            if !gap.is_finite() || gap >= (n - i) as f64 {
                return successes;
            }
            i += gap as u64 + 1;
            successes += 1;
            if i >= n {
                return successes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        let mut s1 = Rng::derived(7, 1);
        let mut s2 = Rng::derived(7, 3);
        assert_ne!(s1.next_u64(), s2.next_u64());
    }

    #[test]
    fn splitmix_reference_values() {
        // First outputs for seed 0 from the reference implementation.
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xE220_A839_7B1D_CDAF);
        assert_eq!(splitmix64(&mut s), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn moments_are_plausible() {
        let mut r = Rng::new(1);
        let n = 200_000;
        let mean_u: f64 = (0..n).map(|_| r.next_f64()).sum::<f64>() / n as f64;
        assert!((mean_u - 0.5).abs() < 0.01, "{mean_u}");
        let mean_e: f64 = (0..n).map(|_| r.exponential(2.0)).sum::<f64>() / n as f64;
        assert!((mean_e - 2.0).abs() < 0.05, "{mean_e}");
        let mean_n: f64 = (0..n).map(|_| r.normal()).sum::<f64>() / n as f64;
        assert!(mean_n.abs() < 0.02, "{mean_n}");
        for (trials, p) in [(10u64, 0.3), (1000, 0.01), (300, 0.5)] {
            let m: f64 = (0..20_000)
                .map(|_| r.binomial(trials, p) as f64)
                .sum::<f64>()
                / 20_000.0;
            let expected = trials as f64 * p;
            assert!(
                (m - expected).abs() < 0.05 * expected.max(1.0),
                "B({trials},{p}): {m}"
            );
        }
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
