//! The bollard implementation of `Backend`: a local or remote Docker engine, with the API
//! version negotiated at connect time (the engines we meet speak 1.41, older than bollard's).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::{
    Config, CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogOutput, LogsOptions,
    RemoveContainerOptions, UploadToContainerOptions, WaitContainerOptions,
};
use bollard::image::CreateImageOptions;
use bollard::models::{EndpointSettings, HostConfig, Mount, MountTypeEnum};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::error::{is_not_found, reason};
use super::{Backend, ContainerSpec, DockerError, OutputChunk, SweepReport, ENVIRONMENT_LABEL, RUN_LABEL};

/// Requests that follow a container (logs, wait) last as long as the stage; Gantry enforces
/// stage timeouts itself, so the client's own timeout only has to be out of the way.
const CLIENT_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
}

impl DockerEngine {
    /// Connects to `host` (else `DOCKER_HOST`, else the local socket) and negotiates the API
    /// version. An engine that does not answer is one clear error naming where we looked.
    pub async fn connect(host: Option<&str>) -> Result<DockerEngine, DockerError> {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let unreachable = |reason: String| DockerError::Unreachable { endpoint: endpoint.clone(), reason };
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
            Docker::connect_with_http(&endpoint, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if endpoint.starts_with('/') {
            Docker::connect_with_unix(&endpoint, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else {
            return Err(unreachable("unsupported address (use unix:///path or tcp://host:port)".into()));
        }
        .map_err(|e| unreachable(reason(&e)))?;
        let docker = match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => return Err(unreachable(reason(&e))),
            Err(_) => return Err(unreachable(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()))),
        };
        // negotiate_version only reads /version; ping proves the API answers at that version.
        docker.ping().await.map_err(|e| unreachable(reason(&e)))?;
        Ok(DockerEngine { docker, endpoint })
    }

    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// The raw bollard client, for benchmarks that compare against the bare API.
    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    fn label_filter(run_id: &str) -> HashMap<String, Vec<String>> {
        HashMap::from([("label".to_string(), vec![format!("{RUN_LABEL}={run_id}")])])
    }
}

fn is_environment(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.contains_key(ENVIRONMENT_LABEL))
}

#[async_trait]
impl Backend for DockerEngine {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn ensure_image(&self, image: &str) -> Result<(), DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(DockerError::api(format!("inspect of image '{image}'"), &e)),
        }
        tracing::info!(image, "image not on the engine; pulling");
        let options = CreateImageOptions { from_image: image, ..Default::default() };
        let mut pull = self.docker.create_image(Some(options), None, None);
        while let Some(progress) = pull.next().await {
            match progress {
                Ok(info) => {
                    if let Some(err) = info.error {
                        return Err(DockerError::ImageUnavailable { image: image.into(), reason: err });
                    }
                }
                Err(e) => return Err(DockerError::ImageUnavailable { image: image.into(), reason: reason(&e) }),
            }
        }
        // A pull that "succeeds" without producing the image is still a failure to the user.
        self.docker.inspect_image(image).await.map(|_| ()).map_err(|e| DockerError::ImageUnavailable {
            image: image.into(),
            reason: reason(&e),
        })
    }

    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        let options = CreateNetworkOptions {
            name: name.to_string(),
            driver: "bridge".to_string(),
            check_duplicate: true,
            labels,
            ..Default::default()
        };
        self.docker
            .create_network(options)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::api(format!("create of network '{name}'"), &e))
    }

    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        let options = CreateVolumeOptions { name: name.to_string(), labels, ..Default::default() };
        self.docker
            .create_volume(options)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::api(format!("create of volume '{name}'"), &e))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let mounts = spec
            .volumes
            .iter()
            .map(|(volume, target)| Mount {
                typ: Some(MountTypeEnum::VOLUME),
                source: Some(volume.clone()),
                target: Some(target.clone()),
                ..Default::default()
            })
            .collect();
        let host_config = HostConfig {
            mounts: Some(mounts),
            network_mode: spec.network.clone(),
            // Unprivileged by construction: no --privileged, no host paths, no socket, and
            // no way to gain privileges through setuid binaries.
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            ..Default::default()
        };
        let networking_config = spec.network.as_ref().map(|net| bollard::container::NetworkingConfig {
            endpoints_config: HashMap::from([(
                net.clone(),
                EndpointSettings { aliases: Some(spec.aliases.clone()), ..Default::default() },
            )]),
        });
        let config = Config {
            image: Some(spec.image.clone()),
            entrypoint: Some(spec.entrypoint.clone()),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            working_dir: Some(spec.working_dir.clone()),
            labels: Some(spec.labels.clone()),
            host_config: Some(host_config),
            networking_config,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: spec.name.clone(), platform: None };
        self.docker
            .create_container(Some(options), config)
            .await
            .map(|r| r.id)
            .map_err(|e| DockerError::api(format!("create of container '{}'", spec.name), &e))
    }

    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), DockerError> {
        let options = UploadToContainerOptions { path: path.to_string(), ..Default::default() };
        self.docker
            .upload_to_container(container, Some(options), tar)
            .await
            .map_err(|e| DockerError::api(format!("upload into '{container}:{path}'"), &e))
    }

    async fn start(&self, container: &str) -> Result<(), DockerError> {
        self.docker
            .start_container::<String>(container, None)
            .await
            .map_err(|e| DockerError::api("container start", &e))
    }

    fn output(&self, container: &str) -> BoxStream<'static, Result<OutputChunk, DockerError>> {
        let options = LogsOptions::<String> { follow: true, stdout: true, stderr: true, ..Default::default() };
        // bollard's stream owns its own handle on the client, so it can outlive this call.
        self.docker
            .logs(container, Some(options))
            .map_err(|e| DockerError::api("log stream", &e))
            .try_filter_map(|out| async move {
                Ok(match out {
                    LogOutput::StdOut { message } | LogOutput::Console { message } => Some(OutputChunk::Stdout(message)),
                    LogOutput::StdErr { message } => Some(OutputChunk::Stderr(message)),
                    LogOutput::StdIn { .. } => None,
                })
            })
            .boxed()
    }

    async fn wait(&self, container: &str) -> Result<i64, DockerError> {
        let options = WaitContainerOptions { condition: "not-running" };
        let mut wait = self.docker.wait_container(container, Some(options));
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(DockerError::api("container wait", &e)),
            None => Err(DockerError::Api { action: "container wait".into(), reason: "no answer".into() }),
        }
    }

    async fn kill(&self, container: &str) -> Result<(), DockerError> {
        match self.docker.kill_container(container, Some(KillContainerOptions { signal: "SIGKILL" })).await {
            Ok(()) => Ok(()),
            // Already stopped or gone: the goal is reached.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(DockerError::api("container kill", &e)),
        }
    }

    async fn remove_container(&self, container: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // "removal already in progress"
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(DockerError::api("container removal", &e)),
        }
    }

    async fn sweep_run(&self, run_id: &str) -> Result<SweepReport, DockerError> {
        let mut report = SweepReport::default();
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Self::label_filter(run_id),
                ..Default::default()
            }))
            .await
            .map_err(|e| DockerError::api("container list", &e))?;
        for c in containers.into_iter().filter(|c| !is_environment(c.labels.as_ref())) {
            if let Some(id) = c.id {
                self.remove_container(&id).await?;
                report.containers += 1;
            }
        }
        let networks = self
            .docker
            .list_networks(Some(ListNetworksOptions { filters: Self::label_filter(run_id) }))
            .await
            .map_err(|e| DockerError::api("network list", &e))?;
        for n in networks.into_iter().filter(|n| !is_environment(n.labels.as_ref())) {
            if let Some(id) = n.id {
                match self.docker.remove_network(&id).await {
                    Ok(()) => report.networks += 1,
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(DockerError::api("network removal", &e)),
                }
            }
        }
        let volumes = self
            .docker
            .list_volumes(Some(ListVolumesOptions { filters: Self::label_filter(run_id) }))
            .await
            .map_err(|e| DockerError::api("volume list", &e))?;
        for v in volumes.volumes.unwrap_or_default().into_iter().filter(|v| !v.labels.contains_key(ENVIRONMENT_LABEL)) {
            match self.docker.remove_volume(&v.name, None).await {
                Ok(()) => report.volumes += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(DockerError::api("volume removal", &e)),
            }
        }
        Ok(report)
    }
}
