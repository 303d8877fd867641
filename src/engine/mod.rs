//! The engine seams: everything Gantry asks of a container engine goes through two traits,
//! shaped like the work rather than like containers. `Steps` runs a run's steps (set up a
//! run, start a step, follow, wait, stop, tear down, sweep); `Environments` holds
//! environments (services, versions, preview, go-live, rollback, locks). `docker` implements
//! both; `fake` implements both in memory for tests. The kind of engine is chosen once, by
//! `connect`; nothing above this module names a concrete engine.

mod environments;
mod error;
pub mod fake;
pub mod pool;
mod spec;
mod steps;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

pub use environments::{
    EnvironmentView, Environments, Lock, ObjectView, Retired, RouterDef, ServiceDef, ServiceState, Serving, TaskView, VersionDef, VersionInfo,
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
/// local socket, or an engine of the config's `engines:`.
#[derive(Debug, Clone, Default)]
pub struct EngineChoice {
    pub docker_host: Option<String>,
    /// For a `tcp://` host: the client's certificates (else `DOCKER_TLS_VERIFY` and
    /// `DOCKER_CERT_PATH` decide, as for the docker CLI).
    pub tls: Option<TlsFiles>,
    /// A Swarm manager: environments are Swarm services there.
    pub swarm: bool,
    /// Where images go for a swarm's nodes to pull (`registry:` of the config).
    pub registry: Option<String>,
}

impl EngineChoice {
    pub fn docker(host: Option<&str>) -> Self {
        EngineChoice { docker_host: host.map(str::to_string), ..Default::default() }
    }
}

/// The client's TLS files for a `tcp://` engine (the docker CLI's `ca.pem`, `cert.pem`,
/// `key.pem`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The docker CLI's convention: `DOCKER_TLS_VERIFY` set (not `0`) means the three files
    /// under `DOCKER_CERT_PATH`, else under `~/.docker`.
    pub fn from_docker_env() -> Option<TlsFiles> {
        std::env::var("DOCKER_TLS_VERIFY").ok().filter(|v| !v.is_empty() && v != "0")?;
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| dirs::home_dir().map(|h| h.join(".docker")))?;
        Some(TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") })
    }
}



/// Connects to the engine the operator chose. An engine that does not answer is one
/// clear error naming where Gantry looked.
pub async fn connect(choice: &EngineChoice) -> Result<Engine, EngineError> {
    let docker = crate::docker::DockerEngine::connect(choice.docker_host.as_deref(), choice.tls.as_ref()).await?;
    if choice.swarm {
        let swarm = crate::docker::SwarmEnvironments::on(docker.clone(), choice.registry.clone()).await?;
        return Ok(Engine { steps: Arc::new(docker), environments: Arc::new(swarm) });
    }
    let docker = Arc::new(docker);
    Ok(Engine { steps: docker.clone(), environments: docker })
}

impl Engine {
    /// An engine of in-memory fakes, for tests that need no Docker.
    pub fn fake(fake: Arc<fake::FakeEngine>) -> Engine {
        Engine { steps: fake.clone(), environments: fake }
    }
}
