//! The `promote` stage kind: the gate judges this run's stages (that they succeeded, and
//! their load thresholds) and records its verdict, every check with its figure; only a
//! passing verdict moves the exact image that passed (by image id, never rebuilt) from one
//! environment to another, through the deploy mechanism.

use tokio::time::Instant;

use super::RunContext;
use crate::engine::{EngineError, Serving, VersionInfo};
use crate::events::{AttemptOutcome, DeploymentOutcome, EventKind, StageResult, StageState};
use crate::approval::{ApprovalRequest, ChangeAuthor, ChangeSet};
use crate::gate::judge::{judge_from_histograms, Finding, JudgeConfig};
use crate::gate::verdict::{Check, Source, Verdict};
use crate::pipeline::spec::{DeployMode, DeploySpec, LatencyComparison, PromoteSpec, VerifySpec};
use crate::pipeline::StagePlan;

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &PromoteSpec, attempt: u32, deadline: Instant) -> AttemptOutcome {
    // The operator's rules first: a promotion they forbid is not judged, requested or made.
    if let Err(refused) = ctx.allowed(&stage.name, attempt, &spec.to, crate::policy::Change::Promote) {
        return refused;
    }
    let verdict = judge(ctx, spec);
    for line in verdict.table().lines() {
        ctx.note(&stage.name, attempt, line);
    }
    ctx.emit.event(EventKind::GateJudged { stage: stage.name.clone(), verdict: verdict.clone() });
    if let Some(blocked) = verdict.blocked_by() {
        return AttemptOutcome::Error { message: format!("the gate blocked the promotion to {}: {blocked}", spec.to) };
    }
    let (image_id, image) = match passed_version(ctx, spec).await {
        Ok(Some(v)) => {
            let tag = if v.image.is_empty() { short(&v.image_id).to_string() } else { v.image };
            (v.image_id, tag)
        }
        Ok(None) => {
            return AttemptOutcome::Error {
                message: format!("no version of {} deployed by this run is running in {} to promote", spec.app, spec.from),
            }
        }
        Err(e) => return ctx.error(e),
    };
    let deploy = DeploySpec {
        environment: spec.to.clone(),
        mode: DeployMode::Replace,
        image: Some(image_id.clone()),
        app: spec.app.clone(),
        port: Some(spec.port),
        publish: spec.publish,
        env: spec.env.clone(),
        command: spec.command.clone(),
        health: spec.health.clone(),
        replicas: spec.replicas,
        update: spec.update.clone(),
        placement: spec.placement.clone(),
    };
    if let Some(rule) = ctx.approvals.get(&spec.to) {
        let now = chrono::Utc::now();
        let request = ApprovalRequest {
            stage: stage.name.clone(),
            from: spec.from.clone(),
            environment: spec.to.clone(),
            rule: rule.clone(),
            app: spec.app.clone(),
            image,
            image_id,
            deploy,
            verify: spec.verify.clone(),
            vars: ctx.vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            timeout_secs: stage.timeout.as_secs(),
            requested_at: now,
            expires_at: rule.expires.as_ref().and_then(|d| chrono::Duration::from_std(d.0).ok()).map(|d| now + d),
            change: change_set(ctx, spec).await,
            branches: ctx.policy.branches.clone(),
        };
        ctx.note(
            &stage.name,
            attempt,
            format!(
                "the gate passed; the promotion of {} to {} waits for {} approval(s) by a {}: gantry approve {} (with your token)",
                spec.app, spec.to, rule.count, rule.role, ctx.run_id
            ),
        );
        ctx.emit.event(EventKind::ApprovalRequested { request });
        return AttemptOutcome::AwaitingApproval { environment: spec.to.clone() };
    }
    if let Err(waited) = super::lock::hold(ctx, &stage.name, attempt, &spec.to).await {
        return waited;
    }
    perform(ctx, stage, &deploy, spec.verify.as_ref(), attempt, deadline).await
}

/// Moves the image that passed into the target environment through the deploy mechanism,
/// then watches it for the verification window and rolls back on a breach. Called by the
/// run itself, or by whoever completed the approval of a gated promotion.
pub async fn perform(
    ctx: &RunContext,
    stage: &StagePlan,
    deploy: &DeploySpec,
    verify: Option<&VerifySpec>,
    attempt: u32,
    deadline: Instant,
) -> AttemptOutcome {
    let image_id = deploy.image.clone().unwrap_or_default();
    ctx.note(&stage.name, attempt, format!("promoting {} {} to {}", deploy.app, short(&image_id), deploy.environment));
    let (outcome, record) = super::deploy::run(ctx, stage, deploy, attempt, deadline).await;
    let Some(mut record) = record else {
        return outcome;
    };
    let (Some(verify), AttemptOutcome::Succeeded) = (verify, &outcome) else {
        ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Deployment(record) });
        return outcome;
    };

    // The verification window: the new version serves real traffic in the target
    // environment while its APM checks are measured; a breach rolls it back.
    ctx.note(&stage.name, attempt, format!("verifying {} for {}", deploy.environment, humantime::format_duration(verify.apm.0.window)));
    let checks = match crate::gate::apm::run(&verify.apm.0).await {
        Ok(report) => crate::gate::verdict::from_apm(&report),
        Err(e) => return AttemptOutcome::Error { message: e.to_string() },
    };
    let verification = Verdict::new(checks);
    for line in verification.table().lines() {
        ctx.note(&stage.name, attempt, line);
    }
    ctx.emit.event(EventKind::Verified { stage: stage.name.clone(), verdict: verification.clone() });
    let Some(breach) = verification.blocked_by() else {
        ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Deployment(record) });
        return AttemptOutcome::Succeeded;
    };
    ctx.note(&stage.name, attempt, format!("verification failed in {}: {breach}; rolling back", deploy.environment));
    let rolled = super::deploy::rollback(ctx, stage, deploy, attempt, deadline).await;
    let (restored_at, restored_to, how) = match &rolled {
        Ok(image) => {
            let at = chrono::Utc::now();
            let took = (at - record.finished_at).num_milliseconds() as f64 / 1000.0;
            (Some(at), Some(image.clone()), format!("rolled back to {image}, restored {took:.1}s after going live"))
        }
        Err(why) => (None, None, format!("the rollback failed: {why}")),
    };
    record.outcome = DeploymentOutcome::FailedVerification { reason: breach.clone(), restored_at, restored_to };
    ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Deployment(record) });
    AttemptOutcome::Error { message: format!("{} failed its verification in {} ({breach}); {how}", deploy.app, deploy.environment) }
}

/// Every check the gate makes, from what this run knows of its stages.
fn judge(ctx: &RunContext, spec: &PromoteSpec) -> Verdict {
    let mut checks = Vec::new();
    for name in &spec.gate.stages {
        let memory = ctx.emit.stage(name);
        let state = memory.as_ref().and_then(|m| m.state);
        checks.push(Check {
            name: format!("stage {name}"),
            source: Source::Stage,
            measured: state.map(|s| format!("{s:?}").to_lowercase()),
            threshold: "succeeded".into(),
            passed: state == Some(StageState::Succeeded),
            note: match (&memory, state) {
                (None, _) => Some("no such stage has run in this run".into()),
                (Some(m), Some(s)) if s != StageState::Succeeded => m.message.clone(),
                _ => None,
            },
        });
        if !spec.gate.thresholds {
            continue;
        }
        for result in memory.iter().flat_map(|m| &m.results) {
            if let StageResult::Load { thresholds, apm, .. } = result {
                checks.extend(apm.iter().cloned());
                for t in thresholds {
                    checks.push(Check {
                        name: format!("{name}: {}", t.metric),
                        source: Source::LoadThreshold,
                        measured: t.measured.map(|v| t.unit.format(v)),
                        threshold: t.expression.clone(),
                        passed: t.passed,
                        note: t.note.clone(),
                    });
                }
            }
        }
    }
    if let Some(cmp) = &spec.gate.latency {
        checks.push(latency_check(ctx, cmp));
    }
    Verdict::new(checks)
}

/// The latency of two load stages compared by `gate::judge` from their HDR histograms:
/// noise alone does not block, a real regression does not slip through.
fn latency_check(ctx: &RunContext, cmp: &LatencyComparison) -> Check {
    let histogram = |stage: &str| {
        let memory = ctx.emit.stage(stage)?;
        memory.results.iter().find_map(|r| match r {
            StageResult::Load { summary, .. } => summary.decode_histogram().ok(),
            _ => None,
        })
    };
    let defaults = JudgeConfig::default();
    let cfg = JudgeConfig {
        confidence: cmp.confidence.unwrap_or(defaults.confidence),
        tolerance: cmp.tolerance.unwrap_or(defaults.tolerance),
        ..defaults
    };
    let threshold =
        format!("not slower than {} (p95 +{:.0}% at {:.0}% confidence)", cmp.baseline, cfg.tolerance * 100.0, cfg.confidence * 100.0);
    let name = format!("latency: {} vs {}", cmp.candidate, cmp.baseline);
    match (histogram(&cmp.candidate), histogram(&cmp.baseline)) {
        (Some(candidate), Some(baseline)) => {
            let j = judge_from_histograms(&baseline, &candidate, &cfg);
            Check {
                name,
                source: Source::Baseline,
                measured: Some(format!("p95 x{:.2}", j.effect)),
                threshold,
                passed: j.verdict == Finding::Pass,
                note: Some(j.explanation),
            }
        }
        (c, _) => Check {
            name,
            source: Source::Baseline,
            measured: None,
            threshold,
            passed: false,
            note: Some(format!("no latency figures from the load stage {}", if c.is_none() { &cmp.candidate } else { &cmp.baseline })),
        },
    }
}

/// The commits this promotion brings into `spec.to`: the candidate's, less those of the
/// version live there now, read from the run's repository. Without a repository only the
/// head commit is known, and the set says so.
async fn change_set(ctx: &RunContext, spec: &PromoteSpec) -> ChangeSet {
    let since = match ctx.envs.versions(&spec.to, &spec.app).await {
        Ok(versions) => versions.into_iter().find(|v| v.serving == Serving::Live).map(|v| v.commit).filter(|c| !c.is_empty()),
        Err(_) => None,
    };
    let head = ChangeAuthor {
        email: ctx.commit.author_email.trim().to_ascii_lowercase(),
        name: ctx.commit.author_name.clone(),
        commit: ctx.commit.sha.clone(),
    };
    let only_head = |note: String| ChangeSet { since: since.clone(), commits: 1, authors: vec![head.clone()], note: Some(note) };
    let Some(repo) = ctx.repo.clone() else {
        return only_head("the run's repository is not at hand; only the head commit's author is known".into());
    };
    let (candidate, from) = (ctx.commit.sha.clone(), since.clone());
    let walked = tokio::task::spawn_blocking(move || crate::git::change_authors(&repo, &candidate, from.as_deref())).await;
    match walked {
        Ok(Ok(found)) => ChangeSet {
            since: since.clone().filter(|_| found.since_found),
            commits: found.commits,
            authors: found.authors.into_iter().map(|(email, name, commit)| ChangeAuthor { email, name, commit }).collect(),
            note: None,
        },
        Ok(Err(e)) => only_head(format!("the change's commits could not be read ({e}); only the head commit's author is known")),
        Err(e) => only_head(format!("reading the change's commits crashed ({e}); only the head commit's author is known")),
    }
}

/// The version of the app this run deployed to `from`, still running there.
async fn passed_version(ctx: &RunContext, spec: &PromoteSpec) -> Result<Option<VersionInfo>, EngineError> {
    let versions = ctx.envs.versions(&spec.from, &spec.app).await?;
    Ok(versions.into_iter().filter(|v| v.serving != Serving::Kept).find(|v| v.run_id.as_deref() == Some(ctx.run_id.as_str())))
}

fn short(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
