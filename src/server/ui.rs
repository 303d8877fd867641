//! The dashboard's routes: sign-in (a token exchanged for a server-side session, the
//! cookie holding only its id), the pages of `pages`, the run's live log (the dashboard's
//! own read-only stream: `EventSource` cannot send the API's bearer token), and the
//! approve/reject forms, which decide exactly as the API and the command line do. Every
//! POST passes `csrf`'s checks first; sign-in is rate-limited per client address.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;

use super::auth::{self, Visitor};
use super::csrf::{NoFields, Posted, SameOrigin};
use super::pages::{self, RunsFilter, Viewer};
use super::AppState;
use crate::approval::DecisionKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/logs/stream", get(logs_stream))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/reject", post(reject))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/rerun", post(rerun))
        .route("/environments/{name}/rollback", post(rollback))
        .route("/approvals", get(approvals_page))
        .route("/environments", get(environments))
        .route("/reports", get(reports))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

fn viewer(v: &Visitor) -> Viewer {
    Viewer { user: v.user.name.clone(), role: v.user.role }
}

fn failure(v: Option<&Viewer>, status: axum::http::StatusCode, title: &str, message: &str, back: &str) -> Response {
    (status, pages::notice(v, title, message, back)).into_response()
}

#[derive(Deserialize)]
struct RunsQuery {
    #[serde(flatten)]
    filter: RunsFilter,
    before: Option<String>,
}

async fn runs(State(s): State<AppState>, v: Visitor, Query(q): Query<RunsQuery>) -> Response {
    let filter = q.filter;
    match s.coord.store.runs_page(q.before.as_deref(), 50, |r| filter.matches(r)) {
        Ok((runs, next)) => pages::runs(&viewer(&v), &runs, &filter, next.as_deref()).into_response(),
        Err(e) => failure(Some(&viewer(&v)), axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Cannot read runs", &e.to_string(), "/"),
    }
}

async fn run(State(s): State<AppState>, v: Visitor, Path(id): Path<String>) -> Response {
    let found = s.coord.store.find_run(&id).and_then(|r| Ok((s.coord.store.logs(&r.id, None)?, r)));
    match found {
        Ok((logs, run)) => pages::run(&viewer(&v), &run, &logs).into_response(),
        Err(e) => failure(Some(&viewer(&v)), axum::http::StatusCode::NOT_FOUND, "No such run", &e.to_string(), "/"),
    }
}

/// The run's output live, for the run page's script; a session is enough (a viewer's).
async fn logs_stream(State(s): State<AppState>, _v: Visitor, Path(id): Path<String>, headers: axum::http::HeaderMap) -> Response {
    let after = match super::api::last_event_id(&headers) {
        Ok(after) => after,
        Err(e) => return e.into_response(),
    };
    match s.coord.store.find_run(&id) {
        Ok(run) => super::api::log_events(s, run.id, after).into_response(),
        Err(e) => super::ApiError::from(e).into_response(),
    }
}

async fn approvals_page(State(s): State<AppState>, v: Visitor) -> Response {
    match s.coord.store.pending_approvals() {
        Ok(pending) => pages::approvals(&viewer(&v), &pending).into_response(),
        Err(e) => failure(Some(&viewer(&v)), axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Cannot read approvals", &e.to_string(), "/"),
    }
}

async fn environments(State(s): State<AppState>, v: Visitor) -> Response {
    let envs = s.coord.engine.environments.list().await;
    let deployments = s.coord.store.deployments(None);
    match (envs, deployments) {
        (Ok(envs), Ok(deployments)) => pages::environments(&viewer(&v), &envs, &deployments, &s.coord.pool.views()).into_response(),
        (Err(e), _) => {
            failure(Some(&viewer(&v)), axum::http::StatusCode::SERVICE_UNAVAILABLE, "Docker is unreachable", &e.to_string(), "/")
        }
        (_, Err(e)) => {
            failure(Some(&viewer(&v)), axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Cannot read deployments", &e.to_string(), "/")
        }
    }
}

async fn reports(State(s): State<AppState>, v: Visitor, Query(q): Query<pages::ReportQuery>) -> Response {
    let computed = super::api::report_for(&s, &q);
    match &computed {
        Ok(report) => pages::reports(&viewer(&v), &q, Ok(report)).into_response(),
        Err(e) => {
            let message = e.to_string();
            (e.status(), pages::reports(&viewer(&v), &q, Err(&message))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    comment: Option<String>,
    reason: Option<String>,
}

async fn approve(State(s): State<AppState>, Path(id): Path<String>, posted: Posted<DecisionForm>) -> Response {
    decide(&s, &posted.visitor, &id, DecisionKind::Approve, posted.form.comment).await
}

async fn reject(State(s): State<AppState>, Path(id): Path<String>, posted: Posted<DecisionForm>) -> Response {
    decide(&s, &posted.visitor, &id, DecisionKind::Reject, posted.form.reason).await
}

async fn decide(s: &AppState, v: &Visitor, id: &str, kind: DecisionKind, comment: Option<String>) -> Response {
    let back = format!("/runs/{id}");
    if !v.user.role.covers(crate::config::Role::ReleaseManager) {
        let why = format!("{} ({}) may not decide on promotions: that needs the role release-manager", v.user.name, v.user.role);
        return failure(Some(&viewer(v)), StatusCode::FORBIDDEN, "Not recorded", &why, &back);
    }
    match s.coord.decide(id, &v.user, kind, comment).await {
        Ok(_) => {
            // See other: the run page shows the decision (and the promotion as it goes).
            Redirect::to(&back).into_response()
        }
        Err(e) => {
            let e = super::ApiError::from(e);
            failure(Some(&viewer(v)), e.status(), "Not recorded", &e.to_string(), &back)
        }
    }
}

/// The run page's cancel button: a developer stops a queued or running run.
async fn cancel(State(s): State<AppState>, Path(id): Path<String>, posted: Posted<NoFields>) -> Response {
    let v = &posted.visitor;
    let back = format!("/runs/{id}");
    if !v.user.role.covers(crate::config::Role::Developer) {
        let why = format!("{} ({}) may not cancel runs: that needs the role developer", v.user.name, v.user.role);
        return failure(Some(&viewer(v)), StatusCode::FORBIDDEN, "Not cancelled", &why, &back);
    }
    match s.coord.cancel(&id, &v.user.name) {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => {
            let e = super::ApiError::from(e);
            failure(Some(&viewer(v)), e.status(), "Not cancelled", &e.to_string(), &back)
        }
    }
}

#[derive(Deserialize)]
struct RerunForm {
    /// `true` from the "what failed" button (a string: flattened form fields stay text).
    #[serde(default)]
    failed: Option<String>,
}

/// The run page's "Run again" buttons: a developer queues the run again, all of it or only
/// what failed, and lands on the new run.
async fn rerun(State(s): State<AppState>, Path(id): Path<String>, posted: Posted<RerunForm>) -> Response {
    let v = &posted.visitor;
    let back = format!("/runs/{id}");
    if !v.user.role.covers(crate::config::Role::Developer) {
        let why = format!("{} ({}) may not run runs again: that needs the role developer", v.user.name, v.user.role);
        return failure(Some(&viewer(v)), StatusCode::FORBIDDEN, "Not run again", &why, &back);
    }
    let failed = posted.form.failed.as_deref() == Some("true");
    match s.coord.rerun(&id, failed, &v.user.name) {
        // A new run's id is a ULID: nothing to escape.
        Ok(new) => Redirect::to(&format!("/runs/{new}")).into_response(),
        Err(e) => {
            let e = super::ApiError::from(e);
            failure(Some(&viewer(v)), e.status(), "Not run again", &e.to_string(), &back)
        }
    }
}

#[derive(Deserialize)]
struct RollbackForm {
    app: Option<String>,
}

/// The environments page's "Roll back" button: lands on the rollback's run.
async fn rollback(State(s): State<AppState>, Path(name): Path<String>, posted: Posted<RollbackForm>) -> Response {
    let v = &posted.visitor;
    let back = "/environments".to_string();
    match s.coord.roll_back(&name, posted.form.app.as_deref(), None, &v.user).await {
        Ok(run) => Redirect::to(&format!("/runs/{run}")).into_response(),
        Err(e) => {
            let e = super::ApiError::from(e);
            failure(Some(&viewer(v)), e.status(), "Not rolled back", &e.to_string(), &back)
        }
    }
}

async fn login_page() -> Markup {
    pages::login(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Signs in: same origin, within the address's rate, a token of a user. The answer opens a
/// session (its id in the cookie) and hands its CSRF token to the page's script, once.
async fn login(
    State(s): State<AppState>,
    _same: SameOrigin,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: header::HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(wait) = s.sign_ins.take(peer.ip(), std::time::Instant::now()) {
        let secs = wait.as_secs().max(1);
        let message = format!("Too many sign-in attempts from your address; try again in {secs} s.");
        return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], pages::login(Some(&message))).into_response();
    }
    let Some(user) = s.coord.config.user_by_token(f.token.trim()) else {
        return (StatusCode::UNAUTHORIZED, pages::login(Some("That token belongs to no user."))).into_response();
    };
    let Some(binding) = auth::token_binding(user) else {
        return (StatusCode::UNAUTHORIZED, pages::login(Some("That token belongs to no user."))).into_response();
    };
    let sessions = s.coord.store.sessions();
    let now = chrono::Utc::now();
    // The browser's previous session, if any, ends here; and expired ones nobody presents.
    if let Some(old) = auth::cookie(&headers, auth::cookie_name(s.secure())) {
        let _ = sessions.remove(&old);
    }
    if let Err(e) = sessions.remove_expired(now) {
        tracing::warn!(error = %e, "cannot sweep expired sessions");
    }
    let ttl = s.coord.config.server.session_ttl;
    let issued = match chrono::Duration::from_std(ttl)
        .map_err(|e| e.to_string())
        .and_then(|ttl| sessions.create(&user.name, binding, ttl, now).map_err(|e| e.to_string()))
    {
        Ok(issued) => issued,
        Err(e) => return failure(None, StatusCode::INTERNAL_SERVER_ERROR, "Cannot sign in", &e, "/login"),
    };
    tracing::info!(user = %user.name, "signed in to the dashboard");
    let cookies = [auth::session_cookie(&issued.id, s.secure(), ttl), auth::clear_legacy_cookie()];
    let mut response = pages::signed_in(&issued.csrf).into_response();
    for c in cookies {
        if let Ok(v) = header::HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Signs out: the session ends in the store (its cookie no longer works anywhere), the
/// browser drops the cookie and forgets the CSRF token.
async fn logout(State(s): State<AppState>, posted: Posted<NoFields>) -> Response {
    if let Err(e) = s.coord.store.sessions().remove(&posted.visitor.id) {
        return failure(None, StatusCode::INTERNAL_SERVER_ERROR, "Cannot sign out", &e.to_string(), "/");
    }
    ([(header::SET_COOKIE, auth::clear_session_cookie(s.secure()))], pages::signed_out()).into_response()
}
