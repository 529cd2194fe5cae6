//! Baselines as frontiers: a verdict against a baseline is against its best settings.
//!
//! A baseline run at one setting says little: its own docs tell users to change the
//! defaults for slow-starting workloads, and the best setting depends on the traffic.
//! So each family is run at every point of its sweep (its main knobs, see
//! [`crate::baselines`]) and kept as its *frontier*: the points no other point of the
//! family beats on both cost and share within the SLO. scale0 is *dominated* when any
//! point of any frontier is at most as costly and at least as good, and better on one.

use serde::{Deserialize, Serialize};

use crate::metrics::PolicyReport;

/// One run, as the frontier sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub policy: String,
    pub cost_usd: f64,
    pub slo_attainment: f64,
}

impl Point {
    pub fn of(report: &PolicyReport) -> Point {
        Point {
            policy: report.policy.clone(),
            cost_usd: report.cost_usd,
            slo_attainment: report.slo_attainment,
        }
    }

    /// At most as costly and at least as good, and strictly better on one.
    pub fn dominates(&self, other: &Point) -> bool {
        self.cost_usd <= other.cost_usd
            && self.slo_attainment >= other.slo_attainment
            && (self.cost_usd < other.cost_usd || self.slo_attainment > other.slo_attainment)
    }
}

/// A family's Pareto set over its sweep, cheapest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frontier {
    pub family: String,
    /// Runs in the sweep.
    pub runs: usize,
    pub points: Vec<Point>,
}

impl Frontier {
    pub fn of(family: &str, runs: &[Point]) -> Frontier {
        let mut points: Vec<Point> = runs
            .iter()
            .filter(|p| !runs.iter().any(|q| q.dominates(p)))
            .cloned()
            .collect();
        points.sort_by(|a, b| a.cost_usd.total_cmp(&b.cost_usd));
        points.dedup_by(|a, b| a.cost_usd == b.cost_usd && a.slo_attainment == b.slo_attainment);
        Frontier {
            family: family.to_string(),
            runs: runs.len(),
            points,
        }
    }
}

/// Every frontier point that dominates `point`.
pub fn dominating<'a>(frontiers: &'a [Frontier], point: &Point) -> Vec<&'a Point> {
    frontiers
        .iter()
        .flat_map(|f| &f.points)
        .filter(|p| p.dominates(point))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, cost: f64, slo: f64) -> Point {
        Point {
            policy: name.into(),
            cost_usd: cost,
            slo_attainment: slo,
        }
    }

    #[test]
    fn keeps_the_pareto_set_cheapest_first() {
        let runs = [
            p("a", 10.0, 0.90),
            p("b", 5.0, 0.80),
            p("c", 12.0, 0.85), // worse than a on both
            p("d", 20.0, 0.99),
        ];
        let f = Frontier::of("x", &runs);
        let names: Vec<&str> = f.points.iter().map(|p| p.policy.as_str()).collect();
        assert_eq!(names, ["b", "a", "d"]);
        assert_eq!(f.runs, 4);
        let scale0 = p("scale0", 11.0, 0.89);
        let frontiers = [f];
        let by: Vec<&str> = dominating(&frontiers, &scale0)
            .iter()
            .map(|p| p.policy.as_str())
            .collect();
        assert_eq!(by, ["a"]);
        // Equal on both is not domination.
        assert!(dominating(&frontiers, &p("same", 10.0, 0.90)).is_empty());
    }
}
