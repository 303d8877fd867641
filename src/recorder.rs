//! The one writer of a run's history: it takes what the scheduler emits, stores it (events
//! in transactions, log lines in batches, in arrival order) and then lets a viewer see it.

use crate::events::{Emitted, Event, EventKind, LogLine};
use crate::store::{RunRecord, Store, StoreError};

/// Something that shows a run as it happens (a terminal, a test, nothing).
pub trait Viewer {
    fn log(&mut self, line: &LogLine);
    fn event(&mut self, event: &Event, record: &RunRecord);
}

/// A viewer that shows nothing (benchmarks, background runs).
pub struct Quiet;

impl Viewer for Quiet {
    fn log(&mut self, _: &LogLine) {}
    fn event(&mut self, _: &Event, _: &RunRecord) {}
}

/// Records until `RunFinished` (or until the sender is gone) and returns the final record.
pub async fn record(
    store: &Store,
    run_id: &str,
    mut rx: crate::channel::Receiver,
    viewer: &mut impl Viewer,
) -> Result<RunRecord, StoreError> {
    let mut record = store.run(run_id)?;
    let mut lines = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Some(more) => batch.push(more),
                None => break,
            }
        }
        for item in batch {
            match item {
                Emitted::Log(line) => {
                    viewer.log(&line);
                    lines.push(line);
                }
                Emitted::Event(event) => {
                    // Output emitted before a state change is stored before it.
                    if !lines.is_empty() {
                        off_worker(|| store.append_logs(run_id, &lines))?;
                        lines.clear();
                    }
                    record = off_worker(|| store.append(run_id, &event))?;
                    viewer.event(&event, &record);
                    if matches!(event.kind, EventKind::RunFinished { .. }) {
                        return Ok(record);
                    }
                }
            }
        }
        if !lines.is_empty() {
            off_worker(|| store.append_logs(run_id, &lines))?;
            lines.clear();
        }
    }
    Ok(record)
}

/// Runs a store write (which may flush to disk) without holding up the async workers:
/// other runs and the service's requests go on meanwhile.
fn off_worker<T>(write: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(write),
        _ => write(),
    }
}
