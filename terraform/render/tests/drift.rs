//! The committed rendering of each example is the rendering of its configuration: a
//! pool, schedule, budget or quota on one side only, or a value that differs, fails
//! here with its path. Module `config` refuses the same drift at plan time through the
//! sha256; this test catches it before anyone plans.
//!
//! `SCALE0_BLESS=1` rewrites the rendered files (as `scale0 terraform-vars` would).

use std::path::{Path, PathBuf};

use scale0_core::config::Config;

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("scale0.toml").exists())
        .collect();
    out.sort();
    out
}

#[test]
fn every_example_rendering_matches_its_configuration() {
    let examples = examples();
    assert!(examples.len() >= 2, "examples: {examples:?}");
    let mut failures = Vec::new();
    for dir in examples {
        let source = std::fs::read(dir.join("scale0.toml")).unwrap();
        let config = Config::load_bytes(&source)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.join("scale0.toml").display()));
        let rendered = scale0_terraform::render(&config, &source);
        let path = dir.join("scale0.rendered.json");
        if std::env::var_os("SCALE0_BLESS").is_some() {
            std::fs::write(&path, scale0_terraform::to_file_text(&rendered)).unwrap();
            continue;
        }
        let committed: serde_json::Value = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).unwrap(),
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        for d in scale0_terraform::diff(&rendered, &committed) {
            failures.push(format!("{}: {d}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "rendered files out of date (run `scale0 terraform-vars <dir>/scale0.toml -o <dir>/scale0.rendered.json`):\n{}",
        failures.join("\n")
    );
}

/// A drift case: what it is, how it changes the rendering, what the diff must name.
type DriftCase = (&'static str, fn(&mut serde_json::Value), &'static str);

/// The drift the test exists for, each kind once, on the complete example: the diff
/// names it.
#[test]
fn drift_of_each_kind_is_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/complete");
    let source = std::fs::read(dir.join("scale0.toml")).unwrap();
    let config = Config::load_bytes(&source).unwrap();
    let rendered = scale0_terraform::render(&config, &source);
    let cases: [DriftCase; 5] = [
        (
            "a pool only in the configuration",
            |v| {
                v["deployments"]["chat"]["pools"]
                    .as_object_mut()
                    .unwrap()
                    .remove("l4-spot");
            },
            "deployments.chat.pools.l4-spot: only in the configuration",
        ),
        (
            "a schedule only in Terraform",
            |v| {
                v["deployments"]["chat"]["schedules"]["lunch"] = serde_json::json!({});
            },
            "deployments.chat.schedules.lunch: only in the rendered file",
        ),
        (
            "a budget's limit differs",
            |v| v["budgets"]["gpu-monthly"]["limit_usd"] = serde_json::json!(900.0),
            "budgets.gpu-monthly.limit_usd: the configuration says 500.0, the rendered file 900.0",
        ),
        (
            "a quota only in the configuration",
            |v| {
                v["quotas"].as_object_mut().unwrap().remove("spot-g-vt");
            },
            "quotas.spot-g-vt: only in the configuration",
        ),
        (
            "the configuration changed",
            |v| v["config_sha256"] = serde_json::json!("0".repeat(64)),
            "config_sha256: the configuration says",
        ),
    ];
    for (name, mutate, want) in cases {
        let mut stale = rendered.clone();
        mutate(&mut stale);
        let found = scale0_terraform::diff(&rendered, &stale);
        assert!(
            found.len() == 1 && found[0].starts_with(want),
            "{name}: {found:?}"
        );
    }
}
