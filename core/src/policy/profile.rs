//! Time-of-week profile: when in the day and the week a deployment's requests come.
//!
//! The forecast behind pre-warming (`super::forecast`) needs the expected arrivals in
//! a window a boot lead from now. Traffic of people and of the jobs they schedule
//! repeats by the day and by the week, so the profile keeps two things, both folded
//! from the same 10 s bins as the rest of the history and both of fixed size:
//!
//! - **arrivals per minute of the day** (UTC, 1,440 values), each day's counts added
//!   to the older ones decayed by [`DAY_DECAY`] per day, so the profile follows a
//!   pattern that drifts and forgets one that stopped within about a week;
//! - **arrivals per weekday** of the complete days, decayed per week by
//!   [`WEEK_DECAY`], which scale the daily profile: a Monday is forecast from the
//!   recent days' minutes times how busy Mondays are against the days that made the
//!   profile. A weekday not seen yet scales by 1.
//!
//! Counting one minute of today as observed only once the fold has passed it, the
//! forecast for a later minute rests on the earlier days alone: on the first day there
//! is none ([`TimeOfWeekProfile::expected`] returns `None`), the "not enough history"
//! of AWS's predictive scaling, which needs 24 h.
//!
//! Minute resolution, daily and weekly cycles, per deployment: the same questions
//! AWS's predictive scaling answers hourly and Azure's hybrid histogram does not ask
//! (it learns idle times, not when in the day they end).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const MINUTES_PER_DAY: usize = 1440;
const SECS_PER_DAY: i64 = 86_400;
/// Weight of yesterday's minutes against today's.
pub const DAY_DECAY: f32 = 0.75;
/// Weight of last week's weekday totals against this week's.
pub const WEEK_DECAY: f32 = 0.5;
/// Days of decay after which older counts are negligible (0.75^28 ≈ 3e-4): a gap in
/// the history longer than this rolls only this many days.
const MAX_ROLL_DAYS: i64 = 28;

/// Arrivals by minute of the day and by weekday, decayed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TimeOfWeekProfile {
    /// The day being folded (days since the epoch), and the first second of it not
    /// folded yet.
    #[serde(default)]
    pub folding: Option<(i64, i64)>,
    /// Decayed arrivals per minute of the day (empty until the first fold).
    #[serde(default)]
    pub by_minute: Vec<f32>,
    /// Decayed count of the days folded, today included.
    #[serde(default)]
    pub days: f32,
    /// Arrivals of today so far.
    #[serde(default)]
    pub today: f32,
    /// Decayed arrivals of the complete days, per weekday (Monday first), and the
    /// decayed count of those days.
    #[serde(default)]
    pub by_weekday: [f32; 7],
    #[serde(default)]
    pub weekdays_seen: [f32; 7],
}

fn day_of(secs: i64) -> i64 {
    secs.div_euclid(SECS_PER_DAY)
}

fn minute_of_day(secs: i64) -> usize {
    (secs.rem_euclid(SECS_PER_DAY) / 60) as usize
}

/// Monday = 0; 1970-01-01 was a Thursday.
fn weekday_of_day(day: i64) -> usize {
    (day + 3).rem_euclid(7) as usize
}

impl TimeOfWeekProfile {
    /// Count `count` arrivals in the bin starting at `bin` (seconds since the epoch),
    /// `width` seconds wide; bins come in increasing order.
    pub fn add(&mut self, bin: i64, width: i64, count: u64) {
        self.advance_to(bin);
        if count > 0 {
            self.by_minute[minute_of_day(bin)] += count as f32;
            self.today += count as f32;
        }
        if let Some((_, folded_to)) = &mut self.folding {
            *folded_to = (*folded_to).max(bin + width);
        }
    }

    /// Mark everything before `secs` as folded (idle where no bin said otherwise).
    pub fn advance_to(&mut self, secs: i64) {
        let day = day_of(secs);
        match self.folding {
            None => {
                self.by_minute = vec![0.0; MINUTES_PER_DAY];
                self.days = 1.0;
            }
            Some((current, _)) if day > current => {
                self.close_day(current);
                // k days of decay at once: counts × d^k, days × d^k + (1 + d + … + d^(k-1)).
                let k = (day - current).min(MAX_ROLL_DAYS) as i32;
                let decay = DAY_DECAY.powi(k);
                self.by_minute.iter_mut().for_each(|m| *m *= decay);
                self.days = self.days * decay + (1.0 - decay) / (1.0 - DAY_DECAY);
                // Whole idle days between are complete days of no arrivals.
                for idle in (current + 1..day).rev().take(7) {
                    self.close_weekday(idle, 0.0);
                }
            }
            Some(_) => {}
        }
        let folded_to = match self.folding {
            Some((current, to)) if current == day => to.max(secs),
            _ => secs,
        };
        self.folding = Some((day, folded_to));
    }

    fn close_day(&mut self, day: i64) {
        let total = std::mem::take(&mut self.today);
        self.close_weekday(day, total);
    }

    fn close_weekday(&mut self, day: i64, total: f32) {
        let w = weekday_of_day(day);
        self.by_weekday[w] = self.by_weekday[w] * WEEK_DECAY + total;
        self.weekdays_seen[w] = self.weekdays_seen[w] * WEEK_DECAY + 1.0;
    }

    /// Mean arrivals in the minute of the day starting at `secs`, over the days that
    /// have passed that minute; `None` when none has.
    fn minute_mean(&self, secs: i64) -> Option<f32> {
        let (_, folded_to) = self.folding?;
        let m = minute_of_day(secs);
        let passed_today = minute_of_day(folded_to) > m || day_of(folded_to) > day_of(secs);
        let days = if passed_today {
            self.days
        } else {
            self.days - 1.0
        };
        (days > 0.5).then(|| self.by_minute[m] / days)
    }

    /// Mean arrivals per day on weekday `w`, or `None` if none was seen.
    fn weekday_level(&self, w: usize) -> Option<f32> {
        (self.weekdays_seen[w] > 0.0).then(|| self.by_weekday[w] / self.weekdays_seen[w])
    }

    /// How busy the weekday of `day` is against the days the minute profile is made
    /// of (weighted as it weighs them); 1 where a weekday has not been seen.
    fn weekday_factor(&self, day: i64) -> f32 {
        let Some((today, _)) = self.folding else {
            return 1.0;
        };
        let Some(target) = self.weekday_level(weekday_of_day(day)) else {
            return 1.0;
        };
        let (mut mix, mut weight, mut w) = (0.0f32, 0.0f32, 1.0f32);
        for age in 1..=MAX_ROLL_DAYS {
            if let Some(level) = self.weekday_level(weekday_of_day(today - age)) {
                mix += w * level;
                weight += w;
            }
            w *= DAY_DECAY;
        }
        if weight == 0.0 || mix <= 0.0 {
            return 1.0;
        }
        target / (mix / weight)
    }

    /// Expected arrivals in `[from, to)` by the profile, or `None` while some minute of
    /// it has no earlier day to go by.
    pub fn expected(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
        let (from, to) = (from.timestamp(), to.timestamp());
        let mut total = 0.0f64;
        let mut t = from;
        let mut factor: Option<(i64, f32)> = None;
        while t < to {
            let minute_end = (t - t.rem_euclid(60) + 60).min(to);
            let share = (minute_end - t) as f64 / 60.0;
            let mean = self.minute_mean(t)?;
            let day = day_of(t);
            let f = match factor {
                Some((d, f)) if d == day => f,
                _ => {
                    let f = self.weekday_factor(day);
                    factor = Some((day, f));
                    f
                }
            };
            total += share * f64::from(mean * f);
            t = minute_end;
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    /// `days` days, each with `per_minute` arrivals in every minute of 09:00–10:00.
    fn office_hours(days: i64, per_minute: u64) -> TimeOfWeekProfile {
        let mut p = TimeOfWeekProfile::default();
        for d in 0..days {
            for m in 0..60 {
                p.add(d * SECS_PER_DAY + 9 * 3600 + m * 60, 10, per_minute);
            }
        }
        p.advance_to(days * SECS_PER_DAY - 1);
        p
    }

    #[test]
    fn the_numbering_of_weekdays_matches_chrono() {
        for day in 0..14 {
            assert_eq!(
                weekday_of_day(day),
                at(day * SECS_PER_DAY).weekday().num_days_from_monday() as usize
            );
        }
    }

    #[test]
    fn no_forecast_on_the_first_day() {
        let p = office_hours(1, 4);
        assert!(p.expected(at(9 * 3600), at(10 * 3600)).is_some());
        let mut first = TimeOfWeekProfile::default();
        first.add(8 * 3600, 10, 1);
        assert_eq!(first.expected(at(9 * 3600), at(10 * 3600)), None);
    }

    #[test]
    fn a_daily_pattern_is_forecast_for_the_next_day() {
        let p = office_hours(3, 4);
        let day4 = 3 * SECS_PER_DAY;
        // Every day alike: four a minute in office hours, none before.
        let busy = p
            .expected(at(day4 + 9 * 3600), at(day4 + 9 * 3600 + 600))
            .unwrap();
        assert!((busy - 40.0).abs() < 1e-3, "{busy}");
        let before = p
            .expected(at(day4 + 8 * 3600), at(day4 + 8 * 3600 + 600))
            .unwrap();
        assert_eq!(before, 0.0);
    }

    #[test]
    fn a_stopped_pattern_fades() {
        let mut p = office_hours(3, 4);
        p.advance_to(10 * SECS_PER_DAY);
        let day11 = 10 * SECS_PER_DAY;
        let faded = p
            .expected(at(day11 + 9 * 3600), at(day11 + 9 * 3600 + 600))
            .unwrap();
        assert!(faded < 4.0, "seven idle days later: {faded}");
    }

    #[test]
    fn a_quiet_weekday_scales_the_forecast_down() {
        // Two weeks: every day busy, Sundays a tenth as busy.
        let mut p = TimeOfWeekProfile::default();
        for d in 0..14 {
            let per_minute = if weekday_of_day(d) == 6 { 1 } else { 10 };
            for m in 0..60 {
                p.add(d * SECS_PER_DAY + 9 * 3600 + m * 60, 10, per_minute);
            }
        }
        p.advance_to(14 * SECS_PER_DAY);
        let next = |day: i64| {
            p.expected(
                at(day * SECS_PER_DAY + 9 * 3600),
                at(day * SECS_PER_DAY + 10 * 3600),
            )
            .unwrap()
        };
        let sunday = (14..21).find(|&d| weekday_of_day(d) == 6).unwrap();
        let monday = (14..21).find(|&d| weekday_of_day(d) == 0).unwrap();
        assert!(
            next(sunday) < 0.3 * next(monday),
            "sunday {} against monday {}",
            next(sunday),
            next(monday)
        );
    }
}
