//! Errors of the smoke library. Check failures are *not* errors: they end up in the
//! report. These are the cases where no meaningful run can happen at all.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SmokeError {
    #[error("cannot read spec {path}: {source}")]
    ReadSpec { path: PathBuf, source: std::io::Error },
    #[error("invalid spec JSON: {0}")]
    ParseSpec(#[from] serde_json::Error),
    /// A spec that parses but cannot be run as written; `at` locates the field.
    #[error("invalid spec at {at}: {reason}")]
    InvalidSpec { at: String, reason: String },
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot build HTTP client: {0}")]
    Client(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

impl SmokeError {
    pub(crate) fn invalid(at: impl Into<String>, reason: impl Into<String>) -> Self {
        SmokeError::InvalidSpec { at: at.into(), reason: reason.into() }
    }
}
