//! Spend arithmetic: what an instance is billed, and how spend is kept in buckets.
//!
//! Every instance is billed at its pool's price from launch to stop, boots included
//! (as the simulator bills), per second with a minimum of [`MINIMUM_BILLED`] — EC2's
//! rule for Linux instances. The state store accrues each deployment's spend as time
//! passes: at every scaler run, the interval since the last accrual is billed for every
//! instance that ran in it, and the amounts go into buckets of three sizes (a quarter
//! of an hour, an hour, a UTC day), each bucket holding everything billed within it.
//!
//! Why three sizes: a period's spend is a sum of buckets, and the sum should be cheap
//! (a scaler run checks every budget). Periods begin at local midnight, which in every
//! zone's current offset is a quarter-hour boundary of UTC, so a period is exactly a
//! few quarters up to the next UTC hour, hours up to the next UTC midnight, then whole
//! days: at most 3 + 23 + 32 buckets, whatever the period's length ([`period_buckets`]).
//! A rolling window starts at `now − window` rounded *down* to a quarter, so it counts
//! up to 15 minutes of older spend — it overstates, never understates, what the cap
//! compares.
//!
//! Nothing here reads the clock or Redis: times are arguments, amounts are returned.

use chrono::{DateTime, TimeDelta, Utc};

/// The shortest time an instance is billed, however soon it stops.
pub const MINIMUM_BILLED: TimeDelta = TimeDelta::seconds(60);

const QUARTER_S: i64 = 900;
const HOUR_S: i64 = 3600;
const DAY_S: i64 = 86_400;

/// A bucket of stored spend: its size and its first instant (seconds since the epoch,
/// a multiple of the size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Quarter(i64),
    Hour(i64),
    Day(i64),
}

impl Bucket {
    /// The UTC day the bucket lies in (days since the epoch): the state store keeps a
    /// day's quarters and hours together.
    pub fn day(self) -> i64 {
        let start = match self {
            Bucket::Quarter(s) | Bucket::Hour(s) | Bucket::Day(s) => s,
        };
        start.div_euclid(DAY_S)
    }

    /// The field name within its day (`q37`, `h9`) or among days (`20641`).
    pub fn field(self) -> String {
        match self {
            Bucket::Quarter(s) => format!("q{}", s.rem_euclid(DAY_S) / QUARTER_S),
            Bucket::Hour(s) => format!("h{}", s.rem_euclid(DAY_S) / HOUR_S),
            Bucket::Day(s) => format!("{}", s.div_euclid(DAY_S)),
        }
    }
}

/// The bill of one instance that ran from `launched_at` to `stopped_at`, at `price` USD
/// per hour: per second, at least [`MINIMUM_BILLED`].
pub fn billed_usd(launched_at: DateTime<Utc>, stopped_at: DateTime<Utc>, price: f64) -> f64 {
    let ran = (stopped_at - launched_at).max(MINIMUM_BILLED);
    usd(ran, price)
}

/// `price` USD per hour for `d`.
pub fn usd(d: TimeDelta, price: f64) -> f64 {
    (d.num_milliseconds().max(0) as f64 / 3_600_000.0) * price
}

/// What an instance adds to the ledger for the accrual interval `(from, to]`: the
/// intervals of billed time, with their cost.
///
/// By time `t` an instance launched at `L` (and stopped at `S`, if it has) has been
/// billed for `[L, min(max(t, L + 1 min), max(S, L + 1 min))]`: its first minute is
/// billed as soon as it runs, since it is owed whatever happens next, and after that it
/// is billed as time passes, until it stops. What an interval adds is the difference of
/// that between its ends, so the minimum is billed once whichever run sees the
/// instance first, and a stop seen late bills only up to the stop.
pub fn accrue(
    launched_at: DateTime<Utc>,
    stopped_at: Option<DateTime<Utc>>,
    price: f64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>, f64)> {
    let minimum_end = launched_at + MINIMUM_BILLED;
    let end = stopped_at.map(|s| s.max(minimum_end));
    let billed_until = |t: DateTime<Utc>| -> DateTime<Utc> {
        // Nothing is owed before the launch, nor at its very instant.
        if t <= launched_at {
            return launched_at;
        }
        let t = t.max(minimum_end);
        end.map_or(t, |e| t.min(e))
    };
    let (a, b) = (billed_until(from), billed_until(to));
    if b > a {
        vec![(a, b, usd(b - a, price))]
    } else {
        Vec::new()
    }
}

/// What a deployment's instances add to the ledger for `(from, to]`, by bucket: each
/// instance as `(launched_at, stopped_at, price)`. With no `from` (a deployment the
/// ledger has not seen), everything since each launch.
pub fn accrue_all(
    instances: impl IntoIterator<Item = (DateTime<Utc>, Option<DateTime<Utc>>, f64)>,
    from: Option<DateTime<Utc>>,
    to: DateTime<Utc>,
) -> Vec<(Bucket, f64)> {
    let mut out: Vec<(Bucket, f64)> = Vec::new();
    for (launched_at, stopped_at, price) in instances {
        let from = from.unwrap_or(launched_at);
        for (start, end, amount) in accrue(launched_at, stopped_at, price, from, to) {
            for (bucket, part) in buckets(start, end, amount) {
                match out.iter_mut().find(|(b, _)| *b == bucket) {
                    Some((_, v)) => *v += part,
                    None => out.push((bucket, part)),
                }
            }
        }
    }
    out
}

/// The spend of `amounts` that falls in the buckets of a period ([`period_buckets`]):
/// the day-sized amounts for its whole days, hours and quarters for the rest.
pub fn sum_in(amounts: &[(Bucket, f64)], period: &[Bucket]) -> f64 {
    amounts
        .iter()
        .filter(|(b, _)| period.contains(b))
        .map(|(_, usd)| usd)
        .sum()
}

/// Spread `usd` billed evenly over `[start, end)` (a point when they are equal) into
/// buckets of every size: each amount goes to its quarter, its hour and its day.
pub fn buckets(start: DateTime<Utc>, end: DateTime<Utc>, usd: f64) -> Vec<(Bucket, f64)> {
    let (a, b) = (start.timestamp_millis(), end.timestamp_millis());
    let mut quarters: Vec<(i64, f64)> = Vec::new();
    if b <= a {
        quarters.push((a.div_euclid(QUARTER_S * 1000) * QUARTER_S, usd));
    } else {
        let mut t = a;
        while t < b {
            let q = t.div_euclid(QUARTER_S * 1000) * QUARTER_S;
            let next = ((q + QUARTER_S) * 1000).min(b);
            quarters.push((q, usd * (next - t) as f64 / (b - a) as f64));
            t = next;
        }
    }
    let mut out: Vec<(Bucket, f64)> = Vec::new();
    let mut add = |bucket: Bucket, amount: f64| match out.iter_mut().find(|(k, _)| *k == bucket) {
        Some((_, v)) => *v += amount,
        None => out.push((bucket, amount)),
    };
    for (q, amount) in quarters {
        add(Bucket::Quarter(q), amount);
        add(Bucket::Hour(q.div_euclid(HOUR_S) * HOUR_S), amount);
        add(Bucket::Day(q.div_euclid(DAY_S) * DAY_S), amount);
    }
    out
}

/// The buckets whose sum is the spend from `from` until now, given that nothing is
/// billed after `now` yet: `from` rounded down to a quarter, then quarters up to the
/// next UTC hour, hours up to the next UTC midnight, and whole days through `now`'s.
pub fn period_buckets(from: DateTime<Utc>, now: DateTime<Utc>) -> Vec<Bucket> {
    let end = now.timestamp();
    let mut t = from.timestamp().div_euclid(QUARTER_S) * QUARTER_S;
    let mut out = Vec::new();
    while t <= end && t.rem_euclid(HOUR_S) != 0 {
        out.push(Bucket::Quarter(t));
        t += QUARTER_S;
    }
    while t <= end && t.rem_euclid(DAY_S) != 0 {
        out.push(Bucket::Hour(t));
        t += HOUR_S;
    }
    while t <= end {
        out.push(Bucket::Day(t));
        t += DAY_S;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn an_instance_is_billed_per_second_with_a_minute_minimum() {
        let t = at("2026-06-01T12:00:00Z");
        // 90 minutes at $2/h.
        assert!(close(billed_usd(t, t + TimeDelta::minutes(90), 2.0), 3.0));
        // 10 seconds are billed as 60.
        assert!(close(billed_usd(t, t + TimeDelta::seconds(10), 3.6), 0.06));
    }

    #[test]
    fn accrual_bills_each_interval_once_and_the_minimum_once() {
        let t = at("2026-06-01T12:00:00Z");
        let s = |n| t + TimeDelta::seconds(n);
        let price = 3.6; // $0.001 a second
        let total = |parts: Vec<(DateTime<Utc>, DateTime<Utc>, f64)>| -> f64 {
            parts.iter().map(|p| p.2).sum()
        };
        // t=0 launched; accruals at 5 s (the first minute is owed at once), 15 s;
        // stopped at 20 s, seen at 30 s; later accruals add nothing.
        let mut billed = total(accrue(t, None, price, s(-10), s(5)));
        assert!(close(billed, 0.06), "{billed}");
        billed += total(accrue(t, None, price, s(5), s(15)));
        billed += total(accrue(t, Some(s(20)), price, s(15), s(30)));
        billed += total(accrue(t, Some(s(20)), price, s(30), s(90)));
        assert!(close(billed, 0.06), "{billed}");
        // The same instance stopped at 20 s and first accrued at 20 s, or only after
        // its stop: still one minute.
        assert!(close(
            total(accrue(t, Some(s(20)), price, s(20), s(20))),
            0.0
        ));
        assert!(close(
            total(accrue(t, Some(s(20)), price, s(-5), s(400))),
            0.06
        ));
        // An instance that ran 5 minutes is billed 5 minutes, in any slicing.
        let long: f64 = [(0, 30), (30, 200), (200, 400)]
            .iter()
            .map(|&(a, b)| total(accrue(t, Some(s(300)), price, s(a), s(b))))
            .sum();
        assert!(close(long, 0.3), "{long}");
    }

    #[test]
    fn amounts_spread_over_every_bucket_size() {
        // $1 over 12:10–12:40: two quarters (12:00 and 12:15 are partly, 12:30 partly).
        let parts = buckets(at("2026-06-01T12:10:00Z"), at("2026-06-01T12:40:00Z"), 1.0);
        let get = |b: Bucket| parts.iter().find(|p| p.0 == b).map_or(0.0, |p| p.1);
        let s = |t: &str| at(t).timestamp();
        assert!(close(
            get(Bucket::Quarter(s("2026-06-01T12:00:00Z"))),
            5.0 / 30.0
        ));
        assert!(close(get(Bucket::Quarter(s("2026-06-01T12:15:00Z"))), 0.5));
        assert!(close(
            get(Bucket::Quarter(s("2026-06-01T12:30:00Z"))),
            10.0 / 30.0
        ));
        assert!(close(get(Bucket::Hour(s("2026-06-01T12:00:00Z"))), 1.0));
        assert!(close(get(Bucket::Day(s("2026-06-01T00:00:00Z"))), 1.0));
        assert_eq!(Bucket::Quarter(s("2026-06-01T12:15:00Z")).field(), "q49");
        assert_eq!(Bucket::Hour(s("2026-06-01T12:15:00Z")).field(), "h12");
        // A point amount (a minimum's top-up) lands in one bucket of each size.
        assert_eq!(
            buckets(at("2026-06-01T12:10:00Z"), at("2026-06-01T12:10:00Z"), 0.5).len(),
            3
        );
    }

    #[test]
    fn a_period_is_quarters_then_hours_then_days() {
        // From 18:30 UTC (midnight in India) to three days later.
        let from = at("2026-05-31T18:30:00Z");
        let now = at("2026-06-03T07:05:00Z");
        let b = period_buckets(from, now);
        let quarters = b.iter().filter(|b| matches!(b, Bucket::Quarter(_))).count();
        let hours = b.iter().filter(|b| matches!(b, Bucket::Hour(_))).count();
        let days = b.iter().filter(|b| matches!(b, Bucket::Day(_))).count();
        // 18:30, 18:45; 19:00..23:00; 1, 2 and 3 June.
        assert_eq!((quarters, hours, days), (2, 5, 3));
        // Spend billed anywhere in the period lands in exactly one of its buckets.
        for (start, end) in [
            ("2026-05-31T18:31:00Z", "2026-05-31T18:50:00Z"),
            ("2026-05-31T22:00:00Z", "2026-06-02T03:00:00Z"),
            ("2026-06-03T07:00:00Z", "2026-06-03T07:05:00Z"),
        ] {
            let parts = buckets(at(start), at(end), 1.0);
            let counted: f64 = parts.iter().filter(|p| b.contains(&p.0)).map(|p| p.1).sum();
            assert!(close(counted, 1.0), "{start}..{end}: {counted}");
        }
        // Spend before the period is not counted.
        let before = buckets(at("2026-05-31T18:00:00Z"), at("2026-05-31T18:29:00Z"), 1.0);
        assert!(before.iter().all(|p| !b.contains(&p.0)));
        // At most 3 + 23 + 32 buckets for the longest month.
        let long = period_buckets(at("2026-05-31T18:15:00Z"), at("2026-07-01T18:14:00Z"));
        assert!(long.len() <= 58, "{}", long.len());
    }
}
