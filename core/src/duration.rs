//! Human-readable durations for configuration files: `"250ms"`, `"90s"`, `"5m"`,
//! `"1h30m"`, `"2d"`.
//!
//! People write durations in TOML and Terraform renders them into JSON for Lambda, so
//! both encodings carry the same strings. A bare number is rejected on purpose: `90`
//! could mean seconds or milliseconds, and a wrong guess here is a ten-minute GPU bill.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as `"90s"`, `"5m"`, `"1h30m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

/// Why a duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (write e.g. \"250ms\", \"90s\", \"5m\", \"1h30m\")")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

impl HumanDuration {
    pub const ZERO: HumanDuration = HumanDuration(Duration::ZERO);

    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration(Duration::from_secs(secs))
    }

    pub const fn from_millis(ms: u64) -> Self {
        HumanDuration(Duration::from_millis(ms))
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// As a chrono delta, for arithmetic on timestamps.
    pub fn delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl FromStr for HumanDuration {
    type Err = DurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| DurationError {
            input: input.to_string(),
            reason,
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        let mut total_ms: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err("expected a number"));
            }
            let value: u64 = rest[..digits]
                .parse()
                .map_err(|_| err("number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit_ms: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => return Err(err("missing unit")),
                _ => return Err(err("unknown unit (use ms, s, m, h or d)")),
            };
            rest = &rest[unit_len..];
            let part = value.checked_mul(unit_ms).ok_or_else(|| err("too large"))?;
            total_ms = total_ms.checked_add(part).ok_or_else(|| err("too large"))?;
        }
        Ok(HumanDuration(Duration::from_millis(total_ms)))
    }
}

impl fmt::Display for HumanDuration {
    /// The shortest exact form: `90s` prints as `1m30s`, `1500ms` as `1500ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let mut secs = ms / 1000;
        for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
            if secs >= size {
                write!(f, "{}{unit}", secs / size)?;
                secs %= size;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // A bare number is refused: seconds or milliseconds would be a guess.
                f.write_str("a duration string with a unit, e.g. \"90s\" or \"5m\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<HumanDuration, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let cases = [
            ("ms", "250ms", 250, "250ms"),
            ("seconds", "90s", 90_000, "1m30s"),
            ("minutes", "5m", 300_000, "5m"),
            ("compound", "1h30m", 5_400_000, "1h30m"),
            ("days", "2d", 172_800_000, "2d"),
            ("padded", " 10s ", 10_000, "10s"),
            ("zero", "0s", 0, "0s"),
        ];
        for (name, input, ms, printed) in cases {
            let d: HumanDuration = input.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(d.0.as_millis(), ms, "{name}");
            assert_eq!(d.to_string(), printed, "{name}");
        }
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        let cases = [
            ("bare number", "90", "missing unit"),
            ("empty", "", "empty"),
            ("unknown unit", "5y", "unknown unit"),
            ("no number", "s", "expected a number"),
            ("negative", "-5s", "expected a number"),
            ("overflow", "99999999999999999999s", "number too large"),
            ("overflow after unit", "999999999999999d", "too large"),
        ];
        for (name, input, reason) in cases {
            let e = input.parse::<HumanDuration>().unwrap_err();
            assert!(e.to_string().contains(reason), "{name}: {e}");
        }
    }

    #[test]
    fn round_trips_through_json() {
        let d = HumanDuration::from_secs(3_690);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, "\"1h1m30s\"");
        assert_eq!(serde_json::from_str::<HumanDuration>(&json).unwrap(), d);
    }
}
