//! `gantry report`: release frequency and the DORA four keys of an environment.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{CliError, Outcome};
use crate::report::{self, compute::Window, render};
use crate::store::read::ReadHistory;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The environment whose deployments count.
    #[arg(long = "env", default_value = "production")]
    pub environment: String,
    /// Only this pipeline's deployments (default: all).
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Window start: a span back from now (90d, 12w) or a date (2026-09-01, UTC).
    #[arg(long, default_value = "90d")]
    pub since: String,
    /// Window end (a date, UTC; default: now).
    #[arg(long)]
    pub until: Option<String>,
    #[arg(long, conflicts_with_all = ["csv", "html"])]
    pub json: bool,
    #[arg(long, conflicts_with = "html")]
    pub csv: bool,
    /// Write a self-contained HTML page with charts to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(store: &dyn ReadHistory, data_dir: &std::path::Path, args: ReportArgs) -> Outcome {
    let now = chrono::Utc::now();
    let until = match &args.until {
        Some(text) => report::parse_since(text, now).map_err(|source| CliError::Since { flag: "--until", source })?,
        None => now,
    };
    let since = report::parse_since(&args.since, now).map_err(|source| CliError::Since { flag: "--since", source })?;
    if since >= until {
        return Err(CliError::Usage(format!("--since ({}) must be before --until ({})", since.date_naive(), until.date_naive())));
    }
    let report = report::from_history(store, data_dir, &args.environment, args.pipeline.as_deref(), Window { since, until })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        print!("{}", render::csv(&report));
    } else if let Some(path) = &args.html {
        std::fs::write(path, render::html(&report)).map_err(|source| CliError::File { action: "write", path: path.to_path_buf(), source })?;
        eprintln!("gantry: wrote {}", path.display());
    } else {
        print!("{}", render::table(&report));
    }
    Ok(ExitCode::SUCCESS)
}
