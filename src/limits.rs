//! How much of the host a stage's containers may use. The operator sets defaults and a
//! maximum (`limits:` in the config); a stage may ask for other values (its `limits:` key)
//! up to that maximum, and a pipeline asking for more is refused before anything runs,
//! naming its own line and the operator's. Pure: plan and settings in, limits or a refusal out.
//!
//! ```yaml
//! limits:
//!   default: {memory: 2g, cpus: 2, pids: 1024}
//!   max: {memory: 8g, cpus: 4, pids: 4096}
//! ```

use std::path::Path;

use serde::Deserialize;

use crate::config::size::Size;
use crate::config::Place;
use crate::engine::ResourceLimits;
use crate::pipeline::resources::{Asked, LimitsAsked};
use crate::pipeline::yaml::Node;
use crate::pipeline::Plan;

/// What a stage gets when neither it nor the operator says otherwise: enough for a Rust
/// or Node build on a small machine, not enough for one stage to take a shared host down.
pub const DEFAULT_LIMITS: ResourceLimits = ResourceLimits { memory: 2 << 30, cpus: 2.0, pids: 1024 };
/// The most a stage may ask for when the operator sets no maximum.
pub const MAX_LIMITS: ResourceLimits = ResourceLimits { memory: 8 << 30, cpus: 4.0, pids: 4096 };

/// The operator's `limits:`, with where each maximum is written (`None`: Gantry's own).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitSettings {
    pub default: ResourceLimits,
    pub max: ResourceLimits,
    pub max_at: MaxPlaces,
    /// The config file, for refusals under a built-in maximum.
    pub config: std::path::PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaxPlaces {
    pub memory: Option<Place>,
    pub cpus: Option<Place>,
    pub pids: Option<Place>,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings { default: DEFAULT_LIMITS, max: MAX_LIMITS, max_at: MaxPlaces::default(), config: Default::default() }
    }
}

/// `limits:` as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsText {
    #[serde(default)]
    default: ValuesText,
    #[serde(default)]
    max: ValuesText,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValuesText {
    memory: Option<Size>,
    cpus: Option<f64>,
    pids: Option<i64>,
}

/// A stage that asks for more than the operator allows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{file}:{line}:{column}: stages.{stage}.limits.{key}: asks for {asked}, more than the operator allows ({max}, {rule}); nothing ran"
)]
pub struct AboveMax {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub stage: String,
    pub key: &'static str,
    pub asked: String,
    pub max: String,
    /// `limits.max.memory at /etc/gantry/config.yml:9`, or the built-in maximum.
    pub rule: String,
}

impl LimitSettings {
    /// Reads the config's `limits:` (`root`: the file read again as a located tree, for the
    /// lines of the maximums) and checks that the defaults fit under the maximum.
    pub(crate) fn locate(path: &Path, root: Option<&Node>, text: LimitsText) -> Result<LimitSettings, String> {
        let line_of = |key: &str| {
            let max = root?.child("limits").and_then(|l| l.child("max"))?;
            let line = max.key_line(key)?;
            Some(Place { file: path.to_path_buf(), line })
        };
        let pick = |written: &ValuesText, base: ResourceLimits| ResourceLimits {
            memory: written.memory.map_or(base.memory, |s| s.0),
            cpus: written.cpus.unwrap_or(base.cpus),
            pids: written.pids.unwrap_or(base.pids),
        };
        for (part, values) in [("default", &text.default), ("max", &text.max)] {
            if let Some(c) = values.cpus {
                if !(c.is_finite() && (0.01..=1024.0).contains(&c)) {
                    return Err(format!("limits.{part}.cpus: must be from 0.01 to 1024"));
                }
            }
            if let Some(p) = values.pids {
                if !(8..=4_194_304).contains(&p) {
                    return Err(format!("limits.{part}.pids: must be from 8 to 4194304"));
                }
            }
            if values.memory.is_some_and(|m| m.0 < 8 << 20) {
                return Err(format!("limits.{part}.memory: must be at least 8 MiB"));
            }
        }
        let max = pick(&text.max, MAX_LIMITS);
        // An unwritten default follows a lower written maximum rather than exceed it.
        let base = ResourceLimits {
            memory: DEFAULT_LIMITS.memory.min(max.memory),
            cpus: DEFAULT_LIMITS.cpus.min(max.cpus),
            pids: DEFAULT_LIMITS.pids.min(max.pids),
        };
        let default = pick(&text.default, base);
        if default.memory > max.memory {
            return Err(format!("limits.default.memory: {} is above limits.max.memory ({})", bytes(default.memory), bytes(max.memory)));
        }
        if default.cpus > max.cpus {
            return Err(format!("limits.default.cpus: {} is above limits.max.cpus ({})", default.cpus, max.cpus));
        }
        if default.pids > max.pids {
            return Err(format!("limits.default.pids: {} is above limits.max.pids ({})", default.pids, max.pids));
        }
        let max_at = MaxPlaces {
            memory: text.max.memory.and(line_of("memory")),
            cpus: text.max.cpus.and(line_of("cpus")),
            pids: text.max.pids.and(line_of("pids")),
        };
        Ok(LimitSettings { default, max, max_at, config: path.to_path_buf() })
    }

    /// The limits a stage's containers run under: its own values, else the defaults, never
    /// above the maximum (a plan that asks for more is refused by `check` first).
    pub fn effective(&self, asked: &LimitsAsked) -> ResourceLimits {
        ResourceLimits {
            memory: asked.memory.map_or(self.default.memory, |a| a.value).min(self.max.memory),
            cpus: asked.cpus.map_or(self.default.cpus, |a| a.value).min(self.max.cpus),
            pids: asked.pids.map_or(self.default.pids, |a| a.value).min(self.max.pids),
        }
    }

    fn rule(&self, key: &str, at: &Option<Place>) -> String {
        match at {
            Some(place) => format!("limits.max.{key} at {place}"),
            None => format!("Gantry's built-in maximum; an operator may raise it with limits.max.{key} in {}", self.config.display()),
        }
    }
}

/// Every stage's `limits:` against the operator's maximum; the first one above it.
pub fn check(plan: &Plan, settings: &LimitSettings) -> Result<(), AboveMax> {
    let refuse = |stage: &str, key: &'static str, line: usize, column: usize, asked: String, max: String, at: &Option<Place>| AboveMax {
        file: plan.source.clone(),
        line,
        column,
        stage: stage.to_string(),
        key,
        asked,
        max,
        rule: settings.rule(key, at),
    };
    for stage in &plan.stages {
        let l = &stage.limits;
        if let Some(Asked { value, line, column }) = l.memory {
            if value > settings.max.memory {
                return Err(refuse(&stage.name, "memory", line, column, bytes(value), bytes(settings.max.memory), &settings.max_at.memory));
            }
        }
        if let Some(Asked { value, line, column }) = l.cpus {
            if value > settings.max.cpus {
                return Err(refuse(
                    &stage.name,
                    "cpus",
                    line,
                    column,
                    format!("{value} CPUs"),
                    format!("{} CPUs", settings.max.cpus),
                    &settings.max_at.cpus,
                ));
            }
        }
        if let Some(Asked { value, line, column }) = l.pids {
            if value > settings.max.pids {
                return Err(refuse(
                    &stage.name,
                    "pids",
                    line,
                    column,
                    format!("{value} processes"),
                    format!("{} processes", settings.max.pids),
                    &settings.max_at.pids,
                ));
            }
        }
    }
    Ok(())
}

/// A byte count as people write it: `2 GiB`, `512 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size {
            let value = n as f64 / size as f64;
            return if value.fract() == 0.0 { format!("{value} {unit}") } else { format!("{:.1} {unit}", value) };
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn config(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("config.yml"), text).map_err(|e| e.to_string())
    }

    fn plan(limits: &str) -> Plan {
        let text = format!("name: p\nstages:\n  build:\n    image: gantry/busybox\n    commands: [make]\n    limits: {limits}\n");
        crate::pipeline::parse("gantry.yml", &text).unwrap()
    }

    #[test]
    fn a_stage_within_the_maximum_gets_what_it_asks_and_the_defaults_for_the_rest() {
        let c = config("limits:\n  default: {memory: 1g, pids: 256}\n  max: {memory: 4g}\n").unwrap();
        let got = c.limits.effective(&plan("{memory: 3g}").stages[0].limits);
        assert_eq!(got, ResourceLimits { memory: 3 << 30, cpus: DEFAULT_LIMITS.cpus, pids: 256 });
        assert!(check(&plan("{memory: 4g, cpus: 1.5}"), &c.limits).is_ok());
    }

    #[test]
    fn asking_above_the_maximum_names_both_lines() {
        let c = config("users: {}\nlimits:\n  max:\n    memory: 4g\n    pids: 100\n").unwrap();
        let err = check(&plan("{memory: 16g}"), &c.limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gantry.yml:6:22: stages.build.limits.memory: asks for 16 GiB, more than the operator allows (4 GiB, limits.max.memory at config.yml:4); nothing ran"
        );
        let err = check(&plan("{cpus: 64}"), &c.limits).unwrap_err();
        assert!(err.to_string().contains("asks for 64 CPUs, more than the operator allows (4 CPUs, Gantry's built-in maximum; an operator may raise it with limits.max.cpus in config.yml)"), "{err}");
        // An unwritten default follows a lower maximum.
        assert_eq!(c.limits.default.pids, 100);
    }

    #[test]
    fn the_operator_cannot_set_defaults_above_the_maximum() {
        let err = config("limits:\n  default: {memory: 8g}\n  max: {memory: 4g}\n").unwrap_err();
        assert!(err.contains("limits.default.memory: 8 GiB is above limits.max.memory (4 GiB)"), "{err}");
        let err = config("limits:\n  max: {cpus: 0}\n").unwrap_err();
        assert!(err.contains("limits.max.cpus: must be from 0.01 to 1024"), "{err}");
        assert!(config("limits:\n  default: {swap: 1g}\n").unwrap_err().contains("unknown field `swap`"));
    }

    #[test]
    fn a_pipeline_limit_out_of_range_is_a_validation_error_at_its_line() {
        let text = "name: p\nstages:\n  s:\n    image: gantry/busybox\n    commands: [x]\n    limits: {memory: lots, cpus: 0, pids: 3, disk: 1g}\n";
        let err = crate::pipeline::parse("gantry.yml", text).unwrap_err().to_string();
        for part in [
            "gantry.yml:6:22: stages.s.limits.memory",
            "stages.s.limits.cpus: must be from 0.01",
            "stages.s.limits.pids: must be from 8",
            "stages.s.limits.disk: unknown key",
        ] {
            assert!(err.contains(part), "{part} in {err}");
        }
    }

    #[test]
    fn sizes_are_worded_for_people() {
        assert_eq!(bytes(2 << 30), "2 GiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(3 << 29), "1.5 GiB");
    }
}
