//! Environment locks: a change to an environment (provision, preview, go-live, promote)
//! holds that environment for the rest of its run, so that two runs never interleave
//! there (one's preview replaced by the other's between smoke and load). The lock itself
//! is the environment seam's (`Environments::lock`): atomic for every gantry on the
//! engine, and gone with the run's other objects at its end or in the sweep after a crash.

use std::time::Duration;

use super::RunContext;
use crate::engine::Lock;
use crate::events::AttemptOutcome;

const POLL: Duration = Duration::from_millis(500);

/// Holds `environment` for this run, waiting (up to the operator's `locks.wait`) while
/// another run holds it. Already held by this run: at once.
pub async fn hold(ctx: &RunContext, stage: &str, attempt: u32, environment: &str) -> Result<(), AttemptOutcome> {
    if ctx.held.lock().expect("held environments").contains(environment) {
        return Ok(());
    }
    let waited_since = tokio::time::Instant::now();
    let mut told: Option<String> = None;
    let mut ticket = false;
    let outcome = loop {
        let holder = match ctx.envs.lock(environment, &ctx.run_id).await {
            Ok(Lock::Taken) => {
                ctx.held.lock().expect("held environments").insert(environment.to_string());
                if told.is_some() {
                    ctx.note(
                        stage,
                        attempt,
                        format!("holding environment {environment} after {:.1}s", waited_since.elapsed().as_secs_f64()),
                    );
                }
                break Ok(());
            }
            Ok(Lock::HeldBy(holder)) => holder,
            Err(e) => break Err(ctx.error(e)),
        };
        if holder.as_deref() == Some(ctx.run_id.as_str()) {
            // A lock of this very run (an earlier attempt, a resumed promotion).
            ctx.held.lock().expect("held environments").insert(environment.to_string());
            break Ok(());
        }
        let holder = holder.map(|r| format!("run {r}")).unwrap_or_else(|| "another run".into());
        let waiting = format!("waiting for environment {environment} (held by {holder})");
        if told.as_deref() != Some(waiting.as_str()) {
            ctx.note(stage, attempt, waiting.clone());
            told = Some(waiting.clone());
        }
        if ctx.policy.newest_cancels_waiting {
            if !ticket {
                if let Err(e) = ctx.envs.wait_ticket(environment, &ctx.run_id, &ctx.policy.project).await {
                    break Err(ctx.error(e));
                }
                ticket = true;
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
                message: format!(
                    "{waiting} for {}; gave up (locks.wait in the operator's config)",
                    humantime::format_duration(ctx.policy.lock_wait)
                ),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.cancel.cancelled() => break Err(AttemptOutcome::Cancelled),
        }
    };
    // Done waiting, either way; the run's end (or the sweep after a crash) would remove the
    // ticket too, but a waiter that got its turn must not look like one still waiting.
    if ticket {
        if let Err(e) = ctx.envs.drop_ticket(environment, &ctx.run_id).await {
            tracing::warn!(run = %ctx.run_id, error = %e, "could not remove a waiting ticket");
        }
    }
    outcome
}

/// A run of the same project that started after this one and waits for `environment` too.
/// Run ids are ULIDs: they sort by the time their run was created.
async fn newer_waiting(ctx: &RunContext, environment: &str) -> Option<String> {
    let waiting = ctx.envs.waiting(environment, &ctx.policy.project).await.ok()?;
    waiting.into_iter().filter(|r| r.as_str() > ctx.run_id.as_str()).max()
}
