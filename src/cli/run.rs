//! `gantry run`: plan, commit, secrets and engine are all checked before anything is
//! recorded; then the scheduler runs while this task records its events and renders them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::render::Renderer;
use super::{CliError, Outcome};
use crate::events::RunState;
use crate::store::RunRecord;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file.
    pub file: PathBuf,
    /// The git repository whose commit is run (default: the current directory).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Revision to run: a branch, tag or sha (default: HEAD).
    #[arg(long)]
    pub commit: Option<String>,
    /// Branch name for `when` filters, when the revision does not name one.
    #[arg(long)]
    pub branch: Option<String>,
    /// Value for a variable the pipeline declares under `vars:` (repeatable): NAME=VALUE.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    #[command(flatten)]
    pub opts: RunOptions,
}

/// How a run runs, for `gantry run` and `gantry rerun` alike.
#[derive(Args, Debug, Clone)]
pub struct RunOptions {
    /// Directory of secret files (one file per secret, named after it).
    #[arg(long, env = "GANTRY_SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Grant this run the secret NAME (repeatable), besides the config's pipelines.NAME.secrets.
    #[arg(long = "secret", value_name = "NAME")]
    pub secret: Vec<String>,
    /// Also read granted secrets from this process's environment (after the secrets dir).
    #[arg(long)]
    pub secrets_from_env: bool,
    /// How many stages may run at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Plain line output even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// Who starts the run (default: the user of GANTRY_TOKEN, else the login name); with
    /// `forbid_author` they cannot approve its promotion. Needs proof once the config has tokens.
    #[arg(long = "as", value_name = "USER")]
    pub user: Option<String>,
    #[command(flatten)]
    pub proof: super::identity::ProofArgs,
}

/// `gantry rerun`.
#[derive(Args, Debug)]
pub struct RerunArgs {
    /// Run id, a unique prefix of it, or `latest`.
    pub run: String,
    /// Run again only the stages that failed, those skipped because of them, and what
    /// they need that cannot be taken over; take over the rest.
    #[arg(long)]
    pub failed: bool,
    #[command(flatten)]
    pub opts: RunOptions,
}

/// What to run: a plan for a commit of a repository, with variable values.
struct Source {
    plan: crate::pipeline::Plan,
    repo: PathBuf,
    rev: Option<String>,
    branch: Option<String>,
    vars: std::collections::BTreeMap<String, String>,
    takeover: std::collections::BTreeMap<String, crate::scheduler::rerun::TakenOver>,
    rerun_of: Option<String>,
}

/// `--var NAME=VALUE` pairs, each naming a variable the pipeline declares.
fn var_overrides(plan: &crate::pipeline::Plan, given: &[String]) -> Result<std::collections::BTreeMap<String, String>, CliError> {
    let mut out = std::collections::BTreeMap::new();
    for pair in given {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(CliError::Usage(format!("--var {pair}: write NAME=VALUE")));
        };
        if !plan.vars.contains_key(name) {
            let declared: Vec<&str> = plan.vars.keys().map(String::as_str).collect();
            return Err(CliError::Usage(format!(
                "--var {name}: the pipeline declares no variable `{name}` (declared: {})",
                if declared.is_empty() { "none".to_string() } else { declared.join(", ") }
            )));
        }
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

pub async fn run(args: RunArgs, config: Option<&Path>, data_dir: &Path, docker_host: Option<&str>) -> Outcome {
    let plan = crate::pipeline::load(&args.file)?;
    let vars = var_overrides(&plan, &args.vars)?;
    let source = Source {
        plan,
        repo: args.repo.clone(),
        rev: args.commit.clone(),
        branch: args.branch.clone(),
        vars,
        takeover: Default::default(),
        rerun_of: None,
    };
    start(source, &args.opts, config, data_dir, docker_host).await
}

/// `gantry rerun`: the same plan, commit and variable values as run `args.run`, as a new
/// run; with `--failed`, taking over what it can of it.
pub async fn rerun(args: RerunArgs, config: Option<&Path>, data_dir: &Path, docker_host: Option<&str>) -> Outcome {
    let (old, plan) = {
        let store = super::open_store_waiting(data_dir, docker_host, std::time::Duration::from_secs(10)).await?;
        let old = store.find_run(&args.run)?;
        let plan = store.plan(&old.id)?;
        // Dropped, not left: this process opens it again to run.
        drop(store);
        (old, plan)
    };
    if old.project.is_some() {
        return Err(CliError::Refused(format!(
            "run {} belongs to the service's project {}: rerun it through the service (POST /api/runs/{}/rerun, or the dashboard)",
            old.id,
            old.project.as_deref().unwrap_or_default(),
            old.id
        )));
    }
    let plan = crate::scheduler::rerun::check(&old, plan, args.failed)?;
    let takeover = if args.failed { crate::scheduler::rerun::take_over(&plan, &old) } else { Default::default() };
    let source = Source {
        plan,
        repo: PathBuf::from(&old.repo),
        rev: Some(old.commit.sha.clone()),
        branch: old.commit.branch.clone(),
        vars: old.vars.clone(),
        takeover,
        rerun_of: Some(old.id.clone()),
    };
    start(source, &args.opts, config, data_dir, docker_host).await
}

async fn start(source: Source, args: &RunOptions, config: Option<&Path>, data_dir: &Path, docker_host: Option<&str>) -> Outcome {
    // Everything that can be wrong with the input is found before the run exists.
    let config = crate::config::Config::load_for_cli(config)?;
    let Source { plan, repo, rev, branch, vars: var_overrides, takeover, rerun_of } = source;
    let triggered_by = starter(&config, args)?;
    let ask = crate::runs::Ask {
        grant: config.pipeline_grant(&plan.name, &args.secret),
        project: plan.name.clone(),
        repo,
        rev,
        branch,
        secrets_dir: args.secrets_dir.clone(),
        secrets_from_env: args.secrets_from_env,
    };
    let prepared = crate::runs::prepare(&plan, &ask, &config)?;
    // With `engines:` a run of this machine goes where the environments live (unless
    // --docker-host says otherwise): an environment is never split across engines.
    let engine = crate::engine::connect(&config.environments_engine(docker_host)).await?;
    // A read command of another terminal holds the data dir for a moment: wait it out
    // rather than refuse the run.
    let store = std::sync::Arc::new(super::open_store_on(data_dir, &config.environments_engine(docker_host), std::time::Duration::from_secs(10)).await?);

    let run_id = crate::store::new_run_id();
    let mut record = RunRecord::new(run_id.clone(), &plan, prepared.repo.display().to_string(), prepared.commit.clone());
    record.triggered_by = triggered_by;
    record.vars = var_overrides;
    record.rerun_failed = !takeover.is_empty();
    record.rerun_of = rerun_of;
    store.create_run_with_plan(&record, &plan)?;
    if !takeover.is_empty() {
        let names: Vec<&str> = takeover.keys().map(String::as_str).collect();
        eprintln!("gantry: taking over from run {}: {}", record.rerun_of.as_deref().unwrap_or_default(), names.join(", "));
    }
    let mut renderer = Renderer::new(&record, args.plain);
    renderer.started(&record, engine.steps.endpoint(), &engine.steps.version());

    let cancel = CancellationToken::new();
    spawn_signal_handler(cancel.clone());
    // Other gantry commands on this data dir read through this process while it runs, and
    // may cancel the run (`gantry cancel`), as Ctrl-C does.
    let steering = crate::control::Steering {
        config: Arc::new(config.clone()),
        cancel: cancel_this(store.clone(), run_id.clone(), cancel.clone()),
        decide: None,
    };
    let _answering = crate::control::listen(store.clone(), data_dir, Some(steering))
        .map_err(|e| tracing::warn!(error = %e, "cannot answer other gantry commands on the data dir's socket"))
        .ok();
    let started = crate::runs::start(
        &engine,
        &record,
        crate::runs::Start {
            plan,
            prepared,
            max_parallel: args.parallel,
            shutdown: CancellationToken::new(),
            cancel,
            takeover,
            output: config.logs.output_limits(),
            may_have_leftovers: false,
        },
    )
    .await?;
    let (state, final_record) = crate::runs::follow(&store, &run_id, started, &mut renderer).await?;
    renderer.finished(&final_record);
    Ok(match state {
        RunState::Succeeded => ExitCode::SUCCESS,
        RunState::Cancelled => ExitCode::from(130),
        // Not a failure, not yet a success: scripts can tell the difference.
        RunState::AwaitingApproval => ExitCode::from(3),
        _ => ExitCode::FAILURE,
    })
}

/// `gantry cancel` of this process's run, through the control socket: recorded with who
/// asked, then stopped as Ctrl-C stops it.
fn cancel_this(
    store: Arc<crate::store::Store>,
    run_id: String,
    cancel: CancellationToken,
) -> Arc<dyn Fn(&str, &str) -> Result<String, String> + Send + Sync> {
    Arc::new(move |query: &str, by: &str| {
        let run = store.find_run(query).map_err(|e| e.to_string())?;
        if run.id != run_id {
            return Err(format!("run {} is not the one this gantry run drives ({run_id})", run.id));
        }
        match store.cancel(&run.id, by).map_err(|e| e.to_string())? {
            Ok(_) => {
                cancel.cancel();
                Ok(format!("run {} is stopping: its containers are removed and it ends cancelled", run.id))
            }
            Err(state) => Err(format!("run {} is {}; only a running run can be cancelled", run.id, state.name())),
        }
    })
}

/// Who starts the run. A token given (or `--as` where the config asks for proof) is
/// proved as for a decision; with no tokens in the config `--as` is a label, as a name is
/// all there is; without either, the login name, as a note of who it was.
fn starter(config: &crate::config::Config, args: &RunOptions) -> Result<Option<String>, CliError> {
    let token = super::identity::presented_token(args.proof.token_file.as_deref(), false)?;
    let proves = token.is_some() || config.needs_proof() || config.cli.trust_os_user;
    match &args.user {
        Some(_) if proves => Ok(Some(super::identity::identify(config, args.user.as_deref(), &args.proof)?.user.name)),
        Some(name) => Ok(Some(name.clone())),
        None if token.is_some() => Ok(Some(super::identity::identify(config, None, &args.proof)?.user.name)),
        None => Ok(crate::config::identity::os_login().or_else(|| std::env::var("USER").ok())),
    }
}

/// Ctrl-C or SIGTERM cancels the run; cleanup then runs to its end regardless.
fn spawn_signal_handler(cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = tokio::signal::ctrl_c().await;
                cancel.cancel();
                return;
            }
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {},
                _ = term.recv() => {},
            }
            if cancel.is_cancelled() {
                eprintln!("gantry: still cleaning up the run's containers; please wait");
            } else {
                eprintln!("gantry: cancelling: stopping containers and removing the run's network");
                cancel.cancel();
            }
        }
    });
}
