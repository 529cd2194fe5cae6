//! Daylight-saving behaviour, per AWS's rule for EventBridge Scheduler: a firing whose
//! local time does not exist (spring forward) is skipped; a local time that occurs
//! twice (fall back) fires once, at its first occurrence. See the module docs of
//! `scale0_core::schedule` for the source.
//!
//! Transitions used (2026):
//! - Europe/London: 03-29 01:00 GMT → 02:00 BST; 10-25 02:00 BST → 01:00 GMT.
//! - America/New_York: 03-08 02:00 EST → 03:00 EDT; 11-01 02:00 EDT → 01:00 EST.
//! - Australia/Lord_Howe (30 minutes): 04-05 02:00 (+11) → 01:30 (+10:30);
//!   10-04 02:00 (+10:30) → 02:30 (+11).

use chrono::{DateTime, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use scale0_core::schedule::{Schedule, ScheduleExpression};

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
fn the_transitions_are_where_the_tests_assume() {
    let local = |z: &str, t: &str| {
        let tz: Tz = z.parse().unwrap();
        let naive: NaiveDateTime = t.parse().unwrap();
        tz.from_local_datetime(&naive)
    };
    use chrono::LocalResult::{Ambiguous, None as Gap};
    assert!(matches!(local("Europe/London", "2026-03-29T01:30:00"), Gap));
    assert!(matches!(
        local("Europe/London", "2026-10-25T01:30:00"),
        Ambiguous(..)
    ));
    assert!(matches!(
        local("America/New_York", "2026-03-08T02:30:00"),
        Gap
    ));
    assert!(matches!(
        local("America/New_York", "2026-11-01T01:30:00"),
        Ambiguous(..)
    ));
    assert!(matches!(
        local("Australia/Lord_Howe", "2026-10-04T02:15:00"),
        Gap
    ));
    assert!(matches!(
        local("Australia/Lord_Howe", "2026-04-05T01:45:00"),
        Ambiguous(..)
    ));
}

#[test]
fn london_spring_forward_skips_the_missing_time() {
    // 01:30 does not exist on 2026-03-29: no firing that day, not moved to 02:30.
    let s = sched("cron(30 1 * * ? *)", "Europe/London");
    assert_eq!(
        s.upcoming(utc("2026-03-27T12:00:00Z"), 3),
        utcs(&[
            "2026-03-28T01:30:00Z", // 01:30 GMT
            "2026-03-30T00:30:00Z", // 01:30 BST
            "2026-03-31T00:30:00Z",
        ])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-03-29T23:00:00Z")),
        Some(utc("2026-03-28T01:30:00Z"))
    );
    // 01:00 exists (it is the instant the clocks jump), 02:00 exists: both fire.
    let s = sched("cron(0 1,2 * * ? *)", "Europe/London");
    assert_eq!(
        s.upcoming(utc("2026-03-29T00:00:00Z"), 2),
        utcs(&["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"])
    );
}

#[test]
fn london_fall_back_fires_once_at_the_first_occurrence() {
    // 01:30 happens at 00:30Z (BST) and again at 01:30Z (GMT); only the first fires.
    let s = sched("cron(30 1 * * ? *)", "Europe/London");
    assert_eq!(
        s.upcoming(utc("2026-10-24T00:00:00Z"), 3),
        utcs(&[
            "2026-10-24T00:30:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-26T01:30:00Z"
        ])
    );
    // At the second 01:30 the latest firing is still the first one.
    assert_eq!(
        s.latest_at_or_before(utc("2026-10-25T01:30:00Z")),
        Some(utc("2026-10-25T00:30:00Z"))
    );
    assert_eq!(
        s.next_after(utc("2026-10-25T00:30:00Z")),
        Some(utc("2026-10-26T01:30:00Z"))
    );
}

#[test]
fn new_york_spring_forward_skips_0230() {
    let s = sched("cron(30 2 * * ? *)", "America/New_York");
    assert_eq!(
        s.upcoming(utc("2026-03-07T00:00:00Z"), 3),
        utcs(&[
            "2026-03-07T07:30:00Z", // 02:30 EST
            "2026-03-09T06:30:00Z", // 02:30 EDT; 03-08 is skipped
            "2026-03-10T06:30:00Z",
        ])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-03-09T06:29:59Z")),
        Some(utc("2026-03-07T07:30:00Z"))
    );
}

#[test]
fn new_york_fall_back_fires_0130_once() {
    let s = sched("cron(30 1 * * ? *)", "America/New_York");
    assert_eq!(
        s.upcoming(utc("2026-10-31T00:00:00Z"), 3),
        utcs(&[
            "2026-10-31T05:30:00Z", // 01:30 EDT
            "2026-11-01T05:30:00Z", // 01:30 EDT, first occurrence; not again at 06:30Z
            "2026-11-02T06:30:00Z", // 01:30 EST
        ])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-11-01T06:45:00Z")),
        Some(utc("2026-11-01T05:30:00Z"))
    );
}

#[test]
fn new_york_every_quarter_hour_across_both_changes() {
    let s = sched("cron(0/15 * * * ? *)", "America/New_York");
    // Spring: 01:45 EST is followed by 03:00 EDT.
    assert_eq!(
        s.upcoming(utc("2026-03-08T06:40:00Z"), 3),
        utcs(&[
            "2026-03-08T06:45:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:15:00Z"
        ])
    );
    // Autumn: 01:00–01:45 EDT fire, the repeated 01:00–01:45 EST do not, 02:00 EST does.
    assert_eq!(
        s.upcoming(utc("2026-11-01T05:20:00Z"), 4),
        utcs(&[
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:45:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:15:00Z",
        ])
    );
    // During the repeated hour the latest firing is 01:45 EDT.
    for t in [
        "2026-11-01T06:00:00Z",
        "2026-11-01T06:30:00Z",
        "2026-11-01T06:59:59Z",
    ] {
        assert_eq!(
            s.latest_at_or_before(utc(t)),
            Some(utc("2026-11-01T05:45:00Z")),
            "at {t}"
        );
        assert_eq!(
            s.next_after(utc(t)),
            Some(utc("2026-11-01T07:00:00Z")),
            "at {t}"
        );
    }
}

#[test]
fn lord_howe_half_hour_gap_skips_0215() {
    // 02:15 on 2026-10-04 does not exist (02:00 → 02:30).
    let s = sched("cron(15 2 * * ? *)", "Australia/Lord_Howe");
    assert_eq!(
        s.upcoming(utc("2026-10-02T00:00:00Z"), 2),
        utcs(&[
            "2026-10-02T15:45:00Z", // 10-03 02:15 +10:30
            "2026-10-04T15:15:00Z", // 10-05 02:15 +11; 10-04 is skipped
        ])
    );
    // 02:45 exists on the same day.
    let s = sched("cron(45 2 4 10 ? 2026)", "Australia/Lord_Howe");
    assert_eq!(
        s.next_after(utc("2026-10-01T00:00:00Z")),
        Some(utc("2026-10-03T15:45:00Z"))
    );
}

#[test]
fn lord_howe_half_hour_overlap_fires_0145_once() {
    // 01:45 on 2026-04-05 occurs at 14:45Z (+11) and 15:15Z (+10:30); the first fires.
    let s = sched("cron(45 1 * * ? *)", "Australia/Lord_Howe");
    assert_eq!(
        s.upcoming(utc("2026-04-03T00:00:00Z"), 3),
        utcs(&[
            "2026-04-03T14:45:00Z", // 04-04 01:45 +11
            "2026-04-04T14:45:00Z", // 04-05 01:45 +11, first occurrence
            "2026-04-05T15:15:00Z", // 04-06 01:45 +10:30
        ])
    );
    assert_eq!(
        s.latest_at_or_before(utc("2026-04-04T15:20:00Z")),
        Some(utc("2026-04-04T14:45:00Z"))
    );
}

#[test]
fn zones_without_daylight_saving_are_regular() {
    for (zone, fire) in [
        ("Asia/Tokyo", "2026-03-28T17:30:00Z"),
        ("UTC", "2026-03-29T02:30:00Z"),
    ] {
        let s = sched("cron(30 2 * * ? *)", zone);
        let first = utc(fire);
        let got = s.upcoming(first - TimeDelta::seconds(1), 400);
        assert_eq!(got.len(), 400);
        for (i, t) in got.iter().enumerate() {
            assert_eq!(*t, first + TimeDelta::days(i as i64), "{zone} day {i}");
        }
    }
}

/// Brute force: every UTC minute in the window, fired iff its wall-clock minute
/// matches and this instant is that local time's first occurrence.
fn oracle(s: &Schedule, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let ScheduleExpression::Cron(cron) = s.expression() else {
        panic!("cron only")
    };
    let tz = s.time_zone();
    let mut out = Vec::new();
    let mut u = from;
    while u <= to {
        let local = u.with_timezone(&tz).naive_local();
        if cron.matches_local(local)
            && tz
                .from_local_datetime(&local)
                .earliest()
                .map(|e| e.with_timezone(&Utc))
                == Some(u)
        {
            out.push(u);
        }
        u += TimeDelta::minutes(1);
    }
    out
}

#[test]
fn search_agrees_with_brute_force_around_every_transition() {
    let zones_and_days = [
        ("Europe/London", ["2026-03-29", "2026-10-25"]),
        ("America/New_York", ["2026-03-08", "2026-11-01"]),
        ("Australia/Lord_Howe", ["2026-04-05", "2026-10-04"]),
        ("Asia/Tokyo", ["2026-03-29", "2026-10-25"]),
    ];
    let expressions = [
        "cron(* * * * ? *)",
        "cron(0/15 * * * ? *)",
        "cron(30 1 * * ? *)",
        "cron(15,45 1-2 * * ? *)",
        "cron(0 0-3 ? * SUN *)",
    ];
    for (zone, days) in zones_and_days {
        for day in days {
            let from = utc(&format!("{day}T00:00:00Z")) - TimeDelta::hours(20);
            let to = from + TimeDelta::hours(40);
            for expression in expressions {
                let s = sched(expression, zone);
                let expected = oracle(&s, from, to);
                let mut got = Vec::new();
                let mut t = from - TimeDelta::seconds(1);
                while let Some(n) = s.next_after(t).filter(|n| *n <= to) {
                    got.push(n);
                    t = n;
                }
                assert_eq!(got, expected, "{expression} in {zone} around {day}");
                // latest_at_or_before agrees at every fifth minute and just before it
                // (every expression here fires at least weekly, so the oracle starts
                // eight days earlier to see the previous firing).
                let history = oracle(&s, from - TimeDelta::days(8), to);
                let mut u = from;
                while u <= to {
                    for probe in [u, u - TimeDelta::nanoseconds(1)] {
                        let want = history.iter().rev().find(|f| **f <= probe).copied();
                        assert!(
                            want.is_some(),
                            "{expression}: no firing in the 8 days before {probe}"
                        );
                        assert_eq!(
                            s.latest_at_or_before(probe),
                            want,
                            "latest at {probe} for {expression} in {zone}"
                        );
                    }
                    u += TimeDelta::minutes(5);
                }
            }
        }
    }
}
