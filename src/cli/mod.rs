//! The command line: clap definitions, dispatch, and the one place where typed errors
//! become friendly messages and exit codes.

mod approval;
mod env;
mod history;
mod identity;
mod render;
mod report;
mod run;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::engine::EngineError;
use crate::approval::DecisionKind;
use crate::store::{Store, StoreError};

#[derive(Parser, Debug)]
#[command(name = "gantry", version, about = "Run delivery pipelines as containers on the Docker Engine API")]
pub struct Cli {
    /// Where history is kept (default: gantry/ under the user's data directory).
    #[arg(long, global = true, env = "GANTRY_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Docker engine to use, e.g. unix:///var/run/docker.sock or tcp://host:2375 (default: DOCKER_HOST, else the local socket).
    #[arg(long, global = true, value_name = "URL")]
    pub docker_host: Option<String>,
    /// The operator's config: users and their roles (default: gantry/config.yml under the user's config directory).
    #[arg(long, global = true, env = "GANTRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Format of Gantry's own diagnostics on stderr (level from RUST_LOG).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a pipeline file; print its plan, or every error with file:line:column and field.
    Validate {
        file: PathBuf,
        /// Print the plan (or the errors) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a pipeline for a commit of a git repository.
    Run(run::RunArgs),
    /// Run a run again: the same plan, commit and variables (--failed: only what failed).
    Rerun(run::RerunArgs),
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        json: bool,
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show a run: commit, stages, states, exit codes, durations.
    Show {
        /// Run id, a unique prefix of it, or `latest`.
        run: String,
        #[arg(long, conflicts_with = "junit")]
        json: bool,
        /// Print the run's smoke results as JUnit XML.
        #[arg(long)]
        junit: bool,
    },
    /// Environments: list them, show one with its deployments, destroy one.
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// List promotions waiting for approval.
    Approvals {
        #[arg(long)]
        json: bool,
        /// Every run that asked for approval, whatever became of it (newest runs first).
        #[arg(long)]
        all: bool,
        /// With --all: how many of the newest runs to look at.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
    /// Approve a run's gated promotion; the approval that completes the count promotes.
    Approve {
        #[command(flatten)]
        args: approval::DecideArgs,
        /// Why, for the record.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a run's gated promotion: it will not happen.
    Reject {
        #[command(flatten)]
        args: approval::DecideArgs,
        /// Why (required, kept with the decision).
        #[arg(long)]
        reason: String,
    },
    /// Release frequency and the DORA four keys of an environment, over a window.
    Report(report::ReportArgs),
    /// Run the coordinator service: webhooks, polling, queue, HTTP API and dashboard (config: --config).
    Serve,
    /// Ask the service to run a project's pipeline for a commit.
    Trigger(serve::TriggerArgs),
    /// Stop a queued or running run (it cleans up as after Ctrl-C and ends cancelled).
    Cancel {
        /// Run id, a unique prefix of it, or `latest`.
        run: String,
        /// Who cancels (needs the role developer; proved as for approvals).
        #[arg(long = "as", value_name = "USER")]
        user: Option<String>,
        #[command(flatten)]
        proof: identity::ProofArgs,
    },
    /// Print the stored output of a run (or of one of its stages).
    Logs {
        run: String,
        stage: Option<String>,
        /// Print the lines as JSON objects (stage, attempt, stream, time, text).
        #[arg(long)]
        json: bool,
        /// Go on printing lines as the run prints them, until it ends.
        #[arg(long, short)]
        follow: bool,
    },
}

/// Errors that reach the user; each prints as one clear message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Limits(#[from] crate::limits::AboveMax),
    #[error(transparent)]
    Identity(#[from] crate::config::IdentityError),
    #[error(transparent)]
    Rerun(#[from] crate::scheduler::rerun::RerunRefusal),
    #[error(transparent)]
    Decision(#[from] crate::coordinator::approvals::DecideError),
    #[error(transparent)]
    Rollback(#[from] crate::coordinator::rollback::RollbackError),
    #[error("{flag}: {source}")]
    Since { flag: &'static str, source: crate::report::SinceError },
    /// An argument that cannot mean anything here (`--var`, a stage a run does not have).
    #[error("{0}")]
    Usage(String),
    /// What was asked for is not there (an environment, a run's smoke results).
    #[error("{0}")]
    NotFound(String),
    /// The asker may not do this, or the state of things forbids it; nothing changed.
    #[error("{0}")]
    Refused(String),
    /// A rollback, recorded as a run, that did not succeed.
    #[error("{0}")]
    Failed(String),
    /// A file the command was told to read or write.
    #[error("cannot {action} {}: {source}", path.display())]
    File { action: &'static str, path: std::path::PathBuf, source: std::io::Error },
    /// `gantry serve` could not start (its settings, its address) or failed; or a command
    /// could not ask the service it was pointed at.
    #[error("{0}")]
    Service(String),
    /// The gantry process holding the data dir could not be asked, or said no.
    #[error(transparent)]
    Remote(#[from] crate::control::RemoteError),
    #[error("cannot write JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A task of this process panicked (a bug); said rather than hidden.
    #[error("{0} crashed: {1}")]
    Crashed(&'static str, tokio::task::JoinError),
}

/// What a command wants the process to exit with.
pub type Outcome = Result<ExitCode, CliError>;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gantry: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("gantry: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn dispatch(cli: Cli) -> Outcome {
    let data_dir = cli.data_dir.clone().unwrap_or_else(crate::store::default_data_dir);
    let docker_host = cli.docker_host.as_deref();
    let config = cli.config.clone().unwrap_or_else(crate::config::Config::default_path);
    match cli.command {
        Command::Validate { file, json } => {
            // With a config (named, or the default one where it exists), the operator's
            // rules of each environment too.
            let config = crate::config::Config::load_for_cli(cli.config.as_deref())?;
            let known = cli.config.is_some() || config.path.exists();
            history::validate(&file, json, known.then_some(&config))
        }
        Command::Run(args) => run::run(args, cli.config.as_deref(), &data_dir, docker_host).await,
        Command::Rerun(args) => run::rerun(args, cli.config.as_deref(), &data_dir, docker_host).await,
        Command::Runs { json, limit } => {
            let store = open_reader(&data_dir, docker_host).await?;
            let outcome = history::runs(&*store, limit, json);
            store.leave()?;
            outcome
        }
        Command::Show { run, json, junit } => {
            let store = open_reader(&data_dir, docker_host).await?;
            if junit {
                return history::junit(&*store, &run);
            }
            history::show(&*store, &run, json)
        }
        Command::Env(command) => env::run(command, cli.config.as_deref(), &data_dir, docker_host).await,
        Command::Report(args) => {
            let store = open_reader(&data_dir, docker_host).await?;
            report::run(&*store, &data_dir, args)
        }
        Command::Serve => serve::serve(&config, cli.data_dir.as_deref(), docker_host).await,
        Command::Trigger(args) => serve::trigger(args, &config).await,
        Command::Approvals { json, all, limit } => {
            let store = open_reader(&data_dir, docker_host).await?;
            approval::list(&*store, all, limit, json)
        }
        Command::Approve { args, comment } => approval::decide(args, DecisionKind::Approve, comment, &config, &data_dir, docker_host).await,
        Command::Reject { args, reason } => {
            approval::decide(args, DecisionKind::Reject, Some(reason), &config, &data_dir, docker_host).await
        }
        Command::Cancel { run, user, proof } => cancel(&run, user.as_deref(), &proof, cli.config.as_deref(), &data_dir, docker_host).await,
        Command::Logs { run, stage, json, follow: false } => {
            let store = open_reader(&data_dir, docker_host).await?;
            history::logs(&*store, &run, stage.as_deref(), json)
        }
        Command::Logs { run, stage, json, follow: true } => {
            let first: Box<dyn std::ops::Deref<Target = dyn crate::store::read::ReadHistory>> =
                Box::new(open_reader(&data_dir, docker_host).await?);
            let handle = tokio::runtime::Handle::current();
            let reopen = || -> Result<Box<dyn std::ops::Deref<Target = dyn crate::store::read::ReadHistory>>, CliError> {
                let reader = tokio::task::block_in_place(|| handle.block_on(open_reader(&data_dir, docker_host)))?;
                Ok(Box::new(reader))
            };
            tokio::task::block_in_place(|| history::follow(first, &reopen, &run, stage.as_deref(), json))
        }
    }
}

/// Ends a command's use of the store without tearing sled down: everything is flushed
/// (durable), and the process is about to exit, which frees the rest at once. Dropping a
/// large store costs a listing about as much as reading it.
pub(crate) fn leave(store: Store) -> Result<(), CliError> {
    store.flush()?;
    std::mem::forget(store);
    Ok(())
}

/// `gantry cancel`: through the process that drives the run (which holds the data dir),
/// or, for a run still queued in a service's store nobody holds, in the store itself.
async fn cancel(
    query: &str,
    claimed: Option<&str>,
    proof: &identity::ProofArgs,
    config: Option<&std::path::Path>,
    data_dir: &std::path::Path,
    docker_host: Option<&str>,
) -> Outcome {
    let config = crate::config::Config::load_for_cli(config)?;
    match open_store(data_dir, docker_host).await {
        Ok(store) => {
            let token = identity::presented_token(proof.token_file.as_deref(), config.needs_proof())?;
            let login = crate::config::identity::os_login();
            let user =
                config.identify_steerer(claimed, token.as_deref(), login.as_deref())?.user;
            if !user.role.covers(crate::config::Role::Developer) {
                return Err(CliError::Refused(format!("{} ({}) may not cancel runs: that needs the role developer", user.name, user.role)));
            }
            let run = store.find_run(query)?;
            match store.cancel(&run.id, &user.name)? {
                Ok(r) if r.state == crate::events::RunState::Cancelled => {
                    println!("run {} was queued: it is cancelled", r.id);
                    Ok(ExitCode::SUCCESS)
                }
                // Running, yet nobody holds the store: its process is gone (the open
                // above recorded that), so there is nothing to stop.
                Ok(r) => Err(CliError::Refused(format!("run {} is driven by no gantry process", r.id))),
                Err(state) => {
                    Err(CliError::Refused(format!("run {} is {}; only a queued or running run can be cancelled", run.id, state.name())))
                }
            }
        }
        Err(CliError::Store(e @ StoreError::InUse { .. })) => {
            let Some(remote) = crate::control::Remote::connect(data_dir) else {
                return Err(CliError::Store(e));
            };
            let token = identity::presented_token(proof.token_file.as_deref(), config.needs_proof())?;
            let who = crate::control::Asker { claimed: claimed.map(str::to_string), token };
            let said = remote.cancel(query, &who)?;
            println!("{said}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e),
    }
}

/// History to read: the store itself, or, while another gantry process holds the data
/// dir, that process through its control socket.
pub(crate) enum Reader {
    Local(Store),
    Remote(crate::control::Remote),
}

impl std::ops::Deref for Reader {
    type Target = dyn crate::store::read::ReadHistory;
    fn deref(&self) -> &Self::Target {
        match self {
            Reader::Local(s) => s,
            Reader::Remote(r) => r,
        }
    }
}

impl Reader {
    /// As `leave` for a local store; nothing to do for a remote one.
    pub(crate) fn leave(self) -> Result<(), CliError> {
        match self {
            Reader::Local(s) => leave(s),
            Reader::Remote(_) => Ok(()),
        }
    }
}

/// Opens the store to read it, or asks the process that holds it.
pub(crate) async fn open_reader(data_dir: &std::path::Path, docker_host: Option<&str>) -> Result<Reader, CliError> {
    match open_store(data_dir, docker_host).await {
        Ok(store) => Ok(Reader::Local(store)),
        Err(CliError::Store(e @ StoreError::InUse { .. })) => match crate::control::Remote::connect(data_dir) {
            Some(remote) => Ok(Reader::Remote(remote)),
            None => Err(CliError::Store(e)),
        },
        Err(e) => Err(e),
    }
}

/// Opens the store and finishes the cleanup of runs whose process died. Docker being
/// unreachable does not stop a history command; the sweep is retried next time.
pub(crate) async fn open_store(data_dir: &std::path::Path, docker_host: Option<&str>) -> Result<Store, CliError> {
    open_store_waiting(data_dir, docker_host, std::time::Duration::ZERO).await
}

/// `open_store`, waiting up to `wait` for another gantry process to release the data dir.
/// Besides sweeping, it records approvals that expired and finishes promotions whose
/// process died, so every command sees (and leaves) history as it really is.
pub(crate) async fn open_store_waiting(
    data_dir: &std::path::Path,
    docker_host: Option<&str>,
    wait: std::time::Duration,
) -> Result<Store, CliError> {
    open_store_on(data_dir, &crate::engine::EngineChoice::docker(docker_host), wait).await
}

/// `open_store_waiting` with the engine given in full (an engine of the config's pool).
pub(crate) async fn open_store_on(
    data_dir: &std::path::Path,
    engine: &crate::engine::EngineChoice,
    wait: std::time::Duration,
) -> Result<Store, CliError> {
    let dir = data_dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open_waiting(&dir, wait))
        .await
        .map_err(|e| CliError::Crashed("opening the store", e))??;
    let told = |run: &crate::store::RunRecord| {
        let by = run.approval.as_ref().and_then(|a| a.claimed_by.clone()).unwrap_or_default();
        eprintln!("gantry: finishing the promotion of run {} approved by {by}, whose gantry process stopped before it was done", run.id);
    };
    let recovered = crate::runs::recover(&store, engine, &told).await?;
    for run in &recovered.expired {
        tracing::info!(run = %run, "approval request expired");
    }
    for done in &recovered.promotions {
        approval::report(done);
    }
    for later in &recovered.deferred {
        eprintln!("gantry: {later}");
    }
    if recovered.swept > 0 {
        tracing::info!(runs = recovered.swept, "swept Docker objects of interrupted runs");
    }
    Ok(store)
}
