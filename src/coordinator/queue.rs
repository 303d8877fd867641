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
        let slot = {
            let mut running = c.running.lock().expect("running runs");
            if running.len() >= limits.global {
                return Ok(());
            }
            if running.values().filter(|d| d.project == project).count() >= limits.per_project {
                continue;
            }
            let slot = match c.pool.place(&plan.placement.runs_on, plan.touches_environments()) {
                Ok(slot) => slot,
                // Busy or down engines: a later run may fit elsewhere.
                Err(crate::engine::pool::Unplaced::Waiting) => continue,
                Err(never) => {
                    drop(running);
                    refuse_unplaceable(c, &run.id, &never.to_string())?;
                    continue;
                }
            };
            let stop = c.shutdown.child_token();
            let cancel = stop.child_token();
            running.insert(run.id.clone(), super::Driven { project, engine: slot.name.clone(), stop, cancel });
            slot
        };
        let record = match c.store.start_queued(&run.id, slot.name.as_deref()) {
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
        tokio::spawn(drive(c.clone(), record, plan, slot));
    }
    Ok(())
}

/// A run no engine of the pool can ever take ends at once, saying why.
fn refuse_unplaceable(c: &Coordinator, run_id: &str, why: &str) -> Result<(), crate::store::StoreError> {
    if c.store.start_queued(run_id, None)?.is_some() {
        let finished = Event::now(EventKind::RunFinished { state: RunState::Failed, message: Some(why.to_string()) });
        c.store.append(run_id, &finished)?;
        c.store.append(run_id, &Event::now(EventKind::Swept { containers: 0, networks: 0, volumes: 0 }))?;
    }
    Ok(())
}

/// Runs one started run to its end, recording everything, then frees its slot; a run
/// its engine lost is queued once more, for another engine, if its pipeline allows.
async fn drive(c: Arc<Coordinator>, run: RunRecord, plan: Plan, slot: crate::engine::pool::Slot) {
    let id = run.id.clone();
    let retry = plan.placement.retry_on_engine_loss && run.retry_after_loss_of.is_none();
    if let Err(e) = execute(&c, &run, plan, &slot).await {
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
        drop(counters);
        let lost = done.state == RunState::Interrupted && done.message.as_deref().is_some_and(|m| m.starts_with(crate::scheduler::ENGINE_LOST));
        if let (true, Some(engine)) = (lost, &slot.name) {
            c.pool.count_lost(engine, done.message.as_deref().unwrap_or_default());
            stop_runs_on(&c, engine);
            if retry && !c.shutdown.is_cancelled() {
                match c.retry_after_engine_loss(&id, engine) {
                    Ok(again) => tracing::warn!(run = %id, %engine, retry = %again, "engine lost; the run is queued again elsewhere"),
                    Err(e) => tracing::error!(run = %id, %engine, error = %e, "engine lost; cannot queue the run again"),
                }
            }
        }
    }
    drop(slot);
    c.running.lock().expect("running runs").remove(&id);
    c.wake.notify_one();
}

/// Every couple of seconds: which engines answer. The runs of one that stopped are
/// stopped (they end interrupted, naming it) rather than left hanging on it.
pub(super) async fn watch_engines(c: Arc<Coordinator>) {
    if c.pool.views().is_empty() {
        return;
    }
    loop {
        for engine in c.pool.check().await {
            stop_runs_on(&c, &engine);
        }
        tokio::select! {
            _ = c.shutdown.cancelled() => return,
            _ = tokio::time::sleep(ENGINE_CHECK_EVERY) => {}
        }
    }
}

/// Stops (as interrupted) every run on `engine`, which stopped answering.
fn stop_runs_on(c: &Coordinator, engine: &str) {
    let running = c.running.lock().expect("running runs");
    for (id, driven) in running.iter().filter(|(_, d)| d.engine.as_deref() == Some(engine)) {
        if !driven.stop.is_cancelled() {
            tracing::warn!(run = %id, %engine, "the run's engine stopped answering; stopping the run");
            driven.stop.cancel();
        }
    }
}

const ENGINE_CHECK_EVERY: Duration = Duration::from_secs(2);

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
async fn execute(c: &Arc<Coordinator>, run: &RunRecord, plan: Plan, slot: &crate::engine::pool::Slot) -> Result<(), ExecuteError> {
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
    let (stop, cancel) = c
        .running
        .lock()
        .expect("running runs")
        .get(&run.id)
        .map(|d| (d.stop.clone(), d.cancel.clone()))
        .unwrap_or_else(|| (c.shutdown.child_token(), c.shutdown.child_token()));
    let start = crate::runs::Start {
        plan,
        prepared,
        max_parallel: c.config.server.concurrency.stages,
        shutdown: stop,
        cancel,
        takeover,
        output: c.config.logs.output_limits(),
        // Whatever an earlier start of this run left on the engine (a crash between its
        // first objects and the store's record of them) goes before this start makes its own.
        may_have_leftovers: true,
    };
    let started = crate::runs::start(&slot.engine, run, start).await?;
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
    let mut swept = 0;
    // Each engine that answers sweeps what this store's finished runs left on it; an engine
    // that is down is swept once it answers again.
    for (name, engine) in c.pool.up() {
        swept += crate::sweep::orphans(&c.store, name.as_deref(), engine.steps.as_ref(), &c.running()).await?;
    }
    Ok(swept)
}
