//! The rest of a run whose promotion was approved: the promote stage's deployment (and
//! verification), driven by the process that claimed it, or by the next gantry command
//! when that process died. The run's other stages finished long ago.

use std::time::Duration;

use crate::engine::Engine;
use crate::events::{AttemptOutcome, EventKind, RunState};
use crate::pipeline::{StagePlan, Vars};
use crate::stages::{Emitter, RunContext};
use crate::store::RunRecord;

/// Performs the claimed promotion of `run`, emitting its events up to `RunFinished`.
/// Returns the run's final state.
pub async fn run(engine: &Engine, run: &RunRecord, emit: Emitter) -> RunState {
    let Some(approval) = &run.approval else {
        let message = "the run has no approved promotion to perform".to_string();
        emit.event(EventKind::RunFinished { state: RunState::Failed, message: Some(message) });
        return RunState::Failed;
    };
    let request = &approval.request;
    let attempt = run.stages.iter().find(|s| s.name == request.stage).map_or(1, |s| s.attempts + 1);
    let timeout = Duration::from_secs(request.timeout_secs.max(1));
    // Only its name and timeout matter to the promotion's executor.
    let stage = StagePlan {
        name: request.stage.clone(),
        image: String::new(),
        commands: Vec::new(),
        env: Default::default(),
        needs: Vec::new(),
        timeout,
        retries: 0,
        when: None,
        secrets: Vec::new(),
        action: Default::default(),
        limits: Default::default(),
    };
    // A claimed promotion is finished, not abandoned: nothing cancels it. The rules were
    // checked when the approval claimed the promotion, in the same transaction as the claim.
    let vars = request.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vars>();
    let ctx = RunContext::outside_plan(engine, &run.id, &run.pipeline, run.commit.clone(), vars, emit.clone());

    emit.event(EventKind::StageStarted { stage: stage.name.clone(), attempt });
    let deadline = tokio::time::Instant::now() + timeout;
    let work = async {
        // One change at a time in the target, as for a run's own stages.
        if let Err(waited) = crate::stages::lock::hold(&ctx, &stage.name, attempt, &request.deploy.environment).await {
            return waited;
        }
        crate::stages::promote::perform(&ctx, &stage, &request.deploy, request.verify.as_ref(), attempt, deadline).await
    };
    let outcome = tokio::select! {
        outcome = work => outcome,
        _ = tokio::time::sleep_until(deadline + Duration::from_secs(5)) => AttemptOutcome::TimedOut { after_secs: timeout.as_secs() },
    };
    emit.event(EventKind::AttemptFinished { stage: stage.name.clone(), attempt, result: outcome.clone(), will_retry: false });
    let (state, message) = match &outcome {
        AttemptOutcome::Succeeded => (RunState::Succeeded, None),
        other => (RunState::Failed, Some(format!("stage '{}' {}", stage.name, other.describe()))),
    };
    super::end(engine.steps.as_ref(), &run.id, &emit, state, message).await;
    state
}
