//! The dashboard: server-rendered HTML pages, as pure functions from records to `Markup`.
//! Handlers fetch and authorise; these only render. maud escapes every value, and the
//! scripts (`SCRIPTS`: live logs, the session's handoff and forms) are constants that read
//! what they need from data attributes, so that the Content-Security-Policy can allow
//! them by hash and nothing else.

mod approvals;
mod environments;
mod layout;
mod run;
mod runs;
mod session;

#[cfg(test)]
mod fixtures;

use maud::{html, Markup};

use crate::config::Role;

pub use approvals::approvals;
pub use environments::environments;
pub use run::run;
pub use runs::{runs, RunsFilter};
pub use session::{signed_in, signed_out};

use layout::page;

/// Every script a page of the dashboard may run, each a constant.
pub const SCRIPTS: [&str; 3] = [run::LIVE_LOGS, session::HANDOFF, session::FORMS];

/// Who is looking: shown in the nav, and deciding which actions a page offers (the
/// handlers still check every action).
#[derive(Debug, Clone, PartialEq)]
pub struct Viewer {
    pub user: String,
    pub role: Role,
}

/// `GET /login`: a form posting the user's token to `POST /login`.
pub fn login(error: Option<&str>) -> Markup {
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button #sign-in type="submit" { "Sign in" }
            }
            p.hint { "Your token is in the service's users file, or ask an admin for one." }
        }
    };
    page("Sign in", None, None, body)
}

/// The result of an action, or why it was refused (403, 404...): a title, a sentence, and
/// a link back.
pub fn notice(viewer: Option<&Viewer>, title: &str, message: &str, back: &str) -> Markup {
    let body = html! {
        section.narrow {
            h1 { (title) }
            p.notice { (message) }
            p { a #back href=(back) { "Back" } }
        }
    };
    page(title, viewer, None, body)
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn login_posts_a_password_field_named_token_and_shows_the_error_escaped() {
        let html = login(Some("unknown token <b>")).into_string();
        assert!(html.contains(r#"<form method="post" action="/login">"#), "{html}");
        assert!(html.contains(r#"type="password" name="token""#), "{html}");
        assert!(html.contains("unknown token &lt;b&gt;"), "{html}");
        assert!(!html.contains("Sign out"), "nobody is signed in yet");
        assert!(login(None).into_string().contains("<title>Sign in · Gantry</title>"));
    }

    #[test]
    fn a_notice_says_what_happened_links_back_and_shows_who_is_signed_in() {
        let v = viewer(Role::Developer);
        let html = notice(Some(&v), "Not allowed", "dev (developer) cannot decide on promotions to production", "/runs/r1")
            .into_string();
        assert!(html.contains("<title>Not allowed · Gantry</title>"), "{html}");
        assert!(html.contains("cannot decide on promotions to production"), "{html}");
        assert!(html.contains(r#"href="/runs/r1""#), "{html}");
        assert!(html.contains(r#"action="/logout""#), "{html}");
        assert!(html.contains("dev") && html.contains("developer"), "{html}");
    }
}

/// GET /reports: the release-frequency report of an environment, with a form to choose
/// the environment, the pipeline and the window.
pub fn reports(viewer: &Viewer, query: &ReportQuery, report: Result<&crate::report::Report, &str>) -> Markup {
    let body = maud::html! {
        h1 { "Release frequency and the four keys" }
        form.filter method="get" action="/reports" {
            label { "Environment" input type="text" name="env" value=(query.env) ; }
            label { "Pipeline" input type="text" name="pipeline" value=(query.pipeline.clone().unwrap_or_default()) placeholder="all" ; }
            label { "Since" input type="text" name="since" value=(query.since) ; }
            button type="submit" { "Show" }
        }
        style { (maud::PreEscaped(crate::report::render::STYLE)) }
        @match report {
            Ok(r) => (crate::report::render::body(r)),
            Err(message) => p.error { (message) },
        }
    };
    layout::page("Reports", Some(viewer), Some(layout::Section::Reports), body)
}

/// The report page's (and API's) query: environment, pipeline, window start.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReportQuery {
    #[serde(default = "production")]
    pub env: String,
    #[serde(default)]
    pub pipeline: Option<String>,
    #[serde(default = "ninety_days")]
    pub since: String,
}

fn production() -> String {
    "production".into()
}

fn ninety_days() -> String {
    "90d".into()
}

