//! The people who use Gantry: their roles, the addresses their commits carry (so an
//! author is recognised), and API tokens (stored hashed, never the token).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Role;
#[cfg(test)]
use super::{Config, ConfigError};
#[cfg(test)]
use std::path::Path;

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
    /// The user's logins at forges (`github: rita-gh`): a push by that login is their change.
    #[serde(default)]
    pub forges: BTreeMap<String, String>,
}

/// The forges whose push webhooks name a pusher.
pub const FORGES: [&str; 3] = ["github", "gitlab", "gitea"];

/// The SHA-256 of a token, as `token_sha256` holds it.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.trim().as_bytes()))
}

impl User {
    /// Whether the commit author with this address is this user.
    pub fn is_author(&self, email: &str) -> bool {
        self.emails.iter().any(|e| e.eq_ignore_ascii_case(email.trim()))
    }

    /// Whether `login` at `forge` is this user.
    pub fn is_pusher(&self, forge: &str, login: &str) -> bool {
        self.forges.get(forge).is_some_and(|mine| mine.eq_ignore_ascii_case(login.trim()))
    }

    /// Whether `hash` (of a presented token) is this user's, compared in constant time.
    pub fn has_token_hash(&self, hash: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.token_sha256 {
            Some(mine) => mine.to_ascii_lowercase().as_bytes().ct_eq(hash.as_bytes()).into(),
            None => false,
        }
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
    fn the_hash_of_the_empty_token_is_refused() {
        let err = parse(&format!("users:\n  a: {{role: admin, token_sha256: {}}}\n", token_hash(""))).unwrap_err().to_string();
        assert!(err.contains("users.a.token_sha256: that is the SHA-256 of the empty string"), "{err}");
        // token_hash trims, so a token of spaces is the empty token too.
        assert_eq!(token_hash("   "), token_hash(""));
    }

    #[test]
    fn forge_logins_are_read_and_belong_to_one_user() {
        let c = parse("users:\n  rita: {role: release-manager, forges: {github: Rita-GH, gitlab: rita}}\n").unwrap();
        let rita = c.user("rita").unwrap();
        assert!(rita.is_pusher("github", "rita-gh") && rita.is_pusher("gitlab", "rita"));
        assert!(!rita.is_pusher("gitea", "rita") && !rita.is_pusher("github", "rita"));
        let err = parse("users:\n  a: {role: admin, forges: {github: x}}\n  b: {role: viewer, forges: {github: X}}\n").unwrap_err().to_string();
        assert!(err.contains("users.b.forges.github: X also belongs to a"), "{err}");
        let err = parse("users:\n  a: {role: admin, forges: {bitbucket: x}}\n").unwrap_err().to_string();
        assert!(err.contains("users.a.forges.bitbucket: unknown forge"), "{err}");
    }

    #[test]
    fn an_unknown_user_lists_the_known_ones() {
        let c = parse("users:\n  alice: {role: admin}\n").unwrap();
        assert_eq!(c.user("mallory").unwrap_err().to_string(), "no user 'mallory' in gantry.yml (known: alice)");
    }
}
