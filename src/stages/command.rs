//! The `run` stage kind: the stage's commands run under `sh -e` in a container of its
//! image, on the run's network, with the run's workspace volume at /workspace.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::RunContext;
use crate::docker::{Backend, ContainerSpec, OutputChunk, RUN_LABEL, STAGE_LABEL};
use crate::events::{AttemptOutcome, EventKind, Stream};
use crate::pipeline::{interpolate, StagePlan};

pub const WORKSPACE: &str = "/workspace";
/// How long output may still trickle in after the container stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// Runs a stage with its retries; returns the outcome of the last attempt.
pub async fn run_stage<B: Backend>(ctx: &RunContext<B>, stage: &StagePlan) -> AttemptOutcome {
    let attempts = stage.retries + 1;
    let mut attempt = 1;
    loop {
        ctx.emit.event(EventKind::StageStarted { stage: stage.name.clone(), attempt });
        let outcome = run_attempt(ctx, stage, attempt).await;
        let retryable = matches!(
            outcome,
            AttemptOutcome::Failed { .. } | AttemptOutcome::TimedOut { .. } | AttemptOutcome::Error { .. }
        );
        let will_retry = retryable && attempt < attempts && !ctx.cancel.is_cancelled();
        ctx.emit.event(EventKind::AttemptFinished {
            stage: stage.name.clone(),
            attempt,
            result: outcome.clone(),
            will_retry,
        });
        if !will_retry {
            return outcome;
        }
        attempt += 1;
    }
}

/// The shell script for a stage: each command echoed (as CI users expect to see), then run;
/// `sh -e` stops at the first failing command.
pub fn script(commands: &[String]) -> String {
    let mut out = String::new();
    for command in commands {
        out.push_str(&format!("printf '%s\\n' {}\n{command}\n", shell_quote(&format!("+ {command}"))));
    }
    out
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

async fn run_attempt<B: Backend>(ctx: &RunContext<B>, stage: &StagePlan, attempt: u32) -> AttemptOutcome {
    let backend = &ctx.backend;
    let image = interpolate(&stage.image, &ctx.vars);
    if let Err(e) = backend.ensure_image(&image).await {
        return AttemptOutcome::Error { message: ctx.masker.mask(&e.to_string()) };
    }
    if ctx.cancel.is_cancelled() {
        return AttemptOutcome::Cancelled;
    }
    let spec = container_spec(ctx, stage, &image, attempt);
    let id = match backend.create_container(&spec).await {
        Ok(id) => id,
        Err(e) => return AttemptOutcome::Error { message: ctx.masker.mask(&e.to_string()) },
    };
    let outcome = drive(ctx, stage, attempt, &id).await;
    // Removal is on every path; the end-of-run sweep catches whatever this misses.
    if let Err(e) = backend.remove_container(&id).await {
        tracing::warn!(container = %id, error = %e, "could not remove stage container");
    }
    outcome
}

fn container_spec<B: Backend>(ctx: &RunContext<B>, stage: &StagePlan, image: &str, attempt: u32) -> ContainerSpec {
    let mut env: Vec<String> = vec![
        "CI=true".into(),
        "GANTRY=true".into(),
        format!("GANTRY_RUN_ID={}", ctx.run_id),
        format!("GANTRY_PIPELINE={}", ctx.pipeline),
        format!("GANTRY_STAGE={}", stage.name),
        format!("GANTRY_ATTEMPT={attempt}"),
        format!("GANTRY_COMMIT_SHA={}", ctx.commit.sha),
        format!("GANTRY_COMMIT_SHORT={}", ctx.commit.short),
        format!("GANTRY_BRANCH={}", ctx.commit.branch.clone().unwrap_or_default()),
        format!("GANTRY_WORKSPACE={WORKSPACE}"),
    ];
    env.extend(stage.env.iter().map(|(k, v)| format!("{k}={}", interpolate(v, &ctx.vars))));
    env.extend(
        stage.secrets.iter().filter_map(|name| ctx.secrets.get(name).map(|value| format!("{name}={value}"))),
    );
    let commands: Vec<String> = stage.commands.iter().map(|c| interpolate(c, &ctx.vars)).collect();
    ContainerSpec {
        name: format!("gantry-{}-{}-{attempt}", ctx.run_id, stage.name),
        image: image.to_string(),
        entrypoint: vec!["/bin/sh".into(), "-e".into(), "-c".into()],
        cmd: vec![script(&commands)],
        env,
        working_dir: WORKSPACE.into(),
        labels: HashMap::from([
            (RUN_LABEL.to_string(), ctx.run_id.clone()),
            (STAGE_LABEL.to_string(), stage.name.clone()),
        ]),
        network: Some(ctx.network.clone()),
        aliases: vec![stage.name.clone()],
        volumes: vec![(ctx.workspace_volume.clone(), WORKSPACE.to_string())],
    }
}

/// Fills the workspace if needed, starts the container, streams its output and waits for
/// it, a timeout or a cancel, whichever comes first.
async fn drive<B: Backend>(ctx: &RunContext<B>, stage: &StagePlan, attempt: u32, id: &str) -> AttemptOutcome {
    let backend = &ctx.backend;
    let filled = ctx
        .workspace_filled
        .get_or_try_init(|| async { backend.upload(id, WORKSPACE, ctx.workspace.clone()).await })
        .await;
    if let Err(e) = filled {
        return AttemptOutcome::Error { message: format!("could not fill the workspace: {e}") };
    }
    let output = backend.output(id);
    if let Err(e) = backend.start(id).await {
        return AttemptOutcome::Error { message: ctx.masker.mask(&e.to_string()) };
    }
    let started = Instant::now();
    let forward = forward_output(ctx, &stage.name, attempt, output);
    tokio::pin!(forward);
    let mut forwarded = false;
    let ended = tokio::select! {
        code = backend.wait(id) => match code {
            Ok(0) => AttemptOutcome::Succeeded,
            Ok(code) => AttemptOutcome::Failed { exit_code: code },
            Err(e) => AttemptOutcome::Error { message: e.to_string() },
        },
        _ = tokio::time::sleep(stage.timeout) => AttemptOutcome::TimedOut { after_secs: started.elapsed().as_secs() },
        _ = ctx.cancel.cancelled() => AttemptOutcome::Cancelled,
        // Output ending first is normal (it ends as the container stops); keep waiting.
        _ = &mut forward => { forwarded = true; wait_after_output(ctx, stage, id, started).await }
    };
    if matches!(ended, AttemptOutcome::TimedOut { .. } | AttemptOutcome::Cancelled) {
        if let Err(e) = backend.kill(id).await {
            tracing::warn!(container = %id, error = %e, "could not kill stage container");
        }
    }
    if !forwarded && tokio::time::timeout(DRAIN_GRACE, &mut forward).await.is_err() {
        tracing::warn!(stage = %stage.name, "output did not end after the container stopped");
    }
    ended
}

async fn wait_after_output<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    id: &str,
    started: Instant,
) -> AttemptOutcome {
    let remaining = stage.timeout.saturating_sub(started.elapsed());
    tokio::select! {
        code = ctx.backend.wait(id) => match code {
            Ok(0) => AttemptOutcome::Succeeded,
            Ok(code) => AttemptOutcome::Failed { exit_code: code },
            Err(e) => AttemptOutcome::Error { message: e.to_string() },
        },
        _ = tokio::time::sleep(remaining) => AttemptOutcome::TimedOut { after_secs: started.elapsed().as_secs() },
        _ = ctx.cancel.cancelled() => AttemptOutcome::Cancelled,
    }
}

/// Output of one container, masked per stream, emitted line by line as it arrives.
async fn forward_output<B: Backend>(
    ctx: &RunContext<B>,
    stage: &str,
    attempt: u32,
    mut output: futures_util::stream::BoxStream<'static, Result<OutputChunk, crate::docker::DockerError>>,
) {
    let mut stdout = ctx.masker.stream();
    let mut stderr = ctx.masker.stream();
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(OutputChunk::Stdout(bytes)) => {
                for line in stdout.push_bytes(&bytes) {
                    ctx.emit.log(stage, attempt, Stream::Stdout, line);
                }
            }
            Ok(OutputChunk::Stderr(bytes)) => {
                for line in stderr.push_bytes(&bytes) {
                    ctx.emit.log(stage, attempt, Stream::Stderr, line);
                }
            }
            Err(e) => {
                tracing::warn!(stage, error = %e, "output stream broke off");
                break;
            }
        }
    }
    if let Some(line) = stdout.finish() {
        ctx.emit.log(stage, attempt, Stream::Stdout, line);
    }
    if let Some(line) = stderr.finish() {
        ctx.emit.log(stage, attempt, Stream::Stderr, line);
    }
}
