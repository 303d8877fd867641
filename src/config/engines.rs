//! `engines:`: the Docker engines (and Swarm managers) the operator gives Gantry, and what each is for.
//!
//! ```yaml
//! engines:
//!   local: {host: "unix:///var/run/docker.sock", runs: 4}
//!   ci-2:  {host: "tcp://ci-2.internal:2376", tls: {ca: ca.pem, cert: cert.pem, key: key.pem}, runs: 4, labels: [big]}
//! environments:
//!   staging: {engine: local}
//! ```
//! Runs are placed on engines with free slots (`runs`) whose labels hold the pipeline's
//! `runs_on`. Environments live on the engine `environments.NAME.engine` names (all on one
//! engine for now), else on the first engine by name. TLS files are read relative to the
//! config file. Without `engines:` Gantry uses `--docker-host` / `DOCKER_HOST` as before.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use crate::engine::TlsFiles;

/// One engine as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EngineText {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    swarm: Option<String>,
    #[serde(default)]
    tls: Option<TlsFiles>,
    #[serde(default)]
    runs: Option<usize>,
    #[serde(default)]
    labels: Vec<String>,
}

/// One engine of the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub name: String,
    /// `unix:///path` or `tcp://host:port`.
    pub host: String,
    pub tls: Option<TlsFiles>,
    /// How many runs it takes at once (0: it only holds environments).
    pub runs: usize,
    pub labels: Vec<String>,
    /// A Swarm manager (`swarm:` instead of `host:`): its environments are Swarm services.
    pub swarm: bool,
}

impl EngineConfig {
    /// How to reach it; `registry` is the config's, for a swarm's images.
    pub fn choice(&self, registry: Option<&str>) -> crate::engine::EngineChoice {
        crate::engine::EngineChoice {
            docker_host: Some(self.host.clone()),
            tls: self.tls.clone(),
            swarm: self.swarm,
            registry: registry.map(str::to_string),
        }
    }
}

/// `registry:` is `host[:port]` as the engines' `docker push` takes it, no scheme.
pub(super) fn check_registry(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && !r.contains("://")
        && !r.contains('/')
        && r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!("registry: `{r}` is not host:port (for example registry.internal:5000, no scheme or path)"))
    }
}

/// Runs an engine takes when `runs:` is not given.
pub const DEFAULT_RUNS: usize = 4;
/// The most runs one engine may be given: a slot is a run's whole life on it.
pub const MAX_RUNS: usize = 64;

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a valid {what} (lowercase letters, digits and `-`, at most 40 characters)"))
    }
}

/// Checks `engines:` and the environments' `engine:` against it; TLS paths become paths
/// relative to the config file's folder.
pub(super) fn check(
    config: &Path,
    text: BTreeMap<String, EngineText>,
    placed: &BTreeMap<String, String>,
) -> Result<Vec<EngineConfig>, String> {
    let dir = config.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (name, e) in text {
        check_name("engine name", &name).map_err(|m| format!("engines.{name}: {m}"))?;
        let (host, swarm) = match (e.host, e.swarm) {
            (Some(h), None) => (h, false),
            (None, Some(m)) => (m, true),
            (Some(_), Some(_)) => return Err(format!("engines.{name}: give `host:` or `swarm:`, not both")),
            (None, None) => return Err(format!("engines.{name}: `host:` is missing (unix:///path or tcp://host:port)")),
        };
        let tcp = host.starts_with("tcp://") || host.starts_with("https://");
        if !(tcp || host.starts_with("unix://")) {
            let key = if swarm { "swarm" } else { "host" };
            return Err(format!("engines.{name}.{key}: `{host}` is not unix:///path or tcp://host:port"));
        }
        if e.tls.is_some() && !tcp {
            return Err(format!("engines.{name}.tls: TLS is for tcp:// engines; `{host}` is a socket"));
        }
        let runs = e.runs.unwrap_or(DEFAULT_RUNS);
        if runs > MAX_RUNS {
            return Err(format!("engines.{name}.runs: {runs} is more than {MAX_RUNS}, the most one engine may take"));
        }
        for label in &e.labels {
            check_name("engine label", label).map_err(|m| format!("engines.{name}.labels: {m}"))?;
        }
        let tls = e.tls.map(|t| TlsFiles { ca: dir.join(t.ca), cert: dir.join(t.cert), key: dir.join(t.key) });
        out.push(EngineConfig { name, host, tls, runs, labels: e.labels, swarm });
    }
    for (env, engine) in placed {
        if !out.iter().any(|e| &e.name == engine) {
            let known: Vec<&str> = out.iter().map(|e| e.name.as_str()).collect();
            return Err(if known.is_empty() {
                format!("environments.{env}.engine: `{engine}`, but there is no `engines:` section to name it in")
            } else {
                format!("environments.{env}.engine: no engine `{engine}` under engines: (known: {})", known.join(", "))
            });
        }
    }
    let homes: std::collections::BTreeSet<&String> = placed.values().collect();
    if homes.len() > 1 {
        let list: Vec<String> = placed.iter().map(|(env, e)| format!("{env} on {e}")).collect();
        return Err(format!(
            "environments: {} - environments on more than one engine are not supported yet; put them on one engine",
            list.join(", ")
        ));
    }
    if !out.is_empty() && out.iter().all(|e| e.runs == 0) {
        return Err("engines: every engine has `runs: 0`; at least one must take runs".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(engines: &str, placed: &[(&str, &str)]) -> Result<Vec<EngineConfig>, String> {
        let text: BTreeMap<String, EngineText> = serde_yaml::from_str(engines).unwrap();
        let placed = placed.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        check(Path::new("/etc/gantry/config.yml"), text, &placed)
    }

    #[test]
    fn engines_are_read_with_defaults_and_tls_files_beside_the_config() {
        let got = parse(
            "local: {host: unix:///var/run/docker.sock}\nci-2: {host: tcp://10.0.0.2:2376, tls: {ca: tls/ca.pem, cert: tls/cert.pem, key: tls/key.pem}, runs: 2, labels: [big]}\n",
            &[("staging", "local")],
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let ci = got.iter().find(|e| e.name == "ci-2").unwrap();
        assert_eq!((ci.runs, ci.labels.clone()), (2, vec!["big".to_string()]));
        assert_eq!(ci.tls.as_ref().unwrap().ca, PathBuf::from("/etc/gantry/tls/ca.pem"));
        assert_eq!(got.iter().find(|e| e.name == "local").unwrap().runs, DEFAULT_RUNS);
    }

    #[test]
    fn wrong_engines_are_refused_with_the_field() {
        let cases = [
            ("a: {}", "engines.a: `host:` is missing"),
            ("a: {host: ftp://x}", "engines.a.host"),
            ("a: {host: unix:///s, tls: {ca: a, cert: b, key: c}}", "engines.a.tls"),
            ("a: {host: unix:///s, runs: 65}", "engines.a.runs"),
            ("a: {host: unix:///s, labels: [Big]}", "engines.a.labels"),
            ("A: {host: unix:///s}", "engines.A"),
            ("a: {swarm: ftp://m}", "engines.a.swarm: `ftp://m` is not"),
            ("a: {swarm: tcp://m:2376, host: tcp://m:2376}", "give `host:` or `swarm:`, not both"),
            ("a: {host: unix:///s, runs: 0}", "at least one must take runs"),
        ];
        for (text, want) in cases {
            let err = parse(text, &[]).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = parse("a: {host: unix:///s}", &[("staging", "b")]).unwrap_err();
        assert!(err.contains("environments.staging.engine: no engine `b`") && err.contains("known: a"), "{err}");
        let err = parse("a: {host: unix:///s}\nb: {host: unix:///t}", &[("staging", "a"), ("production", "b")]).unwrap_err();
        assert!(err.contains("more than one engine"), "{err}");
        assert!(parse("a: {host: unix:///s, runs: 1}", &[]).is_ok());
    }

    #[test]
    fn a_swarm_manager_is_an_engine_whose_environments_are_swarm_services() {
        let got = parse("prod: {swarm: tcp://10.0.0.9:2376, runs: 2}
", &[("production", "prod")]).unwrap();
        assert!(got[0].swarm && got[0].host == "tcp://10.0.0.9:2376");
        let choice = got[0].choice(Some("10.0.0.1:5000"));
        assert!(choice.swarm && choice.registry.as_deref() == Some("10.0.0.1:5000"));
        assert!(check_registry("registry.internal:5000").is_ok());
        for bad in ["http://r:5000", "r:5000/path", ""] {
            assert!(check_registry(bad).unwrap_err().contains("is not host:port"), "{bad}");
        }
    }
}
