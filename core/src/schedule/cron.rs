//! `cron(minutes hours day-of-month month day-of-week year)`: parsing into bitsets and
//! the calendar search.
//!
//! Every field becomes a bitset (minutes `u64`, hours `u32`, months `u16`, the 230
//! years 1970–2199 `[u64; 4]`); the two day fields become one [`DaySpec`], because AWS
//! allows only one of them to be set. The search walks years → months → days →
//! hours → minutes, each level iterating the set bits of a mask, so a schedule that
//! fires on one day a year costs a few hundred bit operations to skip a year, not
//! half a million minute checks. The walk is over *local* wall-clock minutes; mapping
//! a local minute to an instant (and the daylight-saving rule) is the caller's job.

use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

/// The year range AWS accepts in the year field.
pub const MIN_YEAR: i32 = 1970;
/// The year range AWS accepts in the year field.
pub const MAX_YEAR: i32 = 2199;

/// A parse fault: byte offset into the whole expression, and what is wrong there.
#[derive(Debug)]
pub(super) struct Fault {
    pub(super) at: usize,
    pub(super) message: String,
}

fn fault(at: usize, message: impl Into<String>) -> Fault {
    Fault {
        at,
        message: message.into(),
    }
}

/// Which days of a month match. Day-of-week numbers run 1 = Sunday … 7 = Saturday.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DaySpec {
    /// Day-of-month values, bits 1..=31 (day-of-week is `?`).
    MonthDays(u32),
    /// `L` in day-of-month: the last day of the month.
    LastDay,
    /// `LW`: the last weekday (Monday–Friday) of the month.
    LastWeekday,
    /// `15W`: the weekday nearest the given day, never leaving the month.
    NearestWeekday(u32),
    /// Day-of-week values, bits 1..=7 (day-of-month is `?`).
    WeekDays(u8),
    /// `6L`: the last such weekday of the month.
    LastOfWeekday(u32),
    /// `MON#1`: the nth such weekday of the month (n in 1..=5).
    NthWeekday { weekday: u32, nth: u32 },
}

/// A parsed `cron(...)` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpression {
    minutes: u64,
    hours: u32,
    months: u16,
    years: [u64; 4],
    days: DaySpec,
    /// Each field as written, upper-cased: the normalized form `Display` gives back.
    fields: [String; 6],
}

impl fmt::Display for CronExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron({})", self.fields.join(" "))
    }
}

// ---------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Minutes,
    Hours,
    DayOfMonth,
    Month,
    DayOfWeek,
    Year,
}

const KINDS: [Kind; 6] = [
    Kind::Minutes,
    Kind::Hours,
    Kind::DayOfMonth,
    Kind::Month,
    Kind::DayOfWeek,
    Kind::Year,
];

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Minutes => "minutes",
            Kind::Hours => "hours",
            Kind::DayOfMonth => "day-of-month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day-of-week",
            Kind::Year => "year",
        }
    }
    fn unit(self) -> &'static str {
        match self {
            Kind::Minutes => "minute",
            Kind::Hours => "hour",
            Kind::DayOfMonth => "day of month",
            Kind::Month => "month",
            Kind::DayOfWeek => "day of week",
            Kind::Year => "year",
        }
    }
    fn range(self) -> (u32, u32) {
        match self {
            Kind::Minutes => (0, 59),
            Kind::Hours => (0, 23),
            Kind::DayOfMonth => (1, 31),
            Kind::Month => (1, 12),
            Kind::DayOfWeek => (1, 7),
            Kind::Year => (MIN_YEAR as u32, MAX_YEAR as u32),
        }
    }
    /// The wildcards AWS lists for the field (the cron reference's table).
    fn wildcards(self) -> &'static str {
        match self {
            Kind::Minutes | Kind::Hours | Kind::Month | Kind::Year => ", - * /",
            Kind::DayOfMonth => ", - * ? / L W",
            Kind::DayOfWeek => ", - * ? L #",
        }
    }
    fn names(self) -> Option<&'static [&'static str]> {
        match self {
            Kind::Month => Some(&MONTH_NAMES),
            Kind::DayOfWeek => Some(&DAY_NAMES),
            _ => None,
        }
    }
    /// Ranges like `FRI-MON` or `22-2` wrap around (Quartz, which AWS's dialect
    /// follows); a year range cannot.
    fn cyclic(self) -> bool {
        self != Kind::Year
    }
}

/// One lexeme of a field item, with its byte offset in the whole expression.
#[derive(Debug, Clone)]
enum Tok {
    /// Digits; `None` when they overflow a `u32`.
    Num(Option<u32>),
    /// ASCII letters, upper-cased.
    Word(String),
    Sym(char),
}

fn lex(item: &str, base: usize) -> Result<Vec<(Tok, usize)>, Fault> {
    let mut out = Vec::new();
    let bytes = item.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        if b.is_ascii_digit() {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            let n = item[start..i].parse::<u32>().ok();
            out.push((Tok::Num(n), base + start));
        } else if b.is_ascii_alphabetic() {
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            out.push((Tok::Word(item[start..i].to_ascii_uppercase()), base + start));
        } else if matches!(b, b'*' | b'?' | b'-' | b'/' | b'#') {
            out.push((Tok::Sym(b as char), base + start));
            i += 1;
        } else {
            let c = item[start..].chars().next().unwrap_or('?');
            return Err(fault(base + start, format!("unexpected character `{c}`")));
        }
    }
    Ok(out)
}

/// What one field parsed to.
enum Parsed {
    /// `?`
    Any,
    /// A set of values.
    Set([u64; 4]),
    Day(DaySpec),
}

fn set_bit(bits: &mut [u64; 4], i: u32) {
    if let Some(w) = bits.get_mut((i / 64) as usize) {
        *w |= 1u64 << (i % 64);
    }
}

struct FieldParser<'a> {
    kind: Kind,
    /// Byte offset of the field in the whole expression.
    base: usize,
    text: &'a str,
}

impl FieldParser<'_> {
    fn not_allowed(&self, at: usize, what: char) -> Fault {
        let hint = match what {
            '?' => "`?` is only allowed in day-of-month or day-of-week".to_string(),
            'L' => "`L` is only allowed in day-of-month or day-of-week".to_string(),
            'W' => "`W` is only allowed in day-of-month".to_string(),
            '#' => "`#` is only allowed in day-of-week".to_string(),
            _ => format!("`{what}` is not allowed in {}", self.kind.field()),
        };
        fault(
            at,
            format!(
                "{hint} (AWS allows `{}` in {})",
                self.kind.wildcards(),
                self.kind.field()
            ),
        )
    }

    fn parse(&self) -> Result<Parsed, Fault> {
        let mut bits = [0u64; 4];
        let mut offset = 0;
        let items: Vec<&str> = self.text.split(',').collect();
        let several = items.len() > 1;
        for item in items {
            let at = self.base + offset;
            offset += item.len() + 1;
            if item.is_empty() {
                return Err(fault(at, format!("empty value in {}", self.kind.field())));
            }
            let toks = lex(item, at)?;
            match self.item(&toks, at, several, &mut bits)? {
                Item::Values => {}
                Item::Any => return Ok(Parsed::Any),
                Item::Day(d) => return Ok(Parsed::Day(d)),
            }
        }
        Ok(Parsed::Set(bits))
    }

    /// The `#`, `L` and `W` forms and `?` must be the whole field: AWS says of `#`
    /// that "3#1,6#3" is invalid, and Quartz, whose syntax AWS follows, rejects the
    /// others in lists too.
    fn alone(&self, several: bool, at: usize, what: &str) -> Result<(), Fault> {
        if several {
            Err(fault(
                at,
                format!("`{what}` must be the only value in {}", self.kind.field()),
            ))
        } else {
            Ok(())
        }
    }

    fn item(
        &self,
        toks: &[(Tok, usize)],
        at: usize,
        several: bool,
        bits: &mut [u64; 4],
    ) -> Result<Item, Fault> {
        let kind = self.kind;
        // Symbols and letters that are out of place for this field, named as such.
        for (tok, pos) in toks {
            match tok {
                Tok::Sym('?') if !matches!(kind, Kind::DayOfMonth | Kind::DayOfWeek) => {
                    return Err(self.not_allowed(*pos, '?'));
                }
                Tok::Sym('#') if kind != Kind::DayOfWeek => {
                    return Err(self.not_allowed(*pos, '#'));
                }
                Tok::Sym('/') if kind == Kind::DayOfWeek => {
                    return Err(self.not_allowed(*pos, '/'));
                }
                Tok::Word(_) if kind == Kind::DayOfMonth => {}
                Tok::Word(w) if w == "L" && kind != Kind::DayOfWeek => {
                    return Err(self.not_allowed(*pos, 'L'));
                }
                Tok::Word(w) if w == "W" || w == "LW" => {
                    return Err(self.not_allowed(*pos, 'W'));
                }
                Tok::Word(w) if kind.names().is_none() => {
                    return Err(fault(
                        *pos,
                        format!("unexpected `{w}` in {}: expected a number", kind.field()),
                    ));
                }
                _ => {}
            }
        }

        match toks {
            [(Tok::Sym('?'), pos)] => {
                self.alone(several, *pos, "?")?;
                Ok(Item::Any)
            }
            [(Tok::Sym('?'), pos), ..] => Err(fault(*pos, "`?` must be the whole field")),
            [(Tok::Sym('*'), pos)] => {
                if several {
                    return Err(fault(
                        *pos,
                        format!(
                            "`*` can't be combined with other values in {}",
                            kind.field()
                        ),
                    ));
                }
                let (lo, hi) = kind.range();
                self.fill(bits, lo, hi, 1);
                Ok(Item::Values)
            }
            [(Tok::Sym('*'), _), (Tok::Sym('/'), spos), rest @ ..] => {
                let step = self.step(rest, *spos)?;
                let (lo, hi) = kind.range();
                self.fill(bits, lo, hi, step);
                Ok(Item::Values)
            }
            [(Tok::Sym('*'), _), (_, pos), ..] => Err(fault(*pos, "expected `/` after `*`")),
            _ if kind == Kind::DayOfMonth => self.day_of_month(toks, at, several, bits),
            _ if kind == Kind::DayOfWeek => self.day_of_week(toks, at, several, bits),
            _ => self.range_item(toks, at, bits),
        }
    }

    fn day_of_month(
        &self,
        toks: &[(Tok, usize)],
        at: usize,
        several: bool,
        bits: &mut [u64; 4],
    ) -> Result<Item, Fault> {
        match toks {
            [(Tok::Word(w), pos)] if w == "L" => {
                self.alone(several, *pos, "L")?;
                Ok(Item::Day(DaySpec::LastDay))
            }
            [(Tok::Word(w), pos)] if w == "LW" => {
                self.alone(several, *pos, "LW")?;
                Ok(Item::Day(DaySpec::LastWeekday))
            }
            [(Tok::Num(_), npos), (Tok::Word(w), _)] if w == "W" => {
                let day = self.value(&toks[0].0, *npos)?;
                self.alone(several, *npos, "W")?;
                Ok(Item::Day(DaySpec::NearestWeekday(day)))
            }
            _ => {
                if let Some((Tok::Word(w), pos)) =
                    toks.iter().find(|(t, _)| matches!(t, Tok::Word(_)))
                {
                    let message = match w.as_str() {
                        "L" => "`L` in day-of-month must stand alone (`L`) or be `LW`".to_string(),
                        "W" | "LW" => {
                            "`W` must follow a single day (`15W`) or `L` (`LW`)".to_string()
                        }
                        _ => format!("unexpected `{w}` in day-of-month"),
                    };
                    return Err(fault(*pos, message));
                }
                self.range_item(toks, at, bits)
            }
        }
    }

    fn day_of_week(
        &self,
        toks: &[(Tok, usize)],
        at: usize,
        several: bool,
        bits: &mut [u64; 4],
    ) -> Result<Item, Fault> {
        match toks {
            // `L` alone: "the last day of the ... week", i.e. Saturday (7).
            [(Tok::Word(w), pos)] if w == "L" => {
                self.alone(several, *pos, "L")?;
                Ok(Item::Day(DaySpec::WeekDays(1 << 7)))
            }
            // `6L`
            [(Tok::Num(_), pos), (Tok::Word(w), _)] if w == "L" => {
                let day = self.value(&toks[0].0, *pos)?;
                self.alone(several, *pos, "L")?;
                Ok(Item::Day(DaySpec::LastOfWeekday(day)))
            }
            // `FRIL`
            [(Tok::Word(w), pos)] if w.len() == 4 && w.ends_with('L') => {
                let day = self.value(&Tok::Word(w[..3].to_string()), *pos)?;
                self.alone(several, *pos, "L")?;
                Ok(Item::Day(DaySpec::LastOfWeekday(day)))
            }
            // `MON#1`, `2#3`
            [(v, vpos), (Tok::Sym('#'), hpos), rest @ ..] => {
                let day = self.value(v, *vpos)?;
                let nth = match rest {
                    [(Tok::Num(Some(n)), _)] if (1..=5).contains(n) => *n,
                    [(_, pos), ..] => {
                        return Err(fault(*pos, "`#` must be followed by a number from 1 to 5"));
                    }
                    [] => {
                        return Err(fault(*hpos, "`#` must be followed by a number from 1 to 5"));
                    }
                };
                if several {
                    return Err(fault(
                        *hpos,
                        "`#` must be the only value in day-of-week (AWS: \"3#1,6#3\" is not valid)",
                    ));
                }
                Ok(Item::Day(DaySpec::NthWeekday { weekday: day, nth }))
            }
            _ => {
                if let Some((_, pos)) = toks.iter().find(|(t, _)| matches!(t, Tok::Sym('#'))) {
                    return Err(fault(*pos, "`#` must follow a single day (`MON#1`)"));
                }
                self.range_item(toks, at, bits)
            }
        }
    }

    /// `value`, `value-value`, `value/step` or `value-value/step`.
    fn range_item(
        &self,
        toks: &[(Tok, usize)],
        at: usize,
        bits: &mut [u64; 4],
    ) -> Result<Item, Fault> {
        let kind = self.kind;
        let (_, hi_max) = kind.range();
        let Some(((first, fpos), rest)) = toks.split_first() else {
            return Err(fault(at, format!("empty value in {}", kind.field())));
        };
        let lo = self.value(first, *fpos)?;
        let (hi, rest) = match rest {
            [(Tok::Sym('-'), dpos), rest @ ..] => match rest.split_first() {
                Some(((t, p), rest)) => (Some(self.value(t, *p)?), rest),
                None => return Err(fault(*dpos, "expected a value after `-`")),
            },
            _ => (None, rest),
        };
        let (step, rest) = match rest {
            [(Tok::Sym('/'), spos), rest @ ..] => (Some(self.step(rest, *spos)?), &[][..]),
            _ => (None, rest),
        };
        if let Some((t, pos)) = rest.first() {
            let shown = match t {
                Tok::Num(Some(n)) => n.to_string(),
                Tok::Num(None) => "number".to_string(),
                Tok::Word(w) => w.clone(),
                Tok::Sym(c) => c.to_string(),
            };
            return Err(fault(
                *pos,
                format!("unexpected `{shown}` in {}", kind.field()),
            ));
        }
        match (hi, step) {
            (None, None) => self.fill(bits, lo, lo, 1),
            // `5/15`: from 5 to the end of the range, every 15.
            (None, Some(step)) => self.fill(bits, lo, hi_max, step),
            (Some(hi), step) => {
                if hi < lo && !kind.cyclic() {
                    return Err(fault(*fpos, format!("range {lo}-{hi} is reversed")));
                }
                self.fill(bits, lo, hi, step.unwrap_or(1));
            }
        }
        Ok(Item::Values)
    }

    fn step(&self, rest: &[(Tok, usize)], slash: usize) -> Result<u32, Fault> {
        let (lo, hi) = self.kind.range();
        let span = hi - lo + 1;
        match rest {
            [(Tok::Num(Some(n)), pos)] => {
                if *n == 0 || *n > span {
                    Err(fault(
                        *pos,
                        format!(
                            "step {n} must be between 1 and {span} in {}",
                            self.kind.field()
                        ),
                    ))
                } else {
                    Ok(*n)
                }
            }
            [(Tok::Num(None), pos)] => Err(fault(
                *pos,
                format!("step must be between 1 and {span} in {}", self.kind.field()),
            )),
            [] => Err(fault(slash, "expected a number after `/`")),
            [(_, pos), ..] => Err(fault(*pos, "expected a single number after `/`")),
        }
    }

    /// A number or a name, checked against the field's range.
    fn value(&self, tok: &Tok, pos: usize) -> Result<u32, Fault> {
        let kind = self.kind;
        let (lo, hi) = kind.range();
        match tok {
            Tok::Num(n) => match n {
                Some(n) if (lo..=hi).contains(n) => Ok(*n),
                Some(n) => Err(fault(
                    pos,
                    format!("{} {n} is out of range {lo}-{hi}", kind.unit()),
                )),
                None => Err(fault(
                    pos,
                    format!("{} is out of range {lo}-{hi}", kind.unit()),
                )),
            },
            Tok::Word(w) => match kind.names() {
                Some(names) => names
                    .iter()
                    .position(|n| n == w)
                    .map(|i| i as u32 + 1)
                    .ok_or_else(|| {
                        let what = if kind == Kind::Month { "month" } else { "day" };
                        fault(pos, format!("unknown {what} name `{w}`"))
                    }),
                None => Err(fault(
                    pos,
                    format!("unexpected `{w}` in {}: expected a number", kind.field()),
                )),
            },
            Tok::Sym(c) => Err(fault(
                pos,
                format!("unexpected `{c}` in {}: expected a value", kind.field()),
            )),
        }
    }

    /// Sets lo, lo+step, … up to hi, wrapping past the field's end when hi < lo.
    fn fill(&self, bits: &mut [u64; 4], lo: u32, hi: u32, step: u32) {
        let (min, max) = self.kind.range();
        let span = max - min + 1;
        let len = if hi >= lo { hi - lo } else { hi + span - lo };
        let base = if self.kind == Kind::Year { min } else { 0 };
        let mut k = 0;
        while k <= len {
            let v = min + (lo - min + k) % span;
            set_bit(bits, v - base);
            k += step.max(1);
        }
    }
}

enum Item {
    Values,
    Any,
    Day(DaySpec),
}

/// Parses the text between `cron(` and `)`. `base` is its byte offset in the whole
/// expression, `close` the offset of the closing parenthesis.
pub(super) fn parse(inner: &str, base: usize, close: usize) -> Result<CronExpression, Fault> {
    let mut fields: Vec<(usize, &str)> = Vec::with_capacity(6);
    let mut start: Option<usize> = None;
    for (i, c) in inner.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                fields.push((s, &inner[s..i]));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        fields.push((s, &inner[s..]));
    }
    if fields.len() != 6 {
        let at = fields.get(6).map_or(close, |(s, _)| base + s);
        return Err(fault(
            at,
            format!(
                "expected 6 fields (minutes hours day-of-month month day-of-week year), found {}",
                fields.len()
            ),
        ));
    }

    let mut parsed = Vec::with_capacity(6);
    for (kind, (offset, text)) in KINDS.iter().zip(&fields) {
        let p = FieldParser {
            kind: *kind,
            base: base + offset,
            text,
        };
        parsed.push(p.parse()?);
    }
    let bits = |i: usize| match &parsed[i] {
        Parsed::Set(bits) => bits[0],
        _ => 0,
    };
    let minutes = bits(0);
    let hours = bits(1) as u32;
    let months = bits(3) as u16;
    let years = match &parsed[5] {
        Parsed::Set(bits) => *bits,
        _ => [0; 4],
    };
    for (i, kind) in [
        (0, Kind::Minutes),
        (1, Kind::Hours),
        (3, Kind::Month),
        (5, Kind::Year),
    ] {
        if let Parsed::Any | Parsed::Day(_) = parsed[i] {
            // `?` and the day forms were rejected for these fields while lexing.
            return Err(fault(
                base + fields[i].0,
                format!("invalid {}", kind.field()),
            ));
        }
    }

    let dow_at = base + fields[4].0;
    let days = match (&parsed[2], &parsed[4]) {
        (Parsed::Any, Parsed::Any) => {
            return Err(fault(
                dow_at,
                "day-of-month and day-of-week are both `?`: exactly one of them must be `?`",
            ));
        }
        (Parsed::Any, Parsed::Set(bits)) => DaySpec::WeekDays(bits[0] as u8),
        (Parsed::Any, Parsed::Day(d)) => *d,
        (Parsed::Set(bits), Parsed::Any) => DaySpec::MonthDays(bits[0] as u32),
        (Parsed::Day(d), Parsed::Any) => *d,
        (_, _) => {
            return Err(fault(
                dow_at,
                "day-of-month and day-of-week can't both be set: one of them must be `?`",
            ));
        }
    };

    let fields = std::array::from_fn(|i| fields[i].1.to_ascii_uppercase());
    Ok(CronExpression {
        minutes,
        hours,
        months,
        years,
        days,
        fields,
    })
}

// ---------------------------------------------------------------------------------
// Calendar arithmetic
// ---------------------------------------------------------------------------------

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Day of week, 1 = Sunday … 7 = Saturday (Sakamoto's method; proleptic Gregorian).
fn weekday(y: i32, m: u32, d: u32) -> u32 {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let idx = (m.clamp(1, 12) - 1) as usize;
    let w = (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + T[idx] + d as i32)
        .rem_euclid(7);
    w as u32 + 1
}

/// Mask with bits `x..=63` set (`x` ≤ 63).
fn at_or_above(x: u32) -> u64 {
    !((1u64 << x.min(63)) - 1)
}

/// Mask with bits `0..=x` set (`x` ≤ 62).
fn at_or_below(x: u32) -> u64 {
    (2u64 << x.min(62)) - 1
}

impl CronExpression {
    fn has_year(&self, y: i32) -> bool {
        if !(MIN_YEAR..=MAX_YEAR).contains(&y) {
            return false;
        }
        let i = (y - MIN_YEAR) as usize;
        self.years[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// The days of `y`-`m` that match, as bits 1..=31.
    fn day_mask(&self, y: i32, m: u32) -> u32 {
        let len = days_in_month(y, m);
        let month = (at_or_below(len) & !1) as u32;
        match self.days {
            DaySpec::MonthDays(b) => b & month,
            DaySpec::LastDay => 1 << len,
            DaySpec::LastWeekday => match weekday(y, m, len) {
                1 => 1 << (len - 2),
                7 => 1 << (len - 1),
                _ => 1 << len,
            },
            DaySpec::NearestWeekday(d) => {
                if d > len {
                    return 0;
                }
                let day = match weekday(y, m, d) {
                    // Saturday: the Friday before, or Monday the 3rd for the 1st.
                    7 if d == 1 => 3,
                    7 => d - 1,
                    // Sunday: the Monday after, or the Friday before for the last day.
                    1 if d == len => d - 2,
                    1 => d + 1,
                    _ => d,
                };
                1 << day
            }
            DaySpec::WeekDays(b) => {
                let first = weekday(y, m, 1);
                let mut week = 0u64;
                for i in 0..7 {
                    let wd = (first - 1 + i) % 7 + 1;
                    if b & (1 << wd) != 0 {
                        week |= 1 << i;
                    }
                }
                let pattern = week | week << 7 | week << 14 | week << 21 | week << 28;
                ((pattern << 1) & u64::from(month)) as u32
            }
            DaySpec::LastOfWeekday(w) => {
                let back = (weekday(y, m, len) + 7 - w) % 7;
                1 << (len - back)
            }
            DaySpec::NthWeekday { weekday: w, nth } => {
                let d = 1 + (w + 7 - weekday(y, m, 1)) % 7 + 7 * (nth - 1);
                if d <= len { 1 << d } else { 0 }
            }
        }
    }

    /// Whether the whole local minute `t` (seconds zero) matches every field.
    pub fn matches_local(&self, t: NaiveDateTime) -> bool {
        t.second() == 0
            && t.nanosecond() == 0
            && self.has_year(t.year())
            && self.months & (1 << t.month()) != 0
            && self.day_mask(t.year(), t.month()) & (1 << t.day()) != 0
            && self.hours & (1 << t.hour()) != 0
            && self.minutes & (1 << t.minute()) != 0
    }

    /// Calls `accept` on every matching local minute at or after `from` (its seconds
    /// ignored), in increasing order, until it returns `Some`. Ends at 2199-12-31.
    pub(super) fn search_forward<R>(
        &self,
        from: NaiveDateTime,
        mut accept: impl FnMut(NaiveDateTime) -> Option<R>,
    ) -> Option<R> {
        let (fy, fm, fd) = (from.year(), from.month(), from.day());
        let (fh, fmin) = (from.hour(), from.minute());
        for y in fy.max(MIN_YEAR)..=MAX_YEAR {
            if !self.has_year(y) {
                continue;
            }
            let by = y == fy;
            let mut months = u32::from(self.months);
            if by {
                months &= at_or_above(fm) as u32;
            }
            while months != 0 {
                let m = months.trailing_zeros();
                months &= months - 1;
                let bm = by && m == fm;
                let mut days = self.day_mask(y, m);
                if bm {
                    days &= at_or_above(fd) as u32;
                }
                while days != 0 {
                    let d = days.trailing_zeros();
                    days &= days - 1;
                    let Some(date) = NaiveDate::from_ymd_opt(y, m, d) else {
                        continue;
                    };
                    let bd = bm && d == fd;
                    let mut hours = self.hours;
                    if bd {
                        hours &= at_or_above(fh) as u32;
                    }
                    while hours != 0 {
                        let h = hours.trailing_zeros();
                        hours &= hours - 1;
                        let mut minutes = self.minutes;
                        if bd && h == fh {
                            minutes &= at_or_above(fmin);
                        }
                        while minutes != 0 {
                            let mi = minutes.trailing_zeros();
                            minutes &= minutes - 1;
                            if let Some(c) = date.and_hms_opt(h, mi, 0)
                                && let Some(r) = accept(c)
                            {
                                return Some(r);
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// Calls `accept` on every matching local minute at or before `from`, in
    /// decreasing order, until it returns `Some`. Ends at 1970-01-01.
    pub(super) fn search_backward<R>(
        &self,
        from: NaiveDateTime,
        mut accept: impl FnMut(NaiveDateTime) -> Option<R>,
    ) -> Option<R> {
        let (fy, fm, fd) = (from.year(), from.month(), from.day());
        let (fh, fmin) = (from.hour(), from.minute());
        let mut y = fy.min(MAX_YEAR);
        while y >= MIN_YEAR {
            if self.has_year(y) {
                let by = y == fy;
                let mut months = u32::from(self.months);
                if by {
                    months &= at_or_below(fm) as u32;
                }
                while months != 0 {
                    let m = 31 - months.leading_zeros();
                    months &= !(1 << m);
                    let bm = by && m == fm;
                    let mut days = self.day_mask(y, m);
                    if bm {
                        days &= at_or_below(fd) as u32;
                    }
                    while days != 0 {
                        let d = 31 - days.leading_zeros();
                        days &= !(1 << d);
                        let Some(date) = NaiveDate::from_ymd_opt(y, m, d) else {
                            continue;
                        };
                        let bd = bm && d == fd;
                        let mut hours = self.hours;
                        if bd {
                            hours &= at_or_below(fh) as u32;
                        }
                        while hours != 0 {
                            let h = 31 - hours.leading_zeros();
                            hours &= !(1 << h);
                            let mut minutes = self.minutes;
                            if bd && h == fh {
                                minutes &= at_or_below(fmin);
                            }
                            while minutes != 0 {
                                let mi = 63 - minutes.leading_zeros();
                                minutes &= !(1u64 << mi);
                                if let Some(c) = date.and_hms_opt(h, mi, 0)
                                    && let Some(r) = accept(c)
                                {
                                    return Some(r);
                                }
                            }
                        }
                    }
                }
            }
            y -= 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_agrees_with_chrono() {
        for y in [1970, 1999, 2000, 2024, 2026, 2100, 2199] {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
                    assert_eq!(
                        weekday(y, m, d),
                        date.weekday().number_from_sunday(),
                        "{date}"
                    );
                }
            }
        }
    }

    #[test]
    fn masks() {
        assert_eq!(at_or_above(0), u64::MAX);
        assert_eq!(at_or_above(3), !0b111);
        assert_eq!(at_or_below(0), 1);
        assert_eq!(at_or_below(59), (1u64 << 60) - 1);
        assert_eq!(at_or_below(31) as u32, u32::MAX);
    }
}
