//! The one writer of a run's history: it takes what the scheduler emits, stores it (events
//! in transactions, log lines in batches, in arrival order) and then lets a viewer see it.

use tokio::sync::mpsc::UnboundedReceiver;

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
    mut rx: UnboundedReceiver<Emitted>,
    viewer: &mut impl Viewer,
) -> Result<RunRecord, StoreError> {
    let mut record = store.run(run_id)?;
    let mut lines = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
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
                        store.append_logs(run_id, &lines)?;
                        lines.clear();
                    }
                    record = store.append(run_id, &event)?;
                    viewer.event(&event, &record);
                    if matches!(event.kind, EventKind::RunFinished { .. }) {
                        return Ok(record);
                    }
                }
            }
        }
        if !lines.is_empty() {
            store.append_logs(run_id, &lines)?;
            lines.clear();
        }
    }
    Ok(record)
}
