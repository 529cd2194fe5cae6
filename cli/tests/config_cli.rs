//! `scale0 config check` and `scale0 schedules`, run as a user runs them.

use std::process::Command;

fn scale0(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scale0"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run scale0");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn config_check_prints_the_normalized_example() {
    let (code, out, err) = scale0(&["config", "check", "examples/local.toml"]);
    assert_eq!(code, 0, "{err}");
    // Defaults are filled in.
    assert!(out.contains("stable_window = \"1m\""), "{out}");
    assert!(out.contains("unhealthy_after_failures = 3"), "{out}");
    // JSON is the same structure.
    let (code, json, _) = scale0(&["config", "check", "--json", "examples/local.toml"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["deployments"][0]["name"], "chat");
}

#[test]
fn a_broken_config_lists_every_error_and_exits_2() {
    let dir = std::env::temp_dir().join(format!("scale0-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        r#"
[[deployments]]
name = "chat"
[[deployments.pools]]
name = "a10g"
min_instances = 5
max_instances = 2
slots = 8
price_per_hour_usd = 1.0
boot_time = "90s"
[[deployments.schedules]]
name = "open"
expression = "cron(0 9 ? * MOX-FRI *)"
time_zone = "Europe/London"
min_instances = 1
[[deployments.schedules]]
name = "close"
expression = "cron(0 18 ? * MON-FRI *)"
time_zone = "Europe/Londn"
min_instances = 0
"#,
    )
    .unwrap();
    let (code, out, err) = scale0(&["config", "check", broken.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}{err}");
    for field in [
        "deployments[chat].pools[a10g].min_instances",
        "deployments[chat].schedules[open].expression",
        "deployments[chat].schedules[close].time_zone",
    ] {
        assert!(err.contains(field), "missing {field} in:\n{err}");
    }
    assert!(err.contains("MOX"), "{err}");

    // A syntax error names the line.
    std::fs::write(&broken, "[[deployments]]\nname = \"chat\nslots = 1\n").unwrap();
    let (code, _, err) = scale0(&["config", "check", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 2"), "{err}");

    let (code, _, err) = scale0(&["config", "check", "does/not/exist.toml"]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn schedules_lists_local_and_utc_times() {
    // Friday 2026-03-27 in London is GMT (UTC+0); Monday 2026-03-30 is BST (UTC+1).
    let (code, out, err) = scale0(&[
        "schedules",
        "examples/local.toml",
        "--from",
        "2026-03-27T00:00:00Z",
        "--count",
        "2",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("office-hours")).collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].contains("Fri 2026-03-27 09:00 GMT") && lines[0].contains("2026-03-27T09:00:00Z"),
        "{out}"
    );
    assert!(
        lines[1].contains("18:00 GMT") && lines[1].contains("office-hours-close"),
        "{out}"
    );
    assert!(
        lines[2].contains("Mon 2026-03-30 09:00 BST") && lines[2].contains("2026-03-30T08:00:00Z"),
        "{out}"
    );
}

#[test]
fn bytes_that_are_not_utf8_exit_2_with_their_position() {
    let dir = std::env::temp_dir().join(format!("scale0-cli-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("latin1.toml");
    std::fs::write(&file, b"[[deployments]]\nname = \"caf\xe9\"\n").unwrap();
    let (code, _, err) = scale0(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not UTF-8: byte 0xe9 at line 2, column 12"),
        "{err}"
    );
}

#[test]
fn config_check_warns_of_an_at_that_already_fired() {
    let dir = std::env::temp_dir().join(format!("scale0-cli-at-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("past.toml");
    std::fs::write(
        &file,
        r#"
[[deployments]]
name = "chat"
[[deployments.pools]]
name = "a10g"
max_instances = 2
slots = 8
price_per_hour_usd = 1.0
boot_time = "90s"
[[deployments.schedules]]
name = "launch-day"
expression = "at(2020-01-01T09:00:00)"
min_instances = 2
"#,
    )
    .unwrap();
    let (code, out, err) = scale0(&["config", "check", file.to_str().unwrap()]);
    // Valid (a config must not expire), printed, and warned about on stderr.
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("launch-day"), "{out}");
    assert!(
        err.contains(
            "warning: deployments[chat].schedules[launch-day].expression: fired for the last time at 2020-01-01 09:00:00 UTC"
        ) && err.contains("min_instances 2 stays in force for good"),
        "{err}"
    );
}
