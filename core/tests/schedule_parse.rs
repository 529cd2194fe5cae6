//! Parser table tests: every wildcard and name form AWS documents, and the faults,
//! each checked for the position and wording of its error.

use scale0_core::schedule::{Schedule, ScheduleError, ScheduleExpression, parse_expression};

#[test]
fn valid_expressions_parse_and_normalize() {
    // (case, expression, normalized Display)
    let cases = [
        (
            "weekdays at nine",
            "cron(0 9 ? * MON-FRI *)",
            "cron(0 9 ? * MON-FRI *)",
        ),
        (
            "names are case-insensitive",
            "cron(0 9 ? * mon-Fri *)",
            "cron(0 9 ? * MON-FRI *)",
        ),
        (
            "increment from zero",
            "cron(0/15 * * * ? *)",
            "cron(0/15 * * * ? *)",
        ),
        (
            "increment from star",
            "cron(*/5 * * * ? *)",
            "cron(*/5 * * * ? *)",
        ),
        (
            "lists",
            "cron(0,30 8,12,18 * * ? *)",
            "cron(0,30 8,12,18 * * ? *)",
        ),
        (
            "month names in a list",
            "cron(0 0 1 JAN,apr,Jul,OCT ? *)",
            "cron(0 0 1 JAN,APR,JUL,OCT ? *)",
        ),
        (
            "month range with step",
            "cron(0 0 1 JAN-DEC/3 ? *)",
            "cron(0 0 1 JAN-DEC/3 ? *)",
        ),
        (
            "day-of-month range with step",
            "cron(0 0 1-15/2 * ? *)",
            "cron(0 0 1-15/2 * ? *)",
        ),
        (
            "day-of-month increment",
            "cron(0 0 1/10 * ? *)",
            "cron(0 0 1/10 * ? *)",
        ),
        (
            "last day of month",
            "cron(0 12 L * ? *)",
            "cron(0 12 L * ? *)",
        ),
        (
            "last weekday of month",
            "cron(0 12 lw * ? *)",
            "cron(0 12 LW * ? *)",
        ),
        (
            "nearest weekday",
            "cron(0 12 15W * ? *)",
            "cron(0 12 15W * ? *)",
        ),
        (
            "nth weekday by name",
            "cron(0 12 ? * MON#1 *)",
            "cron(0 12 ? * MON#1 *)",
        ),
        (
            "nth weekday by number",
            "cron(0 12 ? * 2#3 *)",
            "cron(0 12 ? * 2#3 *)",
        ),
        (
            "last friday by number",
            "cron(0 12 ? * 6L *)",
            "cron(0 12 ? * 6L *)",
        ),
        (
            "last friday by name",
            "cron(0 12 ? * fril *)",
            "cron(0 12 ? * FRIL *)",
        ),
        (
            "L alone in day-of-week",
            "cron(0 12 ? * L *)",
            "cron(0 12 ? * L *)",
        ),
        (
            "day-of-week numbers",
            "cron(0 12 ? * 1,7 *)",
            "cron(0 12 ? * 1,7 *)",
        ),
        (
            "star day-of-week",
            "cron(0 12 ? * * *)",
            "cron(0 12 ? * * *)",
        ),
        (
            "year range",
            "cron(0 12 * * ? 2026-2030)",
            "cron(0 12 * * ? 2026-2030)",
        ),
        (
            "year increment",
            "cron(0 12 * * ? 2026/2)",
            "cron(0 12 * * ? 2026/2)",
        ),
        (
            "year list",
            "cron(0 12 * * ? 2026,2028)",
            "cron(0 12 * * ? 2026,2028)",
        ),
        (
            "wrapping ranges",
            "cron(0 22-2 ? * FRI-MON *)",
            "cron(0 22-2 ? * FRI-MON *)",
        ),
        (
            "upper bounds",
            "cron(59 23 31 12 ? 2199)",
            "cron(59 23 31 12 ? 2199)",
        ),
        (
            "lower bounds",
            "cron(0 0 1 1 ? 1970)",
            "cron(0 0 1 1 ? 1970)",
        ),
        (
            "loose whitespace",
            "  cron( 0   9 ? *\tMON-FRI * )  ",
            "cron(0 9 ? * MON-FRI *)",
        ),
        ("rate 1 minute", "rate(1 minute)", "rate(1 minute)"),
        ("rate 5 minutes", "rate(5 minutes)", "rate(5 minutes)"),
        ("rate 1 hour", "rate(1 hour)", "rate(1 hour)"),
        ("rate 2 hours", "rate(2 hours)", "rate(2 hours)"),
        ("rate 1 day", "rate(1 day)", "rate(1 day)"),
        ("rate 3 days", "rate( 3   days )", "rate(3 days)"),
        (
            "one-time",
            "at(2026-06-01T09:00:00)",
            "at(2026-06-01T09:00:00)",
        ),
        (
            "one-time, leap day",
            "at(2028-02-29T23:59:59)",
            "at(2028-02-29T23:59:59)",
        ),
    ];
    for (case, expression, normalized) in cases {
        let parsed = match parse_expression(expression) {
            Ok(p) => p,
            Err(e) => panic!("{case}: {expression} should parse, got {e}"),
        };
        assert_eq!(parsed.to_string(), normalized, "{case}");
        // The normalized form parses back to the same expression.
        let again: ScheduleExpression = normalized.parse().unwrap();
        assert_eq!(again, parsed, "{case}: round trip");
    }
}

#[test]
fn invalid_expressions_name_position_and_fault() {
    // (case, expression, 0-based character position, fragment of the message)
    let cases = [
        (
            "unknown day name",
            "cron(0 9 ? * MOX-FRI *)",
            13,
            "unknown day name `MOX`",
        ),
        (
            "unknown month name",
            "cron(0 9 1 JANUARY ? *)",
            11,
            "unknown month name `JANUARY`",
        ),
        (
            "minute out of range",
            "cron(60 9 * * ? *)",
            5,
            "minute 60 is out of range 0-59",
        ),
        (
            "hour out of range",
            "cron(0 24 * * ? *)",
            7,
            "hour 24 is out of range 0-23",
        ),
        (
            "day of month zero",
            "cron(0 0 0 * ? *)",
            9,
            "day of month 0 is out of range 1-31",
        ),
        (
            "day of month 32",
            "cron(0 0 32 * ? *)",
            9,
            "day of month 32 is out of range 1-31",
        ),
        (
            "month 13",
            "cron(0 0 1 13 ? *)",
            11,
            "month 13 is out of range 1-12",
        ),
        (
            "day of week zero",
            "cron(0 0 ? * 0 *)",
            13,
            "day of week 0 is out of range 1-7",
        ),
        (
            "day of week 8 in a range",
            "cron(0 0 ? * 2-8 *)",
            15,
            "day of week 8 is out of range 1-7",
        ),
        (
            "year before 1970",
            "cron(0 0 * * ? 1969)",
            15,
            "year 1969 is out of range 1970-2199",
        ),
        (
            "year after 2199",
            "cron(0 0 * * ? 2026-2200)",
            20,
            "year 2200 is out of range 1970-2199",
        ),
        (
            "huge number",
            "cron(99999999999 0 * * ? *)",
            5,
            "minute is out of range 0-59",
        ),
        (
            "both day fields set",
            "cron(0 9 * * MON *)",
            13,
            "can't both be set: one of them must be `?`",
        ),
        (
            "both day fields star",
            "cron(0 9 * * * *)",
            13,
            "can't both be set",
        ),
        ("both day fields ?", "cron(0 9 ? * ? *)", 13, "both `?`"),
        (
            "five fields",
            "cron(0 9 * * ?)",
            14,
            "expected 6 fields (minutes hours day-of-month month day-of-week year), found 5",
        ),
        ("seven fields", "cron(0 9 * * ? * 2026)", 17, "found 7"),
        ("no fields", "cron()", 5, "found 0"),
        (
            "? in minutes",
            "cron(? 9 * * ? *)",
            5,
            "`?` is only allowed in day-of-month or day-of-week",
        ),
        (
            "? in a list",
            "cron(0 9 ?,1 * ? *)",
            9,
            "`?` must be the only value in day-of-month",
        ),
        (
            "W in day-of-week",
            "cron(0 9 ? * 2W *)",
            14,
            "`W` is only allowed in day-of-month",
        ),
        (
            "# in day-of-month",
            "cron(0 9 1#2 * ? *)",
            10,
            "`#` is only allowed in day-of-week",
        ),
        (
            "L in hours",
            "cron(0 L * * ? *)",
            7,
            "`L` is only allowed in day-of-month or day-of-week",
        ),
        ("L in month", "cron(0 0 1 L ? *)", 11, "`L` is only allowed"),
        (
            "/ in day-of-week",
            "cron(0 9 ? * 1/2 *)",
            14,
            "`/` is not allowed in day-of-week",
        ),
        (
            "two # expressions",
            "cron(0 9 ? * 3#1,6#3 *)",
            14,
            "`#` must be the only value in day-of-week",
        ),
        (
            "# beyond 5",
            "cron(0 9 ? * MON#6 *)",
            17,
            "`#` must be followed by a number from 1 to 5",
        ),
        (
            "# without a number",
            "cron(0 9 ? * MON# *)",
            16,
            "`#` must be followed by a number",
        ),
        (
            "# after a range",
            "cron(0 9 ? * 1-2#3 *)",
            16,
            "`#` must follow a single day",
        ),
        (
            "L in a day-of-month list",
            "cron(0 0 1,L * ? *)",
            11,
            "`L` must be the only value in day-of-month",
        ),
        (
            "L with an offset",
            "cron(0 0 L-3 * ? *)",
            9,
            "`L` in day-of-month must stand alone",
        ),
        (
            "W after a range",
            "cron(0 0 1-5W * ? *)",
            12,
            "`W` must follow a single day",
        ),
        (
            "W on day 32",
            "cron(0 0 32W * ? *)",
            9,
            "day of month 32 is out of range 1-31",
        ),
        (
            "6L in a list",
            "cron(0 0 ? * 1,6L *)",
            15,
            "`L` must be the only value in day-of-week",
        ),
        (
            "step zero",
            "cron(0/0 * * * ? *)",
            7,
            "step 0 must be between 1 and 60 in minutes",
        ),
        (
            "step too large",
            "cron(0 0/25 * * ? *)",
            9,
            "step 25 must be between 1 and 24 in hours",
        ),
        (
            "missing step",
            "cron(0/ * * * ? *)",
            6,
            "expected a number after `/`",
        ),
        (
            "star then junk",
            "cron(*5 * * * ? *)",
            6,
            "expected `/` after `*`",
        ),
        (
            "star in a list",
            "cron(*,5 * * * ? *)",
            5,
            "`*` can't be combined with other values",
        ),
        (
            "reversed year range",
            "cron(0 0 * * ? 2030-2020)",
            15,
            "range 2030-2020 is reversed",
        ),
        (
            "empty list value",
            "cron(0,,5 * * * ? *)",
            7,
            "empty value in minutes",
        ),
        (
            "trailing comma",
            "cron(0, * * * ? *)",
            7,
            "empty value in minutes",
        ),
        (
            "dangling dash",
            "cron(0- * * * ? *)",
            6,
            "expected a value after `-`",
        ),
        (
            "name in minutes",
            "cron(MON * * * ? *)",
            5,
            "unexpected `MON` in minutes: expected a number",
        ),
        (
            "non-ASCII dash, counted in characters",
            "cron(0 9 ? * MON\u{2013}FRI *)",
            16,
            "unexpected character `\u{2013}`",
        ),
        (
            "no keyword",
            "0 9 * * ? *",
            0,
            "expected `cron(...)`, `rate(...)` or `at(...)`",
        ),
        (
            "upper-case keyword",
            "CRON(0 9 ? * MON *)",
            0,
            "expected `cron(...)`",
        ),
        (
            "missing parenthesis",
            "cron(0 9 ? * MON *",
            18,
            "missing closing `)`",
        ),
        (
            "nested parenthesis",
            "cron(0 9 ? * (MON) *)",
            13,
            "unexpected parenthesis",
        ),
        ("empty", "", 0, "empty expression"),
        ("blank", "   ", 3, "empty expression"),
        (
            "rate 1 with plural",
            "rate(1 minutes)",
            7,
            "singular for 1 and the plural otherwise (`minute`)",
        ),
        ("rate 5 with singular", "rate(5 hour)", 7, "(`hours`)"),
        (
            "rate zero",
            "rate(0 minutes)",
            5,
            "rate value must be positive, found 0",
        ),
        (
            "rate negative",
            "rate(-5 minutes)",
            5,
            "rate value `-5` is not a positive integer",
        ),
        (
            "rate fraction",
            "rate(1.5 hours)",
            5,
            "not a positive integer",
        ),
        (
            "rate too large",
            "rate(99999999999 minutes)",
            5,
            "too large",
        ),
        ("rate unit", "rate(2 weeks)", 7, "unknown rate unit `weeks`"),
        (
            "rate upper-case unit",
            "rate(2 Hours)",
            7,
            "unknown rate unit `Hours`",
        ),
        (
            "rate without unit",
            "rate(5)",
            6,
            "expected `rate(value unit)`, found 1 words",
        ),
        (
            "rate with extra word",
            "rate(5 minutes please)",
            15,
            "found 3 words",
        ),
        (
            "at impossible date",
            "at(2026-02-30T09:00:00)",
            3,
            "no such date 2026-02-30",
        ),
        (
            "at impossible time",
            "at(2026-02-03T24:00:00)",
            14,
            "no such time 24:00:00",
        ),
        (
            "at short month",
            "at(2026-2-03T09:00:00)",
            9,
            "expected a digit",
        ),
        (
            "at space separator",
            "at(2026-02-03 09:00:00)",
            13,
            "expected `T`",
        ),
        (
            "at without seconds",
            "at(2026-02-03T09:00)",
            19,
            "too short",
        ),
        (
            "at with zone suffix",
            "at(2026-02-03T09:00:00Z)",
            22,
            "unexpected text",
        ),
    ];
    for (case, expression, position, fragment) in cases {
        match parse_expression(expression) {
            Ok(p) => panic!("{case}: {expression} should be refused, parsed as {p}"),
            Err(ScheduleError::Expression {
                expression: e,
                position: p,
                message,
            }) => {
                assert_eq!(e, expression, "{case}: the error carries the expression");
                assert!(
                    message.contains(fragment),
                    "{case}: message {message:?} should contain {fragment:?}"
                );
                assert_eq!(p, position, "{case}: position (message: {message})");
            }
            Err(other) => panic!("{case}: unexpected error {other:?}"),
        }
    }
}

#[test]
fn error_display_matches_the_documented_form() {
    let err = parse_expression("cron(0 9 ? * MOX-FRI *)").unwrap_err();
    assert_eq!(
        err.to_string(),
        "cron(0 9 ? * MOX-FRI *): at character 13: unknown day name `MOX`"
    );
}

#[test]
fn time_zones_are_iana_names() {
    let err = Schedule::parse("cron(0 9 ? * MON-FRI *)", "Europe/Londn").unwrap_err();
    assert_eq!(
        err,
        ScheduleError::TimeZone {
            time_zone: "Europe/Londn".into()
        }
    );
    assert_eq!(err.to_string(), "unknown IANA time zone `Europe/Londn`");
    for zone in [
        "Europe/London",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Tokyo",
        "UTC",
    ] {
        let s = Schedule::parse("rate(1 hour)", zone).unwrap();
        assert_eq!(s.time_zone().name(), zone);
    }
    // The zone is checked before the expression.
    assert!(matches!(
        Schedule::parse("nonsense", "Nowhere/Atlantis"),
        Err(ScheduleError::TimeZone { .. })
    ));
}

#[test]
fn at_in_a_spring_forward_gap_is_refused() {
    // 01:30 does not exist in London on 2026-03-29 (01:00 GMT → 02:00 BST).
    let err = Schedule::parse("at(2026-03-29T01:30:00)", "Europe/London").unwrap_err();
    let ScheduleError::Expression {
        position, message, ..
    } = err
    else {
        panic!("expected an expression error");
    };
    assert_eq!(position, 3);
    assert!(
        message.contains("does not exist in Europe/London"),
        "{message}"
    );
    // The same local time in a zone without the change is fine.
    assert!(Schedule::parse("at(2026-03-29T01:30:00)", "Asia/Tokyo").is_ok());
}

#[test]
fn schedule_display_names_expression_and_zone() {
    let s = Schedule::parse("cron(0 9 ? * mon-fri *)", "Europe/London").unwrap();
    assert_eq!(s.to_string(), "cron(0 9 ? * MON-FRI *) in Europe/London");
}
