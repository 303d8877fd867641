//! Runs the journeys of a spec and builds the report.
//!
//! Journeys run one after another (the output reads as a story, and a smoke test is
//! about correctness, not load); each has its own client and so its own cookie jar.

use super::checks::{evaluate, Received};
use super::error::SmokeError;
use super::http::{client, describe_error};
use super::report::{JourneyReport, Outcome, SmokeReport, StepReport};
use super::spec::{Journey, Request, SmokeSpec, Step};
use super::template::{render, render_json, Vars};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use std::time::{Duration, Instant};

/// Runs every journey; `on_step` sees each step report (including skipped ones) as soon
/// as it is known, for live output. Check failures land in the report; `Err` only when
/// nothing could be run at all.
pub async fn run(spec: &SmokeSpec, mut on_step: impl FnMut(&str, &StepReport)) -> Result<SmokeReport, SmokeError> {
    let started = Instant::now();
    let timeout = Duration::from_millis(spec.timeout_ms);
    let mut journeys = Vec::with_capacity(spec.journeys.len());
    for journey in &spec.journeys {
        let http = client(timeout, true, true)?;
        journeys.push(run_journey(&http, spec, journey, timeout, &mut on_step).await);
    }
    Ok(SmokeReport { passed: journeys.iter().all(|j| j.passed), duration_ms: ms(started.elapsed()), journeys })
}

async fn run_journey(
    http: &reqwest::Client,
    spec: &SmokeSpec,
    journey: &Journey,
    timeout: Duration,
    on_step: &mut impl FnMut(&str, &StepReport),
) -> JourneyReport {
    let started = Instant::now();
    let mut vars = Vars::new();
    let mut steps = Vec::with_capacity(journey.steps.len());
    let mut stopped = false;
    for step in &journey.steps {
        let report = if stopped {
            StepReport::skipped(&step.name)
        } else {
            let report = run_step(http, &spec.base_url, step, &mut vars, timeout).await;
            // A failed step leaves the journey in an unknown state: later steps would
            // only report consequences of the first failure, so they are skipped.
            stopped = report.outcome == Outcome::Failed;
            report
        };
        on_step(&journey.name, &report);
        steps.push(report);
    }
    let passed = steps.iter().all(|s| s.outcome == Outcome::Passed);
    JourneyReport { name: journey.name.clone(), passed, duration_ms: ms(started.elapsed()), steps }
}

async fn run_step(http: &reqwest::Client, base_url: &str, step: &Step, vars: &mut Vars, timeout: Duration) -> StepReport {
    let mut report =
        StepReport { name: step.name.clone(), outcome: Outcome::Failed, duration_ms: 0, status: None, failures: vec![], error: None };
    let request = match build_request(http, base_url, &step.request, vars) {
        Ok(r) => r,
        Err(why) => {
            report.error = Some(why);
            return report;
        }
    };
    let started = Instant::now();
    // Latency covers the whole exchange up to the last body byte, as a user would see it.
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            report.duration_ms = ms(started.elapsed());
            report.error = Some(describe_error(&e, timeout));
            return report;
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    report.status = Some(status);
    let body = response.bytes().await;
    let latency = started.elapsed();
    report.duration_ms = ms(latency);
    let body = match body {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            report.error = Some(format!("reading body: {}", describe_error(&e, timeout)));
            return report;
        }
    };
    let (failures, captured) =
        evaluate(&step.expect, &step.capture, &Received { status, headers: &headers, body: &body, latency });
    if failures.is_empty() {
        report.outcome = Outcome::Passed;
        vars.extend(captured);
    }
    report.failures = failures;
    report
}

/// Renders templates and assembles the request; `Err` is the step's error text.
fn build_request(http: &reqwest::Client, base_url: &str, req: &Request, vars: &Vars) -> Result<reqwest::RequestBuilder, String> {
    let unknown = |e: crate::smoke::template::UnknownVariable| e.to_string();
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).map_err(|_| format!("bad method {:?}", req.method))?;
    let url = join_url(base_url, &render(&req.path, vars).map_err(unknown)?);
    let url = reqwest::Url::parse(&url).map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let mut builder = http.request(method, url);
    let mut has_content_type = false;
    for (name, value) in &req.headers {
        let value = render(value, vars).map_err(unknown)?;
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("bad header name {name:?}"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| format!("bad value for header {name}: {value:?}"))?;
        has_content_type |= name == CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    if let Some(body) = &req.body {
        builder = builder.body(render(body, vars).map_err(unknown)?);
    } else if let Some(json) = &req.json {
        let body = serde_json::to_vec(&render_json(json, vars).map_err(unknown)?).map_err(|e| e.to_string())?;
        if !has_content_type {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        builder = builder.body(body);
    }
    Ok(builder)
}

/// `base_url` + `path` by plain concatenation (so a base path prefix is kept), unless the
/// path is already an absolute URL.
fn join_url(base_url: &str, path: &str) -> String {
    if path.starts_with("http://") || path.starts_with("https://") {
        return path.to_string();
    }
    let base = base_url.trim_end_matches('/');
    if path.starts_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::join_url;

    #[test]
    fn joins_paths_keeping_prefixes() {
        assert_eq!(join_url("http://a:8080", "/x?y=1"), "http://a:8080/x?y=1");
        assert_eq!(join_url("http://a:8080/shop/", "cart"), "http://a:8080/shop/cart");
        assert_eq!(join_url("http://a:8080/shop", "/"), "http://a:8080/shop/");
        assert_eq!(join_url("http://a", "http://b/c"), "http://b/c");
    }
}
