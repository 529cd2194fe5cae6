//! Nearest-rank percentiles: the one rule every figure scale0 reports uses (the
//! simulator's waits, `scale0 load`, the benchmarks). Percentile `p` is the smallest
//! sample with at least a share `p` of all samples at or below it — always a value
//! that was observed, never an interpolation.

/// The 1-based nearest rank of percentile `p` (in (0, 1]) among `n` samples; `n` > 0.
pub fn rank(p: f64, n: u64) -> u64 {
    ((p * n as f64).ceil() as u64).clamp(1, n)
}

/// Percentile `p` of samples sorted ascending; `None` when there are none.
pub fn of_sorted<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let n = sorted.len() as u64;
    (n > 0).then(|| sorted[(rank(p, n) - 1) as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_an_observed_sample() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(of_sorted(&v, 0.5), Some(5));
        assert_eq!(of_sorted(&v, 0.51), Some(6));
        assert_eq!(of_sorted(&v, 0.99), Some(10));
        assert_eq!(of_sorted(&v, 1.0), Some(10));
        // p near 0 still names the smallest sample, not a rank of 0.
        assert_eq!(of_sorted(&v, 0.0), Some(1));
        assert_eq!(of_sorted::<u32>(&[], 0.5), None);
        assert_eq!(rank(0.99, 200), 198);
    }
}
