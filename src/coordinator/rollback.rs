//! Rolling an environment back by hand, shared by `gantry env rollback` and the API: find
//! the version its last go-live kept, record a run for putting it back, and perform it.

use std::sync::Arc;

use crate::docker::Backend;
use crate::stages::environment::{self, Role, APP_LABEL, COMMIT_LABEL, COMMIT_TIME_LABEL};
use crate::store::{CommitInfo, RunRecord, Store};

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("{0}")]
    Nothing(String),
    #[error(transparent)]
    Docker(#[from] crate::docker::DockerError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The app to roll back: the one named, or the environment's only one.
async fn app_of<B: Backend>(backend: &B, env: &str, app: Option<&str>) -> Result<String, RollbackError> {
    if let Some(app) = app {
        return Ok(app.to_string());
    }
    let mut apps: Vec<String> = environment::containers(backend, env, Role::App).await?.into_iter().filter_map(|c| c.labels.get(APP_LABEL).cloned()).collect();
    apps.sort();
    apps.dedup();
    match apps.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RollbackError::Nothing(format!("there is no app in environment {env}"))),
        many => Err(RollbackError::Nothing(format!("environment {env} runs several apps ({}); name one with --app", many.join(", ")))),
    }
}

/// Puts the kept previous version of `app` in `env` live again as a run of its own,
/// started by `by`; returns the run as it ended.
pub async fn roll_back<B: Backend + 'static>(
    store: &Store,
    backend: Arc<B>,
    env: &str,
    app: Option<&str>,
    to: Option<&str>,
    by: &str,
    viewer: &mut impl crate::recorder::Viewer,
) -> Result<RunRecord, RollbackError> {
    let app = app_of(backend.as_ref(), env, app).await?;
    let kept = environment::containers(backend.as_ref(), env, Role::App)
        .await?
        .into_iter()
        .find(|c| !c.running && c.labels.get(APP_LABEL) == Some(&app))
        .ok_or_else(|| RollbackError::Nothing(format!("there is no previous version of {app} in {env} to roll back to (each go-live keeps one)")))?;
    let sha = kept.labels.get(COMMIT_LABEL).cloned().unwrap_or_default();
    let time = kept.labels.get(COMMIT_TIME_LABEL).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).unwrap_or_else(|| chrono::Utc::now().fixed_offset());
    let commit = CommitInfo {
        short: sha[..sha.len().min(8)].to_string(),
        author_name: kept.labels.get("io.gantry.author").cloned().unwrap_or_default(),
        author_email: String::new(),
        time,
        summary: format!("rollback of {app} in {env}"),
        branch: None,
        sha,
    };
    let plan = crate::scheduler::rollback::plan(env, &app);
    let id = crate::store::new_run_id();
    let mut record = RunRecord::new(id.clone(), &plan, "-".into(), commit.clone());
    record.triggered_by = Some(by.to_string());
    store.create_run(&record)?;
    let (tx, rx) = crate::channel::channel(crate::channel::OutputLimits::default());
    let (env2, app2, to2, id2) = (env.to_string(), app.clone(), to.map(str::to_string), id.clone());
    let task = tokio::spawn(async move {
        crate::scheduler::rollback::run(backend, &id2, commit, &env2, &app2, to2.as_deref(), crate::stages::Emitter::new(tx)).await
    });
    let recorded = crate::recorder::record(store, &id, rx, viewer).await;
    if let Err(e) = task.await {
        tracing::error!(run = %id, error = %e, "the rollback task crashed");
    }
    Ok(recorded?)
}
