//! Reading a data dir that another gantry process holds. sled lets one process open a
//! store; that process (`gantry run`, `gantry serve`) answers the others' read commands on
//! a local socket in the data dir (`control.sock`, owner-only), so `gantry runs`, `show`,
//! `logs --follow`, `approvals`, `report` and `env show` work in a second terminal while a
//! run goes on. Plain HTTP/1.0 and JSON over a Unix socket; the records are the store's own.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::events::{Deployment, LogLine};
use crate::store::read::{Cursor, ReadHistory};
use crate::store::{RunRecord, Store, StoreError};

/// The socket of the process holding `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Answers read requests on the data dir's socket until dropped; then the socket is gone.
pub struct Listening {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What the holding process does to its runs when asked (cancel), and the config that
/// says who may ask: the same identity rules as the command line and the API.
#[derive(Clone)]
pub struct Steering {
    pub config: Arc<crate::config::Config>,
    /// Stops run `id` on behalf of user `by`; the sentence to answer with, or why not.
    pub cancel: Arc<dyn Fn(&str, &str) -> Result<String, String> + Send + Sync>,
    /// Records a decision on a promotion (the service): the sentence to answer with, or
    /// the status and why not. `None`: this process takes no decisions.
    pub decide: Option<Decider>,
}

/// A decision asked for over the socket, by a user the holder identified.
pub struct Decision {
    pub run: String,
    pub user: crate::config::User,
    pub kind: crate::approval::DecisionKind,
    pub comment: Option<String>,
}

pub type Decider = Arc<dyn Fn(Decision) -> futures_util::future::BoxFuture<'static, Result<String, (u16, String)>> + Send + Sync>;

#[derive(Clone)]
struct Holder {
    steering: Option<Steering>,
}

/// Starts answering on `data_dir`'s socket for `store` (which this process holds).
pub fn listen(store: Arc<Store>, data_dir: &Path, steering: Option<Steering>) -> std::io::Result<Listening> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    // A socket left by a process that died: this process holds the store's lock, so no
    // other process answers on it.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    // Only the data dir's owner reads through it, as only they can open the store.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let app = Router::new()
        .route("/runs", get(runs))
        .route("/runs/{query}", get(run))
        .route("/runs/{id}/logs", get(logs))
        .route("/approvals", get(approvals))
        .route("/deployments", get(deployments))
        .with_state(store)
        .merge(
            Router::new()
                .route("/runs/{id}/cancel", axum::routing::post(cancel))
                .route("/runs/{id}/decide", axum::routing::post(decide))
                .with_state(Holder { steering }),
        );
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the control socket stopped answering");
        }
    });
    Ok(Listening { path, task })
}

struct Failure(StoreError);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0 {
            StoreError::NoSuchRun(_) => StatusCode::NOT_FOUND,
            StoreError::Ambiguous { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(json!({"error": self.0.to_string()}))).into_response()
    }
}

type Answer<T> = Result<Json<T>, Failure>;

/// Store reads are blocking; they run off the async workers.
async fn read<T: Send + 'static>(store: Arc<Store>, f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static) -> Result<T, Failure> {
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| Failure(StoreError::Io { path: PathBuf::from("control.sock"), source: std::io::Error::other(e.to_string()) }))?
        .map_err(Failure)
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn runs(State(s): State<Arc<Store>>, Query(q): Query<Limit>) -> Answer<Vec<RunRecord>> {
    let limit = q.limit.unwrap_or(20).min(100_000);
    read(s, move |s| s.list_runs(limit)).await.map(Json)
}

async fn run(State(s): State<Arc<Store>>, UrlPath(query): UrlPath<String>) -> Answer<RunRecord> {
    read(s, move |s| s.find_run(&query)).await.map(Json)
}

#[derive(Deserialize)]
struct LogQuery {
    stage: Option<String>,
    /// The cursor of `next`, hex.
    after: Option<String>,
}

async fn logs(State(s): State<Arc<Store>>, UrlPath(id): UrlPath<String>, Query(q): Query<LogQuery>) -> Response {
    if let Some(stage) = q.stage {
        return read(s, move |s| s.logs(&id, Some(&stage))).await.map(|l| Json(json!({"lines": l}))).into_response();
    }
    let after = match q.after.as_deref().map(hex::decode).transpose() {
        Ok(a) => a,
        Err(_) => return (StatusCode::BAD_REQUEST, Json(json!({"error": "`after` is a cursor from `next`"}))).into_response(),
    };
    read(s, move |s| s.logs_after(&id, after.as_deref()))
        .await
        .map(|(lines, next)| Json(json!({"lines": lines, "next": next.map(hex::encode)})))
        .into_response()
}

async fn approvals(State(s): State<Arc<Store>>) -> Answer<Vec<RunRecord>> {
    read(s, |s| s.pending_approvals()).await.map(Json)
}

#[derive(Deserialize)]
struct EnvQuery {
    env: Option<String>,
}

async fn deployments(State(s): State<Arc<Store>>, Query(q): Query<EnvQuery>) -> Answer<Vec<Deployment>> {
    read(s, move |s| s.deployments(q.env.as_deref())).await.map(Json)
}

/// Who asks, as the command line proves it: a token, or a name where the config allows.
#[derive(Deserialize, serde::Serialize, Default)]
pub struct Asker {
    #[serde(default)]
    pub claimed: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

async fn cancel(State(h): State<Holder>, UrlPath(id): UrlPath<String>, Json(who): Json<Asker>) -> Response {
    let refuse = |status: StatusCode, e: String| (status, Json(json!({"error": e}))).into_response();
    let Some(steering) = h.steering else {
        return refuse(StatusCode::CONFLICT, "this process drives no runs".into());
    };
    // The socket is its owner's only, so the asker is this OS user.
    let login = crate::config::identity::os_login();
    let user = match steering.config.identify_steerer(who.claimed.as_deref(), who.token.as_deref(), login.as_deref()) {
        Ok(id) => id.user,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    if !user.role.covers(crate::config::Role::Developer) {
        return refuse(StatusCode::FORBIDDEN, format!("{} ({}) may not cancel runs: that needs the role developer", user.name, user.role));
    }
    let cancel = steering.cancel.clone();
    match tokio::task::spawn_blocking(move || cancel(&id, &user.name)).await {
        Ok(Ok(said)) => (StatusCode::ACCEPTED, Json(json!({"message": said}))).into_response(),
        Ok(Err(why)) => refuse(StatusCode::CONFLICT, why),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// What `gantry approve/reject` sends: who (as for the API: the holder's config judges the
/// token), which decision, and its comment or reason.
#[derive(serde::Serialize, Deserialize)]
pub struct DecisionAsk {
    #[serde(flatten)]
    pub who: Asker,
    pub kind: crate::approval::DecisionKind,
    #[serde(default)]
    pub comment: Option<String>,
}

async fn decide(State(h): State<Holder>, UrlPath(id): UrlPath<String>, Json(ask): Json<DecisionAsk>) -> Response {
    let refuse = |status: StatusCode, e: String| (status, Json(json!({"error": e}))).into_response();
    let Some((steering, decider)) = h.steering.as_ref().and_then(|s| s.decide.clone().map(|d| (s, d))) else {
        return refuse(StatusCode::from_u16(NOT_TAKEN).expect("a valid status"), "this process takes no decisions".into());
    };
    // The same rules as `gantry approve` on its own: a token where the config has them.
    let login = crate::config::identity::os_login();
    let user = match steering.config.identify(ask.who.claimed.as_deref(), ask.who.token.as_deref(), login.as_deref()) {
        Ok(id) => id.user,
        Err(e) => return refuse(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    match decider(Decision { run: id, user, kind: ask.kind, comment: ask.comment }).await {
        Ok(said) => (StatusCode::OK, Json(json!({"message": said}))).into_response(),
        Err((status, why)) => refuse(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT), why),
    }
}

/// Why the holder did not record a decision.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteRefusal {
    /// The holder takes no decisions (it drives a single run, not a service).
    #[error("the process holding the data dir takes no decisions")]
    NotTaken,
    #[error("{0}")]
    Refused(String),
}

/// Why the holder did not do what was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot ask the gantry process holding the data dir: {0}")]
    Unreachable(#[from] std::io::Error),
    /// It answered, and said no (the run is not its, or not running, or the asker may not).
    #[error("{0}")]
    Refused(String),
}

/// The status the socket answers a decision with when its process takes none: distinct
/// from every refusal a decision itself can meet (those use the API's statuses).
const NOT_TAKEN: u16 = 501;

/// The read side of a data dir another process holds, through its socket.
pub struct Remote {
    path: PathBuf,
}

impl Remote {
    /// The holder's socket, if it answers.
    pub fn connect(data_dir: &Path) -> Option<Remote> {
        let path = socket_path(data_dir);
        UnixStream::connect(&path).ok()?;
        Some(Remote { path })
    }

    /// Asks the holder to cancel run `query` (id, prefix or `latest`) as `who`: its
    /// answer, or why not.
    pub fn cancel(&self, query: &str, who: &Asker) -> Result<String, RemoteError> {
        let body = serde_json::to_string(who).unwrap_or_default();
        let (status, answer) = self.request("POST", &format!("/runs/{}/cancel", enc(query)), &body)?;
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        match status {
            202 => Ok(value["message"].as_str().unwrap_or("cancelling").to_string()),
            _ => Err(RemoteError::Refused(value["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("status {status}")))),
        }
    }

    /// Asks the holder to record a decision on run `query`'s promotion: its answer, why
    /// not, or that this holder takes no decisions (a `gantry run`: the decision is then
    /// the asker's to record once the data dir is free).
    pub fn decide(&self, query: &str, ask: &DecisionAsk) -> Result<String, RemoteRefusal> {
        let body = serde_json::to_string(ask).unwrap_or_default();
        let (status, answer) = self.request("POST", &format!("/runs/{}/decide", enc(query)), &body).map_err(|e| RemoteRefusal::Refused(e.to_string()))?;
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        match status {
            200 => Ok(value["message"].as_str().unwrap_or("recorded").to_string()),
            NOT_TAKEN => Err(RemoteRefusal::NotTaken),
            _ => Err(RemoteRefusal::Refused(value["error"].as_str().map(str::to_string).unwrap_or_else(|| format!("status {status}")))),
        }
    }

    fn request(&self, method: &str, target: &str, body: &str) -> std::io::Result<(u16, String)> {
        let mut stream = UnixStream::connect(&self.path)?;
        write!(
            stream,
            "{method} {target} HTTP/1.0\r\nHost: gantry\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Ok((status, rest.to_string()))
    }

    fn get<T: serde::de::DeserializeOwned>(&self, target: &str) -> Result<T, StoreError> {
        let io = |e: std::io::Error| StoreError::Io { path: self.path.clone(), source: e };
        let mut stream = UnixStream::connect(&self.path).map_err(io)?;
        write!(stream, "GET {target} HTTP/1.0\r\nHost: gantry\r\n\r\n").map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let corrupt = |source| StoreError::Corrupt { key: format!("control.sock {target}"), source };
        if status != 200 {
            let message = serde_json::from_str::<serde_json::Value>(body).ok().and_then(|v| v["error"].as_str().map(str::to_string));
            let message = message.unwrap_or_else(|| format!("status {status}"));
            return Err(match status {
                404 => StoreError::NoSuchRun(target.rsplit('/').next().unwrap_or(target).to_string()),
                _ => StoreError::Io { path: self.path.clone(), source: std::io::Error::other(message) },
            });
        }
        serde_json::from_str(body).map_err(corrupt)
    }
}

/// A path segment or query value, percent-encoded.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

impl ReadHistory for Remote {
    fn list_runs(&self, limit: usize) -> Result<Vec<RunRecord>, StoreError> {
        self.get(&format!("/runs?limit={limit}"))
    }
    fn find_run(&self, query: &str) -> Result<RunRecord, StoreError> {
        self.get(&format!("/runs/{}", enc(query)))
    }
    fn logs(&self, run_id: &str, stage: Option<&str>) -> Result<Vec<LogLine>, StoreError> {
        let target = match stage {
            Some(s) => format!("/runs/{}/logs?stage={}", enc(run_id), enc(s)),
            None => format!("/runs/{}/logs", enc(run_id)),
        };
        let page: serde_json::Value = self.get(&target)?;
        serde_json::from_value(page["lines"].clone()).map_err(|source| StoreError::Corrupt { key: target, source })
    }
    fn logs_after(&self, run_id: &str, after: Option<&[u8]>) -> Result<(Vec<LogLine>, Option<Cursor>), StoreError> {
        let mut target = format!("/runs/{}/logs", enc(run_id));
        if let Some(a) = after {
            target.push_str(&format!("?after={}", hex::encode(a)));
        }
        let page: serde_json::Value = self.get(&target)?;
        let lines = serde_json::from_value(page["lines"].clone()).map_err(|source| StoreError::Corrupt { key: target.clone(), source })?;
        let next = page["next"].as_str().and_then(|n| hex::decode(n).ok());
        Ok((lines, next))
    }
    fn pending_approvals(&self) -> Result<Vec<RunRecord>, StoreError> {
        self.get("/approvals")
    }
    fn deployments(&self, environment: Option<&str>) -> Result<Vec<Deployment>, StoreError> {
        match environment {
            Some(e) => self.get(&format!("/deployments?env={}", enc(e))),
            None => self.get("/deployments"),
        }
    }
}
