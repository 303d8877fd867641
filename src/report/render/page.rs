//! The HTML of a report: a whole document (`html`) or a fragment for the dashboard (`body`).

use super::*;

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

pub(super) fn keys_html(report: &Report) -> Markup {
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

pub(super) fn failures_html(report: &Report) -> Markup {
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

pub(super) fn weeks_html(weeks: &[Week]) -> Markup {
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
