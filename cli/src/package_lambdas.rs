//! `scale0 package-lambdas`: zip the four functions' binaries, already built, into
//! the packages the Terraform examples deploy (`terraform/examples/*`, variable
//! `lambda_zip_dir`): `scale0-<function>.zip`, each holding one entry, `bootstrap`,
//! executable, at its root, as the `provided.al2023` runtime expects. `make
//! lambda-zips` builds the binaries (profile `lambda`: release, stripped) and runs this.
//!
//! The zips are reproducible: the entry's time is fixed, so the same binary gives the
//! same bytes and Terraform's `source_code_hash` changes only when the code does.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

/// The functions, as the control-plane module names them (`lambda_zips`).
pub const FUNCTIONS: [&str; 4] = ["scaler", "scheduler", "lifecycle", "budget"];

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the binaries scale0-scaler, scale0-scheduler, scale0-lifecycle and
    /// scale0-budget are (`cargo build --profile lambda` puts them in target/lambda).
    #[arg(long, default_value = "target/lambda")]
    bin_dir: PathBuf,
    /// Where to write scale0-<function>.zip.
    #[arg(long, default_value = "target/lambda")]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    for function in FUNCTIONS {
        let binary = args.bin_dir.join(format!("scale0-{function}"));
        let zip = args.out.join(format!("scale0-{function}.zip"));
        let bytes = std::fs::read(&binary).with_context(|| {
            format!(
                "cannot read {} (build it first: `make lambda-zips`)",
                binary.display()
            )
        })?;
        let size = package(&bytes, &zip)?;
        println!(
            "{} ({} KiB, bootstrap {} KiB)",
            zip.display(),
            size.div_ceil(1024),
            bytes.len().div_ceil(1024)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `binary` as the zip `out`: one entry, `bootstrap`, mode 0755, deflated, at
/// the root. Refuses what is not an ELF executable (a script or an empty file would be
/// deployed and fail only at the first invocation). Returns the zip's size.
pub fn package(binary: &[u8], out: &Path) -> anyhow::Result<u64> {
    if !binary.starts_with(b"\x7fELF") {
        bail!(
            "not an ELF binary, refusing to package it as {}",
            out.display()
        );
    }
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    zip.start_file("bootstrap", options)?;
    std::io::Write::write_all(&mut zip, binary)?;
    let file = zip.finish()?;
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("scale0-package-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A real debug binary: this test's own executable.
    fn a_binary() -> Vec<u8> {
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn the_zip_holds_only_an_executable_bootstrap_at_its_root() {
        let dir = scratch("layout");
        let binary = a_binary();
        let out = dir.join("scale0-scaler.zip");
        let size = package(&binary, &out).unwrap();
        assert_eq!(size, std::fs::metadata(&out).unwrap().len());
        assert!(
            size < binary.len() as u64,
            "not compressed: {size} bytes from {}",
            binary.len()
        );

        let mut archive = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        assert_eq!(
            archive.len(),
            1,
            "entries: {:?}",
            archive.file_names().collect::<Vec<_>>()
        );
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert!(entry.is_file());
        assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
        let mode = entry
            .unix_mode()
            .expect("the entry records unix permissions");
        assert_eq!(mode & 0o777, 0o755, "mode {mode:o}");
        assert_eq!(
            mode & 0o170000,
            0o100000,
            "not a regular file: mode {mode:o}"
        );
        let mut unpacked = Vec::new();
        entry.read_to_end(&mut unpacked).unwrap();
        assert!(
            unpacked == binary,
            "the unpacked bootstrap differs from the binary"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_same_binary_gives_the_same_zip() {
        let dir = scratch("reproducible");
        let binary = a_binary();
        package(&binary, &dir.join("a.zip")).unwrap();
        package(&binary, &dir.join("b.zip")).unwrap();
        assert!(
            std::fs::read(dir.join("a.zip")).unwrap() == std::fs::read(dir.join("b.zip")).unwrap(),
            "two packagings of one binary differ"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn what_is_not_an_elf_binary_is_refused() {
        let dir = scratch("refused");
        for bytes in [&b""[..], b"#!/bin/sh\necho hi\n"] {
            let out = dir.join("x.zip");
            let e = package(bytes, &out).unwrap_err();
            assert!(e.to_string().contains("not an ELF binary"), "{e}");
            assert!(!out.exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn run_packages_the_four_functions_and_names_a_missing_one() {
        let dir = scratch("run");
        let bins = dir.join("bin");
        std::fs::create_dir_all(&bins).unwrap();
        let binary = a_binary();
        for f in &FUNCTIONS[..3] {
            std::fs::write(bins.join(format!("scale0-{f}")), &binary).unwrap();
        }
        let args = |out: &str| Args {
            bin_dir: bins.clone(),
            out: dir.join(out),
        };
        let e = run(args("zips")).unwrap_err();
        assert!(format!("{e:#}").contains("scale0-budget"), "{e:#}");

        std::fs::write(bins.join("scale0-budget"), &binary).unwrap();
        run(args("zips")).unwrap();
        let mut zips: Vec<String> = std::fs::read_dir(dir.join("zips"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        zips.sort();
        assert_eq!(
            zips,
            [
                "scale0-budget.zip",
                "scale0-lifecycle.zip",
                "scale0-scaler.zip",
                "scale0-scheduler.zip"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
