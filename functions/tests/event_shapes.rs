//! Lambda events fuzzed by shape: each event kind starts from its documented fixture
//! (`tests/fixtures/`, AWS's own samples) and is broken one field at a time — every
//! field removed, given each other JSON type, a null, an empty or 10 KB string, a
//! number out of range, an array nested 100 deep (what survives serde_json's limit of
//! 128 on the way in) — and handed to its handler against real Redis.
//!
//! Each must be handled, or refused as `MalformedEvent`/`UnknownName` (never retried)
//! with a message that names the field; never panic; and a refusal changes no state:
//! no decision, no registry entry, no launch. Prints how many inputs each handler
//! tried (`-- --nocapture`).

mod support;

use std::sync::Arc;

use futures_util::FutureExt;
use scale0_functions::provider::fake::FakeProvider;
use scale0_functions::{Deps, HandlerError, lifecycle, scaler, scheduler};
use serde_json::{Value, json};
use support::*;

#[derive(Clone, Copy, Debug)]
enum Handler {
    Scaler,
    Scheduler,
    Lifecycle,
}

async fn call(h: Handler, event: Value, deps: &Deps) -> Result<(), HandlerError> {
    match h {
        Handler::Scaler => scaler::handle_json(event, deps).await.map(drop),
        Handler::Scheduler => scheduler::handle_json(event, deps).await.map(drop),
        Handler::Lifecycle => lifecycle::handle_json(event, deps).await.map(drop),
    }
}

/// Every path below the root: keys and indices.
fn paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (k, child) in children {
        at.push(k);
        out.push(at.clone());
        paths(child, at, out);
        at.pop();
    }
}

fn get_mut<'a>(v: &'a mut Value, steps: &[String]) -> &'a mut Value {
    steps.iter().fold(v, |v, s| match v {
        Value::Array(a) => &mut a[s.parse::<usize>().unwrap()],
        other => &mut other[s.as_str()],
    })
}

fn replacements(v: &Value) -> Vec<Value> {
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let mut out = vec![
        json!("x"),
        json!(7),
        json!(0.5),
        json!(true),
        Value::Null,
        json!([]),
        json!({}),
        json!("a".repeat(10_000)),
        deep,
    ];
    match v {
        Value::String(_) => out.extend([json!(""), json!("not-a-date"), json!("1970-01-01")]),
        Value::Number(_) => out.extend([json!(-1), json!(1e308), json!(-1e308), json!(u64::MAX)]),
        Value::Array(a) if !a.is_empty() => {
            let mut doubled = a.clone();
            doubled.push(a[0].clone());
            out.push(Value::Array(doubled));
        }
        _ => {}
    }
    out.retain(|r| r != v);
    out
}

/// What a refusal may not have changed.
async fn state(deps: &Deps, d: &str, fake: &FakeProvider) -> (u64, usize, usize, usize) {
    (
        deps.store.load_policy(d).await.unwrap().generation,
        deps.store.instances(d).await.unwrap().len(),
        deps.store.recent_decisions(d, 1000).await.unwrap().len(),
        fake.started().len(),
    )
}

#[tokio::test]
async fn every_field_of_every_fixture_broken_one_at_a_time_is_handled_or_named() {
    let d = unique("shapes");
    let schedules = r#"
        [[deployments.schedules]]
        name = "office-hours"
        expression = "cron(0 9 ? * MON-FRI *)"
        min_instances = 1
    "#;
    let fake = Arc::new(FakeProvider::per_instance());
    let deps = deps(config(&one_pool(&d, schedules)), fake.clone(), depth(&d, 0)).await;

    let mut scheduler_invocation = fixture("scheduler-invocation.json");
    scheduler_invocation["deployment"] = json!(d);
    let targets: Vec<(&str, Handler, Value)> = vec![
        (
            "eventbridge-scheduled-event",
            Handler::Scaler,
            fixture("eventbridge-scheduled-event.json"),
        ),
        (
            "cloudwatch-alarm-state-change",
            Handler::Scaler,
            fixture("cloudwatch-alarm-state-change.json"),
        ),
        (
            "cloudwatch-alarm-lambda-action",
            Handler::Scaler,
            fixture("cloudwatch-alarm-lambda-action.json"),
        ),
        (
            "amazon-mq-rabbitmq-event",
            Handler::Scaler,
            amazon_mq(&[control(
                "shape-1",
                &d,
                json!({"type": "activation", "held": 2}),
            )]),
        ),
        (
            "scheduler-invocation",
            Handler::Scheduler,
            scheduler_invocation,
        ),
        (
            "autoscaling-launch-lifecycle-action",
            Handler::Lifecycle,
            fixture("autoscaling-launch-lifecycle-action.json"),
        ),
        (
            "autoscaling-terminate-lifecycle-action",
            Handler::Lifecycle,
            fixture("autoscaling-terminate-lifecycle-action.json"),
        ),
        (
            "autoscaling-launch-successful",
            Handler::Lifecycle,
            fixture("autoscaling-launch-successful.json"),
        ),
        (
            "autoscaling-launch-unsuccessful",
            Handler::Lifecycle,
            fixture("autoscaling-launch-unsuccessful.json"),
        ),
        (
            "autoscaling-terminate-successful",
            Handler::Lifecycle,
            fixture("autoscaling-terminate-successful.json"),
        ),
        (
            "ec2-instance-state-change",
            Handler::Lifecycle,
            fixture("ec2-instance-state-change.json"),
        ),
        (
            "ec2-spot-interruption-warning",
            Handler::Lifecycle,
            fixture("ec2-spot-interruption-warning.json"),
        ),
        (
            "ec2-instance-rebalance-recommendation",
            Handler::Lifecycle,
            fixture("ec2-instance-rebalance-recommendation.json"),
        ),
    ];
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, handler, seed) in targets {
        // The seed itself is handled (once, so repeats are duplicates from here on).
        call(handler, seed.clone(), &deps)
            .await
            .unwrap_or_else(|e| panic!("{name}: the fixture itself fails: {e}"));
        let mut all = Vec::new();
        paths(&seed, &mut Vec::new(), &mut all);
        let (mut tried, mut handled, mut refused) = (0, 0, 0);
        for steps in &all {
            let mut inputs: Vec<(String, Value)> = replacements(get_mut(&mut seed.clone(), steps))
                .into_iter()
                .map(|r| {
                    let mut m = seed.clone();
                    let shown = r.to_string().chars().take(40).collect::<String>();
                    *get_mut(&mut m, steps) = r;
                    (shown, m)
                })
                .collect();
            let mut removed = seed.clone();
            let (last, parent) = steps.split_last().unwrap();
            match get_mut(&mut removed, parent) {
                Value::Object(m) => {
                    m.remove(last);
                }
                Value::Array(a) => {
                    a.remove(last.parse::<usize>().unwrap());
                }
                _ => unreachable!(),
            }
            inputs.push(("removed".into(), removed));
            let field = steps.join(".");
            let key = steps
                .iter()
                .rev()
                .find(|s| s.parse::<usize>().is_err())
                .cloned()
                .unwrap_or_default();
            for (what, input) in inputs {
                tried += 1;
                let before = state(&deps, &d, &fake).await;
                let result = std::panic::AssertUnwindSafe(call(handler, input, &deps))
                    .catch_unwind()
                    .await;
                let Ok(result) = result else {
                    failures.push(format!("{name} {field} = {what}: panicked"));
                    continue;
                };
                match result {
                    Ok(()) => handled += 1,
                    Err(e @ (HandlerError::Malformed(_) | HandlerError::Unknown { .. })) => {
                        refused += 1;
                        let message = e.to_string();
                        // The field, or a field that holds it (an Amazon MQ batch left
                        // empty is named by `rmqMessagesByQueue`).
                        let named = steps
                            .iter()
                            .filter(|s| s.parse::<usize>().is_err())
                            .any(|s| message.contains(s.as_str()));
                        if !named && !matches!(e, HandlerError::Unknown { .. }) {
                            failures.push(format!(
                                "{name} {field} = {what}: does not name `{key}`: {message}"
                            ));
                        }
                        if state(&deps, &d, &fake).await != before {
                            failures.push(format!(
                                "{name} {field} = {what}: refused, yet state changed"
                            ));
                        }
                        assert!(!e.is_retryable());
                    }
                    Err(e) => failures.push(format!("{name} {field} = {what}: {e}")),
                }
            }
        }
        eprintln!(
            "event shapes, {name}: {tried} inputs, {handled} handled, {refused} refused naming the field"
        );
        total += tried;
    }
    eprintln!(
        "event shapes: {total} inputs in all, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
