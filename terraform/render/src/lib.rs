//! The scale0 configuration is the one source of truth of a deployment to AWS; this
//! crate renders it into what the Terraform modules read (`scale0 terraform-vars`), so
//! no pool, schedule, budget or quota is ever written twice.
//!
//! ```text
//! scale0.toml ──render()──▶ scale0.rendered.json ──▶ terraform/modules/config
//!      │                        (config_sha256)        (validation, reshaping)
//!      └──────── file() ──────────────────────────────▶ sha256 must match
//! ```
//!
//! The rendered JSON carries the sha256 of the TOML it came from; module `config`
//! refuses a plan where the TOML it is given (and stores in SSM) hashes differently, so
//! a TOML edited without rendering again cannot be deployed. [`diff`] compares two
//! renderings by path, which is how the tests keep the committed examples in step.
//!
//! The tests of this crate also check the Terraform itself (`tests/`): every `.tf`
//! parses, every variable is typed and described, the validation blocks refuse what
//! the Rust loader refuses, IAM documents have no wildcard action, and the README's
//! module tables match the variables and outputs.

use chrono::SecondsFormat;
use scale0_core::config::{Config, ProviderKind};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// sha256 of the configuration file's bytes, lower-case hex (Terraform's `sha256()`
/// and `filesha256()` of the same text).
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The Terraform inputs of `config`, whose text (the file as written) is `source`.
///
/// Durations are rendered as scale0 writes them (`"1m30s"`): module `config` checks
/// and converts them, so its validation sees what a person wrote. Nothing here
/// validates: a broken configuration renders as it is (the tests rely on that to
/// offer both sides the same broken input); the CLI loads and validates first.
pub fn render(config: &Config, source: &[u8]) -> Value {
    let deployments: Map<String, Value> = config
        .deployments
        .iter()
        .map(|d| {
            let pools: Map<String, Value> = d
                .pools
                .iter()
                .map(|p| {
                    let pool = json!({
                        "asg_name": p.asg_name(&d.name),
                        "instance_type": p.instance_type,
                        "capacity_type": p.capacity_type.to_string(),
                        "min_instances": p.min_instances,
                        "max_instances": p.max_instances,
                        "vcpus_per_instance": p.vcpus_per_instance,
                        "warm_pool_size": p.warm_pool_size,
                        "boot_time": p.boot_time.to_string(),
                    });
                    (p.name.clone(), pool)
                })
                .collect();
            let schedules: Map<String, Value> = d
                .schedules
                .iter()
                .map(|s| {
                    let instant = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                    };
                    let schedule = json!({
                        "expression": s.expression,
                        "time_zone": s.time_zone,
                        "min_instances": s.min_instances,
                        "max_instances": s.max_instances,
                        "start": instant(s.start),
                        "end": instant(s.end),
                    });
                    (s.name.clone(), schedule)
                })
                .collect();
            let deployment = json!({
                "drain_timeout": d.policy.drain_timeout.to_string(),
                "on_demand_base": d.on_demand_base,
                "pools": pools,
                "schedules": schedules,
            });
            (d.name.clone(), deployment)
        })
        .collect();
    let budgets: Map<String, Value> = config
        .budgets
        .iter()
        .map(|b| {
            let budget = json!({
                "deployments": b.deployments,
                "period": b.period.to_string(),
                "window": b.window.map(|w| w.to_string()),
                "time_zone": b.time_zone,
                "limit_usd": b.limit_usd,
                "alert_thresholds": b.alert_thresholds,
            });
            (b.name.clone(), budget)
        })
        .collect();
    let quotas: Map<String, Value> = config
        .quotas
        .iter()
        .map(|q| {
            let quota = json!({ "code": q.code, "vcpus": q.vcpus, "pools": q.pools });
            (q.name.clone(), quota)
        })
        .collect();
    json!({
        "config_sha256": sha256_hex(source),
        "provider_kind": match config.provider.kind {
            ProviderKind::Local => "local",
            ProviderKind::AwsAsg => "aws-asg",
        },
        "deployments": deployments,
        "budgets": budgets,
        "quotas": quotas,
    })
}

/// The rendering as a file: pretty JSON and a final newline.
pub fn to_file_text(rendered: &Value) -> String {
    let mut text = serde_json::to_string_pretty(rendered).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// Every difference between two renderings, by path: what exists on one side only
/// (`deployments.chat.pools.a10g: only in the configuration`) and values that differ.
pub fn diff(expected: &Value, actual: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("", expected, actual, &mut out);
    out
}

fn walk(at: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    let path = |key: &str| {
        if at.is_empty() {
            key.to_string()
        } else {
            format!("{at}.{key}")
        }
    };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, ev) in e {
                match a.get(key) {
                    Some(av) => walk(&path(key), ev, av, out),
                    None => out.push(format!("{}: only in the configuration", path(key))),
                }
            }
            for key in a.keys().filter(|k| !e.contains_key(*k)) {
                out.push(format!("{}: only in the rendered file", path(key)));
            }
        }
        (e, a) if e != a => out.push(format!(
            "{}: the configuration says {e}, the rendered file {a}",
            if at.is_empty() { "(root)" } else { at }
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sha256_is_terraforms() {
        // The FIPS 180-2 test vector; Terraform's sha256("abc") prints the same.
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn diff_names_what_is_missing_and_what_differs() {
        let expected =
            json!({"deployments": {"chat": {"pools": {"a": {"max_instances": 2}, "b": {}}}}});
        let actual =
            json!({"deployments": {"chat": {"pools": {"a": {"max_instances": 3}, "c": {}}}}});
        assert_eq!(
            diff(&expected, &actual),
            vec![
                "deployments.chat.pools.a.max_instances: the configuration says 2, the rendered file 3",
                "deployments.chat.pools.b: only in the configuration",
                "deployments.chat.pools.c: only in the rendered file",
            ]
        );
        assert!(diff(&expected, &expected).is_empty());
    }
}
