//! What one HTTP attempt's end means, for the instance (does it count toward
//! `unhealthy_after_failures`) and for the request (another attempt elsewhere, or its
//! answer). The worker's attempt task asks these; the machine counts the outcome when
//! the slot is released and holds the job again for the retry.

use chrono::{DateTime, Utc};

use super::{Job, Outcome};

/// How an attempt ended, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempted {
    /// The instance answered with this HTTP status.
    Status(u16),
    /// No answer before the request's deadline.
    Timeout,
    /// No connection, or it broke before an answer.
    ConnectError,
}

impl Attempted {
    /// What it says about the instance: a timeout, connection error or 5xx is a
    /// failure; a 429 or another 4xx (the request's own fault) says nothing.
    pub fn outcome(self) -> Outcome {
        match self {
            Attempted::Status(s) if (200..300).contains(&s) => Outcome::Ok,
            Attempted::Status(s) if s >= 500 => Outcome::Failure,
            Attempted::Status(_) => Outcome::Neutral,
            Attempted::Timeout | Attempted::ConnectError => Outcome::Failure,
        }
    }

    /// The `attempts` metric's label.
    pub fn label(self) -> &'static str {
        match self {
            Attempted::Status(s) if (200..300).contains(&s) => "ok",
            Attempted::Status(s) if s >= 500 => "http_5xx",
            Attempted::Status(429) => "http_429",
            Attempted::Status(_) => "http_4xx",
            Attempted::Timeout => "timeout",
            Attempted::ConnectError => "connect_error",
        }
    }

    /// Worth another instance: a 5xx, a 429 or a connection error. A timeout is not
    /// (it took the whole deadline), nor an answer the request itself caused.
    pub fn retryable(self) -> bool {
        match self {
            Attempted::Status(s) => s >= 500 || s == 429,
            Attempted::ConnectError => true,
            Attempted::Timeout => false,
        }
    }
}

/// Whether `job`, whose latest attempt ended `attempted`, is tried again (on another
/// instance when one is free): a retryable end, time left before its deadline, and
/// fewer than `max_attempts` attempts made.
pub fn retry<P>(job: &Job<P>, attempted: Attempted, max_attempts: u32, now: DateTime<Utc>) -> bool {
    attempted.retryable() && job.deadline > now && job.attempts < max_attempts
}
