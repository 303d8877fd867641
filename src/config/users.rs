//! The operator's config file: the people who use Gantry, their roles, the addresses
//! their commits carry (so an author is recognised), and API tokens (stored hashed).
//!
//! ```yaml
//! users:
//!   alice:
//!     role: release-manager
//!     emails: [alice@example.com]
//!     token_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Role;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no operator config at {}: approvals need users and roles; write one (see config/example.yml) or pass --config FILE / set GANTRY_CONFIG", path.display())]
    Missing { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{}: {message}", path.display())]
    Rule { path: PathBuf, message: String },
    #[error("no user '{name}' in {} (known: {})", path.display(), known.join(", "))]
    NoSuchUser { name: String, path: PathBuf, known: Vec<String> },
}

/// The operator's configuration as read from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from, for messages.
    pub path: PathBuf,
    pub users: BTreeMap<String, User>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    #[serde(skip)]
    pub name: String,
    pub role: Role,
    /// Addresses this person commits with: a commit by any of them is their change.
    #[serde(default)]
    pub emails: Vec<String>,
    /// SHA-256 (hex) of the user's API token; the token itself is never stored.
    #[serde(default)]
    pub token_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, User>,
}

impl User {
    /// Whether the commit author with this address is this user.
    pub fn is_author(&self, email: &str) -> bool {
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(email.trim()))
    }
}

impl Config {
    /// The file `--config` / `GANTRY_CONFIG` names, else `gantry/config.yml` under the
    /// user's config directory.
    pub fn default_path() -> PathBuf {
        dirs::config_dir().unwrap_or_else(|| PathBuf::from(".")).join("gantry").join("config.yml")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing { path: path.to_path_buf() }),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let file: File = serde_yaml::from_str(text).map_err(|e| {
            let (line, column) = e.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
            // serde_yaml ends its message with the place, which is already in front.
            let mut message = e.to_string();
            if let Some(cut) = message.rfind(" at line ") {
                message.truncate(cut);
            }
            ConfigError::Invalid { path: path.to_path_buf(), line, column, message }
        })?;
        let rule = |message: String| ConfigError::Rule { path: path.to_path_buf(), message };
        let mut owners: BTreeMap<String, &str> = BTreeMap::new();
        for (name, user) in &file.users {
            if name.trim().is_empty() || name.chars().any(char::is_whitespace) {
                return Err(rule(format!("users.'{name}': a user name must be one word")));
            }
            for email in &user.emails {
                // One address, one person: otherwise an author could approve their own
                // change under a second name.
                if let Some(other) = owners.insert(email.trim().to_ascii_lowercase(), name) {
                    return Err(rule(format!("users.{name}.emails: {email} also belongs to {other}; an address may belong to one user only")));
                }
            }
            if let Some(hash) = &user.token_sha256 {
                if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(rule(format!("users.{name}.token_sha256: must be 64 hex digits (the SHA-256 of the token, e.g. `printf %s TOKEN | sha256sum`)")));
                }
            }
        }
        let users = file
            .users
            .into_iter()
            .map(|(name, mut user)| {
                user.name = name.clone();
                (name, user)
            })
            .collect();
        Ok(Config { path: path.to_path_buf(), users })
    }

    pub fn user(&self, name: &str) -> Result<&User, ConfigError> {
        self.users.get(name).ok_or_else(|| ConfigError::NoSuchUser {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.users.keys().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("gantry.yml"), text)
    }

    #[test]
    fn reads_users_with_roles_and_addresses() {
        let c = parse("users:\n  alice: {role: release-manager, emails: [Alice@Example.com]}\n  bob: {role: developer}\n").unwrap();
        let alice = c.user("alice").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.role, Role::ReleaseManager);
        assert!(alice.is_author("alice@example.COM "));
        assert!(!c.user("bob").unwrap().is_author("alice@example.com"));
    }

    #[test]
    fn a_wrong_role_names_the_line_and_the_roles() {
        let err = parse("users:\n  alice:\n    role: boss\n").unwrap_err().to_string();
        assert!(err.starts_with("gantry.yml:3:"), "{err}");
        assert!(err.contains("unknown variant `boss`") && err.contains("release-manager"), "{err}");
        assert!(!err.contains(" at line "), "the place is said once: {err}");
    }

    #[test]
    fn an_unknown_key_is_refused_with_its_line() {
        let err = parse("users:\n  alice:\n    role: admin\n    mail: a@b\n").unwrap_err().to_string();
        assert!(err.starts_with("gantry.yml:4:") && err.contains("unknown field `mail`"), "{err}");
    }

    #[test]
    fn an_address_shared_by_two_users_is_refused() {
        let err = parse("users:\n  a: {role: admin, emails: [x@y]}\n  b: {role: viewer, emails: [X@y]}\n").unwrap_err().to_string();
        assert!(err.contains("users.b.emails: X@y also belongs to a"), "{err}");
    }

    #[test]
    fn a_token_must_be_stored_as_its_hash() {
        let err = parse("users:\n  a: {role: admin, token_sha256: hunter2}\n").unwrap_err().to_string();
        assert!(err.contains("users.a.token_sha256: must be 64 hex digits"), "{err}");
    }

    #[test]
    fn an_unknown_user_lists_the_known_ones() {
        let c = parse("users:\n  alice: {role: admin}\n").unwrap();
        assert_eq!(c.user("mallory").unwrap_err().to_string(), "no user 'mallory' in gantry.yml (known: alice)");
    }
}
