//! `GET /`: the runs, newest first, with a filter by project and state and a link to
//! older runs.

use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{badge, duration, enc, page, run_href, state_key, when, Section, RUN_STATES};
use super::Viewer;
use crate::store::RunRecord;

/// The filter form's GET parameters (`?project=shop&state=failed`); empty values mean
/// "any". `state` takes `state_key` values.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct RunsFilter {
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

impl RunsFilter {
    fn project(&self) -> Option<&str> {
        self.project.as_deref().map(str::trim).filter(|p| !p.is_empty())
    }

    fn state(&self) -> Option<&str> {
        self.state.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// Whether a run passes the filter (for the handler that fetches the page's runs).
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.project().is_none_or(|p| run.project.as_deref() == Some(p))
            && self.state().is_none_or(|s| state_key(run.state) == s)
    }

    /// The filter as query parameters to append to a URL (`&project=shop`), empty for none.
    fn query(&self) -> String {
        let mut q = String::new();
        if let Some(p) = self.project() {
            q.push_str(&format!("&project={}", enc(p)));
        }
        if let Some(s) = self.state() {
            q.push_str(&format!("&state={}", enc(s)));
        }
        q
    }
}

/// The runs table. `runs` is the page to show (already filtered by the handler, e.g. with
/// `RunsFilter::matches`); `next` is the cursor of the page after it, linked as
/// `/?before=<next>` (keeping the filter).
pub fn runs(viewer: &Viewer, runs: &[RunRecord], filter: &RunsFilter, next: Option<&str>) -> Markup {
    let filtered = filter.project().is_some() || filter.state().is_some();
    let body = html! {
        h1 { "Runs" }
        form.filter method="get" action="/" {
            div {
                label for="project" { "Project" }
                input #project type="text" name="project" value=(filter.project().unwrap_or(""));
            }
            div {
                label for="state" { "State" }
                select #state name="state" {
                    option value="" selected[filter.state().is_none()] { "any" }
                    @for s in RUN_STATES {
                        option value=(state_key(s)) selected[filter.state() == Some(state_key(s).as_str())] { (s.name()) }
                    }
                }
            }
            button #filter type="submit" { "Filter" }
            @if filtered {
                a href="/" { "clear" }
            }
        }
        @if runs.is_empty() {
            p.muted {
                @if filtered { "No runs match this filter." } @else { "No runs yet: push to a watched branch, or start one with `gantry run`." }
            }
        } @else {
            table.runs {
                thead { tr { th { "Run" } th { "Project / pipeline" } th { "State" } th { "Commit" } th { "Started" } th { "Duration" } } }
                tbody {
                    @for r in runs { (row(r)) }
                }
            }
        }
        @if let Some(next) = next {
            p.older { a #older href=(format!("/?before={}{}", enc(next), filter.query())) { "Older runs →" } }
        }
    };
    page("Runs", Some(viewer), Some(Section::Runs), body)
}

fn row(r: &RunRecord) -> Markup {
    html! {
        tr {
            td.mono { a href=(run_href(&r.id)) { (r.id) } }
            td {
                @if let Some(p) = &r.project { (p) " / " }
                (r.pipeline)
            }
            td {
                (badge(r.state.name()))
                @if let Some(m) = &r.message { div.muted { (m) } }
            }
            td {
                code { (r.commit.short) } " " (r.commit.summary)
                div.muted {
                    (r.commit.author_name)
                    @if let Some(b) = &r.commit.branch { " on " (b) }
                }
            }
            td { (when(r.created_at)) }
            td { (duration(r.duration())) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::config::Role;

    #[test]
    fn the_runs_table_shows_each_run_with_its_state_commit_and_a_link() {
        let list = [running_run("r2"), blocked_run("r1")];
        let html = runs(&viewer(Role::Viewer), &list, &RunsFilter::default(), None).into_string();
        assert!(html.contains("<title>Runs · Gantry</title>"), "{html}");
        assert!(html.contains(r#"href="/runs/r1""#) && html.contains(r#"href="/runs/r2""#), "{html}");
        assert!(html.contains(">running<") && html.contains(">failed<"), "{html}");
        assert!(html.contains("shop / storefront"), "{html}");
        assert!(html.contains("a1b2c3d4") && html.contains("Dev Eloper"), "{html}");
        assert!(html.contains("2026-11-27 18:00:00 UTC"), "{html}");
        assert!(!html.contains(r#"id="older""#), "no older link without a cursor");
    }

    #[test]
    fn a_commit_summary_with_markup_is_shown_escaped() {
        let mut r = blocked_run("r1");
        r.commit.summary = "<script>alert(1)</script>".into();
        let html = runs(&viewer(Role::Viewer), &[r], &RunsFilter::default(), None).into_string();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>alert(1)"), "{html}");
    }

    #[test]
    fn the_filter_is_echoed_in_the_form_and_kept_by_the_older_link() {
        let filter = RunsFilter { project: Some("shop & co".into()), state: Some("awaiting_approval".into()) };
        let html = runs(&viewer(Role::Viewer), &[], &filter, Some("01JD")).into_string();
        assert!(html.contains(r#"<form class="filter" method="get" action="/">"#), "{html}");
        assert!(html.contains(r#"value="shop &amp; co""#), "{html}");
        assert!(html.contains(r#"<option value="awaiting_approval" selected>awaiting approval</option>"#), "{html}");
        assert!(html.contains(r#"href="/?before=01JD&amp;project=shop%20%26%20co&amp;state=awaiting_approval""#), "{html}");
        assert!(html.contains("No runs match this filter."), "{html}");
        let plain = runs(&viewer(Role::Viewer), &[], &RunsFilter::default(), Some("01JD")).into_string();
        assert!(plain.contains(r#"href="/?before=01JD""#), "{plain}");
    }

    #[test]
    fn the_filter_matches_by_project_and_state_key_and_ignores_empty_values() {
        let r = blocked_run("r1");
        let f = |project: Option<&str>, state: Option<&str>| RunsFilter { project: project.map(Into::into), state: state.map(Into::into) };
        assert!(f(None, None).matches(&r));
        assert!(f(Some(""), Some("")).matches(&r));
        assert!(f(Some("shop"), Some("failed")).matches(&r));
        assert!(!f(Some("other"), None).matches(&r));
        assert!(!f(None, Some("succeeded")).matches(&r));
    }
}
