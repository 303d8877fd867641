//! Secret values come from the operator, never from the pipeline file, and only those the
//! operator granted the project: a file named after the secret in the secrets directory
//! (multi-line values welcome), or, where the caller allows it (`gantry run
//! --secrets-from-env`, never the service), an environment variable of that name. Values
//! go to containers as env and to the masker, nowhere else.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("stage '{stage}' names the secret {name}, which {rule} does not grant; nothing ran")]
    NotGranted { name: String, stage: String, rule: String },
    #[error("secret '{name}' (used by stage '{stage}') is not set: {}", where_to_put(name, dir.as_deref(), *from_env))]
    Missing { name: String, stage: String, dir: Option<PathBuf>, from_env: bool },
    #[error("cannot read secret file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

fn where_to_put(name: &str, dir: Option<&Path>, from_env: bool) -> String {
    let file = match dir {
        Some(d) => format!("put it in the file {}", d.join(name).display()),
        None => "give a secrets directory holding a file of that name".to_string(),
    };
    if from_env {
        format!("{file} or in the environment as {name}")
    } else {
        file
    }
}

/// The secrets the operator grants a project, and where that is written, for refusals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grant {
    pub names: BTreeSet<String>,
    /// `projects.storefront.secrets in /etc/gantry/config.yml`.
    pub rule: String,
}

/// Where values are read from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub dir: Option<&'a Path>,
    /// Whether this process's own environment may be read (never in the service).
    pub env: bool,
}

/// Checks that every secret the plan's stages name is granted, then reads them all.
/// `uses` pairs a secret name with a stage that uses it (for the messages). Nothing is read
/// before every name is known to be granted.
pub fn resolve<'a>(
    uses: impl IntoIterator<Item = (&'a str, &'a str)>,
    grant: &Grant,
    from: Sources<'_>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let uses: Vec<(&str, &str)> = uses.into_iter().collect();
    if let Some((name, stage)) = uses.iter().find(|(n, _)| !grant.names.contains(*n)) {
        return Err(SecretError::NotGranted { name: name.to_string(), stage: stage.to_string(), rule: grant.rule.clone() });
    }
    let mut values = BTreeMap::new();
    for (name, stage) in uses {
        if values.contains_key(name) {
            continue;
        }
        let from_file = match from.dir.map(|d| d.join(name)) {
            Some(path) if path.is_file() => Some(
                std::fs::read_to_string(&path)
                    .map(|v| v.strip_suffix('\n').map(str::to_string).unwrap_or(v))
                    .map_err(|source| SecretError::Read { path, source })?,
            ),
            _ => None,
        };
        let from_env = || if from.env { std::env::var(name).ok() } else { None };
        let value = from_file.or_else(from_env).ok_or_else(|| SecretError::Missing {
            name: name.to_string(),
            stage: stage.to_string(),
            dir: from.dir.map(Path::to_path_buf),
            from_env: from.env,
        })?;
        values.insert(name.to_string(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(names: &[&str]) -> Grant {
        Grant { names: names.iter().map(|n| n.to_string()).collect(), rule: "projects.shop.secrets in config.yml".into() }
    }

    #[test]
    fn file_wins_over_environment_and_keeps_inner_newlines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("GANTRY_TEST_KEY"), "line1\nline2\n").unwrap();
        let got = resolve([("GANTRY_TEST_KEY", "deploy")], &grant(&["GANTRY_TEST_KEY"]), Sources { dir: Some(dir.path()), env: true }).unwrap();
        assert_eq!(got["GANTRY_TEST_KEY"], "line1\nline2");
    }

    #[test]
    fn missing_secret_names_the_stage_and_where_to_put_it() {
        let err = resolve([("GANTRY_TEST_SURELY_UNSET", "deploy")], &grant(&["GANTRY_TEST_SURELY_UNSET"]), Sources::default()).unwrap_err().to_string();
        assert!(err.contains("secret 'GANTRY_TEST_SURELY_UNSET' (used by stage 'deploy') is not set"), "{err}");
    }

    #[test]
    fn a_secret_not_granted_is_refused_before_anything_is_read() {
        // PATH is set in every process: not granted, it is not read.
        let err = resolve([("API_TOKEN", "build"), ("PATH", "deploy")], &grant(&["API_TOKEN"]), Sources { dir: None, env: true }).unwrap_err();
        assert_eq!(err.to_string(), "stage 'deploy' names the secret PATH, which projects.shop.secrets in config.yml does not grant; nothing ran");
    }

    #[test]
    fn the_environment_is_read_only_when_allowed() {
        let allowed = resolve([("PATH", "x")], &grant(&["PATH"]), Sources { dir: None, env: true }).unwrap();
        assert!(!allowed["PATH"].is_empty());
        let err = resolve([("PATH", "x")], &grant(&["PATH"]), Sources { dir: None, env: false }).unwrap_err().to_string();
        assert!(err.contains("is not set") && !err.contains("environment"), "{err}");
    }
}
