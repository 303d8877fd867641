//! Deciding on a gated promotion: the state of a run's approval, the rules that say who
//! may decide (never on their own change), and the decision that completes the count,
//! which claims the promotion; the store applies the check and the claim in one
//! transaction, so a run is promoted at most once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::request::{ApprovalRequest, ChangeSet, Decision, DecisionKind};
use crate::config::{Role, User};
use crate::events::{EventKind, RunState};
use crate::pipeline::spec::ApprovalRule;
use crate::store::RunRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Waiting for (more) approvals.
    Pending,
    /// Approved; the promotion is claimed and under way (or its process died and the next
    /// gantry command resumes it).
    Promoting,
    Promoted,
    /// Approved, but the promotion failed (unhealthy, or rolled back by verification).
    PromotionFailed,
    Rejected,
    Expired,
    /// The run failed elsewhere, so there is nothing to approve.
    Withdrawn,
    /// A newer version went live in the target while it waited.
    Superseded,
}

impl ApprovalState {
    pub fn name(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Promoting => "promoting",
            ApprovalState::Promoted => "promoted",
            ApprovalState::PromotionFailed => "promotion failed",
            ApprovalState::Rejected => "rejected",
            ApprovalState::Expired => "expired",
            ApprovalState::Withdrawn => "withdrawn",
            ApprovalState::Superseded => "superseded",
        }
    }
}

/// A run's approval as it stands: the request, every decision, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub request: ApprovalRequest,
    pub decisions: Vec<Decision>,
    pub state: ApprovalState,
    /// Who gave the approval that completed the count.
    pub claimed_by: Option<String>,
}

impl Approval {
    pub fn new(request: ApprovalRequest) -> Self {
        Approval { request, decisions: Vec::new(), state: ApprovalState::Pending, claimed_by: None }
    }

    /// The distinct users who approved.
    pub fn approvers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for d in self.decisions.iter().filter(|d| d.kind == DecisionKind::Approve) {
            if !out.contains(&d.user.as_str()) {
                out.push(&d.user);
            }
        }
        out
    }

    /// Approvals still needed.
    pub fn remaining(&self) -> u32 {
        self.remaining_under(&self.request.rule)
    }

    /// Approvals still needed under `rule` (the request's, or a stricter one the operator
    /// set since).
    pub fn remaining_under(&self, rule: &ApprovalRule) -> u32 {
        rule.count.saturating_sub(self.approvers().len() as u32)
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.state == ApprovalState::Pending && self.request.expires_at.is_some_and(|at| now >= at)
    }

    /// Applies a decision to the view.
    pub fn record(&mut self, decision: &Decision) {
        if decision.kind == DecisionKind::Reject {
            self.state = ApprovalState::Rejected;
        }
        self.decisions.push(decision.clone());
    }
}

/// Why a decision is refused. Each says what the person can do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("run {run} has no promotion waiting for approval")]
    NoRequest { run: String },
    #[error("{user} cannot approve run {run}: they {why}, and {environment} forbids approving your own change (forbid_author)")]
    OwnChange { user: String, run: String, why: String, environment: String },
    #[error("{user} ({role}) cannot decide on promotions to {environment}: that needs the role {needed}")]
    MissingRole { user: String, role: Role, needed: Role, environment: String },
    #[error("{user} has already approved run {run}; {remaining} more approval(s) from other people are needed")]
    AlreadyApproved { user: String, run: String, remaining: u32 },
    #[error("the approval request of run {run} expired at {at}; run the pipeline again for a new one")]
    Expired { run: String, at: DateTime<Utc> },
    #[error("run {run} was rejected by {by}: {reason}")]
    Rejected { run: String, by: String, reason: String },
    #[error("run {run} is already approved (by {by}); its promotion to {environment} {state}")]
    AlreadyClaimed { run: String, by: String, environment: String, state: String },
    #[error("run {run} ended {state}; there is nothing to approve")]
    Withdrawn { run: String, state: String },
    #[error("a rejection needs a reason (--reason)")]
    NoReason,
    /// The operator's rules for the environment forbid this promotion (checked again at
    /// the decision: they may have changed since the request).
    #[error("{0}")]
    Protected(String),
    /// What the target runs is newer than this promotion's commit.
    #[error("run {run} is outdated: {reason}")]
    Outdated { run: String, reason: String },
}

/// What a decision does, once allowed: the events to record (in one transaction with the
/// check), and whether this process now owns the promotion.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub events: Vec<EventKind>,
    pub claims_promotion: bool,
}

/// The rules. `run` is the run as stored at the moment of the decision (inside the
/// transaction that records it); `floor` is the operator's approval rule for the target
/// environment now, which applies where it is stricter than the request's.
pub fn decide(
    run: &RunRecord,
    user: &User,
    kind: DecisionKind,
    comment: Option<String>,
    now: DateTime<Utc>,
    floor: Option<&ApprovalRule>,
) -> Result<Decided, Refusal> {
    let id = run.id.clone();
    let Some(approval) = &run.approval else {
        return Err(Refusal::NoRequest { run: id });
    };
    let environment = approval.request.environment.clone();
    match approval.state {
        ApprovalState::Pending => {}
        ApprovalState::Rejected => {
            let last = approval.decisions.iter().rev().find(|d| d.kind == DecisionKind::Reject);
            return Err(Refusal::Rejected {
                run: id,
                by: last.map(|d| d.user.clone()).unwrap_or_default(),
                reason: last.and_then(|d| d.comment.clone()).unwrap_or_default(),
            });
        }
        ApprovalState::Expired => {
            return Err(Refusal::Expired { run: id, at: approval.request.expires_at.unwrap_or(now) });
        }
        ApprovalState::Promoting | ApprovalState::Promoted | ApprovalState::PromotionFailed => {
            let state = match approval.state {
                ApprovalState::Promoting => "is under way".to_string(),
                ApprovalState::Promoted => "is done".to_string(),
                _ => "failed".to_string(),
            };
            return Err(Refusal::AlreadyClaimed { run: id, by: approval.claimed_by.clone().unwrap_or_default(), environment, state });
        }
        ApprovalState::Withdrawn => {
            return Err(Refusal::Withdrawn { run: id, state: format!("{:?}", run.state).to_lowercase() });
        }
        ApprovalState::Superseded => {
            return Err(Refusal::Outdated { run: id, reason: run.message.clone().unwrap_or_default() });
        }
    }
    if run.state != RunState::AwaitingApproval {
        return Err(Refusal::Withdrawn { run: id, state: format!("{:?}", run.state).to_lowercase() });
    }
    if let Some(at) = approval.request.expires_at.filter(|at| now >= *at) {
        return Err(Refusal::Expired { run: id, at });
    }
    let rule = &crate::policy::effective_approval(Some(&approval.request.rule), floor).unwrap_or_else(|| approval.request.rule.clone());
    if !user.role.covers(rule.role) {
        return Err(Refusal::MissingRole { user: user.name.clone(), role: user.role, needed: rule.role, environment });
    }
    let comment = comment.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    if kind == DecisionKind::Reject && comment.is_none() {
        return Err(Refusal::NoReason);
    }
    // Anyone with the role may stop a change, its author included; approving is what
    // `forbid_author` guards.
    if kind == DecisionKind::Approve && rule.forbid_author {
        if let Some(why) = own_part(run, &approval.request.change, user) {
            return Err(Refusal::OwnChange { user: user.name.clone(), run: id, why, environment });
        }
    }
    if kind == DecisionKind::Approve && approval.approvers().contains(&user.name.as_str()) {
        return Err(Refusal::AlreadyApproved { user: user.name.clone(), run: id, remaining: approval.remaining_under(rule) });
    }
    let decision = Decision { user: user.name.clone(), role: user.role, kind, comment: comment.clone(), at: now };
    let mut events = vec![EventKind::ApprovalDecided { decision }];
    let mut claims_promotion = false;
    match kind {
        DecisionKind::Reject => events.push(EventKind::RunFinished {
            state: RunState::Failed,
            message: Some(format!("the promotion to {environment} was rejected by {}: {}", user.name, comment.unwrap_or_default())),
        }),
        DecisionKind::Approve if approval.remaining_under(rule) <= 1 => {
            events.push(EventKind::PromotionClaimed { by: user.name.clone(), pid: std::process::id() });
            claims_promotion = true;
        }
        DecisionKind::Approve => {}
    }
    Ok(Decided { events, claims_promotion })
}

/// How `user` took part in the change, if they did: they authored a commit of it (the
/// head or any commit the target does not run yet), pushed it, or started the run.
fn own_part(run: &RunRecord, change: &ChangeSet, user: &User) -> Option<String> {
    if user.is_author(&run.commit.author_email) {
        return Some(format!("authored commit {} ({})", run.commit.short, run.commit.author_email));
    }
    if let Some(a) = change.authors.iter().find(|a| user.is_author(&a.email)) {
        let short = &a.commit[..a.commit.len().min(8)];
        return Some(format!("authored commit {short} ({}), part of the change", a.email));
    }
    if let Some(p) = run.pushed_by.as_ref().filter(|p| user.is_pusher(&p.forge, &p.login)) {
        return Some(format!("pushed it ({} login {})", p.forge, p.login));
    }
    if run.triggered_by.as_deref() == Some(user.name.as_str()) {
        return Some("triggered the run".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::ChangeAuthor;
    use crate::pipeline::spec::DeploySpec;
    use crate::commit::CommitInfo;
    use crate::pipeline::spec::DeployMode;

    fn user(name: &str, role: Role, email: &str) -> User {
        User { name: name.into(), role, emails: vec![email.into()], token_sha256: None, forges: Default::default() }
    }

    fn rule(count: u32) -> ApprovalRule {
        ApprovalRule { role: Role::ReleaseManager, count, forbid_author: true, expires: None }
    }

    /// A run parked on an approval, committed by dev@x and started by `ci`.
    fn parked(rule: ApprovalRule, now: DateTime<Utc>) -> RunRecord {
        let mut run = fresh_run(now);
        for kind in parking(rule, now) {
            run.apply(&crate::events::Event { at: now, kind });
        }
        run
    }

    fn fresh_run(now: DateTime<Utc>) -> RunRecord {
        let plan = crate::pipeline::parse("p.yml", "name: p\nstages:\n  release: {image: x, commands: [\"true\"]}\n").unwrap();
        let commit = CommitInfo {
            sha: "a".repeat(40),
            short: "aaaaaaaa".into(),
            author_name: "Dev".into(),
            author_email: "dev@x".into(),
            time: now.fixed_offset(),
            summary: "change".into(),
            branch: Some("main".into()),
        };
        let mut run = RunRecord::new("r1".into(), &plan, ".".into(), commit);
        run.triggered_by = Some("ci".into());
        run
    }

    /// The events of a promote stage that asks for approval, and of its run ending.
    fn parking(rule: ApprovalRule, now: DateTime<Utc>) -> Vec<EventKind> {
        let expires_at = rule.expires.as_ref().map(|d| now + chrono::Duration::from_std(d.0).unwrap());
        let deploy = DeploySpec {
            environment: "production".into(),
            mode: DeployMode::Replace,
            image: Some("sha256:1".into()),
            app: "app".into(),
            port: Some(8080),
            publish: None,
            env: Default::default(),
            command: None,
            health: None,
            replicas: None,
            update: None,
            placement: Vec::new(),
        };
        let request = ApprovalRequest {
            stage: "release".into(),
            from: "staging".into(),
            environment: "production".into(),
            rule,
            app: "app".into(),
            image: "app:1".into(),
            image_id: "sha256:1".into(),
            deploy,
            verify: None,
            vars: Default::default(),
            timeout_secs: 60,
            requested_at: now,
            expires_at,
            change: ChangeSet {
                since: Some("b".repeat(40)),
                commits: 2,
                authors: vec![
                    ChangeAuthor { email: "dev@x".into(), name: "Dev".into(), commit: "a".repeat(40) },
                    ChangeAuthor { email: "hidden@x".into(), name: "Hidden".into(), commit: "c".repeat(40) },
                ],
                note: None,
            },
            branches: vec!["main".into()],
        };
        vec![EventKind::ApprovalRequested { request }, EventKind::RunFinished { state: RunState::AwaitingApproval, message: None }]
    }

    fn apply(run: &mut RunRecord, d: &Decided, now: DateTime<Utc>) {
        for kind in &d.events {
            run.apply(&crate::events::Event { at: now, kind: kind.clone() });
        }
    }

    #[test]
    fn a_release_manager_approves_and_claims_the_promotion() {
        let now = Utc::now();
        let mut run = parked(rule(1), now);
        let d = decide(&run, &user("rita", Role::ReleaseManager, "rita@x"), DecisionKind::Approve, Some("ok".into()), now, None).unwrap();
        assert!(d.claims_promotion);
        apply(&mut run, &d, now);
        assert_eq!(run.state, RunState::Promoting);
        let a = run.approval.as_ref().unwrap();
        assert_eq!((a.state, a.claimed_by.as_deref()), (ApprovalState::Promoting, Some("rita")));
        assert_eq!(a.decisions[0].comment.as_deref(), Some("ok"));
        // Anyone after that is told it is already under way.
        let again = decide(&run, &user("ops", Role::Admin, "ops@x"), DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(again.to_string(), "run r1 is already approved (by rita); its promotion to production is under way");
    }

    #[test]
    fn the_author_and_the_trigger_cannot_approve_but_may_reject() {
        let now = Utc::now();
        let run = parked(rule(1), now);
        let author = user("dev", Role::Admin, "DEV@x");
        let err = decide(&run, &author, DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dev cannot approve run r1: they authored commit aaaaaaaa (dev@x), and production forbids approving your own change (forbid_author)"
        );
        let trigger = user("ci", Role::Admin, "ci@x");
        assert!(matches!(decide(&run, &trigger, DecisionKind::Approve, None, now, None), Err(Refusal::OwnChange { .. })));
        assert!(decide(&run, &author, DecisionKind::Reject, Some("not ready".into()), now, None).is_ok());
    }

    #[test]
    fn without_forbid_author_the_author_may_approve() {
        let now = Utc::now();
        let run = parked(ApprovalRule { forbid_author: false, ..rule(1) }, now);
        assert!(decide(&run, &user("dev", Role::ReleaseManager, "dev@x"), DecisionKind::Approve, None, now, None).is_ok());
    }

    #[test]
    fn an_author_hidden_behind_a_later_commit_and_the_pusher_cannot_approve() {
        let now = Utc::now();
        let mut run = parked(rule(1), now);
        let hidden = user("hid", Role::ReleaseManager, "HIDDEN@x");
        let err = decide(&run, &hidden, DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hid cannot approve run r1: they authored commit cccccccc (hidden@x), part of the change, and production forbids approving your own change (forbid_author)"
        );
        run.pushed_by = Some(crate::store::Pusher { forge: "github".into(), login: "Rita-GH".into() });
        let mut rita = user("rita", Role::ReleaseManager, "rita@x");
        rita.forges.insert("github".into(), "rita-gh".into());
        let err = decide(&run, &rita, DecisionKind::Approve, None, now, None).unwrap_err();
        assert!(err.to_string().contains("they pushed it (github login Rita-GH)"), "{err}");
        // The same login at another forge is somebody else.
        run.pushed_by = Some(crate::store::Pusher { forge: "gitlab".into(), login: "rita-gh".into() });
        assert!(decide(&run, &rita, DecisionKind::Approve, None, now, None).is_ok());
    }

    #[test]
    fn the_operators_floor_applies_where_it_is_stricter_than_the_request() {
        let now = Utc::now();
        let run = parked(ApprovalRule { forbid_author: false, ..rule(1) }, now);
        let floor = ApprovalRule { count: 2, ..rule(1) };
        let rita = user("rita", Role::ReleaseManager, "rita@x");
        let d = decide(&run, &rita, DecisionKind::Approve, None, now, Some(&floor)).unwrap();
        assert!(!d.claims_promotion, "the floor asks for two approvals, the request for one");
        let dev = user("dev", Role::ReleaseManager, "dev@x");
        assert!(
            matches!(decide(&run, &dev, DecisionKind::Approve, None, now, Some(&floor)), Err(Refusal::OwnChange { .. })),
            "the floor bars the author"
        );
        let admin_floor = ApprovalRule { role: Role::Admin, ..rule(1) };
        assert!(matches!(decide(&run, &rita, DecisionKind::Approve, None, now, Some(&admin_floor)), Err(Refusal::MissingRole { .. })));
    }

    #[test]
    fn a_user_without_the_role_is_refused() {
        let now = Utc::now();
        let run = parked(rule(1), now);
        let err = decide(&run, &user("bob", Role::Developer, "bob@x"), DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(err.to_string(), "bob (developer) cannot decide on promotions to production: that needs the role release-manager");
        assert!(matches!(
            decide(&run, &user("bob", Role::Developer, "bob@x"), DecisionKind::Reject, Some("no".into()), now, None),
            Err(Refusal::MissingRole { .. })
        ));
    }

    #[test]
    fn two_approvals_need_two_people() {
        let now = Utc::now();
        let mut run = parked(rule(2), now);
        let rita = user("rita", Role::ReleaseManager, "rita@x");
        let d = decide(&run, &rita, DecisionKind::Approve, None, now, None).unwrap();
        assert!(!d.claims_promotion);
        apply(&mut run, &d, now);
        assert_eq!(run.state, RunState::AwaitingApproval);
        assert_eq!(run.approval.as_ref().unwrap().remaining(), 1);
        let err = decide(&run, &rita, DecisionKind::Approve, None, now, None).unwrap_err();
        assert!(matches!(err, Refusal::AlreadyApproved { remaining: 1, .. }), "{err}");
        let d = decide(&run, &user("ops", Role::Admin, "ops@x"), DecisionKind::Approve, None, now, None).unwrap();
        assert!(d.claims_promotion);
    }

    #[test]
    fn a_rejection_needs_a_reason_ends_the_run_and_is_final() {
        let now = Utc::now();
        let mut run = parked(rule(1), now);
        let rita = user("rita", Role::ReleaseManager, "rita@x");
        assert_eq!(decide(&run, &rita, DecisionKind::Reject, Some("  ".into()), now, None).unwrap_err(), Refusal::NoReason);
        let d = decide(&run, &rita, DecisionKind::Reject, Some("p99 looks off".into()), now, None).unwrap();
        apply(&mut run, &d, now);
        assert_eq!(run.state, RunState::Failed);
        let stage = run.stages.iter().find(|s| s.name == "release").unwrap();
        assert_eq!(stage.message.as_deref(), Some("rejected by rita: p99 looks off"));
        let err = decide(&run, &user("ops", Role::Admin, "ops@x"), DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(err.to_string(), "run r1 was rejected by rita: p99 looks off");
    }

    #[test]
    fn an_expired_request_cannot_be_approved() {
        let now = Utc::now();
        let mut r = rule(1);
        r.expires = Some(crate::pipeline::spec::DurationText(std::time::Duration::from_secs(3600)));
        let run = parked(r, now);
        let rita = user("rita", Role::ReleaseManager, "rita@x");
        assert!(decide(&run, &rita, DecisionKind::Approve, None, now + chrono::Duration::minutes(59), None).is_ok());
        let err = decide(&run, &rita, DecisionKind::Approve, None, now + chrono::Duration::minutes(61), None).unwrap_err();
        assert!(matches!(err, Refusal::Expired { .. }), "{err}");
    }

    #[test]
    fn a_run_without_a_request_has_nothing_to_approve() {
        let now = Utc::now();
        let mut run = parked(rule(1), now);
        run.approval = None;
        let err = decide(&run, &user("rita", Role::ReleaseManager, "rita@x"), DecisionKind::Approve, None, now, None).unwrap_err();
        assert_eq!(err.to_string(), "run r1 has no promotion waiting for approval");
    }

    /// Threads racing on one store: the check and the claim share a transaction, so
    /// exactly one approval claims the promotion and the others are refused.
    #[test]
    fn a_hundred_racing_approvals_on_one_store_claim_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let now = Utc::now();
        let run = fresh_run(now);
        store.create_run(&run).unwrap();
        for kind in parking(rule(1), now) {
            store.append("r1", &crate::events::Event { at: now, kind }).unwrap();
        }
        assert_eq!(store.pending_approvals().unwrap().len(), 1);
        let users = [user("rita", Role::ReleaseManager, "rita@x"), user("ops", Role::Admin, "ops@x")];
        let results: Vec<bool> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..100)
                .map(|i| {
                    let (store, user) = (&store, &users[i % 2]);
                    s.spawn(move || {
                        let decided = store
                            .append_checked("r1", |r| {
                                decide(r, user, DecisionKind::Approve, None, now, None)
                                    .map(|d| d.events.into_iter().map(|kind| crate::events::Event { at: now, kind }).collect())
                            })
                            .unwrap();
                        decided.is_ok()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results.iter().filter(|ok| **ok).count(), 1);
        let stored = store.run("r1").unwrap();
        assert_eq!(stored.state, RunState::Promoting);
        assert_eq!(stored.approval.as_ref().unwrap().decisions.len(), 1);
        let claims = store.events("r1").unwrap().iter().filter(|e| matches!(e.kind, EventKind::PromotionClaimed { .. })).count();
        assert_eq!(claims, 1);
        assert!(store.pending_approvals().unwrap().is_empty());
        assert_eq!(store.promotions_to_resume().unwrap().len(), 1, "a claimed promotion is known to be unfinished");
    }
}
