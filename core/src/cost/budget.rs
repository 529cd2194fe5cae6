//! The budget invariant: no launch that could take spend past a cap, and no instance
//! kept past what the cap can pay for.
//!
//! ## The rule
//!
//! A budget's cap holds if, at every decision, the deployments in its scope could
//! stop spending within the cap even if every instance were released at the *next*
//! decision. The decision checks
//!
//! ```text
//! spent + Σ peers + Σ leaving + Σ kept·keep + Σ released·release + Σ launched·launch ≤ limit
//! ```
//!
//! with, for I = the longest gap between two decisions of a deployment (the caller's
//! tick, [`Horizons::interval`]) and D = its `drain_timeout`:
//!
//! - **spent** — what the ledger has accrued in the current period for every
//!   deployment in scope, this deployment's spend up to now included; or what AWS
//!   Budgets last reported for the period, if that is more (a second source that can
//!   only tighten).
//! - **peers** — each other deployment in scope, as it published itself at its last
//!   decision: what its instances would cost after that decision until certainly
//!   stopped ([`PeerCommitment`]). If its next decision is late, its instances are
//!   assumed to run on until now and then to need D + I to stop ([`peer_usd`]).
//! - **leaving** — this deployment's instances that are draining or stopping:
//!   stopping now costs nothing more; draining costs until the first decision after
//!   its drain timeout (draining since + D + I), or until the next decision if it is
//!   empty now; a warned Spot instance that still takes requests costs its remaining
//!   serving time on top of that ([`leaving_usd`]).
//! - **keep** = 2I + D per instance kept: the next decision (≤ I away) may start to
//!   drain it, the first decision after the drain timeout stops it.
//! - **release** = D + I per instance drained by this decision.
//! - **launch** = 2I + D per new instance, as for one kept: by the next decision it may
//!   be serving.
//!
//! Every term is billed at the pool's price and never less than the instance's
//! minimum (60 s from launch, [`super::ledger::MINIMUM_BILLED`]). Between decisions
//! spend grows by what runs, which the previous decision's `keep` and `launch` paid for:
//! by induction, releasing everything is always affordable, so the cap holds as long
//! as decisions come at least every I. A late tick can overrun by what runs during the
//! lateness; AWS Budgets' report, when it comes, tightens the cap by whatever the
//! ledger missed.
//!
//! Draining does not stop billing at once, so the cap bites before spend reaches it:
//! with `block-scale-out` running instances keep serving until keeping them one more
//! interval would not fit, then the dearest drain first; with `scale-to-min` the
//! deployment drains to its pools' `min_instances` as soon as the budget blocks a
//! launch, and stays there for the rest of the period (for a rolling window, until
//! spend falls below [`SCALE_TO_MIN_RESUME_SHARE`] of the limit, so it does not
//! flap between the minimum and a launch). Neither mode lets spend pass the cap: the
//! hard cap outranks `min_instances` and scheduled floors.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::ledger::{MINIMUM_BILLED, usd};
use super::period;
use crate::config::{AtCap, Budget, BudgetPeriod, Deployment, Pool};
use crate::policy::ObservedInstance;

/// For a rolling budget held at its pools' minimum, scale-out resumes once the
/// window's spend is below this share of the limit.
pub const SCALE_TO_MIN_RESUME_SHARE: f64 = 0.8;

/// What the ledger holds for one budget that covers the deciding deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetObservation {
    pub budget: Budget,
    /// Spend accrued in the current period by every deployment in scope, this one's
    /// up to now.
    pub accrued_usd: f64,
    /// The other deployments in scope.
    #[serde(default)]
    pub peers: Vec<PeerCommitment>,
    /// The actual spend AWS Budgets last reported for the current period.
    #[serde(default)]
    pub reported_usd: Option<f64>,
    /// Rolling windows: the spend of each hour at the old end of the window, oldest
    /// first, which says when enough spend leaves the window for a launch.
    #[serde(default)]
    pub window_tail: Vec<(DateTime<Utc>, f64)>,
}

impl BudgetObservation {
    /// Spend so far: the ledger's, or AWS Budgets' report when it says more.
    pub fn spent_usd(&self) -> f64 {
        self.reported_usd
            .map_or(self.accrued_usd, |r| r.max(self.accrued_usd))
    }
}

/// What a deployment published about its instances at its last decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerCommitment {
    pub deployment: String,
    pub decided_at: DateTime<Utc>,
    /// What its instances would cost after `decided_at` until certainly stopped, were
    /// they released at its next decision.
    pub committed_usd: f64,
    /// What its running instances cost per hour.
    pub burn_usd_per_hour: f64,
    /// How long its instances need to stop once released: its D + I.
    pub release_after: Duration,
    /// vCPUs it holds of each quota covering its pools (`super::quota`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub quota_vcpus: std::collections::BTreeMap<String, u64>,
}

/// What a peer adds to a budget now (beyond the spend the ledger has accrued for it,
/// which ends at its `decided_at`).
pub fn peer_usd(peer: &PeerCommitment, now: DateTime<Utc>) -> f64 {
    let since = (now - peer.decided_at).max(TimeDelta::zero());
    let release = TimeDelta::from_std(peer.release_after).unwrap_or(TimeDelta::MAX);
    peer.committed_usd
        .max(usd(since + release, peer.burn_usd_per_hour))
}

/// The horizons of the rule for one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizons {
    /// I: the longest gap between two decisions.
    pub interval: TimeDelta,
    /// D: the deployment's drain timeout.
    pub drain: TimeDelta,
}

impl Horizons {
    pub fn of(spec: &Deployment, interval: Duration) -> Self {
        Horizons {
            interval: TimeDelta::from_std(interval).unwrap_or(TimeDelta::MAX),
            drain: spec.policy.drain_timeout.delta(),
        }
    }

    /// Kept or launched: 2I + D.
    pub fn keep(self) -> TimeDelta {
        self.interval * 2 + self.drain
    }

    /// Drained now: D + I.
    pub fn release(self) -> TimeDelta {
        self.drain + self.interval
    }
}

/// At least the rest of the instance's billing minimum.
fn at_least_minimum(launched_at: DateTime<Utc>, now: DateTime<Utc>, d: TimeDelta) -> TimeDelta {
    d.max(launched_at + MINIMUM_BILLED - now)
        .max(TimeDelta::zero())
}

/// What an instance that is no longer capacity will still cost after now: `stopping`
/// means this decision stops it.
pub fn leaving_usd(
    inst: &ObservedInstance,
    stopping: bool,
    drain_now: bool,
    price: f64,
    now: DateTime<Utc>,
    h: Horizons,
) -> f64 {
    let r = &inst.record;
    let drains_for = if drain_now || inst.in_flight > 0 {
        let since = if drain_now {
            now
        } else {
            r.draining_since.unwrap_or(now)
        };
        (since + h.drain - now).max(TimeDelta::zero()) + h.interval
    } else {
        // Empty: the next decision stops it.
        h.interval
    };
    // A warned Spot instance is kept while it takes requests, then drains as above.
    let serving = r
        .serves_until()
        .map_or(TimeDelta::zero(), |t| (t - now).max(TimeDelta::zero()));
    let until = if stopping {
        TimeDelta::zero()
    } else {
        serving + drains_for
    };
    usd(at_least_minimum(r.launched_at, now, until), price)
}

/// Per pool: what one instance adds to the sum when kept, drained now or launched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSpend {
    pub keep_usd: f64,
    pub release_usd: f64,
    pub launch_usd: f64,
}

impl PoolSpend {
    pub fn of(pool: &Pool, h: Horizons) -> Self {
        let price = pool.price_per_hour_usd;
        PoolSpend {
            keep_usd: usd(h.keep().max(MINIMUM_BILLED), price),
            release_usd: usd(h.release().max(MINIMUM_BILLED), price),
            launch_usd: usd(h.keep().max(MINIMUM_BILLED), price),
        }
    }

    /// What `target` instances of a pool with `current` cost under the rule.
    pub fn of_target(self, current: u32, target: u32) -> f64 {
        let kept = current.min(target);
        f64::from(kept) * self.keep_usd
            + f64::from(current - kept) * self.release_usd
            + f64::from(target.saturating_sub(current)) * self.launch_usd
    }
}

/// The binding budget, as allocation applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendLimit {
    /// The limit less everything the decision cannot change (spent, peers, leaving).
    pub headroom_usd: f64,
    /// Per pool, in the deployment's pool order.
    pub pools: Vec<PoolSpend>,
    /// The budget whose headroom this is (the tightest).
    pub budget: String,
    /// Every pool is held at its `min_instances`: a `scale-to-min` budget is at its cap.
    pub scale_to_min: Option<String>,
    /// When a shed request may try again: the next period, or when spend allows.
    pub retry_at: Option<DateTime<Utc>>,
    /// "budget gpu-monthly: $412.50 spent, $80.00 committed of $500.00 (monthly)".
    pub explain: String,
}

/// One budget's standing at a decision, for the log, `scale0 status` and alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetStatus {
    pub budget: String,
    pub period_start: DateTime<Utc>,
    #[serde(default)]
    pub period_end: Option<DateTime<Utc>>,
    pub limit_usd: f64,
    /// Spend so far in the period (ledger, or AWS Budgets when more).
    pub spent_usd: f64,
    /// What spend is certain to reach, were everything released at the next decision.
    pub bound_usd: f64,
    /// A launch was refused by this budget.
    pub blocked: bool,
    /// The deployment is held at its pools' minimum by this budget.
    #[serde(default)]
    pub at_min: bool,
}

/// What does not depend on this decision's choices, for one budget: spent, peers and
/// the deployment's leaving instances.
fn fixed_usd(b: &BudgetObservation, leaving: f64, now: DateTime<Utc>) -> f64 {
    b.spent_usd() + b.peers.iter().map(|p| peer_usd(p, now)).sum::<f64>() + leaving
}

/// When a rolling budget will have room for `needed` more: when enough of the spend
/// at the old end of the window has left it.
fn rolling_retry(b: &BudgetObservation, needed: f64) -> Option<DateTime<Utc>> {
    let window = b.budget.window?.delta();
    let mut freed = 0.0;
    for &(hour, usd) in &b.window_tail {
        freed += usd;
        if freed >= needed {
            return Some(hour + TimeDelta::hours(1) + window);
        }
    }
    None
}

/// The inputs [`limit`] needs about this deployment now.
#[derive(Debug)]
pub struct Current<'a> {
    pub spec: &'a Deployment,
    /// Instances per pool that count as capacity, in the pool order.
    pub capacity: &'a [u32],
    /// What the leaving instances will still cost ([`leaving_usd`], summed).
    pub leaving_usd: f64,
    pub horizons: Horizons,
}

/// The tightest budget's limit on this decision, and every budget's standing at the
/// current counts. `held_at_min` lists the `scale-to-min` budgets that held the
/// deployment at its minimum at the last decision, with the period they did so in.
pub fn limit(
    now: DateTime<Utc>,
    budgets: &[BudgetObservation],
    current: &Current,
    held_at_min: &std::collections::BTreeMap<String, DateTime<Utc>>,
) -> (Option<SpendLimit>, Vec<BudgetStatus>) {
    let pools: Vec<PoolSpend> = current
        .spec
        .pools
        .iter()
        .map(|p| PoolSpend::of(p, current.horizons))
        .collect();
    let keep_all: f64 = pools
        .iter()
        .zip(current.capacity)
        .map(|(p, &n)| p.of_target(n, n))
        .sum();
    let cheapest_launch = pools
        .iter()
        .map(|p| p.launch_usd)
        .fold(f64::INFINITY, f64::min);
    let mut tightest: Option<SpendLimit> = None;
    let mut scale_to_min: Option<String> = None;
    let mut statuses = Vec::new();
    for b in budgets {
        let fixed = fixed_usd(b, current.leaving_usd, now);
        let headroom = b.budget.limit_usd - fixed;
        let p = period::current(&b.budget, now);
        let blocked = keep_all + cheapest_launch > headroom;
        let spent = b.spent_usd();
        let held = match held_at_min.get(&b.budget.name) {
            _ if b.budget.at_cap != AtCap::ScaleToMin => false,
            None => blocked,
            Some(&since) => match b.budget.period {
                BudgetPeriod::Rolling => {
                    blocked || spent >= SCALE_TO_MIN_RESUME_SHARE * b.budget.limit_usd
                }
                // Held for the rest of the period it began in.
                _ => blocked || since >= p.start,
            },
        };
        if held && scale_to_min.is_none() {
            scale_to_min = Some(b.budget.name.clone());
        }
        let retry_at = match b.budget.period {
            BudgetPeriod::Rolling => rolling_retry(b, keep_all + cheapest_launch - headroom),
            _ => p.end,
        };
        let explain = format!(
            "budget {}: ${spent:.2} spent and ${:.2} committed of ${:.2} ({})",
            b.budget.name,
            fixed - spent + keep_all,
            b.budget.limit_usd,
            match b.budget.period {
                BudgetPeriod::Rolling => format!("rolling {}", b.budget.window.unwrap_or_default()),
                other => other.to_string(),
            }
        );
        statuses.push(BudgetStatus {
            budget: b.budget.name.clone(),
            period_start: p.start,
            period_end: p.end,
            limit_usd: b.budget.limit_usd,
            spent_usd: spent,
            bound_usd: fixed + keep_all,
            blocked,
            at_min: held,
        });
        if tightest.as_ref().is_none_or(|t| headroom < t.headroom_usd) {
            tightest = Some(SpendLimit {
                headroom_usd: headroom,
                pools: pools.clone(),
                budget: b.budget.name.clone(),
                scale_to_min: None,
                retry_at,
                explain,
            });
        }
    }
    if let Some(t) = tightest.as_mut() {
        t.scale_to_min = scale_to_min;
    }
    (tightest, statuses)
}

/// What this deployment publishes for its peers after a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Commitment {
    /// Cost after the decision until every instance is certainly stopped, were they
    /// all released at the next decision.
    pub committed_usd: f64,
    /// What its running instances cost per hour.
    pub burn_usd_per_hour: f64,
    /// D + I.
    pub release_after: Duration,
    /// vCPUs it holds of each quota covering its pools.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub quota_vcpus: std::collections::BTreeMap<String, u64>,
}

/// The commitment of a decision: `targets` per pool (kept and launched) over
/// `capacity`, plus what is leaving.
pub fn commitment(
    spec: &Deployment,
    capacity: &[u32],
    targets: &[u32],
    leaving_usd: f64,
    leaving_burn_usd_per_hour: f64,
    h: Horizons,
) -> Commitment {
    let mut committed = leaving_usd;
    let mut burn = leaving_burn_usd_per_hour;
    for ((pool, &cur), &target) in spec.pools.iter().zip(capacity).zip(targets) {
        committed += PoolSpend::of(pool, h).of_target(cur, target);
        burn += f64::from(cur.max(target)) * pool.price_per_hour_usd;
    }
    Commitment {
        committed_usd: committed,
        burn_usd_per_hour: burn,
        release_after: h.release().to_std().unwrap_or_default(),
        quota_vcpus: Default::default(),
    }
}

/// The alert thresholds of `budget` that `spent_usd` has reached.
pub fn thresholds_reached(budget: &Budget, spent_usd: f64) -> impl Iterator<Item = f64> + '_ {
    budget
        .alert_thresholds
        .iter()
        .copied()
        .filter(move |t| spent_usd >= t * budget.limit_usd)
}

/// Spend at the end of the period at the period's average rate so far; `None` for a
/// rolling window (it has no end) or before the period has begun.
pub fn forecast_usd(status: &BudgetStatus, now: DateTime<Utc>) -> Option<f64> {
    let end = status.period_end?;
    let elapsed = (now - status.period_start).num_milliseconds() as f64;
    let total = (end - status.period_start).num_milliseconds() as f64;
    (elapsed > 0.0 && total > 0.0).then(|| status.spent_usd * total / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_late_peer_is_assumed_to_run_on_until_it_can_stop() {
        let peer = PeerCommitment {
            deployment: "embed".into(),
            decided_at: at("2026-06-01T12:00:00Z"),
            committed_usd: 0.40,
            burn_usd_per_hour: 3.6,
            release_after: Duration::from_secs(180),
            quota_vcpus: Default::default(),
        };
        // Within its interval, what it published covers it.
        assert!((peer_usd(&peer, at("2026-06-01T12:00:30Z")) - 0.40).abs() < 1e-9);
        // Ten minutes late: it ran 600 s since, and needs 180 s more to stop.
        assert!((peer_usd(&peer, at("2026-06-01T12:10:00Z")) - 0.78).abs() < 1e-9);
    }

    #[test]
    fn a_warned_spot_instance_costs_its_serving_time_before_it_drains() {
        use crate::contract::{InstanceRecord, InstanceState};
        let now = at("2026-06-01T12:00:00Z");
        let h = Horizons {
            interval: TimeDelta::seconds(60),
            drain: TimeDelta::seconds(120),
        };
        let mut inst = ObservedInstance {
            record: InstanceRecord {
                id: "i-1".into(),
                deployment: "chat".into(),
                pool: "spot".into(),
                state: InstanceState::Draining,
                endpoint: None,
                launched_at: now - TimeDelta::hours(1),
                ready_at: Some(now - TimeDelta::hours(1)),
                draining_since: Some(now),
                failures: 0,
                reclaim_at: None,
            },
            in_flight: 0,
        };
        // Drained and empty: the next decision stops it, one interval at $3.60/h.
        let plain = leaving_usd(&inst, false, false, 3.6, now, h);
        assert!((plain - 0.06).abs() < 1e-9, "{plain}");
        // Warned, reclaimed in 120 s: it serves 90 s more, then the next decision stops it.
        inst.record.reclaim_at = Some(now + TimeDelta::seconds(120));
        let warned = leaving_usd(&inst, false, false, 3.6, now, h);
        assert!((warned - 0.15).abs() < 1e-9, "{warned}");
    }

    #[test]
    fn horizons_and_per_pool_costs() {
        let h = Horizons {
            interval: TimeDelta::seconds(60),
            drain: TimeDelta::seconds(120),
        };
        assert_eq!(h.keep(), TimeDelta::seconds(240));
        assert_eq!(h.release(), TimeDelta::seconds(180));
        let spend = PoolSpend {
            keep_usd: 0.24,
            release_usd: 0.18,
            launch_usd: 0.24,
        };
        // 3 running → 5: three kept, two launched.
        assert!((spend.of_target(3, 5) - 1.20).abs() < 1e-9);
        // 3 running → 1: one kept, two released.
        assert!((spend.of_target(3, 1) - 0.60).abs() < 1e-9);
    }

    #[test]
    fn forecasts_extrapolate_the_period_rate_and_thresholds_are_reached_once_spent() {
        let status = BudgetStatus {
            budget: "m".into(),
            period_start: at("2026-06-01T00:00:00Z"),
            period_end: Some(at("2026-07-01T00:00:00Z")),
            limit_usd: 500.0,
            spent_usd: 100.0,
            bound_usd: 110.0,
            blocked: false,
            at_min: false,
        };
        // A third of June gone, $100 spent: $300 by its end.
        let f = forecast_usd(&status, at("2026-06-11T00:00:00Z")).unwrap();
        assert!((f - 300.0).abs() < 1e-6, "{f}");
        let budget = Budget {
            name: "m".into(),
            deployments: None,
            period: BudgetPeriod::Monthly,
            window: None,
            time_zone: "UTC".into(),
            limit_usd: 500.0,
            alert_thresholds: vec![0.5, 0.8, 1.0],
            at_cap: AtCap::BlockScaleOut,
        };
        let reached: Vec<f64> = thresholds_reached(&budget, 410.0).collect();
        assert_eq!(reached, [0.5, 0.8]);
    }
}
