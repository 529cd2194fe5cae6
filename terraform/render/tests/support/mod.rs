//! What the Terraform tests share: the `terraform` binary (or the reason it is
//! missing), a CLI configuration that installs the AWS provider from a local mirror,
//! and scratch copies of the modules, so nothing is written into the repository.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `terraform/` of the repository.
pub fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// The binary (`$SCALE0_TERRAFORM` or `terraform` on PATH), if it runs.
pub fn terraform() -> Result<PathBuf, String> {
    let bin = std::env::var_os("SCALE0_TERRAFORM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("terraform"));
    match Command::new(&bin).arg("version").output() {
        Ok(out) if out.status.success() => Ok(bin),
        Ok(out) => Err(format!(
            "`{} version` failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("no terraform binary ({}: {e})", bin.display())),
    }
}

/// A filesystem mirror holding hashicorp/aws (`$SCALE0_TF_PLUGIN_DIR` or
/// /opt/tf-plugins): no registry serving providers is reachable from CI.
pub fn provider_mirror() -> Result<PathBuf, String> {
    let dir = std::env::var_os("SCALE0_TF_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/tf-plugins"));
    let aws = dir.join("registry.terraform.io/hashicorp/aws");
    if aws.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "no AWS provider mirror at {} (set SCALE0_TF_PLUGIN_DIR)",
            aws.display()
        ))
    }
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scale0-tf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copy `from` into `to`, recursively, leaving out Rust and Terraform working files.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == ".terraform" || name == "render" || name == "target" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Run terraform in `dir` with a CLI configuration of its own (the mirror when given,
/// and no registry), returning the output.
pub fn run(bin: &Path, dir: &Path, mirror: Option<&Path>, args: &[&str]) -> Output {
    let rc = dir.join(".terraformrc");
    let installation = match mirror {
        Some(m) => format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
            m.display()
        ),
        None => String::new(),
    };
    std::fs::write(&rc, installation).unwrap();
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("TF_IN_AUTOMATION", "1")
        .env("CHECKPOINT_DISABLE", "1")
        .env_remove("TF_DATA_DIR")
        .output()
        .unwrap()
}

/// Output text of a run, stdout then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
