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

use super::model::{Band, FailureReason, Report, Trend, Week};

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

const BLUE: &str = "#0969da";
const RED: &str = "#cf222e";
const GREY: &str = "#57606a";
const GRID: &str = "#d0d7de";

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
fn trend_text(trend: Trend, previous: Option<String>) -> String {
    match (trend, previous) {
        (Trend::New, _) => "new (no figure in the window before)".into(),
        (t, Some(p)) => format!("{} (was {p})", trend_word(t)),
        (t, None) => trend_word(t).into(),
    }
}

/// Rates: two decimals under 1, one above (`0.43`, `4.2`).
fn num(x: f64) -> String {
    if x.abs() < 1.0 && x != 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1}")
    }
}

/// A rate as a fraction (`0.125`) in percent (`12.5%`).
fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn date(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn short_sha(sha: &str) -> &str {
    sha.char_indices().nth(8).map_or(sha, |(i, _)| &sha[..i])
}

fn pipeline_words(report: &Report) -> &str {
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
fn count_words(report: &Report) -> String {
    let mut s = plural(report.deployments, "live deployment", "live deployments");
    if report.refused > 0 {
        let _ = write!(s, ", {} refused (never went live)", report.refused);
    }
    s
}

/// Every pipeline of the weekly table, in the order they first appear.
fn pipelines(weeks: &[Week]) -> Vec<&str> {
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

fn count_for(week: &Week, pipeline: &str) -> usize {
    week.by_pipeline.iter().filter(|(n, _)| n == pipeline).map(|(_, c)| c).sum()
}

/// One of the four keys, worded once for every rendering.
struct KeyView {
    name: &'static str,
    figure: String,
    band: Option<Band>,
    trend: Option<Trend>,
    trend_text: Option<String>,
    /// Exactly what is counted.
    counted: String,
    warning: Option<String>,
}

fn keys(report: &Report) -> Vec<KeyView> {
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
fn restore_words(deployed: DateTime<Utc>, restored: Option<DateTime<Utc>>) -> String {
    match restored {
        Some(r) => duration((r - deployed).num_seconds() as f64),
        None => "not restored".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Terminal

/// Control characters (an ANSI escape in a pipeline name) would drive the terminal.
fn plain(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}

/// Rows padded into columns; `right[i]` right-aligns column i. Trailing spaces trimmed.
fn align(rows: &[Vec<String>], right: &[bool]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> =
        (0..columns).map(|i| rows.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0)).collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if right.get(i).copied().unwrap_or(false) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The report for a terminal: header, the four keys (figure, band, trend, what is
/// counted), failures, the weekly release-frequency table, the band sources.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Release frequency: {}, {}", plain(&report.environment), plain(pipeline_words(report)));
    let _ = writeln!(out, "Window: {} – {} (UTC)", date(report.since), date(report.until));
    let _ = writeln!(out, "Deployments: {}", count_words(report));
    out.push('\n');
    if report.deployments == 0 {
        let _ = writeln!(out, "{}", plain(&empty_sentence(report)));
        return out;
    }

    let views = keys(report);
    let mut rows = vec![vec!["KEY".to_string(), "FIGURE".into(), "BAND".into(), "TREND".into()]];
    for k in &views {
        rows.push(vec![
            k.name.into(),
            k.figure.clone(),
            k.band.map_or("-", band_word).into(),
            k.trend_text.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let lines = align(&rows, &[]);
    let _ = writeln!(out, "{}", lines[0]);
    for (line, k) in lines[1..].iter().zip(&views) {
        let _ = writeln!(out, "{line}");
        let _ = writeln!(out, "    counts: {}", k.counted);
        if let Some(w) = &k.warning {
            let _ = writeln!(out, "    warning: {w}");
        }
    }

    if let Some(c) = report.change_failure.as_ref().filter(|c| !c.failures.is_empty()) {
        let _ = writeln!(out, "\nFailed deployments");
        let mut rows = vec![vec!["RUN".to_string(), "COMMIT".into(), "DEPLOYED (UTC)".into(), "REASON".into(), "RESTORED IN".into()]];
        for f in &c.failures {
            rows.push(vec![
                plain(&f.run_id),
                plain(short_sha(&f.commit)),
                f.deployed_at.format("%Y-%m-%d %H:%M").to_string(),
                reason_words(&f.reason).into(),
                restore_words(f.deployed_at, f.restored_at),
            ]);
        }
        for line in align(&rows, &[]) {
            let _ = writeln!(out, "{line}");
        }
    }

    if !report.weeks.is_empty() {
        let _ = writeln!(out, "\nRelease frequency per week");
        let names = pipelines(&report.weeks);
        let mut header = vec!["WEEK OF".to_string()];
        header.extend(names.iter().map(|n| plain(n)));
        header.extend(["TOTAL".to_string(), "FAILED".into()]);
        let mut rows = vec![header];
        for w in &report.weeks {
            let mut row = vec![w.start.to_string()];
            row.extend(names.iter().map(|n| count_for(w, n).to_string()));
            row.extend([w.deployments.to_string(), w.failed.to_string()]);
            rows.push(row);
        }
        let right: Vec<bool> = (0..names.len() + 3).map(|i| i > 0).collect();
        for line in align(&rows, &right) {
            let _ = writeln!(out, "{line}");
        }
    }

    if !report.sources.is_empty() {
        let _ = writeln!(out, "\nBand sources:");
        for s in &report.sources {
            let _ = writeln!(out, "  {}", plain(s));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// CSV

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_row(out: &mut String, fields: &[&str]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// The report as CSV: see the module comment for the layout.
pub fn csv(report: &Report) -> String {
    let mut out = String::new();
    let row = |out: &mut String, measure: &str, value: String, unit: &str, band: Option<Band>, trend: Option<Trend>, previous: Option<String>, note: &str| {
        csv_row(
            out,
            &[measure, &value, unit, band.map_or("", band_word), trend.map_or("", trend_word), previous.as_deref().unwrap_or(""), note],
        )
    };
    csv_row(&mut out, &["measure", "value", "unit", "band", "trend", "previous", "note"]);
    row(&mut out, "environment", report.environment.clone(), "", None, None, None, "");
    row(&mut out, "pipeline", report.pipeline.clone().unwrap_or_default(), "", None, None, None, "empty: all pipelines");
    row(&mut out, "since", report.since.to_rfc3339(), "UTC", None, None, None, "");
    row(&mut out, "until", report.until.to_rfc3339(), "UTC", None, None, None, "");
    row(&mut out, "live_deployments", report.deployments.to_string(), "count", None, None, None, "production deployments that went live in the window");
    row(&mut out, "refused_deployments", report.refused.to_string(), "count", None, None, None, "deployments that never went live (unhealthy); counted nowhere else");
    if report.deployments == 0 {
        row(&mut out, "summary", empty_sentence(report), "", None, None, None, "");
        return out;
    }

    let f = &report.frequency;
    let devlake = "every live deployment counted (DevLake-style)";
    row(&mut out, "deployments_per_day", format!("{:.2}", f.per_day), "per day", None, None, None, devlake);
    row(
        &mut out,
        "deployments_per_week",
        format!("{:.2}", f.per_week),
        "per week",
        None,
        Some(f.trend),
        f.previous_per_week.map(|p| format!("{p:.2}")),
        "every live deployment counted (DevLake-style); the trend compares this figure",
    );
    row(
        &mut out,
        "deployment_days_per_week",
        format!("{:.2}", f.deployment_days_per_week),
        "days per week",
        Some(f.band),
        None,
        None,
        "UTC days with at least one live deployment, per week (Four Keys); the band uses this figure",
    );

    let secs = |s: f64| format!("{s:.0}");
    match &report.lead_time {
        Some(l) => {
            row(&mut out, "lead_time_median", secs(l.median_secs), "seconds", Some(l.band), Some(l.trend), l.previous_median_secs.map(secs), "commit time to the first production deployment that brought it");
            row(&mut out, "lead_time_p90", secs(l.p90_secs), "seconds", None, None, None, "");
            row(&mut out, "lead_time_commits", l.commits.to_string(), "count", None, None, None, "every commit counted once");
            let note = if l.head_only > 0 { "deployments counted by their head commit only: repository not readable" } else { "" };
            row(&mut out, "lead_time_head_only", l.head_only.to_string(), "deployments", None, None, None, note);
        }
        None => {
            let none = "no live deployment brought a commit";
            for (m, unit) in [("lead_time_median", "seconds"), ("lead_time_p90", "seconds"), ("lead_time_commits", "count"), ("lead_time_head_only", "deployments")] {
                row(&mut out, m, String::new(), unit, None, None, None, none);
            }
        }
    }

    match &report.change_failure {
        Some(c) => {
            row(
                &mut out,
                "change_failure_rate",
                format!("{:.1}", c.rate * 100.0),
                "percent",
                Some(c.band),
                Some(c.trend),
                c.previous_rate.map(|p| format!("{:.1}", p * 100.0)),
                "failed verification, rolled back by hand, or followed by a fix within 24 h, over live deployments",
            );
            row(&mut out, "change_failures", c.failed.to_string(), "count", None, None, None, "");
            row(&mut out, "change_failure_total", c.total.to_string(), "count", None, None, None, "");
        }
        None => {
            for (m, unit) in [("change_failure_rate", "percent"), ("change_failures", "count"), ("change_failure_total", "count")] {
                row(&mut out, m, String::new(), unit, None, None, None, "no live deployment");
            }
        }
    }

    match &report.time_to_restore {
        Some(t) => {
            row(&mut out, "time_to_restore_median", secs(t.median_secs), "seconds", Some(t.band), Some(t.trend), t.previous_median_secs.map(secs), "failed deployment to a healthy version serving again, over restored failures");
            row(&mut out, "restored", t.restored.to_string(), "count", None, None, None, "");
            row(&mut out, "unrestored", t.unrestored.to_string(), "count", None, None, None, "failures with no healthy deployment since");
        }
        None => {
            for (m, unit) in [("time_to_restore_median", "seconds"), ("restored", "count"), ("unrestored", "count")] {
                row(&mut out, m, String::new(), unit, None, None, None, "no failed deployment");
            }
        }
    }

    out.push_str("\r\n");
    let names = pipelines(&report.weeks);
    let mut header: Vec<&str> = vec!["week"];
    header.extend(names.iter().copied());
    header.extend(["total", "failed"]);
    csv_row(&mut out, &header);
    for w in &report.weeks {
        let mut fields = vec![w.start.to_string()];
        fields.extend(names.iter().map(|n| count_for(w, n).to_string()));
        fields.extend([w.deployments.to_string(), w.failed.to_string()]);
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        csv_row(&mut out, &fields);
    }
    out
}

// ---------------------------------------------------------------------------------------
// HTML

/// The report as one self-contained HTML document: opens offline, no script, no URL.
pub fn html(report: &Report) -> String {
    let title = format!("Release frequency · {} · {} – {}", report.environment, date(report.since), date(report.until));
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped("body{margin:0;background:#f6f8fa}main{max-width:1200px;margin:0 auto;padding:1rem 1.25rem 3rem}")) (PreEscaped(STYLE)) }
            }
            body { main { (body(report)) } }
        }
    };
    doc.into_string()
}

/// The report's content for the dashboard to embed: a `<section class="release-report">`.
pub fn body(report: &Report) -> Markup {
    html! {
        section.release-report {
            h1 { "Release frequency: " (report.environment) " · " (pipeline_words(report)) }
            p.window {
                (date(report.since)) " – " (date(report.until)) " (UTC) · " (count_words(report))
            }
            @if report.deployments == 0 {
                p.empty { (empty_sentence(report)) }
            } @else {
                (keys_html(report))
                (failures_html(report))
                h2 { "Charts" }
                div.charts {
                    figure {
                        figcaption { "Deployments per week" }
                        (deployments_chart(&report.weeks))
                    }
                    figure {
                        figcaption { "Lead-time distribution" }
                        (lead_time_chart(&report.lead_time_samples))
                    }
                    figure {
                        figcaption { "Change failure rate per week" }
                        (change_failure_chart(&report.weeks, report.change_failure.as_ref().map(|c| c.rate)))
                    }
                }
                (weeks_html(&report.weeks))
                @if !report.sources.is_empty() {
                    footer.sources {
                        small {
                            "Band sources:"
                            ul { @for s in &report.sources { li { (s) } } }
                        }
                    }
                }
            }
        }
    }
}

fn keys_html(report: &Report) -> Markup {
    html! {
        div.keys {
            @for k in keys(report) {
                article.key {
                    h3 { (k.name) }
                    p.figure { (k.figure) }
                    p {
                        @if let Some(b) = k.band {
                            span class=(format!("band band-{}", band_word(b))) { (band_word(b)) }
                        }
                        @if let (Some(t), Some(text)) = (k.trend, &k.trend_text) {
                            span class=(format!("trend trend-{}", trend_word(t))) { (text) }
                        }
                    }
                    p.counted { (k.counted) }
                    @if let Some(w) = &k.warning {
                        p.warning { "⚠ " (w) }
                    }
                }
            }
        }
    }
}

fn failures_html(report: &Report) -> Markup {
    let Some(c) = report.change_failure.as_ref().filter(|c| !c.failures.is_empty()) else {
        return html! {};
    };
    html! {
        h2 { "Failed deployments" }
        table.failures {
            thead { tr { th { "Run" } th { "Commit" } th { "Deployed (UTC)" } th { "Reason" } th { "Restored in" } } }
            tbody {
                @for f in &c.failures {
                    tr {
                        td { code { (f.run_id) } }
                        td { code { (short_sha(&f.commit)) } }
                        td { time datetime=(f.deployed_at.to_rfc3339()) { (f.deployed_at.format("%Y-%m-%d %H:%M")) } }
                        td { (reason_words(&f.reason)) }
                        td { (restore_words(f.deployed_at, f.restored_at)) }
                    }
                }
            }
        }
    }
}

fn weeks_html(weeks: &[Week]) -> Markup {
    let names = pipelines(weeks);
    html! {
        h2 { "Release frequency per week" }
        table.weeks {
            thead {
                tr {
                    th { "Week of (Monday, UTC)" }
                    @for n in &names { th.num { (n) } }
                    th.num { "Total" }
                    th.num { "Failed" }
                }
            }
            tbody {
                @for w in weeks {
                    tr class=[(w.failed > 0).then_some("fail")] {
                        td { (w.start) }
                        @for n in &names { td.num { (count_for(w, n)) } }
                        td.num { (w.deployments) }
                        td.num { (w.failed) }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Charts: hand-drawn SVG through maud (so every text is escaped), sized by viewBox.

const W: f64 = 640.0;
const H: f64 = 260.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 52.0;
const PLOT_W: f64 = W - LEFT - RIGHT;
const PLOT_H: f64 = H - TOP - BOTTOM;

fn c(v: f64) -> String {
    format!("{v:.1}")
}

/// A round top for a count axis and its step, at most five steps: 7 -> (8, 2).
fn count_scale(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let mut magnitude = 1;
    loop {
        for step in [magnitude, 2 * magnitude, 5 * magnitude] {
            let top = max.div_ceil(step) * step;
            if top / step <= 5 {
                return (top, step);
            }
        }
        magnitude *= 10;
    }
}

/// The y axis with grid lines, tick labels and a rotated title; the x axis line and title.
fn axes(ticks: &[(f64, String)], y_title: &str, x_title: &str) -> Markup {
    html! {
        g.axes font-size="11" fill=(GREY) {
            @for (y, label) in ticks {
                line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(*y)) y2=(c(*y)) stroke=(GRID) stroke-width="1" {}
                text x=(c(LEFT - 6.0)) y=(c(y + 4.0)) text-anchor="end" { (label) }
            }
            line x1=(c(LEFT)) x2=(c(LEFT)) y1=(c(TOP)) y2=(c(TOP + PLOT_H)) stroke=(GREY) stroke-width="1" {}
            line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(TOP + PLOT_H)) y2=(c(TOP + PLOT_H)) stroke=(GREY) stroke-width="1" {}
            text x=(c(14.0)) y=(c(TOP + PLOT_H / 2.0)) text-anchor="middle" transform=(format!("rotate(-90 14 {})", c(TOP + PLOT_H / 2.0))) { (y_title) }
            text x=(c(LEFT + PLOT_W / 2.0)) y=(c(H - 6.0)) text-anchor="middle" { (x_title) }
        }
    }
}

fn count_ticks(top: usize, step: usize) -> Vec<(f64, String)> {
    (0..=top / step).map(|i| (TOP + PLOT_H - (i * step) as f64 / top as f64 * PLOT_H, (i * step).to_string())).collect()
}

/// Week labels under the x axis, at most about twelve of them.
fn week_labels(weeks: &[Week], slot: f64) -> Markup {
    let every = weeks.len().div_ceil(12).max(1);
    html! {
        g.labels font-size="10" fill=(GREY) text-anchor="middle" {
            @for (i, w) in weeks.iter().enumerate().filter(|(i, _)| i % every == 0) {
                text x=(c(LEFT + slot * (i as f64 + 0.5))) y=(c(TOP + PLOT_H + 14.0)) { (week_label(w.start)) }
            }
        }
    }
}

fn week_label(d: NaiveDate) -> String {
    d.format("%-d %b").to_string()
}

/// Chart 1: one `rect.bar` per week (all live deployments), its failed part drawn over it
/// in red.
fn deployments_chart(weeks: &[Week]) -> Markup {
    let (top, step) = count_scale(weeks.iter().map(|w| w.deployments).max().unwrap_or(0));
    let slot = PLOT_W / weeks.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y = |v: usize| TOP + PLOT_H - v as f64 / top as f64 * PLOT_H;
    html! {
        svg #chart-deployments role="img" aria-label="Deployments per week: live deployments as bars, the failed part in red" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&count_ticks(top, step), "deployments", "week starting (Monday, UTC)"))
            (week_labels(weeks, slot))
            @for (i, w) in weeks.iter().enumerate() {
                @let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
                @let tip = format!("week of {}: {}, {} failed", w.start, plural(w.deployments, "deployment", "deployments"), w.failed);
                rect class="bar" x=(c(x)) y=(c(y(w.deployments))) width=(c(bar_w)) height=(c(y(0) - y(w.deployments))) fill=(BLUE) {
                    title { (tip) }
                }
                @if w.failed > 0 {
                    rect class="failed" x=(c(x)) y=(c(y(w.failed))) width=(c(bar_w)) height=(c(y(0) - y(w.failed))) fill=(RED) {
                        title { (tip) }
                    }
                }
            }
            g.legend font-size="11" fill=(GREY) {
                rect x=(c(W - RIGHT - 130.0)) y="4" width="10" height="10" fill=(BLUE) {}
                text x=(c(W - RIGHT - 116.0)) y="13" { "live" }
                rect x=(c(W - RIGHT - 70.0)) y="4" width="10" height="10" fill=(RED) {}
                text x=(c(W - RIGHT - 56.0)) y="13" { "failed" }
            }
        }
    }
}

/// The lead-time buckets: label and upper bound in seconds (exclusive).
const LEAD_BUCKETS: [(&str, f64); 7] = [
    ("<1h", 3600.0),
    ("1–4h", 4.0 * 3600.0),
    ("4–24h", 86400.0),
    ("1–3d", 3.0 * 86400.0),
    ("3–7d", 7.0 * 86400.0),
    ("1–4w", 28.0 * 86400.0),
    (">4w", f64::INFINITY),
];

fn lead_time_buckets(samples: &[f64]) -> [usize; 7] {
    let mut counts = [0; 7];
    for s in samples.iter().filter(|s| s.is_finite()) {
        let i = LEAD_BUCKETS.iter().position(|(_, upper)| *s < *upper).unwrap_or(LEAD_BUCKETS.len() - 1);
        counts[i] += 1;
    }
    counts
}

/// Chart 2: a histogram of lead times, one `rect.bar` per bucket.
fn lead_time_chart(samples: &[f64]) -> Markup {
    let counts = lead_time_buckets(samples);
    let total: usize = counts.iter().sum();
    let (top, step) = count_scale(counts.iter().copied().max().unwrap_or(0));
    let slot = PLOT_W / counts.len() as f64;
    let bar_w = slot * 0.7;
    let y = |v: usize| TOP + PLOT_H - v as f64 / top as f64 * PLOT_H;
    html! {
        svg #chart-lead-time role="img" aria-label="Lead-time distribution: commits per lead-time bucket" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&count_ticks(top, step), "commits", "lead time (commit to production)"))
            g.labels font-size="11" fill=(GREY) text-anchor="middle" {
                @for (i, (label, _)) in LEAD_BUCKETS.iter().enumerate() {
                    text x=(c(LEFT + slot * (i as f64 + 0.5))) y=(c(TOP + PLOT_H + 14.0)) { (label) }
                }
            }
            @for (i, n) in counts.iter().enumerate() {
                @let share = if total == 0 { 0.0 } else { *n as f64 / total as f64 };
                rect class="bar" x=(c(LEFT + slot * i as f64 + (slot - bar_w) / 2.0)) y=(c(y(*n))) width=(c(bar_w)) height=(c(y(0) - y(*n))) fill=(BLUE) {
                    title { (LEAD_BUCKETS[i].0) ": " (plural(*n, "commit", "commits")) " (" (percent(share)) ")" }
                }
            }
            @if total == 0 {
                text x=(c(LEFT + PLOT_W / 2.0)) y=(c(TOP + PLOT_H / 2.0)) text-anchor="middle" font-size="13" fill=(GREY) { "no commits deployed in this window" }
            }
        }
    }
}

/// Chart 3: the change failure rate of each week with deployments, as points joined within
/// runs of consecutive such weeks; weeks with none are skipped (a gap in the line). The
/// window's overall rate is a dashed line.
fn change_failure_chart(weeks: &[Week], overall: Option<f64>) -> Markup {
    let slot = PLOT_W / weeks.len().max(1) as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y = |rate: f64| TOP + PLOT_H - rate.clamp(0.0, 1.0) * PLOT_H;
    let points: Vec<(usize, &Week, f64)> =
        weeks.iter().enumerate().filter(|(_, w)| w.deployments > 0).map(|(i, w)| (i, w, w.failed as f64 / w.deployments as f64)).collect();
    let mut runs: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut last: Option<usize> = None;
    for (i, _, rate) in &points {
        if last.map(|l| l + 1) != Some(*i) {
            runs.push(Vec::new());
        }
        if let Some(run) = runs.last_mut() {
            run.push((x(*i), y(*rate)));
        }
        last = Some(*i);
    }
    let ticks: Vec<(f64, String)> = [0.0, 0.25, 0.5, 0.75, 1.0].iter().map(|r| (y(*r), format!("{:.0}%", r * 100.0))).collect();
    html! {
        svg #chart-change-failure role="img" aria-label="Change failure rate per week; weeks without deployments are skipped" viewBox=(format!("0 0 {W} {H}")) {
            (axes(&ticks, "failed deployments", "week starting (Monday, UTC)"))
            (week_labels(weeks, slot))
            @if let Some(rate) = overall {
                line x1=(c(LEFT)) x2=(c(LEFT + PLOT_W)) y1=(c(y(rate))) y2=(c(y(rate))) stroke=(GREY) stroke-width="1" stroke-dasharray="4 3" {
                    title { "whole window: " (percent(rate)) }
                }
                text x=(c(LEFT + PLOT_W - 2.0)) y=(c(y(rate) - 4.0)) text-anchor="end" font-size="10" fill=(GREY) { "window " (percent(rate)) }
            }
            @for run in runs.iter().filter(|r| r.len() > 1) {
                polyline points=(run.iter().map(|(px, py)| format!("{},{}", c(*px), c(*py))).collect::<Vec<_>>().join(" ")) fill="none" stroke=(RED) stroke-width="2" {}
            }
            @for (i, w, rate) in &points {
                circle class="point" cx=(c(x(*i))) cy=(c(y(*rate))) r="4" fill=(RED) {
                    title { "week of " (w.start) ": " (w.failed) " of " (plural(w.deployments, "deployment", "deployments")) " failed (" (percent(*rate)) ")" }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{ChangeFailure, Failure, Frequency, LeadTime, TimeToRestore};
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn week(start: (i32, u32, u32), by: &[(&str, usize)], failed: usize) -> Week {
        Week {
            start: NaiveDate::from_ymd_opt(start.0, start.1, start.2).unwrap(),
            deployments: by.iter().map(|(_, n)| n).sum(),
            failed,
            by_pipeline: by.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
        }
    }

    /// Four weeks, the third without a deployment; two pipelines, one with a hostile name
    /// and one with a comma.
    fn full_report() -> Report {
        Report {
            environment: "production".into(),
            pipeline: Some("<b>x</b>".into()),
            since: at(2024, 1, 1, 0),
            until: at(2024, 1, 29, 0),
            deployments: 9,
            refused: 2,
            frequency: Frequency {
                per_day: 9.0 / 28.0,
                per_week: 2.25,
                deployment_days_per_week: 2.0,
                band: Band::High,
                trend: Trend::Better,
                previous_per_week: Some(1.5),
            },
            lead_time: Some(LeadTime {
                median_secs: 11_520.0,
                p90_secs: 187_200.0,
                commits: 14,
                head_only: 3,
                band: Band::Elite,
                trend: Trend::Worse,
                previous_median_secs: Some(2_700.0),
            }),
            change_failure: Some(ChangeFailure {
                failed: 2,
                total: 9,
                rate: 2.0 / 9.0,
                band: Band::Medium,
                trend: Trend::Same,
                previous_rate: Some(0.2),
                failures: vec![
                    Failure {
                        run_id: "01HRUN-A".into(),
                        commit: "abcdef0123456789".into(),
                        deployed_at: at(2024, 1, 3, 10),
                        reason: FailureReason::FailedVerification,
                        restored_at: Some(at(2024, 1, 3, 13)),
                    },
                    Failure {
                        run_id: "01HRUN-B".into(),
                        commit: "1234567890abcdef".into(),
                        deployed_at: at(2024, 1, 24, 9),
                        reason: FailureReason::FollowedByFix,
                        restored_at: None,
                    },
                ],
            }),
            time_to_restore: Some(TimeToRestore {
                median_secs: 10_800.0,
                restored: 1,
                unrestored: 1,
                band: Band::Low,
                trend: Trend::New,
                previous_median_secs: None,
            }),
            weeks: vec![
                week((2024, 1, 1), &[("<b>x</b>", 3), ("web, eu", 1)], 1),
                week((2024, 1, 8), &[("<b>x</b>", 2)], 0),
                week((2024, 1, 15), &[], 0),
                week((2024, 1, 22), &[("<b>x</b>", 1), ("web, eu", 2)], 1),
            ],
            lead_time_samples: vec![600.0, 5_000.0, 20_000.0, 100_000.0, 400_000.0, 1_000_000.0, 3_000_000.0, 700.0],
            sources: vec!["elite: on demand (DORA 2023)".into(), "\"quoted\" <source>".into()],
        }
    }

    fn empty_report() -> Report {
        Report {
            deployments: 0,
            refused: 1,
            pipeline: None,
            lead_time: None,
            change_failure: None,
            time_to_restore: None,
            lead_time_samples: vec![],
            weeks: full_report().weeks.into_iter().map(|w| Week { deployments: 0, failed: 0, by_pipeline: vec![], ..w }).collect(),
            ..full_report()
        }
    }

    /// An RFC 4180 reader: records of fields, quotes honoured (commas, quotes, line breaks
    /// inside them).
    fn parse_csv(text: &str) -> Vec<Vec<String>> {
        let mut records = Vec::new();
        let mut record = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut chars = text.chars().peekable();
        while let Some(ch) = chars.next() {
            match (quoted, ch) {
                (true, '"') if chars.peek() == Some(&'"') => {
                    field.push('"');
                    chars.next();
                }
                (true, '"') => quoted = false,
                (true, _) => field.push(ch),
                (false, '"') => quoted = true,
                (false, ',') => record.push(std::mem::take(&mut field)),
                (false, '\r') => {}
                (false, '\n') => {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                (false, _) => field.push(ch),
            }
        }
        assert!(!quoted, "unterminated quote");
        assert!(field.is_empty() && record.is_empty(), "last record lacks its line end");
        records
    }

    /// Sections: runs of records separated by an empty line.
    fn sections(records: Vec<Vec<String>>) -> Vec<Vec<Vec<String>>> {
        let mut out = vec![Vec::new()];
        for r in records {
            if r.len() == 1 && r[0].is_empty() {
                out.push(Vec::new());
            } else if let Some(s) = out.last_mut() {
                s.push(r);
            }
        }
        out
    }

    #[test]
    fn durations_read_as_two_units_at_most() {
        assert_eq!(duration(12.0), "12s");
        assert_eq!(duration(2_700.0), "45m");
        assert_eq!(duration(330.0), "5m30s");
        assert_eq!(duration(11_520.0), "3h12m");
        assert_eq!(duration(187_200.0), "2d4h");
        assert_eq!(duration(86_399.0), "1d");
        assert_eq!(duration(-5.0), "0s");
        assert_eq!(duration(f64::NAN), "0s");
    }

    #[test]
    fn table_shows_the_four_keys_with_bands_trends_and_what_is_counted() {
        let t = table(&full_report());
        for key in ["deployment frequency", "lead time for changes", "change failure rate", "time to restore"] {
            let line = t.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no row for {key}:\n{t}"));
            assert!(["elite", "high", "medium", "low"].iter().any(|b| line.contains(b)), "no band on {line}");
        }
        assert!(t.contains("better (was 1.5/week)"), "{t}");
        assert!(t.contains("worse (was 45m)"), "{t}");
        assert!(t.contains("same (was 20.0%)"), "{t}");
        assert!(t.contains("new (no figure in the window before)"), "{t}");
        assert!(t.contains("median 3h12m · p90 2d4h · 14 commits"), "{t}");
        assert!(t.contains("2/9 = 22.2%"), "{t}");
        assert!(t.contains("DevLake-style") && t.contains("Four Keys"), "{t}");
        assert!(t.contains("warning: 3 deployments counted by their head commit only: repository not readable"), "{t}");
        assert!(t.contains("production, <b>x</b>") && t.contains("2024-01-01 – 2024-01-29"), "{t}");
        assert!(t.contains("9 live deployments, 2 refused"), "{t}");
    }

    #[test]
    fn table_lists_failures_with_reason_and_restore_time() {
        let t = table(&full_report());
        let a = t.lines().find(|l| l.starts_with("01HRUN-A")).expect("failure A");
        assert!(a.contains("abcdef01") && a.contains("failed verification") && a.contains("3h"), "{a}");
        let b = t.lines().find(|l| l.starts_with("01HRUN-B")).expect("failure B");
        assert!(b.contains("followed by a fix within 24 h") && b.contains("not restored"), "{b}");
    }

    #[test]
    fn table_has_a_row_per_week_with_a_column_per_pipeline_total_and_failed() {
        let t = table(&full_report());
        let header = t.lines().find(|l| l.starts_with("WEEK OF")).expect("weekly header");
        assert!(header.contains("<b>x</b>") && header.contains("web, eu") && header.ends_with("TOTAL  FAILED"), "{header}");
        let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("2024-01-")).collect();
        assert_eq!(rows.len(), 4, "{t}");
        assert_eq!(rows[0].split_whitespace().collect::<Vec<_>>(), ["2024-01-01", "3", "1", "4", "1"]);
        assert_eq!(rows[2].split_whitespace().collect::<Vec<_>>(), ["2024-01-15", "0", "0", "0", "0"]);
    }

    #[test]
    fn table_prints_control_characters_harmlessly() {
        let r = Report { environment: "prod\x1b[2J".into(), ..full_report() };
        assert!(!table(&r).contains('\x1b'));
    }

    #[test]
    fn csv_parses_back_into_a_figures_section_and_a_weekly_section() {
        let text = csv(&full_report());
        assert!(text.ends_with("\r\n") && !text.replace("\r\n", "").contains('\n'), "lines end in CRLF");
        let s = sections(parse_csv(&text));
        assert_eq!(s.len(), 2, "{text}");
        let (figures, weekly) = (&s[0], &s[1]);
        assert_eq!(figures[0], ["measure", "value", "unit", "band", "trend", "previous", "note"]);
        assert_eq!(figures.len(), 1 + 19);
        assert!(figures.iter().all(|r| r.len() == 7), "{figures:?}");
        let get = |m: &str| figures.iter().find(|r| r[0] == m).unwrap_or_else(|| panic!("no {m}"));
        assert_eq!(get("pipeline")[1], "<b>x</b>");
        assert_eq!(get("lead_time_median")[1..6], ["11520", "seconds", "elite", "worse", "2700"]);
        assert_eq!(get("deployment_days_per_week")[3], "high");
        assert_eq!(get("change_failure_rate")[1..6], ["22.2", "percent", "medium", "same", "20.0"]);
        assert_eq!(get("time_to_restore_median")[3..6], ["low", "new", ""]);
        assert_eq!(weekly[0], ["week", "<b>x</b>", "web, eu", "total", "failed"]);
        assert_eq!(weekly.len(), 1 + 4);
        assert!(weekly.iter().all(|r| r.len() == 5), "{weekly:?}");
        assert_eq!(weekly[4], ["2024-01-22", "1", "2", "3", "1"]);
    }

    #[test]
    fn csv_quotes_commas_quotes_and_line_breaks() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("plain"), "plain");
        let r = Report { environment: "prod \"eu\",\nwest".into(), ..full_report() };
        let records = parse_csv(&csv(&r));
        assert_eq!(records[1], ["environment", "prod \"eu\",\nwest", "", "", "", "", ""]);
    }

    #[test]
    fn html_is_one_self_contained_file_with_no_url_and_no_script() {
        let h = html(&full_report());
        assert!(h.starts_with("<!DOCTYPE html>"), "{}", &h[..40]);
        assert!(h.contains("<style>"));
        for banned in ["http://", "https://", "<script", "src=", "href=", "url(", "@import", "//"] {
            assert!(!h.contains(banned), "found {banned}");
        }
    }

    #[test]
    fn html_has_the_three_charts_with_a_bar_per_week_a_bar_per_bucket_and_a_point_per_week_with_deployments() {
        let h = html(&full_report());
        let chart = |id: &str| {
            let start = h.find(&format!("<svg id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id}"));
            let end = start + h[start..].find("</svg>").unwrap();
            &h[start..end]
        };
        let deployments = chart("chart-deployments");
        assert!(deployments.contains("role=\"img\"") && deployments.contains("aria-label=") && deployments.contains("viewBox="));
        assert_eq!(deployments.matches("<rect class=\"bar\"").count(), 4);
        assert_eq!(deployments.matches("<rect class=\"failed\"").count(), 2);
        assert!(deployments.contains("<title>week of 2024-01-01: 4 deployments, 1 failed</title>"));
        let lead = chart("chart-lead-time");
        assert_eq!(lead.matches("<rect class=\"bar\"").count(), 7);
        assert!(lead.contains("<title>1–4h: 1 commit (12.5%)</title>"), "{lead}");
        assert!(lead.contains("<title>&lt;1h: 2 commits (25.0%)</title>"), "{lead}");
        let cfr = chart("chart-change-failure");
        assert_eq!(cfr.matches("<circle class=\"point\"").count(), 3, "the week without deployments is skipped");
        assert_eq!(cfr.matches("<polyline").count(), 1, "the gap breaks the line; a lone point draws none");
        assert!(cfr.contains("<title>week of 2024-01-22: 1 of 3 deployments failed (33.3%)</title>"));
        assert_eq!(h.matches("<rect class=\"bar\"").count(), 4 + 7);
    }

    #[test]
    fn html_escapes_every_name() {
        let h = html(&full_report());
        assert!(!h.contains("<b>x</b>"));
        assert!(h.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(h.contains("&quot;quoted&quot; &lt;source&gt;"), "sources are escaped");
    }

    #[test]
    fn html_shows_figures_bands_failures_warning_weekly_table_and_sources() {
        let h = html(&full_report());
        for s in [
            "9 live deployments, 2 refused",
            "2.0 deployment days/week · ",
            "0.32/day",
            "class=\"band band-elite\"",
            "class=\"trend trend-worse\"",
            "3 deployments counted by their head commit only: repository not readable",
            "rolled back by hand, or were followed by a fix within 24 h",
            "not restored",
            "class=\"weeks\"",
            "class=\"sources\"",
        ] {
            assert!(h.contains(s), "missing {s}");
        }
        assert_eq!(h.matches("<tr class=\"fail\">").count(), 2);
    }

    #[test]
    fn body_is_the_content_without_document_or_head() {
        let b = body(&full_report()).into_string();
        assert!(b.starts_with("<section class=\"release-report\">"));
        for banned in ["<html", "<head", "<body", "<!DOCTYPE", "<style"] {
            assert!(!b.contains(banned), "found {banned}");
        }
        assert!(b.contains("id=\"chart-lead-time\""));
        assert!(html(&full_report()).contains(&b));
    }

    #[test]
    fn empty_window_says_so_everywhere_and_draws_no_chart() {
        let r = empty_report();
        let sentence = "no production deployments in production between 2024-01-01 and 2024-01-29";
        let h = html(&r);
        assert!(h.contains(sentence));
        assert!(!h.contains("<svg") && !h.contains("class=\"keys\"") && !h.contains("class=\"weeks\""));
        assert!(h.contains("all pipelines") && h.contains("0 live deployments, 1 refused"));
        let t = table(&r);
        assert!(t.contains(sentence) && !t.contains("KEY") && !t.contains("WEEK OF"), "{t}");
        let records = parse_csv(&csv(&r));
        assert!(records.iter().all(|rec| rec.len() == 7), "one section only: {records:?}");
        assert_eq!(records.last().unwrap()[..2], ["summary".to_string(), sentence.to_string()]);
        assert_eq!(records.iter().find(|rec| rec[0] == "live_deployments").unwrap()[1], "0");
    }

    #[test]
    fn missing_figures_are_worded_not_zero() {
        let r = Report { lead_time: None, time_to_restore: None, lead_time_samples: vec![], ..full_report() };
        let t = table(&r);
        assert!(t.contains("no commits deployed") && t.contains("no failures to restore from"), "{t}");
        let h = html(&r);
        assert!(h.contains("no commits deployed in this window"), "the histogram says it is empty");
        let records = parse_csv(&csv(&r));
        assert_eq!(records.iter().find(|rec| rec[0] == "lead_time_median").unwrap()[1], "");
    }

    #[test]
    fn count_axes_round_up_in_at_most_five_steps() {
        assert_eq!(count_scale(0), (1, 1));
        assert_eq!(count_scale(4), (4, 1));
        assert_eq!(count_scale(7), (8, 2));
        assert_eq!(count_scale(23), (25, 5));
        assert_eq!(count_scale(130), (150, 50));
    }
}
