//! The headers every response carries, so that a page of the dashboard cannot be framed,
//! sniffed into something else, made to run script it did not ship, or leak its URLs:
//!
//! - `Content-Security-Policy`: script only by the SHA-256 of the dashboard's own constant
//!   scripts (`pages::SCRIPTS`), no inline event handlers, nothing loaded from elsewhere,
//!   forms posting only to the dashboard, `frame-ancestors 'none'`. Styles may be inline
//!   (`<style>` and `style=` attributes of the pages), nothing else.
//! - `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//!   `X-Frame-Options: DENY` (for browsers older than `frame-ancestors`),
//!   `Cache-Control: no-store` unless a route says otherwise.
//!
//! A request still carrying the cookie of older versions (`gantry_token`, which held a
//! raw token) gets it removed.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::header::{self, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use base64::prelude::{Engine as _, BASE64_STANDARD};
use sha2::Digest;

use super::auth;

/// The CSP `script-src` source of one inline script: `'sha256-<base64>'`.
pub fn script_hash(script: &str) -> String {
    format!("'sha256-{}'", BASE64_STANDARD.encode(sha2::Sha256::digest(script.as_bytes())))
}

/// The policy, with a hash of each of the dashboard's scripts.
pub fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let scripts: Vec<String> = super::pages::SCRIPTS.iter().map(|s| script_hash(s)).collect();
        format!(
            "default-src 'none'; script-src {}; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
            scripts.join(" ")
        )
    })
}

/// The middleware: the headers above on every response.
pub async fn secure(req: Request, next: Next) -> Response {
    let legacy = auth::cookie(req.headers(), auth::LEGACY_COOKIE).is_some();
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(content_security_policy()));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if legacy {
        if let Ok(clear) = HeaderValue::from_str(&auth::clear_legacy_cookie()) {
            h.append(header::SET_COOKIE, clear);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_dashboards_scripts_by_hash() {
        let policy = content_security_policy();
        for script in super::super::pages::SCRIPTS {
            assert!(policy.contains(&script_hash(script)), "{policy}");
        }
        let script_src = policy.split(';').find(|d| d.trim().starts_with("script-src")).unwrap();
        assert!(!script_src.contains("unsafe") && !script_src.contains("'self'") && !script_src.contains('*'), "{script_src}");
        for directive in ["default-src 'none'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"] {
            assert!(policy.contains(directive), "{policy}");
        }
    }

    #[test]
    fn a_hash_is_the_base64_sha256_of_the_script_text() {
        // `printf %s "alert(1)" | openssl dgst -sha256 -binary | base64`
        assert_eq!(script_hash("alert(1)"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
    }
}
