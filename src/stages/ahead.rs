//! Work taken off a chain's critical path: the next command stage's step is created while
//! the stage it needs still runs, and finished steps are removed in the background. What a
//! stage sees does not change (the same spec, created once, started when its turn comes);
//! only the waiting does. Everything started here is settled before the run's teardown,
//! so nothing made ahead can outlive the sweep.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::task::{JoinHandle, JoinSet};

use crate::engine::{EngineError, StepId, StepSpec, Steps};

type Creation = JoinHandle<Result<StepId, EngineError>>;

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
    /// Starts creating `stage`'s first step, unless that is under way already.
    pub fn prepare(&self, steps: Arc<dyn Steps>, stage: &str, spec: StepSpec) {
        let mut prepared = self.prepared.lock().expect("ahead");
        prepared.entry(stage.to_string()).or_insert_with(|| tokio::spawn(async move { steps.create_step(&spec).await }));
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
    pub async fn take(&self, stage: &str) -> Option<Result<StepId, EngineError>> {
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
            if let Ok(Ok(id)) = creation.await {
                if let Err(e) = steps.remove_step(&id).await {
                    tracing::warn!(container = %id, error = %e, "could not remove a step created ahead");
                }
            }
        }
        let mut removals = std::mem::take(&mut *self.removals.lock().expect("ahead"));
        while removals.join_next().await.is_some() {}
    }
}
