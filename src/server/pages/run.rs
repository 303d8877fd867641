//! `GET /runs/{id}`: one run: its facts, its stages as a timeline with results and gate
//! verdicts, its approval (with the decision forms for those who may decide), its logs,
//! followed live while the run is going.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped};

use super::approvals::{approval_block, decision_forms};
use super::layout::{badge, duration, enc, page, result_line, stage_word, state_class, utc, when, Section};
use super::Viewer;
use crate::events::LogLine;
use crate::gate::verdict::Verdict;
use crate::store::{RunRecord, StageRecord};

pub fn run(viewer: &Viewer, run: &RunRecord, logs: &[LogLine]) -> Markup {
    let live = !run.state.is_terminal();
    let body = html! {
        h1 { "Run " span.mono { (run.id) } " " (badge(run.state.name())) }
        @if let Some(m) = &run.message { p.notice { (m) } }
        @if matches!(run.state, crate::events::RunState::Queued | crate::events::RunState::Running) && viewer.role.covers(crate::config::Role::Developer) {
            form.decide method="post" action=(format!("/runs/{}/cancel", enc(&run.id))) {
                button.reject #cancel type="submit" { "Cancel run" }
            }
        }
        @if run.state.is_terminal() && run.project.is_some() && viewer.role.covers(crate::config::Role::Developer) {
            form.decide method="post" action=(format!("/runs/{}/rerun", enc(&run.id))) {
                button #rerun type="submit" { "Run again" }
            }
            @if !matches!(run.state, crate::events::RunState::Succeeded) {
                form.decide method="post" action=(format!("/runs/{}/rerun", enc(&run.id))) {
                    input type="hidden" name="failed" value="true";
                    button #rerun-failed type="submit" { "Run what failed again" }
                }
            }
        }
        (facts(run))
        h2 { "Stages" }
        (timeline(run))
        @if let Some(a) = &run.approval {
            h2 { "Approval" }
            div.card {
                (approval_block(a))
                (decision_forms(viewer, run, false))
            }
        }
        h2 { "Logs" }
        (log_view(run, logs))
        @if live {
            script { (PreEscaped(LIVE_LOGS)) }
        }
    };
    page(&format!("Run {} ({})", run.id, run.state.name()), Some(viewer), Some(Section::Runs), body)
}

fn facts(run: &RunRecord) -> Markup {
    let c = &run.commit;
    html! {
        dl.facts {
            dt { "State" } dd { (run.state.name()) }
            dt { "Pipeline" } dd { (run.pipeline) " " span.muted { "(" (run.source) ")" } }
            @if let Some(p) = &run.project { dt { "Project" } dd { (p) } }
            dt { "Commit" } dd { code { (c.short) } " " (c.summary) div.muted.mono { (c.sha) } }
            dt { "Author" } dd { (c.author_name) " <" (c.author_email) "> at " (when(c.time.with_timezone(&Utc))) }
            dt { "Branch" } dd { (c.branch.as_deref().unwrap_or("-")) }
            dt { "Repository" } dd.mono { (run.repo) }
            dt { "Triggered by" } dd { (run.triggered_by.as_deref().unwrap_or("-")) }
            @if let Some(old) = &run.rerun_of {
                dt { "Runs again" } dd { a.mono href=(format!("/runs/{}", enc(old))) { (old) } @if run.rerun_failed { " (what failed)" } }
            }
            @if let Some(engine) = &run.engine {
                dt { "Engine" } dd { (engine) @if let Some(lost) = &run.retry_after_loss_of { " " span.muted { "(run again after engine " (lost) " was lost)" } } }
            }
            dt { "Started" } dd { (when(run.created_at)) }
            @if let Some(f) = run.finished_at { dt { "Finished" } dd { (when(f)) } }
            dt { "Duration" } dd { (duration(run.duration())) }
        }
    }
}

/// Where the timeline starts and ends: the run's span, stretched to hold every stage.
fn span(run: &RunRecord) -> (DateTime<Utc>, DateTime<Utc>) {
    let stage_times = run.stages.iter().flat_map(|s| [s.started_at, s.finished_at]).flatten();
    let start = stage_times.clone().chain([run.created_at]).min().unwrap_or(run.created_at);
    let end = stage_times.chain([run.finished_at.unwrap_or_else(Utc::now)]).max().unwrap_or(start);
    (start, end)
}

/// `left` and `width` of a stage's bar, in % of the run's span.
fn bar_style(stage: &StageRecord, (start, end): (DateTime<Utc>, DateTime<Utc>)) -> Option<String> {
    let from = stage.started_at?;
    let to = stage.finished_at.unwrap_or(end);
    let total = (end - start).num_milliseconds().max(1) as f64;
    let left = ((from - start).num_milliseconds() as f64 / total * 100.0).clamp(0.0, 100.0);
    let width = ((to - from).num_milliseconds() as f64 / total * 100.0).clamp(0.5, 100.0 - left);
    Some(format!("left:{left:.2}%;width:{width:.2}%"))
}

fn timeline(run: &RunRecord) -> Markup {
    let span = span(run);
    html! {
        div.timeline {
            @for s in &run.stages {
                @let word = stage_word(s.state);
                div.stage id=(format!("stage-{}", enc(&s.name))) {
                    div.name { (s.name) }
                    div.track {
                        @if let Some(style) = bar_style(s, span) {
                            div.bar.(state_class(word)) style=(style) title=(stage_times(s)) {}
                        }
                    }
                    div.info {
                        (badge(word))
                        @if s.attempts > 1 { " attempt " (s.attempts) }
                        @if let Some(d) = s.duration() { " " span.muted { (duration(d)) } }
                        @if let Some(code) = s.exit_code.filter(|c| *c != 0) { " " span.muted { "exit " (code) } }
                        @if let Some(m) = &s.message { div { (m) } }
                    }
                    @if s.result.is_some() || s.verdict.is_some() || s.verification.is_some() {
                        div.detail {
                            @if let Some(r) = &s.result { div.result { "→ " (result_line(r)) } }
                            @if let Some(v) = &s.verdict { (verdict_table("Gate verdict", v)) }
                            @if let Some(v) = &s.verification { (verdict_table("Verification after going live", v)) }
                        }
                    }
                }
            }
        }
    }
}

fn stage_times(s: &StageRecord) -> String {
    let fmt = |t: Option<DateTime<Utc>>| t.map(utc).unwrap_or_else(|| "…".into());
    format!("{} – {}", fmt(s.started_at), fmt(s.finished_at))
}

/// Every check of a verdict: what was measured against what it had to be.
fn verdict_table(title: &str, v: &Verdict) -> Markup {
    html! {
        table.verdict {
            caption { (title) ": " @if v.passed { (badge("passed")) } @else { (badge("blocked")) } }
            thead { tr { th { "Check" } th { "Measured" } th { "Threshold" } th { "Result" } th { "Note" } } }
            tbody {
                @for c in &v.checks {
                    tr class=[(!c.passed).then_some("fail")] {
                        td { (c.name) }
                        td.mono { (c.measured.as_deref().unwrap_or("no data")) }
                        td.mono { (c.threshold) }
                        td { @if c.passed { "pass" } @else { strong { "FAIL" } } }
                        td { (c.note.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

/// The stored output as `stage | text`; while the run goes on, `LIVE_LOGS` appends lines
/// from the stream named in `data-stream`.
fn log_view(run: &RunRecord, logs: &[LogLine]) -> Markup {
    let width = run.stages.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for l in logs {
        text.push_str(&format!("{:width$} | {}\n", l.stage, l.text));
    }
    html! {
        @if logs.is_empty() && run.state.is_terminal() { p.muted { "No output was recorded." } }
        pre #logs data-stream=(format!("/runs/{}/logs/stream", enc(&run.id))) data-width=(width) { (text) }
    }
}

/// Follows a running run's output: each `log` event (`{stage, text, ...}`) becomes a line;
/// the `end` event reloads the page to show how it ended. A constant: the URL comes from
/// the page, as an (escaped) attribute. The stream is the dashboard's own (authorised by
/// the session, read-only): `EventSource` cannot send the API's bearer token.
pub(super) const LIVE_LOGS: &str = r#"
(function () {
  var pre = document.getElementById('logs');
  var width = parseInt(pre.dataset.width, 10) || 0;
  var source = new EventSource(pre.dataset.stream);
  // The first connection replays the run's output from its first line; a reconnect
  // sends Last-Event-ID and gets only the lines after it, so keeps what is shown.
  var opened = false;
  source.addEventListener('open', function () { if (!opened) { pre.textContent = ''; opened = true; } });
  source.addEventListener('log', function (e) {
    var line = JSON.parse(e.data);
    var follow = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
    pre.appendChild(document.createTextNode(String(line.stage).padEnd(width) + ' | ' + line.text + '\n'));
    if (follow) { window.scrollTo(0, document.body.scrollHeight); }
  });
  source.addEventListener('end', function () { source.close(); window.location.reload(); });
})();
"#;

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::config::Role;

    #[test]
    fn a_blocked_run_shows_its_states_and_the_check_that_failed() {
        let r = blocked_run("r1");
        let html = run(&viewer(Role::Viewer), &r, &[]).into_string();
        assert!(html.contains("<title>Run r1 (failed) · Gantry</title>"), "{html}");
        assert!(html.contains(">failed<") && html.contains(">succeeded<"), "{html}");
        assert!(html.contains("apm: error_rate") && html.contains("0.031") && html.contains("&lt;0.01"), "{html}");
        assert!(html.contains(r#"<tr class="fail"><td>apm: error_rate</td>"#), "{html}");
        assert!(html.contains("Gate verdict"), "{html}");
        assert!(html.contains("→ image storefront:a1b2c3d4 (0123456789ab)"), "{html}");
        assert!(html.contains("gate blocked: apm: error_rate"), "{html}");
        assert!(html.contains("<dt>Triggered by</dt><dd>ci</dd>") && html.contains("<dt>Branch</dt><dd>main</dd>"), "{html}");
        assert!(html.contains(&"a1b2c3d4".repeat(5)), "the full sha: {html}");
    }

    #[test]
    fn the_timeline_places_each_stage_bar_within_the_runs_span() {
        let r = blocked_run("r1");
        let html = run(&viewer(Role::Viewer), &r, &[]).into_string();
        // The run spans 100s: test 0-10s, image 10-40s, deploy 40-70s, release 70-100s.
        assert!(html.contains(r#"style="left:0.00%;width:10.00%""#), "{html}");
        assert!(html.contains(r#"style="left:10.00%;width:30.00%""#), "{html}");
        assert!(html.contains(r#"style="left:70.00%;width:30.00%""#), "{html}");
        assert!(html.contains(r#"class="bar st-failed""#), "{html}");
    }

    #[test]
    fn the_stored_log_lines_are_shown_escaped_as_stage_and_text() {
        let r = blocked_run("r1");
        let logs = [log("test", "ok 12 tests"), log("image", "<b>built</b>")];
        let html = run(&viewer(Role::Viewer), &r, &logs).into_string();
        assert!(html.contains("test    | ok 12 tests\n"), "{html}");
        assert!(html.contains("image   | &lt;b&gt;built&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn only_a_running_run_follows_its_logs_live() {
        let running = run(&viewer(Role::Viewer), &running_run("r2"), &[]).into_string();
        assert!(running.contains("new EventSource(pre.dataset.stream)"), "{running}");
        assert!(running.contains(r#"data-stream="/runs/r2/logs/stream""#), "{running}");
        assert!(running.contains("addEventListener('end'"), "{running}");
        let done = run(&viewer(Role::Viewer), &blocked_run("r1"), &[]).into_string();
        assert!(!done.contains("EventSource"), "{done}");
        assert!(done.contains("No output was recorded."), "{done}");
    }

    #[test]
    fn a_release_manager_may_approve_or_reject_a_parked_run() {
        let r = parked_run("r3");
        let html = run(&viewer(Role::ReleaseManager), &r, &[]).into_string();
        assert!(html.contains(r#"action="/runs/r3/approve""#), "{html}");
        assert!(html.contains(r#"action="/runs/r3/reject""#), "{html}");
        assert!(html.contains(r#"id="approve""#) && html.contains(r#"id="reject""#), "{html}");
        assert!(html.contains(r#"name="comment""#), "{html}");
        assert!(html.contains(r#"name="reason" rows="2" required"#), "{html}");
        assert!(html.contains(">awaiting approval<") && html.contains(">pending<"), "{html}");
        assert!(html.contains("<strong>storefront:a1b2c3d4</strong> staging → <strong>production</strong>"), "{html}");
    }

    #[test]
    fn a_developer_sees_the_approval_but_no_buttons() {
        let html = run(&viewer(Role::Developer), &parked_run("r3"), &[]).into_string();
        assert!(html.contains("0/1 approvals by a release-manager"), "{html}");
        assert!(!html.contains(r#"id="approve""#) && !html.contains(r#"id="reject""#), "{html}");
        assert!(html.contains("Deciding needs the role release-manager"), "{html}");
    }

    #[test]
    fn a_decided_run_shows_who_decided_and_offers_no_buttons() {
        let r = rejected_run("r4");
        let html = run(&viewer(Role::Admin), &r, &[]).into_string();
        assert!(!html.contains(r#"id="approve""#) && !html.contains(r#"id="reject""#), "{html}");
        assert!(html.contains(">rejected<"), "{html}");
        assert!(html.contains("<strong>rejected</strong> by rita (release-manager)"), "{html}");
        assert!(html.contains("p99 looks off"), "{html}");
        assert!(html.contains("2026-11-27 18:05:00 UTC"), "{html}");
    }

    #[test]
    fn a_commit_summary_with_markup_is_escaped_on_the_run_page() {
        let mut r = running_run("r2");
        r.commit.summary = "<script>alert(1)</script>".into();
        let html = run(&viewer(Role::Viewer), &r, &[]).into_string();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>alert(1)"), "{html}");
    }
}
