//! The environment seam on Docker Swarm, through a manager's Engine API. An environment
//! is an attachable overlay network (`gantry-env-NAME`); its provisioned services are
//! Swarm services under their names; an app's live version is one Swarm service
//! (`gantry-env-ENV-APP-live`) with the pipeline's replicas, update and rollback settings,
//! behind a router service that owns the app's name and host-mode published port and
//! forwards to `tasks.<live service>` (DNS round robin: no virtual IP, which needs IPVS).
//!
//! A new version is first a container on the manager, on the overlay, checked and
//! previewed exactly as on a Docker engine (so probes, exec and logs reach it). Going live
//! is a `service update` of the live service to that version's spec: Swarm rolls it out
//! task by task (start-first, its healthcheck, `monitor`, `failure_action: rollback`), and
//! Gantry waits for Swarm's verdict. The version it replaced is Swarm's previous spec;
//! a rollback is Swarm's own (`rollback=previous`). Images reach the other nodes through
//! the operator's registry, by digest.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum,
    HealthConfig, Limit, NetworkAttachmentConfig, NetworkCreateRequest, NodeState, Service, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum,
    TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources, TaskState,
};
use bollard::query_parameters::{ListNodesOptionsBuilder, ListServicesOptionsBuilder, ListTasksOptionsBuilder};
use chrono::DateTime;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::error::{api, is_not_found, reason};
use super::{Containers, DockerEngine, DockerError, AGENT_USER, ENVIRONMENT_LABEL, RUN_LABEL, WORKLOAD_CAP_DROP};
use crate::engine::{
    EnvironmentView, Environments, Lock, ObjectView, Output, ResourceLimits, Retired, RouterDef, ServiceDef, ServiceState, Serving,
    TaskView, VersionDef, VersionInfo,
};
use crate::labels::{
    APP_LABEL, AUTHOR_LABEL, COMMIT_LABEL, COMMIT_TIME_LABEL, HEALTH_LABEL, IMAGE_ID_LABEL, IMAGE_LABEL, PORT_LABEL, PREVIOUS_LABEL,
    PUBLISHED_LABEL, ROLE_LABEL, SERVICE_LABEL, SPEC_LABEL, SWARM_SPEC_LABEL,
};
use crate::pipeline::spec::{FailureAction, UpdateOrder, UpdateSpec};

/// The router's limits, as on a Docker engine.
const ROUTER_LIMITS: ResourceLimits = ResourceLimits { memory: 256 << 20, cpus: 1.0, pids: 256 };
/// How long Gantry waits for Swarm to finish an update or a rollback.
const ROLLOUT_LIMIT: Duration = Duration::from_secs(600);
/// How long a service's tasks may take to converge after a create.
const CONVERGE_LIMIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

/// An environment holder on a Swarm manager; `docker` is the manager's own engine, which
/// also runs the runs' steps (probes, agents) that join the environments' networks.
pub struct SwarmEnvironments {
    docker: DockerEngine,
    /// Where versions' images are pushed so that every node can pull them by digest.
    registry: Option<String>,
}

/// What a version was, as a live service's label remembers the one it replaced.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Summary {
    image: String,
    image_id: String,
    commit: String,
    commit_time: String,
    author: String,
    run_id: Option<String>,
    port: Option<u16>,
    health: Option<String>,
    /// The service spec it ran as (to start it again for a check before a rollback).
    spec: Option<ServiceSpec>,
}

fn ns(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

fn labels_of(s: &Service) -> HashMap<String, String> {
    s.spec.as_ref().and_then(|s| s.labels.clone()).unwrap_or_default()
}

fn name_of(s: &Service) -> String {
    s.spec.as_ref().and_then(|s| s.name.clone()).unwrap_or_default()
}

fn update_state(s: &Service) -> Option<ServiceUpdateStatusStateEnum> {
    s.update_status.as_ref().and_then(|u| u.state)
}

fn limits(l: ResourceLimits) -> TaskSpecResources {
    TaskSpecResources {
        limits: Some(Limit { nano_cpus: Some((l.cpus * 1e9) as i64), memory_bytes: Some(l.memory as i64), pids: Some(l.pids) }),
        reservations: None,
    }
}

/// Swarm's update and rollback settings from the pipeline's `update:`.
fn update_configs(u: &UpdateSpec) -> (ServiceSpecUpdateConfig, ServiceSpecRollbackConfig) {
    let update = ServiceSpecUpdateConfig {
        parallelism: Some(u.parallelism as i64),
        delay: Some(ns(u.delay.0)),
        failure_action: Some(match u.failure_action {
            FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
            FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
        }),
        monitor: Some(ns(u.monitor.0)),
        max_failure_ratio: Some(u.max_failure_ratio as f64),
        order: Some(match u.order {
            UpdateOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
            UpdateOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
        }),
    };
    // A rollback goes back the same way; if it fails too, Swarm pauses rather than loops.
    let rollback = ServiceSpecRollbackConfig {
        parallelism: Some(u.parallelism as i64),
        delay: Some(ns(u.delay.0)),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(ns(u.monitor.0)),
        max_failure_ratio: Some(u.max_failure_ratio as f64),
        order: Some(match u.order {
            UpdateOrder::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
            UpdateOrder::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
        }),
    };
    (update, rollback)
}

/// Ports published on the node a task runs on (`mode: host`; the routing mesh needs IPVS).
fn endpoint(published: &[(u16, u16)]) -> EndpointSpec {
    EndpointSpec {
        mode: Some(EndpointSpecModeEnum::DNSRR),
        ports: Some(
            published
                .iter()
                .map(|(host, container)| EndpointPortConfig {
                    protocol: Some(EndpointPortConfigProtocolEnum::TCP),
                    target_port: Some(*container as i64),
                    published_port: Some(*host as i64),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    name: None,
                })
                .collect(),
        ),
    }
}

impl SwarmEnvironments {
    /// Checks that `docker` is a Swarm manager.
    pub async fn on(docker: DockerEngine, registry: Option<String>) -> Result<SwarmEnvironments, DockerError> {
        let info = docker.raw().info().await.map_err(|e| api("info", &e))?;
        let manager = info.swarm.as_ref().and_then(|s| s.control_available).unwrap_or(false);
        if !manager {
            return Err(DockerError::Api {
                action: format!("use of {} as a Swarm engine", Containers::endpoint(&docker)),
                reason: "it is not a Swarm manager (docker swarm init, or give its manager)".into(),
            });
        }
        Ok(SwarmEnvironments { docker, registry })
    }

    fn network_name(env: &str) -> String {
        crate::labels::environment_network(env)
    }

    async fn node_id(&self) -> Result<String, DockerError> {
        let info = self.docker.raw().info().await.map_err(|e| api("info", &e))?;
        Ok(info.swarm.and_then(|s| s.node_id).unwrap_or_default())
    }

    async fn node_addr(&self) -> Option<String> {
        self.docker.raw().info().await.ok()?.swarm?.node_addr
    }

    async fn find_services(&self, labels: &[(&str, &str)]) -> Result<Vec<Service>, DockerError> {
        let filters: HashMap<&str, Vec<String>> = HashMap::from([(
            "label",
            labels.iter().map(|(k, v)| if v.is_empty() { k.to_string() } else { format!("{k}={v}") }).collect(),
        )]);
        let options = ListServicesOptionsBuilder::default().filters(&filters).status(true).build();
        self.docker.raw().list_services(Some(options)).await.map_err(|e| api("service list", &e))
    }

    async fn service(&self, name: &str) -> Result<Option<Service>, DockerError> {
        match self.docker.raw().inspect_service(name, None::<bollard::query_parameters::InspectServiceOptions>).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(api(format!("inspect of service '{name}'"), &e)),
        }
    }

    async fn remove_service_named(&self, name: &str) -> Result<(), DockerError> {
        match self.docker.raw().delete_service(name).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(api(format!("removal of service '{name}'"), &e)),
        }
    }

    async fn create_service(&self, spec: ServiceSpec) -> Result<String, DockerError> {
        let name = spec.name.clone().unwrap_or_default();
        let created = self.docker.raw().create_service(spec, None).await.map_err(|e| api(format!("create of service '{name}'"), &e))?;
        Ok(created.id.unwrap_or(name))
    }

    /// Nodes by id: (host name and address, whether it is down).
    async fn nodes(&self) -> Result<HashMap<String, (String, bool)>, DockerError> {
        let options = ListNodesOptionsBuilder::default().build();
        let nodes = self.docker.raw().list_nodes(Some(options)).await.map_err(|e| api("node list", &e))?;
        Ok(nodes
            .into_iter()
            .map(|n| {
                let host = n.description.as_ref().and_then(|d| d.hostname.clone()).unwrap_or_default();
                let addr = n.status.as_ref().and_then(|s| s.addr.clone()).unwrap_or_default();
                let down = n.status.as_ref().and_then(|s| s.state) != Some(NodeState::READY);
                let name = if down { format!("{host} ({addr}, down)") } else { format!("{host} ({addr})") };
                (n.id.unwrap_or_default(), (name, down))
            })
            .collect())
    }

    async fn tasks_of(&self, service: &str) -> Result<Vec<bollard::models::Task>, DockerError> {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("service", vec![service])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        self.docker.raw().list_tasks(Some(options)).await.map_err(|e| api(format!("task list of '{service}'"), &e))
    }

    /// The image as every node can pull it: pushed to the registry, named by digest. With
    /// no registry, a swarm of one node runs the local image; more nodes cannot.
    async fn distribute(&self, image: &str, env: &str, app: &str, tag: &str) -> Result<String, DockerError> {
        let Some(registry) = &self.registry else {
            let nodes = self.nodes().await?;
            if nodes.len() > 1 {
                return Err(DockerError::Api {
                    action: format!("rollout of {app} in {env}"),
                    reason: format!(
                        "the swarm has {} nodes and the image {image} is only on the manager: give the config a `registry:` the nodes can pull from",
                        nodes.len()
                    ),
                });
            }
            return Ok(image.to_string());
        };
        let repo = format!("{registry}/gantry/{env}-{app}");
        let tag_options = bollard::query_parameters::TagImageOptionsBuilder::default().repo(&repo).tag(tag).build();
        self.docker.raw().tag_image(image, Some(tag_options)).await.map_err(|e| api(format!("tag of {image} as {repo}:{tag}"), &e))?;
        let push_options = bollard::query_parameters::PushImageOptionsBuilder::default().tag(tag).build();
        let mut push = self.docker.raw().push_image(&repo, Some(push_options), None);
        while let Some(step) = push.next().await {
            let step = step.map_err(|e| DockerError::Api { action: format!("push of {repo}:{tag}"), reason: reason(&e) })?;
            if let Some(detail) = step.error_detail.and_then(|d| d.message) {
                return Err(DockerError::Api { action: format!("push of {repo}:{tag} to {registry}"), reason: detail });
            }
        }
        let inspect = self
            .docker
            .raw()
            .inspect_image(&format!("{repo}:{tag}"))
            .await
            .map_err(|e| api(format!("inspect of {repo}:{tag}"), &e))?;
        let digest = inspect
            .repo_digests
            .unwrap_or_default()
            .into_iter()
            .find(|d| d.starts_with(&format!("{repo}@")))
            .ok_or_else(|| DockerError::Api { action: format!("push of {repo}:{tag}"), reason: "the registry gave no digest".into() })?;
        Ok(digest)
    }

    /// The service an app version becomes when it goes live.
    fn live_spec(&self, env: &str, app: &str, v: &VersionDef, labels: HashMap<String, String>) -> ServiceSpec {
        let update = v.update.clone().unwrap_or_default();
        let (update_config, rollback_config) = update_configs(&update);
        let health_check = v.health.as_ref().and_then(|h| h.command.as_ref()).map(|cmd| HealthConfig {
            test: Some(std::iter::once("CMD".to_string()).chain(cmd.0.iter().cloned()).collect()),
            interval: Some(ns(v.health.as_ref().map(|h| h.interval.0).unwrap_or(Duration::from_secs(1)).max(Duration::from_millis(100)))),
            timeout: Some(ns(Duration::from_secs(5))),
            retries: Some(3),
            start_period: Some(ns(Duration::from_secs(10))),
            start_interval: None,
        });
        // Not the environment's label: its tasks are Swarm's to remove, with the service.
        let mut task_labels = HashMap::from([(APP_LABEL.to_string(), app.to_string()), (ROLE_LABEL.to_string(), "task".to_string())]);
        task_labels.insert(COMMIT_LABEL.into(), v.commit.clone());
        ServiceSpec {
            name: Some(crate::labels::live_service(env, app)),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(v.image.clone()),
                    args: (!v.cmd.is_empty()).then(|| v.cmd.clone()),
                    env: Some(v.env.clone()),
                    labels: Some(task_labels),
                    health_check,
                    capability_drop: Some(WORKLOAD_CAP_DROP.iter().map(|c| format!("CAP_{c}")).collect()),
                    stop_grace_period: Some(ns(Duration::from_secs(5))),
                    ..Default::default()
                }),
                resources: Some(limits(v.limits)),
                placement: (!v.placement.is_empty()).then(|| TaskSpecPlacement { constraints: Some(v.placement.clone()), ..Default::default() }),
                networks: Some(vec![NetworkAttachmentConfig { target: Some(Self::network_name(env)), ..Default::default() }]),
                ..Default::default()
            }),
            // Unsaid, a new service runs one task and an update keeps the live count.
            mode: v.replicas.map(|r| ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated { replicas: Some(r as i64) }),
                ..Default::default()
            }),
            update_config: Some(update_config),
            rollback_config: Some(rollback_config),
            endpoint_spec: Some(endpoint(&[])),
            ..Default::default()
        }
    }

    /// Waits for Swarm to finish rolling `name` out (or back); a node lost meanwhile is
    /// reported, Swarm reschedules its tasks.
    async fn await_rollout(&self, name: &str, rollback: bool) -> Result<Vec<String>, DockerError> {
        let started = tokio::time::Instant::now();
        let mut notes = Vec::new();
        let mut lost: Vec<String> = Vec::new();
        loop {
            tokio::time::sleep(POLL).await;
            if let Ok(nodes) = self.nodes().await {
                for (id, (node, down)) in &nodes {
                    if *down && !lost.contains(id) {
                        lost.push(id.clone());
                        notes.push(format!("node {node} is down during the rollout; Swarm reschedules its tasks"));
                    }
                }
            }
            let Some(s) = self.service(name).await? else {
                return Err(DockerError::Api { action: format!("rollout of {name}"), reason: "the service is gone".into() });
            };
            let message = s.update_status.as_ref().and_then(|u| u.message.clone()).unwrap_or_default();
            match update_state(&s) {
                Some(ServiceUpdateStatusStateEnum::COMPLETED) if !rollback => return Ok(notes),
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) if rollback => return Ok(notes),
                Some(ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED) => {
                    return Err(DockerError::RolledBack { service: name.into(), reason: message, notes });
                }
                Some(ServiceUpdateStatusStateEnum::PAUSED | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED) => {
                    return Err(DockerError::Api { action: format!("rollout of {name}"), reason: format!("Swarm paused it: {message}") });
                }
                // A first update of a service with no tasks yet may report nothing.
                None | Some(ServiceUpdateStatusStateEnum::EMPTY) if self.converged(&s).await => return Ok(notes),
                _ => {}
            }
            if started.elapsed() > ROLLOUT_LIMIT {
                return Err(DockerError::Api { action: format!("rollout of {name}"), reason: format!("not done after {}s: {message}", ROLLOUT_LIMIT.as_secs()) });
            }
        }
    }

    /// Every task Swarm wants running is running (and healthy, when it has a healthcheck).
    async fn converged(&self, s: &Service) -> bool {
        let status = s.service_status.as_ref();
        let (running, desired) = (status.and_then(|s| s.running_tasks), status.and_then(|s| s.desired_tasks));
        if let (Some(r), Some(d)) = (running, desired) {
            return d > 0 && r >= d;
        }
        // Listings carry the counts; an inspect does not: count the tasks.
        let Ok(tasks) = self.tasks_of(&name_of(s)).await else { return false };
        let want = s.spec.as_ref().and_then(|s| s.mode.as_ref()).and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas).unwrap_or(1);
        let running = tasks
            .iter()
            .filter(|t| t.desired_state == Some(TaskState::RUNNING) && t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING))
            .count() as i64;
        running >= want
    }

    async fn await_converged(&self, name: &str) -> Result<(), DockerError> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(s) = self.find_services(&[]).await?.into_iter().find(|s| name_of(s) == name) {
                if self.converged(&s).await {
                    return Ok(());
                }
            }
            if started.elapsed() > CONVERGE_LIMIT {
                let why = self.task_errors(name).await;
                return Err(DockerError::Api {
                    action: format!("start of service '{name}'"),
                    reason: format!("its tasks are not running after {}s{why}", CONVERGE_LIMIT.as_secs()),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn task_errors(&self, service: &str) -> String {
        let tasks = self.tasks_of(service).await.unwrap_or_default();
        let errors: Vec<String> = tasks.iter().filter_map(|t| t.status.as_ref().and_then(|s| s.err.clone())).take(3).collect();
        if errors.is_empty() {
            String::new()
        } else {
            format!(": {}", errors.join("; "))
        }
    }

    fn live_version(s: &Service) -> VersionInfo {
        let l = labels_of(s);
        let label = |k: &str| l.get(k).cloned().unwrap_or_default();
        VersionInfo {
            id: s.id.clone().unwrap_or_default(),
            name: name_of(s),
            image: label(IMAGE_LABEL),
            image_id: label(IMAGE_ID_LABEL),
            commit: label(COMMIT_LABEL),
            commit_time: DateTime::parse_from_rfc3339(&label(COMMIT_TIME_LABEL)).ok(),
            author: label(AUTHOR_LABEL),
            run_id: l.get(RUN_LABEL).cloned(),
            port: l.get(PORT_LABEL).and_then(|p| p.parse().ok()),
            health: l.get(HEALTH_LABEL).and_then(|h| serde_json::from_str(h).ok()),
            serving: Serving::Live,
        }
    }

    /// The version Swarm's previous spec holds, when there is one to roll back to: after an
    /// update that completed (after a rollback, the previous spec is the failed version).
    fn kept_version(env: &str, app: &str, s: &Service) -> Option<VersionInfo> {
        if update_state(s) != Some(ServiceUpdateStatusStateEnum::COMPLETED) {
            return None;
        }
        let p: Summary = serde_json::from_str(labels_of(s).get(PREVIOUS_LABEL)?).ok()?;
        Some(VersionInfo {
            id: format!("{}:previous", s.id.clone().unwrap_or_default()),
            name: crate::labels::revived_container(env, app),
            image: p.image,
            image_id: p.image_id,
            commit: p.commit,
            commit_time: DateTime::parse_from_rfc3339(&p.commit_time).ok(),
            author: p.author,
            run_id: p.run_id,
            port: p.port,
            health: p.health.and_then(|h| serde_json::from_str(&h).ok()),
            serving: Serving::Kept,
        })
    }

    fn summary(s: &Service) -> Summary {
        let l = labels_of(s);
        let label = |k: &str| l.get(k).cloned().unwrap_or_default();
        let mut spec = s.spec.clone();
        if let Some(spec) = spec.as_mut() {
            // Only the version: not the one before it.
            if let Some(l) = spec.labels.as_mut() {
                l.remove(PREVIOUS_LABEL);
            }
        }
        Summary {
            image: label(IMAGE_LABEL),
            image_id: label(IMAGE_ID_LABEL),
            commit: label(COMMIT_LABEL),
            commit_time: label(COMMIT_TIME_LABEL),
            author: label(AUTHOR_LABEL),
            run_id: l.get(RUN_LABEL).cloned(),
            port: l.get(PORT_LABEL).and_then(|p| p.parse().ok()),
            health: l.get(HEALTH_LABEL).cloned(),
            spec,
        }
    }

    /// The candidate container's labels that make the live service's.
    fn service_labels(c: &HashMap<String, String>) -> HashMap<String, String> {
        let keep = [
            ENVIRONMENT_LABEL,
            RUN_LABEL,
            APP_LABEL,
            COMMIT_LABEL,
            COMMIT_TIME_LABEL,
            AUTHOR_LABEL,
            PORT_LABEL,
            IMAGE_LABEL,
            HEALTH_LABEL,
            IMAGE_ID_LABEL,
        ];
        let mut out: HashMap<String, String> = c.iter().filter(|(k, _)| keep.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        out.insert(ROLE_LABEL.into(), "live".into());
        out
    }

    async fn candidate(&self, env: &str, id: &str) -> Result<super::ContainerInfo, DockerError> {
        self.docker
            .find_containers(&[(ENVIRONMENT_LABEL, env)])
            .await?
            .into_iter()
            .find(|c| c.id == id || c.name == id)
            .ok_or_else(|| DockerError::Api { action: format!("go-live in {env}"), reason: format!("no version {id}") })
    }
}

#[async_trait]
impl Environments for SwarmEnvironments {
    fn endpoint(&self) -> &str {
        Containers::endpoint(&self.docker)
    }

    fn network(&self, env: &str) -> String {
        Self::network_name(env)
    }

    async fn ensure(&self, env: &str, run_id: &str) -> Result<String, DockerError> {
        let name = Self::network_name(env);
        let found = self.docker.find_networks(&[(ENVIRONMENT_LABEL, env)]).await?;
        if !found.iter().any(|n| n.name == name) {
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("overlay".into()),
                // Runs' probes and agents are plain containers on the manager: they join.
                attachable: Some(true),
                labels: Some(HashMap::from([(ENVIRONMENT_LABEL.to_string(), env.to_string()), (RUN_LABEL.to_string(), run_id.to_string())])),
                ..Default::default()
            };
            self.docker.raw().create_network(request).await.map_err(|e| api(format!("create of overlay network '{name}'"), &e))?;
        }
        Ok(name)
    }

    async fn services(&self, env: &str) -> Result<Vec<ServiceState>, DockerError> {
        Ok(self
            .find_services(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, "service")])
            .await?
            .into_iter()
            .map(|s| {
                let l = labels_of(&s);
                let running = s.service_status.as_ref().and_then(|st| st.running_tasks).unwrap_or(0) > 0;
                ServiceState {
                    handle: name_of(&s),
                    service: l.get(SERVICE_LABEL).cloned(),
                    fingerprint: l.get(SPEC_LABEL).cloned(),
                    name: name_of(&s),
                    running,
                }
            })
            .collect())
    }

    async fn start_service(&self, env: &str, run_id: &str, s: &ServiceDef) -> Result<String, DockerError> {
        let name = crate::labels::service_container(env, &s.name);
        let labels = HashMap::from([
            (ENVIRONMENT_LABEL.to_string(), env.to_string()),
            (RUN_LABEL.to_string(), run_id.to_string()),
            (ROLE_LABEL.to_string(), "service".to_string()),
            (SERVICE_LABEL.to_string(), s.name.clone()),
            (SPEC_LABEL.to_string(), s.fingerprint.clone()),
        ]);
        let spec = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(s.image.clone()),
                    args: (!s.cmd.is_empty()).then(|| s.cmd.clone()),
                    env: Some(s.env.clone()),
                    labels: Some(HashMap::from([(ROLE_LABEL.to_string(), "task".to_string())])),
                    capability_drop: Some(WORKLOAD_CAP_DROP.iter().map(|c| format!("CAP_{c}")).collect()),
                    ..Default::default()
                }),
                resources: Some(limits(s.limits)),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(Self::network_name(env)),
                    aliases: Some(vec![s.name.clone()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            endpoint_spec: Some(endpoint(&s.published)),
            ..Default::default()
        };
        self.create_service(spec).await?;
        self.await_converged(&name).await?;
        Ok(name)
    }

    async fn remove_service(&self, _env: &str, handle: &str) -> Result<(), DockerError> {
        self.remove_service_named(handle).await
    }

    /// Inside a service's task on the manager, or a version's container. A task on another
    /// node is out of reach of this engine's API.
    async fn exec(&self, handle: &str, cmd: Vec<String>) -> Result<(i64, String), DockerError> {
        if self.service(handle).await?.is_none() {
            return Containers::exec(&self.docker, handle, cmd).await;
        }
        let me = self.node_id().await?;
        let tasks = self.tasks_of(handle).await?;
        let local = tasks.iter().find(|t| {
            t.node_id.as_deref() == Some(me.as_str()) && t.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        });
        let Some(container) = local.and_then(|t| t.status.as_ref()?.container_status.as_ref()?.container_id.clone()) else {
            return Err(DockerError::Api {
                action: format!("exec in service '{handle}'"),
                reason: "its task runs on another node; use an HTTP health check for services on Swarm".into(),
            });
        };
        Containers::exec(&self.docker, &container, cmd).await
    }

    async fn ensure_router(&self, env: &str, run_id: &str, r: &RouterDef) -> Result<bool, DockerError> {
        let name = crate::labels::router_container(env, &r.app);
        let print = crate::labels::fingerprint(&(r.port, r.publish, &r.app, &r.image, "swarm"));
        if let Some(s) = self.service(&name).await? {
            if labels_of(&s).get(SPEC_LABEL) == Some(&print) {
                return Ok(false);
            }
            self.remove_service_named(&name).await?;
        }
        let mut labels = HashMap::from([
            (ENVIRONMENT_LABEL.to_string(), env.to_string()),
            (RUN_LABEL.to_string(), run_id.to_string()),
            (ROLE_LABEL.to_string(), "router".to_string()),
            (APP_LABEL.to_string(), r.app.clone()),
            (SPEC_LABEL.to_string(), print),
            (PORT_LABEL.to_string(), r.port.to_string()),
        ]);
        if let Some(p) = r.publish {
            labels.insert(PUBLISHED_LABEL.into(), p.to_string());
        }
        let live = crate::labels::live_service(env, &r.app);
        let me = self.node_id().await?;
        let spec = ServiceSpec {
            name: Some(name.clone()),
            labels: Some(labels),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(r.image.clone()),
                    args: Some(vec!["--listen".into(), format!("0.0.0.0:{}", r.port), "--upstream".into(), format!("tasks.{live}:{}", r.port)]),
                    labels: Some(HashMap::from([(ROLE_LABEL.to_string(), "task".to_string())])),
                    user: Some(AGENT_USER.into()),
                    read_only: Some(true),
                    capability_drop: Some(vec!["ALL".into()]),
                    ..Default::default()
                }),
                resources: Some(limits(ROUTER_LIMITS)),
                // On the manager: its published port is where `published_url` says.
                placement: Some(TaskSpecPlacement { constraints: Some(vec![format!("node.id=={me}")]), ..Default::default() }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(Self::network_name(env)),
                    aliases: Some(vec![r.app.clone()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            endpoint_spec: Some(endpoint(&r.publish.map(|p| vec![(p, r.port)]).unwrap_or_default())),
            ..Default::default()
        };
        self.create_service(spec).await?;
        self.await_converged(&name).await?;
        Ok(true)
    }

    async fn start_version(&self, env: &str, run_id: &str, v: &VersionDef) -> Result<VersionInfo, DockerError> {
        // The service it is to become rides on the candidate, so that a resumed go-live
        // has it; the image is distributed when it goes live.
        let mut candidate = v.clone();
        candidate.replicas = None;
        let image_id = self.docker.image_id(&v.image).await?.unwrap_or_default();
        let spec = self.live_spec(env, &v.app, v, HashMap::new());
        let extra = HashMap::from([
            (SWARM_SPEC_LABEL.to_string(), serde_json::to_string(&spec).unwrap_or_default()),
            (IMAGE_ID_LABEL.to_string(), image_id),
        ]);
        self.docker.start_candidate(env, run_id, &candidate, extra).await
    }

    fn version_output(&self, id: &str) -> Output {
        self.docker.output(id)
    }

    async fn versions(&self, env: &str, app: &str) -> Result<Vec<VersionInfo>, DockerError> {
        let mut out: Vec<VersionInfo> = Environments::versions(&self.docker, env, app).await?;
        if let Some(live) = self.service(&crate::labels::live_service(env, app)).await? {
            out.push(Self::live_version(&live));
            out.extend(Self::kept_version(env, app, &live));
        }
        Ok(out)
    }

    async fn remove_version(&self, env: &str, id: &str) -> Result<(), DockerError> {
        if id.ends_with(":previous") {
            return Ok(());
        }
        if self.candidate(env, id).await.is_ok() {
            return Environments::remove_version(&self.docker, env, id).await;
        }
        self.remove_service_named(id).await
    }

    async fn preview(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, DockerError> {
        Environments::preview(&self.docker, env, app, id).await
    }

    async fn go_live(&self, env: &str, app: &str, id: &str) -> Result<Vec<Retired>, DockerError> {
        let name = crate::labels::live_service(env, app);
        let current = self.service(&name).await?;
        // A go-live resumed after a crash: the candidate may be gone, its service live.
        if current.as_ref().is_some_and(|s| s.id.as_deref() == Some(id)) {
            return Ok(Vec::new());
        }
        let candidate = self.candidate(env, id).await?;
        let mut spec: ServiceSpec = candidate
            .labels
            .get(SWARM_SPEC_LABEL)
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| DockerError::Api { action: format!("go-live of {app} in {env}"), reason: "the version carries no service spec".into() })?;
        let commit = candidate.labels.get(COMMIT_LABEL).cloned().unwrap_or_default();
        let tag = format!("{}-{}", &commit[..commit.len().min(12)], crate::labels::short_id());
        let local_image = candidate.labels.get(IMAGE_ID_LABEL).cloned().filter(|i| !i.is_empty()).unwrap_or(candidate.image.clone());
        let pullable = self.distribute(&local_image, env, app, &tag).await?;
        if let Some(c) = spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
            c.image = Some(pullable);
        }
        let mut labels = Self::service_labels(&candidate.labels);
        let result = match current {
            None => {
                spec.labels = Some(labels);
                self.create_service(spec).await?;
                self.await_converged(&name).await.map(|_| Vec::new())
            }
            Some(live) => {
                let summary = Self::summary(&live);
                labels.insert(PREVIOUS_LABEL.into(), serde_json::to_string(&summary).unwrap_or_default());
                spec.labels = Some(labels);
                // `replicas` unsaid keeps the live service's count.
                if spec.mode.is_none() {
                    spec.mode = live.spec.as_ref().and_then(|s| s.mode.clone());
                }
                let version = live.version.as_ref().and_then(|v| v.index).unwrap_or(0);
                let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version as i32).build();
                self.docker.raw().update_service(&name, spec, options, None).await.map_err(|e| api(format!("update of service '{name}'"), &e))?;
                match self.await_rollout(&name, false).await {
                    Ok(notes) => {
                        for n in notes {
                            tracing::warn!(service = %name, "{n}");
                        }
                        Ok(vec![Retired { name: format!("{name} ({})", summary.image), image: summary.image }])
                    }
                    Err(e) => Err(e),
                }
            }
        };
        // The candidate is done with either way: live now, or refused by Swarm.
        let _ = Environments::remove_version(&self.docker, env, &candidate.id).await;
        result
    }

    async fn revive(&self, env: &str, app: &str, id: &str) -> Result<(), DockerError> {
        let live_name = crate::labels::live_service(env, app);
        let live = self.service(&live_name).await?.ok_or_else(|| DockerError::Api {
            action: format!("rollback of {app} in {env}"),
            reason: "there is no live service".into(),
        })?;
        let kept = Self::kept_version(env, app, &live)
            .filter(|k| k.id == id)
            .ok_or_else(|| DockerError::Api { action: format!("rollback of {app} in {env}"), reason: format!("no kept version {id}") })?;
        let summary: Summary = serde_json::from_str(labels_of(&live).get(PREVIOUS_LABEL).map(String::as_str).unwrap_or("{}"))
            .map_err(|e| DockerError::Api { action: format!("rollback of {app} in {env}"), reason: e.to_string() })?;
        let container = summary.spec.as_ref().and_then(|s| s.task_template.as_ref()).and_then(|t| t.container_spec.as_ref());
        // The kept version, started on the manager under the name the check aims at.
        let name = kept.name.clone();
        let _ = self.docker.remove_container(&name).await;
        let spec = super::ContainerSpec {
            name: name.clone(),
            image: container.and_then(|c| c.image.clone()).unwrap_or(kept.image.clone()),
            cmd: container.and_then(|c| c.args.clone()).unwrap_or_default(),
            env: container.and_then(|c| c.env.clone()).unwrap_or_default(),
            labels: HashMap::from([
                (ENVIRONMENT_LABEL.to_string(), env.to_string()),
                (ROLE_LABEL.to_string(), "revived".to_string()),
                (APP_LABEL.to_string(), app.to_string()),
            ]),
            network: Some(Self::network_name(env)),
            aliases: vec![name.clone()],
            limits: Some(ROUTER_LIMITS),
            ..Default::default()
        };
        self.docker.ensure_image(&spec.image).await?;
        let cid = self.docker.create_container(&spec).await?;
        self.docker.start(&cid).await
    }

    async fn restore(&self, env: &str, app: &str, _id: &str) -> Result<Vec<String>, DockerError> {
        let name = crate::labels::live_service(env, app);
        let live = self.service(&name).await?.ok_or_else(|| DockerError::Api {
            action: format!("rollback of {app} in {env}"),
            reason: "there is no live service".into(),
        })?;
        let failed = labels_of(&live).get(IMAGE_LABEL).cloned().unwrap_or_default();
        let version = live.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let spec = live.spec.clone().unwrap_or_default();
        let options = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version as i32).rollback("previous").build();
        self.docker.raw().update_service(&name, spec, options, None).await.map_err(|e| api(format!("rollback of service '{name}'"), &e))?;
        let rolled = self.await_rollout(&name, true).await;
        let _ = self.docker.remove_container(&crate::labels::revived_container(env, app)).await;
        rolled?;
        Ok(vec![format!("{name} ({failed})")])
    }

    async fn app_url(&self, env: &str, app: &str, preview: bool) -> Result<Option<String>, DockerError> {
        let router = self.service(&crate::labels::router_container(env, app)).await?;
        let Some(port) = router.as_ref().and_then(|r| labels_of(r).get(PORT_LABEL).cloned()) else { return Ok(None) };
        if !preview {
            return Ok(Some(format!("http://{app}:{port}")));
        }
        let serving = Environments::versions(&self.docker, env, app).await?.into_iter().any(|v| v.serving == Serving::Preview);
        Ok(serving.then(|| format!("http://{app}-preview:{port}")))
    }

    async fn published_url(&self, env: &str, app: &str) -> Result<Option<String>, DockerError> {
        let router = self.service(&crate::labels::router_container(env, app)).await?;
        let Some(port) = router.as_ref().and_then(|r| labels_of(r).get(PUBLISHED_LABEL).cloned()) else { return Ok(None) };
        Ok(self.node_addr().await.map(|addr| format!("http://{addr}:{port}")))
    }

    async fn list(&self) -> Result<Vec<EnvironmentView>, DockerError> {
        let mut names: Vec<String> = self
            .docker
            .find_networks(&[(ENVIRONMENT_LABEL, "")])
            .await?
            .into_iter()
            .filter_map(|n| n.labels.get(ENVIRONMENT_LABEL).cloned())
            .collect();
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            out.push(self.describe(&name).await?);
        }
        Ok(out)
    }

    async fn describe(&self, env: &str) -> Result<EnvironmentView, DockerError> {
        // Candidates and previews: containers on the manager, as on a Docker engine.
        let mut view = Environments::describe(&self.docker, env).await?;
        view.routers.clear();
        let nodes = self.nodes().await.unwrap_or_default();
        for s in self.find_services(&[(ENVIRONMENT_LABEL, env)]).await? {
            let l = labels_of(&s);
            let status = s.service_status.as_ref();
            let running = status.and_then(|st| st.running_tasks).unwrap_or(0);
            let desired = status.and_then(|st| st.desired_tasks).unwrap_or(0);
            let image = s
                .spec
                .as_ref()
                .and_then(|sp| sp.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let object = ObjectView {
                name: format!("{} ({running}/{desired} tasks)", name_of(&s)),
                image: l.get(IMAGE_LABEL).cloned().unwrap_or(image.clone()),
                running: running > 0,
                of: l.get(SERVICE_LABEL).or_else(|| l.get(APP_LABEL)).cloned().unwrap_or_default(),
                commit: l.get(COMMIT_LABEL).cloned(),
                url: None,
                serving: None,
            };
            match l.get(ROLE_LABEL).map(String::as_str) {
                Some("service") => view.services.push(object),
                Some("router") => {
                    let url = match l.get(PUBLISHED_LABEL) {
                        Some(p) => self.node_addr().await.map(|a| format!("http://{a}:{p}")),
                        None => None,
                    };
                    view.routers.push(ObjectView { url, ..object });
                }
                Some("live") => {
                    let state = update_state(&s).map(|u| u.to_string()).filter(|u| !u.is_empty());
                    let serving = match state {
                        Some(u) => format!("live (update {u})"),
                        None => "live".to_string(),
                    };
                    view.versions.push(ObjectView { serving: Some(serving), ..object });
                    if let Some(kept) = Self::kept_version(env, &object_app(&l), &s) {
                        view.versions.push(ObjectView {
                            name: format!("{} (Swarm's previous spec)", name_of(&s)),
                            image: kept.image,
                            running: false,
                            of: object_app(&l),
                            commit: Some(kept.commit),
                            url: None,
                            serving: Some(Serving::Kept.describe().to_string()),
                        });
                    }
                }
                _ => {}
            }
            let service = name_of(&s);
            for t in self.tasks_of(&service).await? {
                let desired = t.desired_state.map(|d| d.to_string()).unwrap_or_default();
                let status = t.status.as_ref();
                // Tasks long shut down are history, not state.
                if desired != "running" && status.and_then(|s| s.state) == Some(TaskState::SHUTDOWN) {
                    continue;
                }
                let node_id = t.node_id.clone().unwrap_or_default();
                view.tasks.push(TaskView {
                    service: service.clone(),
                    node: nodes.get(&node_id).map(|(n, _)| n.clone()).unwrap_or(node_id),
                    state: status.and_then(|s| s.state).map(|s| s.to_string()).unwrap_or_default(),
                    desired,
                    image: t
                        .spec
                        .as_ref()
                        .and_then(|sp| sp.container_spec.as_ref())
                        .and_then(|c| c.image.clone())
                        .unwrap_or_default(),
                    error: status.and_then(|s| s.err.clone()),
                });
            }
        }
        view.tasks.sort_by(|a, b| (&a.node, &a.service).cmp(&(&b.node, &b.service)));
        Ok(view)
    }

    async fn destroy(&self, env: &str) -> Result<(u32, u32), DockerError> {
        let mut removed = 0;
        for s in self.find_services(&[(ENVIRONMENT_LABEL, env)]).await? {
            self.remove_service_named(&name_of(&s)).await?;
            removed += 1;
        }
        // The overlay network goes once the services' tasks have left it.
        let started = tokio::time::Instant::now();
        loop {
            match Environments::destroy(&self.docker, env).await {
                Ok((c, n)) => return Ok((removed + c, n)),
                Err(e) if started.elapsed() < Duration::from_secs(30) && e.to_string().contains("active endpoints") => {
                    tokio::time::sleep(POLL).await
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn lock(&self, env: &str, run_id: &str) -> Result<Lock, DockerError> {
        Environments::lock(&self.docker, env, run_id).await
    }

    async fn wait_ticket(&self, env: &str, run_id: &str, project: &str) -> Result<(), DockerError> {
        Environments::wait_ticket(&self.docker, env, run_id, project).await
    }

    async fn drop_ticket(&self, env: &str, run_id: &str) -> Result<(), DockerError> {
        Environments::drop_ticket(&self.docker, env, run_id).await
    }

    async fn waiting(&self, env: &str, project: &str) -> Result<Vec<String>, DockerError> {
        Environments::waiting(&self.docker, env, project).await
    }
}

fn object_app(l: &HashMap<String, String>) -> String {
    l.get(APP_LABEL).cloned().unwrap_or_default()
}
