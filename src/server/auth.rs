//! Who is calling. The API takes a bearer token and nothing else: the dashboard's session
//! cookie is sent by browsers to every port of the host (so to every app Gantry deploys on
//! 127.0.0.1), and a cookie alone must not be able to call the API. The dashboard takes
//! its session cookie: an opaque id of a session kept in the store (`store::sessions`),
//! never the token; a session ends at sign-out, at its expiry, when its user leaves the
//! config, or when the user's token there changes.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Redirect, Response};

use super::{ApiError, AppState};
use crate::config::{Role, User};
use crate::store::sessions::Session;

/// The session cookie over HTTP.
pub const SESSION_COOKIE: &str = "gantry_session";
/// The session cookie over HTTPS: the `__Host-` prefix makes the browser keep it only if
/// it is `Secure`, for `Path=/`, and for this host alone (no `Domain`).
pub const SECURE_SESSION_COOKIE: &str = "__Host-gantry_session";
/// The cookie of Gantry versions that kept the raw token in it: cleared wherever seen.
pub const LEGACY_COOKIE: &str = "gantry_token";

/// An API caller with a valid bearer token.
pub struct Caller(pub User);

/// A dashboard visitor with a live session; others are sent to the sign-in page.
pub struct Visitor {
    pub user: User,
    pub session: Session,
    /// The session's id, as the cookie holds it (for sign-out).
    pub id: String,
}

/// The session cookie's name when the service serves HTTPS (`secure`) or not.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// `Set-Cookie` for a new session: HttpOnly (no script reads it), SameSite=Strict, for the
/// whole dashboard, `Secure` over HTTPS; it lasts as long as the session.
pub fn session_cookie(id: &str, secure: bool, max_age: std::time::Duration) -> String {
    let secure_attr = if secure { "; Secure" } else { "" };
    format!("{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure_attr}", cookie_name(secure), max_age.as_secs())
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session_cookie(secure: bool) -> String {
    session_cookie("", secure, std::time::Duration::ZERO)
}

/// `Set-Cookie` that removes a legacy `gantry_token` cookie (it held a raw token).
pub fn clear_legacy_cookie() -> String {
    format!("{LEGACY_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn bearer(parts: &Parts) -> Option<&str> {
    let auth = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    auth.strip_prefix("Bearer ").map(str::trim)
}

/// What ties a session to the token it was opened with: a hash of the user's
/// `token_sha256` (none for a user without a token, who cannot sign in).
pub fn token_binding(user: &User) -> Option<String> {
    use sha2::Digest;
    let hash = user.token_sha256.as_deref()?.to_ascii_lowercase();
    Some(hex::encode(sha2::Sha256::digest(format!("gantry-session\0{hash}").as_bytes())))
}

/// Why a request has no dashboard session.
#[derive(Debug, thiserror::Error)]
pub enum NoSession {
    #[error("you are not signed in")]
    Missing,
    #[error("your session has ended (it expired, you signed out, or your token changed)")]
    Ended,
    #[error("the session store cannot be read: {0}")]
    Store(String),
}

/// The visitor whose session cookie this request carries.
pub fn visitor(headers: &HeaderMap, state: &AppState) -> Result<Visitor, NoSession> {
    let secure = state.secure();
    let id = cookie(headers, cookie_name(secure)).ok_or(NoSession::Missing)?;
    let session = state
        .coord
        .store
        .sessions()
        .get(&id, chrono::Utc::now())
        .map_err(|e| NoSession::Store(e.to_string()))?
        .ok_or(NoSession::Ended)?;
    let user = state.coord.config.users.get(&session.user).ok_or(NoSession::Ended)?;
    let bound = token_binding(user).is_some_and(|b| {
        use subtle::ConstantTimeEq;
        bool::from(b.as_bytes().ct_eq(session.token_binding.as_bytes()))
    });
    if !bound {
        return Err(NoSession::Ended);
    }
    Ok(Visitor { user: user.clone(), session, id })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        state.coord.config.user_by_token(token).cloned().map(Caller).ok_or(ApiError::Unauthorized)
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match visitor(&parts.headers, state) {
            Ok(v) => Ok(v),
            Err(NoSession::Store(message)) => Err(ApiError::Internal(message).into_response()),
            // A cookie that names no live session is removed as the browser is sent on.
            Err(NoSession::Ended) => Err(([(header::SET_COOKIE, clear_session_cookie(state.secure()))], Redirect::to("/login")).into_response()),
            Err(NoSession::Missing) => Err(Redirect::to("/login").into_response()),
        }
    }
}

impl Caller {
    /// 403 unless the caller's role covers `needed`.
    pub fn require(&self, needed: Role) -> Result<&User, ApiError> {
        if self.0.role.covers(needed) {
            Ok(&self.0)
        } else {
            Err(ApiError::Forbidden(format!("{} ({}) may not do this: it needs the role {needed}", self.0.name, self.0.role)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_for_the_whole_dashboard_and_secure_over_https() {
        let id = "ab".repeat(32);
        let plain = session_cookie(&id, false, std::time::Duration::from_secs(43_200));
        assert_eq!(plain, format!("gantry_session={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"));
        let tls = session_cookie(&id, true, std::time::Duration::from_secs(60));
        assert_eq!(tls, format!("__Host-gantry_session={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"));
        assert!(clear_session_cookie(true).starts_with("__Host-gantry_session=; ") && clear_session_cookie(true).contains("Max-Age=0"));
    }

    #[test]
    fn a_cookie_is_found_by_its_exact_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, "cart=1; gantry_session_x=no".parse().unwrap());
        headers.append(header::COOKIE, "gantry_session=yes".parse().unwrap());
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("yes"));
        assert_eq!(cookie(&headers, SECURE_SESSION_COOKIE), None);
    }

    #[test]
    fn a_session_is_bound_to_the_users_token_as_the_config_holds_it() {
        let binding = |users: &str| {
            let config = crate::config::Config::parse(std::path::Path::new("t.yml"), &format!("users:\n{users}")).unwrap();
            token_binding(config.users.values().next().unwrap())
        };
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let rita = binding(&format!("  rita: {{role: release-manager, token_sha256: {a}}}\n"));
        assert!(rita.is_some());
        assert_eq!(rita, binding(&format!("  rita: {{role: release-manager, token_sha256: {}}}\n", a.to_uppercase())), "the hash's case does not matter");
        assert_ne!(rita, binding(&format!("  rita: {{role: release-manager, token_sha256: {b}}}\n")), "a new token, a new binding");
        assert_eq!(binding("  vic: {role: viewer}\n"), None);
    }
}
