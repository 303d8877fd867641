//! The Docker engine: the only code that speaks the Docker API (bollard). `DockerEngine`
//! implements both engine seams (`engine::Steps` in `steps.rs`, `engine::Environments` in
//! `environments.rs` with its locks in `locks.rs`) over the container verbs of `Containers`,
//! which stay inside this module.

mod engine;
mod environments;
mod error;
mod locks;
mod steps;
mod swarm;

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use engine::DockerEngine;
pub use swarm::SwarmEnvironments;

pub(crate) use crate::engine::Confinement;
pub(crate) use crate::engine::{
    BuildRequest, EngineError as DockerError, ExitState, ImageFacts, OutputChunk, StepSpec as ContainerSpec, SweepReport, AGENT_USER,
    WORKLOAD_CAP_DROP,
};
pub(crate) use crate::labels::{ENVIRONMENT_LABEL, RUN_LABEL};

/// A container as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub labels: HashMap<String, String>,
    pub running: bool,
}

/// A network as a listing shows it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NetworkInfo {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// The container verbs of the Docker API that the seams are made of; private to this
/// module, so nothing above it drives containers one call at a time.
#[async_trait]
pub(crate) trait Containers: Send + Sync + 'static {
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
    /// `attach` for a container created held: also its stdin, which the returned release
    /// writes `go` to (or closes).
    async fn attach_held(
        &self,
        container: &str,
    ) -> Result<(BoxStream<'static, Result<OutputChunk, DockerError>>, crate::engine::Release), DockerError>;
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
