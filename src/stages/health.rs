//! Health checks of services and new app versions: a command run inside the container
//! (exec, through the environment seam), or an HTTP probe by Gantry's smoke agent, a step
//! of the run on the environment's network,
//! so the check sees what the environment's other containers see.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{container, RunContext};
use crate::engine::{Confinement, ResourceLimits, StepSpec};
use crate::labels::{RUN_LABEL, STAGE_LABEL};
use crate::pipeline::spec::HealthSpec;

/// A probe container's limits.
const PROBE_LIMITS: ResourceLimits = ResourceLimits { memory: 64 << 20, cpus: 0.5, pids: 64 };

/// How a health check ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    Healthy,
    /// Not healthy in time; the last output of the check says why.
    Unhealthy(String),
    Cancelled,
}

pub struct Target<'a> {
    pub container: &'a str,
    /// Host name of the container on the environment's network.
    pub host: &'a str,
    pub network: &'a str,
    pub default_port: Option<u16>,
}

pub async fn check(ctx: &RunContext, stage: &str, attempt: u32, target: &Target<'_>, health: &HealthSpec, deadline: Instant) -> Health {
    let deadline = deadline.min(Instant::now() + health.deadline.0);
    if let Some(command) = &health.command {
        return by_command(ctx, target.container, &command.0, health, deadline).await;
    }
    let path = health.http.as_deref().unwrap_or("/");
    let Some(port) = health.port.or(target.default_port) else {
        return Health::Unhealthy("an HTTP health check needs a port".into());
    };
    let url = format!("http://{}:{port}{path}", target.host);
    by_http(ctx, stage, attempt, target.network, &url, health, deadline).await
}

async fn by_command(ctx: &RunContext, container: &str, command: &[String], health: &HealthSpec, deadline: Instant) -> Health {
    let mut last = String::from("the check never ran");
    for _ in 0..health.retries.max(1) {
        if ctx.cancel.is_cancelled() {
            return Health::Cancelled;
        }
        match ctx.envs.exec(container, command.to_vec()).await {
            Ok((0, _)) => return Health::Healthy,
            Ok((code, output)) => last = format!("`{}` exited with {code}: {}", command.join(" "), output.trim()),
            Err(e) => last = e.to_string(),
        }
        if Instant::now() + health.interval.0 > deadline {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(health.interval.0) => {}
            _ = ctx.cancel.cancelled() => return Health::Cancelled,
        }
    }
    Health::Unhealthy(ctx.masker.mask(&last))
}

/// One probe container polls until healthy or the deadline: one container lifecycle for
/// the whole wait instead of one per attempt.
async fn by_http(ctx: &RunContext, stage: &str, attempt: u32, network: &str, url: &str, health: &HealthSpec, deadline: Instant) -> Health {
    let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
    // The smoke agent probes; it must be the one agents/build.sh built, like any agent.
    let image = match crate::agents::verify(ctx.steps.as_ref(), &ctx.policy.agents, crate::agents::Agent::Smoke).await {
        Ok(id) => id,
        Err(e) => return Health::Unhealthy(e.to_string()),
    };
    let spec = StepSpec {
        name: crate::labels::probe_container(&ctx.run_id, stage, attempt, &crate::labels::short_id()),
        image,
        cmd: vec![
            "probe".into(),
            url.into(),
            "--timeout".into(),
            format!("{}ms", wait.as_millis()),
            "--interval".into(),
            format!("{}ms", health.interval.0.as_millis()),
        ],
        labels: HashMap::from([(RUN_LABEL.to_string(), ctx.run_id.clone()), (STAGE_LABEL.to_string(), stage.to_string())]),
        network: Some(network.to_string()),
        // Its own modest limits: a probe is one small request at a time, whatever the
        // stage's own limits are for.
        limits: Some(PROBE_LIMITS),
        confinement: Confinement::Agent,
        ..Default::default()
    };
    let created = match container::create(ctx, &spec, &[]).await {
        Ok(c) => c,
        Err(e) => return Health::Unhealthy(e.to_string()),
    };
    // The probe gives up by itself at the deadline; the margin lets it say why.
    let ended = container::run(ctx, stage, attempt, &created.id, deadline + Duration::from_secs(5)).await;
    let said = match ended {
        Ok(container::Ended::Exited(code)) if code != 0 => container::tail(ctx, &created.id, 3).await,
        _ => String::new(),
    };
    container::remove(ctx, created).await;
    match ended {
        Ok(container::Ended::Exited(0)) => Health::Healthy,
        Ok(container::Ended::Cancelled) => Health::Cancelled,
        Ok(container::Ended::Exited(_)) => Health::Unhealthy(format!(
            "{url} did not answer healthy within {}: {}",
            humantime::format_duration(Duration::from_secs(wait.as_secs())),
            said.replace('\n', " / ")
        )),
        Ok(container::Ended::TimedOut) => Health::Unhealthy(format!("the probe of {url} did not finish")),
        Ok(container::Ended::OutOfMemory { .. }) => Health::Unhealthy(format!("the probe of {url} ran out of memory")),
        Err(e) => Health::Unhealthy(e.to_string()),
    }
}
