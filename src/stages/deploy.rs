//! The `deploy` stage kind. A new version of an app starts beside the old one and is
//! health-checked from inside the environment; only then does it take the live alias that
//! the environment's router forwards to, and the old version is retired. A new version
//! that never becomes healthy is removed and the old one keeps serving.
//!
//! Modes: `replace` does all of that at once; `preview` stops before going live (the
//! version answers as `<app>-preview` for smoke and load stages); `promote` puts the
//! preview live. Blue-green, as Argo Rollouts calls it, with the tests in between.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use tokio::time::Instant;

use super::environment::{self, Role, APP_LABEL, COMMIT_LABEL, PORT_LABEL, PUBLISHED_LABEL, SPEC_LABEL};
use super::health::{self, Health};
use super::{container, RunContext};
use crate::docker::{Backend, ContainerInfo, ContainerSpec, DockerError};
use crate::events::{AttemptOutcome, Deployment, DeploymentOutcome, EventKind, StageResult};
use crate::pipeline::spec::{DeployMode, DeploySpec, HealthSpec};
use crate::pipeline::{interpolate, StagePlan};

/// A router's limits, whatever the deploying stage's: it outlives the stage and serves
/// every later version of the app.
const ROUTER_LIMITS: crate::docker::ResourceLimits = crate::docker::ResourceLimits { memory: 256 << 20, cpus: 1.0, pids: 256 };
/// How long the old version may finish its requests once the new one is live.
const RETIRE_GRACE: Duration = Duration::from_secs(5);
use super::environment::COMMIT_TIME_LABEL;
use crate::labels::{AUTHOR_LABEL, HEALTH_LABEL};

pub fn preview_alias(app: &str) -> String {
    format!("{app}-preview")
}

/// A version of the app, running in the environment.
struct Version {
    id: String,
    name: String,
    image: String,
    image_id: String,
    commit: String,
    commit_time: DateTime<FixedOffset>,
    author: String,
}

impl Version {
    /// A running or kept version, read back from the labels it was deployed with;
    /// `fallback_time` stands in for a commit time that was not recorded.
    fn of(c: &ContainerInfo, fallback_time: DateTime<FixedOffset>) -> Version {
        let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        Version {
            id: c.id.clone(),
            name: c.name.clone(),
            image: c.labels.get(environment::IMAGE_LABEL).cloned().unwrap_or_else(|| c.image.clone()),
            image_id: c.image_id.clone(),
            commit: label(COMMIT_LABEL),
            commit_time: DateTime::parse_from_rfc3339(&label(COMMIT_TIME_LABEL)).unwrap_or(fallback_time),
            author: label(AUTHOR_LABEL),
        }
    }
}

enum Stop {
    Cancelled,
    Docker(DockerError),
    /// The deployment was refused; the message says why.
    Refused(String),
    /// The new version never became healthy (recorded as a failed deployment).
    Unhealthy { image: String, image_id: String, reason: String },
}

impl From<DockerError> for Stop {
    fn from(e: DockerError) -> Self {
        Stop::Docker(e)
    }
}

pub async fn attempt<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> AttemptOutcome {
    if let Err(refused) = ctx.may_change(&stage.name, attempt, &spec.environment, crate::policy::Change::Deploy).await {
        return refused;
    }
    let (outcome, record) = run(ctx, stage, spec, attempt, deadline).await;
    if let Some(d) = record {
        ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Deployment(d) });
    }
    outcome
}

/// A deployment, and its record when it is one (went live, or was refused going live);
/// recording is left to the caller, so a promotion can record it after verification.
pub async fn run<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> (AttemptOutcome, Option<Deployment>) {
    let started_at = Utc::now();
    let network = environment::network(&spec.environment);
    let result = async {
        match spec.mode {
            DeployMode::Replace => {
                let new = match resume(ctx, stage, spec, &network, attempt).await? {
                    Some(live) => live,
                    None => start_checked(ctx, stage, spec, attempt, deadline).await?,
                };
                let replaced = go_live(ctx, stage, spec, &network, &new, attempt).await?;
                Ok(Some((new, replaced)))
            }
            DeployMode::Preview => {
                let new = start_checked(ctx, stage, spec, attempt, deadline).await?;
                to_preview(ctx, stage, spec, &network, &new, attempt).await?;
                Ok(None)
            }
            DeployMode::Promote => {
                let preview = find_preview(ctx, spec, &network).await?;
                let replaced = go_live(ctx, stage, spec, &network, &preview, attempt).await?;
                Ok(Some((preview, replaced)))
            }
        }
    }
    .await;
    let url = published_url(ctx, spec).await;
    let record = |image: String, image_id: String, commit: String, commit_time, author: String, outcome, replaced| Deployment {
        environment: spec.environment.clone(),
        app: spec.app.clone(),
        image,
        image_id,
        commit,
        commit_time,
        author,
        run_id: ctx.run_id.clone(),
        pipeline: ctx.pipeline.clone(),
        started_at,
        finished_at: Utc::now(),
        outcome,
        url: url.clone(),
        replaced,
    };
    match result {
        Ok(Some((live, replaced))) => {
            if let Some(url) = &url {
                ctx.note(&stage.name, attempt, format!("{} answers at {url}", spec.environment));
            }
            let d = record(live.image, live.image_id, live.commit, live.commit_time, live.author, DeploymentOutcome::Succeeded, replaced);
            (AttemptOutcome::Succeeded, Some(d))
        }
        Ok(None) => (AttemptOutcome::Succeeded, None),
        Err(Stop::Unhealthy { image, image_id, reason }) => {
            // Only a deployment meant to go live counts as a failed deployment.
            let d = (spec.mode == DeployMode::Replace).then(|| {
                let outcome = DeploymentOutcome::Failed { reason: reason.clone() };
                record(image, image_id, ctx.commit.sha.clone(), ctx.commit.time, ctx.commit.author_name.clone(), outcome, Vec::new())
            });
            (AttemptOutcome::Error { message: ctx.masker.mask(&reason) }, d)
        }
        Err(Stop::Refused(message)) => (AttemptOutcome::Error { message }, None),
        Err(Stop::Cancelled) => (AttemptOutcome::Cancelled, None),
        Err(Stop::Docker(e)) => (ctx.error(e), None),
    }
}

/// Puts the version kept stopped at the last go-live back under the live alias (after a
/// health check) and removes the current one. Returns the restored image.
pub async fn rollback<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> Result<String, String> {
    let backend = ctx.backend.as_ref();
    let network = environment::network(&spec.environment);
    let versions = app_versions(ctx, spec).await.map_err(|e| e.to_string())?;
    let Some(previous) = versions.iter().find(|c| !c.running) else {
        return Err(format!("there is no previous version of {} in {} to roll back to", spec.app, spec.environment));
    };
    backend.start(&previous.id).await.map_err(|e| e.to_string())?;
    backend
        .connect(&network, &previous.id, vec![previous.name.clone()])
        .await
        .map_err(|e| e.to_string())?;
    let health_spec = spec.health.clone().unwrap_or_else(|| HealthSpec::http("/"));
    let target = health::Target {
        container: &previous.id,
        host: &previous.name,
        network: &network,
        default_port: spec.port,
    };
    match health::check(ctx, &stage.name, attempt, &target, &health_spec, deadline).await {
        Health::Healthy => {}
        Health::Cancelled => return Err("cancelled during the rollback".into()),
        Health::Unhealthy(why) => return Err(format!("the previous version did not come back healthy: {why}")),
    }
    let restored = Version::of(previous, ctx.commit.time);
    realias(ctx, &network, &restored, &environment::live_alias(&spec.app)).await.map_err(|e| e.to_string())?;
    for failed in versions.iter().filter(|c| c.running && c.id != previous.id) {
        let _ = backend.disconnect(&network, &failed.id).await;
        backend.remove_container(&failed.id).await.map_err(|e| e.to_string())?;
        ctx.note(&stage.name, attempt, format!("removed the failed version {}", failed.name));
    }
    ctx.note(&stage.name, attempt, format!("rolled back: {} in {} is {} again", spec.app, spec.environment, restored.image));
    Ok(restored.image)
}

/// `gantry env rollback`: the version kept at the last go-live of `app` in `environment`
/// (the one named `to`, by commit or image, if given) goes live again, health-checked,
/// and the one serving is removed. Recorded as a deployment of the restored version, which
/// the reports count as the restore of the change it undoes.
pub async fn roll_back_by_hand<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    environment: &str,
    app: &str,
    to: Option<&str>,
    attempt: u32,
    deadline: Instant,
) -> (AttemptOutcome, Option<Deployment>) {
    let started_at = Utc::now();
    let mut spec = DeploySpec {
        environment: environment.to_string(),
        mode: DeployMode::Replace,
        image: None,
        app: app.to_string(),
        port: None,
        publish: None,
        env: Default::default(),
        command: None,
        health: None,
    };
    let versions = match app_versions(ctx, &spec).await {
        Ok(v) => v,
        Err(e) => return (ctx.error(e), None),
    };
    let Some(kept) = versions.iter().find(|c| !c.running) else {
        let message = format!("there is no previous version of {app} in {environment} to roll back to (each go-live keeps one)");
        return (AttemptOutcome::Error { message }, None);
    };
    let kept_version = Version::of(kept, ctx.commit.time);
    if let Some(to) = to.filter(|t| !kept_version.commit.starts_with(*t) && kept_version.image != *t && kept_version.image_id != *t) {
        let message = format!(
            "{app} in {environment} keeps only {} ({}) to roll back to, not {to}",
            kept_version.image,
            &kept_version.commit[..kept_version.commit.len().min(8)]
        );
        return (AttemptOutcome::Error { message }, None);
    }
    spec.port = kept.labels.get(PORT_LABEL).and_then(|p| p.parse().ok());
    spec.health = kept.labels.get(HEALTH_LABEL).and_then(|h| serde_json::from_str(h).ok());
    let replaced: Vec<String> = versions.iter().filter(|c| c.running).map(|c| Version::of(c, ctx.commit.time).image).collect();
    match rollback(ctx, stage, &spec, attempt, deadline).await {
        Ok(_) => {
            let url = published_url(ctx, &spec).await;
            let d = Deployment {
                environment: environment.to_string(),
                app: app.to_string(),
                image: kept_version.image,
                image_id: kept_version.image_id,
                commit: kept_version.commit,
                commit_time: kept_version.commit_time,
                author: kept_version.author,
                run_id: ctx.run_id.clone(),
                pipeline: ctx.pipeline.clone(),
                started_at,
                finished_at: Utc::now(),
                outcome: DeploymentOutcome::Succeeded,
                url,
                replaced,
            };
            (AttemptOutcome::Succeeded, Some(d))
        }
        Err(message) => (AttemptOutcome::Error { message }, None),
    }
}

async fn published_url<B: Backend>(ctx: &RunContext<B>, spec: &DeploySpec) -> Option<String> {
    let routers = router_of(ctx, spec).await.ok()?;
    let port = routers.iter().find(|r| r.running)?.labels.get(PUBLISHED_LABEL)?.clone();
    Some(format!("http://127.0.0.1:{port}"))
}

/// The app's containers of one role in the deployment's environment.
async fn of_app<B: Backend>(ctx: &RunContext<B>, spec: &DeploySpec, role: Role) -> Result<Vec<ContainerInfo>, DockerError> {
    ctx.backend
        .find_containers(&[
            (crate::docker::ENVIRONMENT_LABEL, &spec.environment),
            (environment::ROLE_LABEL, role.label()),
            (APP_LABEL, &spec.app),
        ])
        .await
}

async fn router_of<B: Backend>(ctx: &RunContext<B>, spec: &DeploySpec) -> Result<Vec<ContainerInfo>, DockerError> {
    of_app(ctx, spec, Role::Router).await
}

async fn app_versions<B: Backend>(ctx: &RunContext<B>, spec: &DeploySpec) -> Result<Vec<ContainerInfo>, DockerError> {
    of_app(ctx, spec, Role::App).await
}

/// Starts the new version on the environment's network and waits for its health check.
async fn start_checked<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> Result<Version, Stop> {
    let backend = ctx.backend.as_ref();
    let env = spec.environment.as_str();
    let (Some(image), Some(port)) = (&spec.image, spec.port) else {
        return Err(Stop::Refused("a deployment needs `image` and `port`".into()));
    };
    let image = interpolate(image, &ctx.vars);
    backend.ensure_image(&image).await?;
    let image_id = backend.image_id(&image).await?.unwrap_or_default();
    let network = environment::ensure_network(backend, env, &ctx.run_id).await?;
    ensure_router(ctx, stage, spec, port, &network, attempt).await?;

    let name = crate::labels::app_container(env, &spec.app, &ctx.commit.short, &health::short_id());
    let mut labels = environment::labels(env, &ctx.run_id, Role::App);
    labels.insert(APP_LABEL.into(), spec.app.clone());
    labels.insert(COMMIT_LABEL.into(), ctx.commit.sha.clone());
    labels.insert(COMMIT_TIME_LABEL.into(), ctx.commit.time.to_rfc3339());
    labels.insert(AUTHOR_LABEL.into(), ctx.commit.author_name.clone());
    labels.insert(PORT_LABEL.into(), port.to_string());
    labels.insert(environment::IMAGE_LABEL.into(), image.clone());
    // How to tell it is healthy again, should it be put back by hand (`gantry env rollback`).
    if let Some(h) = &spec.health {
        labels.insert(HEALTH_LABEL.into(), serde_json::to_string(h).unwrap_or_default());
    }
    let new = ContainerSpec {
        name: name.clone(),
        image: image.clone(),
        cmd: spec.command.clone().map(|c| c.0).unwrap_or_default(),
        env: spec.env.iter().map(|(k, v)| format!("{k}={}", interpolate(v, &ctx.vars))).collect(),
        labels,
        network: Some(network.clone()),
        aliases: vec![name.clone()],
        limits: Some(ctx.limits(stage)),
        ..Default::default()
    };
    let id = backend.create_container(&new).await?;
    if let Err(e) = backend.start(&id).await {
        let _ = backend.remove_container(&id).await;
        return Err(e.into());
    }
    ctx.note(&stage.name, attempt, format!("started {image} as {name}; checking its health"));
    // The new version's own output goes to the stage's log while it is being checked.
    let output = container::forward_output(ctx, &stage.name, attempt, backend.output(&id));
    let health_spec = spec.health.clone().unwrap_or_else(|| HealthSpec::http("/"));
    let target = health::Target { container: &id, host: &name, network: &network, default_port: Some(port) };
    let check = health::check(ctx, &stage.name, attempt, &target, &health_spec, deadline);
    tokio::pin!(check);
    let checked = tokio::select! {
        h = &mut check => h,
        _ = output => check.await,
    };
    let version = Version {
        id: id.clone(),
        name: name.clone(),
        image: image.clone(),
        image_id: image_id.clone(),
        commit: ctx.commit.sha.clone(),
        commit_time: ctx.commit.time,
        author: ctx.commit.author_name.clone(),
    };
    match checked {
        Health::Healthy => {
            ctx.note(&stage.name, attempt, format!("{} is healthy", version.name));
            Ok(version)
        }
        Health::Cancelled => {
            let _ = backend.remove_container(&id).await;
            Err(Stop::Cancelled)
        }
        Health::Unhealthy(why) => {
            let _ = backend.remove_container(&id).await;
            let serving = app_versions(ctx, spec).await.unwrap_or_default().iter().any(|c| c.running);
            let kept = if serving { "the previous version keeps serving" } else { "nothing was serving before" };
            Err(Stop::Unhealthy {
                image,
                image_id,
                reason: format!("the new version of {} in {env} failed its health check ({kept}): {why}", spec.app),
            })
        }
    }
}

/// Gives `version` exactly these aliases on the network (an endpoint's aliases are fixed
/// when it connects, so it reconnects).
async fn realias<B: Backend>(ctx: &RunContext<B>, network: &str, version: &Version, extra: &str) -> Result<(), DockerError> {
    ctx.backend.disconnect(network, &version.id).await?;
    ctx.backend.connect(network, &version.id, vec![version.name.clone(), extra.to_string()]).await
}

/// Takes over the live alias (the router resolves it per connection, so new connections
/// go to the new version from here on), then retires every other version.
async fn go_live<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    network: &str,
    new: &Version,
    attempt: u32,
) -> Result<Vec<String>, Stop> {
    let backend = ctx.backend.as_ref();
    let live = environment::live_alias(&spec.app);
    // A running version other than the preview is the one that was live (or, after an
    // interrupted go-live, the one that still serves while losing its alias).
    let mut others = Vec::new();
    for old in app_versions(ctx, spec).await?.into_iter().filter(|c| c.id != new.id) {
        let was_live = old.running && !backend.aliases(&old.id, network).await?.contains(&preview_alias(&spec.app));
        others.push((old, was_live));
    }
    realias(ctx, network, new, &live).await?;
    // The version that was live is stopped and kept, for a rollback; anything older (or a
    // stale preview) goes. At most one previous version is kept. When nothing else was
    // live (a go-live resumed after its process died had already retired it), the version
    // kept stopped stays the one to roll back to.
    let retiring = others.iter().any(|(_, was_live)| *was_live);
    let mut kept = false;
    let mut replaced = Vec::new();
    for (old, was_live) in others {
        let image = old.labels.get(environment::IMAGE_LABEL).cloned().unwrap_or(old.image.clone());
        if was_live {
            // It may be off the network already: a go-live interrupted while retiring it.
            let _ = backend.disconnect(network, &old.id).await;
            backend.stop(&old.id, RETIRE_GRACE).await?;
            ctx.note(&stage.name, attempt, format!("retired {} ({image}); kept stopped for a rollback", old.name));
            replaced.push(image);
        } else if !retiring && !old.running && !kept {
            kept = true;
        } else {
            let _ = backend.disconnect(network, &old.id).await;
            backend.remove_container(&old.id).await?;
        }
    }
    ctx.note(&stage.name, attempt, format!("{} in {} is now {} ({})", spec.app, spec.environment, new.image, short(&new.commit)));
    Ok(replaced)
}

/// Picks up a deployment of this run whose process died: this run's version of the same
/// image that already went live is adopted (its go-live is finished, not repeated); one
/// that never went live is removed, to be started and checked afresh.
async fn resume<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    network: &str,
    attempt: u32,
) -> Result<Option<Version>, Stop> {
    let Some(image) = &spec.image else { return Ok(None) };
    let image_id = ctx.backend.image_id(&interpolate(image, &ctx.vars)).await?.unwrap_or_default();
    let ours = app_versions(ctx, spec)
        .await?
        .into_iter()
        .filter(|c| c.labels.get(crate::docker::RUN_LABEL) == Some(&ctx.run_id) && c.image_id == image_id);
    let mut adopted = None;
    for c in ours {
        let aliases = if c.running { ctx.backend.aliases(&c.id, network).await? } else { Vec::new() };
        if aliases.contains(&preview_alias(&spec.app)) {
            continue;
        }
        if adopted.is_none() && aliases.contains(&environment::live_alias(&spec.app)) {
            ctx.note(&stage.name, attempt, format!("{} of this run is already live; finishing its go-live", c.name));
            adopted = Some(Version::of(&c, ctx.commit.time));
        } else {
            ctx.note(&stage.name, attempt, format!("removing {}, left unfinished by an interrupted attempt", c.name));
            ctx.backend.remove_container(&c.id).await?;
        }
    }
    Ok(adopted)
}

/// Makes `new` the app's only preview; the live version is untouched.
async fn to_preview<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    network: &str,
    new: &Version,
    attempt: u32,
) -> Result<(), Stop> {
    let backend = ctx.backend.as_ref();
    let preview = preview_alias(&spec.app);
    for old in app_versions(ctx, spec).await?.into_iter().filter(|c| c.id != new.id) {
        if backend.aliases(&old.id, network).await?.contains(&preview) {
            backend.remove_container(&old.id).await?;
            ctx.note(&stage.name, attempt, format!("removed the earlier preview {}", old.name));
        }
    }
    realias(ctx, network, new, &preview).await?;
    let port = spec.port.unwrap_or_default();
    ctx.note(&stage.name, attempt, format!("{} is the preview of {} in {}: http://{preview}:{port} on its network", new.name, spec.app, spec.environment));
    Ok(())
}

async fn find_preview<B: Backend>(ctx: &RunContext<B>, spec: &DeploySpec, network: &str) -> Result<Version, Stop> {
    let preview = preview_alias(&spec.app);
    for c in app_versions(ctx, spec).await?.into_iter().filter(|c| c.running) {
        if ctx.backend.aliases(&c.id, network).await?.contains(&preview) {
            return Ok(Version::of(&c, ctx.commit.time));
        }
    }
    Err(Stop::Refused(format!(
        "{} in {} has no preview to promote (deploy one with `mode: preview` first)",
        spec.app, spec.environment
    )))
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

/// The router owns the app's stable alias and published port; it is created once per app
/// and environment, and replaced only when its own settings change (its image id among
/// them: a rebuilt router agent replaces the old one at the next deployment).
async fn ensure_router<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &DeploySpec,
    port: u16,
    network: &str,
    attempt: u32,
) -> Result<(), Stop> {
    let backend = ctx.backend.as_ref();
    let env = spec.environment.as_str();
    let image = crate::agents::verify(backend, &ctx.policy.agents, crate::agents::Agent::Router)
        .await
        .map_err(|e| Stop::Refused(e.to_string()))?;
    let print = environment::fingerprint(&(port, spec.publish, &spec.app, &image));
    let routers = router_of(ctx, spec).await?;
    if routers.len() == 1 && routers[0].running && routers[0].labels.get(SPEC_LABEL) == Some(&print) {
        return Ok(());
    }
    for old in &routers {
        backend.remove_container(&old.id).await?;
    }
    let mut labels = environment::labels(env, &ctx.run_id, Role::Router);
    labels.insert(APP_LABEL.into(), spec.app.clone());
    labels.insert(SPEC_LABEL.into(), print);
    labels.insert(PORT_LABEL.into(), port.to_string());
    if let Some(p) = spec.publish {
        labels.insert(PUBLISHED_LABEL.into(), p.to_string());
    }
    let router = ContainerSpec {
        name: crate::labels::router_container(env, &spec.app),
        image: image.clone(),
        cmd: vec![
            "--listen".into(),
            format!("0.0.0.0:{port}"),
            "--upstream".into(),
            format!("{}:{port}", environment::live_alias(&spec.app)),
        ],
        labels,
        network: Some(network.to_string()),
        aliases: vec![spec.app.clone()],
        published: spec.publish.map(|p| vec![(p, port)]).unwrap_or_default(),
        // A forwarder: a few connections' buffers, never the app's own needs.
        limits: Some(ROUTER_LIMITS),
        confinement: crate::docker::Confinement::Agent,
        ..Default::default()
    };
    let id = backend.create_container(&router).await?;
    backend.start(&id).await?;
    ctx.note(&stage.name, attempt, format!("router for {} in {env} started", spec.app));
    Ok(())
}
