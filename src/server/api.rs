//! The JSON API: projects, runs (filtered, paged), a run's logs (stored, or live as
//! Server-Sent Events), triggers, approvals, environments. Every route needs a bearer
//! token (never the dashboard's cookie: see `auth`); mutating routes need a role:
//! developer to trigger, release-manager to decide. Parameters are checked as
//! `docs/openapi.yaml` constrains them, and every refusal is an `ApiError` (see `extract`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Caller;
use super::extract::{Json as Body, Path, Query};
use super::{ApiError, AppState};
use crate::config::Role;
use crate::coordinator::{approvals, Source, TriggerRequest};
use crate::events::RunState;
use crate::approval::DecisionKind;
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

/// What a parameter may hold, as the document's `pattern` says it.
#[derive(Clone, Copy)]
pub enum Name {
    /// A run id (a ULID), a prefix of one, or `latest`/`last`: `^[0-9A-Za-z]{1,26}$`.
    Run,
    /// A project of the config: `^[a-z0-9_-]{1,40}$`.
    Project,
    /// An environment: `^[a-z0-9][a-z0-9-]{0,39}$`, the pipeline's rule for its names.
    Environment,
    /// A stage: `^[A-Za-z0-9_.-]{1,63}$`, the pipeline's rule for its names.
    Stage,
}

impl Name {
    /// 400 naming `param` unless `value` is such a name.
    pub fn check(self, param: &str, value: &str) -> Result<(), ApiError> {
        let (max, ok, rule): (usize, fn(char) -> bool, &str) = match self {
            Name::Run => (26, |c| c.is_ascii_alphanumeric(), "letters and digits (a run id, a prefix of one, or latest)"),
            Name::Project => {
                (40, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-', "lowercase letters, digits, `_` and `-`")
            }
            Name::Environment => (
                40,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
                "lowercase letters, digits and `-`, not starting with `-`",
            ),
            Name::Stage => (63, |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'), "letters, digits, `_`, `.` and `-`"),
        };
        let valid = !value.is_empty()
            && value.chars().count() <= max
            && value.chars().all(ok)
            && !(matches!(self, Name::Environment) && value.starts_with('-'));
        if valid {
            Ok(())
        } else {
            let shown: String = value.chars().take(60).collect();
            Err(ApiError::BadRequest(format!("{param}: `{shown}` is not valid: use 1 to {max} {rule}")))
        }
    }
}

/// The run a path's `id` names: checked, then found (404 if none or several).
fn find_run(s: &AppState, id: &str) -> Result<RunRecord, ApiError> {
    Name::Run.check("id", id)?;
    Ok(s.coord.store.find_run(id)?)
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

/// Runs per page of `/api/runs`: the default and the most.
pub const RUNS_PER_PAGE: (usize, usize) = (50, 500);

/// The runs `q` asks for, and the id to continue from.
pub fn runs_page(s: &AppState, q: &RunsQuery) -> Result<(Vec<RunRecord>, Option<String>), ApiError> {
    // An empty value is not "no filter": the document's enum and pattern have no "".
    let state = match q.state.as_deref() {
        Some(name) => Some(
            serde_json::from_value::<RunState>(json!(name))
                .map_err(|_| ApiError::BadRequest(format!("state: `{name}` is not a run state (queued, running, succeeded, failed, cancelled, interrupted, awaiting_approval, promoting)")))?,
        ),
        None => None,
    };
    if let Some(p) = &q.project {
        Name::Project.check("project", p)?;
    }
    if let Some(b) = &q.before {
        Name::Run.check("before", b)?;
    }
    let project = q.project.clone();
    let limit = page_limit(q.limit, RUNS_PER_PAGE)?;
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
    Ok(Json(find_run(&s, &id)?))
}

/// `limit` checked against (default, most): the document's `minimum: 1` and `maximum`.
fn page_limit(limit: Option<usize>, (default, most): (usize, usize)) -> Result<usize, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=most).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit: {n} is not in 1..={most}"))),
    }
}

#[derive(Deserialize)]
pub struct LogsQuery {
    pub stage: Option<String>,
    /// A position (`next` of the page before): the page starts after it.
    pub after: Option<u64>,
    pub limit: Option<usize>,
}

/// Lines per page of `/api/runs/{id}/logs`: the default and the most. A stage may store
/// 64 MiB of output; a page of it stays small.
pub const LOG_LINES_PER_PAGE: (usize, usize) = (1000, 5000);

/// `GET /api/runs/{id}/logs?stage=&after=&limit=`: one page of the run's stored lines;
/// `next`, the `after` of the following page (null on the last); `last`, the position of
/// the page's last line (null for an empty page).
pub async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    if let Some(stage) = &q.stage {
        Name::Stage.check("stage", stage)?;
    }
    let limit = page_limit(q.limit, LOG_LINES_PER_PAGE)?;
    let after = q.after.map(|a| position("after", a)).transpose()?;
    let run = find_run(&s, &id)?;
    let page = s.coord.store.log_page(&run.id, q.stage.as_deref(), after, limit)?;
    // `next` ends a reader's loop (null: nothing more now); `last` is where one that
    // follows a running run picks up later, even after a last page.
    let last = page.lines.last().map(|(seq, _)| *seq);
    let next = if page.more { last } else { None };
    let lines: Vec<_> = page.lines.into_iter().map(|(_, line)| line).collect();
    Ok(Json(json!({"lines": lines, "next": next, "last": last})))
}

/// A log position from outside: the document's `int64`, so at most `i64::MAX` (sled's
/// ids never come near it).
fn position(param: &str, value: u64) -> Result<u64, ApiError> {
    if value <= i64::MAX as u64 {
        Ok(value)
    } else {
        Err(ApiError::BadRequest(format!("{param}: {value} is not a log position (0 to {})", i64::MAX)))
    }
}

/// Where a reconnecting `EventSource` left off: the `id` of the last event it received.
pub fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let refused = || ApiError::BadRequest("Last-Event-ID: not the id of a log event (digits, as the stream sent them)".into());
    let text = value.to_str().map_err(|_| refused())?.trim();
    // Browsers send the header empty when no event had an id: start at the beginning.
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    let id = text.parse().map_err(|_| refused())?;
    position("Last-Event-ID", id).map(Some)
}

/// `GET /api/runs/{id}/logs/stream` (bearer token): the run's output live, as `log_events`.
pub async fn logs_stream(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.require(Role::Viewer)?;
    let after = last_event_id(&headers)?;
    let run = find_run(&s, &id)?;
    Ok(log_events(s, run.id, after))
}

/// The run's output as Server-Sent Events: the stored lines after `after` (all without),
/// each a `log` event (JSON) whose `id` is its position, then new lines as they are
/// recorded, then an `end` event with the run's state once it is over. A reconnecting
/// browser sends the last id back as `Last-Event-ID` and gets only what it missed. Served
/// to the API and to the dashboard.
pub fn log_events(s: AppState, run_id: String, after: Option<u64>) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    struct Cursor {
        s: AppState,
        id: String,
        after: Option<u64>,
        pending: std::collections::VecDeque<SseEvent>,
        ended: bool,
    }
    let start = Cursor { s, id: run_id, after, pending: Default::default(), ended: false };
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
            // A page at a time, so that a long output is never all in memory at once.
            let more = match c.s.coord.store.log_page(&c.id, None, c.after, LOG_LINES_PER_PAGE.0) {
                Ok(page) => {
                    for (seq, line) in page.lines {
                        let data = serde_json::to_string(&line).unwrap_or_default();
                        c.pending.push_back(SseEvent::default().event("log").id(seq.to_string()).data(data));
                        c.after = Some(seq);
                    }
                    page.more
                }
                Err(e) => {
                    tracing::warn!(run = %c.id, error = %e, "cannot read logs for a stream");
                    false
                }
            };
            if more {
                continue;
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
#[serde(deny_unknown_fields)]
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
    body: Option<Body<TriggerBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    Name::Project.check("project", &project)?;
    let body = body.map(|b| b.0).unwrap_or_default();
    let source = if body.hook { Source::Hook } else { Source::Manual };
    let req = TriggerRequest { rev: body.rev, branch: body.branch, source, by: Some(user.name.clone()), pusher: None, force: body.force };
    let triggered = s.coord.trigger(&project, req).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(triggered))))
}

/// `GET /api/engines`: the operator's engines, whether each answers, its slots and runs
/// (empty without `engines:`).
pub async fn engines(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Ok(Json(json!(s.coord.pool.views())))
}

pub async fn approvals_list(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let pending = s.coord.store.pending_approvals()?;
    Ok(Json(json!(pending.iter().map(approvals::summary).collect::<Vec<_>>())))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
    pub reason: Option<String>,
}

pub async fn approve(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Body<DecisionBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    decide(&s, &caller, &id, DecisionKind::Approve, body.comment).await
}

pub async fn reject(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<Body<DecisionBody>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map(|b| b.0).unwrap_or_default();
    decide(&s, &caller, &id, DecisionKind::Reject, body.reason).await
}

/// Records a decision exactly as `gantry approve/reject` does; the approval that claims the
/// promotion starts it in the background (202, the run `promoting`).
pub async fn decide(
    s: &AppState,
    caller: &Caller,
    id: &str,
    kind: DecisionKind,
    comment: Option<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Pipelines may ask for more (admin), never less: validation refuses lower roles.
    caller.require(Role::ReleaseManager)?;
    let run = find_run(s, id)?;
    let record = s.coord.decide(&run.id, &caller.0, kind, comment).await?;
    let status = if record.state == RunState::Promoting { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(approvals::summary(&record))))
}

/// Stops a queued or running run (developer).
pub async fn cancel(State(s): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    Name::Run.check("id", &id)?;
    let cancelled = s.coord.cancel(&id, &user.name)?;
    Ok((StatusCode::ACCEPTED, Json(json!(cancelled))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerunQuery {
    #[serde(default)]
    pub failed: bool,
}

/// Queues a run again, all of it or only what failed (developer).
pub async fn rerun(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<RerunQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Developer)?;
    let old = find_run(&s, &id)?;
    let run = s.coord.rerun(&old.id, q.failed, &user.name)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run, "rerun_of": old.id, "failed": q.failed}))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackQuery {
    pub app: Option<String>,
    pub to: Option<String>,
}

/// Puts an environment's kept previous version live again (developer; release manager
/// where the operator protects the environment). Answers with the rollback's run.
pub async fn rollback(
    State(s): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<RollbackQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = caller.require(Role::Viewer)?;
    Name::Environment.check("name", &name)?;
    if let Some(app) = &q.app {
        Name::Stage.check("app", app)?;
    }
    if q.to.as_deref() == Some("") {
        return Err(ApiError::BadRequest("`to` is empty: name a version (commit or image) or leave it out".into()));
    }
    let run = s.coord.roll_back(&name, q.app.as_deref(), q.to.as_deref(), user).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"run": run, "environment": name}))))
}

pub async fn environments(State(s): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    let envs = s.coord.engine.environments.list().await?;
    Ok(Json(json!(envs)))
}

pub async fn environment(State(s): State<AppState>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Viewer)?;
    Name::Environment.check("name", &name)?;
    let view = s.coord.engine.environments.describe(&name).await?;
    let deployments = s.coord.store.deployments(Some(&name))?;
    Ok(Json(json!({"environment": view, "deployments": deployments})))
}

/// The report a query asks for (the API's and the dashboard's).
pub fn report_for(s: &AppState, q: &crate::server::pages::ReportQuery) -> Result<crate::report::Report, ApiError> {
    let now = chrono::Utc::now();
    let since = crate::report::parse_since(&q.since, now).map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
    if since >= now {
        return Err(ApiError::BadRequest(format!("since: `{}` is not before now", q.since)));
    }
    let pipeline = q.pipeline.as_deref().filter(|p| !p.is_empty());
    let window = crate::report::compute::Window { since, until: now };
    Ok(crate::report::from_store(&s.coord.store, &q.env, pipeline, window)?)
}

/// `GET /api/reports?env=production&pipeline=&since=90d`: the four keys, as JSON.
pub async fn reports(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<crate::server::pages::ReportQuery>,
) -> Result<Json<crate::report::Report>, ApiError> {
    caller.require(Role::Viewer)?;
    // The dashboard's form sends an empty pipeline for "all"; the API's document does not.
    Name::Environment.check("env", &q.env)?;
    if let Some(p) = &q.pipeline {
        if p.is_empty() || p.chars().count() > MAX_PIPELINE_NAME {
            return Err(ApiError::BadRequest(format!("pipeline: give 1 to {MAX_PIPELINE_NAME} characters, or leave it out for all")));
        }
    }
    if q.since.len() > MAX_SINCE {
        return Err(ApiError::BadRequest(format!("since: longer than {MAX_SINCE} characters")));
    }
    Ok(Json(report_for(&s, &q)?))
}

/// The longest `pipeline` a report query takes (pipeline names are free text).
const MAX_PIPELINE_NAME: usize = 200;
/// The longest `since` (`90d`, `2026-09-01`, `12w 3d`...).
const MAX_SINCE: usize = 64;
