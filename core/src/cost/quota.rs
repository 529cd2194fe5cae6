//! Service quotas: vCPUs that pools of several deployments share.
//!
//! An EC2 quota such as `L-DB2E81BA` ("Running On-Demand G and VT instances") caps the
//! vCPUs of every instance it covers in a region, whichever deployment runs them. A
//! decision may launch into a covered pool only if, after the launch,
//!
//! ```text
//! others + leaving + Σ covered pools: vcpus_per_instance × max(current, target) ≤ quota
//! ```
//!
//! - **others** — what the other deployments hold in the quota's pools, as each
//!   published at its last decision ([`super::budget::PeerCommitment::quota_vcpus`]);
//!   they only grow at a decision of their own, which checks the same sum, and the
//!   ledger's commit fences two decisions of one quota the way it fences a budget.
//! - **leaving** — this deployment's draining instances in covered pools: they run
//!   until stopped, and the quota counts running instances.
//! - `max(current, target)` — an instance this decision drains still runs, so a pool
//!   that shrinks frees nothing for another pool of the same decision.
//!
//! Quotas bound launches only: instances already running past a quota (the quota was
//! lowered, or a peer's commitment was stale) keep running. A quota error from the
//! provider still backs the pool off (`ProviderSettings::unavailable_backoff`): the
//! configured value can be wrong, and the provider's answer wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Deployment, Quota};

/// A quota covering at least one pool of the deciding deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaObservation {
    pub quota: Quota,
    /// vCPUs the other deployments hold in the quota's pools.
    #[serde(default)]
    pub others_vcpus: u64,
}

/// One quota as allocation applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaLimit {
    pub name: String,
    pub code: String,
    pub vcpus: u64,
    /// others + leaving: what this decision cannot change.
    pub fixed_vcpus: u64,
    pub others_vcpus: u64,
    /// Per pool in the deployment's order: vCPUs of one instance, 0 if not covered.
    pub per_pool: Vec<u64>,
}

impl QuotaLimit {
    /// The limit for `spec`, with `leaving` = draining instances per pool.
    pub fn of(spec: &Deployment, obs: &QuotaObservation, leaving: &[u32]) -> Self {
        let per_pool: Vec<u64> = spec
            .pools
            .iter()
            .map(|p| {
                if obs.quota.covers(&spec.name, &p.name) {
                    u64::from(p.vcpus_per_instance.unwrap_or(0))
                } else {
                    0
                }
            })
            .collect();
        let leaving_vcpus: u64 = per_pool
            .iter()
            .zip(leaving)
            .map(|(v, &n)| v * u64::from(n))
            .sum();
        QuotaLimit {
            name: obs.quota.name.clone(),
            code: obs.quota.code.clone(),
            vcpus: u64::from(obs.quota.vcpus),
            fixed_vcpus: obs.others_vcpus + leaving_vcpus,
            others_vcpus: obs.others_vcpus,
            per_pool,
        }
    }

    /// vCPUs held with `counts` targets over `current` instances, everyone's.
    pub fn used(&self, current: &[u32], counts: &[u32]) -> u64 {
        self.fixed_vcpus + self.own(current, counts)
    }

    /// This deployment's capacity's part of [`Self::used`] (without leaving instances).
    pub fn own(&self, current: &[u32], counts: &[u32]) -> u64 {
        self.per_pool
            .iter()
            .zip(current.iter().zip(counts))
            .map(|(v, (&c, &t))| v * u64::from(c.max(t)))
            .sum()
    }

    /// Whether one more instance of pool `i` on top of `counts` stays within the quota.
    pub fn allows_one_more(&self, current: &[u32], counts: &[u32], i: usize) -> bool {
        if self.per_pool[i] == 0 {
            return true;
        }
        let mut next = counts.to_vec();
        next[i] += 1;
        self.used(current, &next) <= self.vcpus
    }

    /// "quota gpu-od (L-DB2E81BA): 60 of 64 vCPUs, 28 held by other deployments".
    pub fn explain(&self, current: &[u32], counts: &[u32]) -> String {
        format!(
            "quota {} ({}): {} of {} vCPUs, {} held by other deployments",
            self.name,
            self.code,
            self.used(current, counts),
            self.vcpus,
            self.others_vcpus
        )
    }
}

/// What this deployment holds of each quota after a decision, for its peers: leaving
/// instances plus `max(current, target)` of each covered pool.
pub fn holdings(limits: &[QuotaLimit], current: &[u32], targets: &[u32]) -> BTreeMap<String, u64> {
    limits
        .iter()
        .map(|q| {
            (
                q.name.clone(),
                q.fixed_vcpus - q.others_vcpus + q.own(current, targets),
            )
        })
        .collect()
}
