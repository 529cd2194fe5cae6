//! The scaler: observe, decide, commit under the fence, apply.
//!
//! One invocation handles one event, which may concern one deployment (a control
//! event, an alarm named after a deployment) or all (the tick). Each deployment runs
//! independently and concurrently:
//!
//! 1. **dedupe** — the event's id is recorded with `SET NX`; a repeated event changes
//!    nothing. If handling then fails, the id is forgotten so a retry runs again.
//! 2. **sweep and reconcile** (tick only) — readiness probes ([`crate::health`]) and
//!    the registry brought in line with the provider ([`crate::apply::reconcile`]).
//! 3. **observe** — queue depth by AMQP passive declare, everything else from Redis.
//! 4. **decide** — `scale0_core::policy::decide`, pure.
//!    The spend ledger is read with it ([`scale0_state::ledger`]): what ran since the
//!    last run is billed, and every budget covering the deployment is seen.
//! 5. **commit** — first the ledger (the bill, and the decision's commitment, checked
//!    against concurrent runs in the same budgets), then one Lua script, fenced by the
//!    generation read in step 3: targets,
//!    memory, `requested` placeholders, drains, the cap (which tells workers to shed)
//!    and the decision log entry, atomically. A fenced run observes and decides again,
//!    now seeing the winner's placeholders. After `fence_attempts` lost races it gives
//!    up: others are committing fresh decisions, so nothing is lost.
//! 6. **apply** — [`crate::apply::apply`] converges the provider on the registry. If a
//!    pool turned out unavailable, the scaler decides once more at once, so the need
//!    is launched in another pool without waiting for the next event.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use scale0_core::config::Deployment;
use scale0_core::contract::{ControlEvent, ControlEventKind, request_queue};
use scale0_core::policy::{Cap, Decision, decide};
use scale0_state::capacity::{CommitOutcome, requested_instances};
use scale0_state::counters::ARRIVAL_RETENTION;
use scale0_state::decisions::ObservedSummary;
use scale0_state::ledger::LedgerCommit;
use serde::Serialize;
use serde_json::Value;

use crate::apply::{ApplyReport, ReconcileReport};
use crate::events::alarm::AlarmChange;
use crate::events::{Rejection, ScalerEvent, Wake, decode_control};
use crate::health::SweepReport;
use crate::{Deps, HandlerError, Result};

/// What woke the scaler for one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeploymentWake {
    /// What woke it, each once, in the order they came (merged wake-ups keep all).
    pub triggers: Vec<String>,
    /// Ids to dedupe on; empty means always run.
    pub event_ids: Vec<String>,
    /// Requests a worker said it holds (an activation event), in case its report in
    /// Redis is not there yet.
    pub held_hint: u64,
    /// Instances a worker reported failing: (id, consecutive failures, reason), for the
    /// log; the count that matters is the registry's.
    pub failed: Vec<(String, u32, String)>,
    /// Run the health sweep and reconcile first.
    pub sweep: bool,
}

impl DeploymentWake {
    /// One wake-up for one trigger.
    pub fn of(trigger: impl Into<String>) -> Self {
        DeploymentWake {
            triggers: vec![trigger.into()],
            ..DeploymentWake::default()
        }
    }

    /// The triggers as the decision log and the outcome name them (`activation,
    /// instance-failed`).
    pub fn trigger(&self) -> String {
        self.triggers.join(", ")
    }

    fn merge(&mut self, other: DeploymentWake) {
        for t in other.triggers {
            if !t.is_empty() && !self.triggers.contains(&t) {
                self.triggers.push(t);
            }
        }
        self.event_ids.extend(other.event_ids);
        self.held_hint = self.held_hint.max(other.held_hint);
        self.failed.extend(other.failed);
        self.sweep |= other.sweep;
    }
}

/// What the scaler did, returned to Lambda (and logged).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ScalerOutcome {
    pub deployments: Vec<DeploymentOutcome>,
    /// Control messages that could not be used, skipped (the rest of their batch was
    /// handled): counts and a bounded sample.
    #[serde(skip_serializing_if = "Rejections::is_empty")]
    pub rejected: Rejections,
}

/// Control messages a batch could not use, summarised. An Amazon MQ batch of 100,000
/// undecodable messages gives one report of bounded size (and one log line), not an
/// error of megabytes and a line per message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rejections {
    pub total: u64,
    /// How many for each reason (`not base64`, `not a control event`, `no data`,
    /// `unknown deployment`).
    pub by_reason: BTreeMap<&'static str, u64>,
    /// The first [`Rejections::SAMPLE`], each with where it was and why, cut at
    /// [`Rejections::ENTRY_CHARS`] characters.
    pub sample: Vec<String>,
}

impl Rejections {
    pub const SAMPLE: usize = 5;
    pub const ENTRY_CHARS: usize = 200;

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn add(&mut self, at: &str, rejection: Rejection) {
        self.total += 1;
        *self.by_reason.entry(rejection.reason).or_default() += 1;
        if self.sample.len() < Self::SAMPLE {
            let full = format!("{at}: {}", rejection.detail);
            let mut entry: String = full.chars().take(Self::ENTRY_CHARS).collect();
            if entry.len() < full.len() {
                entry.push('…');
            }
            self.sample.push(entry);
        }
    }

    fn extend(&mut self, other: Rejections) {
        self.total += other.total;
        for (reason, n) in other.by_reason {
            *self.by_reason.entry(reason).or_default() += n;
        }
        let room = Self::SAMPLE.saturating_sub(self.sample.len());
        self.sample.extend(other.sample.into_iter().take(room));
    }
}

impl std::fmt::Display for Rejections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: Vec<String> = self
            .by_reason
            .iter()
            .map(|(reason, n)| format!("{reason}: {n}"))
            .collect();
        write!(f, "{} rejected ({})", self.total, counts.join(", "))?;
        if !self.sample.is_empty() {
            let first = if self.sample.len() as u64 == self.total {
                String::new()
            } else {
                format!("first {} ", self.sample.len())
            };
            write!(f, "; {first}{}", self.sample.join("; "))?;
        }
        Ok(())
    }
}

/// What the scaler did for one deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeploymentOutcome {
    pub deployment: String,
    pub trigger: String,
    /// The event was seen before: nothing was done.
    pub duplicate: bool,
    /// Every commit attempt lost the race to other runs.
    pub superseded: bool,
    /// The generation of the last committed decision.
    pub generation: Option<u64>,
    /// Decisions committed (2 when a pool turned out unavailable and it decided again).
    pub rounds: u32,
    pub targets: BTreeMap<String, u32>,
    /// Placeholders the decisions registered.
    pub requested: Vec<String>,
    pub drained: Vec<String>,
    pub terminated: Vec<String>,
    pub cap: Option<Cap>,
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<ReconcileReport>,
    pub applied: Vec<ApplyReport>,
}

/// Handle one scaler event.
pub async fn scaler(event: ScalerEvent, deps: &Deps) -> Result<ScalerOutcome> {
    let now = deps.clock.now();
    let (wakeups, rejected) = plan(event, deps).await?;
    if wakeups.is_empty() && !rejected.is_empty() {
        return Err(HandlerError::Malformed(format!(
            "no usable control event in the batch: {rejected}"
        )));
    }
    let runs = wakeups.into_iter().map(|(name, wake)| async move {
        let result = match deps.config.deployment(&name) {
            Some(spec) => run_deployment(deps, spec, wake, now).await,
            None => Err(HandlerError::Unknown {
                what: "deployment",
                name: name.clone(),
            }),
        };
        (name, result)
    });
    let results = join_all(runs).await;
    let total = results.len();
    let mut outcome = ScalerOutcome {
        rejected,
        ..Default::default()
    };
    let mut failures = Vec::new();
    for (name, r) in results {
        match r {
            Ok(o) => outcome.deployments.push(o),
            // One deployment: its own error, whose kind says whether to retry.
            Err(e) if total == 1 => return Err(e),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    if failures.is_empty() {
        Ok(outcome)
    } else {
        Err(HandlerError::Partial { failures, total })
    }
}

/// Parse a scaler event from Lambda's JSON and handle it.
pub async fn handle_json(event: Value, deps: &Deps) -> Result<ScalerOutcome> {
    scaler(ScalerEvent::from_value(event)?, deps).await
}

fn all(deps: &Deps, wake: DeploymentWake) -> BTreeMap<String, DeploymentWake> {
    deps.config
        .deployments
        .iter()
        .map(|d| (d.name.clone(), wake.clone()))
        .collect()
}

/// Which deployments to run, and why. Validates everything before any state changes.
async fn plan(
    event: ScalerEvent,
    deps: &Deps,
) -> Result<(BTreeMap<String, DeploymentWake>, Rejections)> {
    let eb_id = |id: &Option<String>| id.iter().map(|i| format!("eb:{i}")).collect::<Vec<_>>();
    Ok(match event {
        ScalerEvent::Tick(e) => {
            let wake = DeploymentWake {
                triggers: vec!["tick".into()],
                event_ids: eb_id(&e.id),
                sweep: true,
                ..Default::default()
            };
            (all(deps, wake), Rejections::default())
        }
        ScalerEvent::Alarm(e) => {
            let alarm = AlarmChange::from_eventbridge(&e);
            alarm_wakeups(&alarm, deps, eb_id(&e.id)).await?
        }
        ScalerEvent::AlarmAction(e) => {
            let alarm = AlarmChange::from_action(&e);
            let id = format!(
                "alarm:{}:{}",
                e.alarm_arn.as_deref().unwrap_or(&alarm.name),
                e.time.timestamp_millis()
            );
            alarm_wakeups(&alarm, deps, vec![id]).await?
        }
        ScalerEvent::Control(e) => {
            let mut events = Vec::new();
            let mut rejected = Rejections::default();
            if e.messages_by_queue.values().all(Vec::is_empty) {
                return Err(HandlerError::Malformed(
                    "Amazon MQ event without messages (rmqMessagesByQueue is empty or missing)"
                        .into(),
                ));
            }
            let mut queues: Vec<_> = e.messages_by_queue.iter().collect();
            queues.sort_by(|a, b| a.0.cmp(b.0));
            for (queue, messages) in queues {
                for (i, m) in messages.iter().enumerate() {
                    match decode_control(m) {
                        Ok(ev) => events.push(ev),
                        Err(why) => rejected.add(&format!("{queue}[{i}]"), why),
                    }
                }
            }
            let (wakeups, more) = control_wakeups(deps, events);
            rejected.extend(more);
            (wakeups, rejected)
        }
        ScalerEvent::ControlEvents(events) => control_wakeups(deps, events),
        ScalerEvent::Wake(w) => wake_wakeups(deps, w)?,
    })
    .inspect(|(_, rejected)| {
        if !rejected.is_empty() {
            tracing::warn!(rejected = %rejected, "control messages skipped");
        }
    })
}

fn wake_wakeups(deps: &Deps, w: Wake) -> Result<(BTreeMap<String, DeploymentWake>, Rejections)> {
    let wake = DeploymentWake {
        triggers: vec![w.trigger.clone()],
        event_ids: w.id.iter().map(|i| format!("wake:{i}")).collect(),
        sweep: w.sweep,
        ..Default::default()
    };
    if w.deployments.is_empty() {
        return Ok((all(deps, wake), Rejections::default()));
    }
    let mut out = BTreeMap::new();
    for name in w.deployments {
        if deps.config.deployment(&name).is_none() {
            return Err(HandlerError::Unknown {
                what: "deployment",
                name,
            });
        }
        out.insert(name, wake.clone());
    }
    Ok((out, Rejections::default()))
}

fn control_wakeups(
    deps: &Deps,
    events: Vec<ControlEvent>,
) -> (BTreeMap<String, DeploymentWake>, Rejections) {
    let mut out: BTreeMap<String, DeploymentWake> = BTreeMap::new();
    let mut rejected = Rejections::default();
    for ev in events {
        if deps.config.deployment(&ev.deployment).is_none() {
            rejected.add(
                &format!("control event {}", ev.id),
                Rejection::new(
                    "unknown deployment",
                    format!("unknown deployment `{}`", ev.deployment),
                ),
            );
            continue;
        }
        let mut wake = DeploymentWake {
            triggers: vec![ev.kind_name().to_string()],
            event_ids: vec![format!("control:{}", ev.id)],
            ..Default::default()
        };
        match &ev.kind {
            ControlEventKind::Activation { held } => wake.held_hint = *held,
            ControlEventKind::Pressure { .. } => {}
            ControlEventKind::InstanceFailed {
                instance,
                failures,
                reason,
            } => wake
                .failed
                .push((instance.clone(), *failures, reason.clone())),
            // The scaler's own alerts come back on the queue it consumes: nothing to do.
            ControlEventKind::BudgetAlert { .. } => continue,
        }
        match out.get_mut(&ev.deployment) {
            Some(w) => w.merge(wake),
            None => {
                out.insert(ev.deployment.clone(), wake);
            }
        }
    }
    (out, rejected)
}

/// Run the scaler for one deployment. Public so the scheduler and lifecycle handlers
/// (and the local runner) can wake it in-process.
pub async fn run_deployment(
    deps: &Deps,
    spec: &Deployment,
    wake: DeploymentWake,
    now: DateTime<Utc>,
) -> Result<DeploymentOutcome> {
    let d = spec.name.as_str();
    let mut fresh = Vec::new();
    for id in &wake.event_ids {
        if deps
            .store
            .first_sighting(d, id, deps.settings.event_ttl)
            .await?
        {
            fresh.push(id.clone());
        }
    }
    if !wake.event_ids.is_empty() && fresh.is_empty() {
        tracing::info!(deployment = d, trigger = %wake.trigger(), "repeated event: nothing to do");
        return Ok(DeploymentOutcome {
            deployment: d.to_string(),
            trigger: wake.trigger(),
            duplicate: true,
            ..Default::default()
        });
    }
    let result = run_fresh(deps, spec, wake, now).await;
    if let Err(e) = &result {
        tracing::error!(deployment = d, error = %e, "scaler run failed");
        for id in &fresh {
            let _ = deps.store.forget_event(d, id).await;
        }
    }
    result
}

async fn run_fresh(
    deps: &Deps,
    spec: &Deployment,
    wake: DeploymentWake,
    now: DateTime<Utc>,
) -> Result<DeploymentOutcome> {
    let d = spec.name.as_str();
    let mut out = DeploymentOutcome {
        deployment: d.to_string(),
        trigger: wake.trigger(),
        ..Default::default()
    };
    if wake.sweep {
        out.sweep = Some(crate::health::sweep(deps, spec, now).await?);
        out.reconcile = Some(crate::apply::reconcile(deps, spec, now).await?);
    }
    // The worker counted the failures in the registry; `decide()`'s health step reads
    // them there and applies the threshold. The event only wakes it.
    for (instance, failures, reason) in &wake.failed {
        tracing::warn!(
            deployment = d,
            instance,
            failures,
            reason,
            "worker reports instance failing"
        );
    }
    let depth = deps
        .queue
        .depth(&request_queue(d))
        .await?
        .unwrap_or_default();

    for round in 1..=2 {
        let Some((decision, generation)) = decide_and_commit(deps, spec, &wake, depth, now).await?
        else {
            out.superseded = true;
            break;
        };
        out.rounds = round;
        out.generation = Some(generation);
        out.targets = decision
            .pools
            .iter()
            .map(|p| (p.pool.clone(), p.target))
            .collect();
        out.requested.extend(
            requested_instances(&decision, generation, decision.at)
                .into_iter()
                .map(|r| r.id),
        );
        out.drained.extend(decision.drain.iter().cloned());
        out.terminated.extend(decision.terminate.iter().cloned());
        out.cap = decision.cap.clone();
        out.reasons = decision.reasons.clone();
        let applied = crate::apply::apply(deps, spec, &decision, now).await?;
        let again = !applied.unavailable.is_empty();
        out.applied.push(applied);
        if !again {
            break;
        }
    }
    tracing::info!(
        deployment = d,
        trigger = %out.trigger,
        generation = ?out.generation,
        targets = ?out.targets,
        requested = ?out.requested,
        "scaler run"
    );
    Ok(out)
}

/// Observe, decide and commit until a commit wins or the attempts run out.
pub async fn decide_and_commit(
    deps: &Deps,
    spec: &Deployment,
    wake: &DeploymentWake,
    depth: u64,
    now: DateTime<Utc>,
) -> Result<Option<(Decision, u64)>> {
    for attempt in 0..deps.settings.fence_attempts.max(1) {
        let snapshot = deps.store.load_policy(&spec.name).await?;
        let mut obs = deps.store.observe(spec, now, depth).await?;
        obs.held = obs.held.max(wake.held_hint);
        // The arrival bins the policy has not folded yet; all the store keeps at first.
        let unfolded_from =
            snapshot.memory.history.unfolded_from().unwrap_or(
                now - chrono::TimeDelta::from_std(ARRIVAL_RETENTION).unwrap_or_default(),
            );
        obs.arrival_bins = deps.store.arrivals(&spec.name, unfolded_from, now).await?;
        // The spend ledger: bills what ran since the last run, and the budgets' view.
        let ledger = deps.store.ledger_snapshot(&deps.config, spec, now).await?;
        obs.cost = ledger.observation(deps.settings.decision_interval);
        let decision = decide(now, spec, &obs, &snapshot.memory);
        let summary = ObservedSummary::new(wake.trigger(), &obs);
        // The ledger first: its commit checks no other run spent the same budget
        // headroom meanwhile; a decision fenced after it only left a higher commitment.
        let committed = deps.store.commit_ledger(&ledger, &decision).await?
            == LedgerCommit::Committed
            && match deps
                .store
                .commit_decision_observed(snapshot.generation, &decision, Some(&summary))
                .await?
            {
                CommitOutcome::Committed { generation } => {
                    crate::budget::raise_alerts(deps, &decision).await;
                    return Ok(Some((decision, generation)));
                }
                CommitOutcome::Fenced { .. } => false,
            };
        if !committed {
            // Back off a little, with jitter, so racing runs spread out.
            let cap_ms = 1u64 << attempt.min(4);
            let jitter =
                u64::from(std::process::id() ^ Utc::now().timestamp_subsec_nanos()) % (cap_ms + 1);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
        }
    }
    tracing::warn!(deployment = %spec.name, "fenced out on every attempt; others decided");
    Ok(None)
}

/// Which deployments an alarm wakes, storing the GPU utilisation it carries.
async fn alarm_wakeups(
    alarm: &AlarmChange,
    deps: &Deps,
    ids: Vec<String>,
) -> Result<(BTreeMap<String, DeploymentWake>, Rejections)> {
    let wake = DeploymentWake {
        triggers: vec![format!("alarm {} {}", alarm.name, alarm.state)],
        event_ids: ids,
        ..Default::default()
    };
    // Refused before anything is stored or decided.
    let utilization = alarm.gpu_utilization()?;
    let names = deps.config.deployments.iter().map(|d| d.name.as_str());
    let Some(d) = alarm.deployment(names) else {
        // An alarm we cannot attribute wakes every deployment: harmless, as
        // deciding again changes nothing that does not need changing.
        return Ok((all(deps, wake), Rejections::default()));
    };
    if let Some(u) = utilization {
        deps.store
            .set_gpu_utilization(&d, u, deps.settings.metric_ttl)
            .await?;
    }
    Ok((BTreeMap::from([(d, wake)]), Rejections::default()))
}
