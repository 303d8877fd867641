//! `gantry env rollback`: a run of one stage that puts an environment's kept previous
//! version live again through the deploy mechanism (health-checked, under the
//! environment's lock), recorded as a deployment like any other.

use std::time::Duration;

use crate::commit::CommitInfo;
use crate::engine::Engine;
use crate::events::{AttemptOutcome, EventKind, RunState, StageResult};
use crate::pipeline::{Plan, StagePlan, Vars};
use crate::stages::{Emitter, RunContext};

/// The name of the rollback run's one stage.
pub const STAGE: &str = "rollback";

/// The plan a rollback run is recorded with.
pub fn plan(environment: &str, app: &str) -> Plan {
    Plan {
        name: "rollback".into(),
        source: format!("gantry env rollback {environment} --app {app}"),
        stages: vec![stage(Duration::from_secs(600))],
        vars: Default::default(),
        environments: Default::default(),
        placement: Default::default(),
    }
}

fn stage(timeout: Duration) -> StagePlan {
    StagePlan {
        name: STAGE.into(),
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
    }
}

/// Performs the rollback of `app` in `environment` (to `to`, if named) as run `run_id`,
/// whose commit is the version put back; emits its events up to `RunFinished`.
pub async fn run(
    engine: &Engine,
    run_id: &str,
    commit: CommitInfo,
    environment: &str,
    app: &str,
    to: Option<&str>,
    emit: Emitter,
) -> RunState {
    let stage = stage(Duration::from_secs(600));
    // Who may roll back was checked by the command that asked.
    let ctx = RunContext::outside_plan(engine, run_id, "rollback", commit, Vars::new(), emit.clone());
    emit.event(EventKind::StageStarted { stage: STAGE.into(), attempt: 1 });
    let deadline = tokio::time::Instant::now() + stage.timeout;
    let outcome = match crate::stages::lock::hold(&ctx, STAGE, 1, environment).await {
        Err(waited) => waited,
        Ok(()) => {
            let (outcome, record) = crate::stages::deploy::roll_back_by_hand(&ctx, &stage, environment, app, to, 1, deadline).await;
            if let Some(d) = record {
                emit.event(EventKind::StageResult { stage: STAGE.into(), result: StageResult::Deployment(d) });
            }
            outcome
        }
    };
    emit.event(EventKind::AttemptFinished { stage: STAGE.into(), attempt: 1, result: outcome.clone(), will_retry: false });
    let (state, message) = match &outcome {
        AttemptOutcome::Succeeded => (RunState::Succeeded, None),
        other => (RunState::Failed, Some(format!("the rollback of {app} in {environment} {}", other.describe()))),
    };
    super::end(engine.steps.as_ref(), run_id, &emit, state, message).await;
    state
}
