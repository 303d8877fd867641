//! Work taken off a chain's critical path: the next command stage's step is created and
//! started, held at its gate, while the stage it needs still runs, and finished steps are
//! removed in the background. What a stage sees does not change: its commands begin when
//! its turn comes, on the same network, workspace and environment, with stdin /dev/null;
//! only the waiting does. Everything started here is settled before the run's teardown,
//! so nothing made ahead can outlive the sweep, and a held step whose gantry dies ends
//! unrun (its gate closes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::{JoinHandle, JoinSet};

use crate::engine::{EngineError, Output, Release, StepId, StepSpec, Steps};

/// A step started ahead, waiting at its gate.
pub struct Ready {
    pub id: StepId,
    pub output: Output,
    pub release: Release,
}

type Creation = JoinHandle<Result<Ready, EngineError>>;

#[derive(Default)]
pub struct Ahead {
    /// Steps being (or already) created ahead, by stage; taken by the stage's first attempt.
    prepared: Mutex<HashMap<String, Creation>>,
    removals: Mutex<JoinSet<()>>,
}

fn crashed(e: tokio::task::JoinError) -> EngineError {
    EngineError::Api { action: "create container".into(), reason: format!("the creation ahead crashed: {e}") }
}

impl Ahead {
    /// Starts creating and starting (held) `stage`'s first step, unless that is under way.
    pub fn prepare(&self, steps: Arc<dyn Steps>, stage: &str, spec: StepSpec) {
        let mut prepared = self.prepared.lock().expect("ahead");
        prepared.entry(stage.to_string()).or_insert_with(|| tokio::spawn(async move { ready(steps.as_ref(), &spec).await }));
    }

    /// Stages with a step created (or being created) ahead and not yet taken.
    pub fn waiting(&self) -> usize {
        self.prepared.lock().expect("ahead").len()
    }

    pub fn is_prepared(&self, stage: &str) -> bool {
        self.prepared.lock().expect("ahead").contains_key(stage)
    }

    /// The step created ahead for `stage`, if one was: the creation's own result, errors
    /// included, so a stage fails the same way whether or not it was prepared.
    pub async fn take(&self, stage: &str) -> Option<Result<Ready, EngineError>> {
        let creation = self.prepared.lock().expect("ahead").remove(stage)?;
        Some(creation.await.unwrap_or_else(|e| Err(crashed(e))))
    }

    /// Removes a finished step in the background.
    pub fn remove_later(&self, steps: Arc<dyn Steps>, id: String) {
        self.removals.lock().expect("ahead").spawn(async move {
            if let Err(e) = steps.remove_step(&id).await {
                tracing::warn!(container = %id, error = %e, "could not remove container");
            }
        });
    }

    /// Waits for everything started ahead and removes the steps no stage took. Creations
    /// are awaited, not aborted: an aborted request can still create its container.
    pub async fn settle(&self, steps: &dyn Steps) {
        let prepared: Vec<Creation> = self.prepared.lock().expect("ahead").drain().map(|(_, c)| c).collect();
        for creation in prepared {
            if let Ok(Ok(ready)) = creation.await {
                // Closing the gate first: the step ends unrun even if the removal fails.
                let Ready { id, release, .. } = ready;
                drop(release);
                if let Err(e) = steps.remove_step(&id).await {
                    tracing::warn!(container = %id, error = %e, "could not remove a step created ahead");
                }
            }
        }
        let mut removals = std::mem::take(&mut *self.removals.lock().expect("ahead"));
        while removals.join_next().await.is_some() {}
    }
}

async fn ready(steps: &dyn Steps, spec: &StepSpec) -> Result<Ready, EngineError> {
    let id = steps.create_step(spec).await?;
    match steps.start_held(&id).await {
        Ok((output, release)) => Ok(Ready { id, output, release }),
        Err(e) => {
            let _ = steps.remove_step(&id).await;
            Err(e)
        }
    }
}
