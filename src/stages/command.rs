//! The `run` stage kind: the stage's commands run under `sh -e` in a container of its
//! image, on the run's network, with the run's workspace volume at /workspace.

use std::collections::HashMap;

use tokio::time::Instant;

use super::{container, RunContext};
use crate::engine::{Confinement, StepSpec, HOLD_GATE};
use crate::events::AttemptOutcome;
use crate::labels::{RUN_LABEL, STAGE_LABEL};
use crate::pipeline::{interpolate, StagePlan};

pub const WORKSPACE: &str = "/workspace";

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

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, attempt: u32, deadline: Instant) -> AttemptOutcome {
    // The first attempt may find its step created and started ahead, waiting at its gate.
    let ready = if attempt == 1 { ctx.ahead.take(&stage.name).await } else { None };
    let (id, held) = match ready {
        Some(Ok(ready)) => (ready.id, Some((ready.output, ready.release))),
        Some(Err(e)) => return ctx.error(e),
        None => match container::create(ctx, &step_spec(ctx, stage, attempt, false), &[]).await {
            Ok(created) => (created.id, None),
            Err(e) => return ctx.error(e),
        },
    };
    let started = Instant::now();
    let outcome = async {
        // The workspace is filled once, into whichever stage container comes first.
        let filled = ctx.workspace_filled.get_or_try_init(|| ctx.steps.upload(&id, WORKSPACE, ctx.workspace.clone())).await;
        if let Err(e) = filled {
            return AttemptOutcome::Error { message: format!("could not fill the workspace: {e}") };
        }
        let ended = match held {
            Some((output, release)) => {
                release.go();
                container::follow(ctx, &stage.name, attempt, &id, output, deadline).await
            }
            None => container::run(ctx, &stage.name, attempt, &id, deadline).await,
        };
        match ended {
            Ok(ended) => ended.outcome(started),
            Err(e) => ctx.error(e),
        }
    }
    .await;
    // Off the critical path: the next stage need not wait for this one's removal.
    ctx.ahead.remove_later(ctx.steps.clone(), id);
    outcome
}

/// The step of one attempt of a command stage: what `attempt` creates, or (`held`) what
/// the scheduler creates and starts ahead of its turn, its script behind the gate.
pub fn step_spec(ctx: &RunContext, stage: &StagePlan, attempt: u32, held: bool) -> StepSpec {
    let image = interpolate(&stage.image, &ctx.vars);
    let mut env = ctx.base_env(&stage.name, attempt);
    env.extend(stage.env.iter().map(|(k, v)| format!("{k}={}", interpolate(v, &ctx.vars))));
    env.extend(stage.secrets.iter().filter_map(|name| ctx.secrets.get(name).map(|value| format!("{name}={value}"))));
    let commands: Vec<String> = stage.commands.iter().map(|c| crate::pipeline::interpolate_for_shell(c, &ctx.vars)).collect();
    StepSpec {
        name: crate::labels::stage_container(&ctx.run_id, &stage.name, attempt),
        image,
        entrypoint: vec!["/bin/sh".into(), "-e".into(), "-c".into()],
        cmd: vec![if held { format!("{HOLD_GATE}{}", script(&commands)) } else { script(&commands) }],
        env,
        working_dir: WORKSPACE.into(),
        labels: HashMap::from([(RUN_LABEL.to_string(), ctx.run_id.clone()), (STAGE_LABEL.to_string(), stage.name.clone())]),
        network: Some(ctx.network.clone()),
        aliases: vec![stage.name.clone()],
        volumes: vec![(ctx.workspace_volume.clone(), WORKSPACE.to_string())],
        published: Vec::new(),
        limits: Some(ctx.limits(stage)),
        confinement: Confinement::Workload,
        scratch: None,
        held,
    }
}
