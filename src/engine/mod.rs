//! The engine seams: everything Gantry asks of a container engine goes through two traits,
//! shaped like the work rather than like containers. `Steps` runs a run's steps (set up a
//! run, start a step, follow, wait, stop, tear down, sweep); `Environments` holds
//! environments (services, versions, preview, go-live, rollback, locks). `docker` implements
//! both; `fake` implements both in memory for tests. The kind of engine is chosen once, by
//! `connect`; nothing above this module names a concrete engine.

mod environments;
mod error;
pub mod fake;
mod spec;
mod steps;

use std::sync::Arc;

pub use environments::{
    EnvironmentView, Environments, Lock, ObjectView, Retired, RouterDef, ServiceDef, ServiceState, Serving, VersionDef, VersionInfo,
};
pub use error::EngineError;
pub use spec::{
    BuildRequest, Confinement, ExitState, ImageFacts, Output, OutputChunk, Release, ResourceLimits, StepSpec, SweepReport, AGENT_USER, HOLD_GATE,
    WORKLOAD_CAP_DROP,
};
pub use steps::{RunScope, StepId, Steps};

/// The engine a process drives: its step runner and its environment holder (one Docker
/// engine is both today; several engines and Swarm can make them differ).
#[derive(Clone)]
pub struct Engine {
    pub steps: Arc<dyn Steps>,
    pub environments: Arc<dyn Environments>,
}

/// Where the engine is: the operator's choice, from `--docker-host`, `DOCKER_HOST` or the
/// local socket.
#[derive(Debug, Clone, Default)]
pub struct EngineChoice {
    pub docker_host: Option<String>,
}

impl EngineChoice {
    pub fn docker(host: Option<&str>) -> Self {
        EngineChoice { docker_host: host.map(str::to_string) }
    }
}

/// Connects to the engine the operator chose. An engine that does not answer is one
/// clear error naming where Gantry looked.
pub async fn connect(choice: &EngineChoice) -> Result<Engine, EngineError> {
    let docker = Arc::new(crate::docker::DockerEngine::connect(choice.docker_host.as_deref()).await?);
    Ok(Engine { steps: docker.clone(), environments: docker })
}

impl Engine {
    /// An engine of in-memory fakes, for tests that need no Docker.
    pub fn fake(fake: Arc<fake::FakeEngine>) -> Engine {
        Engine { steps: fake.clone(), environments: fake }
    }
}
