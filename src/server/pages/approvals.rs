//! `GET /approvals`: the promotions waiting for a decision, and the pieces the run page
//! shares with it: an approval as it stands, and the approve/reject forms.

use maud::{html, Markup};

use super::layout::{badge, enc, page, run_href, when, Section};
use super::Viewer;
use crate::events::RunState;
use crate::approval::{Approval, ApprovalState, DecisionKind};
use crate::store::RunRecord;

pub fn approvals(viewer: &Viewer, pending: &[RunRecord]) -> Markup {
    let cards: Vec<(&RunRecord, &Approval)> = pending.iter().filter_map(|r| Some((r, r.approval.as_ref()?))).collect();
    let body = html! {
        h1 { "Approvals" }
        @if cards.is_empty() {
            p.muted { "Nothing waits for approval. A promotion whose gate passes and whose environment asks for approval appears here." }
        }
        @for (r, a) in cards.iter().copied() {
            article.card id=(format!("run-{}", r.id)) {
                h2 {
                    a.mono href=(run_href(&r.id)) { (r.id) } " "
                    @if let Some(p) = &r.project { (p) " / " }
                    (r.pipeline)
                }
                (approval_block(a))
                p {
                    "Commit " code { (r.commit.short) } " " (r.commit.summary) " by " (r.commit.author_name)
                    @if let Some(b) = &r.commit.branch { " on " (b) }
                }
                (decision_forms(viewer, r, true))
            }
        }
    };
    let title = if cards.is_empty() { "Approvals".to_string() } else { format!("Approvals ({})", cards.len()) };
    page(&title, Some(viewer), Some(Section::Approvals), body)
}

/// An approval as it stands: what would be promoted where, the rule, and every decision.
pub(super) fn approval_block(a: &Approval) -> Markup {
    let q = &a.request;
    let rule = &q.rule;
    html! {
        div.approval {
            p {
                (badge(a.state.name())) " "
                strong { (q.image) } " " (q.from) " → " strong { (q.environment) }
            }
            p {
                (a.approvers().len()) "/" (rule.count) " approvals by a " (rule.role.name())
                @if rule.forbid_author { span.muted { " (not the commit's author or the run's trigger)" } }
            }
            p.muted {
                "Requested " (when(q.requested_at))
                @if let Some(at) = q.expires_at { "; expires " (when(at)) }
            }
            @if !a.decisions.is_empty() {
                ul.decisions {
                    @for d in &a.decisions {
                        li {
                            (when(d.at)) " "
                            @match d.kind {
                                DecisionKind::Approve => strong { "approved" },
                                DecisionKind::Reject => strong { "rejected" },
                            }
                            " by " (d.user) " (" (d.role.name()) ")"
                            @if let Some(c) = &d.comment { ": " q { (c) } }
                        }
                    }
                }
            }
            @if let Some(by) = &a.claimed_by { p { "Promotion performed on " (by) "'s approval." } }
        }
    }
}

/// The approve and reject forms, for a viewer whose role may decide on a run that waits
/// for a decision; otherwise a sentence saying why there are none (or nothing). With
/// `per_run`, ids carry the run id (`approve-<id>`), as a page may hold several runs.
pub(super) fn decision_forms(viewer: &Viewer, run: &RunRecord, per_run: bool) -> Markup {
    let Some(a) = &run.approval else { return html! {} };
    if a.state != ApprovalState::Pending || run.state != RunState::AwaitingApproval {
        return html! {};
    }
    let needed = a.request.rule.role;
    if !viewer.role.covers(needed) {
        return html! {
            p.muted { "Deciding needs the role " (needed.name()) "; you are signed in as " (viewer.role.name()) "." }
        };
    }
    let id = |name: &str| if per_run { format!("{name}-{}", run.id) } else { name.to_string() };
    let base = format!("/runs/{}", enc(&run.id));
    let approved = a.approvers().contains(&viewer.user.as_str());
    html! {
        div.decide {
            @if approved {
                p.muted { "You approved this; " (a.remaining()) " more approval(s) needed, from someone else." }
            } @else {
                form.decide method="post" action=(format!("{base}/approve")) {
                    label for=(id("comment")) { "Comment (optional)" }
                    textarea id=(id("comment")) name="comment" rows="2" {}
                    button.approve id=(id("approve")) type="submit" { "Approve" }
                }
            }
            form.decide method="post" action=(format!("{base}/reject")) {
                label for=(id("reason")) { "Reason (required to reject)" }
                textarea id=(id("reason")) name="reason" rows="2" required {}
                button.reject id=(id("reject")) type="submit" { "Reject" }
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
    fn each_pending_run_gets_a_card_with_its_promotion_and_forms_for_a_release_manager() {
        let list = [parked_run("r3"), parked_run("r5")];
        let html = approvals(&viewer(Role::ReleaseManager), &list).into_string();
        assert!(html.contains("<title>Approvals (2) · Gantry</title>"), "{html}");
        for id in ["r3", "r5"] {
            assert!(html.contains(&format!(r#"id="approve-{id}""#)), "{html}");
            assert!(html.contains(&format!(r#"id="reject-{id}""#)), "{html}");
            assert!(html.contains(&format!(r#"action="/runs/{id}/approve""#)), "{html}");
            assert!(html.contains(&format!(r#"href="/runs/{id}""#)), "{html}");
        }
        assert!(html.contains("<strong>storefront:a1b2c3d4</strong> staging → <strong>production</strong>"), "{html}");
        assert!(html.contains("0/1 approvals by a release-manager"), "{html}");
        assert!(html.contains("Dev Eloper") && html.contains("a1b2c3d4"), "{html}");
        assert!(html.contains("Requested <time") && html.contains("expires <time"), "{html}");
        assert!(html.contains("2026-11-28 18:00:00 UTC"), "the expiry is shown: {html}");
    }

    #[test]
    fn a_developer_sees_pending_runs_but_no_buttons() {
        let html = approvals(&viewer(Role::Developer), &[parked_run("r3")]).into_string();
        assert!(html.contains(r#"href="/runs/r3""#), "{html}");
        assert!(!html.contains("approve-r3") && !html.contains("reject-r3"), "{html}");
    }

    #[test]
    fn an_approval_already_given_is_listed_and_not_offered_again() {
        let html = approvals(&viewer(Role::ReleaseManager), &[half_approved_run("r6")]).into_string();
        assert!(html.contains("1/2 approvals by a release-manager"), "{html}");
        assert!(html.contains("approved</strong> by rita (release-manager): <q>looks good</q>"), "{html}");
        assert!(!html.contains(r#"id="approve-r6""#), "rita already approved: {html}");
        assert!(html.contains(r#"id="reject-r6""#), "{html}");
        let other = Viewer { user: "ops".into(), role: Role::Admin };
        assert!(approvals(&other, &[half_approved_run("r6")]).into_string().contains(r#"id="approve-r6""#));
    }

    #[test]
    fn no_pending_runs_says_so() {
        let html = approvals(&viewer(Role::ReleaseManager), &[]).into_string();
        assert!(html.contains("Nothing waits for approval."), "{html}");
        assert!(html.contains("<title>Approvals · Gantry</title>"), "{html}");
    }
}
