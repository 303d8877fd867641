//! gantry-load: the load agent. Runs a `LoadSpec`, prints a progress line every second and
//! keeps `--out` holding the latest summary (atomically replaced each second), so the
//! coordinator has figures even if the agent dies. Whether the figures pass is the gate's
//! decision, not the agent's: it exits 0 whenever the run completed.
//!
//! Exit codes: 0 run completed; 2 bad usage or spec; 3 `--out` not writable;
//! 143 stopped by SIGTERM/SIGINT (the last snapshot stays in `--out`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gantry::load::{LoadRun, LoadSpec, LoadSummary};
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Parser)]
#[command(name = "gantry-load", about = "Gantry's load agent: open-model HTTP load with HDR latency histograms")]
struct Args {
    /// The LoadSpec JSON file.
    #[arg(long)]
    spec: PathBuf,
    /// Where the summary JSON goes (snapshots every second, then the final one).
    #[arg(long, default_value = "/gantry/out/summary.json")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let spec = match LoadSpec::from_file(&args.spec) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("gantry-load: {}: {e}", args.spec.display());
            return ExitCode::from(2);
        }
    };
    // The load runs on threads of its own; this runtime only ticks, snapshots and waits.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gantry-load: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(drive(spec, &args.out))
}

async fn drive(spec: LoadSpec, out: &Path) -> ExitCode {
    // Prove `--out` is writable before sending anything: a run whose results cannot be
    // delivered is wasted load on the target.
    let empty = LoadSummary::from_stats(&Default::default(), Duration::ZERO, false);
    if let Err(e) = prepare_dir(out).and_then(|()| write_atomically(out, &empty)) {
        eprintln!("gantry-load: cannot write {}: {e}", out.display());
        return ExitCode::from(3);
    }
    let mut run = match LoadRun::start(spec) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("gantry-load: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("gantry-load: cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            _ = run.wait() => break,
            _ = tick.tick() => {
                let snapshot = run.snapshot();
                println!("{}", run.progress(&snapshot));
                if let Err(e) = write_atomically(out, &snapshot) {
                    eprintln!("gantry-load: cannot write the snapshot to {}: {e}", out.display());
                }
            }
            _ = term.recv() => return stopped(&run, out),
            _ = int.recv() => return stopped(&run, out),
        }
    }
    let summary = run.snapshot();
    println!("{}", run.progress(&summary));
    print!("{}", summary.table());
    let _ = std::io::stdout().flush();
    match write_atomically(out, &summary) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gantry-load: cannot write the summary to {}: {e}", out.display());
            ExitCode::from(3)
        }
    }
}

fn stopped(run: &LoadRun, out: &Path) -> ExitCode {
    let snapshot = run.snapshot();
    let _ = write_atomically(out, &snapshot);
    eprintln!("gantry-load: stopped; last figures ({} requests) are in {}", snapshot.requests, out.display());
    ExitCode::from(143)
}

fn prepare_dir(out: &Path) -> std::io::Result<()> {
    match out.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Temp file in the same directory, then rename: a reader sees the old or the new
/// summary, never half of one.
fn write_atomically(out: &Path, summary: &LoadSummary) -> std::io::Result<()> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "summary.json".into());
    let tmp = out.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, summary.to_json())?;
    std::fs::rename(&tmp, out)
}
