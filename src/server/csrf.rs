//! Whether a state-changing request from a browser (sign-in, sign-out, approve, reject) is
//! the dashboard's own. Browsers do not separate cookies by port: every app Gantry deploys
//! on `127.0.0.1:<port>`, and any other service on the dashboard's host, receives the
//! dashboard's session cookie and can post forms to it. Two checks, both required:
//!
//! 1. **Same origin.** `Sec-Fetch-Site`, when the browser sends it, must be `same-origin`,
//!    and an `Origin` must be the dashboard's own (scheme, host and port). This stops a
//!    page of another origin from posting through a signed-in browser (a page on another
//!    port of the same host is `same-site`, not `same-origin`). Outside a browser both
//!    headers are forgeable, so this check alone is not enough.
//! 2. **A CSRF token bound to the session**, in the form's `csrf` field. It is handed out
//!    once, in the response to `POST /login`, which only someone holding the raw token can
//!    obtain; the page's script keeps it in `localStorage`, which is scoped by origin
//!    (port included, unlike cookies), and adds it to the dashboard's forms. No page a
//!    cookie-only GET returns contains it, and the store keeps only its hash: a captured
//!    cookie, replayed from a server with any headers it likes, cannot make a decision.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::auth::{self, NoSession, Visitor};
use super::AppState;

/// Why a browser's state-changing request was refused (403, and nothing changed).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("it was sent from another site or port (Sec-Fetch-Site: {0}), not from the dashboard's own page")]
    FetchSite(String),
    #[error("it names neither Sec-Fetch-Site nor an Origin, one of which a browser sends with every form it posts")]
    NoOrigin,
    #[error("it was sent from {origin}, not from the dashboard's own origin {expected}")]
    OtherOrigin { origin: String, expected: String },
    #[error("it carries no CSRF token: this browser holds none for its session; sign in again")]
    NoToken,
    #[error("its CSRF token is not this session's; sign in again")]
    WrongToken,
    #[error("{0}; sign in again")]
    NoSession(String),
}

/// The origin a browser shows the dashboard at, as this request addressed it.
fn own_origin(parts: &Parts, secure: bool) -> Option<String> {
    let host = match parts.headers.get(header::HOST) {
        Some(h) => h.to_str().ok()?.to_string(),
        // HTTP/2 names the host in the request's authority instead.
        None => parts.uri.authority()?.to_string(),
    };
    Some(format!("{}://{}", if secure { "https" } else { "http" }, host.to_ascii_lowercase()))
}

/// Check 1: the request comes from a page of `expected` (the dashboard's origin).
///
/// `Sec-Fetch-Site`, which a page's script cannot set, decides when the browser sends it
/// (all current ones do). The dashboard's `Referrer-Policy: no-referrer` makes browsers
/// send `Origin: null` with its own form posts, so a null Origin is taken only beside
/// `Sec-Fetch-Site: same-origin`; any other Origin must be the dashboard's. A browser
/// without fetch metadata must name the dashboard's origin itself.
pub fn same_origin(headers: &HeaderMap, expected: Option<&str>) -> Result<(), Refused> {
    let site = headers.get("sec-fetch-site").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(site) = site.as_deref().filter(|s| *s != "same-origin") {
        return Err(Refused::FetchSite(site.to_string()));
    }
    let origin = headers.get(header::ORIGIN).map(|o| String::from_utf8_lossy(o.as_bytes()).to_ascii_lowercase());
    let expected = expected.unwrap_or("(unknown: the request names no host)");
    match origin.filter(|o| o != "null") {
        Some(origin) if origin != expected => Err(Refused::OtherOrigin { origin, expected: expected.to_string() }),
        Some(_) => Ok(()),
        None if site.is_some() => Ok(()),
        None => Err(Refused::NoOrigin),
    }
}

fn check_origin(parts: &Parts, state: &AppState) -> Result<(), Refused> {
    same_origin(&parts.headers, own_origin(parts, state.secure()).as_deref())
}

/// The 403 a refused request gets: a page saying why, and that nothing was done.
pub fn refusal(why: &Refused) -> Response {
    let message = format!("Nothing was done: {why}.");
    let back = if matches!(why, Refused::NoToken | Refused::WrongToken | Refused::NoSession(_)) { "/login" } else { "/" };
    (StatusCode::FORBIDDEN, super::pages::notice(None, "Refused", &message, back)).into_response()
}

/// A form posted from a page of the dashboard's own origin (check 1 only): sign-in, which
/// has no session yet.
pub struct SameOrigin;

impl FromRequestParts<AppState> for SameOrigin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        check_origin(parts, state).map_err(|e| refusal(&e))?;
        Ok(SameOrigin)
    }
}

/// A form `T` posted by a signed-in visitor from the dashboard's own page: same origin,
/// a live session, and that session's CSRF token, checked in this order before the form
/// reaches its handler.
pub struct Posted<T> {
    pub visitor: Visitor,
    pub form: T,
}

/// The form's fields with the token beside them.
#[derive(Deserialize)]
struct WithToken<T> {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(flatten)]
    form: T,
}

/// Check 2, on a parsed form: its token is the session's.
fn token_is_the_sessions(visitor: &Visitor, presented: Option<&str>) -> Result<(), Refused> {
    match presented.map(str::trim).filter(|t| !t.is_empty()) {
        None => Err(Refused::NoToken),
        Some(t) if visitor.session.csrf_matches(t) => Ok(()),
        Some(_) => Err(Refused::WrongToken),
    }
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        check_origin(&parts, state).map_err(|e| refusal(&e))?;
        let visitor = match auth::visitor(&parts.headers, state) {
            Ok(v) => v,
            Err(NoSession::Store(message)) => return Err(super::ApiError::Internal(message).into_response()),
            Err(e) => return Err(refusal(&Refused::NoSession(e.to_string()))),
        };
        let Form(WithToken { csrf, form }) = Form::<WithToken<T>>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        token_is_the_sessions(&visitor, csrf.as_deref()).map_err(|e| refusal(&e))?;
        Ok(Posted { visitor, form })
    }
}

/// A form with no fields of its own (sign-out).
#[derive(Deserialize)]
pub struct NoFields {}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const DASHBOARD: Option<&str> = Some("http://127.0.0.1:8787");

    #[test]
    fn a_form_of_the_dashboards_own_page_passes() {
        // Chromium posting a form of a page served with `Referrer-Policy: no-referrer`.
        let own = headers(&[("origin", "null"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(same_origin(&own, DASHBOARD), Ok(()));
        let named = headers(&[("origin", "http://127.0.0.1:8787"), ("sec-fetch-site", "same-origin")]);
        assert_eq!(same_origin(&named, DASHBOARD), Ok(()));
        let older_browser = headers(&[("origin", "http://127.0.0.1:8787")]);
        assert_eq!(same_origin(&older_browser, DASHBOARD), Ok(()), "no Sec-Fetch-Site: Origin decides");
    }

    #[test]
    fn a_page_on_another_port_of_the_same_host_is_refused() {
        // What Chromium sends for a form auto-submitted by an app on 127.0.0.1:18081.
        let app = headers(&[("origin", "http://127.0.0.1:18081"), ("sec-fetch-site", "same-site")]);
        assert_eq!(same_origin(&app, DASHBOARD), Err(Refused::FetchSite("same-site".into())));
        let hiding_its_origin = headers(&[("origin", "null"), ("sec-fetch-site", "same-site")]);
        assert_eq!(same_origin(&hiding_its_origin, DASHBOARD), Err(Refused::FetchSite("same-site".into())));
        let no_fetch_metadata = headers(&[("origin", "http://127.0.0.1:18081")]);
        let err = same_origin(&no_fetch_metadata, DASHBOARD).unwrap_err();
        assert_eq!(err.to_string(), "it was sent from http://127.0.0.1:18081, not from the dashboard's own origin http://127.0.0.1:8787");
        let https = headers(&[("origin", "https://127.0.0.1:8787"), ("sec-fetch-site", "same-origin")]);
        assert!(same_origin(&https, DASHBOARD).is_err(), "the scheme is part of the origin");
    }

    #[test]
    fn no_origin_a_null_origin_or_a_cross_site_fetch_is_refused() {
        assert_eq!(same_origin(&HeaderMap::new(), DASHBOARD), Err(Refused::NoOrigin));
        assert_eq!(same_origin(&headers(&[("origin", "null")]), DASHBOARD), Err(Refused::NoOrigin), "null without fetch metadata");
        for site in ["cross-site", "none", "same-site"] {
            let h = headers(&[("origin", "http://127.0.0.1:8787"), ("sec-fetch-site", site)]);
            assert_eq!(same_origin(&h, DASHBOARD), Err(Refused::FetchSite(site.into())), "{site}");
        }
        let h = headers(&[("origin", "http://127.0.0.1:8787")]);
        assert!(matches!(same_origin(&h, None), Err(Refused::OtherOrigin { .. })), "a request naming no host matches nothing");
    }

    async fn form<T: DeserializeOwned + Send + 'static>(body: &'static str) -> WithToken<T> {
        let req = Request::builder()
            .method("POST")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        Form::<WithToken<T>>::from_request(req, &()).await.map(|f| f.0).map_err(|e| e.body_text()).unwrap()
    }

    #[tokio::test]
    async fn the_token_travels_beside_the_forms_own_fields() {
        #[derive(Deserialize)]
        struct Decision {
            comment: Option<String>,
        }
        let parsed = form::<Decision>("comment=looks+good&csrf=abc").await;
        assert_eq!((parsed.csrf.as_deref(), parsed.form.comment.as_deref()), (Some("abc"), Some("looks good")));
        assert_eq!(form::<NoFields>("").await.csrf, None);
    }
}
