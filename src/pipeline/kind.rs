//! Stage kinds and the keys each accepts. Adding a kind means: a variant here, its keys,
//! and a checker in `stage.rs`; nothing else needs to know.

/// Keys every stage accepts, whatever its kind.
pub const COMMON_KEYS: &[&str] = &["kind", "needs", "timeout", "retries", "when", "secrets"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Run `commands` in a container of `image` on the run's workspace.
    Run,
}

/// Kinds that the design has planned but that are not implemented yet, so they get a
/// "not supported yet" answer rather than "unknown".
pub const PLANNED_KINDS: &[&str] = &["build", "provision", "deploy", "smoke", "load", "promote"];

pub enum KindError {
    NotYetSupported,
    Unknown { nearest: Option<&'static str> },
}

impl Kind {
    pub const ALL: &'static [Kind] = &[Kind::Run];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Run => "run",
        }
    }

    /// Keys this kind accepts on top of `COMMON_KEYS`.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Run => &["image", "commands", "env"],
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
