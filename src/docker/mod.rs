//! The engine boundary: everything Gantry asks of a container engine goes through the
//! `Backend` trait, and `engine::DockerEngine` (bollard) is the only code that speaks the
//! Docker API. A Swarm or remote backend is one more implementation of this trait.

mod engine;
mod error;

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use engine::DockerEngine;
pub use error::DockerError;

pub use crate::labels::{ENVIRONMENT_LABEL, PROJECT_LABEL, RUN_LABEL, STAGE_LABEL};

/// What a container may use of the host, enforced by the engine's cgroups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// Bytes of memory, swap included: past it the kernel's OOM killer ends a process.
    pub memory: u64,
    /// CPU time as a number of CPUs (1.5: one and a half cores' worth per period).
    pub cpus: f64,
    /// Processes and threads at once: a fork bomb stops here.
    pub pids: i64,
}

/// How much of the kernel a container's processes may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confinement {
    /// The pipeline's code (stages, services, app versions): Docker's default capabilities
    /// less NET_RAW (raw sockets: spoofing on the run's network), MKNOD (device nodes) and
    /// AUDIT_WRITE, which no build or test tool needs.
    #[default]
    Workload,
    /// Gantry's own agents: no capabilities at all, a read-only root filesystem, user 65534;
    /// the only writable place is the spec's scratch volume.
    Agent,
}

/// Capabilities a workload container loses from Docker's default set.
pub const WORKLOAD_CAP_DROP: &[&str] = &["NET_RAW", "MKNOD", "AUDIT_WRITE"];
/// The user agents run as (nobody), whatever their image says.
pub const AGENT_USER: &str = "65534:65534";

/// How a stopped container ended, beyond its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitState {
    /// The kernel's OOM killer ended a process of the container (its memory limit).
    pub oom_killed: bool,
    /// The memory limit it ran under, in bytes, if it had one.
    pub memory_limit: Option<u64>,
}

/// An image as an inspect shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageFacts {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// What to create: one container for one attempt of a stage.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub labels: HashMap<String, String>,
    pub network: Option<String>,
    pub aliases: Vec<String>,
    /// Named volumes to mount: (volume name, path in the container).
    pub volumes: Vec<(String, String)>,
    /// Ports published on the host's loopback: (host port, container port).
    pub published: Vec<(u16, u16)>,
    /// Memory, CPU and process limits; `None` only for containers that never start.
    pub limits: Option<ResourceLimits>,
    pub confinement: Confinement,
    /// A path given an anonymous volume (labelled as the container is, removed with it):
    /// where a read-only agent receives its spec and writes its result.
    pub scratch: Option<String>,
}

/// What to build: the context is a tar archive; the rest mirrors `docker build`.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub tag: String,
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub labels: HashMap<String, String>,
    /// Memory and CPU of the builder's intermediate containers (the classic builder takes
    /// no process limit).
    pub limits: Option<ResourceLimits>,
}

/// A container as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
}

/// A network as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// A piece of a container's output, as the engine delivers it (not line-aligned).
#[derive(Debug, Clone)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub containers: u32,
    pub networks: u32,
    pub volumes: u32,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.containers + self.networks + self.volumes == 0
    }
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Where the engine is, for messages.
    fn endpoint(&self) -> &str;
    /// Makes sure the image is on the engine, pulling it if it can.
    async fn ensure_image(&self, image: &str) -> Result<(), DockerError>;
    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError>;
    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError>;
    /// Creates (does not start) a container; returns its id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError>;
    /// Extracts a tar archive at `path` inside a (created or running) container.
    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), DockerError>;
    async fn start(&self, container: &str) -> Result<(), DockerError>;
    /// Follows the container's output until it stops (through its logs: also works for a
    /// container already running or stopped).
    fn output(&self, container: &str) -> BoxStream<'static, Result<OutputChunk, DockerError>>;
    /// Attaches to a created, not yet started container: every byte it writes, to its end.
    /// (Following the logs instead can miss an unterminated last line written at exit.)
    async fn attach(&self, container: &str) -> Result<BoxStream<'static, Result<OutputChunk, DockerError>>, DockerError>;
    /// Waits for the container to stop; returns its exit code.
    async fn wait(&self, container: &str) -> Result<i64, DockerError>;
    async fn kill(&self, container: &str) -> Result<(), DockerError>;
    async fn remove_container(&self, container: &str) -> Result<(), DockerError>;
    /// Removes every container, network and volume labelled `io.gantry.run=<run_id>`,
    /// except those of deployed environments.
    async fn sweep_run(&self, run_id: &str) -> Result<SweepReport, DockerError>;
    /// Builds an image; each line of builder output goes to `output`. Returns the image id.
    /// A failing Dockerfile is `DockerError::Build` with the builder's own message.
    async fn build_image(
        &self,
        context: Bytes,
        request: &BuildRequest,
        output: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String, DockerError>;
    /// The id of an image on the engine, if it is there.
    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError>;
    /// The id and labels of an image on the engine, if it is there; never pulls.
    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError>;
    /// How a stopped container ended: whether the OOM killer ended it, under what limit.
    async fn exit_state(&self, container: &str) -> Result<ExitState, DockerError>;
    /// Runs a command in a running container; returns its exit code and output.
    async fn exec(&self, container: &str, cmd: Vec<String>) -> Result<(i64, String), DockerError>;
    /// Joins a container to a network under the given aliases.
    async fn connect(&self, network: &str, container: &str, aliases: Vec<String>) -> Result<(), DockerError>;
    async fn disconnect(&self, network: &str, container: &str) -> Result<(), DockerError>;
    /// Containers carrying all the given labels (running or not); an empty value matches
    /// any value of that label.
    async fn find_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DockerError>;
    /// Networks carrying all the given labels.
    async fn find_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>, DockerError>;
    async fn remove_network(&self, network: &str) -> Result<(), DockerError>;
    /// Reads `path` out of a (possibly stopped) container as a tar archive.
    async fn download(&self, container: &str, path: &str) -> Result<Bytes, DockerError>;
    /// The aliases a container has on a network (empty when it is not on it).
    async fn aliases(&self, container: &str, network: &str) -> Result<Vec<String>, DockerError>;
    /// Stops a container, killing it after `grace`.
    async fn stop(&self, container: &str, grace: std::time::Duration) -> Result<(), DockerError>;
}
