//! Running the APM checks of a configuration against live sources.
//!
//! - `prometheus-scrape`: scrape the candidate (and production, for baselines) at the start,
//!   wait the window while traffic flows, scrape again, measure every check on both
//!   windows. The caller runs the load concurrently ([`begin_scrape`]/[`finish_scrape`] let it
//!   place the window itself; [`run`] sleeps it).
//! - `prometheus`: the data is already in the server, so each check's query runs once now
//!   (`$window` in the query is the look-back); production is measured by the same query
//!   with `$selector` set to the baseline's matchers.
//!
//! An unreachable source makes every check that needs it missing, never passed.

use std::time::Duration;

use serde::Serialize;

use super::config::{ApmConfig, Check, ConfigError, Measure, Provider};
use super::evaluate::{evaluate, CheckResult};
use super::promql;
use super::scrape::{scrape_with, Scrape, SCRAPE_TIMEOUT};
use super::window::Window;
use super::{ApmError, Missing};

#[derive(Debug, Clone, Serialize)]
pub struct ApmReport {
    pub provider: &'static str,
    pub window_seconds: f64,
    pub passed: bool,
    pub results: Vec<CheckResult>,
    /// One line per check that passed only because `on_missing: pass`.
    pub warnings: Vec<String>,
}

impl ApmReport {
    fn new(config: &ApmConfig, window_seconds: f64, results: Vec<CheckResult>) -> ApmReport {
        let warnings = results
            .iter()
            .filter(|r| r.passed)
            .filter_map(|r| {
                r.missing
                    .as_ref()
                    .map(|m| format!("{}: passed without data ({m})", r.name))
            })
            .collect();
        ApmReport {
            provider: config.provider.name(),
            window_seconds,
            passed: results.iter().all(|r| r.passed),
            results,
            warnings,
        }
    }
}

/// Validates the configuration and runs every check; see the module doc for timing.
pub async fn run(config: &ApmConfig) -> Result<ApmReport, ConfigError> {
    let checks = config.validate()?;
    match config.provider {
        Provider::PrometheusScrape => {
            let start = begin_scrape(config).await;
            tokio::time::sleep(config.window).await;
            Ok(finish_scrape(config, &checks, start).await)
        }
        Provider::Prometheus => Ok(run_promql(config, &checks).await),
    }
}

/// The first scrapes of a scrape window: the candidate's and, if configured, production's.
pub struct ScrapeStart {
    client: reqwest::Client,
    candidate: Result<Scrape, ApmError>,
    baseline: Option<Result<Scrape, ApmError>>,
}

pub async fn begin_scrape(config: &ApmConfig) -> ScrapeStart {
    let client = reqwest::Client::builder()
        .timeout(SCRAPE_TIMEOUT)
        .build()
        .unwrap_or_default();
    let (candidate, baseline) = scrape_pair(&client, config).await;
    ScrapeStart {
        client,
        candidate,
        baseline,
    }
}

pub async fn finish_scrape(config: &ApmConfig, checks: &[Check], start: ScrapeStart) -> ApmReport {
    let (cand_after, base_after) = scrape_pair(&start.client, config).await;
    let candidate = window_of(&config.url, start.candidate, cand_after);
    let baseline = match (&config.baseline_url, start.baseline, base_after) {
        (Some(url), Some(b), Some(a)) => Some(window_of(url, b, a)),
        _ => None,
    };
    let secs = candidate.as_ref().map(Window::seconds).unwrap_or(0.0);
    let results = checks
        .iter()
        .map(|check| {
            let cand = candidate
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|w| measure_window(&check.measure, w));
            let base = check.baseline.as_ref().map(|_| match &baseline {
                Some(Ok(w)) => measure_window(&check.measure, w),
                Some(Err(m)) => Err(m.clone()),
                None => Err(Missing::new("baseline", "no baseline_url configured")),
            });
            evaluate(check, config.provider, config.on_missing, cand, base)
        })
        .collect();
    ApmReport::new(config, secs, results)
}

/// Both sides are scraped at the same moments, so their windows cover the same traffic.
async fn scrape_pair(
    client: &reqwest::Client,
    config: &ApmConfig,
) -> (Result<Scrape, ApmError>, Option<Result<Scrape, ApmError>>) {
    let cand = scrape_with(client, &config.url);
    match &config.baseline_url {
        Some(url) => {
            let (c, b) = tokio::join!(cand, scrape_with(client, url));
            (c, Some(b))
        }
        None => (cand.await, None),
    }
}

fn window_of(
    url: &str,
    before: Result<Scrape, ApmError>,
    after: Result<Scrape, ApmError>,
) -> Result<Window, Missing> {
    match (before, after) {
        (Ok(b), Ok(a)) => Ok(Window::new(&b, &a)),
        (Err(e), _) | (_, Err(e)) => Err(e.into_missing(url)),
    }
}

/// One scrape-provider measure on one window.
pub fn measure_window(measure: &Measure, w: &Window) -> Result<f64, Missing> {
    match measure {
        Measure::Quantile { q, histogram } => w.quantile(*q, histogram),
        Measure::Ratio {
            numerator,
            denominator,
        } => w.ratio(numerator, denominator),
        Measure::Rate(s) => w.rate(s),
        Measure::Count(s) => w.count(s),
        Measure::Query(q) => Err(Missing::new(
            q,
            "a PromQL query cannot be measured on a scrape window",
        )),
    }
}

async fn run_promql(config: &ApmConfig, checks: &[Check]) -> ApmReport {
    let mut results = Vec::with_capacity(checks.len());
    for check in checks {
        let Measure::Query(q) = &check.measure else {
            continue; // validate() allows only queries with this provider
        };
        let sel = config.selectors.as_ref();
        let cand = measure_query(
            &config.url,
            q,
            sel.map(|s| s.candidate.as_str()),
            config.window,
        )
        .await;
        let base = match &check.baseline {
            Some(_) => Some(
                measure_query(
                    &config.url,
                    q,
                    sel.map(|s| s.baseline.as_str()),
                    config.window,
                )
                .await,
            ),
            None => None,
        };
        results.push(evaluate(
            check,
            config.provider,
            config.on_missing,
            cand,
            base,
        ));
    }
    ApmReport::new(config, config.window.as_secs_f64(), results)
}

/// Runs one check query now and reduces it to one number.
pub async fn measure_query(
    base_url: &str,
    query: &str,
    selector: Option<&str>,
    window: Duration,
) -> Result<f64, Missing> {
    let expr = expand_query(query, selector, window);
    match promql::query(base_url, &expr, None).await {
        Ok(r) => r.single_value(&expr),
        Err(e) => Err(e.into_missing(&expr)),
    }
}

/// `$window` → a PromQL duration (`30s`, `1500ms`); `$selector` → the matchers.
pub fn expand_query(query: &str, selector: Option<&str>, window: Duration) -> String {
    let ms = window.as_millis();
    let dur = if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    };
    let q = query.replace("$window", &dur);
    match selector {
        Some(s) => q.replace("$selector", s),
        None => q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_placeholders() {
        let q = "rate(x{$selector}[$window])";
        assert_eq!(
            expand_query(q, Some(r#"job="a""#), Duration::from_secs(90)),
            r#"rate(x{job="a"}[90s])"#
        );
        assert_eq!(
            expand_query(q, None, Duration::from_millis(1500)),
            "rate(x{$selector}[1500ms])"
        );
    }
}
