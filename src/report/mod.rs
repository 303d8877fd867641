//! Release-frequency and DORA figures from the store's deployment records: `compute` turns
//! a window of deployments into a `Report`; `render` writes it as a table, CSV or a
//! self-contained HTML page with SVG charts.

pub mod compute;
pub mod model;
pub mod render;

pub use model::*;

use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::store::{Store, StoreError};

/// The report of `environment` (and `pipeline`) over `window`, from the store's deployment
/// records; commits are read from each run's repository (a service project's mirror for a
/// repository reached by URL).
pub fn from_store(store: &Store, environment: &str, pipeline: Option<&str>, window: compute::Window) -> Result<Report, StoreError> {
    from_history(store, store.dir(), environment, pipeline, window)
}

/// `from_store` over any reader of history (the store, or the process holding it);
/// `data_dir` is where mirrors of remote repositories are kept.
pub fn from_history(
    store: &dyn crate::store::read::ReadHistory,
    data_dir: &std::path::Path,
    environment: &str,
    pipeline: Option<&str>,
    window: compute::Window,
) -> Result<Report, StoreError> {
    let all = store.deployments(Some(environment))?;
    let data_dir = data_dir.to_path_buf();
    let repo_of = |run_id: &str| -> Option<PathBuf> {
        store.find_run(run_id).ok()?.local_repo(&data_dir)
    };
    let commits = compute::GitCommits::new(repo_of);
    Ok(compute::compute(environment, pipeline, &all, window, &commits))
}

/// A window start from `90d`-style text (ending now) or a date (`2026-09-01`, UTC midnight).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    let span = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is neither a span like 90d nor a date like 2026-09-01: {e}"))?;
    let span = Duration::from_std(span).map_err(|e| e.to_string())?;
    Ok(now - span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_spans_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z").unwrap().to_utc();
        assert_eq!(parse_since("90d", now).unwrap(), now - Duration::days(90));
        assert_eq!(parse_since("2026-09-01", now).unwrap().to_rfc3339(), "2026-09-01T00:00:00+00:00");
        assert!(parse_since("soon", now).unwrap_err().contains("neither a span"));
    }
}
