//! The environment seam: what holding environments asks of an engine, in the words of a
//! deployment (ensure an environment and its services, start a version, preview it, put it
//! live, roll back, list, destroy), and the environment locks that keep two runs from
//! interleaving there. How "live" is made real (Docker: a router and network aliases;
//! Swarm: a service update) is the engine's business; the stages only ask.

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};

use super::{EngineError, Output, ResourceLimits};
use crate::pipeline::spec::HealthSpec;

/// A service an environment should run (a cache, a database).
#[derive(Debug, Clone)]
pub struct ServiceDef {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// Ports published on the host's loopback: (host port, container port).
    pub published: Vec<(u16, u16)>,
    pub limits: ResourceLimits,
    /// What the service is, as a stable hash: the same fingerprint later is the same service.
    pub fingerprint: String,
}

/// A service as the environment holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceState {
    /// The engine's handle (for `exec`, `remove_service`).
    pub handle: String,
    /// Its name as the pipeline gave it, if it carries one.
    pub service: Option<String>,
    /// Its object's name on the engine.
    pub name: String,
    pub fingerprint: Option<String>,
    pub running: bool,
}

/// What answers for an app at its stable name and port, forwarding to the live version.
#[derive(Debug, Clone)]
pub struct RouterDef {
    pub app: String,
    pub port: u16,
    /// A host port it is published on, if any.
    pub publish: Option<u16>,
    /// The router agent's image, checked by the caller.
    pub image: String,
}

/// A new version of an app to start in an environment.
#[derive(Debug, Clone)]
pub struct VersionDef {
    pub app: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub port: u16,
    /// How to tell it is healthy again, should it be put back by hand later.
    pub health: Option<HealthSpec>,
    pub commit: String,
    pub commit_short: String,
    pub commit_time: DateTime<FixedOffset>,
    pub author: String,
    pub limits: ResourceLimits,
    /// Tasks that serve it (a Swarm engine; a Docker engine runs one container).
    pub replicas: Option<u32>,
    /// How Swarm rolls it out over the last version's tasks.
    pub update: Option<crate::pipeline::spec::UpdateSpec>,
    /// Swarm placement constraints (`node.labels.zone==a`).
    pub placement: Vec<String>,
}

/// What a version is doing in its environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// Answers at the app's stable name.
    Live,
    /// Answers at `<app>-preview` only.
    Preview,
    /// Running, answering at its own name only (being checked, or an interrupted go-live).
    Starting,
    /// Stopped, kept for a rollback.
    Kept,
}

impl Serving {
    pub fn describe(self) -> &'static str {
        match self {
            Serving::Live => "live",
            Serving::Preview => "preview",
            Serving::Starting => "starting",
            Serving::Kept => "stopped (kept for rollback)",
        }
    }
}

/// A version of an app in an environment, read back from what it was deployed with.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    /// The engine's handle on it.
    pub id: String,
    /// Its own name on the environment's network.
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub commit: String,
    pub commit_time: Option<DateTime<FixedOffset>>,
    pub author: String,
    /// The run that deployed it.
    pub run_id: Option<String>,
    pub port: Option<u16>,
    pub health: Option<HealthSpec>,
    pub serving: Serving,
}

/// A version that stopped serving when another went live.
#[derive(Debug, Clone, PartialEq)]
pub struct Retired {
    pub name: String,
    pub image: String,
}

/// What an environment's lock said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// This run holds it now.
    Taken,
    /// Another run (or this one, from an earlier attempt) holds it.
    HeldBy(Option<String>),
}

/// What runs in an environment, read from the engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnvironmentView {
    pub name: String,
    pub network: String,
    pub services: Vec<ObjectView>,
    pub routers: Vec<ObjectView>,
    pub versions: Vec<ObjectView>,
    /// On a Swarm engine: every task of the environment's services, by node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskView>,
}

/// One Swarm task: a container of a service on a node.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskView {
    /// The service it belongs to (its object name).
    pub service: String,
    /// Node host name (or id, if the node is gone).
    pub node: String,
    /// Swarm's word for its state: running, starting, failed, shutdown, ...
    pub state: String,
    /// What Swarm wants of it: running or shutdown.
    pub desired: String,
    pub image: String,
    /// Swarm's message, or the error that ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectView {
    pub name: String,
    pub image: String,
    pub running: bool,
    /// Service name, or app name for routers and versions.
    pub of: String,
    pub commit: Option<String>,
    /// For routers: where the app answers on the host, if published.
    pub url: Option<String>,
    /// For versions: `live`, `preview` or `starting`.
    pub serving: Option<String>,
}

#[async_trait]
pub trait Environments: Send + Sync + 'static {
    fn endpoint(&self) -> &str;
    /// The network of an environment, where its services and apps answer by name (and
    /// where a run's probes and agents join it).
    fn network(&self, env: &str) -> String;
    /// Makes the environment exist (its network); returns the network.
    async fn ensure(&self, env: &str, run_id: &str) -> Result<String, EngineError>;
    async fn services(&self, env: &str) -> Result<Vec<ServiceState>, EngineError>;
    /// Starts a service under its name (whatever had that name must be gone); returns its
    /// handle.
    async fn start_service(&self, env: &str, run_id: &str, service: &ServiceDef) -> Result<String, EngineError>;
    async fn remove_service(&self, env: &str, handle: &str) -> Result<(), EngineError>;
    /// Runs a command inside a service or version; returns its exit code and output.
    async fn exec(&self, handle: &str, cmd: Vec<String>) -> Result<(i64, String), EngineError>;
    /// Makes the app's router exist as `router` says; true when it (re)started one.
    async fn ensure_router(&self, env: &str, run_id: &str, router: &RouterDef) -> Result<bool, EngineError>;
    /// Starts a new version beside the others, answering at its own name only.
    async fn start_version(&self, env: &str, run_id: &str, version: &VersionDef) -> Result<VersionInfo, EngineError>;
    /// A version's output from its start, following it while it runs.
    fn version_output(&self, id: &str) -> Output;
    /// Every version of the app in the environment, running or kept.
    async fn versions(&self, env: &str, app: &str) -> Result<Vec<VersionInfo>, EngineError>;
    async fn remove_version(&self, env: &str, id: &str) -> Result<(), EngineError>;
    /// Makes `id` the app's only preview (earlier previews go); returns the removed ones' names.
    async fn preview(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, EngineError>;
    /// Puts `id` live; the version that was live is stopped and kept for a rollback, older
    /// ones go. Returns the versions it retired.
    async fn go_live(&self, env: &str, app: &str, id: &str) -> Result<Vec<Retired>, EngineError>;
    /// Starts a kept version again, answering at its own name, to be checked before it is
    /// restored.
    async fn revive(&self, env: &str, app: &str, id: &str) -> Result<(), EngineError>;
    /// Puts a revived version live and removes every other running one; returns their names.
    async fn restore(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, EngineError>;
    /// The app's base URL on the environment's network (live, or its preview).
    async fn app_url(&self, env: &str, app: &str, preview: bool) -> Result<Option<String>, EngineError>;
    /// Where the app answers on the host, if its router is published.
    async fn published_url(&self, env: &str, app: &str) -> Result<Option<String>, EngineError>;
    /// Every environment on the engine.
    async fn list(&self) -> Result<Vec<EnvironmentView>, EngineError>;
    async fn describe(&self, env: &str) -> Result<EnvironmentView, EngineError>;
    /// Removes everything of an environment; returns (objects, networks) removed.
    async fn destroy(&self, env: &str) -> Result<(u32, u32), EngineError>;
    /// Takes the environment's lock for `run_id` if it is free (atomically, for every
    /// gantry on the engine); the lock goes with the run's other objects.
    async fn lock(&self, env: &str, run_id: &str) -> Result<Lock, EngineError>;
    /// Marks `run_id` (of `project`) as waiting for the environment.
    async fn wait_ticket(&self, env: &str, run_id: &str, project: &str) -> Result<(), EngineError>;
    async fn drop_ticket(&self, env: &str, run_id: &str) -> Result<(), EngineError>;
    /// Runs of `project` waiting for the environment.
    async fn waiting(&self, env: &str, project: &str) -> Result<Vec<String>, EngineError>;
}
