//! Running one of Gantry's own agents (smoke, load) against an environment: the spec goes
//! in as a file uploaded before start, the agent joins the environment's network, and its
//! JSON result is read back out of the stopped container through the archive API. The
//! agent's root filesystem is read-only: spec and result live in a scratch volume at
//! /gantry (the engine accepts uploads into a volume of a read-only container).

use std::collections::HashMap;

use super::container;
use super::RunContext;
use crate::engine::{Confinement, EngineError, StepSpec};
use crate::events::AttemptOutcome;
use crate::labels::{RUN_LABEL, STAGE_LABEL};
use crate::pipeline::spec::Version;

/// The agent's scratch volume: the only place it can write.
pub const SCRATCH: &str = "/gantry";
pub const SPEC_PATH: &str = "/gantry/spec.json";
pub const OUT_DIR: &str = "/gantry/out";

pub enum AgentError {
    /// The environment has no app to aim at.
    NoTarget(String),
    Engine(EngineError),
}

impl AgentError {
    pub fn outcome(self, ctx: &RunContext) -> AttemptOutcome {
        match self {
            AgentError::NoTarget(message) => AttemptOutcome::Error { message },
            AgentError::Engine(e) => ctx.error(e),
        }
    }
}

/// Base URL of `app` in `env` (its live version or its preview), as seen from the
/// environment's network.
pub async fn target_url(ctx: &RunContext, env: &str, app: &str, version: Version) -> Result<String, AgentError> {
    let preview = version == Version::Preview;
    match ctx.envs.app_url(env, app, preview).await {
        Ok(Some(url)) => Ok(url),
        Ok(None) => Err(AgentError::NoTarget(format!(
            "environment '{env}' has no {} of app '{app}' (deploy it first with a `kind: deploy` stage{})",
            if preview { "preview" } else { "live version" },
            if preview { " in `mode: preview`" } else { "" }
        ))),
        Err(e) => Err(AgentError::Engine(e)),
    }
}

/// Creates agent `image`'s container (an id `RunContext::agent_image` checked) on `env`'s
/// network with `args`, the spec uploaded at SPEC_PATH and a world-writable OUT_DIR (the
/// agents run as nobody), under the stage's limits.
pub async fn create(
    ctx: &RunContext,
    plan: &crate::pipeline::StagePlan,
    attempt: u32,
    image: &str,
    env: &str,
    args: Vec<String>,
    spec_json: &[u8],
) -> Result<container::Created, AgentError> {
    let stage = plan.name.as_str();
    let spec = StepSpec {
        name: crate::labels::stage_container(&ctx.run_id, stage, attempt),
        image: image.to_string(),
        cmd: args,
        labels: HashMap::from([(RUN_LABEL.to_string(), ctx.run_id.clone()), (STAGE_LABEL.to_string(), stage.to_string())]),
        network: Some(ctx.envs.network(env)),
        limits: Some(ctx.limits(plan)),
        confinement: Confinement::Agent,
        scratch: Some(SCRATCH.into()),
        ..Default::default()
    };
    let upload = container::tar_of(&[("spec.json", spec_json, 0o644)], &[("out", 0o777)]);
    container::create(ctx, &spec, &[(SCRATCH, upload)]).await.map_err(AgentError::Engine)
}

/// Reads the agent's result file out of its container (running or stopped), if written.
pub async fn result(ctx: &RunContext, id: &str, file: &str) -> Option<Vec<u8>> {
    let tar = ctx.steps.download(id, &format!("{OUT_DIR}/{file}")).await.ok()?;
    container::file_from_tar(&tar)
}
