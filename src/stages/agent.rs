//! Running one of Gantry's own agents (smoke, load) against an environment: the spec goes
//! in as a file uploaded before start, the agent joins the environment's network, and its
//! JSON result is read back out of the stopped container through the archive API.

use std::collections::HashMap;

use tokio::time::Instant;

use super::container::{self, Ended};
use super::environment;
use super::RunContext;
use crate::docker::{Backend, ContainerSpec, RUN_LABEL, STAGE_LABEL};
use crate::pipeline::spec::Version;

pub const SPEC_PATH: &str = "/gantry/spec.json";
pub const OUT_DIR: &str = "/gantry/out";

/// What came back from an agent run.
pub struct AgentRun {
    pub ended: Ended,
    /// The result file, if the agent wrote one (even a partial one before dying).
    pub result: Option<Vec<u8>>,
}

pub enum AgentError {
    /// The environment has no app to aim at.
    NoTarget(String),
    Docker(crate::docker::DockerError),
}

/// Base URL of `app` in `env` (its live version or its preview), as seen from the
/// environment's network.
pub async fn target_url<B: Backend>(ctx: &RunContext<B>, env: &str, app: &str, version: Version) -> Result<String, AgentError> {
    let preview = version == Version::Preview;
    match environment::app_url(ctx.backend.as_ref(), env, app, preview).await {
        Ok(Some(url)) => Ok(url),
        Ok(None) => Err(AgentError::NoTarget(format!(
            "environment '{env}' has no {} of app '{app}' (deploy it first with a `kind: deploy` stage{})",
            if preview { "preview" } else { "live version" },
            if preview { " in `mode: preview`" } else { "" }
        ))),
        Err(e) => Err(AgentError::Docker(e)),
    }
}

/// Runs agent `image` with `args`, the spec uploaded at SPEC_PATH, on `env`'s network.
pub async fn run<B: Backend>(
    ctx: &RunContext<B>,
    stage: &str,
    attempt: u32,
    image: &str,
    env: &str,
    args: Vec<String>,
    spec_json: &[u8],
    result_file: &str,
    deadline: Instant,
) -> Result<AgentRun, AgentError> {
    let spec = ContainerSpec {
        name: format!("gantry-{}-{stage}-{attempt}", ctx.run_id),
        image: image.to_string(),
        cmd: args,
        labels: HashMap::from([
            (RUN_LABEL.to_string(), ctx.run_id.clone()),
            (STAGE_LABEL.to_string(), stage.to_string()),
        ]),
        network: Some(environment::network(env)),
        ..Default::default()
    };
    // The agents run as nobody: their output directory must be writable by anyone.
    let upload = container::tar_of(&[("gantry/spec.json", spec_json, 0o644)], &[("gantry", 0o755), ("gantry/out", 0o777)]);
    let created = container::create(ctx, &spec, &[("/", upload)]).await.map_err(AgentError::Docker)?;
    let ended = container::run(ctx, stage, attempt, &created.id, deadline).await;
    let result = match ctx.backend.download(&created.id, &format!("{OUT_DIR}/{result_file}")).await {
        Ok(tar) => container::file_from_tar(&tar),
        Err(_) => None,
    };
    container::remove(ctx, created).await;
    Ok(AgentRun { ended: ended.map_err(AgentError::Docker)?, result })
}
