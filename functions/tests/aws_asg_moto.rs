//! The aws-asg provider, the handlers driving it, and SSM configuration against a moto
//! server (the local AWS API from `infra/local/python-env.sh`'s virtualenv), started
//! here on a free loopback port and reset before each test. SDK retries are off, so a
//! moto 500 comes back at once.
//!
//! moto's gaps, and what these tests do about them (DESIGN.md, "Facts checked"):
//! `CompleteLifecycleAction` answers HTTP 500 (not implemented), so the tests check
//! that a failed completion is kept with its error for the tick to retry; lifecycle
//! hooks are stored but not enforced (instances go straight to `InService`), so the
//! tests feed the lifecycle events themselves; a desired capacity above the group's
//! maximum is accepted, so the provider clamps to `MaxSize` itself.

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_sdk_autoscaling::config::{Credentials, Region};
use scale0_core::contract::InstanceState;
use scale0_functions::provider::asg::AsgProvider;
use scale0_functions::provider::{Provider, ProviderErrorKind};
use scale0_functions::{lifecycle, runtime, scaler};
use serde_json::json;
use support::*;

static MOTO: OnceLock<String> = OnceLock::new();
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The moto server's URL, starting it once for this test binary. A shell watchdog
/// stops it when this process ends.
fn moto_url() -> String {
    MOTO.get_or_init(|| {
        let root = format!("{}/..", env!("CARGO_MANIFEST_DIR"));
        let venv = Command::new(format!("{root}/infra/local/python-env.sh"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| panic!("these tests need moto: infra/local/python-env.sh failed"));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = format!(
            "\"{venv}/bin/moto_server\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; \
             while kill -0 {} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null",
            std::process::id()
        );
        // The watchdog outlives this call on purpose; it exits with this process.
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .expect("sh");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        format!("http://127.0.0.1:{port}")
    })
    .clone()
}

/// Serialize the tests (they share the server) and start each from an empty moto.
async fn fresh_moto() -> (tokio::sync::MutexGuard<'static, ()>, aws_config::SdkConfig) {
    let guard = LOCK.lock().await;
    let url = tokio::task::spawn_blocking(moto_url).await.unwrap();
    reqwest::Client::new()
        .post(format!("{url}/moto-api/reset"))
        .send()
        .await
        .expect("moto reset");
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        .retry_config(RetryConfig::disabled())
        .load()
        .await;
    (guard, sdk)
}

async fn create_group(p: &AsgProvider, name: &str, max: i32) {
    let c = p.client();
    c.create_launch_configuration()
        .launch_configuration_name(format!("{name}-lc"))
        .image_id("ami-12c6146b")
        .instance_type("g5.xlarge")
        .send()
        .await
        .unwrap();
    c.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(format!("{name}-lc"))
        .min_size(0)
        .max_size(max)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .new_instances_protected_from_scale_in(true)
        .send()
        .await
        .unwrap();
}

fn aws_config_toml(d: &str) -> String {
    format!("{}\n[provider]\nkind = \"aws-asg\"\n", one_pool(d, ""))
}

#[tokio::test]
async fn the_asg_provider_sets_counts_lists_and_terminates_with_decrement_on_moto() {
    let (_g, sdk) = fresh_moto().await;
    let d = unique("asg");
    let cfg = config(&aws_config_toml(&d));
    let provider = AsgProvider::new(&sdk, &cfg.provider.aws_asg);
    let spec = cfg.deployment(&d).unwrap();
    let pool = &spec.pools[0];
    let group = pool.asg_name(&d);
    create_group(&provider, &group, 5).await;

    assert_eq!(provider.ensure_count(spec, pool, 2).await.unwrap(), 2);
    let view = provider.describe(&group).await.unwrap();
    assert_eq!((view.desired, view.max_size), (2, 5));
    let listed = provider.list(spec, pool).await.unwrap();
    assert_eq!(listed.len(), 2);
    let first = listed[0].id.clone();
    assert_eq!(
        listed[0].endpoint.as_deref(),
        Some(format!("http://{first}.us-east-1.compute.internal:8000").as_str())
    );
    // Setting the same count again sends nothing and changes nothing.
    assert_eq!(provider.ensure_count(spec, pool, 2).await.unwrap(), 2);

    // Targeted scale-in: that instance goes, and the desired count with it.
    let mut r = record(&d, &first, "a10g", InstanceState::Draining);
    r.endpoint = listed[0].endpoint.clone();
    provider.stop(spec, &r).await.unwrap();
    let view = provider.describe(&group).await.unwrap();
    assert_eq!(view.desired, 1);
    assert!(
        view.instances
            .iter()
            .all(|i| i.id != first
                || i.status == scale0_functions::provider::ProviderStatus::Leaving)
    );
    // Stopping it again: already gone is success.
    provider.stop(spec, &r).await.unwrap();

    provider.install_lifecycle_hooks(spec, pool).await.unwrap();
    let hooks = provider
        .client()
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(&group)
        .send()
        .await
        .unwrap();
    let mut names: Vec<&str> = hooks
        .lifecycle_hooks()
        .iter()
        .filter_map(|h| h.lifecycle_hook_name())
        .collect();
    names.sort();
    assert_eq!(names, ["scale0-launching", "scale0-terminating"]);
}

#[tokio::test]
async fn a_low_group_max_is_clamped_and_a_missing_group_is_not_found() {
    let (_g, sdk) = fresh_moto().await;
    let d = unique("asgmax");
    let cfg = config(&aws_config_toml(&d));
    let provider = AsgProvider::new(&sdk, &cfg.provider.aws_asg);
    let spec = cfg.deployment(&d).unwrap();
    let pool = &spec.pools[0];
    // moto would accept 3 on a group of max 1; the provider never asks.
    create_group(&provider, &pool.asg_name(&d), 1).await;
    assert_eq!(provider.ensure_count(spec, pool, 3).await.unwrap(), 1);
    assert_eq!(
        provider.describe(&pool.asg_name(&d)).await.unwrap().desired,
        1
    );

    let other = unique("asgnone");
    let cfg2 = config(&aws_config_toml(&other));
    let spec2 = cfg2.deployment(&other).unwrap();
    let err = provider.list(spec2, &spec2.pools[0]).await.unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::NotFound, "{err}");
    let err = provider
        .ensure_count(spec2, &spec2.pools[0], 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind, ProviderErrorKind::NotFound, "{err}");
    assert!(err.kind.makes_pool_unavailable());
}

#[tokio::test]
async fn the_handlers_drive_an_auto_scaling_group_on_moto() {
    let (_g, sdk) = fresh_moto().await;
    let d = unique("asgflow");
    let cfg = config(&aws_config_toml(&d));
    let provider = Arc::new(AsgProvider::new(&sdk, &cfg.provider.aws_asg));
    let group = cfg.deployment(&d).unwrap().pools[0].asg_name(&d);
    create_group(&provider, &group, 5).await;
    let deps = deps(cfg, provider.clone(), depth(&d, 19)).await;

    // A backlog: one placeholder, and the group's desired capacity follows it.
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    assert_eq!(out.deployments[0].requested, ["a10g-g1-0"]);
    assert_eq!(out.deployments[0].applied[0].counts["a10g"], 1);
    let view = provider.describe(&group).await.unwrap();
    assert_eq!(view.desired, 1);
    let instance = view.instances[0].id.clone();

    // Its launching lifecycle action registers it in the placeholder's place. moto
    // answers CompleteLifecycleAction with HTTP 500: the action is kept for a retry.
    let mut launch = fixture("autoscaling-launch-lifecycle-action.json");
    launch["detail"]["AutoScalingGroupName"] = json!(group);
    launch["detail"]["EC2InstanceId"] = json!(instance);
    let out = lifecycle::handle_json(launch, &deps).await.unwrap();
    assert_eq!(out.action, "adopted");
    assert_eq!(
        out.detail,
        format!("{instance} replaces placeholder a10g-g1-0")
    );
    assert!(!out.lifecycle_completed);
    let why = out
        .lifecycle_error
        .expect("moto cannot complete lifecycle actions");
    assert!(
        why.contains("CompleteLifecycleAction") && why.contains("500"),
        "{why}"
    );
    let pending = deps.store.lifecycle_actions(&d).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].last_error.as_deref(), Some(why.as_str()));
    let r = deps.store.instance(&d, &instance).await.unwrap().unwrap();
    assert_eq!(
        r.endpoint,
        Some(format!("http://{instance}.us-east-1.compute.internal:8000"))
    );

    // The queue empties and the instance, drained, is terminated with decrement.
    let deps = deps.clone();
    let empty = {
        let mut d2 = deps.clone();
        d2.queue = depth(&d, 0);
        d2
    };
    deps.store
        .transition(&d, &instance, &[], InstanceState::Draining, t0(), None)
        .await
        .unwrap();
    let out = scaler::handle_json(tick("drain"), &empty).await.unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.terminated, [instance.as_str()], "{:?}", run.reasons);
    assert_eq!(run.applied[0].stopped, [instance.as_str()]);
    // The tick's reconcile retried the launching action and moto failed it again.
    assert!(run.reconcile.as_ref().unwrap().errors[0].contains("CompleteLifecycleAction"));
    let r = deps.store.instance(&d, &instance).await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Terminated);
    // The group no longer runs it. (The stabilization window still holds the earlier
    // recommendation of one instance, so the decision asked for a fresh one: the
    // group's desired count is the registry's.)
    let view = provider.describe(&group).await.unwrap();
    assert!(view.instances.iter().all(|i| i.id != instance));
    let live_now = live(&deps.store.instances(&d).await.unwrap()).len() as u32;
    assert_eq!(
        (view.desired, live_now),
        (run.requested.len() as u32, live_now)
    );
}

#[tokio::test]
async fn configuration_loads_from_an_ssm_parameter_on_moto() {
    let (_g, sdk) = fresh_moto().await;
    let d = unique("ssm");
    let cfg = config(&one_pool(&d, ""));
    let json = serde_json::to_string(&cfg).unwrap();
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/scale0/config")
        .value(&json)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let text = runtime::ssm_parameter(&sdk, "/scale0/config")
        .await
        .unwrap();
    assert_eq!(scale0_core::config::Config::load(&text).unwrap(), cfg);
    let err = runtime::ssm_parameter(&sdk, "/scale0/missing")
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot read SSM parameter /scale0/missing"),
        "{err:#}"
    );
}

/// A Spot pool (cheapest) and an on-demand pool, each its own group on moto.
fn spot_config_toml(d: &str) -> String {
    format!(
        r#"
        [[deployments]]
        name = "{d}"
        [[deployments.pools]]
        name = "spot"
        capacity_type = "spot"
        max_instances = 5
        slots = 8
        price_per_hour_usd = 0.35
        boot_time = "90s"
        [[deployments.pools]]
        name = "ondemand"
        max_instances = 5
        slots = 8
        price_per_hour_usd = 1.0
        boot_time = "90s"
        [provider]
        kind = "aws-asg"
        "#
    )
}

async fn adopt(deps: &scale0_functions::Deps, group: &str, instance: &str) {
    let mut e = fixture("autoscaling-launch-successful.json");
    e["id"] = json!(format!("launch-{instance}"));
    e["detail"]["AutoScalingGroupName"] = json!(group);
    e["detail"]["EC2InstanceId"] = json!(instance);
    let out = lifecycle::handle_json(e, deps).await.unwrap();
    assert_eq!(out.action, "adopted", "{out:?}");
}

/// The documented Spot events (`tests/fixtures/`) against Redis and the aws-asg
/// provider. What moto does not model, and how the test stands in: moto sends no
/// EventBridge events (the test feeds the documented JSON for its instances); a
/// group's instances are all alike, with no Spot market, no capacity type and no mixed
/// instances policy (scale0 uses one group per pool, so it needs none), so "Spot
/// capacity is short" is a Spot group whose `MaxSize` is reached — which the provider
/// reports as a quota shortfall, the same path an `InsufficientInstanceCapacity`
/// launch failure takes.
#[tokio::test]
async fn spot_warnings_and_rebalance_recommendations_drain_and_replace_on_moto() {
    let (_g, sdk) = fresh_moto().await;
    let d = unique("spotev");
    let cfg = config(&spot_config_toml(&d));
    let provider = Arc::new(AsgProvider::new(&sdk, &cfg.provider.aws_asg));
    let spec = cfg.deployment(&d).unwrap().clone();
    let spot_group = spec.pools[0].asg_name(&d);
    let od_group = spec.pools[1].asg_name(&d);
    // The Spot group holds one instance: a second is "capacity short".
    create_group(&provider, &spot_group, 1).await;
    create_group(&provider, &od_group, 5).await;
    let deps = deps(cfg, provider.clone(), depth(&d, 7)).await;

    // t=0: a backlog of 7 wants one instance: Spot is cheapest per slot.
    let out = scaler::handle_json(json!({"wake": {"trigger": "test"}}), &deps)
        .await
        .unwrap();
    let run = &out.deployments[0];
    assert_eq!(run.requested, ["spot-g1-0"], "{:?}", run.reasons);
    assert!(
        run.reasons
            .iter()
            .any(|r| r.starts_with("pool spot chosen: spot at $0.3500/h")),
        "{:?}",
        run.reasons
    );
    let first = provider.describe(&spot_group).await.unwrap().instances[0]
        .id
        .clone();
    adopt(&deps, &spot_group, &first).await;

    // A rebalance recommendation: nothing in flight, so the instance stops now, and a
    // replacement is launched in the same call (Spot again: recommendations do not
    // count as interruptions).
    let mut rebalance = fixture("ec2-instance-rebalance-recommendation.json");
    rebalance["detail"]["instance-id"] = json!(first);
    let out = lifecycle::handle_json(rebalance.clone(), &deps)
        .await
        .unwrap();
    assert_eq!(out.action, "draining", "{out:?}");
    let run = out.scaler.as_ref().unwrap();
    assert_eq!(run.terminated, [first.as_str()], "{:?}", run.reasons);
    assert_eq!(run.requested.len(), 1);
    assert!(run.requested[0].starts_with("spot-"), "{:?}", run.requested);
    assert_eq!(
        deps.store
            .interruptions_since(&d, "spot", t0() - chrono::TimeDelta::hours(1))
            .await
            .unwrap(),
        0
    );
    // The same event again changes nothing.
    let again = lifecycle::handle_json(rebalance, &deps).await.unwrap();
    assert_eq!(again.action, "duplicate");
    let view = provider.describe(&spot_group).await.unwrap();
    assert_eq!(view.desired, 1);
    let second = view
        .instances
        .iter()
        .find(|i| i.id != first)
        .expect("the group launched the replacement")
        .id
        .clone();
    adopt(&deps, &spot_group, &second).await;
    deps.store
        .transition(&d, &second, &[], InstanceState::Ready, t0(), None)
        .await
        .unwrap();
    // A request in flight on it.
    let now_ms = t0().timestamp_millis();
    assert!(
        deps.store
            .acquire_slot(&d, &second, 8, "req-1", now_ms, now_ms + 60_000)
            .await
            .unwrap()
    );

    // The two-minute warning: it drains but, being ready, keeps its reclaim time (the
    // warning's time plus two minutes) and takes requests until 30 s before it; the
    // warning is counted, and the replacement cannot go to Spot (the group is full), so
    // the scaler decides again at once: on-demand.
    let mut warning = fixture("ec2-spot-interruption-warning.json");
    warning["detail"]["instance-id"] = json!(second);
    let warned_at: chrono::DateTime<chrono::Utc> =
        warning["time"].as_str().unwrap().parse().unwrap();
    let out = lifecycle::handle_json(warning, &deps).await.unwrap();
    assert_eq!(out.action, "draining", "{out:?}");
    let r = deps.store.instance(&d, &second).await.unwrap().unwrap();
    assert_eq!(r.state, InstanceState::Draining);
    assert_eq!(
        r.reclaim_at,
        Some(warned_at + chrono::TimeDelta::minutes(2))
    );
    assert!(r.takes_requests(warned_at + chrono::TimeDelta::seconds(89)));
    assert!(!r.takes_requests(warned_at + chrono::TimeDelta::seconds(90)));
    assert_eq!(
        deps.store
            .interruptions_since(&d, "spot", t0() - chrono::TimeDelta::hours(1))
            .await
            .unwrap(),
        1
    );
    let run = out.scaler.as_ref().unwrap();
    assert!(
        !run.terminated.contains(&second),
        "stopped while it serves: {:?}",
        run.reasons
    );
    assert_eq!(run.rounds, 2, "{:?}", run.reasons);
    assert!(
        run.applied[0].unavailable.contains_key("spot"),
        "{:?}",
        run.applied
    );
    assert!(
        run.requested.iter().any(|id| id.starts_with("ondemand-")),
        "{:?} {:?}",
        run.requested,
        run.reasons
    );
    assert!(
        run.reasons
            .iter()
            .any(|r| r.contains("pool spot: 1 interruptions")),
        "{:?}",
        run.reasons
    );
    assert_eq!(provider.describe(&od_group).await.unwrap().desired, 1);
}
