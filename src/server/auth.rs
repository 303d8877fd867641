//! Who is calling: a bearer token (API) or the dashboard's session cookie, matched against
//! the hashed tokens of the operator's config; and whether their role allows the call.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

use super::{ApiError, AppState};
use crate::config::{Role, User};

/// The dashboard keeps the user's token in this cookie (HttpOnly, SameSite=Strict).
pub const COOKIE: &str = "gantry_token";

/// An API caller with a valid token.
pub struct Caller(pub User);

/// A dashboard visitor with a valid session; others are sent to the sign-in page.
pub struct Visitor(pub User);

fn token(parts: &Parts) -> Option<String> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return auth.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    cookie(parts, COOKIE)
}

pub fn cookie(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn user_of(parts: &Parts, state: &AppState) -> Option<User> {
    let token = token(parts)?;
    state.coord.config.user_by_token(&token).cloned()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        user_of(parts, state).map(Caller).ok_or(ApiError::Unauthorized)
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        user_of(parts, state).map(Visitor).ok_or_else(|| Redirect::to("/login").into_response())
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

