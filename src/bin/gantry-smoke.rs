//! The smoke agent: runs user-journey checks (`run`) or an HTTP health probe (`probe`)
//! inside a `FROM scratch` container on an environment's network.
//!
//! Exit codes: `run` 0 whenever the run happened (pass/fail is in the report, decided by
//! the coordinator), 2 bad spec or usage, 3 report not written; `probe` 0 healthy,
//! 1 not healthy by the deadline, 2 usage; 143 on SIGTERM/SIGINT.

use clap::{Parser, Subcommand};
use gantry::smoke::{self, Outcome, ProbeOptions, SmokeSpec, StepReport};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "gantry-smoke", version, about = "Gantry's smoke agent: user-journey checks and HTTP health probes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the journeys of a spec and write the report.
    Run {
        /// Smoke spec (JSON).
        #[arg(long)]
        spec: PathBuf,
        /// Report (JSON), written atomically; its directory is created if missing.
        #[arg(long)]
        out: PathBuf,
        /// Also write JUnit XML here.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Name of the JUnit <testsuites>.
        #[arg(long, default_value = "smoke")]
        suite: String,
    },
    /// Poll URL until it answers with the expected status or the deadline passes.
    Probe {
        url: String,
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// Exact status to wait for (default: any 2xx).
        #[arg(long, value_parser = clap::value_parser!(u16).range(100..=599))]
        expect_status: Option<u16>,
    },
}

const EXIT_USAGE: u8 = 2;
const EXIT_WRITE: u8 = 3;
const EXIT_SIGNAL: u8 = 143;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // As PID 1 in a container a process gets no default SIGTERM handling: without this,
    // `docker stop` would wait for its timeout and then kill.
    tokio::select! {
        code = async {
            match cli.command {
                Command::Run { spec, out, junit, suite } => run(spec, out, junit, suite).await,
                Command::Probe { url, timeout, interval, expect_status } => {
                    probe(url, ProbeOptions { timeout, interval, expect_status }).await
                }
            }
        } => code,
        signal = terminated() => {
            eprintln!("gantry-smoke: {signal}, stopping");
            ExitCode::from(EXIT_SIGNAL)
        }
    }
}

async fn run(spec_path: PathBuf, out: PathBuf, junit: Option<PathBuf>, suite: String) -> ExitCode {
    let spec = match SmokeSpec::from_file(&spec_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gantry-smoke: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let report = match smoke::run(&spec, print_step).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gantry-smoke: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let (passed, failed, skipped) = report.counts();
    match report.failure_message() {
        None => println!("smoke passed: {passed} steps in {}ms", report.duration_ms),
        Some(msg) => println!("smoke failed: {msg} ({passed} passed, {failed} failed, {skipped} skipped)"),
    }
    let json = serde_json::to_vec_pretty(&report).expect("report serializes");
    if let Err(e) = smoke::write_atomic(&out, &json) {
        eprintln!("gantry-smoke: {e}");
        return ExitCode::from(EXIT_WRITE);
    }
    if let Some(path) = junit {
        if let Err(e) = smoke::write_atomic(&path, smoke::junit_xml(&report, &suite).as_bytes()) {
            eprintln!("gantry-smoke: {e}");
            return ExitCode::from(EXIT_WRITE);
        }
    }
    ExitCode::SUCCESS
}

fn print_step(journey: &str, step: &StepReport) {
    let status = step.status.map(|s| s.to_string()).unwrap_or_else(|| "---".into());
    match step.outcome {
        Outcome::Passed => println!("✓ {journey} / {} {status} {}ms", step.name, step.duration_ms),
        Outcome::Failed => println!(
            "✗ {journey} / {} {status} {}ms: {}",
            step.name,
            step.duration_ms,
            step.problem().unwrap_or_default()
        ),
        Outcome::Skipped => println!("- {journey} / {} skipped", step.name),
    }
}

async fn probe(url: String, opts: ProbeOptions) -> ExitCode {
    let want = opts.expect_status.map(|s| s.to_string()).unwrap_or_else(|| "2xx".into());
    let outcome = smoke::probe(&url, &opts, |a| {
        if !a.healthy {
            println!("attempt {} at {}ms: {}", a.number, a.at.as_millis(), a.summary());
        }
    })
    .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("gantry-smoke: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let last = &outcome.last;
    if outcome.healthy {
        println!("healthy: {url} answered {} after {} attempt(s), {}ms", last.summary(), outcome.attempts, outcome.elapsed.as_millis());
        return ExitCode::SUCCESS;
    }
    println!(
        "not healthy: {url} did not answer {want} within {} ({} attempts); last: {}",
        humantime::format_duration(opts.timeout),
        outcome.attempts,
        last.summary()
    );
    if last.error.is_none() {
        println!("last body: {}", last.body_head);
    }
    ExitCode::FAILURE
}

/// Resolves on SIGTERM or SIGINT with the signal's name.
async fn terminated() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without handlers the default actions still apply; just never resolve.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
