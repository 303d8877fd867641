//! git2: resolve a revision to a commit, read its metadata (author, time: lead time is built
//! on it), and pack that exact commit's tree as a tar archive for the run's workspace.

use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, TimeZone};
use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::commit::CommitInfo;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{} is not a git repository: {}", path.display(), source.message())]
    NotARepo { path: PathBuf, source: git2::Error },
    #[error("revision '{rev}' does not name a commit in {}: {}", repo.display(), source.message())]
    BadRevision { rev: String, repo: PathBuf, source: git2::Error },
    #[error("cannot read commit {sha}: {message}")]
    Read { sha: String, message: String },
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
}

/// A commit resolved in a repository, ready to be checked out.
pub struct Checkout {
    repo: Repository,
    pub info: CommitInfo,
}

/// Resolves `rev` (default HEAD) in the repository at `path`. The branch is the one `rev`
/// names, or the one HEAD points at when `rev` is HEAD; a bare sha has no branch.
pub fn resolve(path: &Path, rev: Option<&str>) -> Result<Checkout, GitError> {
    let repo = Repository::discover(path).map_err(|source| GitError::NotARepo { path: path.to_path_buf(), source })?;
    let rev_text = rev.unwrap_or("HEAD");
    let info = commit_info(&repo, path, rev_text)?;
    Ok(Checkout { repo, info })
}

fn commit_info(repo: &Repository, path: &Path, rev_text: &str) -> Result<CommitInfo, GitError> {
    let bad = |source| GitError::BadRevision { rev: rev_text.to_string(), repo: path.to_path_buf(), source };
    let object = repo.revparse_single(rev_text).map_err(bad)?;
    let commit = object.peel_to_commit().map_err(bad)?;
    let branch = branch_of(repo, rev_text);
    let sha = commit.id().to_string();
    let author = commit.author();
    let when = commit.time();
    let offset = FixedOffset::east_opt(when.offset_minutes() * 60).unwrap_or(FixedOffset::east_opt(0).unwrap());
    let time: DateTime<FixedOffset> = offset
        .timestamp_opt(when.seconds(), 0)
        .single()
        .ok_or_else(|| GitError::Read { sha: sha.clone(), message: "commit time out of range".into() })?;
    Ok(CommitInfo {
        short: sha[..8].to_string(),
        author_name: author.name().unwrap_or("").to_string(),
        author_email: author.email().unwrap_or("").to_string(),
        time,
        summary: commit.summary().unwrap_or("").to_string(),
        branch,
        sha,
    })
}

fn branch_of(repo: &Repository, rev: &str) -> Option<String> {
    if rev == "HEAD" {
        let head = repo.head().ok()?;
        return head.is_branch().then(|| head.shorthand().map(str::to_string)).flatten();
    }
    repo.find_branch(rev, git2::BranchType::Local).ok().map(|_| rev.to_string()).or_else(|| {
        let remote = repo.find_branch(rev, git2::BranchType::Remote).ok()?;
        let name = remote.name().ok()??;
        Some(name.split_once('/').map_or(name, |(_, b)| b).to_string())
    })
}

/// Local branches of the repository at `path` and the commit each points at.
pub fn branch_heads(path: &Path) -> Result<Vec<(String, String)>, GitError> {
    let repo = Repository::open(path).map_err(|source| GitError::NotARepo { path: path.to_path_buf(), source })?;
    let read = |e: git2::Error| GitError::Read { sha: String::new(), message: e.message().to_string() };
    let mut out = Vec::new();
    for branch in repo.branches(Some(git2::BranchType::Local)).map_err(read)? {
        let (branch, _) = branch.map_err(read)?;
        let (Ok(Some(name)), Some(target)) = (branch.name(), branch.get().target()) else {
            continue;
        };
        out.push((name.to_string(), target.to_string()));
    }
    Ok(out)
}

/// The local branches of the repository at `path` whose names match one of `globs` and
/// that contain commit `sha` (it is their head or one of its ancestors). Read from the
/// repository itself, never from what a trigger claims.
pub fn branches_containing(path: &Path, sha: &str, globs: &[String]) -> Result<Vec<String>, GitError> {
    if globs.is_empty() {
        return Ok(Vec::new());
    }
    let repo = Repository::discover(path).map_err(|source| GitError::NotARepo { path: path.to_path_buf(), source })?;
    let read = |e: git2::Error| GitError::Read { sha: sha.to_string(), message: e.message().to_string() };
    let commit = git2::Oid::from_str(sha).map_err(read)?;
    // `branch_glob` rather than `compile_matcher`, which panics on a glob too big for its regex.
    let matchers: Vec<globset::GlobSet> = globs.iter().filter_map(|g| crate::pipeline::limits::branch_glob(g).ok()).collect();
    let mut out = Vec::new();
    for branch in repo.branches(Some(git2::BranchType::Local)).map_err(read)? {
        let (branch, _) = branch.map_err(read)?;
        let (Ok(Some(name)), Some(head)) = (branch.name(), branch.get().target()) else {
            continue;
        };
        if !matchers.iter().any(|m| m.is_match(name)) {
            continue;
        }
        if head == commit || repo.graph_descendant_of(head, commit).map_err(read)? {
            out.push(name.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `name` is a branch name by git's ref-name rules (`git check-ref-format`): no
/// `..`, spaces, `~^:?*[\\`, control characters, `@{`, leading `-` or trailing `.lock`.
pub fn is_branch_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('-') && git2::Reference::is_valid_name(&format!("refs/heads/{name}"))
}

/// Whether `rev` names a revision plainly: a (possibly abbreviated) hex sha, or a branch or
/// tag name by the ref-name rules. Revision expressions (`HEAD~1`, `:/text`, `@{...}`)
/// are not taken from outside.
pub fn is_plain_revision(rev: &str) -> bool {
    let hex = (4..=40).contains(&rev.len()) && rev.chars().all(|c| c.is_ascii_hexdigit());
    hex || is_branch_name(rev) || git2::Reference::is_valid_name(rev) && rev.starts_with("refs/")
}

/// Whether the local branch `branch` of the repository at `path` holds commit `sha` (None:
/// there is no such branch).
pub fn branch_contains(path: &Path, branch: &str, sha: &str) -> Result<Option<bool>, GitError> {
    let repo = Repository::discover(path).map_err(|source| GitError::NotARepo { path: path.to_path_buf(), source })?;
    let read = |e: git2::Error| GitError::Read { sha: sha.to_string(), message: e.message().to_string() };
    let Ok(found) = repo.find_branch(branch, git2::BranchType::Local) else {
        return Ok(None);
    };
    let Some(head) = found.get().target() else {
        return Ok(None);
    };
    let commit = git2::Oid::from_str(sha).map_err(read)?;
    Ok(Some(head == commit || repo.graph_descendant_of(head, commit).map_err(read)?))
}

/// Whether commit `ancestor` is an ancestor of (or the same as) `descendant` in the
/// repository at `path`; None when the repository does not know one of them.
pub fn is_ancestor(path: &Path, ancestor: &str, descendant: &str) -> Option<bool> {
    let repo = Repository::discover(path).ok()?;
    let (a, d) = (git2::Oid::from_str(ancestor).ok()?, git2::Oid::from_str(descendant).ok()?);
    repo.find_commit(a).ok()?;
    repo.find_commit(d).ok()?;
    Some(a == d || repo.graph_descendant_of(d, a).ok()?)
}

/// The commits a change brings: those reachable from `candidate` and not from `since`
/// (what the target runs now), each author once with their newest commit in it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChangeAuthors {
    pub commits: u32,
    /// (address, name, sha), newest first.
    pub authors: Vec<(String, String, String)>,
    /// Whether `since` was found in the repository (if not, the whole history counts).
    pub since_found: bool,
}

pub fn change_authors(path: &Path, candidate: &str, since: Option<&str>) -> Result<ChangeAuthors, GitError> {
    let repo = Repository::discover(path).map_err(|source| GitError::NotARepo { path: path.to_path_buf(), source })?;
    let read = |e: git2::Error| GitError::Read { sha: candidate.to_string(), message: e.message().to_string() };
    let mut walk = repo.revwalk().map_err(read)?;
    walk.push(git2::Oid::from_str(candidate).map_err(read)?).map_err(read)?;
    let mut since_found = false;
    if let Some(since) = since.and_then(|s| git2::Oid::from_str(s).ok()) {
        if repo.find_commit(since).is_ok() {
            walk.hide(since).map_err(read)?;
            since_found = true;
        }
    }
    let mut out = ChangeAuthors { since_found, ..Default::default() };
    for oid in walk {
        let oid = oid.map_err(read)?;
        let commit = repo.find_commit(oid).map_err(read)?;
        out.commits += 1;
        let author = commit.author();
        let email = author.email().unwrap_or("").trim().to_ascii_lowercase();
        if !out.authors.iter().any(|(e, _, _)| *e == email) {
            out.authors.push((email, author.name().unwrap_or("").to_string(), oid.to_string()));
        }
    }
    Ok(out)
}

/// Keeps a bare mirror of the repository at `url` in `dir` (created on first use), its
/// branches fetched to local branches of the mirror. Returns the mirror's path.
pub fn mirror(url: &str, dir: &Path) -> Result<PathBuf, GitError> {
    let fail = |e: git2::Error| GitError::Fetch { url: url.to_string(), message: e.message().to_string() };
    let repo = match Repository::open_bare(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(|e| GitError::Fetch { url: url.to_string(), message: e.to_string() })?;
            Repository::init_bare(dir).map_err(fail)?
        }
    };
    let mut remote = repo.remote_anonymous(url).map_err(fail)?;
    // Branches deleted upstream go here too (prune), so polling does not chase them.
    let mut options = git2::FetchOptions::new();
    options.prune(git2::FetchPrune::On);
    remote.fetch(&["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"], Some(&mut options), None).map_err(fail)?;
    Ok(dir.to_path_buf())
}

impl Checkout {
    /// The content of `path` in the commit (None if the commit has no such file); a file
    /// larger than a pipeline file may be is an error.
    pub fn read_file(&self, path: &str) -> Result<Option<String>, GitError> {
        let err = |message: String| GitError::Read { sha: self.info.sha.clone(), message };
        let oid = git2::Oid::from_str(&self.info.sha).map_err(|e| err(e.message().to_string()))?;
        let tree = self.repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| err(e.message().to_string()))?;
        let Ok(entry) = tree.get_path(Path::new(path)) else {
            return Ok(None);
        };
        // The file is the pushed pipeline: its size is read from the object header, so a
        // gigabyte blob is refused without being loaded.
        let max = crate::pipeline::limits::MAX_PIPELINE_BYTES;
        if let Ok((size, _)) = self.repo.odb().and_then(|odb| odb.read_header(entry.id())) {
            if size > max {
                return Err(err(format!("{path} is {} KiB; pipeline files may be at most {} KiB", size.div_ceil(1024), max / 1024)));
            }
        }
        let blob = self.repo.find_blob(entry.id()).map_err(|e| err(format!("{path}: {}", e.message())))?;
        String::from_utf8(blob.content().to_vec()).map(Some).map_err(|_| err(format!("{path} is not UTF-8 text")))
    }

    /// The commit's tree as a tar archive: exactly what is committed, nothing of the work
    /// tree. Executable bits and symlinks are kept; submodules are left out.
    pub fn tar(&self) -> Result<Vec<u8>, GitError> {
        let err = |message: String| GitError::Read { sha: self.info.sha.clone(), message };
        let oid = git2::Oid::from_str(&self.info.sha).map_err(|e| err(e.message().to_string()))?;
        let commit = self.repo.find_commit(oid).map_err(|e| err(e.message().to_string()))?;
        let tree = commit.tree().map_err(|e| err(e.message().to_string()))?;
        let mtime = self.info.time.timestamp().max(0) as u64;
        let mut builder = tar::Builder::new(Vec::new());
        let mut failure: Option<String> = None;
        tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
            let name = match entry.name() {
                Some(n) => format!("{dir}{n}"),
                None => return TreeWalkResult::Skip,
            };
            let result = match entry.kind() {
                Some(ObjectType::Tree) => {
                    let mut header = tar::Header::new_gnu();
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_mtime(mtime);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{name}/"), std::io::empty())
                }
                Some(ObjectType::Blob) => {
                    let blob = match self.repo.find_blob(entry.id()) {
                        Ok(b) => b,
                        Err(e) => {
                            failure = Some(e.message().to_string());
                            return TreeWalkResult::Abort;
                        }
                    };
                    let mut header = tar::Header::new_gnu();
                    header.set_mtime(mtime);
                    if entry.filemode() == 0o120000 {
                        header.set_entry_type(tar::EntryType::Symlink);
                        header.set_size(0);
                        header.set_mode(0o777);
                        let target = String::from_utf8_lossy(blob.content()).into_owned();
                        builder.append_link(&mut header, &name, target)
                    } else {
                        header.set_size(blob.content().len() as u64);
                        header.set_mode(if entry.filemode() == 0o100755 { 0o755 } else { 0o644 });
                        builder.append_data(&mut header, &name, blob.content())
                    }
                }
                // Submodule commits are not part of this repository's content.
                _ => return TreeWalkResult::Skip,
            };
            match result {
                Ok(()) => TreeWalkResult::Ok,
                Err(e) => {
                    failure = Some(e.to_string());
                    TreeWalkResult::Abort
                }
            }
        })
        .map_err(|e| err(failure.clone().unwrap_or_else(|| e.message().to_string())))?;
        if let Some(f) = failure {
            return Err(err(f));
        }
        builder.into_inner().map_err(|e| err(e.to_string()))
    }
}
