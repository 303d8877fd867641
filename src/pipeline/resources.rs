//! A stage's `limits:` key: the memory, CPU and processes it asks for its containers. Only
//! read and range-checked here, each value with its place; whether the operator allows
//! that much is `crate::limits`' question, asked before the run with the operator's config.

use serde::{Deserialize, Serialize};

use super::context::{Ctx, Entry};
use super::yaml::{Node, Pos};

/// Keys of `limits:`.
const KEYS: &[&str] = &["memory", "cpus", "pids"];
/// Below these a container cannot start a shell; the engine refuses less than 6 MiB anyway.
const MIN_MEMORY: u64 = 8 << 20;
const MIN_PIDS: i64 = 8;
/// The engine's floor for a CPU quota is 1 ms per 100 ms period.
const MIN_CPUS: f64 = 0.01;
/// Ceilings that only catch typos (`pids: 99999999999`); the operator's maximum is the real
/// bound.
const MAX_CPUS: f64 = 1024.0;
const MAX_PIDS: i64 = 4_194_304;

/// What a stage asks for; `None` takes the operator's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitsAsked {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Asked<u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Asked<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<Asked<i64>>,
}

impl LimitsAsked {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.cpus.is_none() && self.pids.is_none()
    }
}

/// A value and where the pipeline file says it, for a refusal that names the line.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Asked<T> {
    pub value: T,
    pub line: usize,
    pub column: usize,
}

pub(crate) fn check(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> LimitsAsked {
    let Node::Map { entries, .. } = entry.value else {
        ctx.wrong_type(entry.value, &entry.field, "a mapping like `{memory: 2g, cpus: 1.5, pids: 512}`");
        return LimitsAsked::default();
    };
    let mut asked = LimitsAsked::default();
    for e in ctx.entries(entries, &entry.field, "key") {
        let pos = e.value.pos();
        let text = e.value.as_text().filter(|_| !e.value.is_null());
        match e.name {
            "memory" => match text.map(crate::config::size::parse) {
                Some(Ok(bytes)) if bytes >= MIN_MEMORY => asked.memory = at(bytes, pos),
                Some(Ok(_)) => {
                    ctx.error(pos, &e.field, "must be at least 8 MiB");
                }
                Some(Err(message)) => {
                    ctx.error(pos, &e.field, message.to_string()).hint("e.g. `memory: 2g` or `memory: 512m`");
                }
                None => {
                    ctx.wrong_type(e.value, &e.field, "a size such as `2g` or `512m`");
                }
            },
            "cpus" => match text.map(str::parse::<f64>) {
                Some(Ok(n)) if n.is_finite() && (MIN_CPUS..=MAX_CPUS).contains(&n) => asked.cpus = at(n, pos),
                Some(Ok(_)) => {
                    ctx.error(pos, &e.field, format!("must be from {MIN_CPUS} to {MAX_CPUS}"));
                }
                _ => {
                    ctx.wrong_type(e.value, &e.field, "a number of CPUs such as `1.5`");
                }
            },
            "pids" => match text.map(str::parse::<i64>) {
                Some(Ok(n)) if (MIN_PIDS..=MAX_PIDS).contains(&n) => asked.pids = at(n, pos),
                Some(Ok(_)) => {
                    ctx.error(pos, &e.field, format!("must be from {MIN_PIDS} to {MAX_PIDS}"));
                }
                _ => {
                    ctx.wrong_type(e.value, &e.field, "a whole number of processes such as `512`");
                }
            },
            _ => {
                let _ = ctx.unknown_key(&e, KEYS);
            }
        }
    }
    asked
}

fn at<T>(value: T, pos: Pos) -> Option<Asked<T>> {
    Some(Asked { value, line: pos.line, column: pos.column })
}
