//! The HTTP client the agent uses, and how transport errors are worded in reports.

use super::error::SmokeError;
use std::error::Error as _;
use std::time::Duration;

const USER_AGENT: &str = concat!("gantry-smoke/", env!("CARGO_PKG_VERSION"));

/// A client with its own cookie jar. One per journey, so cookies carry across the steps
/// of a journey and never leak into another. Proxies from the environment are ignored:
/// the agent talks to containers on its own network, never through a proxy.
/// `keep_alive: false` opens a fresh connection per request (what a health probe wants:
/// each attempt should prove the service accepts connections *now*).
pub(crate) fn client(timeout: Duration, follow_redirects: bool, keep_alive: bool) -> Result<reqwest::Client, SmokeError> {
    let redirect = if follow_redirects { reqwest::redirect::Policy::limited(10) } else { reqwest::redirect::Policy::none() };
    reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(timeout)
        .redirect(redirect)
        .user_agent(USER_AGENT)
        .pool_max_idle_per_host(if keep_alive { usize::MAX } else { 0 })
        .build()
        .map_err(|e| SmokeError::Client(chain(&e)))
}

/// One line for a failed request: a short cause first (what an operator scans for),
/// then the root cause (the URL is known to the reader; reqwest's outer layers add
/// nothing but length).
pub(crate) fn describe_error(err: &reqwest::Error, timeout: Duration) -> String {
    let details = chain(err);
    let io_kind = io_error_kind(err);
    let summary = if err.is_timeout() {
        format!("timed out after {}ms", timeout.as_millis())
    } else if io_kind == Some(std::io::ErrorKind::ConnectionRefused) {
        "connection refused".to_string()
    } else if details.contains("dns error") || details.contains("failed to lookup address") {
        "cannot resolve host".to_string()
    } else if err.is_connect() {
        "cannot connect".to_string()
    } else if io_kind == Some(std::io::ErrorKind::ConnectionReset) {
        "connection reset".to_string()
    } else {
        "request failed".to_string()
    };
    let root = root_cause(err);
    if root.is_empty() || root == summary {
        summary
    } else {
        format!("{summary} ({root})")
    }
}

fn root_cause(err: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// `outer: inner: innermost`, skipping a level whose text its parent already shows.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let text = e.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = e.source();
    }
    parts.join(": ")
}

fn io_error_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}
