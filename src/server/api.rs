//! The JSON API: projects, runs (filtered, paged), a run's logs (stored, or live as
//! Server-Sent Events), triggers, approvals, environments. Every route needs a bearer
//! token (never the dashboard's cookie: see `auth`); mutating routes need a role:
//! developer to trigger, release-manager to decide.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::{ApiError, AppState};
use crate::config::Role;
use crate::coordinator::{approvals, Source, TriggerRequest};
use crate::events::RunState;
use crate::gate::approval::DecisionKind;
use crate::store::RunRecord;

pub async fn projects(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let projects: Vec<Value> = s
        .coord
        .config
        .projects
        .iter()
        .map(|(name, p)| {
            json!({
                "name": name, "repo": p.repo, "pipeline": p.pipeline, "branches": p.branches,
                "poll_seconds": p.poll.map(|d| d.as_secs()), "webhook": p.webhook.is_some(),
            })
        })
        .collect();
    Ok(Json(json!(projects)))
}

#[derive(Deserialize)]
pub struct RunsQuery {
    pub project: Option<String>,
    pub state: Option<String>,
    pub limit: Option<usize>,
    /// A run id: the page starts after it (older runs).
    pub before: Option<String>,
}

/// One line of a run for listings (the detail has everything).
pub fn run_summary(r: &RunRecord) -> Value {
    json!({
        "id": r.id, "project": r.project, "pipeline": r.pipeline, "state": r.state,
        "commit": {"sha": r.commit.sha, "short": r.commit.short, "author": r.commit.author_name,
                   "summary": r.commit.summary, "branch": r.commit.branch},
        "triggered_by": r.triggered_by, "created_at": r.created_at, "started_at": r.started_at,
        "finished_at": r.finished_at, "duration_ms": r.duration().num_milliseconds(), "message": r.message,
    })
}

/// The runs `q` asks for, and the id to continue from.
pub fn runs_page(s: &AppState, q: &RunsQuery) -> Result<(Vec<RunRecord>, Option<String>), ApiError> {
    let state = match q.state.as_deref().filter(|v| !v.is_empty()) {
        Some(name) => Some(
            serde_json::from_value::<RunState>(json!(name))
                .map_err(|_| ApiError::BadRequest(format!("state `{name}` is not a run state (queued, running, succeeded, failed, cancelled, interrupted, awaiting_approval, promoting)")))?,
        ),
        None => None,
    };
    let project = q.project.clone().filter(|p| !p.is_empty());
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    Ok(s.coord.store.runs_page(q.before.as_deref(), limit, |r| {
        state.is_none_or(|st| r.state == st) && project.as_ref().is_none_or(|p| r.project.as_ref() == Some(p))
    })?)
}

pub async fn runs(State(s): State<AppState>, caller: Caller, Query(q): Query<RunsQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let (runs, next) = runs_page(&s, &q)?;
    Ok(Json(json!({"runs": runs.iter().map(run_summary).collect::<Vec<_>>(), "next": next})))
}

pub async fn run(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<RunRecord>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(s.coord.store.find_run(&id)?))
}

#[derive(Deserialize)]
pub struct LogsQuery {
    pub stage: Option<String>,
}

pub async fn logs(State(s): State<AppState>, caller: Caller, Path(id): Path<String>, Query(q): Query<LogsQuery>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let run = s.coord.store.find_run(&id)?;
    Ok(Json(json!(s.coord.store.logs(&run.id, q.stage.as_deref())?)))
}

/// `GET /api/runs/{id}/logs/stream` (bearer token): the run's output live, as `log_events`.
pub async fn logs_stream(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(Role::Viewer)?;
    let run = s.coord.store.find_run(&id)?;
    Ok(log_events(s, run.id))
}

/// The run's output as Server-Sent Events: every stored line (`log` events, JSON), then
/// new lines as they are recorded, then an `end` event with the run's state once it is
/// over. Reconnecting replays from the start. Served to the API and to the dashboard.
pub fn log_events(s: AppState, run_id: String) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    struct Cursor {
        s: AppState,
        id: String,
        after: Option<Vec<u8>>,
        pending: std::collections::VecDeque<SseEvent>,
        ended: bool,
    }
    let start = Cursor { s, id: run_id, after: None, pending: Default::default(), ended: false };
    let stream = futures_util::stream::unfold(start, |mut c| async move {
        loop {
            if let Some(event) = c.pending.pop_front() {
                return Some((Ok(event), c));
            }
            if c.ended {
                return None;
            }
            // Read the state before the lines: lines recorded before the end are all sent.
            let state = c.s.coord.store.run(&c.id).map(|r| r.state).ok();
            match c.s.coord.store.logs_after(&c.id, c.after.as_deref()) {
                Ok((lines, last)) => {
                    c.after = last;
                    for line in lines {
                        let data = serde_json::to_string(&line).unwrap_or_default();
                        c.pending.push_back(SseEvent::default().event("log").data(data));
                    }
                }
                Err(e) => tracing::warn!(run = %c.id, error = %e, "cannot read logs for a stream"),
            }
            match state {
                Some(st) if st.is_terminal() => {
                    c.pending.push_back(SseEvent::default().event("end").data(json!({"state": st}).to_string()));
                    c.ended = true;
                }
                None => c.ended = true,
                _ => {
                    if c.pending.is_empty() {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[derive(Deserialize, Default)]
pub struct TriggerBody {
    /// Branch, tag or sha (default: the project's first branch).
    #[serde(rename = "ref")]
    pub rev: Option<String>,
    pub branch: Option<String>,
    #[serde(default)]
    pub force: bool,
    /// Sent by a post-receive hook: the push is treated like a webhook's (only followed
    /// branches run).
    #[serde(default)]
    pub hook: bool,
}

pub async fn trigger(
    State(s): State<AppState>,
    caller: Caller,
    Path(project): Path<String>,
    body: Option<Json<TriggerBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let source = if body.hook { Source::Hook } else { Source::Manual };
    let req = TriggerRequest { rev: body.rev, branch: body.branch, source, by: Some(user.name.clone()), pusher: None, force: body.force };
    let triggered = s.coord.trigger(&project, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(triggered))))
}

pub async fn approvals_list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let pending = s.coord.store.pending_approvals()?;
    Ok(Json(json!(pending.iter().map(approvals::summary).collect::<Vec<_>>())))
}

#[derive(Deserialize, Default)]
pub struct DecisionBody {
    pub comment: Option<String>,
    pub reason: Option<String>,
}

pub async fn approve(State(s): State<AppState>, caller: Caller, Path(id): Path<String>, body: Option<Json<DecisionBody>>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    decide(&s, &caller, &id, DecisionKind::Approve, body.comment).await
}

pub async fn reject(State(s): State<AppState>, caller: Caller, Path(id): Path<String>, body: Option<Json<DecisionBody>>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    decide(&s, &caller, &id, DecisionKind::Reject, body.reason).await
}

/// Records a decision exactly as `gantry approve/reject` does; the approval that claims the
/// promotion starts it in the background (202, the run `promoting`).
pub async fn decide(s: &AppState, caller: &Caller, id: &str, kind: DecisionKind, comment: Option<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Pipelines may ask for more (admin), never less: validation refuses lower roles.
    caller.require(Role::ReleaseManager)?;
    let record = s.coord.decide(id, &caller.0, kind, comment).await?;
    let status = if record.state == RunState::Promoting {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(approvals::summary(&record))))
}

/// Stops a queued or running run (developer).
pub async fn cancel(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    let cancelled = s.coord.cancel(&id, &user.name)?;
    Ok((StatusCode::ACCEPTED, Json(json!(cancelled))))
}

#[derive(Debug, Deserialize)]
pub struct RerunQuery {
    #[serde(default)]
    pub failed: bool,
}

/// Queues a run again, all of it or only what failed (developer).
pub async fn rerun(State(s): State<AppState>, caller: Caller, Path(id): Path<String>, Query(q): Query<RerunQuery>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    let old = s.coord.store.find_run(&id)?;
    let run = s.coord.rerun(&old.id, q.failed, &user.name)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run, "rerun_of": old.id, "failed": q.failed}))))
}

#[derive(Debug, Deserialize)]
pub struct RollbackQuery {
    pub app: Option<String>,
    pub to: Option<String>,
}

/// Puts an environment's kept previous version live again (developer; release manager
/// where the operator protects the environment). Answers with the rollback's run.
pub async fn rollback(State(s): State<AppState>, caller: Caller, Path(name): Path<String>, Query(q): Query<RollbackQuery>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Viewer)?;
    let run = s.coord.roll_back(&name, q.app.as_deref(), q.to.as_deref(), user).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run, "environment": name}))))
}

pub async fn environments(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let envs = crate::stages::environment::list(s.coord.engine.as_ref()).await?;
    Ok(Json(json!(envs)))
}

pub async fn environment(State(s): State<AppState>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let view = crate::stages::environment::describe(s.coord.engine.as_ref(), &name).await?;
    let deployments = s.coord.store.deployments(Some(&name))?;
    Ok(Json(json!({"environment": view, "deployments": deployments})))
}

/// The report a query asks for (the API's and the dashboard's).
pub fn report_for(s: &AppState, q: &crate::server::pages::ReportQuery) -> Result<crate::report::Report, ApiError> {
    let now = chrono::Utc::now();
    let since = crate::report::parse_since(&q.since, now).map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    let pipeline = q.pipeline.as_deref().filter(|p| !p.is_empty());
    let window = crate::report::compute::Window { since, until: now };
    Ok(crate::report::from_store(&s.coord.store, &q.env, pipeline, window)?)
}

/// `GET /api/reports?env=production&pipeline=&since=90d`: the four keys, as JSON.
pub async fn reports(State(s): State<AppState>, caller: Caller, Query(q): Query<crate::server::pages::ReportQuery>) -> Result<Json<crate::report::Report>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(report_for(&s, &q)?))
}

