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

/// How far back a report may reach: a century covers any store, and keeps every span
/// well inside what the time arithmetic holds (`100000000y` would overflow it).
pub const MAX_SPAN_DAYS: i64 = 36_525;

/// Why a window start cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinceError {
    #[error("`{text}` is neither a span like 90d nor a date like 2026-09-01: {reason}")]
    Unreadable { text: String, reason: String },
    #[error("`{text}` reaches back more than {MAX_SPAN_DAYS} days (100 years) from now")]
    TooFar { text: String },
}

/// A window start from `90d`-style text (ending now) or a date (`2026-09-01`, UTC midnight),
/// at most `MAX_SPAN_DAYS` before `now` (a date may lie after it: `--until`).
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, SinceError> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let at = date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
        // The report also reads the window before this one, as long again: a date near
        // chrono's minimum would overflow there.
        if now - at > Duration::days(MAX_SPAN_DAYS) {
            return Err(SinceError::TooFar { text: text.into() });
        }
        return Ok(at);
    }
    let span = humantime::parse_duration(text).map_err(|e| SinceError::Unreadable { text: text.into(), reason: e.to_string() })?;
    // Compared as std durations first: converting `100000000y` to chrono's is where it
    // would overflow.
    if span > std::time::Duration::from_secs(MAX_SPAN_DAYS as u64 * 86_400) {
        return Err(SinceError::TooFar { text: text.into() });
    }
    let span = Duration::from_std(span).map_err(|_| SinceError::TooFar { text: text.into() })?;
    now.checked_sub_signed(span).ok_or_else(|| SinceError::TooFar { text: text.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_spans_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z").unwrap().to_utc();
        assert_eq!(parse_since("90d", now).unwrap(), now - Duration::days(90));
        assert_eq!(parse_since("2026-09-01", now).unwrap().to_rfc3339(), "2026-09-01T00:00:00+00:00");
        assert!(parse_since("soon", now).unwrap_err().to_string().contains("neither a span"));
    }

    #[test]
    fn since_is_bounded_instead_of_overflowing() {
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z").unwrap().to_utc();
        // Each of these panicked in `now - span` or in the conversion before it.
        for text in ["100000000y", "300000000000y", "18446744073709551615s"] {
            assert_eq!(parse_since(text, now), Err(SinceError::TooFar { text: text.into() }), "{text}");
        }
        assert_eq!(parse_since("36525d", now).unwrap(), now - Duration::days(36_525));
        assert_eq!(parse_since("36526d", now), Err(SinceError::TooFar { text: "36526d".into() }));
        assert_eq!(parse_since("1926-11-01", now), Err(SinceError::TooFar { text: "1926-11-01".into() }));
        assert!(parse_since("1969-12-31", now).is_ok());
        assert!(parse_since("99999999999999999999999y", now).is_err());
    }
}
