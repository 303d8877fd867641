//! Stage executors: one per stage kind. The scheduler hands an executor a stage and a
//! context; the executor asks the engine seams (`ctx.steps`, `ctx.envs`) for the work and
//! reports only through emitted events.

pub mod agent;
pub mod ahead;
pub mod build;
pub mod command;
pub mod container;
pub mod deploy;
pub mod health;
pub mod load;
pub mod lock;
pub mod promote;
pub mod provision;
pub mod smoke;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

pub use crate::channel::{Emitter, StageMemory};
use crate::commit::CommitInfo;
use crate::engine::{Engine, EngineError, Environments, Steps};
use crate::events::{AttemptOutcome, EventKind, Stream};
use crate::mask::Masker;
use crate::pipeline::spec::Action;
use crate::pipeline::StagePlan;
use crate::pipeline::Vars;

/// What every stage of a run shares.
pub struct RunContext {
    /// Runs the run's steps (its containers).
    pub steps: Arc<dyn Steps>,
    /// Holds the environments the run provisions, deploys to and promotes into.
    pub envs: Arc<dyn Environments>,
    pub run_id: String,
    pub pipeline: String,
    pub commit: CommitInfo,
    /// The checked-out commit, as a tar archive, for the workspace volume.
    pub workspace: Bytes,
    pub network: String,
    pub workspace_volume: String,
    /// Secret values by name; only ever leave this struct as container env.
    pub secrets: BTreeMap<String, String>,
    pub masker: Masker,
    pub vars: Vars,
    pub emit: Emitter,
    pub cancel: CancellationToken,
    /// The workspace is filled once, into whichever stage container is created first.
    pub workspace_filled: tokio::sync::OnceCell<()>,
    /// Environments whose promotions wait for approval, and their rules: the stricter of
    /// the pipeline's and the operator's.
    pub approvals: BTreeMap<String, crate::pipeline::spec::ApprovalRule>,
    /// The operator's protections and the facts of this run they are checked against.
    pub policy: std::sync::Arc<crate::policy::RunPolicy>,
    /// The repository the commit came from (a local path), for the authors of a change.
    pub repo: Option<std::path::PathBuf>,
    /// Environments this run holds the lock of (`lock::hold`), until it ends.
    pub held: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Why the run cancelled itself, when it did (a newer run waiting for the same
    /// environment under `locks.newest_cancels_waiting`): its message.
    pub cancelled_because: std::sync::Mutex<Option<String>>,
    /// Steps created ahead of their turn and removed after it, off the critical path.
    pub ahead: ahead::Ahead,
}

impl RunContext {
    /// The context of work done as a run outside a scheduled plan (an approved promotion,
    /// a rollback by hand): no workspace, no secrets, no variables; rules were checked by
    /// whoever asked; nothing cancels it.
    pub fn outside_plan(engine: &Engine, run_id: &str, pipeline: &str, commit: CommitInfo, vars: Vars, emit: Emitter) -> RunContext {
        RunContext {
            steps: engine.steps.clone(),
            envs: engine.environments.clone(),
            run_id: run_id.to_string(),
            pipeline: pipeline.to_string(),
            commit,
            workspace: Default::default(),
            network: crate::labels::run_network(run_id),
            workspace_volume: crate::labels::run_workspace(run_id),
            secrets: Default::default(),
            masker: Masker::new(std::iter::empty::<String>()),
            vars,
            emit,
            cancel: CancellationToken::new(),
            workspace_filled: tokio::sync::OnceCell::new(),
            approvals: Default::default(),
            policy: Default::default(),
            repo: None,
            held: Default::default(),
            cancelled_because: Default::default(),
            ahead: Default::default(),
        }
    }

    /// Variables every container of the run sees.
    pub fn base_env(&self, stage: &str, attempt: u32) -> Vec<String> {
        vec![
            "CI=true".into(),
            "GANTRY=true".into(),
            format!("GANTRY_RUN_ID={}", self.run_id),
            format!("GANTRY_PIPELINE={}", self.pipeline),
            format!("GANTRY_STAGE={stage}"),
            format!("GANTRY_ATTEMPT={attempt}"),
            format!("GANTRY_COMMIT_SHA={}", self.commit.sha),
            format!("GANTRY_COMMIT_SHORT={}", self.commit.short),
            format!("GANTRY_BRANCH={}", self.commit.branch.clone().unwrap_or_default()),
        ]
    }

    /// The memory, CPU and process limits of `stage`'s containers: what it asks, else the
    /// operator's defaults, within the operator's maximum.
    pub fn limits(&self, stage: &StagePlan) -> crate::engine::ResourceLimits {
        self.policy.limits.effective(&stage.limits)
    }

    /// Checks that `agent`'s image is the one `agents/build.sh` built; returns the image id
    /// to create its container from. A refusal is said in the stage's log.
    pub async fn agent_image(&self, stage: &str, attempt: u32, agent: crate::agents::Agent) -> Result<String, AttemptOutcome> {
        crate::agents::verify(self.steps.as_ref(), &self.policy.agents, agent).await.map_err(|e| {
            let message = self.masker.mask(&e.to_string());
            self.note(stage, attempt, message.clone());
            AttemptOutcome::Error { message }
        })
    }

    /// An engine error as an attempt outcome, masked like everything else that leaves.
    pub fn error(&self, e: EngineError) -> AttemptOutcome {
        AttemptOutcome::Error { message: self.masker.mask(&e.to_string()) }
    }

    /// A line of Gantry's own in the stage's log (what it did, where things answer).
    pub fn note(&self, stage: &str, attempt: u32, text: impl Into<String>) {
        self.emit.log(stage, attempt, Stream::Stdout, self.masker.mask(&text.into()));
    }

    /// Asks the operator's rules whether `stage` may make `change` to `environment`; a
    /// refusal is the stage's outcome, said in its log, before the engine is touched.
    pub fn allowed(&self, stage: &str, attempt: u32, environment: &str, change: crate::policy::Change) -> Result<(), AttemptOutcome> {
        self.policy.check(environment, change, stage).map_err(|refusal| {
            let message = format!("refused: {refusal}");
            self.note(stage, attempt, message.clone());
            AttemptOutcome::Refused { message }
        })
    }

    /// `allowed`, then the environment's lock for the rest of the run: what a stage asks
    /// before it changes an environment.
    pub async fn may_change(
        &self,
        stage: &str,
        attempt: u32,
        environment: &str,
        change: crate::policy::Change,
    ) -> Result<(), AttemptOutcome> {
        self.allowed(stage, attempt, environment, change)?;
        lock::hold(self, stage, attempt, environment).await
    }
}

/// Runs a stage with its retries; returns the outcome of the last attempt. Each attempt
/// has the stage's timeout as its deadline, whatever its kind.
pub async fn run_stage(ctx: &RunContext, stage: &StagePlan) -> AttemptOutcome {
    let attempts = stage.retries + 1;
    let mut attempt = 1;
    loop {
        ctx.emit.event(EventKind::StageStarted { stage: stage.name.clone(), attempt });
        let deadline = tokio::time::Instant::now() + stage.timeout;
        let started = tokio::time::Instant::now();
        let work = async {
            match &stage.action {
                Action::Run => command::attempt(ctx, stage, attempt, deadline).await,
                Action::Build(spec) => build::attempt(ctx, stage, spec, attempt).await,
                Action::Provision(spec) => provision::attempt(ctx, stage, spec, attempt, deadline).await,
                Action::Deploy(spec) => deploy::attempt(ctx, stage, spec, attempt, deadline).await,
                Action::Smoke(spec) => smoke::attempt(ctx, stage, spec, attempt, deadline).await,
                Action::Load(spec) => load::attempt(ctx, stage, spec, attempt, deadline).await,
                Action::Promote(spec) => promote::attempt(ctx, stage, spec, attempt, deadline).await,
            }
        };
        // Kinds that run containers end them at the deadline themselves; this bound
        // catches everything else (a build, a health wait) so no attempt outlives it.
        let outcome = tokio::select! {
            outcome = work => outcome,
            _ = tokio::time::sleep_until(deadline + std::time::Duration::from_secs(5)) =>
                AttemptOutcome::TimedOut { after_secs: started.elapsed().as_secs() },
        };
        let retryable = matches!(outcome, AttemptOutcome::Failed { .. } | AttemptOutcome::TimedOut { .. } | AttemptOutcome::Error { .. });
        let will_retry = retryable && attempt < attempts && !ctx.cancel.is_cancelled();
        ctx.emit.event(EventKind::AttemptFinished { stage: stage.name.clone(), attempt, result: outcome.clone(), will_retry });
        if !will_retry {
            return outcome;
        }
        attempt += 1;
    }
}

#[cfg(test)]
mod tests;
