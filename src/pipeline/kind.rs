//! Stage kinds and the keys each accepts. Adding a kind means: a variant here, its keys,
//! and a checker in `stage.rs`; nothing else needs to know.

/// Keys every stage accepts, whatever its kind.
pub const COMMON_KEYS: &[&str] = &["kind", "needs", "timeout", "retries", "when", "secrets", "limits"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Run `commands` in a container of `image` on the run's workspace.
    Run,
    /// Build an image from a directory of the commit.
    Build,
    /// Make an environment's network and service containers exist.
    Provision,
    /// Start a new version of an app in an environment, replacing the old one when healthy.
    Deploy,
    /// User journeys against an environment, by the smoke agent.
    Smoke,
    /// Open-model load against an environment, by the load agent, judged by thresholds.
    Load,
    /// The image that passed, deployed to another environment once the gate passes.
    Promote,
}

/// Kinds that the design has planned but that are not implemented yet, so they get a
/// "not supported yet" answer rather than "unknown".
pub const PLANNED_KINDS: &[&str] = &[];

pub enum KindError {
    NotYetSupported,
    Unknown { nearest: Option<&'static str> },
}

impl Kind {
    pub const ALL: &'static [Kind] =
        &[Kind::Run, Kind::Build, Kind::Provision, Kind::Deploy, Kind::Smoke, Kind::Load, Kind::Promote];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Build => "build",
            Kind::Provision => "provision",
            Kind::Deploy => "deploy",
            Kind::Smoke => "smoke",
            Kind::Load => "load",
            Kind::Promote => "promote",
        }
    }

    /// Keys this kind accepts on top of `COMMON_KEYS`.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Run => &["image", "commands", "env"],
            Kind::Build => &["context", "dockerfile", "tag", "build_args", "target"],
            Kind::Provision => &["environment", "services"],
            Kind::Deploy => &["environment", "mode", "image", "app", "port", "publish", "env", "command", "health"],
            Kind::Smoke => &["target", "app", "version", "request_timeout", "journeys"],
            Kind::Load => &[
                "target", "app", "version", "path", "requests", "rate", "duration", "stages", "connections",
                "request_timeout", "thresholds", "abort_on_fail", "apm",
            ],
            Kind::Promote => &["from", "to", "app", "port", "publish", "env", "command", "health", "gate", "verify"],
        }
    }

    pub fn parse(text: &str) -> Result<Kind, KindError> {
        if let Some(kind) = Kind::ALL.iter().find(|k| k.name() == text) {
            return Ok(*kind);
        }
        if PLANNED_KINDS.contains(&text) {
            return Err(KindError::NotYetSupported);
        }
        let all = Kind::ALL
            .iter()
            .map(|k| k.name())
            .chain(PLANNED_KINDS.iter().copied());
        Err(KindError::Unknown {
            nearest: super::diagnostic::nearest(text, all),
        })
    }

    pub fn accepts(self, key: &str) -> bool {
        COMMON_KEYS.contains(&key) || self.keys().contains(&key)
    }

    /// Every key a stage of this kind accepts, in documentation order.
    pub fn all_keys(self) -> impl Iterator<Item = &'static str> {
        self.keys().iter().chain(COMMON_KEYS).copied()
    }
}
