//! Environments on the engine: how their objects are named and labelled, and the network
//! every environment has. Docker is the source of truth for what runs in an environment;
//! the labels here are how Gantry finds it again.

use std::collections::HashMap;

use crate::docker::{Backend, ContainerInfo, DockerError, ENVIRONMENT_LABEL, RUN_LABEL};

pub use crate::labels::{APP_LABEL, COMMIT_LABEL, COMMIT_TIME_LABEL, IMAGE_LABEL, PORT_LABEL, PUBLISHED_LABEL, ROLE_LABEL, SERVICE_LABEL, SPEC_LABEL};

/// What a container does in an environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Service,
    /// Owns an app's stable alias and published port; forwards to the live version.
    Router,
    /// A version of an app.
    App,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::Router => "router",
            Role::App => "app",
        }
    }
}

pub fn network(env: &str) -> String {
    crate::labels::environment_network(env)
}

/// The alias under which an app's live version answers its router.
pub fn live_alias(app: &str) -> String {
    format!("{app}-live")
}

/// Labels of an environment object created by `run_id`.
pub fn labels(env: &str, run_id: &str, role: Role) -> HashMap<String, String> {
    HashMap::from([
        (ENVIRONMENT_LABEL.to_string(), env.to_string()),
        (RUN_LABEL.to_string(), run_id.to_string()),
        (ROLE_LABEL.to_string(), role.label().to_string()),
    ])
}

/// Creates the environment's network unless it exists.
pub async fn ensure_network<B: Backend>(backend: &B, env: &str, run_id: &str) -> Result<String, DockerError> {
    let name = network(env);
    let found = backend.find_networks(&[(ENVIRONMENT_LABEL, env)]).await?;
    if !found.iter().any(|n| n.name == name) {
        let mut l = labels(env, run_id, Role::Service);
        l.remove(ROLE_LABEL);
        backend.create_network(&name, l).await?;
    }
    Ok(name)
}

pub async fn containers<B: Backend>(backend: &B, env: &str, role: Role) -> Result<Vec<ContainerInfo>, DockerError> {
    backend.find_containers(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, role.label())]).await
}

/// A stable fingerprint of a spec (FNV-1a over its JSON), kept in a label so that a later
/// provision can tell "same spec" from "changed" across gantry versions.
pub fn fingerprint(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

/// The base URL of an environment's app (live through its router, or its preview) on the
/// environment's network.
pub async fn app_url<B: Backend>(backend: &B, env: &str, app: &str, preview: bool) -> Result<Option<String>, DockerError> {
    let routers = backend
        .find_containers(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, Role::Router.label()), (APP_LABEL, app)])
        .await?;
    let port = routers.into_iter().find(|r| r.running).and_then(|r| r.labels.get(PORT_LABEL).cloned());
    let Some(port) = port else { return Ok(None) };
    if !preview {
        return Ok(Some(format!("http://{app}:{port}")));
    }
    let alias = format!("{app}-preview");
    for c in backend.find_containers(&[(ENVIRONMENT_LABEL, env), (ROLE_LABEL, Role::App.label()), (APP_LABEL, app)]).await? {
        if c.running && backend.aliases(&c.id, &network(env)).await?.contains(&alias) {
            return Ok(Some(format!("http://{alias}:{port}")));
        }
    }
    Ok(None)
}

/// What runs in an environment, read from the engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnvironmentView {
    pub name: String,
    pub network: String,
    pub services: Vec<ObjectView>,
    pub routers: Vec<ObjectView>,
    pub versions: Vec<ObjectView>,
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

/// Every environment on the engine (by its network's label).
pub async fn list<B: Backend>(backend: &B) -> Result<Vec<EnvironmentView>, DockerError> {
    // An empty value asks for the label with any value.
    let mut names: Vec<String> = backend
        .find_networks(&[(ENVIRONMENT_LABEL, "")])
        .await?
        .into_iter()
        .filter_map(|n| n.labels.get(ENVIRONMENT_LABEL).cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        out.push(describe(backend, &name).await?);
    }
    Ok(out)
}

pub async fn describe<B: Backend>(backend: &B, env: &str) -> Result<EnvironmentView, DockerError> {
    let net = network(env);
    let view = |c: &ContainerInfo, of_label: &str| ObjectView {
        name: c.name.clone(),
        image: c.labels.get(IMAGE_LABEL).cloned().unwrap_or_else(|| c.image.clone()),
        running: c.running,
        of: c.labels.get(of_label).cloned().unwrap_or_default(),
        commit: c.labels.get(COMMIT_LABEL).cloned(),
        url: c.labels.get(PUBLISHED_LABEL).map(|p| format!("http://127.0.0.1:{p}")),
        serving: None,
    };
    let services = containers(backend, env, Role::Service).await?.iter().map(|c| view(c, SERVICE_LABEL)).collect();
    let routers = containers(backend, env, Role::Router).await?.iter().map(|c| view(c, APP_LABEL)).collect();
    let mut versions = Vec::new();
    for c in containers(backend, env, Role::App).await? {
        let mut v = view(&c, APP_LABEL);
        let aliases = if c.running { backend.aliases(&c.id, &net).await.unwrap_or_default() } else { Vec::new() };
        v.serving = Some(if !c.running {
            "stopped (kept for rollback)".into()
        } else if aliases.contains(&live_alias(&v.of)) {
            "live".into()
        } else if aliases.contains(&format!("{}-preview", v.of)) {
            "preview".into()
        } else {
            "starting".into()
        });
        versions.push(v);
    }
    Ok(EnvironmentView { name: env.to_string(), network: net, services, routers, versions })
}

/// Removes everything of an environment: its containers, then its network.
pub async fn destroy<B: Backend>(backend: &B, env: &str) -> Result<(u32, u32), DockerError> {
    let mut containers_removed = 0;
    for c in backend.find_containers(&[(ENVIRONMENT_LABEL, env)]).await? {
        backend.remove_container(&c.id).await?;
        containers_removed += 1;
    }
    let mut networks_removed = 0;
    for n in backend.find_networks(&[(ENVIRONMENT_LABEL, env)]).await? {
        backend.remove_network(&n.id).await?;
        networks_removed += 1;
    }
    Ok((containers_removed, networks_removed))
}
