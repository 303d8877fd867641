//! Each forge's proof that a delivery comes from someone who knows the project's secret,
//! checked in constant time: GitHub's and Gitea's HMAC-SHA256 of the body, GitLab's token.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Forge, HookError};

/// How each forge signs its deliveries.
impl Forge {
    /// The header that carries the signature (GitHub, Gitea) or the token (GitLab).
    pub fn signature_header(self) -> &'static str {
        match self {
            Forge::GitHub => "X-Hub-Signature-256",
            Forge::GitLab => "X-Gitlab-Token",
            Forge::Gitea => "X-Gitea-Signature",
        }
    }

    /// The header that names the event (`push`, `ping`, `Push Hook`...).
    pub fn event_header(self) -> &'static str {
        match self {
            Forge::GitHub => "X-GitHub-Event",
            Forge::GitLab => "X-Gitlab-Event",
            Forge::Gitea => "X-Gitea-Event",
        }
    }

    pub(super) fn is_push_event(self, event: &str) -> bool {
        match self {
            Forge::GitHub | Forge::Gitea => event == "push",
            Forge::GitLab => event == "Push Hook" || event == "Tag Push Hook",
        }
    }
}

/// Checks that the request was sent by someone who knows `secret`:
/// GitHub `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`,
/// Gitea `X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>`,
/// GitLab `X-Gitlab-Token: <secret>`. An empty secret verifies nothing.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secret: &[u8],
) -> Result<(), HookError> {
    // HMAC with an empty key is well defined and anyone can compute it: a project whose
    // secret is unset must not be triggerable by anyone.
    if secret.is_empty() {
        return Err(HookError::BadSignature);
    }
    let header = forge.signature_header();
    let value = headers
        .get(header)
        .ok_or(HookError::MissingSignature { header })?
        .as_bytes();
    match forge {
        Forge::GitHub => {
            let hex = value
                .strip_prefix(b"sha256=")
                .ok_or(HookError::BadSignature)?;
            verify_hmac(secret, body, hex)
        }
        Forge::Gitea => verify_hmac(secret, body, value),
        Forge::GitLab => verify_token(secret, value),
    }
}

pub(super) fn verify_hmac(secret: &[u8], body: &[u8], hex_signature: &[u8]) -> Result<(), HookError> {
    let signature = hex::decode(hex_signature).map_err(|_| HookError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| HookError::BadSignature)?;
    mac.update(body);
    // Constant time; a wrong length (public: it is the header's) is rejected up front.
    mac.verify_slice(&signature)
        .map_err(|_| HookError::BadSignature)
}

/// GitLab sends the secret itself. Comparing digests keeps the comparison constant-time
/// and fixed-length, so the time taken reveals neither the secret's bytes nor its length.
pub(super) fn verify_token(secret: &[u8], token: &[u8]) -> Result<(), HookError> {
    let expected = Sha256::digest(secret);
    let given = Sha256::digest(token);
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(HookError::BadSignature)
    }
}
