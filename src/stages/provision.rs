//! The `provision` stage kind: makes an environment exist (its network and service
//! containers, health-checked). Idempotent: a service already running with the same spec
//! is left alone, a changed one is replaced, one no longer listed is removed.

use tokio::time::Instant;

use super::health::{self, Health};
use super::RunContext;
use crate::engine::{EngineError, ServiceDef};
use crate::events::{AttemptOutcome, Change, EventKind, ServiceChange, StageResult};
use crate::pipeline::spec::{ProvisionSpec, ServiceSpec};
use crate::pipeline::{interpolate, StagePlan};

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &ProvisionSpec, attempt: u32, deadline: Instant) -> AttemptOutcome {
    if let Err(refused) = ctx.may_change(&stage.name, attempt, &spec.environment, crate::policy::Change::Provision).await {
        return refused;
    }
    match reconcile(ctx, stage, spec, attempt, deadline).await {
        Ok(Ok(changes)) => {
            ctx.emit.event(EventKind::StageResult {
                stage: stage.name.clone(),
                result: StageResult::Environment {
                    environment: spec.environment.clone(),
                    network: ctx.envs.network(&spec.environment),
                    services: changes,
                },
            });
            AttemptOutcome::Succeeded
        }
        Ok(Err(outcome)) => outcome,
        Err(e) => ctx.error(e),
    }
}

async fn reconcile(
    ctx: &RunContext,
    stage: &StagePlan,
    spec: &ProvisionSpec,
    attempt: u32,
    deadline: Instant,
) -> Result<Result<Vec<ServiceChange>, AttemptOutcome>, EngineError> {
    let env = spec.environment.as_str();
    let network = ctx.envs.ensure(env, &ctx.run_id).await?;
    let existing = ctx.envs.services(env).await?;
    let mut changes = Vec::new();

    for (name, service) in &spec.services {
        let wanted = interpolated(ctx, service);
        // The limits are part of what the service is: other limits, a new container.
        let limits = ctx.limits(stage);
        let print = crate::labels::fingerprint(&(&wanted, format!("{limits:?}")));
        let current: Vec<_> = existing.iter().filter(|c| c.service.as_ref() == Some(name)).collect();
        let same = current.len() == 1 && current[0].running && current[0].fingerprint.as_ref() == Some(&print);
        let change = if same {
            Change::Unchanged
        } else {
            for old in &current {
                ctx.envs.remove_service(env, &old.handle).await?;
            }
            ctx.envs.start_service(env, &ctx.run_id, &service_def(name, &wanted, &print, limits)).await?;
            if current.is_empty() {
                Change::Created
            } else {
                Change::Replaced
            }
        };
        ctx.note(&stage.name, attempt, format!("{env}/{name}: {}", describe(change)));
        if let Some(check) = &wanted.health {
            let host = container_name(env, name);
            let target = health::Target {
                container: &host,
                host: &host,
                network: &network,
                default_port: wanted.ports.first().map(|p| p.container),
            };
            match health::check(ctx, &stage.name, attempt, &target, check, deadline).await {
                Health::Healthy => ctx.note(&stage.name, attempt, format!("{env}/{name}: healthy")),
                Health::Cancelled => return Ok(Err(AttemptOutcome::Cancelled)),
                Health::Unhealthy(why) => {
                    return Ok(Err(AttemptOutcome::Error { message: format!("service {name} of {env} is not healthy: {why}") }));
                }
            }
        }
        changes.push(ServiceChange { service: name.clone(), change });
    }

    for stale in existing.iter().filter(|c| c.service.as_ref().is_none_or(|s| !spec.services.contains_key(s))) {
        ctx.envs.remove_service(env, &stale.handle).await?;
        let name = stale.service.clone().unwrap_or_else(|| stale.name.clone());
        ctx.note(&stage.name, attempt, format!("{env}/{name}: removed (no longer provisioned)"));
        changes.push(ServiceChange { service: name, change: Change::Removed });
    }
    Ok(Ok(changes))
}

fn describe(change: Change) -> &'static str {
    match change {
        Change::Unchanged => "unchanged (same spec, left running)",
        Change::Created => "created",
        Change::Replaced => "replaced (spec changed)",
        Change::Removed => "removed",
    }
}

/// The spec with variables filled in: what actually runs, and what the fingerprint covers.
fn interpolated(ctx: &RunContext, s: &ServiceSpec) -> ServiceSpec {
    let mut s = s.clone();
    s.image = interpolate(&s.image, &ctx.vars);
    for v in s.env.values_mut() {
        *v = interpolate(v, &ctx.vars);
    }
    s
}

pub fn container_name(env: &str, service: &str) -> String {
    crate::labels::service_container(env, service)
}

/// The service as the environment seam takes it.
fn service_def(name: &str, s: &ServiceSpec, print: &str, limits: crate::engine::ResourceLimits) -> ServiceDef {
    ServiceDef {
        name: name.to_string(),
        image: s.image.clone(),
        cmd: s.command.clone().map(|c| c.0).unwrap_or_default(),
        env: s.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        published: s.ports.iter().filter_map(|p| p.host.map(|h| (h, p.container))).collect(),
        limits,
        fingerprint: print.to_string(),
    }
}
