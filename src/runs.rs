//! One way through a run, for the command line and the service alike:
//! - `prepare`: everything that can be wrong with the input, found before anything exists
//!   on the engine (the operator's limits, the commit, its secrets, which protected
//!   branches hold it);
//! - `start`: the scheduler on the engine, its events on their way to the recorder;
//! - `follow`: the recorder writing them to the store until the run ends;
//! - `recover`: what processes that died left behind (expired approvals, claimed
//!   promotions, runs not swept), done by whoever opens the store next.
//! Callers parse their arguments, create the run's record and print; nothing else.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commit::CommitInfo;
use crate::config::Config;
use crate::engine::{Engine, EngineChoice, EngineError};
use crate::events::RunState;
use crate::pipeline::Plan;
use crate::policy::RunPolicy;
use crate::recorder::Viewer;
use crate::scheduler::rerun::TakenOver;
use crate::scheduler::RunRequest;
use crate::stages::Emitter;
use crate::store::{RunRecord, Store, StoreError};

/// Why a run could not be prepared, started or followed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Limits(#[from] crate::limits::AboveMax),
    #[error(transparent)]
    Git(#[from] crate::git::GitError),
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error("--branch `{0}` is not a branch name (git's ref-name rules)")]
    NotABranch(String),
    #[error("cannot clear the engine for the run: {0}")]
    Leftovers(EngineError),
    #[error("the scheduler crashed: {0}")]
    Crashed(tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a run is asked to be: a plan, for a commit of a repository, with secrets from
/// where the caller may read them.
pub struct Ask {
    pub repo: PathBuf,
    /// The revision (default HEAD).
    pub rev: Option<String>,
    /// The branch the trigger names, checked against git's rules; a label only: which
    /// protected branches hold the commit is read from the repository.
    pub branch: Option<String>,
    /// The run's project (for `gantry run`: the pipeline's name).
    pub project: String,
    /// The secrets the operator grants.
    pub grant: crate::secrets::Grant,
    pub secrets_dir: Option<PathBuf>,
    /// Whether this process's own environment may be read (never in the service).
    pub secrets_from_env: bool,
}

/// A run ready to start: its commit checked out, its secrets read, its rules fixed.
pub struct Prepared {
    pub commit: CommitInfo,
    /// The checked-out commit as a tar archive, for the workspace volume.
    pub workspace: Bytes,
    pub secrets: BTreeMap<String, String>,
    pub policy: RunPolicy,
    /// The repository, as a full path.
    pub repo: PathBuf,
}

/// Checks the plan against the operator's limits, checks the commit out and resolves
/// its secrets and protections. Blocking (git): the service calls it off the runtime.
pub fn prepare(plan: &Plan, ask: &Ask, config: &Config) -> Result<Prepared, RunError> {
    crate::limits::check(plan, &config.limits)?;
    let checkout = crate::git::resolve(&ask.repo, ask.rev.as_deref())?;
    let mut commit = checkout.info.clone();
    if let Some(branch) = &ask.branch {
        if !crate::git::is_branch_name(branch) {
            return Err(RunError::NotABranch(branch.clone()));
        }
        commit.branch = Some(branch.clone());
    }
    // Which protected branches hold the commit is read from the repository, never taken
    // from the trigger.
    let protections = Arc::new(config.protections.clone());
    let globs = RunPolicy::branch_globs(&protections);
    let branches = crate::git::branches_containing(&ask.repo, &commit.sha, &globs)?;
    let policy = RunPolicy {
        protections,
        project: ask.project.clone(),
        commit: commit.sha.clone(),
        branches,
        lock_wait: config.locks.wait,
        newest_cancels_waiting: config.locks.newest_cancels_waiting,
        limits: config.limits.clone(),
        agents: config.agents.clone(),
    };
    // Only what the operator granted, and nothing is read before every name is.
    let uses = plan.stages.iter().flat_map(|s| s.secrets.iter().map(move |n| (n.as_str(), s.name.as_str())));
    let sources = crate::secrets::Sources { dir: ask.secrets_dir.as_deref(), env: ask.secrets_from_env };
    let secrets = crate::secrets::resolve(uses, &ask.grant, sources)?;
    let workspace = checkout.tar()?.into();
    let repo = ask.repo.canonicalize().unwrap_or(ask.repo.clone());
    Ok(Prepared { commit, workspace, secrets, policy, repo })
}

/// How a prepared run is to be driven.
pub struct Start {
    pub plan: Plan,
    pub prepared: Prepared,
    /// How many stages may run at once.
    pub max_parallel: usize,
    /// Cancelled when the process driving the run shuts down (the run ends interrupted).
    pub shutdown: CancellationToken,
    /// Cancels the run (Ctrl-C, `gantry cancel`).
    pub cancel: CancellationToken,
    /// Stages taken over from an earlier run (`gantry rerun --failed`).
    pub takeover: BTreeMap<String, TakenOver>,
    pub output: crate::channel::OutputLimits,
    /// Whether an earlier start of this run may have left objects on the engine (a run
    /// from the service's queue, restarted after a crash): they go before it starts.
    pub may_have_leftovers: bool,
}

/// A run under way: its scheduler, and the events it sends the recorder.
pub struct Started {
    scheduler: JoinHandle<RunState>,
    events: crate::channel::Receiver,
    engine: Engine,
}

/// Starts the scheduler for `run` (already recorded) on the engine.
pub async fn start(engine: &Engine, run: &RunRecord, s: Start) -> Result<Started, RunError> {
    if s.may_have_leftovers {
        match crate::sweep::tear_down(engine.steps.as_ref(), &run.id).await {
            Ok(r) if !r.is_empty() => {
                tracing::info!(run = %run.id, ?r, "removed leftovers of an earlier start")
            }
            Ok(_) => {}
            Err(e) => return Err(RunError::Leftovers(e)),
        }
    }
    let (tx, events) = crate::channel::channel(s.output);
    let request = RunRequest {
        run_id: run.id.clone(),
        plan: s.plan,
        commit: run.commit.clone(),
        workspace: s.prepared.workspace,
        secrets: s.prepared.secrets,
        max_parallel: s.max_parallel,
        var_overrides: run.vars.clone(),
        shutdown: s.shutdown,
        policy: s.prepared.policy,
        repo: Some(s.prepared.repo),
        takeover: s.takeover,
    };
    let scheduler = tokio::spawn(crate::scheduler::run(engine.clone(), request, Emitter::new(tx), s.cancel));
    Ok(Started { scheduler, events, engine: engine.clone() })
}

/// Records the run as it goes, showing it to `viewer`, until it ends; then looks for
/// approvals elsewhere that what it put live has made outdated. Returns its final state
/// and record.
pub async fn follow(store: &Store, run_id: &str, started: Started, viewer: &mut impl Viewer) -> Result<(RunState, RunRecord), RunError> {
    let Started { scheduler, events, engine } = started;
    let recorded = crate::recorder::record(store, run_id, events, viewer).await;
    let state = scheduler.await.map_err(RunError::Crashed)?;
    let record = recorded?;
    if let Err(e) = crate::coordinator::approvals::supersede_outdated(store, engine.environments.as_ref()).await {
        tracing::warn!(error = %e, "could not look for outdated approvals");
    }
    Ok((state, record))
}

/// What `recover` did and could not do, for the caller to say.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Runs whose approval expired.
    pub expired: Vec<String>,
    /// Promotions finished for processes that died, as they ended.
    pub promotions: Vec<RunRecord>,
    /// Runs whose leftovers were swept.
    pub swept: usize,
    /// Work left for the next command (the engine did not answer), said in one line each.
    pub deferred: Vec<String>,
}

/// Finishes what processes that died left: records approvals that expired, finishes
/// promotions claimed by a process that stopped (the deploy adopts a version that already
/// went live, so a promotion is neither lost nor repeated), and sweeps runs whose cleanup
/// did not complete. The engine is reached only when there is work for it; an engine that
/// does not answer leaves that work to the next command. `told` hears each promotion
/// before it is finished.
pub async fn recover(store: &Store, engine: &EngineChoice, told: &(dyn Fn(&RunRecord) + Sync)) -> Result<Recovered, RunError> {
    let mut done = Recovered { expired: store.expire_approvals(chrono::Utc::now())?, ..Default::default() };
    let claimed = store.promotions_to_resume()?;
    let unswept = !store.unswept_runs()?.is_empty();
    if claimed.is_empty() && !unswept {
        return Ok(done);
    }
    let engine = match crate::engine::connect(engine).await {
        Ok(e) => e,
        Err(e) => {
            if !claimed.is_empty() {
                done.deferred.push(format!(
                    "{} approved promotion(s) wait to be finished, but Docker is unreachable ({e}); the next gantry command retries",
                    claimed.len()
                ));
            }
            if unswept {
                tracing::warn!(error = %e, "could not sweep Docker objects of interrupted runs");
            }
            return Ok(done);
        }
    };
    for run in claimed {
        told(&run);
        done.promotions.push(crate::coordinator::approvals::promote(store, engine.clone(), run, &mut crate::recorder::Quiet).await?);
    }
    if unswept {
        match crate::sweep::finished_runs(store, None, engine.steps.as_ref()).await {
            Ok(n) => done.swept = n,
            Err(e) => {
                tracing::warn!(error = %e, "could not sweep Docker objects of interrupted runs")
            }
        }
    }
    Ok(done)
}
