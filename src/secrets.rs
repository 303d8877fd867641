//! Secret values come from the operator, never from the pipeline file: a file named after
//! the secret in the secrets directory (multi-line values welcome), else an environment
//! variable of that name. Values go to containers as env and to the masker, nowhere else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret '{name}' (used by stage '{stage}') is not set: put it in the environment as {name}{}", dir.as_ref().map(|d| format!(" or in the file {}", d.join(name).display())).unwrap_or_else(|| " or pass --secrets-dir".into()))]
    Missing { name: String, stage: String, dir: Option<PathBuf> },
    #[error("cannot read secret file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
}

/// Resolves every secret the plan's stages name. `uses` pairs a secret name with a stage
/// that uses it (for the error message).
pub fn resolve<'a>(
    uses: impl IntoIterator<Item = (&'a str, &'a str)>,
    dir: Option<&Path>,
) -> Result<BTreeMap<String, String>, SecretError> {
    let mut values = BTreeMap::new();
    for (name, stage) in uses {
        if values.contains_key(name) {
            continue;
        }
        let from_file = match dir.map(|d| d.join(name)) {
            Some(path) if path.is_file() => Some(
                std::fs::read_to_string(&path)
                    .map(|v| v.strip_suffix('\n').map(str::to_string).unwrap_or(v))
                    .map_err(|source| SecretError::Read { path, source })?,
            ),
            _ => None,
        };
        let value = from_file.or_else(|| std::env::var(name).ok()).ok_or_else(|| SecretError::Missing {
            name: name.to_string(),
            stage: stage.to_string(),
            dir: dir.map(Path::to_path_buf),
        })?;
        values.insert(name.to_string(), value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_wins_over_environment_and_keeps_inner_newlines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("GANTRY_TEST_KEY"), "line1\nline2\n").unwrap();
        let got = resolve([("GANTRY_TEST_KEY", "deploy")], Some(dir.path())).unwrap();
        assert_eq!(got["GANTRY_TEST_KEY"], "line1\nline2");
    }

    #[test]
    fn missing_secret_names_the_stage_and_where_to_put_it() {
        let err = resolve([("GANTRY_TEST_SURELY_UNSET", "deploy")], None).unwrap_err().to_string();
        assert!(err.contains("secret 'GANTRY_TEST_SURELY_UNSET' (used by stage 'deploy') is not set"), "{err}");
    }
}
