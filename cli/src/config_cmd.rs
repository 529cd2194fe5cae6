//! `scale0 config check FILE`: print the normalized config (every default filled in),
//! or every error, one per line with its field, and exit 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate FILE; print it normalized (as TOML, or JSON with --json).
    Check {
        file: PathBuf,
        /// Print the normalized config as JSON (the form Lambda reads).
        #[arg(long)]
        json: bool,
    },
}

/// Exit code for a config that does not load.
pub const INVALID: u8 = 2;

pub fn run(command: ConfigCommand) -> anyhow::Result<ExitCode> {
    let ConfigCommand::Check { file, json } = command;
    match crate::load_config(&file)? {
        Ok(config) => {
            if json {
                println!("{}", serde_json::to_string_pretty(&config)?);
            } else {
                print!("{}", toml::to_string(&config)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", file.display());
            Ok(ExitCode::from(INVALID))
        }
    }
}
