//! `LoadSpec`: what the coordinator asks the load agent to do (JSON), and its validation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole job of one load agent run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    /// `http://host:port[/prefix]`; request paths are appended to it. Plain HTTP only:
    /// the targets are environments on the engine's own networks.
    pub base_url: String,
    /// Requests to send, picked by weight in a fixed interleaved order.
    pub requests: Vec<RequestSpec>,
    #[serde(default)]
    pub mode: Mode,
    /// Arrivals per second (constant-arrival-rate). With `stages`, the rate the ramp
    /// starts from (k6's `startRate`; 0 when absent). Ignored in max-throughput mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Run length; with `stages` it must be absent or equal to their sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Linear ramps of the arrival rate, like k6's ramping-arrival-rate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    /// Maximum connections, hence maximum requests in flight.
    #[serde(default = "default_connections")]
    pub connections: u32,
    /// Per-request timeout from the actual send; also how long the backlog may drain
    /// after the duration ends.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A string is sent as is; any other JSON value is sent serialised as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default = "default_weight")]
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    ConstantArrivalRate,
    MaxThroughput,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    pub duration_ms: u64,
    /// Arrival rate (per second) reached at the end of this stage.
    pub target: f64,
}

fn default_connections() -> u32 {
    50
}
fn default_timeout_ms() -> u64 {
    10_000
}
fn default_method() -> String {
    "GET".into()
}
fn default_weight() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read the load spec: {0}")]
    Read(#[from] std::io::Error),
    #[error("the load spec is not valid JSON for a LoadSpec: {0}")]
    Json(#[from] serde_json::Error),
    #[error("base_url `{url}`: {reason}")]
    BaseUrl { url: String, reason: String },
    #[error("requests: at least one request is needed")]
    NoRequests,
    #[error("requests[{index}]: {reason}")]
    Request { index: usize, reason: String },
    #[error("requests: the weights add up to 0; give at least one request a weight >= 1")]
    ZeroWeight,
    #[error("rate: {0} is not a usable arrival rate (must be a finite number >= 0)")]
    Rate(f64),
    #[error("rate: constant-arrival-rate needs `rate` (requests per second) or `stages`")]
    NoRate,
    #[error("duration_ms: a duration (> 0) or stages are needed")]
    NoDuration,
    #[error("duration_ms ({duration_ms}) differs from the sum of the stages ({stages_ms}); give one or the other")]
    DurationMismatch { duration_ms: u64, stages_ms: u64 },
    #[error("stages[{index}]: {reason}")]
    Stage { index: usize, reason: String },
    #[error("stages: only constant-arrival-rate ramps its rate; max-throughput takes duration_ms")]
    StagesInMaxThroughput,
    #[error("connections: must be at least 1")]
    NoConnections,
    #[error("timeout_ms: must be at least 1")]
    NoTimeout,
}

impl LoadSpec {
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let spec: LoadSpec = serde_json::from_str(text)?;
        spec.validate()?;
        Ok(spec)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Self, SpecError> {
        Self::from_json(&std::fs::read_to_string(path)?)
    }

    /// The run length: the stages' sum when there are stages, else `duration_ms`.
    pub fn duration(&self) -> Duration {
        let ms = if self.stages.is_empty() {
            self.duration_ms.unwrap_or(0)
        } else {
            self.stages.iter().map(|s| s.duration_ms).sum()
        };
        Duration::from_millis(ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"base_url":"http://storefront:8080","requests":[{"method":"GET","path":"/api/products","headers":{},"body":null,"weight":1}],
        "mode":"constant-arrival-rate","rate":200.0,"duration_ms":30000,"connections":50,"timeout_ms":10000}"#;

    #[test]
    fn parses_the_documented_form() {
        let s = LoadSpec::from_json(GOOD).unwrap();
        assert_eq!(s.mode, Mode::ConstantArrivalRate);
        assert_eq!(s.duration(), Duration::from_secs(30));
        assert_eq!(s.requests[0].weight, 1);
    }

    #[test]
    fn stages_give_the_duration() {
        let s = LoadSpec::from_json(r#"{"base_url":"http://a:1","requests":[{"path":"/"}],
            "stages":[{"duration_ms":1000,"target":10},{"duration_ms":2000,"target":0}]}"#).unwrap();
        assert_eq!(s.duration(), Duration::from_secs(3));
    }

    #[test]
    fn rejects_bad_specs() {
        let bad = |json: &str| LoadSpec::from_json(json).unwrap_err().to_string();
        assert!(bad(r#"{"base_url":"https://a","requests":[{"path":"/"}],"rate":1,"duration_ms":1}"#).contains("http://"));
        assert!(bad(r#"{"base_url":"http://a","requests":[],"rate":1,"duration_ms":1}"#).contains("at least one"));
        assert!(bad(r#"{"base_url":"http://a","requests":[{"path":"x"}],"rate":1,"duration_ms":1}"#).contains("requests[0]"));
        assert!(bad(r#"{"base_url":"http://a","requests":[{"path":"/"}],"duration_ms":1}"#).contains("needs `rate`"));
        assert!(bad(r#"{"base_url":"http://a","requests":[{"path":"/"}],"rate":-1,"duration_ms":1}"#).contains("rate"));
        assert!(bad(r#"{"base_url":"http://a","requests":[{"path":"/"}],"rate":1}"#).contains("duration"));
        assert!(bad(r#"{"base_url":"http://a","requests":[{"path":"/"}],"rate":1,"duration_ms":1,"conections":3}"#).contains("conections"));
    }
}
