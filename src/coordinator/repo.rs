//! Where a project's commits are read: its repository itself when it is a local path, or a
//! bare mirror under the data dir, fetched with git2, when it is a URL.

use std::path::{Path, PathBuf};

use crate::config::Project;
use crate::git::GitError;

/// Whether the project's repository is reached by URL (and so mirrored).
pub fn is_remote(project: &Project) -> bool {
    project.repo.contains("://") || project.repo.starts_with("git@")
}

/// A local repository holding the project's commits; with `fetch`, a mirrored one is
/// brought up to date first.
pub fn local_path(data_dir: &Path, name: &str, project: &Project, fetch: bool) -> Result<PathBuf, GitError> {
    if !is_remote(project) {
        return Ok(PathBuf::from(&project.repo));
    }
    let dir = data_dir.join("repos").join(format!("{name}.git"));
    if fetch || !dir.exists() {
        crate::git::mirror(&project.repo, &dir)?;
    }
    Ok(dir)
}

/// The branch a trigger without a revision runs: the first one the project follows that
/// is a plain name, else `main`.
pub fn default_branch(project: &Project) -> String {
    project
        .branches
        .iter()
        .find(|b| !b.contains(['*', '?', '[', '{']))
        .cloned()
        .unwrap_or_else(|| "main".into())
}

/// Heads of the branches the project follows, fetched first when mirrored.
pub fn tracked_heads(data_dir: &Path, name: &str, project: &Project) -> Result<Vec<(String, String)>, GitError> {
    let path = local_path(data_dir, name, project, true)?;
    Ok(crate::git::branch_heads(&path)?.into_iter().filter(|(b, _)| project.tracks(b)).collect())
}
