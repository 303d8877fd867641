//! Judging measured values: a check passes when its threshold holds on the candidate and
//! its baseline rule holds against production's value measured the same way.
//!
//! Missing data never counts as a pass by itself: with `on_missing: block` a check with any
//! missing figure fails; with `on_missing: pass` it passes with the reason kept in
//! `missing` (the report's warning), but only if what *could* be measured passed — a
//! violated threshold still fails when only the baseline is missing.

use serde::Serialize;

use super::config::{Check, OnMissing, Provider};
use super::Missing;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineResult {
    /// Production's value, when it could be measured.
    pub value: Option<f64>,
    /// The rule as written, e.g. `<=+10%`.
    pub relation: String,
    /// What the candidate was compared with (e.g. baseline × 1.10).
    pub limit: Option<f64>,
    pub passed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub provider: &'static str,
    /// What was measured, e.g. `p95 of storefront_http_request_duration_seconds`.
    pub measure: String,
    /// The candidate's value, in the metric's unit (seconds for latency quantiles).
    pub measured: Option<f64>,
    /// The threshold as written, e.g. `<200ms`.
    pub threshold: Option<String>,
    pub passed: bool,
    pub baseline: Option<BaselineResult>,
    /// Why data was missing (candidate and/or baseline); None when all was measured.
    pub missing: Option<String>,
}

/// Evaluates one check. `baseline` is production's measurement, None when the check has
/// no baseline rule (if it has one and None is given, that is reported as missing).
pub fn evaluate(
    check: &Check,
    provider: Provider,
    on_missing: OnMissing,
    candidate: Result<f64, Missing>,
    baseline: Option<Result<f64, Missing>>,
) -> CheckResult {
    let mut missing: Vec<String> = Vec::new();
    // Each part: Some(true/false) when evaluated, None when its data is missing.
    let mut parts: Vec<Option<bool>> = Vec::new();

    let measured = match candidate {
        Ok(v) => Some(v),
        Err(m) => {
            missing.push(m.to_string());
            None
        }
    };
    if let Some(t) = &check.threshold {
        parts.push(measured.map(|v| t.passes(v)));
    }

    let baseline_result = check.baseline.as_ref().map(|rule| {
        let value = match baseline {
            Some(Ok(v)) => Some(v),
            Some(Err(m)) => {
                missing.push(format!("baseline: {m}"));
                None
            }
            None => {
                missing.push("baseline: production was not measured".into());
                None
            }
        };
        let limit = value.map(|b| rule.bound(b));
        let passed = match (measured, value) {
            (Some(c), Some(b)) => Some(rule.passes(c, b)),
            _ => None,
        };
        parts.push(passed);
        BaselineResult {
            value,
            relation: rule.as_str().to_string(),
            limit,
            passed: passed.unwrap_or(false),
        }
    });

    let failed = parts.contains(&Some(false));
    let passed = if missing.is_empty() {
        !failed
    } else {
        on_missing == OnMissing::Pass && !failed
    };

    CheckResult {
        name: check.name.clone(),
        provider: provider.name(),
        measure: check.measure.describe(),
        measured,
        threshold: check.threshold.as_ref().map(|t| t.as_str().to_string()),
        passed,
        baseline: baseline_result,
        missing: (!missing.is_empty()).then(|| missing.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::apm::config::Measure;
    use crate::gate::apm::limit::{BaselineRule, Threshold};
    use crate::gate::apm::selector::Selector;

    fn check(threshold: Option<&str>, baseline: Option<&str>) -> Check {
        Check {
            name: "p95".into(),
            measure: Measure::Quantile {
                q: 0.95,
                histogram: Selector::parse("h").unwrap(),
            },
            threshold: threshold.map(|t| Threshold::parse(t).unwrap()),
            baseline: baseline.map(|b| BaselineRule::parse(b).unwrap()),
        }
    }

    fn gone() -> Missing {
        Missing::new("p95 of h", "no observations")
    }

    const P: Provider = Provider::PrometheusScrape;

    #[test]
    fn threshold_and_baseline() {
        let c = check(Some("<200ms"), Some("<=+10%"));
        let r = evaluate(&c, P, OnMissing::Block, Ok(0.15), Some(Ok(0.14)));
        assert!(r.passed, "{r:?}");
        let b = r.baseline.unwrap();
        assert!((b.limit.unwrap() - 0.154).abs() < 1e-12);
        assert_eq!(r.threshold.as_deref(), Some("<200ms"));
        assert_eq!(r.provider, "prometheus-scrape");
        // Under the threshold but 50% above production: fails on the baseline alone.
        let r = evaluate(&c, P, OnMissing::Block, Ok(0.15), Some(Ok(0.10)));
        assert!(!r.passed && !r.baseline.unwrap().passed);
        // Above the threshold: fails.
        assert!(!evaluate(&c, P, OnMissing::Block, Ok(0.25), Some(Ok(0.25))).passed);
    }

    #[test]
    fn missing_blocks_or_passes_with_a_warning() {
        let c = check(Some("<200ms"), None);
        let r = evaluate(&c, P, OnMissing::Block, Err(gone()), None);
        assert!(!r.passed);
        assert_eq!(r.measured, None);
        assert!(r.missing.unwrap().contains("no observations"));
        let r = evaluate(&c, P, OnMissing::Pass, Err(gone()), None);
        assert!(r.passed);
        assert!(r.missing.is_some());
    }

    #[test]
    fn missing_baseline_does_not_hide_a_failed_threshold() {
        let c = check(Some("<200ms"), Some("<=+10%"));
        let r = evaluate(&c, P, OnMissing::Pass, Ok(0.3), Some(Err(gone())));
        assert!(!r.passed);
        assert!(r.missing.unwrap().starts_with("baseline:"));
        let r = evaluate(&c, P, OnMissing::Pass, Ok(0.1), None);
        assert!(r.passed);
        assert!(r.missing.unwrap().contains("not measured"));
        let r = evaluate(&c, P, OnMissing::Block, Ok(0.1), None);
        assert!(!r.passed);
    }
}
