//! Shared helpers for the simulator's integration tests: small scenarios built in code,
//! and the shared traces when they are present.

#![allow(dead_code)]

use std::path::PathBuf;

use scale0_sim::trace::{self, ReadOptions};
use scale0_sim::{
    self as sim, PolicyKind, RunOptions, Scenario, ScenarioReport, Trace, TraceFormat,
};

/// A scenario over a plain CSV trace of arrival seconds, with a fixed service time.
pub fn scenario(extra: &str, policy: &str, pool: &str) -> Scenario {
    let text = scenario_text(extra, policy, pool);
    Scenario::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The TOML of [`scenario`], for tests of what validation rejects.
pub fn scenario_text(extra: &str, policy: &str, pool: &str) -> String {
    format!(
        r#"
        name = "test"
        seed = 3
        {extra}
        [trace]
        path = "inline"
        [service]
        model = "fixed"
        seconds = 2.0
        [slo]
        max_wait = "60s"
        [control]
        tick = "1s"
        tick_phase = "0s"
        activation_latency = "1s"
        [deployment]
        name = "d"
        request_deadline = "10m"
        expected_service_time = "2s"
        [deployment.policy]
        {policy}
        [[deployment.pools]]
        {pool}
        "#
    )
}

/// An hour-long window.
pub const HOUR: &str = "[transform]\nwindow_length = \"1h\"";

/// scale0 with windows short enough that a hand timeline is easy to follow.
pub const QUICK: &str = r#"stable_window = "2s"
        panic_window = "1s"
        scale_down_stabilization = "1s"
        scale_to_zero_grace = "30s""#;

pub const POOL: &str = r#"name = "p"
        max_instances = 20
        slots = 2
        price_per_hour_usd = 3.6
        boot_time = "10s""#;

/// A trace from arrival times in seconds.
pub fn csv(times: &[f64]) -> Trace {
    let text: String = times.iter().map(|t| format!("{t}\n")).collect();
    trace::parse(
        text.as_bytes(),
        "inline.csv",
        Some(TraceFormat::Csv),
        ReadOptions::default(),
    )
    .expect("valid csv")
}

pub fn run(s: &Scenario, t: &Trace, kinds: &[PolicyKind]) -> ScenarioReport {
    sim::run_scenario(s, t, kinds, &RunOptions::default(), &mut |_, _, _, _| {}).expect("runs")
}

/// `../shared/traces/<name>`, when this checkout has it.
pub fn shared_trace(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/traces")
        .join(name);
    p.exists().then_some(p)
}

/// A bench scenario and its trace, when the trace is present.
pub fn bench_scenario(file: &str) -> Option<(Scenario, Trace)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/scenarios");
    let text = std::fs::read_to_string(dir.join(file)).expect("bench scenario");
    let s = Scenario::from_toml_str(&text).expect("valid bench scenario");
    let path = dir.join(&s.trace.path);
    if !path.exists() {
        eprintln!("skipping: {} is not in this checkout", path.display());
        return None;
    }
    let bytes = std::fs::read(&path).expect("trace");
    let bin = s.trace.bin.map(|b| b.0.as_micros() as i64);
    let t = trace::parse(
        &bytes,
        &path.display().to_string(),
        s.trace.format,
        ReadOptions { bin },
    )
    .expect("trace parses");
    Some((s, t))
}
