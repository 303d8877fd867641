//! The CSV of a report (the layout is in `render`'s module comment).

use super::*;

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn csv_row(out: &mut String, fields: &[&str]) {
    let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
    out.push_str(&line.join(","));
    out.push_str("\r\n");
}

/// The report as CSV: see the module comment for the layout.
/// The figures section's rows, all of one shape.
struct Rows(String);

impl Rows {
    #[allow(clippy::too_many_arguments)]
    fn row(&mut self, measure: &str, value: String, unit: &str, band: Option<Band>, trend: Option<Trend>, previous: Option<String>, note: &str) {
        let fields = [measure, &value, unit, band.map_or("", band_word), trend.map_or("", trend_word), previous.as_deref().unwrap_or(""), note];
        csv_row(&mut self.0, &fields);
    }
}

fn secs(s: f64) -> String {
    format!("{s:.0}")
}

pub fn csv(report: &Report) -> String {
    let mut rows = Rows(String::new());
    csv_row(&mut rows.0, &["measure", "value", "unit", "band", "trend", "previous", "note"]);
    rows.row("environment", report.environment.clone(), "", None, None, None, "");
    rows.row("pipeline", report.pipeline.clone().unwrap_or_default(), "", None, None, None, "empty: all pipelines");
    rows.row("since", report.since.to_rfc3339(), "UTC", None, None, None, "");
    rows.row("until", report.until.to_rfc3339(), "UTC", None, None, None, "");
    rows.row("live_deployments", report.deployments.to_string(), "count", None, None, None, "production deployments that went live in the window");
    rows.row("refused_deployments", report.refused.to_string(), "count", None, None, None, "deployments that never went live (unhealthy); counted nowhere else");
    if report.deployments == 0 {
        rows.row("summary", empty_sentence(report), "", None, None, None, "");
        return rows.0;
    }
    frequency_rows(&mut rows, report);
    lead_time_rows(&mut rows, report);
    change_failure_rows(&mut rows, report);
    restore_rows(&mut rows, report);
    let mut out = rows.0;
    out.push_str("\r\n");
    weekly_section(&mut out, report);
    out
}

fn frequency_rows(rows: &mut Rows, report: &Report) {
    let f = &report.frequency;
    let devlake = "every live deployment counted (DevLake-style)";
    rows.row( "deployments_per_day", format!("{:.2}", f.per_day), "per day", None, None, None, devlake);
    rows.row(
        "deployments_per_week",
        format!("{:.2}", f.per_week),
        "per week",
        None,
        Some(f.trend),
        f.previous_per_week.map(|p| format!("{p:.2}")),
        "every live deployment counted (DevLake-style); the trend compares this figure",
    );
    rows.row(
        "deployment_days_per_week",
        format!("{:.2}", f.deployment_days_per_week),
        "days per week",
        Some(f.band),
        None,
        None,
        "UTC days with at least one live deployment, per week (Four Keys); the band uses this figure",
    );
}

fn lead_time_rows(rows: &mut Rows, report: &Report) {
    match &report.lead_time {
        Some(l) => {
            rows.row( "lead_time_median", secs(l.median_secs), "seconds", Some(l.band), Some(l.trend), l.previous_median_secs.map(secs), "commit time to the first production deployment that brought it");
            rows.row( "lead_time_p90", secs(l.p90_secs), "seconds", None, None, None, "");
            rows.row( "lead_time_commits", l.commits.to_string(), "count", None, None, None, "every commit counted once");
            let note = if l.head_only > 0 { "deployments counted by their head commit only: repository not readable" } else { "" };
            rows.row( "lead_time_head_only", l.head_only.to_string(), "deployments", None, None, None, note);
        }
        None => {
            let none = "no live deployment brought a commit";
            for (m, unit) in [("lead_time_median", "seconds"), ("lead_time_p90", "seconds"), ("lead_time_commits", "count"), ("lead_time_head_only", "deployments")] {
                rows.row( m, String::new(), unit, None, None, None, none);
            }
        }
    }
}

fn change_failure_rows(rows: &mut Rows, report: &Report) {
    match &report.change_failure {
        Some(c) => {
            rows.row(
                "change_failure_rate",
                format!("{:.1}", c.rate * 100.0),
                "percent",
                Some(c.band),
                Some(c.trend),
                c.previous_rate.map(|p| format!("{:.1}", p * 100.0)),
                "failed verification, rolled back by hand, or followed by a fix within 24 h, over live deployments",
            );
            rows.row( "change_failures", c.failed.to_string(), "count", None, None, None, "");
            rows.row( "change_failure_total", c.total.to_string(), "count", None, None, None, "");
        }
        None => {
            for (m, unit) in [("change_failure_rate", "percent"), ("change_failures", "count"), ("change_failure_total", "count")] {
                rows.row( m, String::new(), unit, None, None, None, "no live deployment");
            }
        }
    }
}

fn restore_rows(rows: &mut Rows, report: &Report) {
    match &report.time_to_restore {
        Some(t) => {
            rows.row( "time_to_restore_median", secs(t.median_secs), "seconds", Some(t.band), Some(t.trend), t.previous_median_secs.map(secs), "failed deployment to a healthy version serving again, over restored failures");
            rows.row( "restored", t.restored.to_string(), "count", None, None, None, "");
            rows.row( "unrestored", t.unrestored.to_string(), "count", None, None, None, "failures with no healthy deployment since");
        }
        None => {
            for (m, unit) in [("time_to_restore_median", "seconds"), ("restored", "count"), ("unrestored", "count")] {
                rows.row( m, String::new(), unit, None, None, None, "no failed deployment");
            }
        }
    }
}

/// Weekly release frequency: a column per pipeline, then the totals.
fn weekly_section(out: &mut String, report: &Report) {
    let names = pipelines(&report.weeks);
    let mut header: Vec<&str> = vec!["week"];
    header.extend(names.iter().copied());
    header.extend(["total", "failed"]);
    csv_row(out, &header);
    for w in &report.weeks {
        let mut fields = vec![w.start.to_string()];
        fields.extend(names.iter().map(|n| count_for(w, n).to_string()));
        fields.extend([w.deployments.to_string(), w.failed.to_string()]);
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        csv_row(out, &fields);
    }
}

// ---------------------------------------------------------------------------------------
// HTML
