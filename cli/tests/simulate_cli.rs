//! `scale0 simulate` and `scale0 bench policies`, run as a user runs them, on a small
//! scenario written to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;

fn scale0(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scale0"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run scale0");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scale0-sim-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("scenarios")).unwrap();
    dir
}

const SCENARIO: &str = r#"
name = "tiny"
policies = ["scale0", "knative", "always-on{instances = 2}"]
[trace]
path = "../trace.csv"
[service]
model = "fixed"
seconds = 1.5
[slo]
max_wait = "5s"
[deployment]
name = "d"
[[deployment.pools]]
name = "p"
max_instances = 4
slots = 2
price_per_hour_usd = 1.0
boot_time = "20s"
"#;

#[test]
fn simulate_prints_the_table_and_writes_json_and_plot() {
    let dir = workdir("ok");
    let times: String = (0..200)
        .map(|i| format!("{}\n", f64::from(i) * 1.7))
        .collect();
    std::fs::write(dir.join("trace.csv"), format!("t_seconds\n{times}")).unwrap();
    std::fs::write(dir.join("scenarios/tiny.toml"), SCENARIO).unwrap();
    let (code, out, err) = scale0(
        &dir,
        &[
            "simulate",
            "--scenario",
            "scenarios/tiny.toml",
            "--out",
            "o",
            "--frontiers",
        ],
    );
    assert_eq!(code, 0, "{err}");
    for row in [
        "| bound: all within SLO |",
        "| bound: zero wait |",
        "| scale0 |",
        "| knative |",
        "| always-on{instances=2} |",
        "| knative | 9 |",
        "scale0: ",
    ] {
        assert!(out.contains(row), "{row} missing:\n{out}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("o/tiny.json")).unwrap()).unwrap();
    assert_eq!(json["requests"], 200);
    assert_eq!(json["policies"].as_array().unwrap().len(), 3);
    let svg = std::fs::read_to_string(dir.join("o/tiny.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("scale0"),
        "not an SVG plot"
    );
    let frontiers = std::fs::read_to_string(dir.join("o/tiny-frontiers.svg")).unwrap();
    assert!(frontiers.contains("knative frontier"), "no frontier line");
    assert_eq!(json["frontiers"].as_array().unwrap().len(), 2);

    // bench policies over that directory writes its section into a new file.
    let (code, _, err) = scale0(
        &dir,
        &[
            "bench",
            "policies",
            "--scenarios",
            "scenarios",
            "--out",
            "b",
            "--benchmarks",
            "B.md",
            "--no-plot",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.join("B.md")).unwrap();
    assert!(md.starts_with("# scale0 benchmarks\n"), "{md}");
    assert!(
        md.contains("## Policy benchmark (scale0 bench policies)") && md.contains("### tiny"),
        "{md}"
    );
    assert!(md.contains("**Where scale0 stands**"), "{md}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_trace_names_file_and_line() {
    let dir = workdir("bad");
    std::fs::write(dir.join("trace.csv"), "t_seconds\n1.0\n2.0\nsoon\n").unwrap();
    std::fs::write(dir.join("scenarios/tiny.toml"), SCENARIO).unwrap();
    let (code, _, err) = scale0(
        &dir,
        &[
            "simulate",
            "--scenario",
            "scenarios/tiny.toml",
            "--out",
            "o",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("trace.csv:4: t_seconds `soon`"), "{err}");
    // A scenario with an unknown key names it.
    std::fs::write(
        dir.join("scenarios/tiny.toml"),
        SCENARIO.replace("[slo]", "[slo]\nmax_wiat = \"1s\""),
    )
    .unwrap();
    let (code, _, err) = scale0(&dir, &["simulate", "--scenario", "scenarios/tiny.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("max_wiat"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
