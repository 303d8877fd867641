//! The step seam on Docker: a step is a container on the run's network with the run's
//! workspace volume; a run's objects carry its `io.gantry.run` label, which is how its
//! teardown (and the sweep after a crash) finds them.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Containers, DockerEngine, DockerError, ENVIRONMENT_LABEL, RUN_LABEL};
use crate::engine::{BuildRequest, ExitState, ImageFacts, Output, Release, RunScope, StepId, StepSpec, Steps, SweepReport};

#[async_trait]
impl Steps for DockerEngine {
    fn endpoint(&self) -> &str {
        Containers::endpoint(self)
    }

    fn version(&self) -> String {
        self.api_version()
    }

    async fn ping(&self) -> Result<(), DockerError> {
        self.answers().await
    }

    async fn setup_run(&self, scope: &RunScope) -> Result<(), DockerError> {
        let labels = HashMap::from([(RUN_LABEL.to_string(), scope.run_id.clone())]);
        let (network, volume) =
            tokio::join!(self.create_network(&scope.network, labels.clone()), self.create_volume(&scope.workspace, labels));
        network.and(volume)
    }

    async fn create_step(&self, spec: &StepSpec) -> Result<StepId, DockerError> {
        self.ensure_image(&spec.image).await?;
        self.create_container(spec).await
    }

    async fn upload(&self, step: &str, path: &str, tar: Bytes) -> Result<(), DockerError> {
        Containers::upload(self, step, path, tar).await
    }

    async fn start_step(&self, step: &str) -> Result<Output, DockerError> {
        // Attached before it starts: following the logs instead can miss an unterminated
        // last line written at exit.
        let output = self.attach(step).await?;
        self.start(step).await?;
        Ok(output)
    }

    async fn start_held(&self, step: &str) -> Result<(Output, Release), DockerError> {
        let (output, release) = self.attach_held(step).await?;
        self.start(step).await?;
        Ok((output, release))
    }

    async fn wait_step(&self, step: &str) -> Result<i64, DockerError> {
        self.wait(step).await
    }

    async fn exit_state(&self, step: &str) -> Result<ExitState, DockerError> {
        Containers::exit_state(self, step).await
    }

    async fn stop_step(&self, step: &str) -> Result<(), DockerError> {
        self.kill(step).await
    }

    fn tail_step(&self, step: &str) -> Output {
        self.output(step)
    }

    async fn download(&self, step: &str, path: &str) -> Result<Bytes, DockerError> {
        Containers::download(self, step, path).await
    }

    async fn remove_step(&self, step: &str) -> Result<(), DockerError> {
        self.remove_container(step).await
    }

    async fn destroy_run(&self, run_id: &str) -> Result<SweepReport, DockerError> {
        self.sweep_run(run_id).await
    }

    async fn runs_with_objects(&self) -> Result<Vec<String>, DockerError> {
        let (containers, networks) = tokio::join!(self.find_containers(&[(RUN_LABEL, "")]), self.find_networks(&[(RUN_LABEL, "")]));
        let labels = containers?.into_iter().map(|c| c.labels).chain(networks?.into_iter().map(|n| n.labels));
        // A deployed environment's objects live on by design: they are no run's leftovers.
        let mut owners: Vec<String> =
            labels.filter(|l| !l.contains_key(ENVIRONMENT_LABEL)).filter_map(|mut l| l.remove(RUN_LABEL)).collect();
        owners.sort();
        owners.dedup();
        Ok(owners)
    }

    async fn build_image(
        &self,
        context: Bytes,
        request: &BuildRequest,
        output: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String, DockerError> {
        Containers::build_image(self, context, request, output).await
    }

    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError> {
        Containers::image_facts(self, image).await
    }
}
