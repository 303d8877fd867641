//! The environment seam on Docker. An environment is a network (`gantry-env-NAME`) with
//! labelled containers on it: services under their names, one router per app owning the
//! app's stable alias and published port, and versions of the app. "Live" is the
//! `<app>-live` alias the router forwards to, "preview" the `<app>-preview` alias: going
//! live moves an alias (the router resolves it per connection), and the version that was
//! live is stopped and kept for a rollback. Docker is the source of truth for what runs in
//! an environment; the labels are how Gantry finds it again.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;

use super::{Confinement, ContainerInfo, ContainerSpec, Containers, DockerEngine, DockerError, ENVIRONMENT_LABEL, RUN_LABEL};
use crate::engine::{
    EnvironmentView, Environments, Lock, ObjectView, Output, Retired, RouterDef, ServiceDef, ServiceState, Serving, VersionDef, VersionInfo,
};
use crate::labels::{
    APP_LABEL, AUTHOR_LABEL, COMMIT_LABEL, COMMIT_TIME_LABEL, HEALTH_LABEL, IMAGE_LABEL, PORT_LABEL, PUBLISHED_LABEL, ROLE_LABEL,
    SERVICE_LABEL, SPEC_LABEL,
};

/// A router's limits, whatever the deploying stage's: it outlives the stage and serves
/// every later version of the app.
const ROUTER_LIMITS: crate::engine::ResourceLimits = crate::engine::ResourceLimits { memory: 256 << 20, cpus: 1.0, pids: 256 };
/// How long the old version may finish its requests once the new one is live.
const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// What a container does in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Service,
    /// Owns an app's stable alias and published port; forwards to the live version.
    Router,
    /// A version of an app.
    App,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Router => "router",
            Role::App => "app",
        }
    }
}

/// The alias under which an app's live version answers its router.
fn live_alias(app: &str) -> String {
    format!("{app}-live")
}

fn preview_alias(app: &str) -> String {
    format!("{app}-preview")
}

/// Labels of an environment object created by `run_id`.
fn labels(env: &str, run_id: &str, role: Role) -> HashMap<String, String> {
    HashMap::from([
        (ENVIRONMENT_LABEL.to_string(), env.to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
        (ROLE_LABEL.to_string(), role.label().to_string()),
    ])
}

impl DockerEngine {
    async fn of_role(&self, env: &str, role: Role) -> Result<Vec<ContainerInfo>, DockerError> {
        self.find_containers(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, role.label())]).await
    }

    async fn of_app(&self, env: &str, app: &str, role: Role) -> Result<Vec<ContainerInfo>, DockerError> {
        self.find_containers(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, role.label()), (APP_LABEL, app)]).await
    }

    /// A version read back from its labels and where its aliases put it.
    async fn version_of(&self, c: &ContainerInfo, network: &str, app: &str) -> Result<VersionInfo, DockerError> {
        let aliases = if c.running { self.aliases(&c.id, network).await? } else { Vec::new() };
        let serving = if !c.running {
            Serving::Kept
        } else if aliases.contains(&live_alias(app)) {
            Serving::Live
        } else if aliases.contains(&preview_alias(app)) {
            Serving::Preview
        } else {
            Serving::Starting
        };
        let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        Ok(VersionInfo {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.labels.get(IMAGE_LABEL).cloned().unwrap_or_else(|| c.image.clone()),
            image_id: c.image_id.clone(),
            commit: label(COMMIT_LABEL),
            commit_time: DateTime::parse_from_rfc3339(&label(COMMIT_TIME_LABEL)).ok(),
            author: label(AUTHOR_LABEL),
            run_id: c.labels.get(RUN_LABEL).cloned(),
            port: c.labels.get(PORT_LABEL).and_then(|p| p.parse().ok()),
            health: c.labels.get(HEALTH_LABEL).and_then(|h| serde_json::from_str(h).ok()),
            serving,
        })
    }

    /// Gives `id` exactly these aliases on the network (an endpoint's aliases are fixed
    /// when it connects, so it reconnects).
    async fn realias(&self, network: &str, id: &str, name: &str, extra: &str) -> Result<(), DockerError> {
        self.disconnect(network, id).await?;
        self.connect(network, id, vec![name.to_string(), extra.to_string()]).await
    }

    /// A version's container beside the others, answering at its own name only; `extra`
    /// labels ride along (Swarm keeps the service it is to become there).
    pub(super) async fn start_candidate(
        &self,
        env: &str,
        run_id: &str,
        v: &VersionDef,
        extra: HashMap<String, String>,
    ) -> Result<VersionInfo, DockerError> {
        self.ensure_image(&v.image).await?;
        let image_id = self.image_id(&v.image).await?.unwrap_or_default();
        let network = Environments::network(self, env);
        let name = crate::labels::app_container(env, &v.app, &v.commit_short, &crate::labels::short_id());
        let mut labels = labels(env, run_id, Role::App);
        labels.insert(APP_LABEL.into(), v.app.clone());
        labels.insert(COMMIT_LABEL.into(), v.commit.clone());
        labels.insert(COMMIT_TIME_LABEL.into(), v.commit_time.to_rfc3339());
        labels.insert(AUTHOR_LABEL.into(), v.author.clone());
        labels.insert(PORT_LABEL.into(), v.port.to_string());
        labels.insert(IMAGE_LABEL.into(), v.image.clone());
        if let Some(h) = &v.health {
            labels.insert(HEALTH_LABEL.into(), serde_json::to_string(h).unwrap_or_default());
        }
        labels.extend(extra);
        let spec = ContainerSpec {
            name: name.clone(),
            image: v.image.clone(),
            cmd: v.cmd.clone(),
            env: v.env.clone(),
            labels,
            network: Some(network),
            aliases: vec![name.clone()],
            limits: Some(v.limits),
            ..Default::default()
        };
        let id = self.create_container(&spec).await?;
        if let Err(e) = self.start(&id).await {
            let _ = self.remove_container(&id).await;
            return Err(e);
        }
        Ok(VersionInfo {
            id,
            name,
            image: v.image.clone(),
            image_id,
            commit: v.commit.clone(),
            commit_time: Some(v.commit_time),
            author: v.author.clone(),
            run_id: Some(run_id.to_string()),
            port: Some(v.port),
            health: v.health.clone(),
            serving: Serving::Starting,
        })
    }

    async fn version(&self, env: &str, app: &str, id: &str) -> Result<VersionInfo, DockerError> {
        let network = Environments::network(self, env);
        for c in self.of_app(env, app, Role::App).await? {
            if c.id == id {
                return self.version_of(&c, &network, app).await;
            }
        }
        Err(DockerError::Api { action: format!("lookup of version {id} of {app} in {env}"), reason: "no such version".into() })
    }
}

#[async_trait]
impl Environments for DockerEngine {
    fn endpoint(&self) -> &str {
        Containers::endpoint(self)
    }

    fn network(&self, env: &str) -> String {
        crate::labels::environment_network(env)
    }

    async fn ensure(&self, env: &str, run_id: &str) -> Result<String, DockerError> {
        let name = Environments::network(self, env);
        let found = self.find_networks(&[(ENVIRONMENT_LABEL, env)]).await?;
        if !found.iter().any(|n| n.name == name) {
            let mut l = labels(env, run_id, Role::Service);
            l.remove(ROLE_LABEL);
            self.create_network(&name, l).await?;
        }
        Ok(name)
    }

    async fn services(&self, env: &str) -> Result<Vec<ServiceState>, DockerError> {
        Ok(self
            .of_role(env, Role::Service)
            .await?
            .into_iter()
            .map(|c| ServiceState {
                service: c.labels.get(SERVICE_LABEL).cloned(),
                fingerprint: c.labels.get(SPEC_LABEL).cloned(),
                name: c.name,
                handle: c.id,
                running: c.running,
            })
            .collect())
    }

    async fn start_service(&self, env: &str, run_id: &str, s: &ServiceDef) -> Result<String, DockerError> {
        let mut labels = labels(env, run_id, Role::Service);
        labels.insert(SERVICE_LABEL.into(), s.name.clone());
        labels.insert(SPEC_LABEL.into(), s.fingerprint.clone());
        let spec = ContainerSpec {
            name: crate::labels::service_container(env, &s.name),
            image: s.image.clone(),
            cmd: s.cmd.clone(),
            env: s.env.clone(),
            labels,
            network: Some(Environments::network(self, env)),
            aliases: vec![s.name.clone()],
            published: s.published.clone(),
            limits: Some(s.limits),
            ..Default::default()
        };
        self.ensure_image(&spec.image).await?;
        let id = self.create_container(&spec).await?;
        self.start(&id).await?;
        // The service's name answers exec and health checks as its id would.
        Ok(spec.name)
    }

    async fn remove_service(&self, _env: &str, handle: &str) -> Result<(), DockerError> {
        self.remove_container(handle).await
    }

    async fn exec(&self, handle: &str, cmd: Vec<String>) -> Result<(i64, String), DockerError> {
        Containers::exec(self, handle, cmd).await
    }

    async fn ensure_router(&self, env: &str, run_id: &str, r: &RouterDef) -> Result<bool, DockerError> {
        let print = crate::labels::fingerprint(&(r.port, r.publish, &r.app, &r.image));
        let routers = self.of_app(env, &r.app, Role::Router).await?;
        if routers.len() == 1 && routers[0].running && routers[0].labels.get(SPEC_LABEL) == Some(&print) {
            return Ok(false);
        }
        for old in &routers {
            self.remove_container(&old.id).await?;
        }
        let mut labels = labels(env, run_id, Role::Router);
        labels.insert(APP_LABEL.into(), r.app.clone());
        labels.insert(SPEC_LABEL.into(), print);
        labels.insert(PORT_LABEL.into(), r.port.to_string());
        if let Some(p) = r.publish {
            labels.insert(PUBLISHED_LABEL.into(), p.to_string());
        }
        let router = ContainerSpec {
            name: crate::labels::router_container(env, &r.app),
            image: r.image.clone(),
            cmd: vec!["--listen".into(), format!("0.0.0.0:{}", r.port), "--upstream".into(), format!("{}:{}", live_alias(&r.app), r.port)],
            labels,
            network: Some(Environments::network(self, env)),
            aliases: vec![r.app.clone()],
            published: r.publish.map(|p| vec![(p, r.port)]).unwrap_or_default(),
            // A forwarder: a few connections' buffers, never the app's own needs.
            limits: Some(ROUTER_LIMITS),
            confinement: Confinement::Agent,
            ..Default::default()
        };
        let id = self.create_container(&router).await?;
        self.start(&id).await?;
        Ok(true)
    }

    async fn start_version(&self, env: &str, run_id: &str, v: &VersionDef) -> Result<VersionInfo, DockerError> {
        if let Some(r) = v.replicas.filter(|r| *r > 1) {
            return Err(DockerError::Api {
                action: format!("deployment of {} to {env}", v.app),
                reason: format!(
                    "replicas: {r} needs the environment on a Swarm engine (engines.NAME.swarm); a Docker engine runs one container per version"
                ),
            });
        }
        self.start_candidate(env, run_id, v, HashMap::new()).await
    }

    fn version_output(&self, id: &str) -> Output {
        self.output(id)
    }

    async fn versions(&self, env: &str, app: &str) -> Result<Vec<VersionInfo>, DockerError> {
        let network = Environments::network(self, env);
        let mut out = Vec::new();
        for c in self.of_app(env, app, Role::App).await? {
            out.push(self.version_of(&c, &network, app).await?);
        }
        Ok(out)
    }

    async fn remove_version(&self, env: &str, id: &str) -> Result<(), DockerError> {
        // It may be off the network already.
        let _ = self.disconnect(&Environments::network(self, env), id).await;
        self.remove_container(id).await
    }

    async fn preview(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, DockerError> {
        let network = Environments::network(self, env);
        let mut removed = Vec::new();
        let mut new = None;
        for v in self.versions(env, app).await? {
            if v.id == id {
                new = Some(v);
            } else if v.serving == Serving::Preview {
                self.remove_container(&v.id).await?;
                removed.push(v.name);
            }
        }
        let new =
            new.ok_or_else(|| DockerError::Api { action: format!("preview of {app} in {env}"), reason: format!("no version {id}") })?;
        self.realias(&network, &new.id, &new.name, &preview_alias(app)).await?;
        Ok(removed)
    }

    async fn go_live(&self, env: &str, app: &str, id: &str) -> Result<Vec<Retired>, DockerError> {
        let network = Environments::network(self, env);
        let new = self.version(env, app, id).await?;
        // A running version other than the preview is the one that was live (or, after an
        // interrupted go-live, the one that still serves while losing its alias).
        let others: Vec<(VersionInfo, bool)> = self
            .versions(env, app)
            .await?
            .into_iter()
            .filter(|v| v.id != id)
            .map(|v| {
                let was_live = matches!(v.serving, Serving::Live | Serving::Starting);
                (v, was_live)
            })
            .collect();
        self.realias(&network, &new.id, &new.name, &live_alias(app)).await?;
        // The version that was live is stopped and kept, for a rollback; anything older (or
        // a stale preview) goes. At most one previous version is kept. When nothing else was
        // live (a go-live resumed after its process died had already retired it), the
        // version kept stopped stays the one to roll back to.
        let retiring = others.iter().any(|(_, was_live)| *was_live);
        let mut kept = false;
        let mut retired = Vec::new();
        for (old, was_live) in others {
            if was_live {
                // It may be off the network already: a go-live interrupted while retiring it.
                let _ = self.disconnect(&network, &old.id).await;
                self.stop(&old.id, RETIRE_GRACE).await?;
                retired.push(Retired { name: old.name, image: old.image });
            } else if !retiring && old.serving == Serving::Kept && !kept {
                kept = true;
            } else {
                self.remove_version(env, &old.id).await?;
            }
        }
        Ok(retired)
    }

    async fn revive(&self, env: &str, _app: &str, id: &str) -> Result<(), DockerError> {
        let network = Environments::network(self, env);
        let name = self.find_containers(&[(ENVIRONMENT_LABEL, env)]).await?.into_iter().find(|c| c.id == id).map(|c| c.name);
        self.start(id).await?;
        self.connect(&network, id, name.into_iter().collect()).await
    }

    async fn restore(&self, env: &str, app: &str, id: &str) -> Result<Vec<String>, DockerError> {
        let network = Environments::network(self, env);
        let restored = self.version(env, app, id).await?;
        self.realias(&network, &restored.id, &restored.name, &live_alias(app)).await?;
        let mut removed = Vec::new();
        for failed in self.versions(env, app).await?.into_iter().filter(|v| v.serving != Serving::Kept && v.id != id) {
            self.remove_version(env, &failed.id).await?;
            removed.push(failed.name);
        }
        Ok(removed)
    }

    async fn app_url(&self, env: &str, app: &str, preview: bool) -> Result<Option<String>, DockerError> {
        let routers = self.of_app(env, app, Role::Router).await?;
        let port = routers.into_iter().find(|r| r.running).and_then(|r| r.labels.get(PORT_LABEL).cloned());
        let Some(port) = port else { return Ok(None) };
        if !preview {
            return Ok(Some(format!("http://{app}:{port}")));
        }
        let alias = preview_alias(app);
        let serving = self.versions(env, app).await?.into_iter().any(|v| v.serving == Serving::Preview);
        Ok(serving.then(|| format!("http://{alias}:{port}")))
    }

    async fn published_url(&self, env: &str, app: &str) -> Result<Option<String>, DockerError> {
        let routers = self.of_app(env, app, Role::Router).await?;
        Ok(routers.iter().find(|r| r.running).and_then(|r| r.labels.get(PUBLISHED_LABEL)).map(|p| format!("http://127.0.0.1:{p}")))
    }

    async fn list(&self) -> Result<Vec<EnvironmentView>, DockerError> {
        // An empty value asks for the label with any value.
        let mut names: Vec<String> = self
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
        let net = Environments::network(self, env);
        let view = |c: &ContainerInfo, of_label: &str| ObjectView {
            name: c.name.clone(),
            image: c.labels.get(IMAGE_LABEL).cloned().unwrap_or_else(|| c.image.clone()),
            running: c.running,
            of: c.labels.get(of_label).cloned().unwrap_or_default(),
            commit: c.labels.get(COMMIT_LABEL).cloned(),
            url: c.labels.get(PUBLISHED_LABEL).map(|p| format!("http://127.0.0.1:{p}")),
            serving: None,
        };
        let services = self.of_role(env, Role::Service).await?.iter().map(|c| view(c, SERVICE_LABEL)).collect();
        let routers = self.of_role(env, Role::Router).await?.iter().map(|c| view(c, APP_LABEL)).collect();
        let mut versions = Vec::new();
        for c in self.of_role(env, Role::App).await? {
            let mut v = view(&c, APP_LABEL);
            let serving = match self.version_of(&c, &net, &v.of).await {
                Ok(info) => info.serving,
                Err(_) if c.running => Serving::Starting,
                Err(_) => Serving::Kept,
            };
            v.serving = Some(serving.describe().to_string());
            versions.push(v);
        }
        Ok(EnvironmentView { name: env.to_string(), network: net, services, routers, versions, tasks: Vec::new() })
    }

    async fn destroy(&self, env: &str) -> Result<(u32, u32), DockerError> {
        let mut containers_removed = 0;
        for c in self.find_containers(&[(ENVIRONMENT_LABEL, env)]).await? {
            self.remove_container(&c.id).await?;
            containers_removed += 1;
        }
        let mut networks_removed = 0;
        for n in self.find_networks(&[(ENVIRONMENT_LABEL, env)]).await? {
            self.remove_network(&n.id).await?;
            networks_removed += 1;
        }
        Ok((containers_removed, networks_removed))
    }

    async fn lock(&self, env: &str, run_id: &str) -> Result<Lock, DockerError> {
        super::locks::lock(self, env, run_id).await
    }

    async fn wait_ticket(&self, env: &str, run_id: &str, project: &str) -> Result<(), DockerError> {
        super::locks::wait_ticket(self, env, run_id, project).await
    }

    async fn drop_ticket(&self, env: &str, run_id: &str) -> Result<(), DockerError> {
        super::locks::drop_ticket(self, env, run_id).await
    }

    async fn waiting(&self, env: &str, project: &str) -> Result<Vec<String>, DockerError> {
        super::locks::waiting(self, env, project).await
    }
}
