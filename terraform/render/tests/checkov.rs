//! checkov over terraform/ (every module, through both examples): zero failed checks.
//! A check that does not apply is skipped in place, next to the resource, with its
//! reason (`# checkov:skip=CKV_...:why`); this test also fails on a skip without one.
//!
//! checkov is `$SCALE0_CHECKOV`, else `checkov` on PATH, else the one in the test
//! virtualenv (`infra/local/python-env.sh` installs it); without any, the test is
//! skipped with the reason printed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

fn runs(bin: &Path) -> Result<(), String> {
    match Command::new(bin).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{} --version` failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("{}: {e}", bin.display())),
    }
}

fn checkov() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("SCALE0_CHECKOV") {
        let bin = PathBuf::from(bin);
        return runs(&bin).map(|()| bin);
    }
    let on_path = PathBuf::from("checkov");
    let Err(path_reason) = runs(&on_path) else {
        return Ok(on_path);
    };
    let script = support::terraform_dir().join("../infra/local/python-env.sh");
    let out = Command::new(&script).output().map_err(|e| {
        format!(
            "no checkov on PATH ({path_reason}), and {}: {e}",
            script.display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "no checkov on PATH ({path_reason}), and infra/local/python-env.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let venv = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let bin = Path::new(&venv).join("bin/checkov");
    runs(&bin)
        .map(|()| bin)
        .map_err(|e| format!("no checkov on PATH ({path_reason}) or in the test virtualenv ({e})"))
}

fn tf_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && !name.starts_with('.') && name != "render" {
            tf_files(&path, out);
        } else if name.ends_with(".tf") {
            out.push(path);
        }
    }
}

#[test]
fn every_skip_says_why() {
    let mut files = Vec::new();
    tf_files(&support::terraform_dir(), &mut files);
    let mut skips = 0;
    let mut faults = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some((_, skip)) = line.split_once("checkov:skip=") else {
                continue;
            };
            skips += 1;
            let (id, reason) = skip.split_once(':').unwrap_or((skip, ""));
            if !(id.starts_with("CKV_") || id.starts_with("CKV2_")) || reason.trim().len() < 20 {
                faults.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(skips > 0, "no checkov skips found under terraform/");
    assert!(
        faults.is_empty(),
        "checkov skips without a check id or a reason:\n{}",
        faults.join("\n")
    );
}

#[test]
fn checkov_finds_no_failed_check() {
    let bin = match checkov() {
        Ok(bin) => bin,
        Err(reason) => return println!("skipped checkov: {reason}"),
    };
    // --skip-download: no Prisma Cloud calls (nothing to download offline, and the
    // built-in checks need none); the JSON report names every failure.
    let out = Command::new(&bin)
        .args([
            "-d",
            support::terraform_dir().to_str().unwrap(),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ])
        .output()
        .expect("run checkov");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov's output is not JSON ({e}); exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // One report per framework: an object for one, an array for several.
    let reports = match report {
        serde_json::Value::Array(reports) => reports,
        one => vec![one],
    };
    let mut passed = 0;
    let mut failed = Vec::new();
    for r in &reports {
        let summary = &r["summary"];
        passed += summary["passed"].as_u64().unwrap_or(0);
        let errors = summary["parsing_errors"].as_u64().unwrap_or(0);
        if errors > 0 {
            failed.push(format!(
                "{errors} file(s) checkov could not parse: {}",
                r["results"]["parsing_errors"]
            ));
        }
        for c in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            failed.push(format!(
                "{} {} {}: {}",
                c["check_id"].as_str().unwrap_or("?"),
                c["resource"].as_str().unwrap_or("?"),
                c["file_path"].as_str().unwrap_or("?"),
                c["check_name"].as_str().unwrap_or("?"),
            ));
        }
    }
    // A scan that found nothing to check would pass vacuously.
    assert!(
        passed > 100,
        "checkov passed only {passed} checks: did it scan terraform/?\n{stdout}"
    );
    assert!(
        failed.is_empty(),
        "checkov: {} failed check(s); fix them, or skip one in place with its reason \
         (`# checkov:skip=CKV_...:why`):\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(
        out.status.success(),
        "checkov exited {:?}:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
