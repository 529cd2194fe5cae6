//! Every validation block of module `config` against the Rust loader: each case breaks
//! one rule in the complete example's configuration, `Config::validate` must refuse it
//! naming the field, and the same configuration, rendered, must fail the module's plan
//! on the same variable (`terraform test`, one run per case, no provider needed). A
//! last group covers rules only Terraform has (the deployment target and AWS names),
//! each said why.
//!
//! Without a terraform binary the Terraform half is skipped with the reason printed;
//! the Rust half always runs.

mod support;

use scale0_core::config::{BudgetPeriod, CapacityType, Config, ProviderKind};
use scale0_core::duration::HumanDuration;
use serde_json::Value;

type Mutation = fn(&mut Config);

/// (case, mutation, the field the Rust error names, the Terraform variable that fails)
const CASES: &[(&str, Mutation, &str, &str)] = &[
    (
        "deployment_name_chars",
        |c| c.deployments[0].name = "Chat!".into(),
        "deployments[Chat!].name",
        "deployments",
    ),
    (
        "deployment_name_too_long",
        |c| c.deployments[0].name = "d".repeat(65),
        ".name",
        "deployments",
    ),
    (
        "no_deployment",
        |c| c.deployments.clear(),
        "deployments",
        "deployments",
    ),
    (
        "no_pool",
        |c| c.deployments[0].pools.clear(),
        "deployments[chat].pools",
        "deployments",
    ),
    (
        "pool_name_chars",
        |c| c.deployments[0].pools[0].name = "A10G".into(),
        "pools[A10G].name",
        "deployments",
    ),
    (
        "pool_min_above_max",
        |c| c.deployments[0].pools[0].min_instances = 9,
        "pools[a10g-spot].min_instances",
        "deployments",
    ),
    (
        "pool_max_zero",
        |c| {
            let p = &mut c.deployments[0].pools[1];
            p.max_instances = 0;
        },
        "pools[l4-spot].max_instances",
        "deployments",
    ),
    (
        "boot_time_zero",
        |c| c.deployments[0].pools[0].boot_time = HumanDuration::from_secs(0),
        "pools[a10g-spot].boot_time",
        "deployments",
    ),
    (
        "drain_timeout_zero",
        |c| c.deployments[0].policy.drain_timeout = HumanDuration::from_secs(0),
        "policy.drain_timeout",
        "deployments",
    ),
    (
        "asg_name_chars",
        |c| c.deployments[0].pools[0].asg_name = Some("scale0 chat".into()),
        "pools[a10g-spot].asg_name",
        "deployments",
    ),
    (
        "asg_name_twice",
        |c| {
            c.deployments[0].pools[0].asg_name = Some("gpu".into());
            c.deployments[0].pools[1].asg_name = Some("gpu".into());
        },
        "asg_name",
        "deployments",
    ),
    (
        "warm_pool_on_spot",
        |c| {
            let p = &mut c.deployments[0].pools[0];
            p.warm_pool_size = 1;
            p.warm_boot_time = Some(HumanDuration::from_secs(30));
            p.warm_price_per_hour_usd = Some(0.01);
        },
        "pools[a10g-spot].warm_pool_size",
        "deployments",
    ),
    (
        "warm_pool_above_max",
        |c| c.deployments[0].pools[2].warm_pool_size = 5,
        "pools[a10g-on-demand].warm_pool_size",
        "deployments",
    ),
    (
        "on_demand_base_above_on_demand_max",
        |c| c.deployments[0].on_demand_base = 5,
        "deployments[chat].on_demand_base",
        "deployments",
    ),
    (
        "schedule_name_empty",
        |c| c.deployments[0].schedules[0].name = String::new(),
        "schedules[].name",
        "deployments",
    ),
    (
        "cron_five_fields",
        |c| c.deployments[0].schedules[0].expression = "cron(0 9 * * MON-FRI)".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "cron_bad_day_name",
        |c| c.deployments[0].schedules[0].expression = "cron(0 9 ? * MOX-FRI *)".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "rate_plural_for_one",
        |c| c.deployments[0].schedules[0].expression = "rate(1 minutes)".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "rate_unknown_unit",
        |c| c.deployments[0].schedules[0].expression = "rate(2 weeks)".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "at_without_t",
        |c| c.deployments[0].schedules[0].expression = "at(2026-12-24 18:00:00)".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "not_an_expression",
        |c| c.deployments[0].schedules[0].expression = "every 5m".into(),
        "schedules[office-hours-open].expression",
        "deployments",
    ),
    (
        "schedule_time_zone",
        |c| c.deployments[0].schedules[0].time_zone = "Europe/Londn".into(),
        "schedules[office-hours-open].time_zone",
        "deployments",
    ),
    (
        "schedule_time_zone_case",
        |c| c.deployments[0].schedules[0].time_zone = "europe/london".into(),
        "schedules[office-hours-open].time_zone",
        "deployments",
    ),
    (
        "schedule_min_above_max",
        |c| {
            let s = &mut c.deployments[0].schedules[0];
            s.min_instances = Some(3);
            s.max_instances = Some(1);
        },
        "schedules[office-hours-open].min_instances",
        "deployments",
    ),
    (
        "schedule_sets_nothing",
        |c| c.deployments[0].schedules[1].min_instances = None,
        "schedules[office-hours-close]",
        "deployments",
    ),
    (
        "schedule_floor_above_pools",
        |c| c.deployments[0].schedules[0].min_instances = Some(100),
        "schedules[office-hours-open].min_instances",
        "deployments",
    ),
    (
        "schedule_end_before_start",
        |c| {
            let s = &mut c.deployments[0].schedules[0];
            s.start = Some("2027-01-01T00:00:00Z".parse().unwrap());
            s.end = Some("2026-01-01T00:00:00Z".parse().unwrap());
        },
        "schedules[office-hours-open].end",
        "deployments",
    ),
    (
        "budget_name_chars",
        |c| c.budgets[0].name = "GPU monthly".into(),
        "budgets[GPU monthly].name",
        "budgets",
    ),
    (
        "rolling_without_window",
        |c| c.budgets[1].window = None,
        "budgets[all-rolling-week].window",
        "budgets",
    ),
    (
        "window_on_monthly",
        |c| c.budgets[0].window = Some(HumanDuration::from_secs(86_400)),
        "budgets[gpu-monthly].window",
        "budgets",
    ),
    (
        "window_too_short",
        |c| c.budgets[1].window = Some(HumanDuration::from_secs(1800)),
        "budgets[all-rolling-week].window",
        "budgets",
    ),
    (
        "window_too_long",
        |c| c.budgets[1].window = Some(HumanDuration::from_secs(32 * 86_400)),
        "budgets[all-rolling-week].window",
        "budgets",
    ),
    (
        "budget_time_zone",
        |c| c.budgets[0].time_zone = "Mars/Olympus".into(),
        "budgets[gpu-monthly].time_zone",
        "budgets",
    ),
    (
        "budget_limit_zero",
        |c| c.budgets[0].limit_usd = 0.0,
        "budgets[gpu-monthly].limit_usd",
        "budgets",
    ),
    (
        "threshold_above_one",
        |c| c.budgets[0].alert_thresholds = vec![0.5, 1.5],
        "budgets[gpu-monthly].alert_thresholds",
        "budgets",
    ),
    (
        "threshold_twice",
        |c| c.budgets[0].alert_thresholds = vec![0.5, 0.5],
        "budgets[gpu-monthly].alert_thresholds",
        "budgets",
    ),
    (
        "budget_unknown_deployment",
        |c| c.budgets[0].deployments = Some(vec!["nope".into()]),
        "budgets[gpu-monthly].deployments",
        "budgets",
    ),
    (
        "budget_no_deployment",
        |c| c.budgets[0].deployments = Some(vec![]),
        "budgets[gpu-monthly].deployments",
        "budgets",
    ),
    (
        "quota_code_lower_case",
        |c| c.quotas[0].code = "L-db2e81ba".into(),
        "quotas[running-on-demand-g-vt].code",
        "quotas",
    ),
    (
        "quota_code_short",
        |c| c.quotas[0].code = "L-DB2E81".into(),
        "quotas[running-on-demand-g-vt].code",
        "quotas",
    ),
    (
        "quota_name_chars",
        |c| c.quotas[0].name = "On Demand".into(),
        "quotas[On Demand].name",
        "quotas",
    ),
    (
        "quota_vcpus_zero",
        |c| c.quotas[0].vcpus = 0,
        "quotas[running-on-demand-g-vt].vcpus",
        "quotas",
    ),
    (
        "quota_no_pool",
        |c| c.quotas[0].pools.clear(),
        "quotas[running-on-demand-g-vt].pools",
        "quotas",
    ),
    (
        "quota_unknown_pool",
        |c| c.quotas[0].pools = vec!["chat/nope".into()],
        "quotas[running-on-demand-g-vt].pools",
        "quotas",
    ),
    (
        "quota_pool_without_slash",
        |c| c.quotas[0].pools = vec!["chat".into()],
        "quotas[running-on-demand-g-vt].pools",
        "quotas",
    ),
    (
        "quota_pool_without_vcpus",
        |c| c.deployments[0].pools[2].vcpus_per_instance = None,
        "pools[a10g-on-demand].vcpus_per_instance",
        "quotas",
    ),
];

/// Rules only the Terraform side has, each with why the Rust loader cannot have it.
const TERRAFORM_ONLY: &[(&str, Mutation, &str, &str)] = &[
    // `local` is a valid configuration; it just is not one these modules can deploy.
    (
        "provider_local",
        |c| c.provider.kind = ProviderKind::Local,
        "provider_kind",
        "the modules deploy aws-asg",
    ),
    // The Rust loader treats instance_type as informational (local pools have none).
    (
        "pool_without_instance_type",
        |c| c.deployments[0].pools[0].instance_type = None,
        "deployments",
        "a launch template needs a type",
    ),
    // `<deployment>-<action>` is the Scheduler's schedule name: [0-9A-Za-z-_.]{1,64}.
    (
        "schedule_name_space",
        |c| c.deployments[0].schedules[0].name = "office hours".into(),
        "deployments",
        "Scheduler names",
    ),
];

fn complete() -> (Config, String) {
    let path = support::terraform_dir().join("examples/complete/scale0.toml");
    let text = std::fs::read_to_string(path).unwrap();
    (Config::load(&text).unwrap(), text)
}

/// HCL of one `run` block planning module `config` with `rendered`.
fn run_block(name: &str, rendered: &Value, toml: &str, expect_failure: Option<&str>) -> String {
    // JSON is a subset of HCL's expression syntax, so values are written as JSON.
    let mut s = format!("run \"{name}\" {{\n  command = plan\n  variables {{\n");
    s += &format!(
        "    config_toml = {}\n",
        serde_json::to_string(toml).unwrap()
    );
    for key in [
        "config_sha256",
        "provider_kind",
        "deployments",
        "budgets",
        "quotas",
    ] {
        s += &format!("    {key} = {}\n", rendered[key]);
    }
    s += "  }\n";
    if let Some(var) = expect_failure {
        s += &format!("  expect_failures = [var.{var}]\n");
    }
    s + "}\n\n"
}

#[test]
fn both_sides_refuse_the_same_configurations() {
    let (base, toml) = complete();
    assert!(base.validate().is_ok());
    assert_eq!(
        base.deployments[0].pools[0].capacity_type,
        CapacityType::Spot
    );
    assert_eq!(base.budgets[1].period, BudgetPeriod::Rolling);
    let source = toml.as_bytes();

    let mut tests = String::new();
    // The example itself passes every rule, and the outputs the other modules read are
    // what the configuration says.
    tests += &run_block("complete_example", &scale0_terraform::render(&base, source), &toml, None)
        .replace(
            "}\n\n",
            "  assert {\n    condition     = output.pools[\"chat/a10g-spot\"].terminating_heartbeat_seconds == 180 && length(output.schedules) == 2 && keys(output.aws_budgets) == [\"gpu-monthly\"] && output.aws_budgets[\"gpu-monthly\"].time_unit == \"MONTHLY\"\n    error_message = \"outputs differ from the configuration\"\n  }\n}\n\n",
        );
    // A TOML edited after rendering.
    let stale = format!("{toml}\n# edited\n");
    tests += &run_block(
        "stale_rendering",
        &scale0_terraform::render(&base, source),
        &stale,
        Some("config_sha256"),
    );

    let mut rust_failures = Vec::new();
    for (name, mutate, field, var) in CASES {
        let mut config = base.clone();
        mutate(&mut config);
        match config.validate() {
            Ok(()) => rust_failures.push(format!("{name}: the Rust loader accepts it")),
            Err(e) if !e.0.iter().any(|f| f.field.contains(field)) => {
                rust_failures.push(format!("{name}: no error names `{field}`: {e}"))
            }
            Err(_) => {}
        }
        tests += &run_block(
            name,
            &scale0_terraform::render(&config, source),
            &toml,
            Some(var),
        );
    }
    for (name, mutate, var, _why) in TERRAFORM_ONLY {
        let mut config = base.clone();
        mutate(&mut config);
        tests += &run_block(
            name,
            &scale0_terraform::render(&config, source),
            &toml,
            Some(var),
        );
    }
    assert!(rust_failures.is_empty(), "{}", rust_failures.join("\n"));

    let bin = match support::terraform() {
        Ok(bin) => bin,
        Err(reason) => {
            println!("skipped the Terraform half: {reason}");
            return;
        }
    };
    let dir = support::scratch("validation");
    support::copy_tree(&support::terraform_dir().join("modules/config"), &dir);
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    std::fs::write(dir.join("tests/cases.tftest.hcl"), &tests).unwrap();
    let init = support::run(&bin, &dir, None, &["init", "-input=false", "-no-color"]);
    assert!(init.status.success(), "{}", support::text(&init));
    let out = support::run(&bin, &dir, None, &["test", "-no-color"]);
    let text = support::text(&out);
    let expected = 2 + CASES.len() + TERRAFORM_ONLY.len();
    let passed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("run \"") && l.ends_with("... pass"))
        .collect();
    assert!(
        out.status.success() && passed.len() == expected,
        "{} of {expected} runs passed:\n{text}",
        passed.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
    println!("{expected} terraform test runs of module config pass");
}
