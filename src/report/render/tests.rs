//! The renderings of one report, checked against each other and against the layout.

use super::*;
use super::{csv_text::*, page::*, table::*};
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
