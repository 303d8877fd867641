//! Cleanup after runs whose process died: their Docker objects are found by the run label
//! and removed, and the store notes it, so the engine holds nothing of a finished run.

use crate::docker::{Backend, DockerError};
use crate::events::{Event, EventKind};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Sweeps every finished run not yet known to be clean; returns how many were swept.
pub async fn sweep_finished_runs<B: Backend>(store: &Store, backend: &B) -> Result<usize, SweepError> {
    let runs = store.unswept_runs()?;
    for run in &runs {
        let report = backend.sweep_run(&run.id).await?;
        if !report.is_empty() {
            tracing::info!(run = %run.id, ?report, "removed Docker objects left by an interrupted run");
        }
        store.append(
            &run.id,
            &Event::now(EventKind::Swept {
                containers: report.containers,
                networks: report.networks,
                volumes: report.volumes,
            }),
        )?;
    }
    Ok(runs.len())
}
