//! APM checks for the promotion gate: measure an application's metrics over a window, from
//! its own `/metrics` (`prometheus-scrape`) or from a Prometheus server (`prometheus`), and
//! judge them against thresholds and against the version now in production.
//!
//! Layers, each one file:
//! - [`exposition`]: a strict parser of the Prometheus text exposition format;
//! - [`selector`]: `name{label="v",l2=~"re"}` series selectors and their matching;
//! - [`scrape`]: GET a `/metrics` page; two scrapes make a [`Window`];
//! - [`window`]: rates, ratios, counts and histogram quantiles from the deltas of a window;
//! - [`quantile`]: PromQL's `histogram_quantile` arithmetic on cumulative buckets;
//! - [`promql`]: instant and range queries against Prometheus' HTTP API;
//! - [`limit`]: threshold (`<200ms`) and baseline (`<=+10%`) expressions;
//! - [`config`]: the serde model a pipeline configures, validated into typed checks;
//! - [`evaluate`]: measured values + limits → [`CheckResult`]s;
//! - [`run`]: drives a provider over a window and evaluates every check.
//!
//! Missing data is a first-class outcome ([`Missing`]), never a zero: an absent metric, a
//! window without observations or an unreachable Prometheus must not pass a gate by silence.

pub mod config;
pub mod evaluate;
pub mod exposition;
pub mod limit;
pub mod promql;
pub mod quantile;
pub mod run;
pub mod scrape;
pub mod selector;
pub mod window;

use std::fmt;

use serde::Serialize;

pub use config::{ApmConfig, Check, ConfigError, Measure, OnMissing, Provider};
pub use evaluate::{evaluate, BaselineResult, CheckResult};
pub use exposition::{parse_exposition, ParseError, Sample};
pub use limit::{BaselineRule, LimitError, Threshold};
pub use promql::{query, query_range, QueryResult};
pub use run::{run, ApmReport};
pub use scrape::{scrape, Scrape};
pub use selector::{Selector, SelectorError};
pub use window::Window;

/// Why a figure could not be measured. Carried to the gate's report as such: whether it
/// blocks is the pipeline's decision ([`OnMissing`]), never this module's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    /// What was being measured, e.g. `p95 of storefront_http_request_duration_seconds`.
    pub what: String,
    /// Why there is no value, e.g. `no observations in the 30s window`.
    pub why: String,
}

impl Missing {
    pub fn new(what: impl Into<String>, why: impl Into<String>) -> Missing {
        Missing {
            what: what.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.why)
    }
}

impl std::error::Error for Missing {}

/// Failures of talking to a metrics source.
#[derive(Debug, thiserror::Error)]
pub enum ApmError {
    /// Nothing answered (connection refused, DNS, timeout): the source is down or wrong.
    #[error("{url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// The source answered with an HTTP status that is not success and no API error body.
    #[error("{url} answered HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    /// Prometheus rejected the query; `message` is the server's own words.
    #[error("Prometheus at {url} rejected the query ({error_type}): {message}")]
    Query {
        url: String,
        error_type: String,
        message: String,
    },
    /// The answer was not what the API promises (not JSON, unknown result type, ...).
    #[error("unexpected answer from {url}: {reason}")]
    Decode { url: String, reason: String },
    /// A `/metrics` page that is not valid text exposition format.
    #[error("{url}: {source}")]
    Exposition {
        url: String,
        #[source]
        source: ParseError,
    },
    /// The query ran but there is nothing to judge (empty result, NaN).
    #[error("{0}")]
    Missing(Missing),
    /// A URL that cannot be used (not http(s), unparsable).
    #[error("bad URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
}

impl ApmError {
    /// For reporting a failed measurement as missing data: the reason in one line.
    pub fn into_missing(self, what: &str) -> Missing {
        match self {
            ApmError::Missing(m) => m,
            other => Missing::new(what, other.to_string()),
        }
    }
}

/// Maps a reqwest failure to our error: anything before an HTTP status is "unreachable".
pub(crate) fn request_error(url: &str, e: reqwest::Error) -> ApmError {
    if let Some(status) = e.status() {
        return ApmError::Http {
            url: url.to_string(),
            status: status.as_u16(),
            body: e.to_string(),
        };
    }
    if e.is_decode() || e.is_body() {
        return ApmError::Decode {
            url: url.to_string(),
            reason: error_chain(&e),
        };
    }
    ApmError::Unreachable {
        url: url.to_string(),
        reason: error_chain(&e),
    }
}

/// reqwest's top-level message ("error sending request") hides the cause; join the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}
