//! Who is typing. A decision on the command line (approve, reject, starting a run as
//! someone) is made by a user who proved it: their token, checked against `token_sha256`,
//! or, where the operator allows it (`cli: {trust_os_user: true}`), their OS login. A name
//! alone proves nothing once the config gives users tokens.

use super::{Config, User};

/// How a user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A token whose hash is theirs.
    Token,
    /// The OS login of the same name, trusted by the operator.
    OsLogin,
    /// Only named (`--as`): accepted while the config has no tokens at all.
    Named,
}

/// A user and how they proved it.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user: User,
    pub proof: Proof,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IdentityError {
    #[error("the token given belongs to no user in {file}")]
    UnknownToken { file: String },
    #[error("the token given is {actual}'s, not {claimed}'s; nothing was done")]
    NotYou { claimed: String, actual: String },
    #[error("`--as {name}` proves nothing: {file} gives users tokens; pass yours in GANTRY_TOKEN or with --token-file FILE")]
    NameIsNoProof { name: String, file: String },
    #[error("who is this? {file} gives users tokens; pass yours in GANTRY_TOKEN or with --token-file FILE")]
    NoProof { file: String },
    #[error("who is this? name yourself with --as USER (a user of {file})")]
    NoName { file: String },
    #[error("the OS login {login} is no user of {file} (cli.trust_os_user takes login names as user names)")]
    UnknownLogin { login: String, file: String },
    #[error("cannot tell the OS login name of this process, which cli.trust_os_user needs")]
    NoLogin,
    #[error("you are logged in as {login}, not {claimed} (cli.trust_os_user); nothing was done")]
    NotYourLogin { claimed: String, login: String },
    #[error("no user '{name}' in {file} (known: {known})")]
    NoSuchUser { name: String, file: String, known: String },
}

impl Config {
    /// Who is deciding: `claimed` is `--as`, `token` the token presented (if any),
    /// `os_login` the login name of the process's real user.
    pub fn identify(&self, claimed: Option<&str>, token: Option<&str>, os_login: Option<&str>) -> Result<Identity, IdentityError> {
        let file = self.path.display().to_string();
        if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
            let user = self.user_by_token(token).ok_or_else(|| IdentityError::UnknownToken { file: file.clone() })?;
            if let Some(claimed) = claimed.filter(|c| *c != user.name) {
                return Err(IdentityError::NotYou { claimed: claimed.to_string(), actual: user.name.clone() });
            }
            return Ok(Identity { user: user.clone(), proof: Proof::Token });
        }
        if self.cli.trust_os_user {
            let login = os_login.ok_or(IdentityError::NoLogin)?;
            let user = self.users.get(login).ok_or_else(|| IdentityError::UnknownLogin { login: login.to_string(), file: file.clone() })?;
            if let Some(claimed) = claimed.filter(|c| *c != login) {
                return Err(IdentityError::NotYourLogin { claimed: claimed.to_string(), login: login.to_string() });
            }
            return Ok(Identity { user: user.clone(), proof: Proof::OsLogin });
        }
        match claimed {
            Some(name) if self.has_tokens() => Err(IdentityError::NameIsNoProof { name: name.to_string(), file }),
            None if self.has_tokens() => Err(IdentityError::NoProof { file }),
            None => Err(IdentityError::NoName { file }),
            Some(name) => match self.users.get(name) {
                Some(user) => Ok(Identity { user: user.clone(), proof: Proof::Named }),
                None => Err(IdentityError::NoSuchUser {
                    name: name.to_string(),
                    file,
                    known: self.users.keys().cloned().collect::<Vec<_>>().join(", "),
                }),
            },
        }
    }

    /// `identify` for steering a run (cancel): on a machine whose config names no users at
    /// all, whoever can reach the data dir (its owner: the socket and the store are theirs
    /// only) may, under the name given or their login name.
    pub fn identify_steerer(&self, claimed: Option<&str>, token: Option<&str>, os_login: Option<&str>) -> Result<Identity, IdentityError> {
        if !self.users.is_empty() {
            return self.identify(claimed, token, os_login);
        }
        let name = claimed.or(os_login).unwrap_or("owner").to_string();
        let user = User { name, role: super::Role::Admin, emails: Vec::new(), token_sha256: None, forges: Default::default() };
        Ok(Identity { user, proof: Proof::Named })
    }

    /// Whether a decision needs a token (or the OS login) rather than a name.
    pub fn needs_proof(&self) -> bool {
        self.has_tokens() && !self.cli.trust_os_user
    }
}

/// The login name of the process's real user, from the user database (not `$USER`, which
/// the caller sets).
pub fn os_login() -> Option<String> {
    let uid = nix::unistd::getuid();
    nix::unistd::User::from_uid(uid).ok().flatten().map(|u| u.name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::token_hash;

    fn config(extra: &str) -> Config {
        let text = format!(
            "users:\n  rita: {{role: release-manager, token_sha256: {}}}\n  dev: {{role: developer, token_sha256: {}}}\n{extra}",
            token_hash("rita-token"),
            token_hash("dev-token")
        );
        Config::parse(Path::new("config.yml"), &text).unwrap()
    }

    #[test]
    fn a_token_proves_its_user_and_a_name_must_match_it() {
        let c = config("");
        let id = c.identify(None, Some("rita-token\n"), None).unwrap();
        assert_eq!((id.user.name.as_str(), id.proof), ("rita", Proof::Token));
        assert!(c.identify(Some("rita"), Some("rita-token"), None).is_ok());
        let err = c.identify(Some("rita"), Some("dev-token"), None).unwrap_err();
        assert_eq!(err.to_string(), "the token given is dev's, not rita's; nothing was done");
        let err = c.identify(Some("rita"), Some("guess"), None).unwrap_err();
        assert_eq!(err.to_string(), "the token given belongs to no user in config.yml");
    }

    #[test]
    fn a_name_alone_is_refused_once_the_config_has_tokens() {
        let c = config("");
        assert!(c.needs_proof());
        let err = c.identify(Some("rita"), None, Some("rita")).unwrap_err();
        assert!(matches!(err, IdentityError::NameIsNoProof { .. }), "{err}");
        assert!(err.to_string().contains("GANTRY_TOKEN"), "{err}");
        assert!(matches!(c.identify(None, Some("  "), None), Err(IdentityError::NoProof { .. })));
    }

    #[test]
    fn without_tokens_a_name_is_taken_as_before() {
        let c = Config::parse(Path::new("config.yml"), "users:\n  rita: {role: release-manager}\n").unwrap();
        assert!(!c.needs_proof());
        assert_eq!(c.identify(Some("rita"), None, None).unwrap().proof, Proof::Named);
        let err = c.identify(Some("mallory"), None, None).unwrap_err();
        assert_eq!(err.to_string(), "no user 'mallory' in config.yml (known: rita)");
    }

    #[test]
    fn trusting_the_os_login_maps_it_to_the_user_of_that_name() {
        let c = config("cli: {trust_os_user: true}\n");
        assert!(!c.needs_proof());
        let id = c.identify(None, None, Some("rita")).unwrap();
        assert_eq!((id.user.name.as_str(), id.proof), ("rita", Proof::OsLogin));
        let err = c.identify(Some("rita"), None, Some("dev")).unwrap_err();
        assert_eq!(err.to_string(), "you are logged in as dev, not rita (cli.trust_os_user); nothing was done");
        assert!(matches!(c.identify(None, None, Some("root")), Err(IdentityError::UnknownLogin { .. })));
        // A token still wins over the login.
        assert_eq!(c.identify(None, Some("dev-token"), Some("rita")).unwrap().user.name, "dev");
    }
}
