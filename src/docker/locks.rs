//! Environment locks on Docker: the lock is a created, never started container named
//! after the environment. The engine refuses a second of the same name, atomically, for
//! every gantry on that engine whatever its data dir, and it carries the holder's
//! `io.gantry.run` label, so the end of the run, or the sweep after a crash, removes it with
//! the run's other objects. A run waiting under `locks.newest_cancels_waiting` holds a
//! ticket: another such container, labelled with the environment and its project.

use std::collections::HashMap;

use super::{ContainerSpec, Containers, DockerEngine, DockerError, RUN_LABEL};
use crate::engine::Lock;
use crate::labels::{LOCK_LABEL, WAITING_LABEL, WAITING_PROJECT_LABEL};

/// The image lock containers are created from (never started).
const LOCK_IMAGE: &str = "gantry/busybox";

/// The engine's word for a name taken.
fn name_taken(e: &DockerError) -> bool {
    e.to_string().contains("already in use")
}

fn placeholder(name: String, labels: HashMap<String, String>) -> ContainerSpec {
    ContainerSpec { name, image: LOCK_IMAGE.into(), cmd: vec!["true".into()], labels, ..Default::default() }
}

pub(super) async fn lock(engine: &DockerEngine, env: &str, run_id: &str) -> Result<Lock, DockerError> {
    engine.ensure_image(LOCK_IMAGE).await?;
    let labels = HashMap::from([(RUN_LABEL.to_string(), run_id.to_string()), (LOCK_LABEL.to_string(), env.to_string())]);
    match engine.create_container(&placeholder(crate::labels::lock_container(env), labels)).await {
        Ok(_) => Ok(Lock::Taken),
        Err(e) if name_taken(&e) => {
            let found = engine.find_containers(&[(LOCK_LABEL, env)]).await?;
            Ok(Lock::HeldBy(found.first().and_then(|c| c.labels.get(RUN_LABEL)).cloned()))
        }
        Err(e) => Err(e),
    }
}

pub(super) async fn wait_ticket(engine: &DockerEngine, env: &str, run_id: &str, project: &str) -> Result<(), DockerError> {
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        (WAITING_LABEL.to_string(), env.to_string()),
        (WAITING_PROJECT_LABEL.to_string(), project.to_string()),
    ]);
    match engine.create_container(&placeholder(crate::labels::waiting_ticket(env, run_id), labels)).await {
        // Taken: a ticket of an earlier attempt of this run.
        Err(e) if !name_taken(&e) => Err(e),
        _ => Ok(()),
    }
}

pub(super) async fn drop_ticket(engine: &DockerEngine, env: &str, run_id: &str) -> Result<(), DockerError> {
    engine.remove_container(&crate::labels::waiting_ticket(env, run_id)).await
}

pub(super) async fn waiting(engine: &DockerEngine, env: &str, project: &str) -> Result<Vec<String>, DockerError> {
    let found = engine.find_containers(&[(WAITING_LABEL, env), (WAITING_PROJECT_LABEL, project)]).await?;
    Ok(found.into_iter().filter_map(|mut c| c.labels.remove(RUN_LABEL)).collect())
}
