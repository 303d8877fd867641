//! The step seam: what running a run's steps asks of an engine, in the words of the work
//! (as Woodpecker's backend does: set up a workflow, start a step, wait, tail, destroy).
//! A step is one container of a run: an attempt of a stage, a probe, an agent.

use async_trait::async_trait;
use bytes::Bytes;

use super::{BuildRequest, EngineError, ExitState, ImageFacts, Output, Release, StepSpec, SweepReport};

/// An engine's handle on a created step (Docker: the container id).
pub type StepId = String;

/// Where a run's steps meet: its network and its workspace volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunScope {
    pub run_id: String,
    pub network: String,
    pub workspace: String,
}

#[async_trait]
pub trait Steps: Send + Sync + 'static {
    /// Where the engine is, for messages.
    fn endpoint(&self) -> &str;
    /// The engine's kind and protocol version, for the start of a run's output.
    fn version(&self) -> String;
    /// Whether the engine answers now (the pool's health check).
    async fn ping(&self) -> Result<(), EngineError>;
    /// Creates the run's network and workspace volume (SetupWorkflow).
    async fn setup_run(&self, scope: &RunScope) -> Result<(), EngineError>;
    /// Creates a step, not started, making sure its image is there (pulling it if it can).
    async fn create_step(&self, spec: &StepSpec) -> Result<StepId, EngineError>;
    /// Extracts a tar archive at `path` inside a created or running step.
    async fn upload(&self, step: &str, path: &str, tar: Bytes) -> Result<(), EngineError>;
    /// Starts a created step; its output is every byte it writes, to its end (StartStep).
    async fn start_step(&self, step: &str) -> Result<Output, EngineError>;
    /// Starts a step created `held`, ahead of its turn: it runs up to its gate and waits
    /// there; its output is every byte it writes once released. The costly part of a
    /// start (for Docker: joining the network) is then off the critical path.
    async fn start_held(&self, step: &str) -> Result<(Output, Release), EngineError>;
    /// Waits for the step to stop; returns its exit code (WaitStep).
    async fn wait_step(&self, step: &str) -> Result<i64, EngineError>;
    /// How a stopped step ended: whether the OOM killer ended it, under what limit.
    async fn exit_state(&self, step: &str) -> Result<ExitState, EngineError>;
    /// Ends a running step at once.
    async fn stop_step(&self, step: &str) -> Result<(), EngineError>;
    /// The step's output from its beginning, following it while it runs (TailStep).
    fn tail_step(&self, step: &str) -> Output;
    /// Reads `path` out of a (possibly stopped) step as a tar archive.
    async fn download(&self, step: &str, path: &str) -> Result<Bytes, EngineError>;
    /// Removes a step, running or not (DestroyStep).
    async fn remove_step(&self, step: &str) -> Result<(), EngineError>;
    /// Removes everything labelled with the run, except deployed environments' objects
    /// (DestroyWorkflow; also the sweep after a crash).
    async fn destroy_run(&self, run_id: &str) -> Result<SweepReport, EngineError>;
    /// Runs that own objects on the engine other than environments': what a sweep looks at.
    async fn runs_with_objects(&self) -> Result<Vec<String>, EngineError>;
    /// Builds an image; each line of builder output goes to `output`. Returns the image id.
    /// A failing Dockerfile is `EngineError::Build` with the builder's own message.
    async fn build_image(
        &self,
        context: Bytes,
        request: &BuildRequest,
        output: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String, EngineError>;
    /// The id and labels of an image on the engine, if it is there; never pulls.
    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, EngineError>;
}
