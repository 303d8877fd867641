//! The bollard client and its container verbs (`Containers`): a local or remote Docker engine, with the API
//! version negotiated at connect time (the engines we meet speak 1.41, older than bollard's).
// bollard 0.19 deprecates its hand-written option structs for generated builders; they
// still work, and moving every call over is its own change.
#![allow(deprecated)]

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::container::{AttachContainerOptions, DownloadFromContainerOptions, StopContainerOptions};
use bollard::container::{
    Config, CreateContainerOptions, KillContainerOptions, ListContainersOptions, LogOutput, LogsOptions, RemoveContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::image::{BuildImageOptions, BuilderVersion, CreateImageOptions};
use bollard::models::ImageId;
use bollard::models::{EndpointSettings, HostConfig, Mount, MountTypeEnum, PortBinding};
use bollard::network::{ConnectNetworkOptions, DisconnectNetworkOptions};
use bollard::network::{CreateNetworkOptions, ListNetworksOptions};
use bollard::volume::{CreateVolumeOptions, ListVolumesOptions};
use bollard::Docker;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};

use super::error::{api, is_not_found, reason};
use super::{
    BuildRequest, Confinement, ContainerInfo, ContainerSpec, Containers, DockerError, ExitState, ImageFacts, NetworkInfo, OutputChunk,
    SweepReport, AGENT_USER, ENVIRONMENT_LABEL, RUN_LABEL, WORKLOAD_CAP_DROP,
};

/// The CFS period CPU limits are expressed in (Docker's default, 100 ms). A quota, not
/// `NanoCpus`: the engine refuses NanoCpus above the host's CPU count, while a quota above
/// it simply never binds, so one operator default fits hosts of any size.
const CPU_PERIOD_US: i64 = 100_000;

/// The most memory a build can be given through bollard's i32 query parameter.
const BUILD_MEMORY_MAX: u64 = i32::MAX as u64;

fn cpu_quota(cpus: f64) -> i64 {
    // The engine's floor is 1 ms per period.
    ((cpus * CPU_PERIOD_US as f64).round() as i64).max(1_000)
}

/// Requests that follow a container (logs, wait) last as long as the stage; Gantry enforces
/// stage timeouts itself, so the client's own timeout only has to be out of the way.
const CLIENT_TIMEOUT_SECS: u64 = 7 * 24 * 3600;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const PING_TIMEOUT: Duration = Duration::from_secs(3);
const DEFAULT_ENDPOINT: &str = "unix:///var/run/docker.sock";

#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    endpoint: String,
}

impl DockerEngine {
    /// Connects to `host` (else `DOCKER_HOST`, else the local socket) and negotiates the API
    /// version. An engine that does not answer is one clear error naming where we looked.
    pub async fn connect(host: Option<&str>, tls: Option<&crate::engine::TlsFiles>) -> Result<DockerEngine, DockerError> {
        let endpoint = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let unreachable = |reason: String| DockerError::Unreachable { endpoint: endpoint.clone(), reason };
        let tcp = endpoint.starts_with("tcp://") || endpoint.starts_with("https://") || endpoint.starts_with("http://");
        // The docker CLI's convention for a tcp host: DOCKER_TLS_VERIFY and DOCKER_CERT_PATH.
        let tls = tls.cloned().or_else(|| if tcp { crate::engine::TlsFiles::from_docker_env() } else { None });
        let docker = if let Some(path) = endpoint.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if let (true, Some(tls)) = (tcp, &tls) {
            for file in [&tls.ca, &tls.cert, &tls.key] {
                if !file.is_file() {
                    return Err(unreachable(format!("TLS file {} is missing", file.display())));
                }
            }
            // bollard's TLS client takes the process's default crypto provider: ring, as
            // the rest of Gantry's TLS (an error only means one is installed already).
            let _ = rustls::crypto::ring::default_provider().install_default();
            Docker::connect_with_ssl(&endpoint, &tls.key, &tls.cert, &tls.ca, CLIENT_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
        } else if tcp {
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
        tracing::debug!(endpoint = %endpoint, api = %docker.client_version(), "connected to the Docker engine");
        Ok(DockerEngine { docker, endpoint })
    }

    /// A ping with a short deadline: an engine that stopped answering says so quickly.
    pub async fn answers(&self) -> Result<(), DockerError> {
        let unreachable = |reason: String| DockerError::Unreachable { endpoint: self.endpoint.clone(), reason };
        match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unreachable(reason(&e))),
            Err(_) => Err(unreachable(format!("no answer within {}s", PING_TIMEOUT.as_secs()))),
        }
    }

    pub fn api_version(&self) -> String {
        self.docker.client_version().to_string()
    }

    /// Attaches to a container's output (and to its stdin, for a held one); call it before the start.
    async fn attach_streams(&self, container: &str, stdin: bool) -> Result<bollard::container::AttachContainerResults, DockerError> {
        let options = AttachContainerOptions::<String> {
            stdin: Some(stdin),
            stdout: Some(true),
            stderr: Some(true),
            stream: Some(true),
            // Always attached before the start, so there is no past output to replay; and
            // replaying it races the stream (the engine subscribes to the stream first, then
            // reads the log file): a step that runs to its end in between is sent twice.
            logs: Some(false),
            ..Default::default()
        };
        self.docker.attach_container(container, Some(options)).await.map_err(|e| api("container attach", &e))
    }

    /// The raw bollard client, for benchmarks that compare against the bare API.
    pub fn raw(&self) -> &Docker {
        &self.docker
    }

    fn label_filter(run_id: &str) -> HashMap<String, Vec<String>> {
        Self::labels_filter(&[(RUN_LABEL, run_id)])
    }

    fn labels_filter(labels: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
        // An empty value means "has the label", whatever its value.
        let filters = labels.iter().map(|(k, v)| if v.is_empty() { k.to_string() } else { format!("{k}={v}") });
        HashMap::from([("label".to_string(), filters.collect())])
    }
}

fn is_environment(labels: Option<&HashMap<String, String>>) -> bool {
    labels.is_some_and(|l| l.contains_key(ENVIRONMENT_LABEL))
}

#[async_trait]
impl Containers for DockerEngine {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn ensure_image(&self, image: &str) -> Result<(), DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api(format!("inspect of image '{image}'"), &e)),
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
        self.docker
            .inspect_image(image)
            .await
            .map(|_| ())
            .map_err(|e| DockerError::ImageUnavailable { image: image.into(), reason: reason(&e) })
    }

    async fn create_network(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        let options = CreateNetworkOptions {
            name: name.to_string(),
            driver: "bridge".to_string(),
            check_duplicate: true,
            labels,
            ..Default::default()
        };
        self.docker.create_network(options).await.map(|_| ()).map_err(|e| api(format!("create of network '{name}'"), &e))
    }

    async fn create_volume(&self, name: &str, labels: HashMap<String, String>) -> Result<(), DockerError> {
        let options = CreateVolumeOptions { name: name.to_string(), labels, ..Default::default() };
        self.docker.create_volume(options).await.map(|_| ()).map_err(|e| api(format!("create of volume '{name}'"), &e))
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        let mut mounts: Vec<Mount> = spec
            .volumes
            .iter()
            .map(|(volume, target)| Mount {
                typ: Some(MountTypeEnum::VOLUME),
                source: Some(volume.clone()),
                target: Some(target.clone()),
                ..Default::default()
            })
            .collect();
        if let Some(target) = &spec.scratch {
            // No source: an anonymous volume, removed with the container (`v: true`); the
            // run's label lets the sweep find it should the container's removal be missed.
            let labels = spec.labels.get(RUN_LABEL).map(|run| HashMap::from([(RUN_LABEL.to_string(), run.clone())]));
            mounts.push(Mount {
                typ: Some(MountTypeEnum::VOLUME),
                target: Some(target.clone()),
                volume_options: Some(bollard::models::MountVolumeOptions { labels, ..Default::default() }),
                ..Default::default()
            });
        }
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .published
            .iter()
            .map(|(host, container)| {
                let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(host.to_string()) };
                (format!("{container}/tcp"), Some(vec![binding]))
            })
            .collect();
        let exposed: HashMap<String, HashMap<(), ()>> = spec.published.iter().map(|(_, c)| (format!("{c}/tcp"), HashMap::new())).collect();
        let host_config = HostConfig {
            mounts: Some(mounts),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            network_mode: spec.network.clone(),
            // Unprivileged by construction: no --privileged, no host paths, no socket, and
            // no way to gain privileges through setuid binaries.
            privileged: Some(false),
            security_opt: Some(vec!["no-new-privileges".to_string()]),
            cap_drop: Some(match spec.confinement {
                Confinement::Workload => WORKLOAD_CAP_DROP.iter().map(|c| c.to_string()).collect(),
                Confinement::Agent => vec!["ALL".to_string()],
            }),
            readonly_rootfs: Some(spec.confinement == Confinement::Agent),
            // Swap counted in the memory limit: a hog is stopped at the limit, not paged out.
            memory: spec.limits.map(|l| l.memory as i64),
            memory_swap: spec.limits.map(|l| l.memory as i64),
            cpu_period: spec.limits.map(|_| CPU_PERIOD_US),
            cpu_quota: spec.limits.map(|l| cpu_quota(l.cpus)),
            pids_limit: spec.limits.map(|l| l.pids),
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
            // Empty means "the image's own": an app image knows how it starts.
            entrypoint: (!spec.entrypoint.is_empty()).then(|| spec.entrypoint.clone()),
            cmd: (!spec.cmd.is_empty()).then(|| spec.cmd.clone()),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            env: Some(spec.env.clone()),
            working_dir: (!spec.working_dir.is_empty()).then(|| spec.working_dir.clone()),
            // An agent runs as nobody whatever its image's USER says.
            user: (spec.confinement == Confinement::Agent).then(|| AGENT_USER.to_string()),
            labels: Some(spec.labels.clone()),
            host_config: Some(host_config),
            networking_config,
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            // A held step's gate: its stdin, closed by the engine when the one attached
            // client (Gantry) closes it.
            attach_stdin: Some(spec.held),
            open_stdin: Some(spec.held),
            stdin_once: Some(spec.held),
            tty: Some(false),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: spec.name.clone(), platform: None };
        self.docker
            .create_container(Some(options), config)
            .await
            .map(|r| r.id)
            .map_err(|e| api(format!("create of container '{}'", spec.name), &e))
    }

    async fn upload(&self, container: &str, path: &str, tar: Bytes) -> Result<(), DockerError> {
        let options = UploadToContainerOptions { path: path.to_string(), ..Default::default() };
        self.docker
            .upload_to_container(container, Some(options), bollard::body_full(tar))
            .await
            .map_err(|e| api(format!("upload into '{container}:{path}'"), &e))
    }

    async fn start(&self, container: &str) -> Result<(), DockerError> {
        self.docker.start_container(container, None::<bollard::query_parameters::StartContainerOptions>).await.map_err(|e| api("container start", &e))
    }

    fn output(&self, container: &str) -> BoxStream<'static, Result<OutputChunk, DockerError>> {
        let options = LogsOptions::<String> { follow: true, stdout: true, stderr: true, ..Default::default() };
        // bollard's stream owns its own handle on the client, so it can outlive this call.
        demux(self.docker.logs(container, Some(options)), "log stream")
    }

    async fn attach(&self, container: &str) -> Result<BoxStream<'static, Result<OutputChunk, DockerError>>, DockerError> {
        let attached = self.attach_streams(container, false).await?;
        Ok(demux(attached.output, "attached output"))
    }

    async fn attach_held(&self, container: &str) -> Result<(BoxStream<'static, Result<OutputChunk, DockerError>>, crate::engine::Release), DockerError> {
        let attached = self.attach_streams(container, true).await?;
        let (release, released) = crate::engine::Release::new();
        let mut input = attached.input;
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // Released: "go". Dropped: nothing, and the gate reads end-of-file.
            if released.await.is_ok() {
                let _ = input.write_all(b"go\n").await;
                let _ = input.flush().await;
            }
            let _ = input.shutdown().await;
        });
        Ok((demux(attached.output, "attached output"), release))
    }

    async fn wait(&self, container: &str) -> Result<i64, DockerError> {
        let options = WaitContainerOptions { condition: "not-running" };
        let mut wait = self.docker.wait_container(container, Some(options));
        match wait.next().await {
            Some(Ok(response)) => Ok(response.status_code),
            // bollard reports a non-zero exit as an error carrying the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(e)) => Err(api("container wait", &e)),
            None => Err(DockerError::Api { action: "container wait".into(), reason: "no answer".into() }),
        }
    }

    async fn kill(&self, container: &str) -> Result<(), DockerError> {
        match self.docker.kill_container(container, Some(KillContainerOptions { signal: "SIGKILL" })).await {
            Ok(()) => Ok(()),
            // Already stopped or gone: the goal is reached.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(api("container kill", &e)),
        }
    }

    async fn remove_container(&self, container: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            // "removal already in progress"
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(api("container removal", &e)),
        }
    }

    async fn sweep_run(&self, run_id: &str) -> Result<SweepReport, DockerError> {
        // Containers first (a network or volume in use cannot go), each step's calls at
        // once: the sweep ends every run, so its latency is paid by every run.
        let filters = Self::label_filter(run_id);
        let containers = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: filters.clone(), ..Default::default() }))
            .await
            .map_err(|e| api("container list", &e))?;
        let doomed: Vec<String> = containers.into_iter().filter(|c| !is_environment(c.labels.as_ref())).filter_map(|c| c.id).collect();
        futures_util::future::try_join_all(doomed.iter().map(|id| self.remove_container(id))).await?;

        let (networks, volumes) = tokio::join!(
            self.docker.list_networks(Some(ListNetworksOptions { filters: filters.clone() })),
            self.docker.list_volumes(Some(ListVolumesOptions { filters })),
        );
        let networks: Vec<String> = networks
            .map_err(|e| api("network list", &e))?
            .into_iter()
            .filter(|n| !is_environment(n.labels.as_ref()))
            .filter_map(|n| n.id)
            .collect();
        let volumes: Vec<String> = volumes
            .map_err(|e| api("volume list", &e))?
            .volumes
            .unwrap_or_default()
            .into_iter()
            .filter(|v| !v.labels.contains_key(ENVIRONMENT_LABEL))
            .map(|v| v.name)
            .collect();
        let removals = tokio::join!(
            futures_util::future::try_join_all(networks.iter().map(|id| self.remove_network(id))),
            futures_util::future::try_join_all(volumes.iter().map(|name| async move {
                match self.docker.remove_volume(name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
                    Ok(()) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(api("volume removal", &e)),
                }
            })),
        );
        removals.0?;
        removals.1?;
        Ok(SweepReport { containers: doomed.len() as u32, networks: networks.len() as u32, volumes: volumes.len() as u32 })
    }

    async fn build_image(
        &self,
        context: Bytes,
        request: &BuildRequest,
        output: &(dyn for<'s> Fn(&'s str) + Send + Sync),
    ) -> Result<String, DockerError> {
        // bollard 0.19 passes the builder's memory as an i32 (fussybeaver/bollard#789): a
        // limit of 2 GiB or more would wrap, so it is held just under 2 GiB (said when a
        // build asked for more than 2 GiB: one byte less than that is no change).
        let memory = request.limits.map(|l| l.memory.min(BUILD_MEMORY_MAX));
        if request.limits.is_some_and(|l| l.memory > BUILD_MEMORY_MAX + 1) {
            output(&format!(
                "gantry: the builder's memory limit is held at {} MiB (the Engine API client passes no more to a build)",
                BUILD_MEMORY_MAX >> 20
            ));
        }
        let options = BuildImageOptions {
            dockerfile: request.dockerfile.clone(),
            t: request.tag.clone(),
            buildargs: request.build_args.clone(),
            target: request.target.clone().unwrap_or_default(),
            labels: request.labels.clone(),
            memory,
            memswap: memory.map(|m| m as i64),
            cpuperiod: request.limits.map(|_| CPU_PERIOD_US as u64),
            cpuquota: request.limits.map(|l| cpu_quota(l.cpus) as u64),
            rm: true,
            forcerm: true,
            // The classic builder: the engines here have no BuildKit.
            version: BuilderVersion::BuilderV1,
            ..Default::default()
        };
        let mut stream = self.docker.build_image(options, None, Some(bollard::body_full(context)));
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| match e {
                bollard::errors::Error::DockerResponseServerError { message, .. } => DockerError::Build(message),
                // The builder's own error ("... returned a non-zero code: 3") arrives in-stream.
                bollard::errors::Error::DockerStreamError { error } => DockerError::Build(error.trim().to_string()),
                other => DockerError::Build(reason(&other)),
            })?;
            if let Some(text) = &info.stream {
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    output(line);
                }
            }
            if let Some(status) = &info.status {
                output(status);
            }
            if let Some(err) = info.error.or(info.error_detail.and_then(|d| d.message)) {
                return Err(DockerError::Build(err.trim().to_string()));
            }
            if let Some(ImageId { id: Some(id) }) = info.aux {
                image_id = Some(id);
            }
        }
        match image_id {
            Some(id) => Ok(id),
            // Older engines only print "Successfully built"; the tag then says which image.
            None => self.image_id(&request.tag).await?.ok_or_else(|| DockerError::Build("the builder produced no image".into())),
        }
    }

    async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(i.id),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect of image '{image}'"), &e)),
        }
    }

    async fn image_facts(&self, image: &str) -> Result<Option<ImageFacts>, DockerError> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(ImageFacts { id: i.id.unwrap_or_default(), labels: i.config.and_then(|c| c.labels).unwrap_or_default() })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect of image '{image}'"), &e)),
        }
    }

    async fn exit_state(&self, container: &str) -> Result<ExitState, DockerError> {
        let inspect = self.docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>).await.map_err(|e| api("container inspect", &e))?;
        Ok(ExitState {
            oom_killed: inspect.state.and_then(|s| s.oom_killed).unwrap_or(false),
            memory_limit: inspect.host_config.and_then(|h| h.memory).filter(|m| *m > 0).map(|m| m as u64),
        })
    }

    async fn exec(&self, container: &str, cmd: Vec<String>) -> Result<(i64, String), DockerError> {
        let options = CreateExecOptions { cmd: Some(cmd), attach_stdout: Some(true), attach_stderr: Some(true), ..Default::default() };
        let exec = self.docker.create_exec(container, options).await.map_err(|e| api("exec", &e))?;
        let mut text = String::new();
        if let StartExecResults::Attached { mut output, .. } = self.docker.start_exec(&exec.id, None).await.map_err(|e| api("exec", &e))? {
            while let Some(Ok(chunk)) = output.next().await {
                text.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let inspect = self.docker.inspect_exec(&exec.id).await.map_err(|e| api("exec", &e))?;
        Ok((inspect.exit_code.unwrap_or(-1), text))
    }

    async fn connect(&self, network: &str, container: &str, aliases: Vec<String>) -> Result<(), DockerError> {
        let options = ConnectNetworkOptions {
            container: container.to_string(),
            endpoint_config: EndpointSettings { aliases: Some(aliases), ..Default::default() },
        };
        self.docker.connect_network(network, options).await.map_err(|e| api(format!("connect to network '{network}'"), &e))
    }

    async fn disconnect(&self, network: &str, container: &str) -> Result<(), DockerError> {
        let options = DisconnectNetworkOptions { container: container.to_string(), force: true };
        match self.docker.disconnect_network(network, options).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("disconnect from network '{network}'"), &e)),
        }
    }

    async fn find_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerInfo>, DockerError> {
        let list = self
            .docker
            .list_containers(Some(ListContainersOptions { all: true, filters: Self::labels_filter(labels), ..Default::default() }))
            .await
            .map_err(|e| api("container list", &e))?;
        Ok(list
            .into_iter()
            .map(|c| ContainerInfo {
                id: c.id.unwrap_or_default(),
                name: c.names.and_then(|n| n.into_iter().next()).unwrap_or_default().trim_start_matches('/').to_string(),
                image: c.image.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                labels: c.labels.unwrap_or_default(),
                running: c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING),
            })
            .collect())
    }

    async fn find_networks(&self, labels: &[(&str, &str)]) -> Result<Vec<NetworkInfo>, DockerError> {
        let list = self
            .docker
            .list_networks(Some(ListNetworksOptions { filters: Self::labels_filter(labels) }))
            .await
            .map_err(|e| api("network list", &e))?;
        Ok(list
            .into_iter()
            .map(|n| NetworkInfo { id: n.id.unwrap_or_default(), name: n.name.unwrap_or_default(), labels: n.labels.unwrap_or_default() })
            .collect())
    }

    async fn remove_network(&self, network: &str) -> Result<(), DockerError> {
        match self.docker.remove_network(network).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("removal of network '{network}'"), &e)),
        }
    }

    async fn download(&self, container: &str, path: &str) -> Result<Bytes, DockerError> {
        let options = DownloadFromContainerOptions { path: path.to_string() };
        let chunks: Vec<Bytes> = self
            .docker
            .download_from_container(container, Some(options))
            .try_collect()
            .await
            .map_err(|e| api(format!("download of '{path}'"), &e))?;
        Ok(chunks.concat().into())
    }

    async fn stop(&self, container: &str, grace: Duration) -> Result<(), DockerError> {
        let options = StopContainerOptions { t: grace.as_secs() as i64 };
        match self.docker.stop_container(container, Some(options)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => Ok(()),
            Err(e) => Err(api("container stop", &e)),
        }
    }

    async fn aliases(&self, container: &str, network: &str) -> Result<Vec<String>, DockerError> {
        let inspect = self.docker.inspect_container(container, None::<bollard::query_parameters::InspectContainerOptions>).await.map_err(|e| api("container inspect", &e))?;
        Ok(inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.aliases)
            .unwrap_or_default())
    }
}

/// A container's output (attached or from its logs) as stdout and stderr chunks.
fn demux(
    output: impl futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send + 'static,
    what: &'static str,
) -> BoxStream<'static, Result<OutputChunk, DockerError>> {
    output
        .map_err(move |e| api(what, &e))
        .try_filter_map(|out| async move {
            Ok(match out {
                LogOutput::StdOut { message } | LogOutput::Console { message } => Some(OutputChunk::Stdout(message)),
                LogOutput::StdErr { message } => Some(OutputChunk::Stderr(message)),
                LogOutput::StdIn { .. } => None,
            })
        })
        .boxed()
}
