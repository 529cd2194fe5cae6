//! Budgets at the edge: alerts the scaler raises, and the `scale0-budget` handler for
//! AWS Budgets notifications.
//!
//! **Alerts.** After each committed decision, every budget covering the deployment
//! whose spend reached one of its `alert_thresholds` raises an alert once per period
//! and threshold (`Store::first_alert`): a warning log line and a `budget-alert`
//! control event on `scale0.control` (routing key `<deployment>.budget-alert`), for
//! anyone bound to it.
//!
//! **AWS Budgets** refreshes actual cost only a few times a day, so it can alert but
//! cannot enforce a cap; scale0's ledger enforces. Its notifications (SNS → this
//! handler) are a second, authoritative source: each is recorded
//! ([`scale0_state::ledger::BudgetReport`]), shown by `scale0 status`, and an ACTUAL
//! amount for the current month tightens a monthly budget whose ledger says less
//! (AWS counts everything the account spends, such as volumes and transfer, which the
//! ledger does not see). A daily AWS budget reports *yesterday*, so its report is
//! recorded and shown but cannot tighten today. An AWS budget is matched to the scale0
//! budget of the same name, or `scale0-<name>`.
//!
//! The notification is the text AWS Budgets sends to an SNS topic, inside the SNS
//! record of the Lambda event:
//!
//! ```text
//! Budget Name: gpu-monthly
//! Budget Type: Cost
//! Budgeted Amount: $500.00
//! Alert Type: ACTUAL
//! Alert Threshold: > $400.00
//! ACTUAL Amount: $412.35
//! ```

use aws_lambda_events::sns::SnsEvent;
use chrono::{DateTime, Utc};
use scale0_core::config::{Budget, BudgetPeriod};
use scale0_core::contract::{ControlEvent, ControlEventKind};
use scale0_core::cost::{budget, period};
use scale0_core::policy::Decision;
use scale0_state::ledger::BudgetReport;
use serde::Serialize;
use serde_json::Value;

use crate::{Deps, HandlerError, Result};

/// Raise the alerts `decision`'s budget statuses call for. Failures are logged, never
/// returned: an alert must not undo a committed decision.
pub async fn raise_alerts(deps: &Deps, decision: &Decision) {
    for status in &decision.budgets {
        let Some(b) = deps.config.budgets.iter().find(|b| b.name == status.budget) else {
            continue;
        };
        let period = period::key(b, decision.at);
        for share in budget::thresholds_reached(b, status.spent_usd) {
            match deps.store.first_alert(&b.name, &period, share).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(budget = %b.name, error = %e, "cannot record a budget alert");
                    continue;
                }
            }
            tracing::warn!(
                budget = %b.name,
                threshold = share,
                spent_usd = status.spent_usd,
                limit_usd = b.limit_usd,
                period = %period,
                deployment = %decision.deployment,
                "budget alert: spend reached {:.0}% of the limit",
                share * 100.0
            );
            let Some(events) = &deps.events else { continue };
            let event = ControlEvent {
                id: format!("budget-alert:{}:{period}:{share}", b.name),
                deployment: decision.deployment.clone(),
                at: decision.at,
                kind: ControlEventKind::BudgetAlert {
                    budget: b.name.clone(),
                    share,
                    spent_usd: status.spent_usd,
                    limit_usd: b.limit_usd,
                    period: period.clone(),
                },
            };
            if let Err(e) = events.publish(&event).await {
                tracing::warn!(budget = %b.name, error = %e, "cannot publish a budget alert");
            }
        }
    }
}

/// One AWS Budgets notification, as its text says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AwsBudgetNotification {
    pub budget_name: String,
    /// `ACTUAL` or `FORECASTED`.
    pub alert_type: String,
    pub budgeted_usd: Option<f64>,
    pub threshold: Option<String>,
    /// The amount of the alert's type.
    pub amount_usd: f64,
}

fn dollars(s: &str) -> Option<f64> {
    s.trim()
        .trim_start_matches(['>', '<', '=', ' '])
        .trim_start_matches('$')
        .replace(',', "")
        .parse()
        .ok()
}

impl AwsBudgetNotification {
    /// Read the `Key: value` lines of the notification text; errors name what is
    /// missing.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let budget_name = field("Budget Name")
            .filter(|n| !n.is_empty())
            .ok_or("no `Budget Name:` line")?
            .to_string();
        let alert_type = field("Alert Type")
            .ok_or("no `Alert Type:` line")?
            .to_ascii_uppercase();
        if alert_type != "ACTUAL" && alert_type != "FORECASTED" {
            return Err(format!(
                "`Alert Type: {alert_type}` is neither ACTUAL nor FORECASTED"
            ));
        }
        let amount_line = format!("{alert_type} Amount");
        let amount = field(&amount_line).ok_or(format!("no `{amount_line}:` line"))?;
        let amount_usd = dollars(amount)
            .filter(|a| a.is_finite() && *a >= 0.0)
            .ok_or(format!(
                "`{amount_line}: {amount}` is not an amount in dollars"
            ))?;
        Ok(AwsBudgetNotification {
            budget_name,
            alert_type,
            budgeted_usd: field("Budgeted Amount").and_then(dollars),
            threshold: field("Alert Threshold").map(str::to_string),
            amount_usd,
        })
    }
}

/// What the budget handler did with one notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetNoticeOutcome {
    pub aws_budget: String,
    /// The scale0 budget it was recorded for, if one matches.
    pub budget: Option<String>,
    pub alert_type: String,
    pub amount_usd: f64,
    /// Whether it can tighten the cap (an ACTUAL amount for a monthly budget).
    pub tightens: bool,
    pub detail: String,
}

/// What the budget handler did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BudgetOutcome {
    pub notices: Vec<BudgetNoticeOutcome>,
}

/// The scale0 budget an AWS budget speaks for.
fn matching<'a>(deps: &'a Deps, aws_name: &str) -> Option<&'a Budget> {
    deps.config
        .budgets
        .iter()
        .find(|b| b.name == aws_name || format!("scale0-{}", b.name) == aws_name)
}

/// Handle an SNS event carrying AWS Budgets notifications.
pub async fn handle_json(event: Value, deps: &Deps) -> Result<BudgetOutcome> {
    if !event.get("Records").is_some_and(Value::is_array) {
        return Err(HandlerError::Malformed(
            "the budget handler takes SNS events (`Records` of `aws:sns`) carrying AWS \
             Budgets notifications"
                .into(),
        ));
    }
    let sns: SnsEvent = serde_json::from_value(event)
        .map_err(|e| HandlerError::Malformed(format!("SNS event: {e}")))?;
    budget_notices(sns, deps).await
}

pub async fn budget_notices(event: SnsEvent, deps: &Deps) -> Result<BudgetOutcome> {
    let mut outcome = BudgetOutcome::default();
    let mut problems = Vec::new();
    for (i, record) in event.records.iter().enumerate() {
        let message = &record.sns.message;
        let notice = match AwsBudgetNotification::parse(message) {
            Ok(n) => n,
            Err(why) => {
                problems.push(format!("Records[{i}].Sns.Message: {why}"));
                continue;
            }
        };
        let at: DateTime<Utc> = record.sns.timestamp;
        let Some(b) = matching(deps, &notice.budget_name) else {
            tracing::info!(aws_budget = %notice.budget_name, "AWS budget matches no scale0 budget");
            outcome.notices.push(BudgetNoticeOutcome {
                aws_budget: notice.budget_name.clone(),
                budget: None,
                alert_type: notice.alert_type.clone(),
                amount_usd: notice.amount_usd,
                tightens: false,
                detail: "no scale0 budget of that name (or scale0-<name>)".into(),
            });
            continue;
        };
        let actual = notice.alert_type == "ACTUAL";
        let tightens = actual && b.period == BudgetPeriod::Monthly;
        let report = BudgetReport {
            period: period::key(b, at),
            actual_usd: actual.then_some(notice.amount_usd),
            forecast_usd: (!actual).then_some(notice.amount_usd),
            aws_budget: notice.budget_name.clone(),
            threshold: notice.threshold.clone(),
            received_at: at,
        };
        // Keep the most telling report of the period: a lower amount never replaces a
        // higher one of the same kind (SNS may deliver out of order).
        let previous = deps.store.budget_reports().await?.remove(&b.name);
        let report = match previous {
            Some(p) if p.period == report.period => BudgetReport {
                actual_usd: max_opt(p.actual_usd, report.actual_usd),
                forecast_usd: report.forecast_usd.or(p.forecast_usd),
                ..report
            },
            _ => report,
        };
        deps.store.record_budget_report(&b.name, &report).await?;
        tracing::warn!(
            budget = %b.name,
            aws_budget = %notice.budget_name,
            alert_type = %notice.alert_type,
            amount_usd = notice.amount_usd,
            tightens,
            "AWS Budgets notification"
        );
        outcome.notices.push(BudgetNoticeOutcome {
            aws_budget: notice.budget_name,
            budget: Some(b.name.clone()),
            alert_type: notice.alert_type,
            amount_usd: notice.amount_usd,
            tightens,
            detail: if tightens {
                format!(
                    "recorded for period {}; the cap counts at least this spend",
                    report.period
                )
            } else if actual {
                format!(
                    "recorded; a {} budget's AWS report is not about its current period",
                    b.period
                )
            } else {
                "recorded (a forecast: shown, never enforced)".into()
            },
        });
    }
    if outcome.notices.is_empty() && !problems.is_empty() {
        return Err(HandlerError::Malformed(problems.join("; ")));
    }
    for p in problems {
        tracing::warn!(problem = %p, "SNS record skipped");
    }
    Ok(outcome)
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_read_from_the_text_aws_sends() {
        let text = "AWS Budget Notification March 05, 2026\nAWS Account 123456789012\n\n\
                    Dear AWS Customer,\n\nYou requested that we alert you ...\n\n\
                    Budget Name: scale0-gpu-monthly\nBudget Type: Cost\n\
                    Budgeted Amount: $1,500.00\nAlert Type: ACTUAL\n\
                    Alert Threshold: > $1,200.00\nACTUAL Amount: $1,234.56\n";
        let n = AwsBudgetNotification::parse(text).unwrap();
        assert_eq!(n.budget_name, "scale0-gpu-monthly");
        assert_eq!(n.alert_type, "ACTUAL");
        assert_eq!(n.budgeted_usd, Some(1500.0));
        assert_eq!(n.amount_usd, 1234.56);
        assert_eq!(n.threshold.as_deref(), Some("> $1,200.00"));
        let cases = [
            ("Budget Type: Cost\n", "no `Budget Name:` line"),
            (
                "Budget Name: b\nAlert Type: SOMETIMES\n",
                "neither ACTUAL nor FORECASTED",
            ),
            (
                "Budget Name: b\nAlert Type: FORECASTED\n",
                "no `FORECASTED Amount:` line",
            ),
            (
                "Budget Name: b\nAlert Type: ACTUAL\nACTUAL Amount: lots\n",
                "not an amount in dollars",
            ),
        ];
        for (text, why) in cases {
            let e = AwsBudgetNotification::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
