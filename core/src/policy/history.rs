//! Arrival history: what `decide` remembers of a deployment's traffic.
//!
//! The worker counts arrivals in 10 s bins (kept 8 days in Redis). Each decision is
//! given the bins it has not seen yet ([`ArrivalHistory::unfolded_from`]) and folds
//! the complete ones into a summary of fixed size, so one decision reads O(1) data
//! however long the history, and the simulator, fed the same bins, sees exactly what
//! production sees. A bin still filling is never folded: it is read again next time.
//!
//! The summary keeps:
//! - the busy bins of the last [`RATE_LOOKBACK_BINS`] bins, for the arrival rate;
//! - a time-of-week profile of the arrivals ([`TimeOfWeekProfile`]), for the
//!   forecast that pre-warms;
//! - the idle gaps between busy bins as a histogram of *requests that would have
//!   waited for a boot*: after an idle gap, every arrival within one boot lead of the
//!   return is counted against that gap's bucket. A keep-alive of `K` makes exactly the
//!   arrivals after gaps longer than `K` wait, so [`ArrivalHistory::keep_alive`] can
//!   pick the shortest keep-alive whose cold-start share stays within a budget. This
//!   is Azure's idle-time histogram (Shahrad et al., ATC'20) weighted by the requests a
//!   gap delays rather than by the gap count: one return that meets a burst costs more
//!   than one that meets a single request.
//!
//! The counts are counterfactual (what a deployment at zero during the gap would have
//! made wait), so they do not depend on what the policy did, and the keep-alive it
//! learns does not feed back into what it learns.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::profile::TimeOfWeekProfile;

/// Width of an arrival bin, seconds.
pub const BIN_SECS: i64 = 10;
/// Busy bins kept for the arrival rate: 10 minutes.
const RATE_LOOKBACK_BINS: i64 = 60;
/// Upper bounds of the idle-gap buckets, in idle bins (10 s … 17 h); one more bucket
/// holds the longer gaps.
const GAP_BOUNDS_BINS: [i64; 25] = [
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
    3072, 4096, 6144,
];
/// History needed before a learned keep-alive replaces the configured grace.
pub const MIN_SPAN: Duration = Duration::from_secs(6 * 3600);

/// A deployment's arrivals, summarised in fixed space.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArrivalHistory {
    /// The first bin (its start, seconds since the epoch) not yet folded.
    #[serde(default)]
    pub next_bin: Option<i64>,
    /// The first busy bin folded.
    #[serde(default)]
    pub first_bin: Option<i64>,
    #[serde(default)]
    pub last_busy_bin: Option<i64>,
    /// Arrivals folded in all.
    #[serde(default)]
    pub arrivals: u64,
    /// Busy bins of the last [`RATE_LOOKBACK_BINS`]: (bin start, arrivals).
    #[serde(default)]
    pub recent: Vec<(i64, u64)>,
    /// The bucket of the last idle gap, and the end of the boot lead after its return.
    #[serde(default)]
    pub after_gap: Option<(usize, i64)>,
    /// Arrivals within a boot lead after a gap, per gap bucket.
    #[serde(default)]
    pub delayed_by_gap: Vec<u64>,
    /// When in the day and the week the arrivals come, for the forecast.
    #[serde(default)]
    pub profile: TimeOfWeekProfile,
}

fn bin_of(t: DateTime<Utc>) -> i64 {
    let s = t.timestamp();
    s - s.rem_euclid(BIN_SECS)
}

fn gap_bucket(idle_bins: i64) -> usize {
    GAP_BOUNDS_BINS.partition_point(|&b| b < idle_bins)
}

impl ArrivalHistory {
    /// The first bin the next fold needs, or `None` when nothing was folded yet.
    pub fn unfolded_from(&self) -> Option<DateTime<Utc>> {
        self.next_bin.and_then(|s| DateTime::from_timestamp(s, 0))
    }

    /// Fold the complete bins of `bins` (bin start → arrivals) not folded before.
    /// Folding the same bins twice changes nothing.
    pub fn fold(&mut self, bins: &BTreeMap<i64, u64>, now: DateTime<Utc>, boot_lead: Duration) {
        let current = bin_of(now);
        let from = self.next_bin.unwrap_or(i64::MIN);
        let lead = i64::try_from(boot_lead.as_secs()).unwrap_or(i64::MAX);
        if self.delayed_by_gap.len() != GAP_BOUNDS_BINS.len() + 1 {
            self.delayed_by_gap = vec![0; GAP_BOUNDS_BINS.len() + 1];
        }
        for (&bin, &count) in bins.range(from..current) {
            if count == 0 {
                continue;
            }
            self.first_bin.get_or_insert(bin);
            self.arrivals += count;
            if let Some(last) = self.last_busy_bin {
                let idle_bins = (bin - last) / BIN_SECS - 1;
                if idle_bins >= 1 {
                    self.after_gap = Some((gap_bucket(idle_bins), bin.saturating_add(lead)));
                }
            }
            match self.after_gap {
                Some((bucket, until)) if bin <= until => self.delayed_by_gap[bucket] += count,
                _ => self.after_gap = None,
            }
            self.last_busy_bin = Some(bin);
            self.recent.push((bin, count));
            self.profile.add(bin, BIN_SECS, count);
        }
        self.profile.advance_to(current);
        self.next_bin = Some(self.next_bin.map_or(current, |n| n.max(current)));
        let oldest = current - RATE_LOOKBACK_BINS * BIN_SECS;
        self.recent.retain(|&(b, _)| b >= oldest);
    }

    /// Mean arrivals per second over the complete bins of the last `window` (at least
    /// one bin, at most the lookback).
    pub fn rate_per_sec(&self, now: DateTime<Utc>, window: Duration) -> f64 {
        let bins = (window.as_secs() as i64 / BIN_SECS).clamp(1, RATE_LOOKBACK_BINS);
        let current = bin_of(now);
        let oldest = current - bins * BIN_SECS;
        let count: u64 = self
            .recent
            .iter()
            .filter(|&&(b, _)| b >= oldest && b < current)
            .map(|&(_, c)| c)
            .sum();
        count as f64 / (bins * BIN_SECS) as f64
    }

    /// How long the history covers at `now`.
    pub fn span(&self, now: DateTime<Utc>) -> Duration {
        self.first_bin.map_or(Duration::ZERO, |first| {
            Duration::from_secs((bin_of(now) - first).max(0) as u64)
        })
    }

    /// The shortest keep-alive after the last request with which at most `budget` of
    /// the arrivals so far would have waited for a boot; `None` while the history is
    /// shorter than [`MIN_SPAN`]. With few arrivals the budget allows less than one
    /// wait, and the keep-alive covers the longest gap seen: cautious while the
    /// history says little, shorter as it grows.
    pub fn keep_alive(&self, budget: f64, now: DateTime<Utc>) -> Option<Duration> {
        if self.span(now) < MIN_SPAN {
            return None;
        }
        let allowed = budget * self.arrivals as f64;
        let mut delayed = 0u64;
        for (bucket, &count) in self.delayed_by_gap.iter().enumerate().rev() {
            delayed += count;
            if delayed as f64 > allowed {
                // Gaps of this bucket are at most `bound` idle bins: idle from the last
                // request for at most `bound + 1` bins. The longest gaps (past the last
                // bound) are not covered: keeping alive for days is not a keep-alive.
                let bound = GAP_BOUNDS_BINS[bucket.min(GAP_BOUNDS_BINS.len() - 1)];
                return Some(Duration::from_secs(((bound + 1) * BIN_SECS) as u64));
            }
        }
        Some(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    const LEAD: Duration = Duration::from_secs(90);

    #[test]
    fn folds_complete_bins_once() {
        let mut h = ArrivalHistory::default();
        let bins = BTreeMap::from([(0, 3), (10, 2), (20, 5)]);
        h.fold(&bins, at(25), LEAD);
        assert_eq!(h.arrivals, 5, "the bin at 20 is still filling");
        assert_eq!(h.unfolded_from(), Some(at(20)));
        h.fold(&bins, at(25), LEAD);
        assert_eq!(h.arrivals, 5, "folding again changes nothing");
        h.fold(&bins, at(31), LEAD);
        assert_eq!(h.arrivals, 10);
    }

    #[test]
    fn the_rate_counts_complete_bins_of_the_window() {
        let mut h = ArrivalHistory::default();
        let bins: BTreeMap<i64, u64> = (0..12).map(|i| (i * 10, 4)).collect();
        h.fold(&bins, at(125), LEAD);
        assert!((h.rate_per_sec(at(125), Duration::from_secs(60)) - 0.4).abs() < 1e-9);
        assert_eq!(h.rate_per_sec(at(300), Duration::from_secs(60)), 0.0);
    }

    #[test]
    fn a_gap_counts_the_arrivals_within_a_boot_lead_of_the_return() {
        let mut h = ArrivalHistory::default();
        // Busy at 0, idle 30 bins, back at 310 with 1 per bin until 500.
        let mut bins = BTreeMap::from([(0, 1)]);
        bins.extend((31..=50).map(|i| (i * 10, 1)));
        h.fold(&bins, at(600), LEAD);
        let bucket = gap_bucket(30);
        assert_eq!(GAP_BOUNDS_BINS[bucket], 32);
        // 310 ..= 400: ten bins within 90 s of the return.
        assert_eq!(h.delayed_by_gap[bucket], 10);
        assert_eq!(h.delayed_by_gap.iter().sum::<u64>(), 10);
    }

    #[test]
    fn the_keep_alive_is_the_shortest_within_the_budget() {
        let mut h = ArrivalHistory::default();
        // A day of one request every 5 minutes, with a busy stretch each hour.
        let mut bins = BTreeMap::new();
        for hour in 0..24 {
            let start = hour * 3600;
            for i in 0..12 {
                bins.insert(start + i * 300, 1);
            }
            for i in 0..60 {
                bins.insert(start + 1800 + i * 10, 10);
            }
        }
        h.fold(&bins, at(86_400), LEAD);
        assert_eq!(h.keep_alive(0.01, at(3600)), None, "too short a history");
        // Every gap is 29 idle bins; the returns delay ~109 of 610 requests an hour.
        assert_eq!(
            h.keep_alive(0.01, at(86_400)),
            Some(Duration::from_secs(330))
        );
        assert_eq!(h.keep_alive(0.5, at(86_400)), Some(Duration::ZERO));
    }

    #[test]
    fn bins_before_the_folded_ones_are_ignored() {
        let mut h = ArrivalHistory::default();
        h.fold(&BTreeMap::from([(100, 1)]), at(200), LEAD);
        h.fold(&BTreeMap::from([(50, 7), (200, 1)]), at(300), LEAD);
        assert_eq!(h.arrivals, 2);
        assert_eq!(h.first_bin, Some(100));
    }
}
