//! Decisions on gated promotions and the promotions they start, shared by the command
//! line and the service: the rule check, the decision and the claim are one store
//! transaction; the claimed promotion is then performed and recorded here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::{Protection, User};
use crate::engine::{Engine, Environments, Serving};
use crate::events::Event;
use crate::approval::{self, Approval, DecisionKind, Refusal};
use crate::recorder::Viewer;
use crate::stages::Emitter;
use crate::store::{RunRecord, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Records `user`'s decision on `run_id`, if the rules allow it: the operator's rules for
/// the target environment as they stand now (`protections`) and the approval rules. The
/// returned record says whether this decision claimed the promotion (`state ==
/// Promoting`): the caller must then `promote` it.
pub fn record_decision(
    store: &Store,
    protections: &BTreeMap<String, Protection>,
    run_id: &str,
    user: &User,
    kind: DecisionKind,
    comment: Option<String>,
    now: DateTime<Utc>,
) -> Result<RunRecord, DecideError> {
    let decided = store.append_checked(run_id, |r| {
        let protection = r.approval.as_ref().and_then(|a| protections.get(&a.request.environment));
        if let (Some(p), Some(a), DecisionKind::Approve) = (protection, &r.approval, kind) {
            let project = r.project.as_deref().unwrap_or(&r.pipeline);
            let actor = crate::policy::Actor { project, stage: &a.request.stage, commit: &r.commit.sha, branches: &a.request.branches };
            crate::policy::check(p, crate::policy::Change::Promote, &actor).map_err(|e| Refusal::Protected(e.to_string()))?;
        }
        let floor = protection.and_then(|p| p.approval.as_ref()).map(|a| &a.value);
        approval::decide(r, user, kind, comment.clone(), now, floor)
            .map(|d| d.events.into_iter().map(|k| Event { at: now, kind: k }).collect())
    })?;
    let record = decided?;
    store.flush()?;
    Ok(record)
}

/// Performs a claimed promotion, recording it as it goes; returns the run's final state.
pub async fn promote(store: &Store, engine: Engine, record: RunRecord, viewer: &mut impl Viewer) -> Result<RunRecord, StoreError> {
    let (tx, rx) = crate::channel::channel(crate::channel::OutputLimits::default());
    let run_id = record.id.clone();
    let envs = engine.environments.clone();
    let task = tokio::spawn(async move { crate::scheduler::promotion::run(&engine, &record, Emitter::new(tx)).await });
    let recorded = crate::recorder::record(store, &run_id, rx, viewer).await;
    if let Err(e) = task.await {
        tracing::error!(run = %run_id, error = %e, "the promotion task crashed");
    }
    if recorded.as_ref().is_ok_and(|r| r.state == crate::events::RunState::Succeeded) {
        supersede_outdated(store, envs.as_ref()).await?;
    }
    recorded
}

/// Refuses an approval that would roll its target back, marking the run superseded: the
/// check `record_decision` cannot make in its transaction (it needs the engine and git).
pub async fn refuse_if_outdated(store: &Store, envs: &dyn Environments, run: &RunRecord) -> Result<(), DecideError> {
    let pending = run.approval.as_ref().is_some_and(|a| a.state == approval::ApprovalState::Pending);
    let Some(reason) = outdated(envs, run, store.dir()).await.filter(|_| pending) else {
        return Ok(());
    };
    store.supersede(&run.id, &reason)?;
    Err(Refusal::Outdated { run: run.id.clone(), reason }.into())
}

/// Why promoting `run` now would roll its target back, if it would: the version live
/// there contains the run's commit (git), or, when the repository cannot tell, was
/// committed later. An explicit rollback is `gantry env rollback`, not an approval.
pub async fn outdated(envs: &dyn Environments, run: &RunRecord, data_dir: &std::path::Path) -> Option<String> {
    let request = &run.approval.as_ref()?.request;
    let versions = envs.versions(&request.environment, &request.app).await.ok()?;
    let live = versions.iter().find(|v| v.serving == Serving::Live)?;
    let live_sha = Some(live.commit.clone()).filter(|c| !c.is_empty())?;
    let candidate = &run.commit.sha;
    if &live_sha == candidate {
        return None;
    }
    let short = |s: &str| s[..s.len().min(8)].to_string();
    let says = |why: &str| {
        format!(
            "{} runs {} {} ({why}), newer than this run's {}; approving would roll it back (use `gantry env rollback` for that)",
            request.environment,
            request.app,
            short(&live_sha),
            short(candidate)
        )
    };
    let repo = run.local_repo(data_dir);
    match repo.as_deref().and_then(|r| crate::git::is_ancestor(r, candidate, &live_sha)) {
        Some(true) => return Some(says(&format!("it contains {}", short(candidate)))),
        Some(false) if repo.as_deref().and_then(|r| crate::git::is_ancestor(r, &live_sha, candidate)) == Some(true) => return None,
        _ => {}
    }
    // Unrelated histories, or a repository that cannot tell: by commit time.
    let live_time = versions.iter().find(|v| v.commit == live_sha).and_then(|v| v.commit_time)?;
    (live_time > run.commit.time).then(|| says(&format!("committed {}", live_time.with_timezone(&Utc).format("%Y-%m-%d %H:%M UTC"))))
}

/// Marks superseded every pending approval that what now runs in its target has made
/// outdated; returns the runs marked. Called whenever a promotion may have gone live.
pub async fn supersede_outdated(store: &Store, envs: &dyn Environments) -> Result<Vec<String>, StoreError> {
    let mut marked = Vec::new();
    for run in store.pending_approvals()? {
        if let Some(reason) = outdated(envs, &run, store.dir()).await {
            if store.supersede(&run.id, &reason)? {
                tracing::info!(run = %run.id, %reason, "approval superseded");
                marked.push(run.id);
            }
        }
    }
    Ok(marked)
}

/// A run's approval as listings show it (`gantry approvals --json`, the API).
pub fn summary(r: &RunRecord) -> serde_json::Value {
    let a = r.approval.as_ref();
    serde_json::json!({
        "run": r.id,
        "pipeline": r.pipeline,
        "run_state": r.state,
        "commit": {"sha": r.commit.sha, "short": r.commit.short, "author": r.commit.author_name,
                   "email": r.commit.author_email, "summary": r.commit.summary},
        "triggered_by": r.triggered_by,
        "state": a.map(|a| a.state),
        "stage": a.map(|a| &a.request.stage),
        "from": a.map(|a| &a.request.from),
        "environment": a.map(|a| &a.request.environment),
        "image": a.map(|a| &a.request.image),
        "image_id": a.map(|a| &a.request.image_id),
        "rule": a.map(|a| &a.request.rule),
        "remaining": a.map(Approval::remaining),
        "requested_at": a.map(|a| a.request.requested_at),
        "expires_at": a.and_then(|a| a.request.expires_at),
        "decisions": a.map(|a| &a.decisions),
        "claimed_by": a.and_then(|a| a.claimed_by.as_ref()),
        "change": a.map(|a| &a.request.change),
        "pushed_by": r.pushed_by,
    })
}
