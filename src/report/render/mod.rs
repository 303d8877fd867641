//! Renders a `Report`: a terminal table, CSV, and one self-contained HTML file with inline
//! SVG charts (`html`), or the same content as a fragment for the dashboard (`body`).
//!
//! The four renderings word the figures alike: each key is first turned into a `KeyView`
//! (figure, band, trend, what is counted), then laid out.
//!
//! CSV layout (RFC 4180, CRLF line ends, fields quoted when they hold `,` `"` CR or LF):
//! two sections separated by one empty line, each with its own header row.
//! 1. Figures, header `measure,value,unit,band,trend,previous,note`: one row per figure
//!    (context rows first: environment, pipeline (empty value: all pipelines), since,
//!    until). Durations are in seconds, rates in percent; a figure the window has none of
//!    keeps its row with an empty value and a note saying why.
//! 2. Weekly release frequency, header `week,<pipeline>...,total,failed`: one row per
//!    week (its Monday, UTC).
//!
//! An empty window (no live deployment) writes the figures header, the context rows, the
//! deployment counts and one `summary` row whose value is the sentence "no production
//! deployments in <env> between <since> and <until>"; no weekly section.
//!
//! HTML: `html` is a whole document (inline `<style>`, inline SVG, no script, no URL);
//! `body` is a `<section class="release-report">` to embed. Charts colour themselves
//! with SVG attributes, so they read right without `STYLE`; embedders may add `STYLE`
//! (every rule scoped to `.release-report`) for the cards and tables.

use std::fmt::Write as _;

use chrono::{DateTime, NaiveDate, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::report::model::{Band, FailureReason, Report, Trend, Week};

/// The report's CSS, every rule scoped to `.release-report`.
pub const STYLE: &str = r#"
.release-report{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328}
.release-report h1{font-size:1.5rem;margin:.5rem 0 .25rem}.release-report h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
.release-report .window{color:#57606a;margin:0 0 1rem}
.release-report .empty{font-size:1.1rem;background:#fff;border:1px solid #d0d7de;padding:1rem}
.release-report .keys{display:grid;grid-template-columns:repeat(auto-fit,minmax(16rem,1fr));gap:.75rem}
.release-report .key{background:#fff;border:1px solid #d0d7de;padding:.75rem 1rem}
.release-report .key h3{font-size:1rem;margin:0 0 .35rem}
.release-report .key .figure{font-size:1.15rem;font-weight:600;margin:.2rem 0}
.release-report .key .counted{color:#57606a;font-size:12.5px;margin:.35rem 0 0}
.release-report .warning{color:#9a6700;font-size:12.5px;margin:.35rem 0 0}
.release-report .band{display:inline-block;padding:0 .5rem;border-radius:1em;font-size:12px;font-weight:600;color:#fff;background:#6e7781;margin-right:.5rem}
.release-report .band-elite{background:#1a7f37}.release-report .band-high{background:#0969da}
.release-report .band-medium{background:#9a6700}.release-report .band-low{background:#cf222e}
.release-report .trend-better{color:#1a7f37}.release-report .trend-worse{color:#cf222e}.release-report .trend-same,.release-report .trend-new{color:#57606a}
.release-report table{border-collapse:collapse;width:100%;background:#fff}
.release-report th,.release-report td{text-align:left;padding:.3rem .6rem;border-bottom:1px solid #d0d7de}
.release-report th{background:#f0f3f6;font-weight:600}.release-report td.num,.release-report th.num{text-align:right}
.release-report tr.fail td{background:#ffebe9}
.release-report .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:.75rem}
.release-report figure{margin:0;background:#fff;border:1px solid #d0d7de;padding:.5rem}
.release-report figcaption{font-weight:600;margin-bottom:.25rem}
.release-report svg{display:block;width:100%;height:auto}
.release-report .sources{color:#57606a;font-size:11.5px;margin-top:1.5rem}
.release-report .sources ul{margin:.2rem 0;padding-left:1.2rem}
.release-report code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
"#;

pub(super) const BLUE: &str = "#0969da";
pub(super) const RED: &str = "#cf222e";
pub(super) const GREY: &str = "#57606a";
pub(super) const GRID: &str = "#d0d7de";

// ---------------------------------------------------------------------------------------
// Words shared by every rendering

/// Durations for people: `12s`, `5m30s`, `45m`, `3h12m`, `2d4h` (the two largest units,
/// the smaller rounded, a zero smaller unit left out).
pub fn duration(secs: f64) -> String {
    let total = if secs.is_finite() && secs > 0.0 { secs.round() as u64 } else { 0 };
    let two = |big: u64, bu: &str, small: u64, su: &str| {
        if small == 0 {
            format!("{big}{bu}")
        } else {
            format!("{big}{bu}{small}{su}")
        }
    };
    if total < 60 {
        return format!("{total}s");
    }
    if total < 3600 {
        return two(total / 60, "m", total % 60, "s");
    }
    let minutes = (total + 30) / 60;
    if minutes < 24 * 60 {
        return two(minutes / 60, "h", minutes % 60, "m");
    }
    let hours = (total + 1800) / 3600;
    two(hours / 24, "d", hours % 24, "h")
}

pub fn band_word(band: Band) -> &'static str {
    match band {
        Band::Elite => "elite",
        Band::High => "high",
        Band::Medium => "medium",
        Band::Low => "low",
    }
}

pub fn trend_word(trend: Trend) -> &'static str {
    match trend {
        Trend::Better => "better",
        Trend::Worse => "worse",
        Trend::Same => "same",
        Trend::New => "new",
    }
}

pub fn reason_words(reason: &FailureReason) -> &'static str {
    match reason {
        FailureReason::FailedVerification => "failed verification",
        FailureReason::RolledBack => "rolled back by hand",
        FailureReason::FollowedByFix => "followed by a fix within 24 h",
    }
}

/// `better (was 3.0/week)`; `new (no figure in the window before)`.
pub(super) fn trend_text(trend: Trend, previous: Option<String>) -> String {
    match (trend, previous) {
        (Trend::New, _) => "new (no figure in the window before)".into(),
        (t, Some(p)) => format!("{} (was {p})", trend_word(t)),
        (t, None) => trend_word(t).into(),
    }
}

/// Rates: two decimals under 1, one above (`0.43`, `4.2`).
pub(super) fn num(x: f64) -> String {
    if x.abs() < 1.0 && x != 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// A rate as a fraction (`0.125`) in percent (`12.5%`).
pub(super) fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

pub(super) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(super) fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

pub(super) fn short_sha(sha: &str) -> &str {
    sha.char_indices().nth(8).map_or(sha, |(i, _)| &sha[..i])
}

pub(super) fn pipeline_words(report: &Report) -> &str {
    report.pipeline.as_deref().unwrap_or("all pipelines")
}

/// The sentence an empty window says instead of figures.
pub fn empty_sentence(report: &Report) -> String {
    format!(
        "no production deployments in {} between {} and {}",
        report.environment,
        date(report.since),
        date(report.until)
    )
}

/// `42 live deployments, 3 refused (never went live)`.
pub(super) fn count_words(report: &Report) -> String {
    let mut s = plural(report.deployments, "live deployment", "live deployments");
    if report.refused > 0 {
        let _ = write!(s, ", {} refused (never went live)", report.refused);
    }
    s
}

/// Every pipeline of the weekly table, in the order they first appear.
pub(super) fn pipelines(weeks: &[Week]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for week in weeks {
        for (name, _) in &week.by_pipeline {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    names
}

pub(super) fn count_for(week: &Week, pipeline: &str) -> usize {
    week.by_pipeline.iter().filter(|(n, _)| n == pipeline).map(|(_, c)| c).sum()
}

/// One of the four keys, worded once for every rendering.
pub(super) struct KeyView {
    name: &'static str,
    figure: String,
    band: Option<Band>,
    trend: Option<Trend>,
    trend_text: Option<String>,
    /// Exactly what is counted.
    counted: String,
    warning: Option<String>,
}

pub(super) fn keys(report: &Report) -> Vec<KeyView> {
    let f = &report.frequency;
    let frequency = KeyView {
        name: "deployment frequency",
        figure: format!(
            "{} deployment days/week · {}/week · {}/day",
            num(f.deployment_days_per_week),
            num(f.per_week),
            num(f.per_day)
        ),
        band: Some(f.band),
        trend: Some(f.trend),
        trend_text: Some(trend_text(f.trend, f.previous_per_week.map(|p| format!("{}/week", num(p))))),
        counted: "Deployment days/week: UTC days with at least one live deployment, per week (Four Keys' measure; the band uses it). \
                  Per week and per day: every live deployment counted (DevLake-style); the trend compares per week."
            .into(),
        warning: None,
    };
    let lead = match &report.lead_time {
        Some(l) => KeyView {
            name: "lead time for changes",
            figure: format!("median {} · p90 {} · {}", duration(l.median_secs), duration(l.p90_secs), plural(l.commits, "commit", "commits")),
            band: Some(l.band),
            trend: Some(l.trend),
            trend_text: Some(trend_text(l.trend, l.previous_median_secs.map(duration))),
            counted: "From each commit's time to the first production deployment that brought it; every commit counted once; the band and trend use the median."
                .into(),
            warning: (l.head_only > 0).then(|| {
                format!("{} counted by their head commit only: repository not readable", plural(l.head_only, "deployment", "deployments"))
            }),
        },
        None => KeyView {
            name: "lead time for changes",
            figure: "no commits deployed".into(),
            band: None,
            trend: None,
            trend_text: None,
            counted: "No live deployment in the window brought a commit.".into(),
            warning: None,
        },
    };
    let failure = match &report.change_failure {
        Some(c) => KeyView {
            name: "change failure rate",
            figure: format!("{}/{} = {}", c.failed, c.total, percent(c.rate)),
            band: Some(c.band),
            trend: Some(c.trend),
            trend_text: Some(trend_text(c.trend, c.previous_rate.map(percent))),
            counted: "Live deployments that failed verification, were rolled back by hand, or were followed by a fix within 24 h, over all live deployments."
                .into(),
            warning: None,
        },
        None => KeyView {
            name: "change failure rate",
            figure: "no deployments".into(),
            band: None,
            trend: None,
            trend_text: None,
            counted: "No live deployment in the window.".into(),
            warning: None,
        },
    };
    let restore = match &report.time_to_restore {
        Some(t) => KeyView {
            name: "time to restore",
            figure: format!("median {} · {} restored, {} unrestored", duration(t.median_secs), t.restored, t.unrestored),
            band: Some(t.band),
            trend: Some(t.trend),
            trend_text: Some(trend_text(t.trend, t.previous_median_secs.map(duration))),
            counted: "From a failed deployment to when a healthy version served again; median over restored failures.".into(),
            warning: None,
        },
        None => KeyView {
            name: "time to restore",
            figure: "no failures to restore from".into(),
            band: None,
            trend: None,
            trend_text: None,
            counted: "No live deployment in the window failed.".into(),
            warning: None,
        },
    };
    vec![frequency, lead, failure, restore]
}

/// `45m`, or `not restored`.
pub(super) fn restore_words(deployed: DateTime<Utc>, restored: Option<DateTime<Utc>>) -> String {
    match restored {
        Some(r) => duration((r - deployed).num_seconds() as f64),
        None => "not restored".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Terminal

mod charts;
mod csv_text;
mod page;
mod table;
#[cfg(test)]
mod tests;

use charts::*;

pub use csv_text::csv;
pub use page::{body, html};
pub use table::table;
