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

/// The label naming the environment a lock container holds.
pub const LOCK_LABEL: &str = "io.gantry.lock";
/// The image the lock container is created from (never started).
const LOCK_IMAGE: &str = "gantry/busybox";
const POLL: Duration = Duration::from_millis(500);

fn lock_name(environment: &str) -> String {
    format!("gantry-lock-{environment}")
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
    loop {
        match ctx.backend.create_container(&spec).await {
            Ok(_) => {
                ctx.held.lock().expect("held environments").insert(environment.to_string());
                if told.is_some() {
                    ctx.note(stage, attempt, format!("holding environment {environment} after {:.1}s", waited_since.elapsed().as_secs_f64()));
                }
                return Ok(());
            }
            // The engine's word for a name taken: another run holds it.
            Err(e) if e.to_string().contains("already in use") => {}
            Err(e) => return Err(ctx.error(e)),
        }
        let holder = holder(ctx, environment).await.unwrap_or_else(|| "another run".into());
        if holder == format!("run {}", ctx.run_id) {
            // A lock of this very run (an earlier attempt, a resumed promotion).
            ctx.held.lock().expect("held environments").insert(environment.to_string());
            return Ok(());
        }
        let waiting = format!("waiting for environment {environment} (held by {holder})");
        if told.as_deref() != Some(waiting.as_str()) {
            ctx.note(stage, attempt, waiting.clone());
            told = Some(waiting.clone());
        }
        if waited_since.elapsed() >= ctx.policy.lock_wait {
            return Err(AttemptOutcome::Error {
                message: format!("{waiting} for {}; gave up (locks.wait in the operator's config)", humantime::format_duration(ctx.policy.lock_wait)),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.cancel.cancelled() => return Err(AttemptOutcome::Cancelled),
        }
    }
}

/// `run <id>` holding `environment`, if any lock container names one.
async fn holder<B: Backend>(ctx: &RunContext<B>, environment: &str) -> Option<String> {
    let found = ctx.backend.find_containers(&[(LOCK_LABEL, environment)]).await.ok()?;
    found.first().and_then(|c| c.labels.get(RUN_LABEL)).map(|r| format!("run {r}"))
}
