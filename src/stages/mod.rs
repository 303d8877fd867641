//! Stage executors: one per stage kind. The scheduler hands an executor a stage and a
//! context; the executor drives the engine and reports only through emitted events.

pub mod command;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::docker::Backend;
use crate::events::{Emitted, Event, EventKind, LogLine, Stream};
use crate::mask::Masker;
use crate::pipeline::Vars;
use crate::store::CommitInfo;

/// What every stage of a run shares.
pub struct RunContext<B: Backend> {
    pub backend: Arc<B>,
    pub run_id: String,
    pub pipeline: String,
    pub commit: CommitInfo,
    /// The checked-out commit, as a tar archive, for the workspace volume.
    pub workspace: Bytes,
    pub network: String,
    pub workspace_volume: String,
    /// Secret values by name; only ever leave this struct as container env.
    pub secrets: BTreeMap<String, String>,
    pub masker: Masker,
    pub vars: Vars,
    pub emit: Emitter,
    pub cancel: CancellationToken,
    /// The workspace is filled once, into whichever stage container is created first.
    pub workspace_filled: tokio::sync::OnceCell<()>,
}

/// The scheduler's and executors' only way to tell the world anything.
#[derive(Clone)]
pub struct Emitter {
    tx: UnboundedSender<Emitted>,
}

impl Emitter {
    pub fn new(tx: UnboundedSender<Emitted>) -> Self {
        Emitter { tx }
    }

    pub fn event(&self, kind: EventKind) {
        // The receiver lives as long as the run; if it is gone the process is exiting.
        let _ = self.tx.send(Emitted::Event(Event::now(kind)));
    }

    pub fn log(&self, stage: &str, attempt: u32, stream: Stream, text: String) {
        let _ = self.tx.send(Emitted::Log(LogLine {
            at: chrono::Utc::now(),
            stage: stage.to_string(),
            attempt,
            stream,
            text,
        }));
    }
}
