//! The smoke spec: what the coordinator asks the agent to check, as JSON.
//!
//! Validation happens before anything is sent, so that a mistake in a pipeline file is
//! reported as a bad spec (agent exits non-zero) rather than as a failing app.

use super::error::SmokeError;
use super::template::{json_placeholders, placeholders, valid_name};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// Default per-request timeout when the spec gives none.
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeSpec {
    /// Scheme, host and port (and optionally a path prefix) every step path is joined to.
    pub base_url: String,
    pub journeys: Vec<Journey>,
    /// Timeout of each request (connect + response + body), in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    pub request: Request,
    #[serde(default)]
    pub expect: Expect,
    /// Capture name -> JSON pointer into the response body, for `{{name}}` in later steps.
    #[serde(default)]
    pub capture: IndexMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default = "default_method")]
    pub method: String,
    /// Joined to `base_url`; an absolute `http://` / `https://` URL is used as is.
    pub path: String,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Raw body, sent as is (set a content-type header yourself).
    #[serde(default)]
    pub body: Option<String>,
    /// JSON body, sent with `content-type: application/json`. Exclusive with `body`.
    #[serde(default)]
    pub json: Option<Value>,
}

fn default_method() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact status; when absent any 2xx passes.
    #[serde(default)]
    pub status: Option<u16>,
    /// Substrings the body must contain (case-sensitive).
    #[serde(default)]
    pub body_contains: Vec<String>,
    /// JSON pointer (RFC 6901) -> expected value, compared for equality.
    #[serde(default)]
    pub json: IndexMap<String, Value>,
    /// Upper bound on request-to-full-body time.
    #[serde(default)]
    pub max_latency_ms: Option<u64>,
    /// Header name (case-insensitive) -> substring its value must contain, so that
    /// `text/html` matches `text/html; charset=utf-8`.
    #[serde(default)]
    pub headers: IndexMap<String, String>,
}

impl SmokeSpec {
    /// Reads, parses and validates a spec file.
    pub fn from_file(path: &Path) -> Result<Self, SmokeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SmokeError::ReadSpec { path: path.to_owned(), source })?;
        Self::from_json(&text)
    }

    /// Parses and validates a spec.
    pub fn from_json(text: &str) -> Result<Self, SmokeError> {
        let spec: SmokeSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks everything that can be checked without sending a request.
    pub fn validate(&self) -> Result<(), SmokeError> {
        let base = reqwest::Url::parse(&self.base_url)
            .map_err(|e| SmokeError::invalid("base_url", format!("{:?} is not a URL: {e}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(SmokeError::invalid("base_url", "scheme must be http or https"));
        }
        if self.timeout_ms == 0 {
            return Err(SmokeError::invalid("timeout_ms", "must be greater than 0"));
        }
        if self.journeys.is_empty() {
            return Err(SmokeError::invalid("journeys", "no journeys: a smoke test must check something"));
        }
        let mut journey_names = HashSet::new();
        for (j, journey) in self.journeys.iter().enumerate() {
            let at = format!("journeys[{j}]");
            if journey.name.trim().is_empty() {
                return Err(SmokeError::invalid(format!("{at}.name"), "must not be empty"));
            }
            // Journey names become JUnit suites and report keys: they must be unique.
            if !journey_names.insert(journey.name.as_str()) {
                return Err(SmokeError::invalid(format!("{at}.name"), format!("duplicate journey {:?}", journey.name)));
            }
            journey.validate(&at)?;
        }
        Ok(())
    }
}

impl Journey {
    fn validate(&self, at: &str) -> Result<(), SmokeError> {
        if self.steps.is_empty() {
            return Err(SmokeError::invalid(format!("{at}.steps"), "journey has no steps"));
        }
        // Variables only flow forward: a step may use what earlier steps captured.
        let mut captured: HashSet<&str> = HashSet::new();
        for (s, step) in self.steps.iter().enumerate() {
            let at = format!("{at}.steps[{s}]");
            if step.name.trim().is_empty() {
                return Err(SmokeError::invalid(format!("{at}.name"), "must not be empty"));
            }
            step.request.validate(&format!("{at}.request"), &captured)?;
            step.expect.validate(&format!("{at}.expect"))?;
            for (name, pointer) in &step.capture {
                if !valid_name(name) {
                    return Err(SmokeError::invalid(
                        format!("{at}.capture.{name}"),
                        "capture names are letters, digits, '_', '-' and '.'",
                    ));
                }
                check_pointer(&format!("{at}.capture.{name}"), pointer)?;
            }
            captured.extend(step.capture.keys().map(String::as_str));
        }
        Ok(())
    }
}

impl Request {
    fn validate(&self, at: &str, captured: &HashSet<&str>) -> Result<(), SmokeError> {
        if reqwest::Method::from_bytes(self.method.as_bytes()).is_err() || self.method.is_empty() {
            return Err(SmokeError::invalid(format!("{at}.method"), format!("{:?} is not an HTTP method", self.method)));
        }
        if self.body.is_some() && self.json.is_some() {
            return Err(SmokeError::invalid(at, "set either body or json, not both"));
        }
        let mut used: Vec<(String, &str)> = placeholders(&self.path).into_iter().map(|n| ("path".into(), n)).collect();
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(SmokeError::invalid(format!("{at}.headers"), format!("{name:?} is not a header name")));
            }
            used.extend(placeholders(value).into_iter().map(|n| (format!("headers.{name}"), n)));
        }
        if let Some(body) = &self.body {
            used.extend(placeholders(body).into_iter().map(|n| ("body".into(), n)));
        }
        if let Some(json) = &self.json {
            used.extend(json_placeholders(json).into_iter().map(|n| ("json".into(), n)));
        }
        for (field, name) in used {
            if !captured.contains(name) {
                return Err(SmokeError::invalid(
                    format!("{at}.{field}"),
                    format!("{{{{{name}}}}} is not captured by an earlier step of this journey"),
                ));
            }
        }
        Ok(())
    }
}

impl Expect {
    fn validate(&self, at: &str) -> Result<(), SmokeError> {
        if let Some(status) = self.status {
            if !(100..=599).contains(&status) {
                return Err(SmokeError::invalid(format!("{at}.status"), format!("{status} is not an HTTP status")));
            }
        }
        for pointer in self.json.keys() {
            check_pointer(&format!("{at}.json"), pointer)?;
        }
        for name in self.headers.keys() {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(SmokeError::invalid(format!("{at}.headers"), format!("{name:?} is not a header name")));
            }
        }
        Ok(())
    }
}

/// RFC 6901: a pointer is empty (whole document) or starts with `/`.
fn check_pointer(at: &str, pointer: &str) -> Result<(), SmokeError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(SmokeError::invalid(at, format!("{pointer:?} is not a JSON pointer (must start with '/')")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{ "base_url": "http://storefront:8080", "journeys": [ { "name": "browse and buy", "steps": [
        { "name": "home", "request": {"method": "GET", "path": "/", "headers": {}, "body": null, "json": null},
          "expect": {"status": 200, "body_contains": ["Storefront"], "json": {"/0/id": 1}, "max_latency_ms": 500, "headers": {"content-type": "text/html"}},
          "capture": {"product_id": "/0/id"} },
        { "name": "add", "request": {"method": "POST", "path": "/cart/{{product_id}}", "json": {"id": "{{product_id}}"}} } ] } ],
      "timeout_ms": 10000 }"#;

    #[test]
    fn parses_the_documented_example() {
        let spec = SmokeSpec::from_json(EXAMPLE).unwrap();
        assert_eq!(spec.journeys[0].steps[0].expect.status, Some(200));
        assert_eq!(spec.journeys[0].steps[1].request.method, "POST");
        assert_eq!(spec.journeys[0].steps[1].expect, Expect::default());
    }

    fn invalid(text: &str) -> String {
        match SmokeSpec::from_json(text) {
            Err(e @ SmokeError::InvalidSpec { .. }) => e.to_string(),
            other => panic!("expected InvalidSpec, got {other:?}"),
        }
    }

    #[test]
    fn rejects_variables_not_captured_earlier() {
        let text = EXAMPLE.replace(r#""capture": {"product_id": "/0/id"}"#, r#""capture": {}"#);
        let msg = invalid(&text);
        assert!(msg.contains("journeys[0].steps[1].request.path") && msg.contains("{{product_id}}"), "{msg}");
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(invalid(&EXAMPLE.replace("http://storefront:8080", "storefront")).contains("base_url"));
        assert!(invalid(&EXAMPLE.replace(r#""/0/id": 1"#, r#""0/id": 1"#)).contains("JSON pointer"));
        assert!(invalid(&EXAMPLE.replace(r#""method": "POST""#, r#""method": "PO ST""#)).contains("method"));
        assert!(invalid(r#"{"base_url": "http://x", "journeys": []}"#).contains("no journeys"));
        assert!(matches!(SmokeSpec::from_json(r#"{"base_url": "http://x", "journeys": [], "extra": 1}"#), Err(SmokeError::ParseSpec(_))));
    }
}
