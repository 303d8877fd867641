//! Runs a Plan: stages start when their needs are met (in parallel up to a limit), honour
//! timeouts, retries and cancellation, and the run's Docker objects are swept on every
//! exit path with a context of their own, so a cancelled run still cleans up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineError, RunScope, Steps};
use crate::events::{AttemptOutcome, EventKind, RunState, StageState};
use crate::mask::Masker;
use crate::pipeline::{Plan, Vars};
use crate::stages::{Emitter, RunContext};

pub mod promotion;
pub mod rerun;
pub mod rollback;

/// Everything a run needs besides the engine.
pub struct RunRequest {
    pub run_id: String,
    pub plan: Plan,
    pub commit: crate::commit::CommitInfo,
    pub workspace: Bytes,
    pub secrets: BTreeMap<String, String>,
    /// How many stages may run at once.
    pub max_parallel: usize,
    /// Values for the pipeline's declared `vars`, overriding their defaults.
    pub var_overrides: BTreeMap<String, String>,
    /// Cancelled when the process driving the run shuts down (the service stopping): the
    /// run then ends `interrupted`, not `cancelled`, as it would after kill -9. Pass a token
    /// that is never cancelled when that cannot happen.
    pub shutdown: CancellationToken,
    /// The operator's protections, with the run's project and the branches holding its commit.
    pub policy: crate::policy::RunPolicy,
    /// The local repository the commit came from, for the authors of a promoted change.
    pub repo: Option<std::path::PathBuf>,
    /// Stages taken over from an earlier run (`gantry rerun --failed`): they end as they
    /// ended there, in their turn, without running.
    pub takeover: BTreeMap<String, rerun::TakenOver>,
}

/// The start of the message of a run interrupted because its engine stopped answering.
pub const ENGINE_LOST: &str = "the engine stopped answering";

/// Drives the run to its end and returns its final state. All state changes go out through
/// `emit`; the last one is always `RunFinished`.
pub async fn run(engine: Engine, request: RunRequest, emit: Emitter, cancel: CancellationToken) -> RunState {
    let RunRequest { run_id, plan, commit, workspace, secrets, max_parallel, var_overrides, shutdown, policy, repo, takeover } = request;
    let declared = plan.vars.iter().map(|(k, default)| {
        let value = var_overrides.get(k).unwrap_or(default);
        (format!("var.{k}"), value.clone())
    });
    let vars = declared
        .fold(Vars::new(), |vars, (k, v)| vars.with(k, v))
        .with("commit.sha", commit.sha.clone())
        .with("commit.short", commit.short.clone())
        .with("commit.branch", commit.branch.clone().unwrap_or_default())
        .with("run.id", run_id.clone())
        .with("pipeline.name", plan.name.clone());
    let ctx = Arc::new(RunContext {
        steps: engine.steps.clone(),
        envs: engine.environments.clone(),
        network: crate::labels::run_network(&run_id),
        workspace_volume: crate::labels::run_workspace(&run_id),
        run_id: run_id.clone(),
        pipeline: plan.name.clone(),
        commit,
        workspace,
        masker: Masker::new(secrets.values().cloned()),
        secrets,
        vars,
        emit: emit.clone(),
        cancel: cancel.clone(),
        workspace_filled: tokio::sync::OnceCell::new(),
        approvals: approvals(&plan, &policy),
        policy: Arc::new(policy),
        repo,
        held: Default::default(),
        cancelled_because: Default::default(),
        ahead: Default::default(),
    });

    tracing::debug!(run = %run_id, pipeline = %plan.name, stages = plan.stages.len(), "run starting");
    let (mut state, mut message) = match setup(&ctx).await {
        Ok(()) => run_dag(&ctx, &plan, max_parallel.max(1), &takeover).await,
        Err(e) => (RunState::Failed, Some(e.to_string())),
    };
    if state != RunState::Succeeded {
        // A run whose engine no longer answers did not fail on its own merits: it was
        // interrupted, and the engine is named (the service may run it again elsewhere).
        if let Err(e) = ctx.steps.ping().await {
            state = RunState::Interrupted;
            message = Some(format!("{ENGINE_LOST}: {e}"));
        } else if shutdown.is_cancelled() && state == RunState::Cancelled {
            state = RunState::Interrupted;
            message = Some("the gantry service driving this run stopped".into());
        }
    }

    ctx.ahead.settle(ctx.steps.as_ref()).await;
    end(engine.steps.as_ref(), &run_id, &emit, state, message).await;
    state
}

/// The approval each environment's promotions need: the stricter of the pipeline's rule
/// and the operator's floor, so a pipeline that drops its approval changes nothing.
fn approvals(plan: &Plan, policy: &crate::policy::RunPolicy) -> BTreeMap<String, crate::pipeline::spec::ApprovalRule> {
    let mut names: Vec<&String> = plan.environments.keys().chain(policy.protections.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| {
            let asked = plan.environments.get(name).and_then(|e| e.approval.as_ref());
            Some((name.clone(), crate::policy::effective_approval(asked, policy.floor(name))?))
        })
        .collect()
}

/// Sweeps the run's Docker objects and says the run is over. Cleanup does not listen to
/// the cancel token: it must finish even after Ctrl-C.
async fn end(steps: &dyn Steps, run_id: &str, emit: &Emitter, state: RunState, message: Option<String>) {
    match crate::sweep::tear_down(steps, run_id).await {
        Ok(r) => emit.event(EventKind::Swept { containers: r.containers, networks: r.networks, volumes: r.volumes }),
        Err(e) => {
            tracing::error!(run = %run_id, error = %e, "could not remove the run's Docker objects; the next gantry command will retry")
        }
    }
    tracing::debug!(run = %run_id, ?state, "run finished");
    emit.event(EventKind::RunFinished { state, message });
}

async fn setup(ctx: &RunContext) -> Result<(), EngineError> {
    let scope = RunScope { run_id: ctx.run_id.clone(), network: ctx.network.clone(), workspace: ctx.workspace_volume.clone() };
    ctx.steps.setup_run(&scope).await
}

async fn run_dag(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    max_parallel: usize,
    takeover: &BTreeMap<String, rerun::TakenOver>,
) -> (RunState, Option<String>) {
    let mut states: HashMap<&str, StageState> = plan.stages.iter().map(|s| (s.name.as_str(), StageState::Pending)).collect();
    let mut failures: Vec<String> = Vec::new();
    let mut awaiting: Vec<String> = Vec::new();
    let mut running: JoinSet<(String, AttemptOutcome)> = JoinSet::new();
    let mut doomed: std::collections::HashSet<&str> = std::collections::HashSet::new();

    loop {
        if !ctx.cancel.is_cancelled() {
            for stage in &plan.stages {
                if states[stage.name.as_str()] != StageState::Pending || running.len() >= max_parallel {
                    continue;
                }
                let needs: Vec<(&str, StageState)> = stage.needs.iter().map(|n| (n.as_str(), states[n.as_str()])).collect();
                if needs.iter().any(|(_, s)| !s.is_terminal()) {
                    continue;
                }
                // A gate judges the stages it needs, failed or not; anything else needs them
                // to have succeeded.
                let judges = matches!(stage.action, crate::pipeline::spec::Action::Promote(_));
                // A stage skipped because of a failure does not satisfy what needs it (one
                // skipped by its branch filter does).
                if let Some((need, _)) = needs.iter().find(|(n, s)| !s.satisfies_needs() || doomed.contains(n)).filter(|_| !judges) {
                    doomed.insert(stage.name.as_str());
                    skip(ctx, &mut states, &stage.name, format!("needs '{need}', which did not succeed"));
                    continue;
                }
                if let Some(when) = &stage.when {
                    if !when.matches(ctx.commit.branch.as_deref()) {
                        let branch = ctx.commit.branch.as_deref().unwrap_or("(no branch)");
                        skip(ctx, &mut states, &stage.name, format!("branch {branch} does not match when.branch"));
                        continue;
                    }
                }
                states.insert(stage.name.as_str(), StageState::Running);
                let ctx = ctx.clone();
                let stage = stage.clone();
                let taken = takeover.get(&stage.name).cloned();
                running.spawn(async move {
                    let outcome = match taken {
                        Some(t) => take_over(&ctx, &stage.name, &t).await,
                        None => crate::stages::run_stage(&ctx, &stage).await,
                    };
                    (stage.name, outcome)
                });
            }
            prepare_ahead(ctx, plan, &states, &doomed, takeover, max_parallel);
        }
        let Some(joined) = running.join_next().await else {
            break;
        };
        match joined {
            Ok((name, outcome)) => {
                let state = outcome.stage_state();
                match state {
                    StageState::Succeeded | StageState::Cancelled => {}
                    StageState::AwaitingApproval => awaiting.push(format!("stage '{name}' {}", outcome.describe())),
                    _ => failures.push(format!("stage '{name}' {}", outcome.describe())),
                }
                let key = plan.stages.iter().find(|s| s.name == name).map(|s| s.name.as_str()).unwrap_or_default();
                states.insert(key, state);
            }
            Err(e) => {
                // A panicking executor is a bug; fail the run rather than hang it.
                failures.push(format!("a stage task crashed: {e}"));
                ctx.cancel.cancel();
            }
        }
        // Once cancelled, a stage that has not started never will.
        if ctx.cancel.is_cancelled() {
            for stage in &plan.stages {
                if states[stage.name.as_str()] == StageState::Pending {
                    states.insert(stage.name.as_str(), StageState::Cancelled);
                }
            }
        }
    }

    let because = ctx.cancelled_because.lock().expect("cancel reason").clone();
    if let (true, Some(because)) = (ctx.cancel.is_cancelled(), because) {
        (RunState::Cancelled, Some(format!("cancelled: {because}")))
    } else if ctx.cancel.is_cancelled() && failures.is_empty() {
        (RunState::Cancelled, Some("cancelled".into()))
    } else if ctx.cancel.is_cancelled() {
        (RunState::Cancelled, Some(format!("cancelled; {}", failures.join("; "))))
    } else if failures.is_empty() && !awaiting.is_empty() {
        (RunState::AwaitingApproval, Some(awaiting.join("; ")))
    } else if failures.is_empty() {
        (RunState::Succeeded, None)
    } else {
        (RunState::Failed, Some(failures.join("; ")))
    }
}

/// A stage taken over from an earlier run: it ends as it ended there, with its result
/// (an image is checked to be the same on the engine still). A deployment's record is not
/// repeated: the reports count each deployment once.
async fn take_over(ctx: &RunContext, stage: &str, t: &rerun::TakenOver) -> AttemptOutcome {
    use crate::events::StageResult;
    ctx.emit.event(EventKind::StageStarted { stage: stage.to_string(), attempt: 1 });
    ctx.note(stage, 1, format!("taken over from run {}, where it succeeded", t.from_run));
    let outcome = match &t.stage.result {
        Some(StageResult::Image { tag, image_id }) => match ctx.steps.image_facts(tag).await {
            Ok(Some(facts)) if &facts.id == image_id => AttemptOutcome::Succeeded,
            Ok(_) => AttemptOutcome::Error {
                message: format!(
                    "the image {tag} that run {} built is no longer on the engine as it was; rerun without --failed",
                    t.from_run
                ),
            },
            Err(e) => ctx.error(e),
        },
        _ => AttemptOutcome::Succeeded,
    };
    if outcome == AttemptOutcome::Succeeded {
        if let Some(result) = t.stage.result.clone().filter(|r| !matches!(r, StageResult::Deployment(_))) {
            ctx.emit.event(EventKind::StageResult { stage: stage.to_string(), result });
        }
    }
    ctx.emit.event(EventKind::AttemptFinished { stage: stage.to_string(), attempt: 1, result: outcome.clone(), will_retry: false });
    outcome
}

/// Creates and starts (held at their gate), ahead of their turn, the steps of command
/// stages that wait only for stages now running: when those finish, the next one's
/// commands begin at once instead of after a create and a start.
/// At most `max_parallel` wait like this, so a wide fan-out does not fill the engine with
/// idle containers.
fn prepare_ahead(
    ctx: &Arc<RunContext>,
    plan: &Plan,
    states: &HashMap<&str, StageState>,
    doomed: &std::collections::HashSet<&str>,
    takeover: &BTreeMap<String, rerun::TakenOver>,
    max_parallel: usize,
) {
    for stage in &plan.stages {
        if ctx.ahead.waiting() >= max_parallel {
            return;
        }
        let runs_commands = matches!(stage.action, crate::pipeline::spec::Action::Run);
        if states[stage.name.as_str()] != StageState::Pending || !runs_commands || takeover.contains_key(&stage.name) {
            continue;
        }
        if ctx.ahead.is_prepared(&stage.name) || stage.when.as_ref().is_some_and(|w| !w.matches(ctx.commit.branch.as_deref())) {
            continue;
        }
        let need_states = || stage.needs.iter().map(|n| (n.as_str(), states[n.as_str()]));
        let some_running = need_states().any(|(_, s)| s == StageState::Running);
        let rest_done = need_states().all(|(n, s)| s == StageState::Running || (s.satisfies_needs() && !doomed.contains(n)));
        if some_running && rest_done {
            let spec = crate::stages::command::step_spec(ctx, stage, 1, true);
            ctx.ahead.prepare(ctx.steps.clone(), &stage.name, spec);
        }
    }
}

fn skip<'a>(ctx: &RunContext, states: &mut HashMap<&'a str, StageState>, stage: &'a str, reason: String) {
    states.insert(stage, StageState::Skipped);
    ctx.emit.event(EventKind::StageSkipped { stage: stage.to_string(), reason });
}

#[cfg(test)]
pub(crate) mod tests;
