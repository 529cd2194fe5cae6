//! Property tests: `latest_at_or_before` and `next_after` describe the same set of
//! firings, for random valid expressions, zones (including odd ones: 30- and 45-minute
//! offsets, midnight transitions, a two-hour shift) and instants; and no input string
//! makes the parser panic.

use chrono::offset::LocalResult;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use scale0_core::schedule::{Schedule, parse_expression};

const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Asia/Beirut",
    "America/Havana",
    "America/Sao_Paulo",
    "Antarctica/Troll",
    "Africa/Casablanca",
];

fn pick(options: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(options)
}

fn cron_expression() -> impl Strategy<Value = String> {
    let minutes = pick(&[
        "*", "0", "30", "59", "*/15", "5/20", "10-20", "0,15,45", "50-10", "1-59/7",
    ]);
    let hours = pick(&["*", "0", "1", "2", "9", "23", "1-3", "*/6", "22-2", "0,12"]);
    let dom = pick(&[
        "*", "1", "15", "29", "31", "L", "LW", "15W", "1W", "31W", "1-7", "1/10", "28-3",
    ]);
    let dow = pick(&[
        "*", "MON-FRI", "SUN", "1", "6L", "L", "MON#1", "2#5", "SAT,SUN", "FRI-MON", "7#2",
    ]);
    let days = prop_oneof![dom.prop_map(|d| (d, "?")), dow.prop_map(|w| ("?", w)),];
    let month = pick(&["*", "JAN", "2", "FEB,MAR", "11-2", "*/4", "OCT-NOV"]);
    let year = pick(&[
        "*",
        "*",
        "*",
        "2026",
        "2025-2027",
        "2030/10",
        "1970",
        "2199",
        "2000-2100/7",
    ]);
    (minutes, hours, days, month, year)
        .prop_map(|(mi, h, (d, w), mo, y)| format!("cron({mi} {h} {d} {mo} {w} {y})"))
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let near = 1_704_067_200i64..1_861_920_000; // 2024 .. 2029
    let wide = -157_766_400i64..7_289_654_400; // 1965 .. 2201
    prop_oneof![3 => near, 1 => wide]
        .prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or(DateTime::UNIX_EPOCH))
}

/// Checks that the two queries agree at `t`.
fn consistent(s: &Schedule, t: DateTime<Utc>) -> Result<(), TestCaseError> {
    let minute = TimeDelta::minutes(1);
    match s.latest_at_or_before(t) {
        Some(l) => {
            prop_assert!(l <= t, "latest {l} after {t}");
            // L is a firing and nothing fires in the minute before it…
            prop_assert_eq!(s.next_after(l - minute), Some(l), "L - 1 minute");
            prop_assert_eq!(s.latest_at_or_before(l), Some(l));
            // …and no firing lies in (L, t].
            if let Some(n) = s.next_after(l) {
                prop_assert!(n > t, "firing {n} in ({l}, {t}]");
            }
        }
        None => {
            if let Some(first) = s.next_after(DateTime::<Utc>::MIN_UTC) {
                prop_assert!(first > t, "no latest at {t}, yet {first} fires");
            }
        }
    }
    if let Some(n) = s.next_after(t) {
        prop_assert!(n > t);
        prop_assert_eq!(s.latest_at_or_before(n), Some(n));
        if let Some(before) = s.latest_at_or_before(n - TimeDelta::nanoseconds(1)) {
            prop_assert!(before <= t, "firing {before} in ({t}, {n})");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn cron_latest_and_next_agree(
        expression in cron_expression(),
        zone in pick(ZONES),
        t in instant(),
    ) {
        let s = Schedule::parse(&expression, zone).unwrap();
        consistent(&s, t)?;
    }

    #[test]
    fn cron_with_window_latest_and_next_agree(
        expression in cron_expression(),
        zone in pick(ZONES),
        t in instant(),
        start_offset_hours in -2000i64..2000,
        length_hours in 0i64..5000,
    ) {
        let start = t + TimeDelta::hours(start_offset_hours);
        let end = start + TimeDelta::hours(length_hours);
        let s = Schedule::parse(&expression, zone).unwrap().with_window(Some(start), Some(end));
        consistent(&s, t)?;
        for f in s.upcoming(t, 3) {
            prop_assert!(f >= start && f <= end, "{f} outside [{start}, {end}]");
        }
    }

    #[test]
    fn rate_latest_and_next_agree(
        value in 1u32..2000,
        unit in pick(&["minutes", "hours", "days"]),
        start in proptest::option::of(instant()),
        t in instant(),
    ) {
        let expression = if value == 1 {
            format!("rate(1 {})", unit.trim_end_matches('s'))
        } else {
            format!("rate({value} {unit})")
        };
        let s = Schedule::parse(&expression, "Europe/London").unwrap().with_window(start, None);
        consistent(&s, t)?;
        if let (Some(a), Some(b)) = (s.latest_at_or_before(t), s.next_after(t)) {
            let period = b - a;
            let want = TimeDelta::minutes(i64::from(value))
                * match unit { "minutes" => 1, "hours" => 60, _ => 1440 };
            prop_assert!(period == want || a == t, "gap {period} for {expression}");
        }
    }

    #[test]
    fn at_latest_and_next_agree(
        local in 0i64..7_000_000_000,
        zone in pick(ZONES),
        t in instant(),
    ) {
        let Some(naive) = DateTime::from_timestamp(local, 0).map(|d| d.naive_utc()) else {
            return Ok(());
        };
        let expression = format!("at({})", naive.format("%Y-%m-%dT%H:%M:%S"));
        // A local time in a spring-forward gap is refused, naming the gap; any other
        // parses and fires exactly once, at the first occurrence of that local time.
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        match (tz.from_local_datetime(&naive), Schedule::parse(&expression, zone)) {
            (LocalResult::None, Err(e)) => {
                prop_assert!(e.to_string().contains("does not exist"), "{e}");
            }
            (LocalResult::None, Ok(_)) => prop_assert!(false, "{expression} in {zone} is in a gap"),
            (_, Err(e)) => prop_assert!(false, "{expression} in {zone} refused: {e}"),
            (local, Ok(s)) => {
                let first = local.earliest().unwrap().with_timezone(&Utc);
                prop_assert_eq!(s.next_after(DateTime::<Utc>::MIN_UTC), Some(first));
                prop_assert_eq!(s.next_after(first), None, "fires twice");
                prop_assert_eq!(s.latest_at_or_before(first), Some(first));
                consistent(&s, t)?;
            }
        }
    }

    #[test]
    fn parse_never_panics_on_any_string(s in any::<String>()) {
        let _ = parse_expression(&s);
        let _ = Schedule::parse(&s, "Europe/London");
    }

    #[test]
    fn parse_never_panics_inside_cron(s in any::<String>(), zone in pick(ZONES), t in instant()) {
        for wrapped in [format!("cron({s})"), format!("rate({s})"), format!("at({s})")] {
            if let Ok(schedule) = Schedule::parse(&wrapped, zone) {
                let _ = schedule.next_after(t);
                let _ = schedule.latest_at_or_before(t);
            }
        }
    }

    #[test]
    fn parse_never_panics_on_cron_like_text(
        s in "[0-9A-Za-z*,/?#LW \\-]{0,40}",
        zone in pick(ZONES),
        t in instant(),
    ) {
        let wrapped = format!("cron({s})");
        if let Ok(schedule) = Schedule::parse(&wrapped, zone) {
            // Whatever parses evaluates, in both directions, consistently.
            consistent(&schedule, t)?;
            // And prints back to something that parses to the same thing.
            let printed = schedule.expression().to_string();
            let reparsed = parse_expression(&printed).ok();
            prop_assert_eq!(reparsed.as_ref(), Some(schedule.expression()));
        }
    }

    #[test]
    fn parse_never_panics_on_rate_and_at_like_text(
        rate in "[0-9a-z \\-+.]{0,24}",
        at in "[0-9T:\\- ]{0,24}",
    ) {
        let _ = parse_expression(&format!("rate({rate})"));
        let _ = parse_expression(&format!("at({at})"));
    }
}
