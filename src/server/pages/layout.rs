//! What every page shares: the frame (head, style, nav), and the words and formats the
//! pages use for states, times, durations and stage results, worded as the CLI words them.

use chrono::{DateTime, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::Viewer;
use crate::events::{RunState, StageState};

/// The nav entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Runs,
    Approvals,
    Environments,
    Reports,
}

/// A whole document: `<title>`, the style, the nav (with the signed-in user when there is
/// one) and the page's body; for a signed-in user, the script that adds the session's
/// CSRF token to the page's forms.
pub(super) fn page(title: &str, viewer: Option<&Viewer>, current: Option<Section>, body: Markup) -> Markup {
    let link = |section: Section, href: &str, text: &str| {
        html! {
            @if current == Some(section) {
                a href=(href) aria-current="page" { (text) }
            } @else {
                a href=(href) { (text) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Gantry" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header.top {
                    nav {
                        a.brand href="/" { "Gantry" }
                        @if viewer.is_some() {
                            (link(Section::Runs, "/", "Runs"))
                            (link(Section::Approvals, "/approvals", "Approvals"))
                            (link(Section::Environments, "/environments", "Environments"))
                            (link(Section::Reports, "/reports", "Reports"))
                        }
                    }
                    @if let Some(v) = viewer {
                        div.who {
                            span.user { (v.user) }
                            span.role { (v.role.name()) }
                            form method="post" action="/logout" {
                                button #sign-out type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
                @if viewer.is_some() {
                    script { (PreEscaped(super::session::FORMS)) }
                }
            }
        }
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2328;background:#f6f8fa}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
header.top{display:flex;justify-content:space-between;align-items:center;padding:.5rem 1.25rem;background:#24292f;color:#fff}
header.top nav a{color:#d0d7de;margin-right:1rem}header.top nav a.brand{color:#fff;font-weight:600}
header.top nav a[aria-current]{color:#fff;border-bottom:2px solid #fff}
.who{display:flex;gap:.6rem;align-items:center}.who .role{color:#d0d7de}
.who form{margin:0}.who button{background:none;border:1px solid #8c959f;color:#fff;padding:.15rem .6rem}
main{max-width:1200px;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.5rem;margin:.5rem 0 1rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #d0d7de;vertical-align:top}
th{background:#f0f3f6;font-weight:600}
tr.fail td{background:#ffebe9}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.muted,.hint{color:#57606a}.error{color:#cf222e;font-weight:600}
.badge{display:inline-block;padding:0 .5rem;border-radius:1em;font-size:12px;font-weight:600;color:#fff;background:#6e7781;white-space:nowrap}
.st-succeeded,.st-live,.st-promoted,.st-passed{background:#1a7f37}
.st-failed,.st-timed-out,.st-rejected,.st-promotion-failed,.st-failed-verification,.st-blocked{background:#cf222e}
.st-running,.st-promoting,.st-starting,.st-preview{background:#0969da}
.st-awaiting-approval,.st-queued{background:#9a6700}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;background:#fff;padding:.75rem 1rem;border:1px solid #d0d7de}
dl.facts dt{color:#57606a}dl.facts dd{margin:0}
.timeline{background:#fff;border:1px solid #d0d7de}
.stage{display:grid;grid-template-columns:10rem 1fr 22rem;gap:.75rem;padding:.45rem .75rem;border-bottom:1px solid #eaeef2}
.stage .name{font-weight:600;overflow-wrap:anywhere}
.track{position:relative;height:1.1rem;background:#eaeef2;border-radius:3px;margin-top:.15rem}
.bar{position:absolute;top:0;bottom:0;border-radius:3px;background:#8c959f;min-width:2px}
.bar.st-succeeded{background:#2da44e}.bar.st-failed,.bar.st-timed-out{background:#cf222e}
.bar.st-running{background:#0969da}.bar.st-awaiting-approval{background:#bf8700}
.stage .detail{grid-column:1/-1;margin-left:10.75rem}
.stage .detail table{margin:.3rem 0 .4rem;width:auto;min-width:60%}
.card{background:#fff;border:1px solid #d0d7de;padding:.75rem 1rem;margin-bottom:1rem}
.card h2{margin-top:0}
form.decide{display:inline-block;vertical-align:top;margin:.5rem 1rem .25rem 0}
form.decide label{display:block;font-size:12px;color:#57606a}
textarea{width:22rem;max-width:100%;font:inherit}
button{font:inherit;padding:.25rem .8rem;border:1px solid #8c959f;border-radius:4px;background:#f6f8fa;cursor:pointer}
button.approve{background:#1a7f37;border-color:#1a7f37;color:#fff}button.reject{background:#cf222e;border-color:#cf222e;color:#fff}
form.filter{display:flex;gap:.75rem;align-items:end;margin-bottom:.75rem}form.filter label{display:block;font-size:12px;color:#57606a}
pre#logs{background:#0d1117;color:#e6edf3;padding:.75rem 1rem;overflow:auto;max-height:70vh;white-space:pre-wrap;word-break:break-all}
.narrow{max-width:28rem;margin:3rem auto}.narrow input{display:block;width:100%;margin:.3rem 0 .75rem;padding:.35rem}
.older{margin-top:.75rem}
"#;

/// The value of a run state in URLs and forms (`awaiting_approval`): its serde name,
/// which is its name in words with `_` for spaces.
pub fn state_key(state: RunState) -> String {
    state.name().replace(' ', "_")
}

/// Every run state, in the order the filter offers them (`state_key`'s match is the one
/// that must grow with `RunState`).
pub(super) const RUN_STATES: [RunState; 9] = [
    RunState::Queued,
    RunState::Running,
    RunState::AwaitingApproval,
    RunState::Promoting,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Interrupted,
    RunState::Superseded,
];

/// A CSS class for a state word: `st-awaiting-approval`; `stopped (kept for rollback)`
/// is `st-stopped`.
pub(super) fn state_class(word: &str) -> String {
    let word = word.split('(').next().unwrap_or(word).trim();
    let class: String = word.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("st-{class}")
}

/// A coloured badge with a state word.
pub(super) fn badge(word: &str) -> Markup {
    html! { span.badge.(state_class(word)) { (word) } }
}

/// `2026-11-27 18:03:11 UTC`.
pub(super) fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A `<time>` element in UTC, machine-readable too.
pub(super) fn when(t: DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (utc(t)) } }
}

/// The first 8 characters of a commit sha, as the CLI shows them.
pub(super) fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(8)]
}

/// Percent-encodes a path segment or query value.
pub(super) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to a run's page.
pub(super) fn run_href(id: &str) -> String {
    format!("/runs/{}", enc(id))
}

pub(super) use crate::words::{format_duration as duration, result_line};

/// As `gantry show` words a stage's state.
pub(super) fn stage_word(state: StageState) -> &'static str {
    state.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_are_the_serde_names_and_the_filter_offers_every_state() {
        for state in RUN_STATES {
            assert_eq!(serde_json::to_value(state).unwrap(), serde_json::json!(state_key(state)));
        }
        let mut keys: Vec<String> = RUN_STATES.iter().map(|s| state_key(*s)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), RUN_STATES.len());
    }

    #[test]
    fn times_are_utc_and_durations_read_as_the_cli_prints_them() {
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 27, 18, 3, 11).unwrap();
        assert_eq!(utc(t), "2026-11-27 18:03:11 UTC");
        assert_eq!(duration(chrono::Duration::milliseconds(4_210)), "4.2s");
        assert_eq!(duration(chrono::Duration::seconds(187)), "3m07s");
    }

    #[test]
    fn encoding_keeps_ids_readable_and_escapes_the_rest() {
        assert_eq!(enc("01JD-x_y.z~"), "01JD-x_y.z~");
        assert_eq!(enc("a b/&?"), "a%20b%2F%26%3F");
    }
}
