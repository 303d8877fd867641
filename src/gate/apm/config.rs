//! The APM section a pipeline configures (serde, strict), and its validation into typed
//! [`Check`]s. Example:
//!
//! ```yaml
//! provider: prometheus-scrape            # or: prometheus
//! url: http://storefront:8080/metrics    # the candidate's /metrics, or the Prometheus URL
//! baseline_url: http://storefront-prod:8080/metrics   # scrape: production's /metrics
//! window: 30s
//! on_missing: block                      # or: pass (recorded as a warning)
//! checks:
//!   - {name: p95 latency, quantile: 0.95, histogram: storefront_http_request_duration_seconds, threshold: "<200ms", baseline: "<=+10%"}
//!   - {name: error ratio, ratio: {numerator: 'storefront_http_requests_total{code=~"5.."}', denominator: storefront_http_requests_total}, threshold: "<0.01"}
//!   - {name: throughput, rate: storefront_http_requests_total, threshold: ">1"}
//!   - {name: requests, count: storefront_http_requests_total, threshold: ">=100"}
//! ```
//!
//! With `provider: prometheus` every check is a PromQL `query`. In a query, `$window` is
//! replaced by the window (`30s`), and `$selector` by the label matchers of the subject
//! being measured (`selectors.candidate` or `selectors.baseline`), which is how one query
//! measures the candidate and production the same way:
//!
//! ```yaml
//! provider: prometheus
//! url: http://prometheus:9090
//! selectors: {candidate: 'job="canary"', baseline: 'job="production"'}
//! checks:
//!   - name: p99
//!     query: 'histogram_quantile(0.99, sum by (le) (rate(storefront_http_request_duration_seconds_bucket{$selector}[$window])))'
//!     threshold: "<0.5"
//!     baseline: "<=+10%"
//! ```

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::limit::{BaselineRule, Threshold};
use super::selector::Selector;
use super::window::fmt_q;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// The application's own `/metrics`, scraped before and after the window.
    PrometheusScrape,
    /// PromQL against a Prometheus server.
    Prometheus,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::PrometheusScrape => "prometheus-scrape",
            Provider::Prometheus => "prometheus",
        }
    }
}

/// What a check without data does to the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMissing {
    /// The check fails: no data is no evidence that the release is good.
    #[default]
    Block,
    /// The check passes, with the reason recorded as a warning.
    Pass,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApmConfig {
    pub provider: Provider,
    pub url: String,
    /// prometheus-scrape: production's `/metrics`, needed by checks with a `baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_url: Option<String>,
    /// prometheus: the label matchers `$selector` stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selectors: Option<Selectors>,
    #[serde(
        default = "default_window",
        deserialize_with = "de_duration",
        serialize_with = "ser_duration"
    )]
    pub window: Duration,
    #[serde(default)]
    pub on_missing: OnMissing,
    pub checks: Vec<CheckSpec>,
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    pub candidate: String,
    pub baseline: String,
}

/// One check as written. Exactly one measure: `quantile`+`histogram`, `ratio`, `rate`,
/// `count` or `query`; at least one of `threshold` and `baseline`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantile: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<RatioSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<Selector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineRule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSpec {
    pub numerator: Selector,
    pub denominator: Selector,
}

/// What a check measures, validated.
#[derive(Debug, Clone)]
pub enum Measure {
    Quantile {
        q: f64,
        histogram: Selector,
    },
    Ratio {
        numerator: Selector,
        denominator: Selector,
    },
    Rate(Selector),
    Count(Selector),
    Query(String),
}

impl Measure {
    /// A short description for reports: `p95 of h`, `rate of x`.
    pub fn describe(&self) -> String {
        match self {
            Measure::Quantile { q, histogram } => format!("p{} of {histogram}", fmt_q(*q)),
            Measure::Ratio {
                numerator,
                denominator,
            } => format!("{numerator} / {denominator}"),
            Measure::Rate(s) => format!("rate of {s}"),
            Measure::Count(s) => format!("increase of {s}"),
            Measure::Query(q) => q.clone(),
        }
    }
}

/// A check ready to evaluate.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub measure: Measure,
    pub threshold: Option<Threshold>,
    pub baseline: Option<BaselineRule>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("apm: {0}")]
    Config(String),
    #[error("apm check '{check}': {message}")]
    Check { check: String, message: String },
}

impl ApmConfig {
    /// Checks what serde cannot: one measure per check, measures the provider supports,
    /// what baselines need. Returns the typed checks in order.
    pub fn validate(&self) -> Result<Vec<Check>, ConfigError> {
        if self.url.trim().is_empty() {
            return Err(ConfigError::Config("url is empty".into()));
        }
        if self.window.is_zero() {
            return Err(ConfigError::Config("window must be longer than 0s".into()));
        }
        if self.checks.is_empty() {
            return Err(ConfigError::Config("no checks".into()));
        }
        if self.baseline_url.is_some() && self.provider != Provider::PrometheusScrape {
            return Err(ConfigError::Config(
                "baseline_url is for provider prometheus-scrape; with prometheus use selectors"
                    .into(),
            ));
        }
        if self.selectors.is_some() && self.provider != Provider::Prometheus {
            return Err(ConfigError::Config(
                "selectors are for provider prometheus; with prometheus-scrape use baseline_url"
                    .into(),
            ));
        }
        let mut names = HashSet::new();
        let mut out = Vec::with_capacity(self.checks.len());
        for spec in &self.checks {
            let err = |message: String| ConfigError::Check {
                check: spec.name.clone(),
                message,
            };
            if spec.name.trim().is_empty() {
                return Err(ConfigError::Config("a check has an empty name".into()));
            }
            if !names.insert(spec.name.as_str()) {
                return Err(err("the name is used twice".into()));
            }
            let measure = self.measure_of(spec).map_err(err)?;
            if spec.threshold.is_none() && spec.baseline.is_none() {
                return Err(err("needs a threshold, a baseline or both".into()));
            }
            if spec.baseline.is_some() {
                match (&measure, self.provider) {
                    (Measure::Query(q), Provider::Prometheus) => {
                        if self.selectors.is_none() {
                            return Err(err("a baseline with provider prometheus needs `selectors: {candidate, baseline}`".into()));
                        }
                        if !q.contains("$selector") {
                            return Err(err("a baseline needs `$selector` in the query, or both sides measure the same thing".into()));
                        }
                    }
                    _ if self.baseline_url.is_none() => {
                        return Err(err(
                            "a baseline with provider prometheus-scrape needs `baseline_url`"
                                .into(),
                        ));
                    }
                    _ => {}
                }
            }
            if let Measure::Query(q) = &measure {
                if q.contains("$selector") && self.selectors.is_none() {
                    return Err(err(
                        "the query uses $selector but no `selectors` are configured".into(),
                    ));
                }
            }
            out.push(Check {
                name: spec.name.clone(),
                measure,
                threshold: spec.threshold.clone(),
                baseline: spec.baseline.clone(),
            });
        }
        Ok(out)
    }

    fn measure_of(&self, spec: &CheckSpec) -> Result<Measure, String> {
        let given = [
            spec.quantile.is_some() || spec.histogram.is_some(),
            spec.ratio.is_some(),
            spec.rate.is_some(),
            spec.count.is_some(),
            spec.query.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(
                "needs exactly one of: quantile+histogram, ratio, rate, count, query".into(),
            );
        }
        let measure = if let Some(q) = &spec.query {
            Measure::Query(q.clone())
        } else if let Some(r) = &spec.ratio {
            Measure::Ratio {
                numerator: r.numerator.clone(),
                denominator: r.denominator.clone(),
            }
        } else if let Some(s) = &spec.rate {
            Measure::Rate(s.clone())
        } else if let Some(s) = &spec.count {
            Measure::Count(s.clone())
        } else {
            let (Some(q), Some(h)) = (spec.quantile, &spec.histogram) else {
                return Err("quantile and histogram go together".into());
            };
            if !(0.0..=1.0).contains(&q) {
                return Err(format!("quantile {q} is outside 0..=1"));
            }
            Measure::Quantile {
                q,
                histogram: h.clone(),
            }
        };
        match (self.provider, &measure) {
            (Provider::Prometheus, Measure::Query(_)) => Ok(measure),
            (Provider::Prometheus, _) => Err("provider prometheus measures with `query` (PromQL) only".into()),
            (Provider::PrometheusScrape, Measure::Query(_)) => {
                Err("`query` needs provider prometheus; prometheus-scrape has quantile, ratio, rate, count".into())
            }
            (Provider::PrometheusScrape, _) => Ok(measure),
        }
    }
}

// Selectors are written as strings in YAML and parsed on load, so a bad one is reported
// with the file's position by serde_yaml.
impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Selector::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let d = humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("bad duration '{text}': {e} (e.g. 30s, 2m)")))?;
    // Windows are subtracted from instants at run time, where a huge one would overflow.
    crate::pipeline::limits::check_duration(d, crate::pipeline::limits::MAX_DURATION).map_err(serde::de::Error::custom)?;
    Ok(d)
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
provider: prometheus-scrape
url: http://storefront:8080/metrics
baseline_url: http://storefront-prod:8080/metrics
window: 30s
on_missing: block
checks:
  - {name: p95 latency, quantile: 0.95, histogram: storefront_http_request_duration_seconds, threshold: "<200ms", baseline: "<=+10%"}
  - {name: error ratio, ratio: {numerator: 'storefront_http_requests_total{code=~"5.."}', denominator: storefront_http_requests_total}, threshold: "<0.01"}
  - {name: rps, rate: storefront_http_requests_total, threshold: ">1"}
"#;

    #[test]
    fn parses_and_validates_the_example() {
        let c: ApmConfig = serde_yaml::from_str(EXAMPLE).unwrap();
        assert_eq!(c.window, Duration::from_secs(30));
        let checks = c.validate().unwrap();
        assert_eq!(checks.len(), 3);
        assert!(matches!(&checks[0].measure, Measure::Quantile { q, .. } if *q == 0.95));
        assert_eq!(
            checks[0].measure.describe(),
            "p95 of storefront_http_request_duration_seconds"
        );
        assert_eq!(checks[0].threshold.as_ref().unwrap().limit, 0.2);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_syntax_at_load() {
        let bad_field = EXAMPLE.replace("window: 30s", "window: 30s\nwindoe: 1s");
        assert!(serde_yaml::from_str::<ApmConfig>(&bad_field)
            .unwrap_err()
            .to_string()
            .contains("windoe"));
        let bad_sel = EXAMPLE.replace("code=~", "code~");
        assert!(serde_yaml::from_str::<ApmConfig>(&bad_sel)
            .unwrap_err()
            .to_string()
            .contains("bad selector"));
        let bad_thr = EXAMPLE.replace("\"<0.01\"", "\"0.01\"");
        assert!(serde_yaml::from_str::<ApmConfig>(&bad_thr)
            .unwrap_err()
            .to_string()
            .contains("bad threshold"));
    }

    fn invalid(yaml: &str) -> String {
        let c: ApmConfig = serde_yaml::from_str(yaml).unwrap();
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn validation_errors_name_the_check() {
        let head = "provider: prometheus-scrape\nurl: http://a/metrics\nchecks:\n";
        let e = invalid(&format!(
            "{head}  - {{name: x, rate: a, count: b, threshold: '<1'}}\n"
        ));
        assert!(e.contains("'x'") && e.contains("exactly one"), "{e}");
        let e = invalid(&format!("{head}  - {{name: x, rate: a}}\n"));
        assert!(e.contains("threshold"), "{e}");
        let e = invalid(&format!(
            "{head}  - {{name: x, rate: a, baseline: '<=+10%'}}\n"
        ));
        assert!(e.contains("baseline_url"), "{e}");
        let e = invalid(&format!(
            "{head}  - {{name: x, query: up, threshold: '<1'}}\n"
        ));
        assert!(e.contains("provider prometheus"), "{e}");
        let e = invalid(&format!(
            "{head}  - {{name: x, quantile: 1.5, histogram: h, threshold: '<1'}}\n"
        ));
        assert!(e.contains("outside"), "{e}");
        let e = invalid(&format!(
            "{head}  - {{name: x, histogram: h, threshold: '<1'}}\n"
        ));
        assert!(e.contains("go together"), "{e}");
        let e = invalid(&format!("{head}  - {{name: x, rate: a, threshold: '<1'}}\n  - {{name: x, rate: a, threshold: '<1'}}\n"));
        assert!(e.contains("twice"), "{e}");
        let p = "provider: prometheus\nurl: http://p:9090\nchecks:\n";
        let e = invalid(&format!("{p}  - {{name: x, rate: a, threshold: '<1'}}\n"));
        assert!(e.contains("query"), "{e}");
        let e = invalid(&format!(
            "{p}  - {{name: x, query: up, baseline: '<=+1%'}}\n"
        ));
        assert!(e.contains("selectors"), "{e}");
        let sel = "provider: prometheus\nurl: http://p:9090\nselectors: {candidate: 'a=\"1\"', baseline: 'a=\"2\"'}\n";
        let e = invalid(&format!(
            "{sel}checks:\n  - {{name: x, query: up, baseline: '<=+1%'}}\n"
        ));
        assert!(e.contains("$selector"), "{e}");
    }
}
