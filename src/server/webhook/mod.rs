//! Push webhooks from GitHub, GitLab and Gitea: each forge's signature checked in constant
//! time against the project's secret (`signature`), then its push payload parsed into one
//! [`Push`] (`payload`).

use axum::http::StatusCode;
use serde::Serialize;

mod payload;
mod signature;
#[cfg(test)]
mod tests;

pub use crate::forge::Forge;
pub use payload::{event, parse_push};
pub use signature::verify;

/// The names by which the pushed repository may be known, to match against configured projects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Repository {
    /// `owner/name` (GitHub, Gitea `full_name`; GitLab `path_with_namespace`).
    pub full_name: Option<String>,
    pub name: Option<String>,
    /// Every clone and web URL the forge sent, in the forge's order, without duplicates.
    pub urls: Vec<String>,
}

/// One push, whichever forge sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Push {
    pub forge: Forge,
    pub repository: Repository,
    /// From `refs/heads/X`; None for tags and other refs.
    pub branch: Option<String>,
    /// From `refs/tags/X`.
    pub tag: Option<String>,
    /// The new head: 40 hex digits (64 in a SHA-256 repository), lowercase.
    pub after: String,
    /// The ref was deleted (`after` is all zeros); there is nothing to build.
    pub deleted: bool,
    /// Who pushed, if the payload says.
    pub pusher: Option<String>,
}

/// Why a webhook was not accepted. The messages go into HTTP responses, so none of them
/// includes the secret or the signature we expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    #[error("missing {header} header")]
    MissingSignature { header: &'static str },
    #[error("webhook signature does not match")]
    BadSignature,
    #[error("event {event:?} is not a push; ignored")]
    NotAPush { event: String },
    #[error("bad webhook payload: {0}")]
    BadPayload(String),
}

impl HookError {
    /// The HTTP status to answer with. `NotAPush` is 200: the forge did nothing wrong
    /// (GitHub sends `ping` when a hook is created and shows anything else as a failure).
    pub fn status(&self) -> StatusCode {
        match self {
            HookError::MissingSignature { .. } | HookError::BadSignature => {
                StatusCode::UNAUTHORIZED
            }
            HookError::NotAPush { .. } => StatusCode::OK,
            HookError::BadPayload(_) => StatusCode::BAD_REQUEST,
        }
    }
}
