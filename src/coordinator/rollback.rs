//! Rolling an environment back by hand, shared by `gantry env rollback` and the API: find
//! the version its last go-live kept, record a run for putting it back, and perform it.

use std::sync::Arc;

use crate::commit::CommitInfo;
use crate::engine::{Engine, Environments, Serving};
use crate::store::{RunRecord, Store};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("{0}")]
    Nothing(String),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The app to roll back: the one named, or the environment's only one.
async fn app_of(envs: &dyn Environments, env: &str, app: Option<&str>) -> Result<String, RollbackError> {
    if let Some(app) = app {
        return Ok(app.to_string());
    }
    let mut apps: Vec<String> = envs.describe(env).await?.versions.into_iter().map(|v| v.of).filter(|a| !a.is_empty()).collect();
    apps.sort();
    apps.dedup();
    match apps.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RollbackError::Nothing(format!("there is no app in environment {env}"))),
        many => Err(RollbackError::Nothing(format!("environment {env} runs several apps ({}); name one with --app", many.join(", ")))),
    }
}

/// A rollback recorded as a run and not yet performed.
pub struct Prepared {
    pub record: RunRecord,
    env: String,
    app: String,
}

/// Finds the kept previous version of `app` in `env` and records a run for putting it
/// back, started by `by`; nothing on the engine changes yet.
pub async fn prepare(store: &Store, envs: &dyn Environments, env: &str, app: Option<&str>, by: &str) -> Result<Prepared, RollbackError> {
    let app = app_of(envs, env, app).await?;
    let kept = envs.versions(env, &app).await?.into_iter().find(|v| v.serving == Serving::Kept).ok_or_else(|| {
        RollbackError::Nothing(format!("there is no previous version of {app} in {env} to roll back to (each go-live keeps one)"))
    })?;
    let sha = kept.commit.clone();
    let time = kept.commit_time.unwrap_or_else(|| chrono::Utc::now().fixed_offset());
    let commit = CommitInfo {
        short: sha[..sha.len().min(8)].to_string(),
        author_name: kept.author.clone(),
        author_email: String::new(),
        time,
        summary: format!("rollback of {app} in {env}"),
        branch: None,
        sha,
    };
    let plan = crate::scheduler::rollback::plan(env, &app);
    let mut record = RunRecord::new(crate::store::new_run_id(), &plan, "-".into(), commit);
    record.triggered_by = Some(by.to_string());
    store.create_run(&record)?;
    Ok(Prepared { record, env: env.to_string(), app })
}

/// Performs a prepared rollback, recording it; returns the run as it ended.
pub async fn perform(
    store: &Store,
    engine: Engine,
    prepared: Prepared,
    to: Option<&str>,
    viewer: &mut impl crate::recorder::Viewer,
) -> Result<RunRecord, RollbackError> {
    let Prepared { record, env, app } = prepared;
    let id = record.id.clone();
    let (tx, rx) = crate::channel::channel(crate::channel::OutputLimits::default());
    let (to, id2, commit) = (to.map(str::to_string), id.clone(), record.commit.clone());
    let task = tokio::spawn(async move {
        crate::scheduler::rollback::run(&engine, &id2, commit, &env, &app, to.as_deref(), crate::stages::Emitter::new(tx)).await
    });
    let recorded = crate::recorder::record(store, &id, rx, viewer).await;
    if let Err(e) = task.await {
        tracing::error!(run = %id, error = %e, "the rollback task crashed");
    }
    Ok(recorded?)
}

/// Puts the kept previous version of `app` in `env` live again as a run of its own,
/// started by `by`; returns the run as it ended.
pub async fn roll_back(
    store: &Store,
    engine: Engine,
    env: &str,
    app: Option<&str>,
    to: Option<&str>,
    by: &str,
    viewer: &mut impl crate::recorder::Viewer,
) -> Result<RunRecord, RollbackError> {
    let prepared = prepare(store, engine.environments.as_ref(), env, app, by).await?;
    perform(store, engine, prepared, to, viewer).await
}

/// Why the service did not start a rollback.
#[derive(Debug, thiserror::Error)]
pub enum RollbackRefusal {
    /// The caller's role does not cover what the environment asks.
    #[error("{0}")]
    Role(String),
    #[error(transparent)]
    Failed(#[from] RollbackError),
}

/// The role rolling `env` back needs: a release manager where the operator protects it, a
/// developer elsewhere (as for any run that changes it).
pub fn needed_role(protections: &std::collections::BTreeMap<String, crate::config::Protection>, env: &str) -> crate::config::Role {
    if protections.get(env).is_some() {
        crate::config::Role::ReleaseManager
    } else {
        crate::config::Role::Developer
    }
}

impl super::Coordinator {
    /// Starts the rollback of `app` in `env` for `user` in the background; returns its run
    /// id, recorded before anything on the engine changes.
    pub async fn roll_back(
        self: &Arc<Self>,
        env: &str,
        app: Option<&str>,
        to: Option<&str>,
        user: &crate::config::User,
    ) -> Result<String, RollbackRefusal> {
        let needed = needed_role(&self.config.protections, env);
        if !user.role.covers(needed) {
            let why = match self.config.protections.get(env) {
                Some(p) => {
                    format!("{}: {env} is protected; rolling it back needs the role {needed}, and {} is {}", p.at, user.name, user.role)
                }
                None => format!("{} ({}) may not roll environments back: that needs the role {needed}", user.name, user.role),
            };
            return Err(RollbackRefusal::Role(why));
        }
        let prepared = prepare(&self.store, self.engine.environments.as_ref(), env, app, &user.name).await?;
        let id = prepared.record.id.clone();
        let (c, to) = (self.clone(), to.map(str::to_string));
        self.background.spawn(async move {
            if let Err(e) = perform(&c.store, c.engine.clone(), prepared, to.as_deref(), &mut crate::recorder::Quiet).await {
                tracing::error!(error = %e, "a rollback could not be recorded");
            }
        });
        Ok(id)
    }
}
