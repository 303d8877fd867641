//! The operator's `environments:`: which projects and branches may change an environment,
//! whether only a passing promotion may, and the least approval its promotions need. It
//! comes from the operator's file, never from the commit it judges: a pipeline can ask for
//! more, never less (`crate::policy` applies both).
//!
//! ```yaml
//! environments:
//!   production:
//!     projects: [storefront]
//!     promote_only: true
//!     branches: [main]
//!     approval: {role: release-manager, count: 2, forbid_author: true, expires: 24h}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Role;
use crate::pipeline::spec::ApprovalRule;
use crate::pipeline::yaml::Node;

/// Where a rule is written: `config.yml:5`, the start of every refusal it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A rule and the line it is written on.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    pub value: T,
    pub at: Place,
}

/// One protected environment, as the operator wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Protection {
    pub name: String,
    /// The line of the environment's own key.
    pub at: Place,
    /// Only runs of these projects may change it (for `gantry run`: the pipeline's name).
    pub projects: Option<Located<Vec<String>>>,
    /// Only a `kind: promote` whose gate passed may change it (set only when true).
    pub promote_only: Option<Located<()>>,
    /// Only commits contained in branches matching these globs, checked in the repository.
    pub branches: Option<Located<Vec<String>>>,
    /// The least approval a promotion into it needs.
    pub approval: Option<Located<ApprovalRule>>,
}

/// `environments:` as written, before the places are attached.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProtectionText {
    #[serde(default)]
    projects: Option<Vec<String>>,
    #[serde(default)]
    promote_only: bool,
    #[serde(default)]
    branches: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    approval: Option<ApprovalRule>,
    /// The engine of `engines:` the environment lives on (not a rule: read by the config).
    #[serde(default)]
    pub(super) engine: Option<String>,
}

/// `approval:` with nothing under it means the defaults, never "no approval".
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ApprovalRule>, D::Error> {
    Option::<ApprovalRule>::deserialize(d).map(|r| Some(r.unwrap_or_default()))
}

/// Attaches to each environment the lines its rules are written on (`root` is the file
/// read again as a located tree), and checks what serde cannot.
pub(super) fn locate(
    path: &Path,
    root: Option<&Node>,
    written: BTreeMap<String, ProtectionText>,
) -> Result<BTreeMap<String, Protection>, String> {
    let env_nodes = root.and_then(|r| r.child("environments"));
    let mut out = BTreeMap::new();
    for (name, text) in written {
        let node = env_nodes.and_then(|n| n.child(&name));
        let line_of = |key: Option<&str>| {
            let line = match key {
                None => env_nodes.and_then(|n| n.key_line(&name)),
                Some(k) => node.and_then(|n| n.key_line(k)),
            };
            Place { file: path.to_path_buf(), line: line.unwrap_or(1) }
        };
        let field = |f: &str| format!("environments.{name}.{f}");
        let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(format!("environments.{name}: an environment name uses lowercase letters, digits and -"));
        }
        // `staging: {engine: local}` says where it lives, and protects nothing.
        if text.engine.is_some() && text.projects.is_none() && !text.promote_only && text.branches.is_none() && text.approval.is_none() {
            continue;
        }
        if let Some(projects) = &text.projects {
            if projects.is_empty() {
                return Err(format!("{}: name at least one project (leave `projects` out to allow every project)", field("projects")));
            }
        }
        if let Some(branches) = &text.branches {
            if branches.is_empty() {
                return Err(format!("{}: name at least one branch (leave `branches` out to allow every branch)", field("branches")));
            }
            for b in branches {
                // Compiled as `allows_branch` will compile it, so it cannot panic there.
                crate::pipeline::limits::branch_glob(b).map_err(|e| format!("{}: {e}", field("branches")))?;
            }
        }
        if let Some(rule) = &text.approval {
            // The same floor as a pipeline's: deciding is what release managers (and
            // admins) do.
            if !rule.role.covers(Role::ReleaseManager) {
                return Err(format!("{}: `{}` may not decide on promotions; use release-manager or admin", field("approval.role"), rule.role));
            }
        }
        out.insert(
            name.clone(),
            Protection {
                at: line_of(None),
                projects: text.projects.map(|value| Located { value, at: line_of(Some("projects")) }),
                promote_only: text.promote_only.then(|| Located { value: (), at: line_of(Some("promote_only")) }),
                branches: text.branches.map(|value| Located { value, at: line_of(Some("branches")) }),
                approval: text.approval.map(|value| Located { value, at: line_of(Some("approval")) }),
                name,
            },
        );
    }
    Ok(out)
}

impl Protection {
    /// Whether `branch` is one of the branches whose commits may change the environment.
    pub fn allows_branch(&self, branch: &str) -> bool {
        match &self.branches {
            None => true,
            Some(b) => b.value.iter().any(|g| crate::pipeline::limits::branch_glob(g).is_ok_and(|g| g.is_match(branch))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, Role};

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.yml"), text).map_err(|e| e.to_string())
    }

    const PRODUCTION: &str = "users:\n  rita: {role: release-manager}\nenvironments:\n  production:\n    projects: [storefront]\n    promote_only: true\n    branches: [main, \"release/*\"]\n    approval: {role: release-manager, count: 2, forbid_author: true, expires: 24h}\n";

    #[test]
    fn every_rule_is_read_with_the_line_it_is_written_on() {
        let c = parse(PRODUCTION).unwrap();
        let p = &c.protections["production"];
        assert_eq!(p.at.to_string(), "config.yml:4");
        assert_eq!(p.projects.as_ref().unwrap().value, vec!["storefront".to_string()]);
        assert_eq!(p.projects.as_ref().unwrap().at.to_string(), "config.yml:5");
        assert_eq!(p.promote_only.as_ref().unwrap().at.to_string(), "config.yml:6");
        assert_eq!(p.branches.as_ref().unwrap().at.to_string(), "config.yml:7");
        let approval = p.approval.as_ref().unwrap();
        assert_eq!(approval.at.to_string(), "config.yml:8");
        assert_eq!((approval.value.role, approval.value.count, approval.value.forbid_author), (Role::ReleaseManager, 2, true));
        assert_eq!(approval.value.expires.as_ref().map(|d| d.0.as_secs()), Some(86400));
        assert!(p.allows_branch("main") && p.allows_branch("release/1.2") && !p.allows_branch("feature/x"));
    }

    #[test]
    fn an_environment_not_listed_is_open_and_promote_only_false_is_no_rule() {
        let c = parse("environments:\n  staging: {promote_only: false}\n").unwrap();
        assert!(c.protections["staging"].promote_only.is_none());
        assert!(!c.protections.contains_key("production"));
        let c = parse("environments:\n  production:\n    approval:\n").unwrap();
        assert_eq!(c.protections["production"].approval.as_ref().unwrap().value.count, 1, "an empty approval means the defaults");
    }

    #[test]
    fn mistakes_in_the_rules_name_their_line_or_field() {
        let err = parse("environments:\n  production:\n    promote-only: true\n").unwrap_err();
        assert!(err.starts_with("config.yml:3:") && err.contains("unknown field `promote-only`"), "{err}");
        let err = parse("environments:\n  production:\n    approval: {count: 0}\n").unwrap_err();
        assert!(err.starts_with("config.yml:3:") && err.contains("must be at least 1"), "{err}");
        let err = parse("environments:\n  production: {approval: {role: developer}}\n").unwrap_err();
        assert!(err.contains("environments.production.approval.role: `developer` may not decide on promotions"), "{err}");
        let err = parse("environments:\n  production: {branches: []}\n").unwrap_err();
        assert!(err.contains("environments.production.branches: name at least one branch"), "{err}");
        let err = parse("environments:\n  production: {branches: [\"[\"]}\n").unwrap_err();
        assert!(err.contains("environments.production.branches: `[`"), "{err}");
        let err = parse("environments:\n  Prod: {}\n").unwrap_err();
        assert!(err.contains("environments.Prod: an environment name uses lowercase letters"), "{err}");
    }
}
