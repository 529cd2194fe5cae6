//! The lifecycle and scheduler handlers fed documented event JSON, against real Redis,
//! with the fake provider in its Auto Scaling (by-count) mode.

mod support;

use std::sync::Arc;

use scale0_core::contract::InstanceState;
use scale0_functions::provider::fake::FakeProvider;
use scale0_functions::{HandlerError, lifecycle, scaler, scheduler};
use serde_json::{Value, json};
use support::*;

fn asg_event(file: &str, id: &str, group: &str, instance: &str) -> Value {
    let mut e = fixture(file);
    e["id"] = json!(id);
    e["detail"]["AutoScalingGroupName"] = json!(group);
    e["detail"]["EC2InstanceId"] = json!(instance);
    e
}

#[tokio::test]
async fn a_launch_lifecycle_action_replaces_a_placeholder_and_completes() {
    let d = unique("launch");
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 19)).await;
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    assert_eq!(out.deployments[0].requested, ["a10g-g1-0"]);
    assert_eq!(fake.count(&d, "a10g"), Some(1));

    let group = format!("scale0-{d}-a10g");
    let event = asg_event(
        "autoscaling-launch-lifecycle-action.json",
        "e1",
        &group,
        "i-0abc",
    );
    let out = lifecycle::handle_json(event.clone(), &deps).await.unwrap();
    assert_eq!(out.action, "adopted");
    assert_eq!(out.detail, "i-0abc replaces placeholder a10g-g1-0");
    assert!(out.lifecycle_completed);
    assert_eq!(fake.completed(), ["i-0abc"]);
    let r = deps.store.instance(&d, "i-0abc").await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Booting);
    assert_eq!(r.endpoint.as_deref(), Some("http://fake.invalid/i-0abc"));
    assert_eq!(r.launched_at, t0(), "boot time counts from the request");
    assert!(
        deps.store
            .instance(&d, "a10g-g1-0")
            .await
            .unwrap()
            .is_none()
    );

    // Redelivered: nothing changes.
    let again = lifecycle::handle_json(event, &deps).await.unwrap();
    assert_eq!(again.action, "duplicate");
    assert_eq!(fake.completed().len(), 1);
    // The launch result event for the same instance finds it registered.
    let result = asg_event("autoscaling-launch-successful.json", "e2", &group, "i-0abc");
    let out = lifecycle::handle_json(result, &deps).await.unwrap();
    assert_eq!(out.action, "noted");
    assert_eq!(live(&deps.store.instances(&d).await.unwrap()).len(), 1);
}

#[tokio::test]
async fn a_terminating_instance_drains_first_then_its_action_completes() {
    let d = unique("drain");
    let fake = Arc::new(FakeProvider::by_count());
    // A floor of one keeps the policy from scaling the busy instance in on its own.
    let toml = one_pool(&d, "").replace(
        "max_instances = 10",
        "min_instances = 1\nmax_instances = 10",
    );
    let deps = deps(config(&toml), fake.clone(), depth(&d, 0)).await;
    let mut busy = record(&d, "i-0busy", "a10g", InstanceState::Ready);
    busy.endpoint = Some("http://fake.invalid/i-0busy".into());
    deps.store.put_instance(&busy).await.unwrap();
    fake.add_running(&d, "a10g", "i-0busy", busy.endpoint.as_deref());
    let now_ms = t0().timestamp_millis();
    assert!(
        deps.store
            .acquire_slot(&d, "i-0busy", 8, "req-1", now_ms, now_ms + 60_000)
            .await
            .unwrap()
    );

    // The group terminates it (a Spot interruption, say) while a request runs.
    let group = format!("scale0-{d}-a10g");
    let event = asg_event(
        "autoscaling-terminate-lifecycle-action.json",
        "t1",
        &group,
        "i-0busy",
    );
    let out = lifecycle::handle_json(event, &deps).await.unwrap();
    assert_eq!(out.action, "draining", "{out:?}");
    assert!(!out.lifecycle_completed);
    let r = deps.store.instance(&d, "i-0busy").await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Draining);
    assert!(
        fake.completed().is_empty(),
        "not while a request is in flight"
    );
    let pending = deps.store.lifecycle_actions(&d).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].token, "87654321-4321-4321-4321-210987654321");

    // A tick while it still serves: the replacement is asked for, the group's count
    // leaves the leaving instance out, and the action waits.
    let out = scaler::handle_json(tick("k1"), &deps).await.unwrap();
    assert_eq!(out.deployments[0].requested.len(), 1, "{out:?}");
    assert_eq!(fake.count(&d, "a10g"), Some(1));
    assert!(fake.completed().is_empty());

    // The request ends; the next tick stops the drained instance by completing its
    // lifecycle action (the group is already terminating it, so no second terminate).
    deps.store
        .release_slot(&d, "i-0busy", "req-1")
        .await
        .unwrap();
    let out = scaler::handle_json(tick("k2"), &deps).await.unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.applied[0].lifecycle_completed, ["i-0busy"], "{run:?}");
    assert_eq!(fake.completed(), ["i-0busy"]);
    assert!(fake.stopped().is_empty());
    assert!(deps.store.lifecycle_actions(&d).await.unwrap().is_empty());
    let r = deps.store.instance(&d, "i-0busy").await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Terminated);
}

#[tokio::test]
async fn an_idle_terminating_instance_is_released_at_once() {
    let d = unique("idle");
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 0)).await;
    deps.store
        .put_instance(&record(&d, "i-0idle", "a10g", InstanceState::Ready))
        .await
        .unwrap();
    let group = format!("scale0-{d}-a10g");
    let out = lifecycle::handle_json(
        asg_event(
            "autoscaling-terminate-lifecycle-action.json",
            "t",
            &group,
            "i-0idle",
        ),
        &deps,
    )
    .await
    .unwrap();
    assert_eq!(out.action, "terminated");
    assert!(out.lifecycle_completed);
    let r = deps.store.instance(&d, "i-0idle").await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Terminated);

    // The group's later "terminate successful" and EC2's "terminated" change nothing.
    let done = asg_event(
        "autoscaling-terminate-successful.json",
        "t2",
        &group,
        "i-0idle",
    );
    assert_eq!(
        lifecycle::handle_json(done, &deps).await.unwrap().action,
        "terminated"
    );
    let mut ec2 = fixture("ec2-instance-state-change.json");
    ec2["detail"]["instance-id"] = json!("i-0idle");
    ec2["detail"]["state"] = json!("terminated");
    let out = lifecycle::handle_json(ec2, &deps).await.unwrap();
    assert_eq!(
        (out.action.as_str(), out.deployment.as_deref()),
        ("terminated", Some(d.as_str()))
    );
}

#[tokio::test]
async fn a_failed_launch_makes_the_pool_unavailable_and_launches_elsewhere() {
    let d = unique("launchfail");
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&two_pools(&d)), fake.clone(), depth(&d, 19)).await;
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    assert_eq!(out.deployments[0].requested, ["spot-g1-0"]);
    assert_eq!(fake.count(&d, "spot"), Some(1));

    let mut event = asg_event(
        "autoscaling-launch-unsuccessful.json",
        "f1",
        &format!("scale0-{d}-spot"),
        "",
    );
    event["detail"]["StatusMessage"] = json!(
        "We currently do not have sufficient g5.xlarge capacity in the Availability Zone you \
         requested (us-west-2b). Launching EC2 instance failed."
    );
    let out = lifecycle::handle_json(event.clone(), &deps)
        .await
        .unwrap_err();
    // The documented event names the instance; one without is refused before any change.
    assert!(matches!(out, HandlerError::Malformed(_)), "{out}");
    event["detail"]["EC2InstanceId"] = json!("i-0nope");
    let out = lifecycle::handle_json(event, &deps).await.unwrap();
    assert_eq!(out.action, "launch-failed");
    assert!(
        out.detail.contains("(insufficient capacity)"),
        "{}",
        out.detail
    );
    assert!(
        out.detail.ends_with("dropped placeholder spot-g1-0"),
        "{}",
        out.detail
    );
    let run = out.scaler.unwrap();
    assert_eq!(run.requested, ["ondemand-g2-0"], "{:?}", run.reasons);
    assert_eq!(fake.count(&d, "spot"), Some(0));
    assert_eq!(fake.count(&d, "ondemand"), Some(1));
    assert!(
        deps.store
            .unavailable_pools(&d, t0())
            .await
            .unwrap()
            .contains_key("spot")
    );
}

#[tokio::test]
async fn events_of_other_groups_and_unknown_instances_are_ignored() {
    let d = unique("other");
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&one_pool(&d, "")), fake.clone(), depth(&d, 0)).await;
    // The documented fixtures name `my-asg` and `i-abcd1111`, which are not ours.
    let out = lifecycle::handle_json(fixture("autoscaling-launch-lifecycle-action.json"), &deps)
        .await
        .unwrap();
    assert_eq!(out.action, "ignored");
    assert_eq!(out.detail, "Auto Scaling group my-asg is not a scale0 pool");
    let out = lifecycle::handle_json(fixture("ec2-instance-state-change.json"), &deps)
        .await
        .unwrap();
    assert_eq!(out.action, "ignored");
    let mut other = fixture("autoscaling-launch-lifecycle-action.json");
    other["detail-type"] = json!("EC2 Auto Scaling Instance Refresh Started");
    assert_eq!(
        lifecycle::handle_json(other, &deps).await.unwrap().action,
        "ignored"
    );
    assert!(fake.completed().is_empty());
    assert!(deps.store.instances(&d).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_scheduler_invocation_wakes_its_deployment_and_a_repeat_changes_nothing() {
    let d = unique("sched");
    // A floor of 2 from 11:00 UTC every day; the clock reads 12:00.
    let schedules = r#"
        [[deployments.schedules]]
        name = "office-hours"
        expression = "cron(0 11 * * ? *)"
        min_instances = 2
    "#;
    let fake = Arc::new(FakeProvider::by_count());
    let deps = deps(config(&one_pool(&d, schedules)), fake.clone(), depth(&d, 0)).await;
    let mut event = fixture("scheduler-invocation.json");
    event["deployment"] = json!(d);
    let out = scheduler::handle_json(event.clone(), &deps).await.unwrap();
    assert_eq!(out.action, "office-hours");
    assert_eq!(out.scaler.trigger, "schedule office-hours");
    assert_eq!(out.scaler.requested.len(), 2, "{:?}", out.scaler.reasons);
    assert_eq!(fake.count(&d, "a10g"), Some(2));
    let again = scheduler::handle_json(event, &deps).await.unwrap();
    assert!(again.scaler.duplicate);
    assert_eq!(deps.store.load_policy(&d).await.unwrap().generation, 1);
}
