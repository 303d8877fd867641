//! `POST /hooks/{github|gitlab|gitea}`: a push from a forge. The delivery must carry a
//! valid signature for a project that follows that repository, or it gets 401 and starts
//! nothing; a push to a followed branch queues a run for its new head.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use super::extract::{Path, RawBody};
use super::webhook::{self, Forge, HookError, Push};
use super::{ApiError, AppState};
use crate::coordinator::{Source, TriggerRequest};

pub async fn push(State(s): State<AppState>, Path(forge): Path<String>, headers: HeaderMap, RawBody(body): RawBody) -> Result<(StatusCode, Json<Value>), ApiError> {
    let forge = Forge::from_path(&forge).ok_or_else(|| ApiError::NotFound(format!("no webhook for `{forge}` (github, gitlab, gitea)")))?;
    let header = forge.signature_header();
    if !headers.contains_key(header) {
        return Err(hook_error(HookError::MissingSignature { header }));
    }
    // The payload is not trusted before a signature checks out; it only says which
    // projects' secrets to try.
    let claimed = match webhook::parse_push(forge, &headers, &body) {
        Ok(p) => Some(p),
        Err(HookError::NotAPush { .. }) => None,
        Err(e) => return Err(hook_error(e)),
    };
    let mut verified = Vec::new();
    for (name, secret) in s.hook_secrets.iter() {
        let project = &s.coord.config.projects[name];
        let names_it = match &claimed {
            Some(p) => follows(name, project, p),
            None => true,
        };
        if names_it && webhook::verify(forge, &headers, &body, secret.as_bytes()).is_ok() {
            verified.push(name.clone());
        }
    }
    if verified.is_empty() {
        return Err(hook_error(HookError::BadSignature));
    }
    let Some(push) = claimed else {
        let event = webhook::event(forge, &headers).unwrap_or_default();
        return Ok((StatusCode::OK, Json(json!({"ignored": format!("event {event:?} is not a push")}))));
    };
    let mut results = Vec::new();
    for project in verified {
        let outcome = match (&push.branch, push.deleted) {
            (_, true) => json!({"outcome": "ignored", "reason": "a deleted branch has nothing to run"}),
            (None, _) => json!({"outcome": "ignored", "reason": "projects follow branches, not tags"}),
            (Some(branch), false) => {
                let req = TriggerRequest {
                    rev: Some(push.after.clone()),
                    branch: Some(branch.clone()),
                    source: Source::Webhook { forge },
                    by: push.pusher.clone(),
                    pusher: push.pusher.clone().map(|login| crate::store::Pusher { forge: forge.name().to_string(), login }),
                    force: false,
                };
                json!(s.coord.trigger(&project, req).await?)
            }
        };
        results.push(json!({"project": project, "result": outcome}));
    }
    Ok((StatusCode::ACCEPTED, Json(json!(results))))
}

/// Whether the push's repository is the one `project` follows: the configured forge name
/// (`webhook.repository`), else the project's repo URL or, failing both, its name.
fn follows(name: &str, project: &crate::config::Project, push: &Push) -> bool {
    let repo = &push.repository;
    if let Some(full) = project.webhook.as_ref().and_then(|w| w.repository.as_ref()) {
        return repo.full_name.as_deref().is_some_and(|f| f.eq_ignore_ascii_case(full));
    }
    if repo.urls.iter().any(|u| u.trim_end_matches('/') == project.repo.trim_end_matches('/')) {
        return true;
    }
    repo.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(name))
}

fn hook_error(e: HookError) -> ApiError {
    match e.status() {
        StatusCode::UNAUTHORIZED => ApiError::BadSignature(e.to_string()),
        _ => ApiError::BadRequest(e.to_string()),
    }
}
