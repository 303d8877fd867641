//! Turns a step's expectations and a received response into failures (and captures).
//! Pure functions over an already-read response, so they are tested without a server.

use super::report::{shorten, Failure};
use super::spec::Expect;
use super::template::Vars;
use indexmap::IndexMap;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// How much of a body a failure quotes.
const BODY_EXCERPT: usize = 200;

/// A response as the checks see it.
pub(crate) struct Received<'a> {
    pub status: u16,
    pub headers: &'a HeaderMap,
    pub body: &'a str,
    pub latency: Duration,
}

/// The body parsed as JSON, once, only if some check needs it.
struct LazyJson<'a> {
    body: &'a str,
    parsed: Option<Result<Value, String>>,
}

impl<'a> LazyJson<'a> {
    fn get(&mut self) -> Result<&Value, &str> {
        let body = self.body;
        self.parsed
            .get_or_insert_with(|| {
                serde_json::from_str(body)
                    .map_err(|e| format!("body is not JSON ({e}): {}", shorten(body, BODY_EXCERPT)))
            })
            .as_ref()
            .map_err(String::as_str)
    }
}

/// Evaluates every expectation (all are reported, not just the first) and then the
/// captures; returns the failures and the captured values.
pub(crate) fn evaluate(expect: &Expect, capture: &IndexMap<String, String>, got: &Received) -> (Vec<Failure>, Vars) {
    let mut failures = Vec::new();
    let fail = |check: String, expected: String, got: String| Failure { check, expected, got };

    match expect.status {
        Some(want) if want != got.status => failures.push(fail("status".into(), want.to_string(), got.status.to_string())),
        None if !(200..300).contains(&got.status) => failures.push(fail("status".into(), "2xx".into(), got.status.to_string())),
        _ => {}
    }

    for needle in &expect.body_contains {
        if !got.body.contains(needle.as_str()) {
            failures.push(fail("body_contains".into(), needle.clone(), shorten(got.body, BODY_EXCERPT)));
        }
    }

    for (name, want) in &expect.headers {
        let values: Vec<&str> = got.headers.get_all(name.as_str()).iter().map(|v| v.to_str().unwrap_or("<not text>")).collect();
        if !values.iter().any(|v| v.contains(want.as_str())) {
            let seen = if values.is_empty() { "<missing>".to_string() } else { values.join(", ") };
            failures.push(fail(format!("header {name}"), want.clone(), seen));
        }
    }

    let mut json = LazyJson { body: got.body, parsed: None };
    for (pointer, want) in &expect.json {
        match json.get() {
            Ok(doc) => match doc.pointer(pointer) {
                Some(value) if value == want => {}
                Some(value) => failures.push(fail(format!("json {pointer}"), want.to_string(), value.to_string())),
                None => failures.push(fail(format!("json {pointer}"), want.to_string(), "<missing>".into())),
            },
            Err(why) => failures.push(fail(format!("json {pointer}"), want.to_string(), why.to_string())),
        }
    }

    if let Some(max) = expect.max_latency_ms {
        let ms = got.latency.as_millis() as u64;
        if ms > max {
            failures.push(fail("max_latency".into(), format!("{max}ms"), format!("{ms}ms")));
        }
    }

    let mut vars = Vars::new();
    for (name, pointer) in capture {
        match json.get() {
            Ok(doc) => match doc.pointer(pointer) {
                Some(value) => {
                    vars.insert(name.clone(), value.clone());
                }
                None => failures.push(fail(format!("capture {name}"), format!("a value at {pointer}"), "<missing>".into())),
            },
            Err(why) => failures.push(fail(format!("capture {name}"), format!("a value at {pointer}"), why.to_string())),
        }
    }
    (failures, vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, CONTENT_TYPE};
    use serde_json::json;

    fn received<'a>(status: u16, headers: &'a HeaderMap, body: &'a str, ms: u64) -> Received<'a> {
        Received { status, headers, body, latency: Duration::from_millis(ms) }
    }

    #[test]
    fn passing_response_has_no_failures_and_captures() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
        let expect: Expect = serde_json::from_value(json!({
            "status": 200, "body_contains": ["Mug"], "json": {"/0/id": 1},
            "max_latency_ms": 50, "headers": {"Content-Type": "application/json"}
        }))
        .unwrap();
        let capture: IndexMap<String, String> = [("id".to_string(), "/1/id".to_string())].into_iter().collect();
        let (failures, vars) = evaluate(&expect, &capture, &received(200, &headers, r#"[{"id":1,"n":"Mug"},{"id":"b"}]"#, 10));
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(vars["id"], json!("b"));
    }

    #[test]
    fn every_failing_check_is_reported() {
        let headers = HeaderMap::new();
        let expect: Expect = serde_json::from_value(json!({
            "status": 201, "body_contains": ["Storefront"], "json": {"/id": 1},
            "max_latency_ms": 5, "headers": {"content-type": "text/html"}
        }))
        .unwrap();
        let capture: IndexMap<String, String> = [("x".to_string(), "/x".to_string())].into_iter().collect();
        let (failures, vars) = evaluate(&expect, &capture, &received(500, &headers, "oops", 812));
        let checks: Vec<&str> = failures.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, ["status", "body_contains", "header content-type", "json /id", "max_latency", "capture x"]);
        assert_eq!(failures[0].describe(), "expected status 201, got 500");
        assert_eq!(failures[1].got, "oops");
        assert!(failures[3].got.starts_with("body is not JSON"));
        assert_eq!((failures[4].expected.as_str(), failures[4].got.as_str()), ("5ms", "812ms"));
        assert!(vars.is_empty());
    }

    #[test]
    fn no_status_expectation_means_any_2xx() {
        let headers = HeaderMap::new();
        let (failures, _) = evaluate(&Expect::default(), &IndexMap::new(), &received(204, &headers, "", 1));
        assert!(failures.is_empty());
        let (failures, _) = evaluate(&Expect::default(), &IndexMap::new(), &received(302, &headers, "", 1));
        assert_eq!(failures[0].describe(), "expected status 2xx, got 302");
    }
}
