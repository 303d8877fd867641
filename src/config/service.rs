//! `gantry serve`'s settings and the projects it runs: where each project's repository
//! is, which pipeline file in it to run, which branches to follow, how pushes reach it.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `server:` in the operator's config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the HTTP API, webhooks and dashboard listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// History and the queue (default: `--data-dir`, `GANTRY_DATA_DIR`, or the usual place).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub concurrency: Concurrency,
    /// How often Docker objects of finished runs are looked for and removed.
    #[serde(default = "default_sweep", with = "humantime_serde")]
    pub sweep_every: Duration,
    /// Directory of secret files for the runs (one file per secret); else the service's environment.
    #[serde(default)]
    pub secrets_dir: Option<PathBuf>,
    /// Serve HTTPS with this certificate and key (PEM files) instead of HTTP.
    #[serde(default)]
    pub tls: Option<Tls>,
    /// How long a dashboard sign-in lasts (then the browser signs in again).
    #[serde(default = "default_session_ttl", with = "humantime_serde")]
    pub session_ttl: Duration,
}

/// `server.tls`: the service's certificate (chain) and private key, PEM, read at start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// The certificate, then any intermediates (`-----BEGIN CERTIFICATE-----`).
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// Runs at once, all projects together.
    #[serde(default = "default_global")]
    pub global: usize,
    /// Runs at once of one project.
    #[serde(default = "default_per_project")]
    pub per_project: usize,
    /// Stages at once within a run.
    #[serde(default = "default_stages")]
    pub stages: usize,
}

/// One entry of `projects:`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// A local repository (path, bare or not) or a URL git can fetch (file://, https://).
    pub repo: String,
    /// The pipeline file, inside the repository: read from each commit itself.
    #[serde(default = "default_pipeline")]
    pub pipeline: String,
    /// Branch globs that trigger runs.
    #[serde(default = "default_branches")]
    pub branches: Vec<String>,
    /// Poll the repository for new commits this often (none: webhooks and manual triggers only).
    #[serde(default, with = "humantime_serde")]
    pub poll: Option<Duration>,
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// The secrets this project's pipelines may name (values from `server.secrets_dir`).
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// How a forge's push webhooks are recognised and checked.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Environment variable holding the shared secret (kept out of this file).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the shared secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The repository's name at the forge (`acme/storefront`); default: the project's name
    /// matched against the repository's short name.
    #[serde(default)]
    pub repository: Option<String>,
}

fn default_listen() -> String {
    "127.0.0.1:8787".into()
}
fn default_sweep() -> Duration {
    Duration::from_secs(300)
}
fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_global() -> usize {
    4
}
fn default_per_project() -> usize {
    2
}
fn default_stages() -> usize {
    4
}
fn default_pipeline() -> String {
    "gantry.yml".into()
}
fn default_branches() -> Vec<String> {
    vec!["main".into()]
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: default_listen(),
            data_dir: None,
            concurrency: Concurrency::default(),
            sweep_every: default_sweep(),
            secrets_dir: None,
            tls: None,
            session_ttl: default_session_ttl(),
        }
    }
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency { global: default_global(), per_project: default_per_project(), stages: default_stages() }
    }
}

impl ServerSettings {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("server.listen: `{}` is not an address like 127.0.0.1:8787", self.listen));
        }
        let c = &self.concurrency;
        for (field, value) in [("global", c.global), ("per_project", c.per_project), ("stages", c.stages)] {
            if value == 0 {
                return Err(format!("server.concurrency.{field}: must be at least 1"));
            }
        }
        if self.sweep_every.is_zero() {
            return Err("server.sweep_every: must be more than 0s".into());
        }
        // Intervals are added to instants at run time, where a huge one would overflow.
        crate::pipeline::limits::check_duration(self.sweep_every, crate::pipeline::limits::MAX_DURATION)
            .map_err(|e| format!("server.sweep_every: {e}"))?;
        if self.session_ttl.is_zero() || self.session_ttl > Duration::from_secs(30 * 24 * 3600) {
            return Err("server.session_ttl: must be more than 0s and at most 30 days".into());
        }
        if let Some(tls) = &self.tls {
            for (field, path) in [("cert", &tls.cert), ("key", &tls.key)] {
                if path.as_os_str().is_empty() {
                    return Err(format!("server.tls.{field}: give the path of a PEM file"));
                }
            }
        }
        Ok(())
    }
}

impl Project {
    pub(crate) fn check(&self, name: &str) -> Result<(), String> {
        let ok = !name.is_empty()
            && name.len() <= 40
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            return Err(format!("projects.{name}: a project name uses lowercase letters, digits, - and _ (at most 40)"));
        }
        if self.pipeline.starts_with('/') || self.pipeline.split('/').any(|p| p == "..") {
            return Err(format!("projects.{name}.pipeline: `{}` must be a path inside the repository", self.pipeline));
        }
        if self.branches.is_empty() {
            return Err(format!("projects.{name}.branches: name at least one branch (globs welcome)"));
        }
        for b in &self.branches {
            // Compiled as `tracks` will compile it: a glob too big for its regex is an
            // error here, never a panic when a push arrives.
            crate::pipeline::limits::branch_glob(b).map_err(|e| format!("projects.{name}.branches: {e}"))?;
        }
        if self.poll.is_some_and(|p| p < Duration::from_secs(1)) {
            return Err(format!("projects.{name}.poll: poll at most once a second"));
        }
        if let Some(poll) = self.poll {
            crate::pipeline::limits::check_duration(poll, crate::pipeline::limits::MAX_DURATION)
                .map_err(|e| format!("projects.{name}.poll: {e}"))?;
        }
        if let Some(w) = &self.webhook {
            if w.secret_env.is_some() == w.secret_file.is_some() {
                return Err(format!("projects.{name}.webhook: give exactly one of secret_env and secret_file"));
            }
        }
        Ok(())
    }

    /// Whether pushes to `branch` trigger runs.
    pub fn tracks(&self, branch: &str) -> bool {
        self.branches.iter().any(|g| crate::pipeline::limits::branch_glob(g).is_ok_and(|g| g.is_match(branch)))
    }

    /// The webhook's shared secret, read now (from the environment or its file).
    pub fn webhook_secret(&self, name: &str) -> Result<Option<String>, WebhookSecretError> {
        let Some(w) = &self.webhook else { return Ok(None) };
        let project = name.to_string();
        let value = match (&w.secret_env, &w.secret_file) {
            (Some(var), _) => std::env::var(var).map_err(|_| WebhookSecretError::Unset { project, var: var.clone() })?,
            (_, Some(file)) => std::fs::read_to_string(file)
                .map_err(|source| WebhookSecretError::Unreadable { project, file: file.clone(), source })?
                .trim_end_matches('\n')
                .to_string(),
            _ => return Ok(None),
        };
        if value.is_empty() {
            return Err(WebhookSecretError::Empty { project: name.to_string() });
        }
        Ok(Some(value))
    }
}

/// Why a project's webhook secret could not be read; the service does not start without it.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSecretError {
    #[error("projects.{project}.webhook.secret_env: the environment variable {var} is not set")]
    Unset { project: String, var: String },
    #[error("projects.{project}.webhook.secret_file: cannot read {}: {source}", file.display())]
    Unreadable { project: String, file: std::path::PathBuf, source: std::io::Error },
    #[error("projects.{project}.webhook: the secret is empty")]
    Empty { project: String },
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("gantry.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_service_config_with_defaults() {
        let c = parse("projects:\n  shop: {repo: /srv/shop.git}\n").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8787");
        assert_eq!((c.server.concurrency.global, c.server.concurrency.per_project), (4, 2));
        let shop = &c.projects["shop"];
        assert_eq!((shop.pipeline.as_str(), shop.branches.clone()), ("gantry.yml", vec!["main".to_string()]));
        assert!(shop.tracks("main") && !shop.tracks("feature/x"));
    }

    #[test]
    fn branch_globs_and_durations_are_read() {
        let c = parse("server: {sweep_every: 30s}\nprojects:\n  shop: {repo: /r, branches: [main, \"release/*\"], poll: 1m}\n").unwrap();
        assert_eq!(c.server.sweep_every, std::time::Duration::from_secs(30));
        assert_eq!(c.projects["shop"].poll, Some(std::time::Duration::from_secs(60)));
        assert!(c.projects["shop"].tracks("release/1.2"));
    }

    #[test]
    fn mistakes_name_their_line_or_field() {
        let err = parse("server:\n  concurency: {global: 2}\n").unwrap_err();
        assert!(err.starts_with("gantry.yml:2:3: server: unknown field `concurency`"), "{err}");
        let err = parse("projects:\n  shop:\n    repo: /r\n    poll: soon\n").unwrap_err();
        assert!(err.starts_with("gantry.yml:4:11:"), "{err}");
        assert_eq!(parse("server: {listen: nowhere}\n").unwrap_err(), "gantry.yml: server.listen: `nowhere` is not an address like 127.0.0.1:8787");
        assert_eq!(parse("server: {concurrency: {global: 0}}\n").unwrap_err(), "gantry.yml: server.concurrency.global: must be at least 1");
        let err = parse("projects:\n  Shop: {repo: /r}\n").unwrap_err();
        assert!(err.contains("projects.Shop: a project name uses lowercase letters"), "{err}");
        let err = parse("projects:\n  shop: {repo: /r, pipeline: ../x.yml}\n").unwrap_err();
        assert!(err.contains("must be a path inside the repository"), "{err}");
        let err = parse("projects:\n  shop: {repo: /r, webhook: {}}\n").unwrap_err();
        assert!(err.contains("give exactly one of secret_env and secret_file"), "{err}");
    }

    #[test]
    fn tls_and_the_session_length_are_read_and_checked() {
        let c = parse("projects: {}\n").unwrap();
        assert_eq!((c.server.tls.clone(), c.server.session_ttl), (None, std::time::Duration::from_secs(12 * 3600)));
        let c = parse("server:\n  session_ttl: 8h\n  tls: {cert: /etc/gantry/cert.pem, key: /etc/gantry/key.pem}\n").unwrap();
        let tls = c.server.tls.clone().unwrap();
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("/etc/gantry/cert.pem"), Some("/etc/gantry/key.pem")));
        assert_eq!(c.server.session_ttl, std::time::Duration::from_secs(8 * 3600));
        let err = parse("server:\n  tls: {cert: /c.pem}\n").unwrap_err();
        assert!(err.starts_with("gantry.yml:2:8: server.tls: missing field `key`"), "{err}");
        let err = parse("server:\n  tls:\n    cert: /c.pem\n    key: /k.pem\n    chain: /x.pem\n").unwrap_err();
        assert!(err.starts_with("gantry.yml:5:5: server.tls: unknown field `chain`, expected `cert` or `key`"), "{err}");
        assert_eq!(parse("server: {tls: {cert: '', key: /k}}\n").unwrap_err(), "gantry.yml: server.tls.cert: give the path of a PEM file");
        let err = parse("server:\n  session_ttl: forever\n").unwrap_err();
        assert!(err.starts_with("gantry.yml:2:16:"), "{err}");
        assert_eq!(parse("server: {session_ttl: 0s}\n").unwrap_err(), "gantry.yml: server.session_ttl: must be more than 0s and at most 30 days");
    }

    #[test]
    fn a_missing_webhook_secret_is_named() {
        let c = parse("projects:\n  shop: {repo: /r, webhook: {secret_env: GANTRY_TEST_SURELY_UNSET_SECRET}}\n").unwrap();
        let err = c.projects["shop"].webhook_secret("shop").unwrap_err();
        assert_eq!(err.to_string(), "projects.shop.webhook.secret_env: the environment variable GANTRY_TEST_SURELY_UNSET_SECRET is not set");
    }

    #[test]
    fn two_users_may_not_share_a_token() {
        let hash = crate::config::token_hash("same");
        let err = parse(&format!("users:\n  a: {{role: admin, token_sha256: {hash}}}\n  b: {{role: viewer, token_sha256: {hash}}}\n")).unwrap_err();
        assert!(err.contains("users.b.token_sha256: the same token as a's"), "{err}");
        let c = parse(&format!("users:\n  a: {{role: admin, token_sha256: {hash}}}\n")).unwrap();
        assert_eq!(c.user_by_token("same").map(|u| u.name.as_str()), Some("a"));
        assert!(c.user_by_token("other").is_none());
    }
}

