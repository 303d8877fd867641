//! The one owner of sweeping: a run's own teardown at its end, the cleanup after runs whose
//! process died (found by the run label and noted in the store, so the engine holds nothing
//! of a finished run), and the periodic sweep of objects no live run owns. Deployed
//! environments' objects are never swept: they live on by design.

use crate::engine::{EngineError, Steps, SweepReport};
use crate::events::{Event, EventKind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Removes a run's objects at its end (or before a restart of it): everything labelled
/// with it but its environments' objects.
pub async fn tear_down(steps: &dyn Steps, run_id: &str) -> Result<SweepReport, EngineError> {
    steps.destroy_run(run_id).await
}

/// Sweeps every finished run not yet known to be clean that ran on `engine` (of the pool;
/// None: the one engine of a pool-less process, which takes every run); returns how many
/// were swept.
pub async fn finished_runs(store: &Store, engine: Option<&str>, steps: &dyn Steps) -> Result<usize, SweepError> {
    let runs: Vec<_> = store.unswept_runs()?.into_iter().filter(|r| engine.is_none() || r.engine.as_deref() == engine).collect();
    for run in &runs {
        let report = tear_down(steps, &run.id).await?;
        if !report.is_empty() {
            tracing::info!(run = %run.id, ?report, "removed Docker objects left by an interrupted run");
        }
        store.append(
            &run.id,
            &Event::now(EventKind::Swept { containers: report.containers, networks: report.networks, volumes: report.volumes }),
        )?;
    }
    Ok(runs.len())
}

/// `finished_runs`, then the objects of this store's runs that are over (finished runs
/// whose cleanup did not complete), never those of runs in `live`, nor of runs this store
/// does not know: they belong to another gantry (another data dir, a test) on the engine.
pub async fn orphans(store: &Store, engine: Option<&str>, steps: &dyn Steps, live: &[String]) -> Result<usize, SweepError> {
    let mut swept = finished_runs(store, engine, steps).await?;
    for run in steps.runs_with_objects().await?.into_iter().filter(|r| !live.contains(r)) {
        if !store.run(&run).is_ok_and(|r| r.state.is_terminal()) {
            continue;
        }
        let report = tear_down(steps, &run).await?;
        if !report.is_empty() {
            tracing::info!(%run, ?report, "removed orphaned Docker objects");
            swept += 1;
        }
    }
    Ok(swept)
}
