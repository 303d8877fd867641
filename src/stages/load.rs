//! The `load` stage kind: Gantry's load agent drives open-model load at an environment's
//! app; the coordinator, not the agent, judges the summary against the thresholds, so a
//! verdict is recorded even from the last snapshot of an agent that died. With
//! `abort_on_fail`, snapshots are judged while the load runs and a failing one stops it.

use std::time::Duration;

use tokio::time::Instant;

use super::agent::{self, OUT_DIR, SPEC_PATH};
use super::{container, RunContext};
use crate::events::{AttemptOutcome, EventKind, StageResult};
use crate::gate::apm::{run as apm_run, Provider};
use crate::gate::threshold::{self, Threshold, ThresholdResult};
use crate::gate::verdict::Check;
use crate::load::{self, LoadSummary, Mode, RequestSpec, Stage};
use crate::pipeline::spec::LoadSpec;
use crate::pipeline::StagePlan;

const SUMMARY: &str = "summary.json";
/// Snapshots before this are too thin to abort on.
const ABORT_AFTER: Duration = Duration::from_secs(5);
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &LoadSpec, attempt: u32, deadline: Instant) -> AttemptOutcome {
    // First, so that a replaced agent is said before anything else is looked at.
    let image = match ctx.agent_image(&stage.name, attempt, crate::agents::Agent::Load).await {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let base_url = match agent::target_url(ctx, &spec.target, &spec.app, spec.version).await {
        Ok(url) => url,
        Err(e) => return e.outcome(ctx),
    };
    let thresholds = match threshold::parse_set(spec.thresholds.iter()) {
        Ok(t) => t,
        Err(e) => return AttemptOutcome::Error { message: e.to_string() },
    };
    let json = serde_json::to_vec_pretty(&agent_spec(spec, base_url)).expect("spec serialises");
    let args = vec!["--spec".into(), SPEC_PATH.into(), "--out".into(), format!("{OUT_DIR}/{SUMMARY}")];
    let created = match agent::create(ctx, stage, attempt, &image, &spec.target, args, &json).await {
        Ok(c) => c,
        Err(e) => return e.outcome(ctx),
    };
    // The APM window is the load itself: scraped when it starts and when it ends.
    let apm = spec.apm.as_ref().map(|a| &a.0);
    let apm_checks = match apm.map(|c| c.validate()) {
        Some(Err(e)) => return AttemptOutcome::Error { message: e.to_string() },
        Some(Ok(checks)) => checks,
        None => Vec::new(),
    };
    let scrape_start = match apm {
        Some(c) if c.provider == Provider::PrometheusScrape => Some(apm_run::begin_scrape(c).await),
        _ => None,
    };
    let started = Instant::now();
    let id = created.id.clone();
    let (ended, aborted) = {
        let run = container::run(ctx, &stage.name, attempt, &id, deadline);
        let watch = watch(ctx, &id, &thresholds, spec.abort_on_fail);
        tokio::pin!(run);
        tokio::select! {
            ended = &mut run => (ended, None),
            failing = watch => {
                // A threshold failed on the figures so far: stop the load, keep the figures.
                let _ = ctx.steps.stop_step(&id).await;
                (run.await, Some(failing))
            }
        }
    };
    let summary = read_summary(ctx, &created.id).await;
    container::remove(ctx, created).await;

    let Some(summary) = summary else {
        return match ended {
            Ok(e) => match e.outcome(started) {
                AttemptOutcome::Cancelled => AttemptOutcome::Cancelled,
                AttemptOutcome::TimedOut { after_secs } => AttemptOutcome::TimedOut { after_secs },
                _ => AttemptOutcome::Error { message: "the load agent produced no summary".into() },
            },
            Err(e) => ctx.error(e),
        };
    };
    let apm_report = match (apm, scrape_start) {
        (Some(c), Some(start)) => Some(apm_run::finish_scrape(c, &apm_checks, start).await),
        (Some(c), None) => apm_run::run(c).await.ok(),
        _ => None,
    };
    let apm_results = apm_report.as_ref().map(crate::gate::verdict::from_apm).unwrap_or_default();
    for c in &apm_results {
        let verdict = if c.passed { "pass" } else { "FAIL" };
        ctx.note(
            &stage.name,
            attempt,
            format!("{verdict} {}: {} (measured {})", c.name, c.threshold, c.measured.as_deref().unwrap_or("no data")),
        );
    }
    let results = threshold::evaluate(&summary, &thresholds);
    // The agent printed its own table; the verdicts are the coordinator's.
    for r in &results {
        ctx.note(&stage.name, attempt, r.to_string());
    }
    let failed: Vec<&ThresholdResult> = results.iter().filter(|r| !r.passed).collect();
    ctx.emit.event(EventKind::StageResult {
        stage: stage.name.clone(),
        result: StageResult::Load {
            summary: summary.clone(),
            thresholds: results.clone(),
            aborted: aborted.is_some(),
            apm: apm_results.clone(),
        },
    });
    let cancelled = matches!(ended, Ok(container::Ended::Cancelled));
    decide(cancelled, &summary, &failed, &apm_results, aborted.is_some())
}

/// What the figures say of the attempt: cancelled, incomplete, or its failed thresholds
/// and APM checks, each with what was measured.
fn decide(cancelled: bool, summary: &LoadSummary, failed: &[&ThresholdResult], apm_results: &[Check], aborted: bool) -> AttemptOutcome {
    if cancelled {
        return AttemptOutcome::Cancelled;
    }
    if failed.is_empty() && !summary.complete {
        return AttemptOutcome::Error {
            message: format!("the load agent stopped after {:.1}s, before the run was complete", summary.elapsed_ms as f64 / 1000.0),
        };
    }
    let apm_failed: Vec<String> = apm_results
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{} {} (measured {})", c.name, c.threshold, c.measured.as_deref().unwrap_or("no data")))
        .collect();
    if failed.is_empty() && apm_failed.is_empty() {
        return AttemptOutcome::Succeeded;
    }
    if failed.is_empty() {
        return AttemptOutcome::Error { message: format!("APM checks failed: {}", apm_failed.join("; ")) };
    }
    let reasons: Vec<String> = failed
        .iter()
        .map(|r| {
            let measured = r.measured.map_or_else(|| "no data".to_string(), |v| r.unit.format(v));
            format!("{} {} (measured {measured})", metric_name(r), r.expression)
        })
        .collect();
    let how = if aborted { " (aborted early: abort_on_fail)" } else { "" };
    AttemptOutcome::Error { message: format!("load thresholds failed{how}: {}", reasons.join("; ")) }
}

fn metric_name(r: &ThresholdResult) -> String {
    serde_json::to_value(r.metric).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// With `abort_on_fail`, resolves when a snapshot fails a threshold; otherwise never.
async fn watch(ctx: &RunContext, id: &str, thresholds: &[Threshold], abort_on_fail: bool) {
    if !abort_on_fail {
        return std::future::pending().await;
    }
    tokio::time::sleep(ABORT_AFTER).await;
    loop {
        if let Some(s) = read_summary(ctx, id).await {
            if s.elapsed_ms >= ABORT_AFTER.as_millis() as u64 && threshold::evaluate(&s, thresholds).iter().any(|r| !r.passed) {
                return;
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

async fn read_summary(ctx: &RunContext, id: &str) -> Option<LoadSummary> {
    serde_json::from_slice(&agent::result(ctx, id, SUMMARY).await?).ok()
}

/// The pipeline's load settings in the agent's wire format.
fn agent_spec(spec: &LoadSpec, base_url: String) -> load::LoadSpec {
    let requests = match &spec.path {
        Some(path) => vec![RequestSpec { method: "GET".into(), path: path.clone(), headers: Default::default(), body: None, weight: 1 }],
        None => spec
            .requests
            .iter()
            .map(|r| RequestSpec {
                method: r.method.clone(),
                path: r.path.clone(),
                headers: r.headers.clone(),
                body: r.body.clone().map(serde_json::Value::String),
                weight: r.weight,
            })
            .collect(),
    };
    load::LoadSpec {
        base_url,
        requests,
        mode: Mode::ConstantArrivalRate,
        rate: spec.rate.map(|r| r.0),
        duration_ms: spec.duration.map(|d| d.0.as_millis() as u64),
        stages: spec.stages.iter().map(|s| Stage { duration_ms: s.duration.0.as_millis() as u64, target: s.target.0 }).collect(),
        connections: spec.connections,
        timeout_ms: spec.request_timeout.map(|t| t.0.as_millis() as u64).unwrap_or(10_000),
    }
}
