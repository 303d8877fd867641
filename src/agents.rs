//! Gantry's own images, and why a pipeline cannot replace them. A `kind: build` may not tag
//! into the `gantry/` namespace; and before an agent (smoke, load, router) runs, the image
//! it runs from must be the very one `agents/build.sh` built: its id is in the agent
//! record, a file on the host that no pipeline can write (stages get no host path). A label
//! would not do: any Dockerfile can write any label, but no build can make another image's id.
//!
//! ```yaml
//! agents:
//!   record: /var/lib/gantry/agent-images   # default: gantry/agent-images under the user's data dir
//!   smoke: gantry/smoke                     # the image names the agents are run from
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::{EngineError, Steps};

/// Image names under this prefix are Gantry's; no pipeline builds into it.
pub const RESERVED_NAMESPACE: &str = "gantry/";

/// Whether `image` names a repository in the reserved namespace, however it is spelt
/// (`gantry/smoke`, `docker.io/gantry/smoke:latest`, `GANTRY/x` which the engine would refuse).
pub fn is_reserved(image: &str) -> bool {
    let lower = image.trim().to_ascii_lowercase();
    let name =
        ["docker.io/", "index.docker.io/", "registry-1.docker.io/"].iter().find_map(|host| lower.strip_prefix(host)).unwrap_or(&lower);
    name.starts_with(RESERVED_NAMESPACE)
}

/// Gantry's agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agent {
    Smoke,
    Load,
    Router,
}

impl Agent {
    /// The name `agents/build.sh` and the record know it by.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Smoke => "smoke",
            Agent::Load => "load",
            Agent::Router => "router",
        }
    }
}

/// `agents:` in the operator's config: where the record is, and the image each agent is
/// run from (another name for the same image is fine: the id decides).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    #[serde(default)]
    pub record: Option<PathBuf>,
    #[serde(default = "default_smoke")]
    pub smoke: String,
    #[serde(default = "default_load")]
    pub load: String,
    #[serde(default = "default_router")]
    pub router: String,
}

fn default_smoke() -> String {
    "gantry/smoke".into()
}
fn default_load() -> String {
    "gantry/load".into()
}
fn default_router() -> String {
    "gantry/router".into()
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings { record: None, smoke: default_smoke(), load: default_load(), router: default_router() }
    }
}

/// Where `agents/build.sh` writes the record unless `GANTRY_AGENT_RECORD` says otherwise:
/// `gantry/agent-images` under the user's data directory (`~/.local/share`), beside the
/// default data dir but not in it, so every `--data-dir` shares it.
pub fn default_record() -> PathBuf {
    dirs::data_dir().unwrap_or_else(|| PathBuf::from(".")).join("gantry").join("agent-images")
}

impl AgentSettings {
    pub fn image(&self, agent: Agent) -> &str {
        match agent {
            Agent::Smoke => &self.smoke,
            Agent::Load => &self.load,
            Agent::Router => &self.router,
        }
    }

    pub fn record_path(&self) -> PathBuf {
        self.record.clone().unwrap_or_else(default_record)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the {agent} agent's image {image} is not on this engine, and Gantry never pulls its agents (a registry's {image} could be anyone's): build it with scripts/setup (or agents/build.sh {agent})")]
    Missing { agent: &'static str, image: String },
    #[error("{image} is not the {agent} agent that agents/build.sh built: it is image {found}, the record {} says {expected}; it was replaced (a `docker tag` or an old build); rebuild it with scripts/setup (or agents/build.sh {agent})", record.display())]
    Replaced { agent: &'static str, image: String, found: String, expected: String, record: PathBuf },
    #[error("cannot check the {agent} agent's image {image}: {reason}; scripts/setup (or agents/build.sh {agent}) builds the agents and writes the record")]
    NoRecord { agent: &'static str, image: String, reason: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The record: one `NAME IMAGE_ID` line per agent, as `agents/build.sh` writes it.
fn read_record(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("there is no agent record at {}", path.display()),
        _ => format!("cannot read the agent record {}: {e}", path.display()),
    })?;
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect())
}

/// Checks that `agent`'s configured image is the one the record names, and returns its id:
/// containers are created from the id, so a tag moved after the check changes nothing.
pub async fn verify(steps: &dyn Steps, settings: &AgentSettings, agent: Agent) -> Result<String, AgentError> {
    let image = settings.image(agent).to_string();
    let name = agent.name();
    let Some(facts) = steps.image_facts(&image).await? else {
        return Err(AgentError::Missing { agent: name, image });
    };
    let path = settings.record_path();
    let record = read_record(&path).map_err(|reason| AgentError::NoRecord { agent: name, image: image.clone(), reason })?;
    let Some(expected) = record.get(name) else {
        let reason = format!("the agent record {} has no line for {name}", path.display());
        return Err(AgentError::NoRecord { agent: name, image, reason });
    };
    if &facts.id != expected {
        return Err(AgentError::Replaced { agent: name, image, found: facts.id, expected: expected.clone(), record: path });
    }
    Ok(facts.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gantry_namespace_is_reserved_however_it_is_spelt() {
        for name in ["gantry/smoke", "gantry/smoke:latest", "docker.io/gantry/x", "index.docker.io/gantry/x:1", "Gantry/x"] {
            assert!(is_reserved(name), "{name}");
        }
        for name in ["gantry", "gantry:latest", "storefront:abc", "example.com/gantry/x", "mygantry/x", "gantry-test/smoke"] {
            assert!(!is_reserved(name), "{name}");
        }
    }

    #[test]
    fn the_record_is_name_and_id_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent-images");
        std::fs::write(&path, "# written by agents/build.sh\nsmoke sha256:aa\nload sha256:bb gantry/load:latest\n").unwrap();
        let r = read_record(&path).unwrap();
        assert_eq!(r.get("smoke").map(String::as_str), Some("sha256:aa"));
        assert_eq!(r.get("load").map(String::as_str), Some("sha256:bb"));
        assert!(read_record(&dir.path().join("nope")).unwrap_err().starts_with("there is no agent record at"));
    }
}
