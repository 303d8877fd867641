//! The `provision` stage kind: makes an environment exist (its network and service
//! containers, health-checked). Idempotent: a service already running with the same spec
//! is left alone, a changed one is replaced, one no longer listed is removed.

use tokio::time::Instant;

use super::environment::{self, Role, SERVICE_LABEL, SPEC_LABEL};
use super::health::{self, Health};
use super::RunContext;
use crate::docker::{Backend, ContainerSpec, DockerError};
use crate::events::{AttemptOutcome, Change, EventKind, ServiceChange, StageResult};
use crate::pipeline::spec::{ProvisionSpec, ServiceSpec};
use crate::pipeline::{interpolate, StagePlan};

pub async fn attempt<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &ProvisionSpec,
    attempt: u32,
    deadline: Instant,
) -> AttemptOutcome {
    if let Err(refused) = ctx.may_change(&stage.name, attempt, &spec.environment, crate::policy::Change::Provision).await {
        return refused;
    }
    match reconcile(ctx, stage, spec, attempt, deadline).await {
        Ok(Ok(changes)) => {
            ctx.emit.event(EventKind::StageResult {
                stage: stage.name.clone(),
                result: StageResult::Environment {
                    environment: spec.environment.clone(),
                    network: environment::network(&spec.environment),
                    services: changes,
                },
            });
            AttemptOutcome::Succeeded
        }
        Ok(Err(outcome)) => outcome,
        Err(e) => ctx.error(e),
    }
}

async fn reconcile<B: Backend>(
    ctx: &RunContext<B>,
    stage: &StagePlan,
    spec: &ProvisionSpec,
    attempt: u32,
    deadline: Instant,
) -> Result<Result<Vec<ServiceChange>, AttemptOutcome>, DockerError> {
    let env = spec.environment.as_str();
    let network = environment::ensure_network(ctx.backend.as_ref(), env, &ctx.run_id).await?;
    let existing = environment::containers(ctx.backend.as_ref(), env, Role::Service).await?;
    let mut changes = Vec::new();

    for (name, service) in &spec.services {
        let wanted = interpolated(ctx, service);
        // The limits are part of what the service is: other limits, a new container.
        let limits = ctx.limits(stage);
        let print = environment::fingerprint(&(&wanted, format!("{limits:?}")));
        let current: Vec<_> = existing.iter().filter(|c| c.labels.get(SERVICE_LABEL) == Some(name)).collect();
        let same = current.len() == 1 && current[0].running && current[0].labels.get(SPEC_LABEL) == Some(&print);
        let change = if same {
            Change::Unchanged
        } else {
            for old in &current {
                ctx.backend.remove_container(&old.id).await?;
            }
            let mut container = container_spec(ctx, env, &network, name, &wanted, &print);
            container.limits = Some(limits);
            ctx.backend.ensure_image(&container.image).await?;
            let id = ctx.backend.create_container(&container).await?;
            ctx.backend.start(&id).await?;
            if current.is_empty() { Change::Created } else { Change::Replaced }
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

    for stale in existing.iter().filter(|c| c.labels.get(SERVICE_LABEL).is_none_or(|s| !spec.services.contains_key(s))) {
        ctx.backend.remove_container(&stale.id).await?;
        let name = stale.labels.get(SERVICE_LABEL).cloned().unwrap_or_else(|| stale.name.clone());
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
fn interpolated<B: Backend>(ctx: &RunContext<B>, s: &ServiceSpec) -> ServiceSpec {
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

fn container_spec<B: Backend>(
    ctx: &RunContext<B>,
    env: &str,
    network: &str,
    name: &str,
    s: &ServiceSpec,
    print: &str,
) -> ContainerSpec {
    let mut labels = environment::labels(env, &ctx.run_id, Role::Service);
    labels.insert(SERVICE_LABEL.into(), name.into());
    labels.insert(SPEC_LABEL.into(), print.into());
    ContainerSpec {
        name: container_name(env, name),
        image: s.image.clone(),
        cmd: s.command.clone().map(|c| c.0).unwrap_or_default(),
        env: s.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        labels,
        network: Some(network.to_string()),
        aliases: vec![name.to_string()],
        published: s.ports.iter().filter_map(|p| p.host.map(|h| (h, p.container))).collect(),
        ..Default::default()
    }
}
