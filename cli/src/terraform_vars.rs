//! `scale0 terraform-vars FILE`: render a configuration into what the Terraform modules
//! read (`terraform/examples/*/scale0.rendered.json`), or with `--check` compare a
//! rendered file with the configuration and name every difference.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config_cmd::INVALID;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The scale0 configuration (TOML).
    file: PathBuf,
    /// Write the rendering to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Compare this rendered file with FILE instead; exit 1 naming every difference.
    #[arg(long, conflicts_with = "output")]
    check: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match crate::load_config(&args.file)? {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: {e}", args.file.display());
            return Ok(ExitCode::from(INVALID));
        }
    };
    let source = std::fs::read(&args.file)?;
    let rendered = scale0_terraform::render(&config, &source);
    if let Some(path) = args.check {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        let committed: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", path.display()))?;
        let differences = scale0_terraform::diff(&rendered, &committed);
        if differences.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "{} is not the rendering of {} ({} difference(s)); run `scale0 terraform-vars {} -o {}`:",
            path.display(),
            args.file.display(),
            differences.len(),
            args.file.display(),
            path.display()
        );
        for d in differences {
            eprintln!("  {d}");
        }
        return Ok(ExitCode::FAILURE);
    }
    let text = scale0_terraform::to_file_text(&rendered);
    match args.output {
        Some(path) => std::fs::write(&path, text)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
