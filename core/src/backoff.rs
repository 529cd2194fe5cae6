//! Doubling backoff with ±20% jitter: the one retry delay of the worker's reconnects
//! and lease releases and of `scale0 local`'s restarts.
//!
//! Pure: the jitter comes from a [`Rng`] seeded by the caller (from its process id,
//! say), so two processes retrying the same failure spread apart, and a test can fix
//! the seed.

use std::time::Duration;

use crate::rng::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: Rng,
}

impl Backoff {
    /// Starts at `min`, doubles to `max`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max,
            next: min,
            rng: Rng::new(seed),
        }
    }

    /// Back to `min`, after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: the current step ±20%, then the step doubles (to `max`).
    pub fn next_delay(&mut self) -> Duration {
        let jitter = 0.8 + 0.4 * self.rng.next_f64();
        let d = self.next.mul_f64(jitter);
        self.next = (self.next * 2).min(self.max);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_its_ceiling_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 7);
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay().as_millis()).collect();
        let bases = [100, 200, 400, 800, 1000, 1000];
        for (d, base) in delays.iter().zip(bases) {
            assert!(
                (*d as f64) >= base as f64 * 0.8 - 1.0 && (*d as f64) <= base as f64 * 1.2 + 1.0,
                "{delays:?}"
            );
        }
        // Jittered: not every delay is its step exactly.
        assert!(delays.iter().zip(bases).any(|(d, b)| *d != b), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(121));
    }
}
