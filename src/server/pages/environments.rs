//! `GET /environments`: what serves in each environment (read from the engine) and its
//! deployment history (from the store), newest first.

use maud::{html, Markup};

use super::layout::{badge, duration, enc, page, run_href, short_sha, when, Section};
use super::Viewer;
use crate::engine::pool::EngineView;
use crate::engine::EnvironmentView;
use crate::events::{Deployment, DeploymentOutcome};

pub fn environments(viewer: &Viewer, envs: &[EnvironmentView], deployments: &[Deployment], engines: &[EngineView]) -> Markup {
    // Environments destroyed since keep their history.
    let mut gone: Vec<&str> =
        deployments.iter().map(|d| d.environment.as_str()).filter(|name| !envs.iter().any(|e| e.name == *name)).collect();
    gone.sort_unstable();
    gone.dedup();
    let body = html! {
        h1 { "Environments" }
        (engine_table(engines))
        @if envs.is_empty() && gone.is_empty() {
            p.muted { "No environments yet: a `kind: provision` or `kind: deploy` stage makes one." }
        }
        @for e in envs {
            section.card id=(format!("env-{}", e.name)) {
                h2 { (e.name) " " span.muted { "network " (e.network) } }
                (serving(e))
                (rollback_forms(viewer, e))
                (history(&e.name, deployments))
            }
        }
        @for name in gone {
            section.card id=(format!("env-{name}")) {
                h2 { (name) " " span.muted { "no longer on the engine" } }
                (history(name, deployments))
            }
        }
    };
    page("Environments", Some(viewer), Some(Section::Environments), body)
}

/// The operator's engines (`engines:`): whether each answers, its slots in use and the
/// runs placed on it. Nothing without a pool.
fn engine_table(engines: &[EngineView]) -> Markup {
    html! {
        @if !engines.is_empty() {
            section.card #engines {
                h2 { "Engines" }
                table {
                    thead { tr { th { "engine" } th { "state" } th { "runs now" } th { "placed" } th { "lost" } th { "labels" } } }
                    tbody {
                        @for e in engines {
                            tr.engine data-engine=(e.name) {
                                td { (e.name) " " span.muted { (e.host) } @if e.environments { " " span.muted { "(environments)" } } }
                                td { @if e.up { (badge("up")) } @else { (badge("down")) " " span.muted { (e.reason.clone().unwrap_or_default()) } } }
                                td { (e.in_use) " / " (e.slots) }
                                td { (e.placed) }
                                td { (e.lost) }
                                td { (e.labels.join(", ")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A "Roll back" button per app that has a kept previous version, for those who may
/// start runs (the service checks the role the environment asks for).
fn rollback_forms(viewer: &Viewer, e: &EnvironmentView) -> Markup {
    let mut kept: Vec<&str> = e.versions.iter().filter(|v| !v.running).map(|v| v.of.as_str()).collect();
    kept.sort_unstable();
    kept.dedup();
    html! {
        @if viewer.role.covers(crate::config::Role::Developer) {
            @for app in kept {
                form.decide method="post" action=(format!("/environments/{}/rollback", enc(&e.name))) {
                    input type="hidden" name="app" value=(app);
                    button.reject.rollback type="submit" { "Roll " (app) " back to the kept version" }
                }
            }
        }
    }
}

/// The app versions, routers and services running in an environment.
fn serving(e: &EnvironmentView) -> Markup {
    html! {
        @if e.versions.is_empty() && e.routers.is_empty() && e.services.is_empty() {
            p.muted { "Nothing runs here." }
        }
        @if !e.versions.is_empty() {
            table.versions {
                caption { "App versions" }
                thead { tr { th { "App" } th { "Image" } th { "Commit" } th { "Serving" } th { "Container" } } }
                tbody {
                    @for v in &e.versions {
                        tr {
                            td { (v.of) }
                            td.mono { (v.image) }
                            td.mono { (v.commit.as_deref().map(short_sha).unwrap_or("-")) }
                            td { (badge(v.serving.as_deref().unwrap_or(if v.running { "running" } else { "stopped" }))) }
                            td.mono.muted { (v.name) }
                        }
                    }
                }
            }
        }
        @if !e.routers.is_empty() {
            table.routers {
                caption { "Routers" }
                thead { tr { th { "App" } th { "URL" } th { "State" } } }
                tbody {
                    @for r in &e.routers {
                        tr {
                            td { (r.of) }
                            td.mono {
                                @match r.url.as_deref() {
                                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => a href=(url) { (url) },
                                    Some(url) => (url),
                                    None => span.muted { "not published" },
                                }
                            }
                            td { (if r.running { "running" } else { "stopped" }) }
                        }
                    }
                }
            }
        }
        @if !e.services.is_empty() {
            table.services {
                caption { "Services" }
                thead { tr { th { "Service" } th { "Image" } th { "State" } } }
                tbody {
                    @for s in &e.services {
                        tr {
                            td { (s.of) }
                            td.mono { (s.image) }
                            td { (if s.running { "running" } else { "stopped" }) }
                        }
                    }
                }
            }
        }
    }
}

/// The deployments to one environment, newest first.
fn history(env: &str, deployments: &[Deployment]) -> Markup {
    let mut rows: Vec<&Deployment> = deployments.iter().filter(|d| d.environment == env).collect();
    rows.sort_by_key(|d| std::cmp::Reverse(d.finished_at));
    html! {
        h3 { "Deployments" }
        @if rows.is_empty() {
            p.muted { "No deployments recorded." }
        } @else {
            table.deployments {
                thead { tr { th { "When" } th { "App" } th { "Image" } th { "Commit" } th { "Run" } th { "Took" } th { "Outcome" } } }
                tbody {
                    @for d in rows {
                        tr class=[(!matches!(d.outcome, DeploymentOutcome::Succeeded)).then_some("fail")] {
                            td { (when(d.finished_at)) }
                            td { (d.app) }
                            td.mono { (d.image) }
                            td { code { (short_sha(&d.commit)) } " " span.muted { (d.author) } }
                            td.mono { a href=(run_href(&d.run_id)) { (d.run_id) } }
                            td { (duration(d.finished_at - d.started_at)) }
                            td { (outcome(d)) }
                        }
                    }
                }
            }
        }
    }
}

fn outcome(d: &Deployment) -> Markup {
    html! {
        @match &d.outcome {
            DeploymentOutcome::Succeeded => {
                (badge("succeeded"))
                @if let Some(url) = &d.url { " " span.mono { (url) } }
            }
            DeploymentOutcome::Failed { reason } => {
                (badge("failed")) " " (reason)
            }
            DeploymentOutcome::FailedVerification { reason, restored_at, restored_to } => {
                (badge("failed verification")) " " (reason)
                div {
                    @match (restored_to, restored_at) {
                        (Some(image), Some(at)) => { "Rolled back to " span.mono { (image) } " at " (when(*at)) }
                        (Some(image), None) => { "Rolled back to " span.mono { (image) } }
                        (None, Some(at)) => { "Restored at " (when(*at)) }
                        (None, None) => strong { "Rollback failed." },
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::config::Role;

    #[test]
    fn an_environment_shows_its_live_version_router_and_services() {
        let html = environments(&viewer(Role::Viewer), &[production()], &[], &[]).into_string();
        assert!(html.contains("<title>Environments · Gantry</title>"), "{html}");
        assert!(html.contains("storefront:a1b2c3d4"), "{html}");
        assert!(html.contains(r#"<span class="badge st-live">live</span>"#), "{html}");
        assert!(html.contains(r#"<span class="badge st-stopped">stopped (kept for rollback)</span>"#), "{html}");
        assert!(html.contains(r#"href="http://127.0.0.1:18080""#), "{html}");
        assert!(html.contains("redis:7"), "{html}");
        assert!(html.contains("No deployments recorded."), "{html}");
    }

    #[test]
    fn the_history_is_newest_first_with_a_failed_verification_and_its_rollback() {
        let deployments = [
            deployment("production", "storefront:0ld", "r0", 0, DeploymentOutcome::Succeeded),
            deployment(
                "production",
                "storefront:bad",
                "r7",
                600,
                DeploymentOutcome::FailedVerification {
                    reason: "apm: error_rate 0.2 breached <0.01".into(),
                    restored_at: Some(base() + chrono::Duration::seconds(660)),
                    restored_to: Some("storefront:0ld".into()),
                },
            ),
            deployment("staging", "storefront:other", "r8", 300, DeploymentOutcome::Succeeded),
        ];
        let html = environments(&viewer(Role::Viewer), &[production()], &deployments, &[]).into_string();
        let history = &html[html.find("Deployments</h3>").unwrap()..];
        let bad = history.find("storefront:bad").expect("the failed deployment is listed");
        let old = history.find("storefront:0ld</td>").expect("the earlier deployment is listed");
        assert!(bad < old, "newest first: {html}");
        assert!(html.contains(r#"<span class="badge st-failed-verification">failed verification</span>"#), "{html}");
        assert!(html.contains("apm: error_rate 0.2 breached &lt;0.01"), "{html}");
        assert!(html.contains("Rolled back to <span class=\"mono\">storefront:0ld</span> at"), "{html}");
        assert!(html.contains("2026-11-27 18:11:00 UTC"), "restored_at: {html}");
        assert!(html.contains(r#"href="/runs/r7""#), "{html}");
        assert!(html.contains("storefront:other") && html.contains("no longer on the engine"), "staging's history is kept: {html}");
    }

    #[test]
    fn no_environments_says_how_to_make_one() {
        let html = environments(&viewer(Role::Viewer), &[], &[], &[]).into_string();
        assert!(html.contains("No environments yet"), "{html}");
    }
}
