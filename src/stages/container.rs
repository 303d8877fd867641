//! One step from start to end, as every container-running stage kind needs it:
//! optional uploads before start, output streamed (masked) into the stage's log as it
//! comes, and an end by exit, deadline or cancel, whichever comes first.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::RunContext;
use crate::engine::{EngineError, Output, OutputChunk, StepSpec};
use crate::events::{AttemptOutcome, Stream};

/// How long output may still trickle in after the container stopped.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How a container's run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    Exited(i64),
    /// Exited after the kernel's OOM killer ended one of its processes.
    OutOfMemory {
        exit_code: i64,
        memory: Option<u64>,
    },
    TimedOut,
    Cancelled,
}

impl Ended {
    /// The attempt outcome when the exit code alone decides.
    pub fn outcome(&self, started: Instant) -> AttemptOutcome {
        match self {
            Ended::Exited(0) => AttemptOutcome::Succeeded,
            Ended::Exited(code) => AttemptOutcome::Failed { exit_code: *code },
            Ended::OutOfMemory { exit_code, memory } => AttemptOutcome::OutOfMemory { exit_code: *exit_code, memory: *memory },
            Ended::TimedOut => AttemptOutcome::TimedOut { after_secs: started.elapsed().as_secs() },
            Ended::Cancelled => AttemptOutcome::Cancelled,
        }
    }
}

/// A created step that is removed when the stage is done with it.
pub struct Created {
    pub id: String,
}

/// Creates the step and uploads `(path, tar)` archives into it before it starts.
pub async fn create(ctx: &RunContext, spec: &StepSpec, uploads: &[(&str, Bytes)]) -> Result<Created, EngineError> {
    let id = ctx.steps.create_step(spec).await?;
    for (path, tar) in uploads {
        if let Err(e) = ctx.steps.upload(&id, path, tar.clone()).await {
            let _ = ctx.steps.remove_step(&id).await;
            return Err(e);
        }
    }
    Ok(Created { id })
}

/// Starts the container and follows it to its end. Output lines go to the stage's log.
pub async fn run(ctx: &RunContext, stage: &str, attempt: u32, id: &str, deadline: Instant) -> Result<Ended, EngineError> {
    let output = ctx.steps.start_step(id).await?;
    follow(ctx, stage, attempt, id, output, deadline).await
}

/// Follows a started step to its end (exit, deadline or cancel); its output goes to the
/// stage's log.
pub async fn follow(ctx: &RunContext, stage: &str, attempt: u32, id: &str, output: Output, deadline: Instant) -> Result<Ended, EngineError> {
    let steps = &ctx.steps;
    let forward = forward_output(ctx, stage, attempt, output);
    tokio::pin!(forward);
    let mut forwarded = false;
    let wait = async {
        // Output ending first is normal (it ends as the container stops); then wait on.
        let code = steps.wait_step(id);
        tokio::pin!(code);
        loop {
            tokio::select! {
                code = &mut code => return code,
                _ = &mut forward, if !forwarded => forwarded = true,
            }
        }
    };
    let ended = tokio::select! {
        code = wait => Ended::Exited(code?),
        _ = tokio::time::sleep_until(deadline) => Ended::TimedOut,
        _ = ctx.cancel.cancelled() => Ended::Cancelled,
    };
    if ended != Ended::Exited(0) && !matches!(ended, Ended::Exited(_)) {
        if let Err(e) = steps.stop_step(id).await {
            tracing::warn!(container = %id, error = %e, "could not kill container");
        }
    }
    if !forwarded && tokio::time::timeout(DRAIN_GRACE, &mut forward).await.is_err() {
        tracing::warn!(stage, "output did not end after the container stopped");
    }
    // A 137 alone reads as "killed by someone": the engine knows whether it was the
    // memory limit. A script that survived a killed child and exited 0 still succeeded.
    if let Ended::Exited(code) = ended {
        if code != 0 {
            match steps.exit_state(id).await {
                Ok(state) if state.oom_killed => return Ok(Ended::OutOfMemory { exit_code: code, memory: state.memory_limit }),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "could not inspect how the container ended")
                }
            }
        }
    }
    Ok(ended)
}

/// Removal is on every path; the end-of-run sweep catches whatever this misses.
pub async fn remove(ctx: &RunContext, created: Created) {
    if let Err(e) = ctx.steps.remove_step(&created.id).await {
        tracing::warn!(container = %created.id, error = %e, "could not remove container");
    }
}

/// Output of one container, masked per stream, emitted line by line as it arrives.
pub async fn forward_output(ctx: &RunContext, stage: &str, attempt: u32, mut output: Output) {
    let mut stdout = ctx.masker.stream();
    let mut stderr = ctx.masker.stream();
    while let Some(chunk) = output.next().await {
        match chunk {
            Ok(OutputChunk::Stdout(bytes)) => {
                for line in stdout.push_bytes(&bytes) {
                    ctx.emit.output(stage, attempt, Stream::Stdout, line).await;
                }
            }
            Ok(OutputChunk::Stderr(bytes)) => {
                for line in stderr.push_bytes(&bytes) {
                    ctx.emit.output(stage, attempt, Stream::Stderr, line).await;
                }
            }
            Err(e) => {
                tracing::warn!(stage, error = %e, "output stream broke off");
                break;
            }
        }
    }
    if let Some(line) = stdout.finish() {
        ctx.emit.output(stage, attempt, Stream::Stdout, line).await;
    }
    if let Some(line) = stderr.finish() {
        ctx.emit.output(stage, attempt, Stream::Stderr, line).await;
    }
}

/// A tar archive of in-memory files: (path, contents, mode). Directories are implied.
pub fn tar_of(files: &[(&str, &[u8], u32)], dirs: &[(&str, u32)]) -> Bytes {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mode) in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(*mode);
        header.set_size(0);
        let _ = builder.append_data(&mut header, format!("{path}/"), std::io::empty());
    }
    for (path, content, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_size(content.len() as u64);
        let _ = builder.append_data(&mut header, path, *content);
    }
    Bytes::from(builder.into_inner().unwrap_or_default())
}

/// The contents of the single file in a tar archive as the archive API returns it.
pub fn file_from_tar(tar: &[u8]) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(tar);
    let mut entries = archive.entries().ok()?;
    let mut entry = entries.find_map(|e| e.ok().filter(|e| e.header().entry_type().is_file()))?;
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut entry, &mut out).ok()?;
    Some(out)
}

/// The last `n` lines of a stopped container's output, masked (for failure messages).
pub async fn tail(ctx: &RunContext, id: &str, n: usize) -> String {
    let mut text = Vec::new();
    let mut output = ctx.steps.tail_step(id);
    while let Some(Ok(chunk)) = output.next().await {
        match chunk {
            OutputChunk::Stdout(b) | OutputChunk::Stderr(b) => text.extend_from_slice(&b),
        }
    }
    let text = ctx.masker.mask(&String::from_utf8_lossy(&text));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
