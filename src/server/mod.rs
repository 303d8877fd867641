//! The coordinator service (`gantry serve`): the JSON API, push webhooks, the dashboard and
//! Gantry's own metrics, over the coordinator that queues and drives runs.

pub mod api;
pub mod auth;
pub mod csrf;
pub mod extract;
pub mod headers;
pub mod push;
pub mod limit;
pub mod metrics;
pub mod pages;
pub mod tls;
pub mod ui;
pub mod webhook;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::coordinator::approvals::DecideError;
use crate::coordinator::{Coordinator, TriggerError};
use crate::approval::Refusal;
use crate::store::StoreError;

/// The OpenAPI document of the API, kept in the repository and served as it is.
pub const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

#[derive(Clone)]
pub struct AppState {
    pub coord: Arc<Coordinator>,
    /// Webhook secrets of the projects that take webhooks, read once at start.
    pub hook_secrets: Arc<std::collections::BTreeMap<String, String>>,
    /// Sign-in attempts per client address.
    pub sign_ins: Arc<limit::SignInLimit>,
}

impl AppState {
    pub fn new(coord: Arc<Coordinator>, hook_secrets: std::collections::BTreeMap<String, String>) -> AppState {
        AppState { coord, hook_secrets: Arc::new(hook_secrets), sign_ins: Arc::new(limit::SignInLimit::default()) }
    }

    /// Whether the service serves HTTPS (`server.tls`): the session cookie is then `Secure`.
    pub fn secure(&self) -> bool {
        self.coord.config.server.tls.is_some()
    }
}

/// An API error: its status and one sentence, as `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is needed (Authorization: Bearer TOKEN)")]
    Unauthorized,
    /// A webhook delivery without a valid signature.
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// A method the route does not take.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A body over the service's limit.
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(json!({"error": self.to_string()}))).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchRun(_) | StoreError::Ambiguous { .. } => ApiError::NotFound(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::Refused(r @ (Refusal::MissingRole { .. } | Refusal::OwnChange { .. } | Refusal::Protected(_))) => {
                ApiError::Forbidden(r.to_string())
            }
            DecideError::Refused(r @ Refusal::NoReason) => ApiError::BadRequest(r.to_string()),
            DecideError::Refused(r) => ApiError::Conflict(r.to_string()),
            DecideError::Store(e) => e.into(),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::UnknownProject(_) => ApiError::NotFound(e.to_string()),
            TriggerError::Refused(m) => ApiError::BadRequest(m),
            TriggerError::Conflict(m) => ApiError::Conflict(m),
            TriggerError::Git(g) => ApiError::BadRequest(g.to_string()),
            TriggerError::Store(s) => s.into(),
            TriggerError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::coordinator::rollback::RollbackRefusal> for ApiError {
    fn from(e: crate::coordinator::rollback::RollbackRefusal) -> Self {
        use crate::coordinator::rollback::{RollbackError, RollbackRefusal};
        match e {
            RollbackRefusal::Role(m) => ApiError::Forbidden(m),
            RollbackRefusal::Failed(RollbackError::Nothing(m)) => ApiError::Conflict(m),
            RollbackRefusal::Failed(RollbackError::Engine(d)) => d.into(),
            RollbackRefusal::Failed(RollbackError::Store(s)) => s.into(),
        }
    }
}

impl From<crate::docker::DockerError> for ApiError {
    fn from(e: crate::docker::DockerError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/projects", get(api::projects))
        .route("/api/projects/{project}/trigger", post(api::trigger))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/logs", get(api::logs))
        .route("/api/runs/{id}/logs/stream", get(api::logs_stream))
        .route("/api/runs/{id}/approve", post(api::approve))
        .route("/api/runs/{id}/reject", post(api::reject))
        .route("/api/runs/{id}/cancel", post(api::cancel))
        .route("/api/runs/{id}/rerun", post(api::rerun))
        .route("/api/environments/{name}/rollback", post(api::rollback))
        .route("/api/approvals", get(api::approvals_list))
        .route("/api/engines", get(api::engines))
        .route("/api/environments", get(api::environments))
        .route("/api/environments/{name}", get(api::environment))
        .route("/api/reports", get(api::reports))
        .route("/hooks/{forge}", post(push::push))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.yaml", get(|| async { ([("content-type", "application/yaml")], OPENAPI) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(ui::routes())
        // After every route: the API's own answers for what no route takes (see `extract`).
        .method_not_allowed_fallback(extract::method_not_allowed)
        .fallback(extract::not_found)
        .layer(axum::middleware::from_fn(headers::secure))
        .with_state(state)
}

/// Every project's webhook secret; a project whose secret cannot be read stops the
/// service from starting, rather than running half-configured.
pub fn hook_secrets(config: &crate::config::Config) -> Result<std::collections::BTreeMap<String, String>, crate::config::service::WebhookSecretError> {
    let mut out = std::collections::BTreeMap::new();
    for (name, project) in &config.projects {
        if let Some(secret) = project.webhook_secret(name)? {
            out.insert(name.clone(), secret);
        }
    }
    Ok(out)
}

/// How long open connections get to finish once an HTTPS service is asked to stop.
const TLS_DRAIN: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves (HTTPS with `tls`, else HTTP) until SIGINT/SIGTERM; then stops taking work,
/// interrupts the runs in flight (their containers removed, the runs recorded
/// `interrupted`) and returns.
pub async fn serve(
    coord: Arc<Coordinator>,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<()> {
    let hook_secrets = hook_secrets(&coord.config).map_err(std::io::Error::other)?;
    let tasks = coord.start();
    let state = AppState::new(coord.clone(), hook_secrets);
    let shutdown = coord.shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {},
        }
        eprintln!("gantry serve: stopping: runs in flight are interrupted and cleaned up");
        shutdown.cancel();
    });
    let stop = coord.shutdown.clone();
    // The peer's address reaches the handlers (the sign-in rate limit is per address).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await?,
        Some(config) => {
            let handle = axum_server::Handle::<std::net::SocketAddr>::new();
            let draining = handle.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                draining.graceful_shutdown(Some(TLS_DRAIN));
            });
            axum_server::tls_rustls::from_tcp_rustls(listener.into_std()?, axum_server::tls_rustls::RustlsConfig::from_config(config))?
                .handle(handle)
                .serve(app)
                .await?
        }
    }
    // Runs in flight see the shutdown token; wait for them to record their end.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !coord.running().is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // A promotion or rollback in flight finishes: stopping half-way would leave the
    // target's lock and a half-swapped version on the engine.
    coord.background.close();
    if !coord.background.is_empty() {
        eprintln!("gantry serve: waiting for {} promotion(s) or rollback(s) in flight to finish", coord.background.len());
    }
    coord.background.wait().await;
    for t in tasks {
        t.abort();
    }
    coord.store.flush().map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(())
}
