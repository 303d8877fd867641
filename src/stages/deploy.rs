//! The `deploy` stage kind. A new version of an app starts beside the old one and is
//! health-checked from inside the environment; only then does it take the live alias that
//! the environment's router forwards to, and the old version is retired. A new version
//! that never becomes healthy is removed and the old one keeps serving.
//!
//! Modes: `replace` does all of that at once; `preview` stops before going live (the
//! version answers as `<app>-preview` for smoke and load stages); `promote` puts the
//! preview live. Blue-green, as Argo Rollouts calls it, with the tests in between.

use chrono::{DateTime, FixedOffset, Utc};
use tokio::time::Instant;

use super::health::{self, Health};
use super::{container, RunContext};
use crate::engine::{EngineError, RouterDef, Serving, VersionDef, VersionInfo};
use crate::events::{AttemptOutcome, Deployment, DeploymentOutcome, EventKind, StageResult};
use crate::pipeline::spec::{DeployMode, DeploySpec, HealthSpec};
use crate::pipeline::{interpolate, StagePlan};

pub fn preview_alias(app: &str) -> String {
    format!("{app}-preview")
}

/// A version of the app as a deployment records it; `fallback_time` stands in for a
/// commit time that was not recorded.
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
    fn of(v: &VersionInfo, fallback_time: DateTime<FixedOffset>) -> Version {
        Version {
            id: v.id.clone(),
            name: v.name.clone(),
            image: v.image.clone(),
            image_id: v.image_id.clone(),
            commit: v.commit.clone(),
            commit_time: v.commit_time.unwrap_or(fallback_time),
            author: v.author.clone(),
        }
    }
}

enum Stop {
    Cancelled,
    Engine(EngineError),
    /// The deployment was refused; the message says why.
    Refused(String),
    /// The new version never became healthy (recorded as a failed deployment).
    Unhealthy {
        image: String,
        image_id: String,
        reason: String,
    },
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Engine(e)
    }
}

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, attempt: u32, deadline: Instant) -> AttemptOutcome {
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
pub async fn run(
    ctx: &RunContext,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> (AttemptOutcome, Option<Deployment>) {
    let started_at = Utc::now();
    let result = async {
        match spec.mode {
            DeployMode::Replace => {
                let new = match resume(ctx, stage, spec, attempt).await? {
                    Some(live) => live,
                    None => start_checked(ctx, stage, spec, attempt, deadline).await?,
                };
                let replaced = go_live(ctx, stage, spec, &new, attempt).await?;
                Ok(Some((new, replaced)))
            }
            DeployMode::Preview => {
                let new = start_checked(ctx, stage, spec, attempt, deadline).await?;
                to_preview(ctx, stage, spec, &new, attempt).await?;
                Ok(None)
            }
            DeployMode::Promote => {
                let preview = find_preview(ctx, spec).await?;
                let replaced = go_live(ctx, stage, spec, &preview, attempt).await?;
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
        Err(Stop::Engine(e)) => (ctx.error(e), None),
    }
}

/// Puts the version kept stopped at the last go-live back live (after a health check)
/// and removes the current one. Returns the restored image.
pub async fn rollback(
    ctx: &RunContext,
    stage: &StagePlan,
    spec: &DeploySpec,
    attempt: u32,
    deadline: Instant,
) -> Result<String, RollbackError> {
    let env = spec.environment.as_str();
    let versions = ctx.envs.versions(env, &spec.app).await?;
    let Some(previous) = versions.iter().find(|v| v.serving == Serving::Kept) else {
        return Err(RollbackError::NothingKept { app: spec.app.clone(), environment: spec.environment.clone() });
    };
    ctx.envs.revive(env, &spec.app, &previous.id).await?;
    let health_spec = spec.health.clone().unwrap_or_else(|| HealthSpec::http("/"));
    let network = ctx.envs.network(env);
    let target = health::Target { container: &previous.id, host: &previous.name, network: &network, default_port: spec.port };
    match health::check(ctx, &stage.name, attempt, &target, &health_spec, deadline).await {
        Health::Healthy => {}
        Health::Cancelled => return Err(RollbackError::Cancelled),
        Health::Unhealthy(why) => return Err(RollbackError::Unhealthy(why)),
    }
    let restored = Version::of(previous, ctx.commit.time);
    for failed in ctx.envs.restore(env, &spec.app, &restored.id).await? {
        ctx.note(&stage.name, attempt, format!("removed the failed version {failed}"));
    }
    ctx.note(&stage.name, attempt, format!("rolled back: {} in {} is {} again", spec.app, spec.environment, restored.image));
    Ok(restored.image)
}

/// Why a rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("there is no previous version of {app} in {environment} to roll back to")]
    NothingKept { app: String, environment: String },
    #[error("cancelled during the rollback")]
    Cancelled,
    #[error("the previous version did not come back healthy: {0}")]
    Unhealthy(String),
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// `gantry env rollback`: the version kept at the last go-live of `app` in `environment`
/// (the one named `to`, by commit or image, if given) goes live again, health-checked,
/// and the one serving is removed. Recorded as a deployment of the restored version, which
/// the reports count as the restore of the change it undoes.
pub async fn roll_back_by_hand(
    ctx: &RunContext,
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
        replicas: None,
        update: None,
        placement: Vec::new(),
    };
    let versions = match ctx.envs.versions(environment, app).await {
        Ok(v) => v,
        Err(e) => return (ctx.error(e), None),
    };
    let Some(kept) = versions.iter().find(|v| v.serving == Serving::Kept) else {
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
    spec.port = kept.port;
    spec.health = kept.health.clone();
    let replaced: Vec<String> = versions.iter().filter(|v| v.serving != Serving::Kept).map(|v| v.image.clone()).collect();
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
        Err(e) => (AttemptOutcome::Error { message: ctx.masker.mask(&e.to_string()) }, None),
    }
}

async fn published_url(ctx: &RunContext, spec: &DeploySpec) -> Option<String> {
    ctx.envs.published_url(&spec.environment, &spec.app).await.ok().flatten()
}

/// Starts the new version in the environment and waits for its health check.
async fn start_checked(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, attempt: u32, deadline: Instant) -> Result<Version, Stop> {
    let env = spec.environment.as_str();
    let (Some(image), Some(port)) = (&spec.image, spec.port) else {
        return Err(Stop::Refused("a deployment needs `image` and `port`".into()));
    };
    let image = interpolate(image, &ctx.vars);
    let network = ctx.envs.ensure(env, &ctx.run_id).await?;
    ensure_router(ctx, stage, spec, port, attempt).await?;
    let def = VersionDef {
        app: spec.app.clone(),
        image: image.clone(),
        cmd: spec.command.clone().map(|c| c.0).unwrap_or_default(),
        env: spec.env.iter().map(|(k, v)| format!("{k}={}", interpolate(v, &ctx.vars))).collect(),
        port,
        // How to tell it is healthy again, should it be put back by hand (`gantry env rollback`).
        health: spec.health.clone(),
        commit: ctx.commit.sha.clone(),
        commit_short: ctx.commit.short.clone(),
        commit_time: ctx.commit.time,
        author: ctx.commit.author_name.clone(),
        limits: ctx.limits(stage),
        replicas: spec.replicas,
        update: spec.update.clone(),
        placement: spec.placement.clone(),
    };
    let started = ctx.envs.start_version(env, &ctx.run_id, &def).await?;
    let version = Version::of(&started, ctx.commit.time);
    ctx.note(&stage.name, attempt, format!("started {image} as {}; checking its health", version.name));
    // The new version's own output goes to the stage's log while it is being checked.
    let output = container::forward_output(ctx, &stage.name, attempt, ctx.envs.version_output(&version.id));
    let health_spec = spec.health.clone().unwrap_or_else(|| HealthSpec::http("/"));
    let checked = {
        let target = health::Target { container: &version.id, host: &version.name, network: &network, default_port: Some(port) };
        let check = health::check(ctx, &stage.name, attempt, &target, &health_spec, deadline);
        tokio::pin!(check);
        tokio::select! {
            h = &mut check => h,
            _ = output => check.await,
        }
    };
    match checked {
        Health::Healthy => {
            ctx.note(&stage.name, attempt, format!("{} is healthy", version.name));
            Ok(version)
        }
        Health::Cancelled => {
            let _ = ctx.envs.remove_version(env, &version.id).await;
            Err(Stop::Cancelled)
        }
        Health::Unhealthy(why) => {
            let _ = ctx.envs.remove_version(env, &version.id).await;
            let versions = ctx.envs.versions(env, &spec.app).await.unwrap_or_default();
            let serving = versions.iter().any(|v| v.serving != Serving::Kept);
            let kept = if serving { "the previous version keeps serving" } else { "nothing was serving before" };
            Err(Stop::Unhealthy {
                image: version.image,
                image_id: version.image_id,
                reason: format!("the new version of {} in {env} failed its health check ({kept}): {why}", spec.app),
            })
        }
    }
}

/// Puts `new` live (new connections go to it from here on); the version that was live is
/// kept stopped for a rollback. Returns the images it replaced.
async fn go_live(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, new: &Version, attempt: u32) -> Result<Vec<String>, Stop> {
    let retired = match ctx.envs.go_live(&spec.environment, &spec.app, &new.id).await {
        Ok(r) => r,
        // Swarm refused the version part-way through its rollout and put the last one back:
        // a failed deployment, like a health check that never passed.
        Err(EngineError::RolledBack { service, reason, notes }) => {
            for n in &notes {
                ctx.note(&stage.name, attempt, n.clone());
            }
            let reason = format!(
                "Swarm rolled the update of {} in {} back ({reason}); the version that served keeps serving [{service}]",
                spec.app, spec.environment
            );
            return Err(Stop::Unhealthy { image: new.image.clone(), image_id: new.image_id.clone(), reason });
        }
        Err(e) => return Err(e.into()),
    };
    let mut replaced = Vec::new();
    for old in retired {
        ctx.note(&stage.name, attempt, format!("retired {} ({}); kept stopped for a rollback", old.name, old.image));
        replaced.push(old.image);
    }
    ctx.note(&stage.name, attempt, format!("{} in {} is now {} ({})", spec.app, spec.environment, new.image, short(&new.commit)));
    // On Swarm: where the version's tasks run now (a node lost during the rollout shows
    // as down, its tasks rescheduled elsewhere).
    if let Ok(view) = ctx.envs.describe(&spec.environment).await {
        let live = crate::labels::live_service(&spec.environment, &spec.app);
        let tasks: Vec<String> =
            view.tasks.iter().filter(|t| t.service == live && t.desired == "running").map(|t| format!("{} {}", t.node, t.state)).collect();
        if !tasks.is_empty() {
            ctx.note(&stage.name, attempt, format!("{} tasks: {}", tasks.len(), tasks.join(", ")));
        }
    }
    Ok(replaced)
}

/// Picks up a deployment of this run whose process died: this run's version of the same
/// image that already went live is adopted (its go-live is finished, not repeated); one
/// that never went live is removed, to be started and checked afresh.
async fn resume(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, attempt: u32) -> Result<Option<Version>, Stop> {
    let Some(image) = &spec.image else {
        return Ok(None);
    };
    let image_id = ctx.steps.image_facts(&interpolate(image, &ctx.vars)).await?.map(|f| f.id).unwrap_or_default();
    let versions = ctx.envs.versions(&spec.environment, &spec.app).await?;
    let ours = versions.iter().filter(|v| v.run_id.as_deref() == Some(ctx.run_id.as_str()) && v.image_id == image_id);
    let mut adopted = None;
    for v in ours {
        if v.serving == Serving::Preview {
            continue;
        }
        if adopted.is_none() && v.serving == Serving::Live {
            ctx.note(&stage.name, attempt, format!("{} of this run is already live; finishing its go-live", v.name));
            adopted = Some(Version::of(v, ctx.commit.time));
        } else {
            ctx.note(&stage.name, attempt, format!("removing {}, left unfinished by an interrupted attempt", v.name));
            ctx.envs.remove_version(&spec.environment, &v.id).await?;
        }
    }
    Ok(adopted)
}

/// Makes `new` the app's only preview; the live version is untouched.
async fn to_preview(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, new: &Version, attempt: u32) -> Result<(), Stop> {
    for removed in ctx.envs.preview(&spec.environment, &spec.app, &new.id).await? {
        ctx.note(&stage.name, attempt, format!("removed the earlier preview {removed}"));
    }
    let preview = preview_alias(&spec.app);
    let port = spec.port.unwrap_or_default();
    ctx.note(
        &stage.name,
        attempt,
        format!("{} is the preview of {} in {}: http://{preview}:{port} on its network", new.name, spec.app, spec.environment),
    );
    Ok(())
}

async fn find_preview(ctx: &RunContext, spec: &DeploySpec) -> Result<Version, Stop> {
    let versions = ctx.envs.versions(&spec.environment, &spec.app).await?;
    match versions.iter().find(|v| v.serving == Serving::Preview) {
        Some(v) => Ok(Version::of(v, ctx.commit.time)),
        None => Err(Stop::Refused(format!(
            "{} in {} has no preview to promote (deploy one with `mode: preview` first)",
            spec.app, spec.environment
        ))),
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

/// The router owns the app's stable name and published port; the environment replaces it
/// only when its own settings change (its image id among them: a rebuilt router agent
/// replaces the old one at the next deployment).
async fn ensure_router(ctx: &RunContext, stage: &StagePlan, spec: &DeploySpec, port: u16, attempt: u32) -> Result<(), Stop> {
    let image = crate::agents::verify(ctx.steps.as_ref(), &ctx.policy.agents, crate::agents::Agent::Router)
        .await
        .map_err(|e| Stop::Refused(e.to_string()))?;
    let router = RouterDef { app: spec.app.clone(), port, publish: spec.publish, image };
    if ctx.envs.ensure_router(&spec.environment, &ctx.run_id, &router).await? {
        ctx.note(&stage.name, attempt, format!("router for {} in {} started", spec.app, spec.environment));
    }
    Ok(())
}
