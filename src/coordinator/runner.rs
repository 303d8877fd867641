//! The loops of the service: the queue runner (starts queued runs as slots free up), the
//! pollers, and the periodic sweep of Docker objects no live run owns.

use std::sync::Arc;
use std::time::Duration;


use super::{Coordinator, Source, TriggerRequest};
use crate::docker::{Backend, RUN_LABEL};
use crate::events::{Event, EventKind, RunState};
use crate::pipeline::Plan;
use crate::scheduler::{self, RunRequest};
use crate::stages::Emitter;
use crate::store::RunRecord;

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
    let outcome = execute(&c, &run, plan).await;
    // What this run put live may make promotions waiting elsewhere outdated.
    if let Err(e) = crate::coordinator::approvals::supersede_outdated(&c.store, c.engine.as_ref()).await {
        tracing::warn!(error = %e, "could not look for outdated approvals");
    }
    if let Err(message) = outcome {
        let finished = Event::now(EventKind::RunFinished { state: RunState::Failed, message: Some(message) });
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

/// Checks the commit out, resolves secrets and runs the scheduler with a recorder. An
/// error before the scheduler started comes back as the run's failure message.
async fn execute(c: &Arc<Coordinator>, run: &RunRecord, plan: Plan) -> Result<(), String> {
    let project_name = run.project.clone().unwrap_or_default();
    let project = c.config.projects.get(&project_name).ok_or_else(|| format!("the project {project_name} is no longer in the service's config"))?.clone();
    // Before anything exists for the run, as for secrets: a pipeline asking for more than
    // the operator allows does not run at all.
    crate::limits::check(&plan, &c.config.limits).map_err(|e| e.to_string())?;
    let data_dir = c.data_dir.clone();
    let sha = run.commit.sha.clone();
    let uses: Vec<(String, String)> =
        plan.stages.iter().flat_map(|s| s.secrets.iter().map(move |n| (n.clone(), s.name.clone()))).collect();
    let secrets_dir = c.config.server.secrets_dir.clone();
    let grant = c.config.project_grant(&project_name);
    let protections = std::sync::Arc::new(c.config.protections.clone());
    let globs = crate::policy::RunPolicy::branch_globs(&protections);
    let project_key = project_name.clone();
    let prepared = tokio::task::spawn_blocking(move || {
        let path = super::repo::local_path(&data_dir, &project_name, &project, false).map_err(|e| e.to_string())?;
        let checkout = crate::git::resolve(&path, Some(&sha)).map_err(|e| e.to_string())?;
        let tar = checkout.tar().map_err(|e| e.to_string())?;
        // Only what the operator granted the project, and never from the service's own
        // environment (its webhook secrets, DOCKER_HOST...).
        let sources = crate::secrets::Sources { dir: secrets_dir.as_deref(), env: false };
        let secrets = crate::secrets::resolve(uses.iter().map(|(n, s)| (n.as_str(), s.as_str())), &grant, sources).map_err(|e| e.to_string())?;
        // Checked in the repository: the branch a trigger names is not proof.
        let branches = crate::git::branches_containing(&path, &sha, &globs).map_err(|e| e.to_string())?;
        Ok::<_, String>((tar, secrets, branches, path))
    })
    .await
    .map_err(|e| e.to_string())?;
    let (tar, secrets, branches, path) = prepared?;
    // Whatever an earlier start of this run left on the engine (a crash between its first
    // objects and the store's record of them) goes before this start makes its own.
    match c.engine.sweep_run(&run.id).await {
        Ok(r) if !r.is_empty() => tracing::info!(run = %run.id, ?r, "removed leftovers of an earlier start"),
        Ok(_) => {}
        Err(e) => return Err(format!("cannot clear the engine for the run: {e}")),
    }
    let policy = crate::policy::RunPolicy { protections, project: project_key, commit: run.commit.sha.clone(), branches, lock_wait: c.config.locks.wait, newest_cancels_waiting: c.config.locks.newest_cancels_waiting, limits: c.config.limits.clone(), agents: c.config.agents.clone() };
    // What a rerun of what failed takes over is judged now, on the run as it ended.
    let takeover = match (&run.rerun_of, run.rerun_failed) {
        (Some(old), true) => c.store.run(old).map(|old| crate::scheduler::rerun::take_over(&plan, &old)).map_err(|e| e.to_string())?,
        _ => Default::default(),
    };
    let (tx, rx) = crate::channel::channel(c.config.logs.output_limits());
    let request = RunRequest {
        run_id: run.id.clone(),
        plan,
        commit: run.commit.clone(),
        workspace: tar.into(),
        secrets,
        max_parallel: c.config.server.concurrency.stages,
        var_overrides: run.vars.clone(),
        shutdown: c.shutdown.clone(),
        policy,
        repo: Some(path),
        takeover,
    };
    let cancel = c.running.lock().expect("running runs").get(&run.id).map(|d| d.cancel.clone()).unwrap_or_else(|| c.shutdown.child_token());
    let scheduler = tokio::spawn(scheduler::run(c.engine.clone(), request, Emitter::new(tx), cancel));
    let recorded = crate::recorder::record(&c.store, &run.id, rx, &mut crate::recorder::Quiet).await;
    let _ = scheduler.await;
    recorded.map(|_| ()).map_err(|e| format!("recording the run failed: {e}"))
}

/// Polls one project's repository for new commits on the branches it follows.
pub(super) async fn poll(c: Arc<Coordinator>, name: String, every: Duration) {
    loop {
        let Some(project) = c.config.projects.get(&name).cloned() else { return };
        let data_dir = c.data_dir.clone();
        let n = name.clone();
        match tokio::task::spawn_blocking(move || super::repo::tracked_heads(&data_dir, &n, &project)).await {
            Ok(Ok(heads)) => {
                for (branch, sha) in heads {
                    if matches!(c.store.seen(&name, &sha), Ok(Some(_))) {
                        continue;
                    }
                    let req = TriggerRequest { rev: Some(sha.clone()), branch: Some(branch.clone()), source: Source::Poll, by: None, pusher: None, force: false };
                    match c.trigger(&name, req).await {
                        Ok(t) => tracing::info!(project = %name, %branch, ?t, "poll found a new commit"),
                        Err(e) => tracing::warn!(project = %name, %branch, error = %e, "poll could not queue a commit"),
                    }
                }
            }
            Ok(Err(e)) => tracing::warn!(project = %name, error = %e, "poll could not read the repository"),
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
    let mut swept = crate::sweep::sweep_finished_runs(&c.store, c.engine.as_ref()).await?;
    let live = c.running();
    let mut owners: Vec<String> = Vec::new();
    for container in c.engine.find_containers(&[(RUN_LABEL, "")]).await? {
        if container.labels.contains_key(crate::docker::ENVIRONMENT_LABEL) {
            continue;
        }
        owners.extend(container.labels.get(RUN_LABEL).cloned());
    }
    for network in c.engine.find_networks(&[(RUN_LABEL, "")]).await? {
        if network.labels.contains_key(crate::docker::ENVIRONMENT_LABEL) {
            continue;
        }
        owners.extend(network.labels.get(RUN_LABEL).cloned());
    }
    owners.sort();
    owners.dedup();
    for run in owners.into_iter().filter(|r| !live.contains(r)) {
        // Only runs of this store that are over: objects of runs this store does not know
        // belong to another gantry (another data dir, a test) on the same engine.
        if !c.store.run(&run).is_ok_and(|r| r.state.is_terminal()) {
            continue;
        }
        let report = c.engine.sweep_run(&run).await?;
        if !report.is_empty() {
            tracing::info!(%run, ?report, "removed orphaned Docker objects");
            swept += 1;
        }
    }
    Ok(swept)
}
