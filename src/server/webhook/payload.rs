//! Each forge's push payload, parsed into one [`Push`].

use axum::http::HeaderMap;
use serde::Deserialize;

use super::{Forge, HookError, Push, Repository};

/// The event the forge says this delivery is, from its event header.
pub fn event(forge: Forge, headers: &HeaderMap) -> Option<String> {
    headers
        .get(forge.event_header())
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
}

/// Parses a push delivery. Any other event (GitHub's `ping`, GitLab's `Merge Request Hook`...)
/// is `NotAPush`; call [`verify`] first, this does not.
pub fn parse_push(forge: Forge, headers: &HeaderMap, body: &[u8]) -> Result<Push, HookError> {
    let event = event(forge, headers)
        .ok_or_else(|| HookError::BadPayload(format!("missing {} header", forge.event_header())))?;
    if !forge.is_push_event(&event) {
        return Err(HookError::NotAPush { event });
    }
    match forge {
        Forge::GitHub | Forge::Gitea => parse_hub_push(forge, body),
        Forge::GitLab => parse_gitlab_push(body),
    }
}

/// GitHub's push payload; Gitea sends the same shape (its pusher has `login`/`username`).
#[derive(Deserialize)]
struct HubPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: String,
    #[serde(default)]
    deleted: bool,
    repository: HubRepository,
    pusher: Option<HubUser>,
    sender: Option<HubUser>,
}

#[derive(Deserialize)]
struct HubRepository {
    full_name: Option<String>,
    name: Option<String>,
    clone_url: Option<String>,
    ssh_url: Option<String>,
    html_url: Option<String>,
    git_url: Option<String>,
}

#[derive(Deserialize)]
struct HubUser {
    login: Option<String>,
    username: Option<String>,
    /// GitHub's `pusher.name` is the login (the display name is not sent).
    name: Option<String>,
}

impl HubUser {
    fn handle(self) -> Option<String> {
        non_empty(self.login)
            .or(non_empty(self.username))
            .or(non_empty(self.name))
    }
}

pub(super) fn parse_hub_push(forge: Forge, body: &[u8]) -> Result<Push, HookError> {
    let payload: HubPush = from_json(body)?;
    let repo = payload.repository;
    let repository = repository(
        repo.full_name,
        repo.name,
        [repo.clone_url, repo.ssh_url, repo.html_url, repo.git_url],
    )?;
    let after = object_id(&payload.after)?;
    let pusher = payload
        .pusher
        .and_then(HubUser::handle)
        .or_else(|| payload.sender.and_then(HubUser::handle));
    Ok(push(
        forge,
        repository,
        &payload.git_ref,
        after,
        payload.deleted,
        pusher,
    ))
}

#[derive(Deserialize)]
struct GitLabPush {
    #[serde(rename = "ref")]
    git_ref: String,
    after: Option<String>,
    checkout_sha: Option<String>,
    user_username: Option<String>,
    project: Option<GitLabProject>,
    /// Older GitLab sent the URLs here; current GitLab still does, alongside `project`.
    repository: Option<GitLabRepository>,
}

#[derive(Deserialize)]
struct GitLabProject {
    path_with_namespace: Option<String>,
    name: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    web_url: Option<String>,
    http_url: Option<String>,
    ssh_url: Option<String>,
}

#[derive(Deserialize)]
struct GitLabRepository {
    name: Option<String>,
    git_http_url: Option<String>,
    git_ssh_url: Option<String>,
    homepage: Option<String>,
    url: Option<String>,
}

pub(super) fn parse_gitlab_push(body: &[u8]) -> Result<Push, HookError> {
    let payload: GitLabPush = from_json(body)?;
    let project = payload.project;
    let repo = payload.repository;
    let (full_name, project_name, project_urls) = match project {
        Some(p) => (
            p.path_with_namespace,
            p.name,
            [
                p.git_http_url,
                p.git_ssh_url,
                p.web_url,
                p.http_url,
                p.ssh_url,
            ],
        ),
        None => (None, None, Default::default()),
    };
    let (repo_name, repo_urls) = match repo {
        Some(r) => (r.name, [r.git_http_url, r.git_ssh_url, r.homepage, r.url]),
        None => (None, Default::default()),
    };
    let repository = repository(
        full_name,
        non_empty(project_name).or(repo_name),
        project_urls.into_iter().chain(repo_urls),
    )?;
    let after = non_empty(payload.after)
        .or(non_empty(payload.checkout_sha))
        .ok_or_else(|| HookError::BadPayload("missing field `after`".into()))?;
    let after = object_id(&after)?;
    Ok(push(
        Forge::GitLab,
        repository,
        &payload.git_ref,
        after,
        false,
        non_empty(payload.user_username),
    ))
}

pub(super) fn from_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, HookError> {
    serde_json::from_slice(body).map_err(|e| HookError::BadPayload(e.to_string()))
}

pub(super) fn push(
    forge: Forge,
    repository: Repository,
    git_ref: &str,
    after: String,
    deleted: bool,
    pusher: Option<String>,
) -> Push {
    let short = |prefix: &str| {
        git_ref
            .strip_prefix(prefix)
            .filter(|name| !name.is_empty())
            .map(str::to_string)
    };
    let deleted = deleted || after.bytes().all(|b| b == b'0');
    Push {
        forge,
        repository,
        branch: short("refs/heads/"),
        tag: short("refs/tags/"),
        after,
        deleted,
        pusher,
    }
}

pub(super) fn repository(
    full_name: Option<String>,
    name: Option<String>,
    urls: impl IntoIterator<Item = Option<String>>,
) -> Result<Repository, HookError> {
    let mut unique: Vec<String> = Vec::new();
    for url in urls.into_iter().flatten() {
        if !url.is_empty() && !unique.contains(&url) {
            unique.push(url);
        }
    }
    let repository = Repository {
        full_name: non_empty(full_name),
        name: non_empty(name),
        urls: unique,
    };
    if repository.full_name.is_none() && repository.name.is_none() && repository.urls.is_empty() {
        return Err(HookError::BadPayload("payload names no repository".into()));
    }
    Ok(repository)
}

/// A commit id as the forge sent it, lowercased: SHA-1 (40 hex) or SHA-256 (64 hex).
pub(super) fn object_id(sha: &str) -> Result<String, HookError> {
    if matches!(sha.len(), 40 | 64) && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha.to_ascii_lowercase())
    } else {
        // Not echoed: it is the sender's text and goes into the response.
        Err(HookError::BadPayload(
            "`after` is not a 40-hex commit id".into(),
        ))
    }
}

pub(super) fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}
