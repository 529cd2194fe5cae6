//! From a trace and a scenario to the stream of requests the engine replays.
//!
//! The stream is regenerated, identically, for every policy and for the bounds, rather
//! than stored: the whole NASA trace is 3.46 million requests, and a count series is
//! 20 MB as counts but would be ~80 MB as requests. Service times and priorities are
//! drawn with the arrivals, in arrival order, so every policy sees the same requests
//! with the same service times whatever it does.
//!
//! Count series: each bin's count is multiplied (copies) and thinned (binomial), then
//! its arrivals are placed uniformly at random inside the bin and sorted. Request
//! traces: the window, compression, copies (jittered) and thinning are applied once,
//! up front, to a sorted list.

use chrono::{DateTime, TimeDelta, Utc};

use crate::rng::{Rng, Stream};
use crate::scenario::{Scenario, ServiceModel};
use crate::trace::{MICROS_PER_SEC, Micros, Trace, TraceData, TraceRequest};

/// One request as the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Arrival, µs from the scenario start.
    pub at: Micros,
    /// Time it occupies a slot, µs (at least 1).
    pub service: Micros,
    pub priority: u8,
}

/// A trace prepared for one scenario: everything needed to regenerate its stream.
#[derive(Debug, Clone)]
pub struct Workload<'a> {
    source: Source<'a>,
    service: ServiceModel,
    priorities: Vec<(f64, u8)>,
    seed: u64,
    /// End of the accounting window, µs from the start.
    pub horizon: Micros,
    /// Wall-clock instant of simulated time 0.
    pub epoch: DateTime<Utc>,
}

#[derive(Debug, Clone)]
enum Source<'a> {
    Requests(Vec<TraceRequest>),
    Counts {
        counts: &'a [u32],
        /// Bin width after compression.
        bin: Micros,
        multiplier: f64,
        thinning: f64,
    },
}

/// Why a trace and a scenario do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WorkloadError(pub String);

impl<'a> Workload<'a> {
    pub fn new(trace: &'a Trace, scenario: &Scenario) -> Result<Workload<'a>, WorkloadError> {
        let t = &scenario.transform;
        let window_start = t.window_start.0.as_micros() as Micros;
        let window_len = t.window_length.map(|l| l.0.as_micros() as Micros);
        let compress = |x: Micros| (x as f64 / t.time_compression).round() as Micros;
        let start = scenario
            .trace
            .start
            .or(trace.start)
            .unwrap_or(DateTime::UNIX_EPOCH);
        let epoch = start + TimeDelta::microseconds(window_start);
        let span = trace.span();
        let is_counts = matches!(trace.data, TraceData::Counts { .. });
        if window_start > span || (is_counts && window_start == span) {
            return Err(WorkloadError(format!(
                "transform.window_start {} is past the end of the trace ({:.0} s long)",
                t.window_start,
                span as f64 / MICROS_PER_SEC as f64
            )));
        }
        // A count series ends with its last bin. A request list ends at its last
        // arrival, unless the window says how long the observation lasted.
        let window_end = match window_len {
            Some(l) if is_counts => (window_start + l).min(span),
            Some(l) => window_start + l,
            None => span,
        };
        let priorities = {
            let mut acc = 0.0;
            let mut v: Vec<(f64, u8)> = scenario
                .requests
                .priorities
                .iter()
                .map(|p| {
                    acc += p.share;
                    (acc, p.priority)
                })
                .collect();
            if !v.is_empty() {
                v.push((f64::INFINITY, 0));
            }
            v
        };
        let (source, horizon) = match &trace.data {
            TraceData::Requests {
                requests,
                has_tokens,
            } => {
                if matches!(scenario.service, ServiceModel::Tokens { .. }) && !has_tokens {
                    return Err(WorkloadError(format!(
                        "service.model = \"tokens\" but {} has no token counts; use a distribution",
                        trace.source
                    )));
                }
                let mut copies_rng = crate::rng::stream(scenario.seed, Stream::Copies);
                let mut thin_rng = crate::rng::stream(scenario.seed, Stream::Thinning);
                let jitter = t.copy_jitter.0.as_micros() as f64;
                let whole = t.rate_multiplier.floor() as u64;
                let frac = t.rate_multiplier - whole as f64;
                let mut out = Vec::new();
                for r in requests
                    .iter()
                    .filter(|r| r.at >= window_start && r.at <= window_end)
                {
                    // (An arrival exactly at the window's end is kept: the last request of
                    // a trace whose window is its span.)
                    let base = compress(r.at - window_start);
                    let extra = u64::from(copies_rng.chance(frac));
                    for copy in 0..whole + extra {
                        let at = if copy == 0 {
                            base
                        } else {
                            (base + ((copies_rng.next_f64() - 0.5) * jitter) as Micros).max(0)
                        };
                        if thin_rng.chance(t.thinning) {
                            out.push(TraceRequest { at, ..*r });
                        }
                    }
                }
                out.sort_by_key(|r| r.at);
                let horizon =
                    compress(window_end - window_start).max(out.last().map_or(0, |r| r.at));
                (Source::Requests(out), horizon)
            }
            TraceData::Counts { bin, counts } => {
                if matches!(scenario.service, ServiceModel::Tokens { .. }) {
                    return Err(WorkloadError(format!(
                        "service.model = \"tokens\" but {} is a count series; use a distribution",
                        trace.source
                    )));
                }
                // The reader already applied `trace.bin`.
                let bin = *bin;
                let first = (window_start / bin) as usize;
                let last = (((window_end + bin - 1) / bin) as usize).min(counts.len());
                let compressed_bin = compress(bin).max(1);
                let horizon = compressed_bin * (last - first) as Micros;
                (
                    Source::Counts {
                        counts: &counts[first..last],
                        bin: compressed_bin,
                        multiplier: t.rate_multiplier,
                        thinning: t.thinning,
                    },
                    horizon,
                )
            }
        };
        Ok(Workload {
            source,
            service: scenario.service.clone(),
            priorities,
            seed: scenario.seed,
            horizon,
            epoch,
        })
    }

    /// A fresh stream of the scenario's requests, in arrival order. Same seed, same stream.
    pub fn requests(&self) -> RequestStream<'_> {
        RequestStream {
            workload: self,
            next: 0,
            buffer: Vec::new(),
            buffer_pos: 0,
            placement: crate::rng::stream(self.seed, Stream::Placement),
            thinning: crate::rng::stream(self.seed, Stream::Thinning),
            copies: crate::rng::stream(self.seed, Stream::Copies),
            service: crate::rng::stream(self.seed, Stream::Service),
            priority: crate::rng::stream(self.seed, Stream::Priority),
        }
    }

    /// Requests in the stream (generates it once).
    pub fn count(&self) -> u64 {
        match &self.source {
            Source::Requests(r) => r.len() as u64,
            Source::Counts { .. } => self.requests().count() as u64,
        }
    }
}

/// Iterator over a workload's requests.
#[derive(Debug)]
pub struct RequestStream<'w> {
    workload: &'w Workload<'w>,
    /// Next request (request traces) or next bin (count series).
    next: usize,
    /// Arrivals of the current bin, sorted.
    buffer: Vec<Micros>,
    buffer_pos: usize,
    placement: Rng,
    thinning: Rng,
    copies: Rng,
    service: Rng,
    priority: Rng,
}

impl RequestStream<'_> {
    fn service_time(&mut self, r: Option<&TraceRequest>) -> Micros {
        let seconds = match &self.workload.service {
            ServiceModel::Tokens {
                prefill_ms_per_token,
                decode_ms_per_token,
                overhead_ms,
            } => {
                let r = r.expect("token model only with request traces");
                (overhead_ms
                    + prefill_ms_per_token * f64::from(r.input_tokens)
                    + decode_ms_per_token * f64::from(r.output_tokens))
                    / 1000.0
            }
            ServiceModel::Fixed { seconds } => *seconds,
            ServiceModel::Exponential { mean_seconds } => self.service.exponential(*mean_seconds),
            ServiceModel::Lognormal {
                mean_seconds,
                sigma,
            } => {
                let mu = mean_seconds.ln() - sigma * sigma / 2.0;
                (mu + sigma * self.service.normal()).exp()
            }
        };
        ((seconds * MICROS_PER_SEC as f64).round() as Micros).max(1)
    }

    fn priority(&mut self) -> u8 {
        if self.workload.priorities.is_empty() {
            return 0;
        }
        let u = self.priority.next_f64();
        self.workload
            .priorities
            .iter()
            .find(|(cum, _)| u < *cum)
            .map_or(0, |&(_, p)| p)
    }
}

impl Iterator for RequestStream<'_> {
    type Item = Request;

    fn next(&mut self) -> Option<Request> {
        match &self.workload.source {
            Source::Requests(list) => {
                let r = list.get(self.next)?;
                self.next += 1;
                let service = self.service_time(Some(r));
                let priority = self.priority();
                Some(Request {
                    at: r.at,
                    service,
                    priority,
                })
            }
            Source::Counts {
                counts,
                bin,
                multiplier,
                thinning,
            } => {
                while self.buffer_pos == self.buffer.len() {
                    let &count = counts.get(self.next)?;
                    let start = self.next as Micros * bin;
                    self.next += 1;
                    self.buffer.clear();
                    self.buffer_pos = 0;
                    if count == 0 {
                        continue;
                    }
                    let whole = multiplier.floor() as u64;
                    let frac = multiplier - whole as f64;
                    let n = u64::from(count) * whole
                        + if frac > 0.0 {
                            self.copies.binomial(u64::from(count), frac)
                        } else {
                            0
                        };
                    let kept = self.thinning.binomial(n, *thinning);
                    for _ in 0..kept {
                        self.buffer
                            .push(start + self.placement.below(*bin as u64) as Micros);
                    }
                    self.buffer.sort_unstable();
                }
                let at = self.buffer[self.buffer_pos];
                self.buffer_pos += 1;
                let service = self.service_time(None);
                let priority = self.priority();
                Some(Request {
                    at,
                    service,
                    priority,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{ReadOptions, parse};

    fn scenario(extra: &str, service: &str) -> Scenario {
        let text = format!(
            r#"
            name = "t"
            seed = 9
            [trace]
            path = "x"
            [transform]
            {extra}
            [service]
            {service}
            [slo]
            max_wait = "1s"
            [deployment]
            name = "d"
            [[deployment.pools]]
            name = "p"
            max_instances = 4
            slots = 2
            price_per_hour_usd = 1.0
            boot_time = "10s"
            "#
        );
        Scenario::from_toml_str(&text).unwrap()
    }

    #[test]
    fn counts_are_spread_within_bins_deterministically() {
        let trace = parse(b"3 0 2", "c", None, ReadOptions::default()).unwrap();
        let s = scenario("", "model = \"fixed\"\nseconds = 0.5");
        let w = Workload::new(&trace, &s).unwrap();
        let a: Vec<Request> = w.requests().collect();
        let b: Vec<Request> = w.requests().collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 5);
        assert!(a[..3].iter().all(|r| (0..1_000_000).contains(&r.at)));
        assert!(
            a[3..]
                .iter()
                .all(|r| (2_000_000..3_000_000).contains(&r.at))
        );
        assert!(a.windows(2).all(|p| p[0].at <= p[1].at));
        assert!(a.iter().all(|r| r.service == 500_000));
        assert_eq!(w.horizon, 3_000_000);
    }

    #[test]
    fn window_compression_multiplier_thinning() {
        let counts: String = (0..100).map(|_| "10 ").collect();
        let trace = parse(counts.as_bytes(), "c", None, ReadOptions::default()).unwrap();
        let s = scenario(
            "window_start = \"10s\"\nwindow_length = \"20s\"\ntime_compression = 2.0\nrate_multiplier = 3.0\nthinning = 0.5",
            "model = \"exponential\"\nmean_seconds = 1.0",
        );
        let w = Workload::new(&trace, &s).unwrap();
        assert_eq!(w.horizon, 10_000_000);
        let n = w.requests().count();
        // 20 bins × 10 × 3 × 0.5 = 300 expected.
        assert!((250..350).contains(&n), "{n}");
        assert!(w.requests().all(|r| r.at < 10_000_000));
    }

    #[test]
    fn tokens_give_service_times() {
        let trace = parse(
            b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.00,1000,10\n2023-11-16 18:17:05.50,2000,0\n",
            "a",
            None,
            ReadOptions::default(),
        )
        .unwrap();
        let s = scenario(
            "",
            "model = \"tokens\"\nprefill_ms_per_token = 0.2\ndecode_ms_per_token = 25.0",
        );
        let w = Workload::new(&trace, &s).unwrap();
        let r: Vec<Request> = w.requests().collect();
        assert_eq!(
            r,
            [
                Request {
                    at: 0,
                    service: 450_000,
                    priority: 0
                },
                Request {
                    at: 2_500_000,
                    service: 400_000,
                    priority: 0
                }
            ]
        );
        // The token model needs tokens.
        let counts = parse(b"1 2", "c", None, ReadOptions::default()).unwrap();
        assert!(Workload::new(&counts, &s).is_err());
    }
}
