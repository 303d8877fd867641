//! HTTP health probe: poll a URL until it answers as expected or a deadline passes.
//! The coordinator runs it (as `gantry-smoke probe`) on an environment's network to
//! health-check services and deployments.

use super::error::SmokeError;
use super::http::{client, describe_error};
use super::report::shorten;
use std::time::{Duration, Instant};

/// Bound on one attempt, so a hanging connection cannot eat the whole deadline.
const MAX_ATTEMPT_TIME: Duration = Duration::from_secs(10);
/// Least time an attempt gets, even close to the deadline.
const MIN_ATTEMPT_TIME: Duration = Duration::from_secs(1);
/// How much of the last body a failure report keeps.
const BODY_HEAD: usize = 500;

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// No attempt starts later than this after the first one (an attempt in flight may
    /// run up to 1s past it).
    pub timeout: Duration,
    /// Pause between attempts.
    pub interval: Duration,
    /// Exact status to wait for; None accepts any 2xx.
    pub expect_status: Option<u16>,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions { timeout: Duration::from_secs(30), interval: Duration::from_millis(500), expect_status: None }
    }
}

#[derive(Debug, Clone)]
pub struct ProbeAttempt {
    /// 1-based.
    pub number: u32,
    /// Since the probe started.
    pub at: Duration,
    pub status: Option<u16>,
    /// First 500 characters of the body (empty when no response).
    pub body_head: String,
    /// Transport error when no response was received.
    pub error: Option<String>,
    pub healthy: bool,
}

#[derive(Debug, Clone)]
pub struct ProbeOutcome {
    pub healthy: bool,
    pub attempts: u32,
    pub elapsed: Duration,
    /// The final attempt (the healthy one, or the last failure).
    pub last: ProbeAttempt,
}

impl ProbeAttempt {
    /// `status 503` or the connection error, for one line of output.
    pub fn summary(&self) -> String {
        match (&self.error, self.status) {
            (Some(e), _) => e.clone(),
            (None, Some(s)) => format!("status {s}"),
            (None, None) => "no response".into(),
        }
    }
}

/// Polls `url`; `on_attempt` sees every attempt as it completes. `Err` only for a URL
/// that cannot be probed at all.
pub async fn probe(url: &str, opts: &ProbeOptions, mut on_attempt: impl FnMut(&ProbeAttempt)) -> Result<ProbeOutcome, SmokeError> {
    let invalid = |reason: String| SmokeError::InvalidUrl { url: url.to_string(), reason };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("scheme must be http or https".into()));
    }
    // Waiting for a 3xx only makes sense if redirects are not followed.
    let follow = !opts.expect_status.is_some_and(|s| (300..400).contains(&s));
    let http = client(MAX_ATTEMPT_TIME, follow, false)?;
    let started = Instant::now();
    let deadline = started + opts.timeout;
    let mut number = 0;
    // The deadline governs when attempts *start*. Each attempt gets at least a short
    // minimum, so a last attempt started just before the deadline still means something
    // (it may overrun the deadline by that much) instead of timing out after 1ms.
    let min_attempt = MIN_ATTEMPT_TIME.min(opts.timeout).max(Duration::from_millis(1));
    loop {
        number += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt_timeout = remaining.clamp(min_attempt, MAX_ATTEMPT_TIME.max(min_attempt));
        let mut attempt = ProbeAttempt { number, at: Duration::ZERO, status: None, body_head: String::new(), error: None, healthy: false };
        match http.get(parsed.clone()).timeout(attempt_timeout).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                attempt.status = Some(status);
                attempt.healthy = match opts.expect_status {
                    Some(want) => status == want,
                    None => (200..300).contains(&status),
                };
                // The body only matters for diagnosing a failure; a body that cannot be
                // read is noted rather than turning a healthy status into a failure.
                match response.bytes().await {
                    Ok(b) => attempt.body_head = shorten(&String::from_utf8_lossy(&b), BODY_HEAD),
                    Err(e) => attempt.body_head = format!("<body unreadable: {}>", describe_error(&e, attempt_timeout)),
                }
            }
            Err(e) => attempt.error = Some(describe_error(&e, attempt_timeout)),
        }
        attempt.at = started.elapsed();
        on_attempt(&attempt);
        if attempt.healthy || Instant::now() + opts.interval >= deadline {
            return Ok(ProbeOutcome { healthy: attempt.healthy, attempts: number, elapsed: started.elapsed(), last: attempt });
        }
        tokio::time::sleep(opts.interval).await;
    }
}
