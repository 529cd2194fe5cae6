//! Evaluator tests: firings of cron special forms, rate anchoring, one-time schedules,
//! windows and the search bounds. Calendar facts used below (2026): Jan 1 is a
//! Thursday, Feb 1 and Mar 1 Sundays, Mar 15 a Sunday, May 31 a Sunday, Aug 1 and
//! Aug 15 Saturdays, Jan 31 a Saturday.

use chrono::{DateTime, TimeDelta, Utc};
use scale0_core::schedule::Schedule;

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad instant {s}: {e}"))
}

fn utcs(list: &[&str]) -> Vec<DateTime<Utc>> {
    list.iter().map(|s| utc(s)).collect()
}

fn sched(expression: &str, zone: &str) -> Schedule {
    Schedule::parse(expression, zone).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn weekdays_at_nine_in_london() {
    let s = sched("cron(0 9 ? * MON-FRI *)", "Europe/London");
    // Friday 2026-03-27 12:00Z: the next firing skips the weekend and lands after the
    // clocks went forward on Sunday, so 09:00 BST is 08:00Z.
    assert_eq!(
        s.upcoming(utc("2026-03-27T12:00:00Z"), 5),
        utcs(&[
            "2026-03-30T08:00:00Z",
            "2026-03-31T08:00:00Z",
            "2026-04-01T08:00:00Z",
            "2026-04-02T08:00:00Z",
            "2026-04-03T08:00:00Z",
        ])
    );
    // Sunday noon: the latest firing is Friday's, 09:00 GMT.
    assert_eq!(
        s.latest_at_or_before(utc("2026-03-29T12:00:00Z")),
        Some(utc("2026-03-27T09:00:00Z"))
    );
    // Inclusive at the firing itself, strictly after for next_after.
    let friday = utc("2026-03-27T09:00:00Z");
    assert_eq!(s.latest_at_or_before(friday), Some(friday));
    assert_eq!(
        s.latest_at_or_before(friday - TimeDelta::seconds(1)),
        Some(utc("2026-03-26T09:00:00Z"))
    );
    assert_eq!(s.next_after(friday), Some(utc("2026-03-30T08:00:00Z")));
    assert_eq!(
        s.next_after(friday - TimeDelta::nanoseconds(1)),
        Some(friday)
    );
}

#[test]
fn weekdays_at_nine_in_tokyo_and_utc() {
    // No daylight saving: 09:00 JST is always 00:00Z.
    let s = sched("cron(0 9 ? * MON-FRI *)", "Asia/Tokyo");
    assert_eq!(
        s.upcoming(utc("2026-03-27T12:00:00Z"), 3),
        utcs(&[
            "2026-03-30T00:00:00Z",
            "2026-03-31T00:00:00Z",
            "2026-04-01T00:00:00Z"
        ])
    );
    let s = sched("cron(0 9 ? * MON-FRI *)", "UTC");
    assert_eq!(
        s.latest_at_or_before(utc("2026-10-25T12:00:00Z")),
        Some(utc("2026-10-23T09:00:00Z"))
    );
}

#[test]
fn last_day_of_month() {
    let s = sched("cron(0 12 L * ? *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-15T00:00:00Z"), 4),
        utcs(&[
            "2026-01-31T12:00:00Z",
            "2026-02-28T12:00:00Z",
            "2026-03-31T12:00:00Z",
            "2026-04-30T12:00:00Z",
        ])
    );
    assert_eq!(
        s.next_after(utc("2028-02-01T00:00:00Z")),
        Some(utc("2028-02-29T12:00:00Z"))
    );
    assert_eq!(
        s.latest_at_or_before(utc("2028-03-15T00:00:00Z")),
        Some(utc("2028-02-29T12:00:00Z"))
    );
}

#[test]
fn nearest_weekday() {
    let s = sched("cron(0 12 15W * ? *)", "UTC");
    // March 15 is a Sunday → Monday 16th; August 15 a Saturday → Friday 14th.
    assert_eq!(
        s.next_after(utc("2026-03-01T00:00:00Z")),
        Some(utc("2026-03-16T12:00:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2026-08-01T00:00:00Z")),
        Some(utc("2026-08-14T12:00:00Z"))
    );
    // April 15 is a Wednesday: itself.
    assert_eq!(
        s.next_after(utc("2026-04-01T00:00:00Z")),
        Some(utc("2026-04-15T12:00:00Z"))
    );

    // 1W on Saturday 1 August stays in August: Monday the 3rd.
    let s = sched("cron(0 12 1W * ? *)", "UTC");
    assert_eq!(
        s.next_after(utc("2026-07-02T00:00:00Z")),
        Some(utc("2026-08-03T12:00:00Z"))
    );
    // 31W: Sunday 31 May → Friday 29th; months without a 31st don't fire.
    let s = sched("cron(0 12 31W * ? *)", "UTC");
    assert_eq!(
        s.next_after(utc("2026-04-01T00:00:00Z")),
        Some(utc("2026-05-29T12:00:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2026-05-30T00:00:00Z")),
        Some(utc("2026-07-31T12:00:00Z"))
    );
}

#[test]
fn last_weekday_of_month() {
    let s = sched("cron(0 12 LW * ? *)", "UTC");
    // Jan 31 is a Saturday → 30th; Feb 28 a Saturday → 27th; Mar 31 a Tuesday.
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        utcs(&[
            "2026-01-30T12:00:00Z",
            "2026-02-27T12:00:00Z",
            "2026-03-31T12:00:00Z"
        ])
    );
    // May 31 is a Sunday → Friday 29th.
    assert_eq!(
        s.next_after(utc("2026-05-01T00:00:00Z")),
        Some(utc("2026-05-29T12:00:00Z"))
    );
}

#[test]
fn nth_weekday_of_month() {
    let first_monday = sched("cron(0 12 ? * MON#1 *)", "UTC");
    assert_eq!(
        first_monday.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        utcs(&[
            "2026-01-05T12:00:00Z",
            "2026-02-02T12:00:00Z",
            "2026-03-02T12:00:00Z"
        ])
    );
    let third_monday = sched("cron(0 12 ? * 2#3 *)", "UTC");
    assert_eq!(
        third_monday.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        utcs(&[
            "2026-01-19T12:00:00Z",
            "2026-02-16T12:00:00Z",
            "2026-03-16T12:00:00Z"
        ])
    );
    // A fifth Friday exists in January and May 2026 only (among Jan–May).
    let fifth_friday = sched("cron(0 12 ? * FRI#5 *)", "UTC");
    assert_eq!(
        fifth_friday.upcoming(utc("2026-01-01T00:00:00Z"), 2),
        utcs(&["2026-01-30T12:00:00Z", "2026-05-29T12:00:00Z"])
    );
}

#[test]
fn last_weekday_of_kind() {
    let s = sched("cron(0 12 ? * 6L *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        utcs(&[
            "2026-01-30T12:00:00Z",
            "2026-02-27T12:00:00Z",
            "2026-03-27T12:00:00Z"
        ])
    );
    let by_name = sched("cron(0 12 ? * FRIL *)", "UTC");
    assert_eq!(
        by_name.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        s.upcoming(utc("2026-01-01T00:00:00Z"), 3)
    );
    // `L` alone in day-of-week is the last day of the week: Saturday.
    let s = sched("cron(0 12 ? * L *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 2),
        utcs(&["2026-01-03T12:00:00Z", "2026-01-10T12:00:00Z"])
    );
}

#[test]
fn increments_lists_and_wrapping_ranges() {
    let s = sched("cron(1/10 9 * * ? *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 7),
        utcs(&[
            "2026-01-01T09:01:00Z",
            "2026-01-01T09:11:00Z",
            "2026-01-01T09:21:00Z",
            "2026-01-01T09:31:00Z",
            "2026-01-01T09:41:00Z",
            "2026-01-01T09:51:00Z",
            "2026-01-02T09:01:00Z",
        ])
    );
    // FRI-MON wraps through the weekend; 22-2 through midnight.
    let s = sched("cron(0 12 ? * FRI-MON *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 5),
        utcs(&[
            "2026-01-02T12:00:00Z",
            "2026-01-03T12:00:00Z",
            "2026-01-04T12:00:00Z",
            "2026-01-05T12:00:00Z",
            "2026-01-09T12:00:00Z",
        ])
    );
    let s = sched("cron(0 22-2 * * ? *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T12:00:00Z"), 5),
        utcs(&[
            "2026-01-01T22:00:00Z",
            "2026-01-01T23:00:00Z",
            "2026-01-02T00:00:00Z",
            "2026-01-02T01:00:00Z",
            "2026-01-02T02:00:00Z",
        ])
    );
    // Quarterly, on the first: JAN-DEC/3 = Jan, Apr, Jul, Oct.
    let s = sched("cron(0 0 1 JAN-DEC/3 ? *)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 3),
        utcs(&[
            "2026-04-01T00:00:00Z",
            "2026-07-01T00:00:00Z",
            "2026-10-01T00:00:00Z"
        ])
    );
}

#[test]
fn years_bound_the_schedule() {
    let s = sched("cron(0 0 1 1 ? 2030,2040)", "UTC");
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 5),
        utcs(&["2030-01-01T00:00:00Z", "2040-01-01T00:00:00Z"])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2035-06-01T00:00:00Z")),
        Some(utc("2030-01-01T00:00:00Z"))
    );
    assert_eq!(s.latest_at_or_before(utc("2029-12-31T23:59:59Z")), None);
}

#[test]
fn never_firing_expressions_terminate() {
    // February 30th never comes: both directions give up after the year range.
    for zone in ["UTC", "Europe/London"] {
        let s = sched("cron(0 0 30 2 ? *)", zone);
        assert_eq!(s.next_after(utc("1970-01-01T00:00:00Z")), None);
        assert_eq!(s.latest_at_or_before(utc("2199-12-31T00:00:00Z")), None);
    }
    // A past year.
    let s = sched("cron(0 0 * * ? 1999)", "UTC");
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
    assert_eq!(
        s.latest_at_or_before(utc("2026-01-01T00:00:00Z")),
        Some(utc("1999-12-31T00:00:00Z"))
    );
}

#[test]
fn extreme_instants_do_not_panic() {
    let every_minute = sched("cron(* * * * ? *)", "Pacific/Kiritimati");
    assert_eq!(every_minute.next_after(DateTime::<Utc>::MAX_UTC), None);
    assert_eq!(
        every_minute.latest_at_or_before(DateTime::<Utc>::MIN_UTC),
        None
    );
    // The first and last local minutes of the year range (Kiritimati was UTC-10:40
    // in 1970 and is UTC+14 since 1995).
    assert_eq!(
        every_minute.next_after(DateTime::<Utc>::MIN_UTC),
        Some(utc("1970-01-01T10:40:00Z"))
    );
    assert_eq!(
        every_minute.latest_at_or_before(DateTime::<Utc>::MAX_UTC),
        Some(utc("2199-12-31T09:59:00Z"))
    );
    let rate = sched("rate(4294967295 days)", "UTC");
    let _ = rate.next_after(DateTime::<Utc>::MAX_UTC);
    let _ = rate.latest_at_or_before(DateTime::<Utc>::MIN_UTC);
    let _ = rate.next_after(utc("2026-01-01T00:00:00Z"));
    let rate = sched("rate(1 minute)", "UTC").with_window(Some(DateTime::<Utc>::MIN_UTC), None);
    let _ = rate.next_after(DateTime::<Utc>::MAX_UTC);
    assert_eq!(
        rate.next_after(DateTime::<Utc>::MIN_UTC),
        Some(DateTime::<Utc>::MIN_UTC + TimeDelta::minutes(1))
    );
    // Asking for an absurd number of firings allocates only what exists.
    let once = sched("at(2026-06-01T09:00:00)", "UTC");
    assert_eq!(
        once.upcoming(utc("2026-01-01T00:00:00Z"), usize::MAX).len(),
        1
    );
}

#[test]
fn rate_without_start_is_anchored_at_the_epoch() {
    let s = sched("rate(5 minutes)", "Europe/London");
    assert_eq!(
        s.next_after(utc("2026-01-01T00:02:30Z")),
        Some(utc("2026-01-01T00:05:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2026-01-01T00:05:00Z")),
        Some(utc("2026-01-01T00:10:00Z"))
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-01-01T00:05:00Z")),
        Some(utc("2026-01-01T00:05:00Z"))
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-01-01T00:04:59Z")),
        Some(utc("2026-01-01T00:00:00Z"))
    );
    // Before the epoch anchor there is nothing.
    assert_eq!(s.latest_at_or_before(utc("1969-12-31T23:59:00Z")), None);
    assert_eq!(
        s.next_after(utc("1969-12-31T23:59:00Z")),
        Some(DateTime::UNIX_EPOCH)
    );
    // Hours and days are multiples of the period since the epoch, in UTC.
    let s = sched("rate(2 hours)", "Asia/Tokyo");
    assert_eq!(
        s.next_after(utc("2026-01-01T01:00:00Z")),
        Some(utc("2026-01-01T02:00:00Z"))
    );
    let s = sched("rate(3 days)", "UTC");
    // 2026-01-01 is day 20454 since the epoch (a multiple of 3 is 20454 = 3 × 6818).
    assert_eq!(
        s.next_after(utc("2025-12-31T00:00:00Z")),
        Some(utc("2026-01-01T00:00:00Z"))
    );
}

#[test]
fn rate_with_start_is_anchored_at_the_start() {
    let start = utc("2026-01-01T00:01:30Z");
    let s = sched("rate(5 minutes)", "UTC").with_window(Some(start), None);
    // The start is the first firing.
    assert_eq!(s.next_after(utc("2025-12-31T00:00:00Z")), Some(start));
    assert_eq!(s.latest_at_or_before(start), Some(start));
    assert_eq!(s.latest_at_or_before(start - TimeDelta::seconds(1)), None);
    assert_eq!(s.next_after(start), Some(utc("2026-01-01T00:06:30Z")));
    assert_eq!(
        s.latest_at_or_before(utc("2026-01-01T00:10:00Z")),
        Some(utc("2026-01-01T00:06:30Z"))
    );
}

#[test]
fn rate_in_days_ignores_daylight_saving() {
    // "days represents a 24-hour duration": across London's spring-forward, a daily
    // rate started at 09:00 GMT fires at 10:00 BST the next day.
    let s =
        sched("rate(1 day)", "Europe/London").with_window(Some(utc("2026-03-28T09:00:00Z")), None);
    assert_eq!(
        s.upcoming(utc("2026-03-28T00:00:00Z"), 3),
        utcs(&[
            "2026-03-28T09:00:00Z",
            "2026-03-29T09:00:00Z",
            "2026-03-30T09:00:00Z"
        ])
    );
}

#[test]
fn one_time_schedule() {
    // 09:00 BST is 08:00Z.
    let s = sched("at(2026-06-01T09:00:00)", "Europe/London");
    let fire = utc("2026-06-01T08:00:00Z");
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), Some(fire));
    assert_eq!(s.next_after(fire), None);
    assert_eq!(s.latest_at_or_before(fire), Some(fire));
    assert_eq!(
        s.latest_at_or_before(utc("2030-01-01T00:00:00Z")),
        Some(fire)
    );
    assert_eq!(s.latest_at_or_before(fire - TimeDelta::seconds(1)), None);
    // In the past: latest returns it, next returns nothing.
    assert_eq!(s.next_after(utc("2027-01-01T00:00:00Z")), None);
    // Seconds are kept.
    let s = sched("at(2026-06-01T09:00:30)", "UTC");
    assert_eq!(
        s.next_after(utc("2026-06-01T09:00:00Z")),
        Some(utc("2026-06-01T09:00:30Z"))
    );
}

#[test]
fn window_bounds_are_inclusive() {
    let s = sched("cron(0 9 * * ? *)", "UTC").with_window(
        Some(utc("2026-01-10T09:00:00Z")),
        Some(utc("2026-01-12T09:00:00Z")),
    );
    assert_eq!(
        s.upcoming(utc("2026-01-01T00:00:00Z"), 10),
        utcs(&[
            "2026-01-10T09:00:00Z",
            "2026-01-11T09:00:00Z",
            "2026-01-12T09:00:00Z"
        ])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-02-01T00:00:00Z")),
        Some(utc("2026-01-12T09:00:00Z"))
    );
    assert_eq!(s.latest_at_or_before(utc("2026-01-09T23:00:00Z")), None);
    assert_eq!(s.next_after(utc("2026-01-12T09:00:00Z")), None);
    // An empty window.
    let s = s.with_window(
        Some(utc("2026-01-12T00:00:00Z")),
        Some(utc("2026-01-11T00:00:00Z")),
    );
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")), None);
    assert_eq!(s.latest_at_or_before(utc("2026-02-01T00:00:00Z")), None);
}

#[test]
fn matches_local_checks_a_whole_minute() {
    let s = scale0_core::schedule::parse_expression("cron(30 9 ? * MON-FRI *)").unwrap();
    let scale0_core::schedule::ScheduleExpression::Cron(c) = s else {
        panic!("cron")
    };
    let at = |t: &str| t.parse::<chrono::NaiveDateTime>().unwrap();
    assert!(c.matches_local(at("2026-03-30T09:30:00")));
    assert!(!c.matches_local(at("2026-03-30T09:30:01")));
    assert!(!c.matches_local(at("2026-03-29T09:30:00")), "a Sunday");
}
