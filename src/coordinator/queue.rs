//! The loops of the service: the queue runner (starts queued runs as slots free up), the
//! pollers, and the periodic sweep of Docker objects no live run owns.

use std::sync::Arc;
use std::time::Duration;

use super::{Coordinator, Source, TriggerRequest};
use crate::events::{Event, EventKind, RunState};
use crate::pipeline::Plan;
use crate::store::RunRecord;
use std::path::PathBuf;

/// Starts queued runs, oldest first, whenever the limits allow; wakes on every trigger,
/// every finished run, and once a second. Ends when the service shuts down.
pub(super) async fn run_queue(c: Arc<Coordinator>) {
    loop {
        if let Err(e) = start_what_fits(&c) {
            tracing::error!(error = %e, "cannot read the queue");
        }
        tokio::select! {
            _ = c.shutdown.cancelled() => return,
            _ = c.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn start_what_fits(c: &Arc<Coordinator>) -> Result<(), crate::store::StoreError> {
    let limits = c.config.server.concurrency;
    for (run, plan) in c.store.queued()? {
        let project = run.project.clone().unwrap_or_default();
        {
            let mut running = c.running.lock().expect("running runs");
            if running.len() >= limits.global {
                return Ok(());
            }
            if running.values().filter(|d| d.project == project).count() >= limits.per_project {
                continue;
            }
            running.insert(run.id.clone(), super::Driven { project, cancel: c.shutdown.child_token() });
        }
        let record = match c.store.start_queued(&run.id) {
            Ok(Some(r)) => r,
            // Cancelled between the listing and now.
            Ok(None) => {
                c.running.lock().expect("running runs").remove(&run.id);
                continue;
            }
            Err(e) => {
                c.running.lock().expect("running runs").remove(&run.id);
                return Err(e);
            }
        };
        tokio::spawn(drive(c.clone(), record, plan));
    }
    Ok(())
}

/// Runs one started run to its end, recording everything, then frees its slot.
async fn drive(c: Arc<Coordinator>, run: RunRecord, plan: Plan) {
    let id = run.id.clone();
    if let Err(e) = execute(&c, &run, plan).await {
        let finished = Event::now(EventKind::RunFinished { state: RunState::Failed, message: Some(e.to_string()) });
        if let Err(e) = c.store.append(&id, &finished) {
            tracing::error!(run = %id, error = %e, "cannot record the end of a run");
        }
    }
    if let Ok(done) = c.store.run(&id) {
        let mut counters = c.counters.lock().expect("counters");
        *counters.finished.entry(done.state).or_default() += 1;
        for s in &done.stages {
            if let Some(d) = s.duration() {
                counters.stage_seconds.observe(d.num_milliseconds() as f64 / 1000.0);
            }
        }
    }
    c.running.lock().expect("running runs").remove(&id);
    c.wake.notify_one();
}

/// Why the service could not run a run it had queued: the run's failure message.
#[derive(Debug, thiserror::Error)]
enum ExecuteError {
    #[error("the project {0} is no longer in the service's config")]
    ProjectGone(String),
    #[error(transparent)]
    Repo(crate::git::GitError),
    #[error(transparent)]
    Run(#[from] crate::runs::RunError),
    #[error("preparing the run crashed: {0}")]
    Crashed(#[from] tokio::task::JoinError),
    #[error("recording the run failed: {0}")]
    Recording(crate::runs::RunError),
}

/// Prepares and runs a queued run through the library entrance, recording it. An error
/// before the scheduler started comes back as the run's failure message.
async fn execute(c: &Arc<Coordinator>, run: &RunRecord, plan: Plan) -> Result<(), ExecuteError> {
    let project_name = run.project.clone().unwrap_or_default();
    let project = c.config.projects.get(&project_name).ok_or_else(|| ExecuteError::ProjectGone(project_name.clone()))?.clone();
    let (data_dir, config) = (c.data_dir.clone(), c.config.clone());
    let ask = crate::runs::Ask {
        repo: PathBuf::new(),
        rev: Some(run.commit.sha.clone()),
        branch: None,
        grant: c.config.project_grant(&project_name),
        project: project_name.clone(),
        // Only what the operator granted the project, and never from the service's own
        // environment (its webhook secrets, DOCKER_HOST...).
        secrets_dir: c.config.server.secrets_dir.clone(),
        secrets_from_env: false,
    };
    let plan_for_prepare = plan.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let repo = super::repo::local_path(&data_dir, &project_name, &project, false).map_err(ExecuteError::Repo)?;
        let ask = crate::runs::Ask { repo, ..ask };
        Ok::<_, ExecuteError>(crate::runs::prepare(&plan_for_prepare, &ask, &config)?)
    })
    .await??;
    // What a rerun of what failed takes over is judged now, on the run as it ended.
    let takeover = match (&run.rerun_of, run.rerun_failed) {
        (Some(old), true) => {
            c.store.run(old).map(|old| crate::scheduler::rerun::take_over(&plan, &old)).map_err(crate::runs::RunError::from)?
        }
        _ => Default::default(),
    };
    let cancel = c.running.lock().expect("running runs").get(&run.id).map(|d| d.cancel.clone()).unwrap_or_else(|| c.shutdown.child_token());
    let start = crate::runs::Start {
        plan,
        prepared,
        max_parallel: c.config.server.concurrency.stages,
        shutdown: c.shutdown.clone(),
        cancel,
        takeover,
        output: c.config.logs.output_limits(),
        // Whatever an earlier start of this run left on the engine (a crash between its
        // first objects and the store's record of them) goes before this start makes its own.
        may_have_leftovers: true,
    };
    let started = crate::runs::start(&c.engine, run, start).await?;
    crate::runs::follow(&c.store, &run.id, started, &mut crate::recorder::Quiet).await.map_err(ExecuteError::Recording)?;
    Ok(())
}

/// Polls one project's repository for new commits on the branches it follows.
pub(super) async fn poll(c: Arc<Coordinator>, name: String, every: Duration) {
    loop {
        let Some(project) = c.config.projects.get(&name).cloned() else {
            return;
        };
        let data_dir = c.data_dir.clone();
        let n = name.clone();
        match tokio::task::spawn_blocking(move || super::repo::tracked_heads(&data_dir, &n, &project)).await {
            Ok(Ok(heads)) => {
                for (branch, sha) in heads {
                    if matches!(c.store.seen(&name, &sha), Ok(Some(_))) {
                        continue;
                    }
                    let req = TriggerRequest {
                        rev: Some(sha.clone()),
                        branch: Some(branch.clone()),
                        source: Source::Poll,
                        by: None,
                        pusher: None,
                        force: false,
                    };
                    match c.trigger(&name, req).await {
                        Ok(t) => {
                            tracing::info!(project = %name, %branch, ?t, "poll found a new commit")
                        }
                        Err(e) => {
                            tracing::warn!(project = %name, %branch, error = %e, "poll could not queue a commit")
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(project = %name, error = %e, "poll could not read the repository")
            }
            Err(e) => tracing::error!(project = %name, error = %e, "poll task crashed"),
        }
        tokio::select! {
            _ = c.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Every `server.sweep_every`: removes Docker objects of this store's runs that are over
/// (finished runs whose cleanup did not complete, and any other object labelled with one
/// of them), never those of deployed environments, nor of runs this store does not know.
pub(super) async fn sweep_every(c: Arc<Coordinator>) {
    loop {
        if let Err(e) = sweep_once(&c).await {
            tracing::warn!(error = %e, "periodic sweep failed; retrying at the next one");
        }
        tokio::select! {
            _ = c.shutdown.cancelled() => return,
            _ = tokio::time::sleep(c.config.server.sweep_every) => {}
        }
    }
}

pub async fn sweep_once(c: &Coordinator) -> Result<usize, crate::sweep::SweepError> {
    crate::sweep::orphans(&c.store, c.engine.steps.as_ref(), &c.running()).await
}
