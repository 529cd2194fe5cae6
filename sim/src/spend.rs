//! The simulator's spend ledger: what the state store would tell `decide()` about each
//! budget, and, after a run, the most any of the budget's periods was billed.
//!
//! Billing is the ledger's own rule (`scale0_core::cost::ledger::accrue`: per second
//! from launch, boots included, at least a minute), so the cap `decide()` enforces
//! (`scale0_core::cost::budget`) is checked against the bill it reasons about. Two
//! simplifications, both on the side of counting more: a period is charged everything
//! billed in it exactly (the store spreads an instance's first minute over the
//! quarter-hours it spans, so a launch just before midnight puts part of its minimum in
//! the next day), and a rolling window starts exactly at `now − window` (the store
//! rounds down to a quarter, counting up to 15 minutes more). A scenario has one
//! deployment, so no budget has peers, and there is no AWS Budgets report.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use scale0_core::config::{Budget, BudgetPeriod};
use scale0_core::cost::budget::BudgetObservation;
use scale0_core::cost::ledger::{MINIMUM_BILLED, accrue};
use scale0_core::cost::period;

/// One instance's time on the bill.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Billed {
    pub launched: DateTime<Utc>,
    pub stopped: Option<DateTime<Utc>>,
    pub price: f64,
}

/// How close a budget came to its cap over a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub budget: String,
    pub limit_usd: f64,
    /// The most any one period (any window position, for a rolling budget) was billed.
    pub peak_period_usd: f64,
}

/// What the ledger billed `instances` in `(from, to]`.
fn billed_in(instances: &[Billed], from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    instances
        .iter()
        .flat_map(|i| accrue(i.launched, i.stopped, i.price, from, to))
        .map(|(_, _, usd)| usd)
        .sum()
}

/// What the store would report for `budget` at `now`.
pub(crate) fn observe(
    budget: &Budget,
    instances: &[Billed],
    now: DateTime<Utc>,
) -> BudgetObservation {
    let start = period::current(budget, now).start;
    let window_tail = match budget.period {
        BudgetPeriod::Rolling => {
            let first = start - TimeDelta::seconds(start.timestamp().rem_euclid(3600));
            (0..24)
                .map(|k| first + TimeDelta::hours(k))
                .take_while(|h| *h < now)
                .map(|h| {
                    (
                        h,
                        billed_in(instances, h.max(start), (h + TimeDelta::hours(1)).min(now)),
                    )
                })
                .collect()
        }
        _ => Vec::new(),
    };
    BudgetObservation {
        budget: budget.clone(),
        accrued_usd: billed_in(instances, start, now),
        peers: Vec::new(),
        reported_usd: None,
        window_tail,
    }
}

/// The most `budget` was billed in one period between `start` and `end`.
pub(crate) fn peak(
    budget: &Budget,
    instances: &[Billed],
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BudgetUse {
    let peak_period_usd = match budget.period {
        BudgetPeriod::Rolling => {
            // Window spend is piecewise linear in its end `t`; its maxima lie where a
            // term changes slope: a launch (its minimum is owed at once), the end of a
            // minimum, a stop, and each of those a window later.
            let window = end - period::current(budget, end).start;
            let tiny = TimeDelta::microseconds(1);
            let mut candidates = vec![end];
            for i in instances {
                let stop = i.stopped.unwrap_or(end);
                for t in [i.launched + tiny, i.launched + MINIMUM_BILLED, stop] {
                    candidates.push(t);
                    candidates.push(t + window);
                }
            }
            candidates
                .into_iter()
                .filter(|t| *t > start && *t <= end)
                .map(|t| billed_in(instances, t - window, t))
                .fold(0.0, f64::max)
        }
        _ => {
            let mut peak: f64 = 0.0;
            let mut p = period::current(budget, start);
            loop {
                let to = p.end.map_or(end, |e| e.min(end));
                peak = peak.max(billed_in(instances, p.start, to));
                match p.end {
                    Some(e) if e < end => p = period::current(budget, e),
                    _ => break,
                }
            }
            peak
        }
    };
    BudgetUse {
        budget: budget.name.clone(),
        limit_usd: budget.limit_usd,
        peak_period_usd,
    }
}
