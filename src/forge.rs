//! The forges Gantry takes pushes from. A model type at the bottom: the webhook parser
//! (server), the coordinator's record of what started a run, and the config's logins all
//! name a forge with it, and it depends on nothing of Gantry's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The forge a push comes from; named in the webhook's URL (`/hooks/github`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forge {
    GitHub,
    GitLab,
    Gitea,
}

impl Forge {
    /// The name used in URLs, configuration and serde: `github`, `gitlab`, `gitea`.
    pub fn name(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::GitLab => "gitlab",
            Forge::Gitea => "gitea",
        }
    }

    /// The forge named by a URL path segment, exactly as [`Forge::name`] spells it.
    pub fn from_path(segment: &str) -> Option<Forge> {
        [Forge::GitHub, Forge::GitLab, Forge::Gitea].into_iter().find(|forge| forge.name() == segment)
    }
}

impl fmt::Display for Forge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown forge {0:?}: expected github, gitlab or gitea")]
pub struct UnknownForge(pub String);

impl FromStr for Forge {
    type Err = UnknownForge;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Forge::from_path(s).ok_or_else(|| UnknownForge(s.to_string()))
    }
}
