//! The dashboard's routes: sign-in with a token (kept in an HttpOnly, SameSite=Strict
//! cookie), the pages of `pages`, and the approve/reject forms, which decide exactly as
//! the API and the command line do.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::Markup;
use serde::Deserialize;

use super::auth::{Visitor, COOKIE};
use super::pages::{self, RunsFilter, Viewer};
use super::AppState;
use crate::coordinator::approvals;
use crate::events::RunState;
use crate::gate::approval::DecisionKind;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/approve", post(approve))
        .route("/runs/{id}/reject", post(reject))
        .route("/approvals", get(approvals_page))
        .route("/environments", get(environments))
        .route("/reports", get(reports))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
}

fn viewer(v: &Visitor) -> Viewer {
    Viewer { user: v.0.name.clone(), role: v.0.role }
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

async fn approvals_page(State(s): State<AppState>, v: Visitor) -> Response {
    match s.coord.store.pending_approvals() {
        Ok(pending) => pages::approvals(&viewer(&v), &pending).into_response(),
        Err(e) => failure(Some(&viewer(&v)), axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Cannot read approvals", &e.to_string(), "/"),
    }
}

async fn environments(State(s): State<AppState>, v: Visitor) -> Response {
    let envs = crate::stages::environment::list(s.coord.engine.as_ref()).await;
    let deployments = s.coord.store.deployments(None);
    match (envs, deployments) {
        (Ok(envs), Ok(deployments)) => pages::environments(&viewer(&v), &envs, &deployments).into_response(),
        (Err(e), _) => failure(Some(&viewer(&v)), axum::http::StatusCode::SERVICE_UNAVAILABLE, "Docker is unreachable", &e.to_string(), "/"),
        (_, Err(e)) => failure(Some(&viewer(&v)), axum::http::StatusCode::INTERNAL_SERVER_ERROR, "Cannot read deployments", &e.to_string(), "/"),
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

async fn approve(State(s): State<AppState>, v: Visitor, Path(id): Path<String>, Form(f): Form<DecisionForm>) -> Response {
    decide(&s, &v, &id, DecisionKind::Approve, f.comment)
}

async fn reject(State(s): State<AppState>, v: Visitor, Path(id): Path<String>, Form(f): Form<DecisionForm>) -> Response {
    decide(&s, &v, &id, DecisionKind::Reject, f.reason)
}

fn decide(s: &AppState, v: &Visitor, id: &str, kind: DecisionKind, comment: Option<String>) -> Response {
    let back = format!("/runs/{id}");
    if !v.0.role.covers(crate::config::Role::ReleaseManager) {
        let why = format!("{} ({}) may not decide on promotions: that needs the role release-manager", v.0.name, v.0.role);
        return failure(Some(&viewer(v)), axum::http::StatusCode::FORBIDDEN, "Not recorded", &why, &back);
    }
    let decided = s
        .coord
        .store
        .find_run(id)
        .map_err(crate::coordinator::approvals::DecideError::from)
        .and_then(|run| approvals::record_decision(&s.coord.store, &s.coord.config.protections, &run.id, &v.0, kind, comment, chrono::Utc::now()));
    match decided {
        Ok(record) => {
            if record.state == RunState::Promoting {
                super::promote_in_background(s, record);
            }
            // See other: the run page shows the decision (and the promotion as it goes).
            Redirect::to(&back).into_response()
        }
        Err(e) => {
            let e = super::ApiError::from(e);
            failure(Some(&viewer(v)), e.status(), "Not recorded", &e.to_string(), &back)
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

async fn login(State(s): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let token = f.token.trim();
    // The token goes into a cookie as it is; one that cannot be a cookie value is no token.
    let cookie_safe = token.chars().all(|c| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\'));
    if !cookie_safe || s.coord.config.user_by_token(token).is_none() {
        return (axum::http::StatusCode::UNAUTHORIZED, pages::login(Some("That token belongs to no user."))).into_response();
    }
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}
