//! The operator's configuration, one YAML file: who the users are and what roles they
//! hold, and for `gantry serve` the service's settings and the projects it runs.
//!
//! ```yaml
//! users:
//!   rita: {role: release-manager, emails: [rita@example.com], token_sha256: 2c26b4...}
//! server: {listen: "127.0.0.1:8787", concurrency: {global: 4, per_project: 2}}
//! projects:
//!   storefront: {repo: /srv/git/storefront.git, pipeline: pipelines/storefront.yml}
//! environments:
//!   production: {projects: [storefront], promote_only: true, approval: {count: 2}}
//! ```

pub mod engines;
pub mod identity;
pub mod protection;
pub mod role;
pub mod service;
pub mod size;
pub mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use identity::{Identity, IdentityError};
pub use protection::{Located, Place, Protection};
pub use role::Role;
pub use service::{Concurrency, Project, ServerSettings, Webhook};
pub use users::{token_hash, User};

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
    pub server: ServerSettings,
    pub projects: BTreeMap<String, Project>,
    /// Protected environments, by name; an environment not listed is open.
    pub protections: BTreeMap<String, Protection>,
    pub cli: CliSettings,
    /// What `gantry run` grants a pipeline, by the pipeline's name.
    pub pipelines: BTreeMap<String, PipelineGrant>,
    pub logs: LogSettings,
    pub locks: LockSettings,
    /// Memory, CPU and processes of stage containers: defaults and the most a stage may ask.
    pub limits: crate::limits::LimitSettings,
    /// Gantry's agent images and the record of what `agents/build.sh` built.
    pub agents: crate::agents::AgentSettings,
    /// The pool of engines (`engines:`), by name; empty: the one engine of `--docker-host`.
    pub engines: Vec<engines::EngineConfig>,
    /// Which engine each environment lives on (`environments.NAME.engine`).
    pub environment_engines: BTreeMap<String, String>,
    /// `registry: host:port`: where versions' images go so that a swarm's nodes pull them.
    pub registry: Option<String>,
}

/// `locks:`: environment locks (one run changes an environment at a time).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockSettings {
    /// How long a stage waits for an environment another run holds, then fails.
    #[serde(default = "default_lock_wait", with = "humantime_serde")]
    pub wait: std::time::Duration,
    /// A run that starts waiting for an environment cancels the older runs of the same
    /// pipeline (project) waiting for it: only the newest version is worth deploying.
    #[serde(default)]
    pub newest_cancels_waiting: bool,
}

fn default_lock_wait() -> std::time::Duration {
    crate::policy::DEFAULT_LOCK_WAIT
}

impl Default for LockSettings {
    fn default() -> Self {
        LockSettings { wait: default_lock_wait(), newest_cancels_waiting: false }
    }
}

/// `logs:`: how much of a run's output is kept.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// Output kept per stage (all attempts); beyond it one line says so and the rest is
    /// dropped.
    #[serde(default = "default_stage_output")]
    pub max_stage_output: size::Size,
}

fn default_stage_output() -> size::Size {
    size::Size(crate::channel::DEFAULT_PER_STAGE)
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { max_stage_output: default_stage_output() }
    }
}

impl LogSettings {
    /// The output limits of a run under these settings.
    pub fn output_limits(&self) -> crate::channel::OutputLimits {
        crate::channel::OutputLimits { per_stage: self.max_stage_output.0, ..Default::default() }
    }
}

/// `pipelines.NAME:` what `gantry run` of the pipeline named NAME is granted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineGrant {
    #[serde(default)]
    pub secrets: Vec<String>,
}

/// `cli:`: how the command line knows who is typing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CliSettings {
    /// Take the OS login name as proof of being the user of that name (one-person
    /// machines), instead of asking for a token.
    #[serde(default)]
    pub trust_os_user: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, User>,
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    projects: BTreeMap<String, Project>,
    #[serde(default)]
    environments: BTreeMap<String, protection::ProtectionText>,
    #[serde(default)]
    cli: CliSettings,
    #[serde(default)]
    pipelines: BTreeMap<String, PipelineGrant>,
    #[serde(default)]
    logs: LogSettings,
    #[serde(default)]
    locks: LockSettings,
    #[serde(default)]
    limits: crate::limits::LimitsText,
    #[serde(default)]
    agents: crate::agents::AgentSettings,
    #[serde(default)]
    engines: BTreeMap<String, engines::EngineText>,
    #[serde(default)]
    registry: Option<String>,
}

/// The SHA-256 of the empty string: a token anyone can present.
const EMPTY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

impl Config {
    /// The file `--config` / `GANTRY_CONFIG` names, else `gantry/config.yml` under the
    /// user's config directory.
    pub fn default_path() -> PathBuf {
        dirs::config_dir().unwrap_or_else(|| PathBuf::from(".")).join("gantry").join("config.yml")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match crate::pipeline::limits::read_bounded(path, crate::pipeline::limits::MAX_CONFIG_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigError::Missing { path: path.to_path_buf() }),
            Err(source) => return Err(ConfigError::Read { path: path.to_path_buf(), source }),
        };
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        // The located reading first: it bounds nesting and size after aliases are
        // expanded, which serde_yaml does not, so serde_yaml only ever sees a document
        // whose expansion is known to be small and shallow.
        let invalid = |line, column, message| ConfigError::Invalid { path: path.to_path_buf(), line, column, message };
        if text.len() > crate::pipeline::limits::MAX_CONFIG_BYTES {
            return Err(invalid(1, 1, format!("the file is larger than {} KiB, the limit", crate::pipeline::limits::MAX_CONFIG_BYTES / 1024)));
        }
        if let Err(e) = crate::pipeline::yaml::parse(text) {
            let message = if e.field.is_empty() { e.message } else { format!("{}: {}", e.field, e.message) };
            return Err(invalid(e.pos.line, e.pos.column, message));
        }
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
        let mut tokens: BTreeMap<String, &str> = BTreeMap::new();
        let mut logins: BTreeMap<(String, String), &str> = BTreeMap::new();
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
                if hash.eq_ignore_ascii_case(EMPTY_HASH) {
                    return Err(rule(format!("users.{name}.token_sha256: that is the SHA-256 of the empty string, a token anyone can present; give {name} a real token")));
                }
                if let Some(other) = tokens.insert(hash.to_ascii_lowercase(), name) {
                    return Err(rule(format!("users.{name}.token_sha256: the same token as {other}'s; every user needs their own")));
                }
            }
            for (forge, login) in &user.forges {
                if !users::FORGES.contains(&forge.as_str()) {
                    return Err(rule(format!("users.{name}.forges.{forge}: unknown forge (known: {})", users::FORGES.join(", "))));
                }
                // As with addresses: one login, one person.
                if let Some(other) = logins.insert((forge.clone(), login.trim().to_ascii_lowercase()), name) {
                    return Err(rule(format!("users.{name}.forges.{forge}: {login} also belongs to {other}; a login may belong to one user only")));
                }
            }
        }
        for (name, project) in &file.projects {
            project.check(name).map_err(rule)?;
        }
        file.server.check().map_err(rule)?;
        crate::pipeline::limits::check_duration(file.locks.wait, crate::pipeline::limits::MAX_DURATION)
            .map_err(|e| rule(format!("locks.wait: {e}")))?;
        // The rules' lines come from a second, located reading of the same text.
        let located = crate::pipeline::yaml::parse(text).ok().flatten();
        let environment_engines: BTreeMap<String, String> =
            file.environments.iter().filter_map(|(env, p)| p.engine.clone().map(|e| (env.clone(), e))).collect();
        let engines = engines::check(path, file.engines, &environment_engines).map_err(rule)?;
        let registry = file.registry.map(|r| engines::check_registry(&r).map(|_| r)).transpose().map_err(rule)?;
        let protections = protection::locate(path, located.as_ref(), file.environments).map_err(rule)?;
        let limits = crate::limits::LimitSettings::locate(path, located.as_ref(), file.limits).map_err(rule)?;
        let users = file
            .users
            .into_iter()
            .map(|(name, mut user)| {
                user.name = name.clone();
                (name, user)
            })
            .collect();
        Ok(Config { path: path.to_path_buf(), users, server: file.server, projects: file.projects, protections, cli: file.cli, pipelines: file.pipelines, logs: file.logs, locks: file.locks, limits, agents: file.agents, engines, environment_engines, registry })
    }

    /// The operator's config as the command line finds it: the file named by `--config` or
    /// `GANTRY_CONFIG` must exist; the default one may be missing, and then there are no
    /// users and every environment is open, as on a machine nobody configured.
    pub fn load_for_cli(named: Option<&Path>) -> Result<Config, ConfigError> {
        match named {
            Some(path) => Self::load(path),
            None => match Self::load(&Self::default_path()) {
                Err(ConfigError::Missing { path }) => Ok(Config::empty(path)),
                other => other,
            },
        }
    }

    /// No users, no projects, no protections.
    pub fn empty(path: PathBuf) -> Config {
        Config {
            limits: crate::limits::LimitSettings { config: path.clone(), ..Default::default() },
            path,
            users: BTreeMap::new(),
            server: ServerSettings::default(),
            projects: BTreeMap::new(),
            protections: BTreeMap::new(),
            cli: CliSettings::default(),
            pipelines: BTreeMap::new(),
            logs: LogSettings::default(),
            locks: LockSettings::default(),
            agents: crate::agents::AgentSettings::default(),
            engines: Vec::new(),
            environment_engines: BTreeMap::new(),
            registry: None,
        }
    }

    /// The engine the environments live on, for a command of this machine: `--docker-host`
    /// (or `DOCKER_HOST`) when given, else with `engines:` the engine the environments name
    /// (else the first by name), else the local engine.
    pub fn environments_engine(&self, docker_host: Option<&str>) -> crate::engine::EngineChoice {
        if docker_host.is_some() || self.engines.is_empty() {
            return crate::engine::EngineChoice::docker(docker_host);
        }
        let home = self.environments_engine_name().unwrap_or_default();
        self.engines
            .iter()
            .find(|e| e.name == home)
            .map(|e| e.choice(self.registry.as_deref()))
            .unwrap_or_default()
    }

    /// The name of the engine of `engines:` the environments live on (None without it).
    pub fn environments_engine_name(&self) -> Option<String> {
        self.environment_engines.values().next().cloned().or_else(|| self.engines.first().map(|e| e.name.clone()))
    }

    /// The secrets a project of the service is granted.
    pub fn project_grant(&self, project: &str) -> crate::secrets::Grant {
        crate::secrets::Grant {
            names: self.projects.get(project).map(|p| p.secrets.iter().cloned().collect()).unwrap_or_default(),
            rule: format!("projects.{project}.secrets in {}", self.path.display()),
        }
    }

    /// The secrets `gantry run` grants the pipeline named `pipeline`: the config's
    /// `pipelines.NAME.secrets` and the names given with `--secret`.
    pub fn pipeline_grant(&self, pipeline: &str, given: &[String]) -> crate::secrets::Grant {
        let mut names: std::collections::BTreeSet<String> = self.pipelines.get(pipeline).map(|p| p.secrets.iter().cloned().collect()).unwrap_or_default();
        names.extend(given.iter().cloned());
        crate::secrets::Grant { names, rule: format!("pipelines.{pipeline}.secrets in {} (or --secret NAME)", self.path.display()) }
    }

    /// Whether any user has a token: then a name alone proves nothing.
    pub fn has_tokens(&self) -> bool {
        self.users.values().any(|u| u.token_sha256.is_some())
    }

    pub fn user(&self, name: &str) -> Result<&User, ConfigError> {
        self.users.get(name).ok_or_else(|| ConfigError::NoSuchUser {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.users.keys().cloned().collect(),
        })
    }

    /// The user a bearer token belongs to. Every user's hash is compared (in constant
    /// time), so the answer takes as long for the first user as for none.
    pub fn user_by_token(&self, token: &str) -> Option<&User> {
        let hash = token_hash(token);
        let mut found = None;
        for user in self.users.values() {
            if user.has_token_hash(&hash) && found.is_none() {
                found = Some(user);
            }
        }
        found
    }
}
