//! The `smoke` stage kind: user journeys against an environment's app, run by Gantry's
//! smoke agent; the report is stored, and a failing step fails the stage naming journey
//! and step.

use tokio::time::Instant;

use super::agent::{self, OUT_DIR, SPEC_PATH};
use super::{container, RunContext};
use crate::events::{AttemptOutcome, EventKind, StageResult};
use crate::pipeline::spec::SmokeSpec;
use crate::pipeline::StagePlan;
use crate::smoke::{self, Expect, Journey, Request, SmokeReport, Step};

const REPORT: &str = "report.json";

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &SmokeSpec, attempt: u32, deadline: Instant) -> AttemptOutcome {
    // First, so that a replaced agent is said before anything else is looked at.
    let image = match ctx.agent_image(&stage.name, attempt, crate::agents::Agent::Smoke).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let base_url = match agent::target_url(ctx, &spec.target, &spec.app, spec.version).await {
        Ok(url) => url,
        Err(e) => return e.outcome(ctx),
    };
    let agent_spec = agent_spec(spec, base_url);
    let json = serde_json::to_vec_pretty(&agent_spec).expect("spec serialises");
    let args = vec!["run".into(), "--spec".into(), SPEC_PATH.into(), "--out".into(), format!("{OUT_DIR}/{REPORT}")];
    let created = match agent::create(ctx, stage, attempt, &image, &spec.target, args, &json).await {
        Ok(c) => c,
        Err(e) => return e.outcome(ctx),
    };
    let started = Instant::now();
    let ended = container::run(ctx, &stage.name, attempt, &created.id, deadline).await;
    let report = agent::result(ctx, &created.id, REPORT).await.and_then(|b| serde_json::from_slice::<SmokeReport>(&b).ok());
    container::remove(ctx, created).await;
    let ended = match ended {
        Ok(e) => e,
        Err(e) => return ctx.error(e),
    };
    let Some(report) = report else {
        return match ended.outcome(started) {
            AttemptOutcome::Succeeded => AttemptOutcome::Error { message: "the smoke agent wrote no report".into() },
            AttemptOutcome::Failed { exit_code } => {
                AttemptOutcome::Error { message: format!("the smoke agent failed (exit code {exit_code}) without a report") }
            }
            other => other,
        };
    };
    let verdict = match report.failure_message() {
        None => AttemptOutcome::Succeeded,
        Some(message) => AttemptOutcome::Error { message: ctx.masker.mask(&message) },
    };
    let (passed, failed, skipped) = report.counts();
    ctx.note(&stage.name, attempt, format!("smoke: {passed} steps passed, {failed} failed, {skipped} skipped"));
    ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Smoke(report) });
    verdict
}

/// The pipeline's journeys in the agent's wire format.
fn agent_spec(spec: &SmokeSpec, base_url: String) -> smoke::SmokeSpec {
    smoke::SmokeSpec {
        base_url,
        timeout_ms: spec.request_timeout.map(|t| t.0.as_millis() as u64).unwrap_or(10_000),
        journeys: spec
            .journeys
            .iter()
            .map(|j| Journey {
                name: j.name.clone(),
                steps: j
                    .steps
                    .iter()
                    .map(|s| Step {
                        name: s.name.clone(),
                        request: Request {
                            method: s.method.clone(),
                            path: s.path.clone(),
                            headers: s.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            body: s.body.clone(),
                            json: s.json.clone(),
                        },
                        expect: Expect {
                            status: s.expect.status,
                            body_contains: s.expect.body_contains.0.clone(),
                            json: s.expect.json.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                            max_latency_ms: s.expect.max_latency.map(|d| d.0.as_millis() as u64),
                            headers: s.expect.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                        },
                        capture: s.capture.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    })
                    .collect(),
            })
            .collect(),
    }
}
