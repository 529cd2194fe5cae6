//! Budget periods: when the current one began and when it ends.
//!
//! A daily period runs from midnight to midnight in the budget's time zone, a monthly
//! one from midnight of the 1st to midnight of the next 1st. A rolling period is the
//! last `window` and never ends. Midnight in a zone is found from the local date, so a
//! daylight-saving change (a 23- or 25-hour day) moves the UTC instant, not the rule;
//! a zone whose clocks skip midnight itself begins the day at the first instant that
//! exists after it.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::config::{Budget, BudgetPeriod};

/// The period of a budget that contains an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub start: DateTime<Utc>,
    /// When the next period begins; `None` for a rolling window.
    pub end: Option<DateTime<Utc>>,
}

/// The period of `budget` containing `now`. A budget that passed validation has a known
/// time zone and, when rolling, a window; others fall back to UTC and a day.
pub fn current(budget: &Budget, now: DateTime<Utc>) -> Period {
    let tz: Tz = budget.time_zone.parse().unwrap_or(Tz::UTC);
    match budget.period {
        BudgetPeriod::Rolling => Period {
            start: now
                - budget
                    .window
                    .map_or(chrono::TimeDelta::days(1), |w| w.delta()),
            end: None,
        },
        BudgetPeriod::Daily => {
            let today = now.with_timezone(&tz).date_naive();
            let start = local_midnight(tz, today);
            let end = today
                .checked_add_days(Days::new(1))
                .map(|d| local_midnight(tz, d));
            Period { start, end }
        }
        BudgetPeriod::Monthly => {
            let first = now
                .with_timezone(&tz)
                .date_naive()
                .with_day(1)
                .unwrap_or_default();
            let start = local_midnight(tz, first);
            let end = first
                .checked_add_months(Months::new(1))
                .map(|d| local_midnight(tz, d));
            Period { start, end }
        }
    }
}

/// A stable name of the period, for alert dedupe and AWS Budgets reports: its start in
/// RFC 3339 (a rolling window has one period, `rolling`).
pub fn key(budget: &Budget, now: DateTime<Utc>) -> String {
    match budget.period {
        BudgetPeriod::Rolling => "rolling".into(),
        _ => current(budget, now)
            .start
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// The first instant of `date` in `tz`: midnight, or the first existing instant after
/// it when the zone's clocks skip midnight that day.
fn local_midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut t = date.and_time(NaiveTime::MIN);
    // Gaps are at most a few hours; step in quarter hours (every zone's offsets today
    // are multiples of 15 minutes) until the local time exists.
    for _ in 0..4 * 24 {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += chrono::TimeDelta::minutes(15);
    }
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AtCap;
    use crate::duration::HumanDuration;

    fn budget(period: BudgetPeriod, tz: &str) -> Budget {
        Budget {
            name: "b".into(),
            deployments: None,
            period,
            window: (period == BudgetPeriod::Rolling).then(|| HumanDuration::from_secs(7 * 86_400)),
            time_zone: tz.into(),
            limit_usd: 10.0,
            alert_thresholds: vec![1.0],
            at_cap: AtCap::BlockScaleOut,
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn daily_periods_begin_at_local_midnight() {
        let b = budget(BudgetPeriod::Daily, "Europe/London");
        // Summer: London is UTC+1, so its day begins at 23:00 UTC the day before.
        let p = current(&b, at("2026-07-10T12:00:00Z"));
        assert_eq!(p.start, at("2026-07-09T23:00:00Z"));
        assert_eq!(p.end, Some(at("2026-07-10T23:00:00Z")));
        // 23:30 UTC is already the next London day.
        assert_eq!(
            current(&b, at("2026-07-10T23:30:00Z")).start,
            at("2026-07-10T23:00:00Z")
        );
        // The spring-forward day is 23 hours long: 00:00 GMT to 00:00 BST.
        let p = current(&b, at("2026-03-29T12:00:00Z"));
        assert_eq!(p.start, at("2026-03-29T00:00:00Z"));
        assert_eq!(p.end, Some(at("2026-03-29T23:00:00Z")));
    }

    #[test]
    fn monthly_periods_run_from_the_first() {
        let b = budget(BudgetPeriod::Monthly, "Asia/Kolkata");
        // India is UTC+5:30: June begins at 18:30 UTC on 31 May.
        let p = current(&b, at("2026-06-15T00:00:00Z"));
        assert_eq!(p.start, at("2026-05-31T18:30:00Z"));
        assert_eq!(p.end, Some(at("2026-06-30T18:30:00Z")));
        let utc = budget(BudgetPeriod::Monthly, "UTC");
        let p = current(&utc, at("2026-12-31T23:59:59Z"));
        assert_eq!(p.start, at("2026-12-01T00:00:00Z"));
        assert_eq!(p.end, Some(at("2027-01-01T00:00:00Z")));
        assert_eq!(
            key(&utc, at("2026-12-05T00:00:00Z")),
            "2026-12-01T00:00:00Z"
        );
    }

    #[test]
    fn a_zone_that_skips_midnight_begins_the_day_when_clocks_resume() {
        // Santiago moved its clocks from 00:00 to 01:00 on 2026-09-06.
        let b = budget(BudgetPeriod::Daily, "America/Santiago");
        let p = current(&b, at("2026-09-06T12:00:00Z"));
        assert_eq!(p.start, at("2026-09-06T04:00:00Z"));
    }

    #[test]
    fn rolling_windows_trail_now_and_never_end() {
        let b = budget(BudgetPeriod::Rolling, "UTC");
        let p = current(&b, at("2026-07-10T12:00:00Z"));
        assert_eq!(p.start, at("2026-07-03T12:00:00Z"));
        assert_eq!(p.end, None);
        assert_eq!(key(&b, at("2026-07-10T12:00:00Z")), "rolling");
    }
}
