//! The top-level `environments:` key: each environment's rules (who must approve a
//! promotion into it), and the checks that hold stages to those rules.

use std::collections::BTreeMap;

use super::context::{object_name, Ctx, Draft};
use super::de::from_node;
use super::spec::{Action, ApprovalRule, EnvironmentSpec};
use super::yaml::{join, Node, Pos};
use crate::config::Role;

const FIELD: &str = "environments";

/// Reads `environments:` (found as `value`); each environment is read on its own, so one
/// bad environment never hides another. `staging:` with nothing under it means `{}`.
pub(crate) fn declare(ctx: &mut Ctx<'_>, value: &Node) -> BTreeMap<String, EnvironmentSpec> {
    let mut out = BTreeMap::new();
    let Node::Map { entries, .. } = value else {
        if !value.is_null() {
            ctx.wrong_type(value, FIELD, "a mapping of environment names to settings")
                .hint("e.g. `environments: {staging: {}, production: {approval: {count: 1}}}`");
        }
        return out;
    };
    for env in ctx.entries(entries, FIELD, "environment") {
        object_name(ctx, env.key.pos(), &env.field, "environment", env.name);
        match from_node::<EnvironmentSpec>(env.value, &env.field) {
            Ok(spec) => {
                // Deciding on promotions is what release managers do (and admins); a
                // lower role would let a developer wave their own team's change through.
                if let Some(rule) = spec.approval.as_ref().filter(|r| !r.role.covers(Role::ReleaseManager)) {
                    let pos = env.value.child("approval").and_then(|a| a.child("role")).map_or(env.value.pos(), Node::pos);
                    ctx.error(pos, &format!("{}.approval.role", env.field), format!("`{}` may not decide on promotions", rule.role))
                        .hint("use `release-manager` (the default) or `admin`");
                }
                out.insert(env.name.to_owned(), spec);
            }
            Err(mut e) => {
                if e.field.as_deref().is_some_and(|f| f.ends_with(".approval.expires")) {
                    e.hint = Some("how long a promotion may wait for approval, e.g. `24h`; leave it out to wait for ever".into());
                }
                ctx.de_error(e, env.value.pos(), &env.field, &[]);
            }
        }
    }
    out
}

/// A `kind: deploy` stage may not go live in an environment that asks for approval:
/// only promotions wait for it.
pub(crate) fn check_deploy(ctx: &mut Ctx<'_>, pos: Pos, field: &str, environment: &str) {
    if approval(ctx, environment).is_some() {
        ctx.error(
            pos,
            field,
            format!("deployments to `{environment}` need approval; promote into it with `kind: promote`"),
        )
        .hint(format!(
            "{} asks for approval, which only `kind: promote` stages wait for",
            approval_field(environment)
        ));
    }
}

/// A promotion that waits for approval ends its run; it happens later, once approved, in
/// another process. So no stage may need it. `order` is `graph::resolve`'s answer: each
/// stage's index into `drafts` with its resolved needs.
pub(crate) fn check_promotions(ctx: &mut Ctx<'_>, drafts: &[Draft], order: &[(usize, Vec<String>)]) {
    // Stages by name, first of each (as `find` would): linear for thousands of stages.
    let mut by_name: std::collections::HashMap<&str, &Draft> = std::collections::HashMap::new();
    for d in drafts {
        by_name.entry(d.plan.name.as_str()).or_insert(d);
    }
    for (i, needs) in order {
        let stage = &drafts[*i];
        for need in needs {
            let Some(Action::Promote(p)) = by_name.get(need.as_str()).map(|d| &d.plan.action) else {
                continue;
            };
            let Some(rule) = approval(ctx, &p.to) else { continue };
            let name = &stage.plan.name;
            let message = format!(
                "`{name}` needs `{need}`, which waits for {} approval ({}); stages after an approved promotion are not supported",
                approvers(rule),
                approval_field(&p.to)
            );
            match stage.needs.as_ref().and_then(|written| written.iter().find(|n| &n.name == need)) {
                Some(written) => {
                    let (pos, field) = (written.pos, written.field.clone());
                    ctx.error(pos, &field, message).hint(format!(
                        "the run ends while `{need}` waits, and the promotion happens later; remove `{need}` from `needs`"
                    ));
                }
                None => {
                    ctx.error(stage.pos, &join("stages", name), message).hint(format!(
                        "`{name}` has no `needs`, so it follows `{need}` in the file; give it an explicit `needs:` (`needs: []` for none)"
                    ));
                }
            }
        }
    }
}

fn approval<'c>(ctx: &'c Ctx<'_>, environment: &str) -> Option<&'c ApprovalRule> {
    ctx.environments.get(environment)?.approval.as_ref()
}

fn approval_field(environment: &str) -> String {
    format!("{FIELD}.{environment}.approval")
}

/// "a release manager's", "an admin's", "2 release managers'".
fn approvers(rule: &ApprovalRule) -> String {
    let role = rule.role.name().replace('-', " ");
    match rule.count {
        1 if role.starts_with(['a', 'e', 'i', 'o', 'u']) => format!("an {role}'s"),
        1 => format!("a {role}'s"),
        n => format!("{n} {role}s'"),
    }
}

/// The summary's line for an environment that asks for approval: "approval by 1
/// release-manager, not the author, expires after 24h".
pub fn describe(rule: &ApprovalRule) -> String {
    let mut out = format!(
        "approval by {} {}{}",
        rule.count,
        rule.role,
        if rule.count == 1 { "" } else { "s" }
    );
    out.push_str(if rule.forbid_author { ", not the author" } else { ", the author may approve" });
    if let Some(expires) = rule.expires {
        out.push_str(&format!(", expires after {}", short(expires.0)));
    }
    out
}

/// `24h` as people write it in the file, rather than humantime's `1day`.
fn short(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    match (secs, d.subsec_nanos()) {
        (s, 0) if s % 3600 == 0 => format!("{}h", s / 3600),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        _ => humantime::format_duration(d).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Role;
    use crate::pipeline::spec::DurationText;

    #[test]
    fn approvers_read_as_english() {
        let rule = |role, count| ApprovalRule { role, count, ..ApprovalRule::default() };
        assert_eq!(approvers(&rule(Role::ReleaseManager, 1)), "a release manager's");
        assert_eq!(approvers(&rule(Role::Admin, 1)), "an admin's");
        assert_eq!(approvers(&rule(Role::ReleaseManager, 2)), "2 release managers'");
    }

    #[test]
    fn describe_names_every_rule() {
        let rule = ApprovalRule { expires: Some(DurationText(Duration::from_secs(86400))), ..ApprovalRule::default() };
        assert_eq!(describe(&rule), "approval by 1 release-manager, not the author, expires after 24h");
        let rule = ApprovalRule { count: 2, forbid_author: false, ..ApprovalRule::default() };
        assert_eq!(describe(&rule), "approval by 2 release-managers, the author may approve");
    }
}
