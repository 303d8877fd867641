//! Environment locks: a change to an environment (provision, preview, go-live, promote)
//! holds that environment for the rest of its run, so that two runs never interleave
//! there (one's preview replaced by the other's between smoke and load). The lock is a
//! created, never started container named after the environment: the engine refuses a
//! second of the same name, atomically, for every gantry on that engine whatever its data
//! dir, and it carries the holder's `io.gantry.run` label, so the end of the run, or the
//! sweep after a crash, removes it with the run's other objects.

use std::collections::HashMap;
use std::time::Duration;

use super::RunContext;
use crate::docker::{Backend, ContainerSpec, RUN_LABEL};
use crate::events::AttemptOutcome;

pub use crate::labels::{LOCK_LABEL, WAITING_LABEL};
use crate::labels::WAITING_PROJECT_LABEL;
/// The image the lock container is created from (never started).
const LOCK_IMAGE: &str = "gantry/busybox";
const POLL: Duration = Duration::from_millis(500);

fn lock_name(environment: &str) -> String {
    crate::labels::lock_container(environment)
}

/// Holds `environment` for this run, waiting (up to the operator's `locks.wait`) while
/// another run holds it. Already held by this run: at once.
pub async fn hold<B: Backend>(ctx: &RunContext<B>, stage: &str, attempt: u32, environment: &str) -> Result<(), AttemptOutcome> {
    if ctx.held.lock().expect("held environments").contains(environment) {
        return Ok(());
    }
    let spec = ContainerSpec {
        name: lock_name(environment),
        image: LOCK_IMAGE.into(),
        cmd: vec!["true".into()],
        labels: HashMap::from([(RUN_LABEL.to_string(), ctx.run_id.clone()), (LOCK_LABEL.to_string(), environment.to_string())]),
        ..Default::default()
    };
    if let Err(e) = ctx.backend.ensure_image(LOCK_IMAGE).await {
        return Err(ctx.error(e));
    }
    let waited_since = tokio::time::Instant::now();
    let mut told: Option<String> = None;
    let mut ticket: Option<String> = None;
    let outcome = loop {
        match ctx.backend.create_container(&spec).await {
            Ok(_) => {
                ctx.held.lock().expect("held environments").insert(environment.to_string());
                if told.is_some() {
                    ctx.note(stage, attempt, format!("holding environment {environment} after {:.1}s", waited_since.elapsed().as_secs_f64()));
                }
                break Ok(());
            }
            // The engine's word for a name taken: another run holds it.
            Err(e) if e.to_string().contains("already in use") => {}
            Err(e) => break Err(ctx.error(e)),
        }
        let holder = holder(ctx, environment).await.unwrap_or_else(|| "another run".into());
        if holder == format!("run {}", ctx.run_id) {
            // A lock of this very run (an earlier attempt, a resumed promotion).
            ctx.held.lock().expect("held environments").insert(environment.to_string());
            break Ok(());
        }
        let waiting = format!("waiting for environment {environment} (held by {holder})");
        if told.as_deref() != Some(waiting.as_str()) {
            ctx.note(stage, attempt, waiting.clone());
            told = Some(waiting.clone());
        }
        if ctx.policy.newest_cancels_waiting {
            if ticket.is_none() {
                match take_ticket(ctx, environment).await {
                    Ok(name) => ticket = Some(name),
                    Err(e) => break Err(ctx.error(e)),
                }
            }
            if let Some(newer) = newer_waiting(ctx, environment).await {
                let because = format!("run {newer}, newer, waits for environment {environment} too (locks.newest_cancels_waiting)");
                ctx.note(stage, attempt, format!("cancelling: {because}"));
                *ctx.cancelled_because.lock().expect("cancel reason") = Some(because);
                ctx.cancel.cancel();
                break Err(AttemptOutcome::Cancelled);
            }
        }
        if waited_since.elapsed() >= ctx.policy.lock_wait {
            break Err(AttemptOutcome::Error {
                message: format!("{waiting} for {}; gave up (locks.wait in the operator's config)", humantime::format_duration(ctx.policy.lock_wait)),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.cancel.cancelled() => break Err(AttemptOutcome::Cancelled),
        }
    };
    // Done waiting, either way; the run's end (or the sweep after a crash) would remove the
    // ticket too, but a waiter that got its turn must not look like one still waiting.
    if let Some(name) = ticket {
        if let Err(e) = ctx.backend.remove_container(&name).await {
            tracing::warn!(run = %ctx.run_id, error = %e, "could not remove a waiting ticket");
        }
    }
    outcome
}

/// Marks this run as waiting for `environment`: a created, never started container with
/// the run's label (swept with the run's other objects).
async fn take_ticket<B: Backend>(ctx: &RunContext<B>, environment: &str) -> Result<String, crate::docker::DockerError> {
    let name = crate::labels::waiting_ticket(environment, &ctx.run_id);
    let spec = ContainerSpec {
        name: name.clone(),
        image: LOCK_IMAGE.into(),
        cmd: vec!["true".into()],
        labels: HashMap::from([
            (RUN_LABEL.to_string(), ctx.run_id.clone()),
            (WAITING_LABEL.to_string(), environment.to_string()),
            (WAITING_PROJECT_LABEL.to_string(), ctx.policy.project.clone()),
        ]),
        ..Default::default()
    };
    match ctx.backend.create_container(&spec).await {
        Ok(_) => Ok(name),
        // A ticket of an earlier attempt of this run.
        Err(e) if e.to_string().contains("already in use") => Ok(name),
        Err(e) => Err(e),
    }
}

/// A run of the same project that started after this one and waits for `environment` too.
/// Run ids are ULIDs: they sort by the time their run was created.
async fn newer_waiting<B: Backend>(ctx: &RunContext<B>, environment: &str) -> Option<String> {
    let found = ctx.backend.find_containers(&[(WAITING_LABEL, environment), (WAITING_PROJECT_LABEL, ctx.policy.project.as_str())]).await.ok()?;
    found.iter().filter_map(|c| c.labels.get(RUN_LABEL)).filter(|r| r.as_str() > ctx.run_id.as_str()).max().cloned()
}

/// `run <id>` holding `environment`, if any lock container names one.
async fn holder<B: Backend>(ctx: &RunContext<B>, environment: &str) -> Option<String> {
    let found = ctx.backend.find_containers(&[(LOCK_LABEL, environment)]).await.ok()?;
    found.first().and_then(|c| c.labels.get(RUN_LABEL)).map(|r| format!("run {r}"))
}
