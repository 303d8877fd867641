//! The gate's verdict: every check with its measured value, threshold and pass/fail, so a
//! blocked release says exactly which check held it back and by how much.

use serde::{Deserialize, Serialize};

/// Where a check's figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A stage of this run had to succeed.
    Stage,
    /// A load stage's threshold.
    LoadThreshold,
    /// An APM provider's check.
    Apm,
    /// A statistical comparison with the version in production.
    Baseline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub source: Source,
    /// What was measured, as people read it (`301.3ms`, `failed`); `None` when nothing could
    /// be measured, which never counts as a pass unless the pipeline says so.
    pub measured: Option<String>,
    /// What it had to be (`p(95)<200ms`, `succeeded`).
    pub threshold: String,
    pub passed: bool,
    /// Why there was no figure, or anything else worth knowing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Verdict {
    pub fn new(checks: Vec<Check>) -> Self {
        Verdict { passed: checks.iter().all(|c| c.passed), checks }
    }

    /// One line naming every failed check, for the stage's message.
    pub fn blocked_by(&self) -> Option<String> {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| match &c.measured {
                Some(m) => format!("{} (measured {m}, needs {})", c.name, c.threshold),
                None => format!("{} ({})", c.name, c.note.as_deref().unwrap_or("no data")),
            })
            .collect();
        (!failed.is_empty()).then(|| failed.join("; "))
    }

    /// The verdict as a table for terminals.
    pub fn table(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<6} {:<width$}  {:>12}  THRESHOLD\n", "", "CHECK", "MEASURED");
        for c in &self.checks {
            let verdict = if c.passed { "pass" } else { "FAIL" };
            let measured = c.measured.as_deref().unwrap_or("no data");
            out.push_str(&format!("{verdict:<6} {:<width$}  {measured:>12}  {}", c.name, c.threshold));
            if let Some(note) = &c.note {
                out.push_str(&format!("  ({note})"));
            }
            out.push('\n');
        }
        out.push_str(if self.passed { "gate: passed\n" } else { "gate: BLOCKED\n" });
        out
    }
}

/// The APM report in the gate's own check vocabulary (stored with the load's result).
pub fn from_apm(report: &crate::gate::apm::ApmReport) -> Vec<Check> {
    report
        .results
        .iter()
        .map(|r| {
            let mut threshold: Vec<String> = r.threshold.iter().cloned().collect();
            if let Some(b) = &r.baseline {
                threshold.push(format!("{} production", b.relation));
            }
            let note = match (&r.missing, &r.baseline) {
                (Some(m), _) => Some(m.clone()),
                (None, Some(b)) => b.value.map(|v| format!("production {}", number(v))),
                _ => None,
            };
            Check {
                name: format!("apm: {}", r.name),
                source: Source::Apm,
                measured: r.measured.map(number),
                threshold: threshold.join(" and "),
                passed: r.passed,
                note,
            }
        })
        .collect()
}

fn number(v: f64) -> String {
    format!("{}", (v * 10_000.0).round() / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, passed: bool, measured: Option<&str>) -> Check {
        Check {
            name: name.into(),
            source: Source::LoadThreshold,
            measured: measured.map(str::to_string),
            threshold: "p(95)<200ms".into(),
            passed,
            note: measured.is_none().then(|| "metric absent".to_string()),
        }
    }

    #[test]
    fn a_verdict_passes_only_when_every_check_does_and_names_the_failures() {
        let v = Verdict::new(vec![check("a", true, Some("1ms")), check("b", false, Some("301ms")), check("c", false, None)]);
        assert!(!v.passed);
        assert_eq!(v.blocked_by().unwrap(), "b (measured 301ms, needs p(95)<200ms); c (metric absent)");
        assert!(Verdict::new(vec![check("a", true, Some("1ms"))]).blocked_by().is_none());
        assert!(v.table().contains("FAIL   b"));
    }
}
