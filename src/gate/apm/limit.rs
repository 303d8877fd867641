//! Threshold and baseline expressions of APM checks.
//!
//! Threshold: `OP NUMBER [UNIT]`, e.g. `<200ms`, `<=0.01`, `>150`, `<1%`.
//! Baseline (relative to production, Keptn-like): `OP SIGN NUMBER [UNIT]`, e.g. `<=+10%`
//! (candidate <= baseline × 1.10), `<=+50ms` (candidate <= baseline + 0.05 s), `>=-5%`
//! (candidate >= baseline × 0.95). The sign is required: it says which way is allowed.
//!
//! OP is one of `<`, `<=`, `>`, `>=`. Units convert to the unit metrics are exposed in:
//! `ms` → seconds (÷1000), `s` → seconds, `%` → a fraction (÷100) in thresholds and a
//! relative change in baselines; no unit → the number as is. Histogram quantiles are in
//! the histogram's own unit, seconds for `*_seconds` histograms as Prometheus convention
//! has it, so `<0.2` and `<200ms` say the same about a latency quantile.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Lt => left < right,
            Op::Le => left <= right,
            Op::Gt => left > right,
            Op::Ge => left >= right,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {kind} '{text}': {message}")]
pub struct LimitError {
    pub kind: &'static str,
    pub text: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    None,
    Ms,
    S,
    Percent,
}

/// Splits `OP [SIGN]NUMBER [UNIT]`; blanks allowed between the parts.
fn split(kind: &'static str, text: &str) -> Result<(Op, Option<char>, f64, Unit), LimitError> {
    let err = |message: &str| LimitError {
        kind,
        text: text.to_string(),
        message: message.to_string(),
    };
    let t = text.trim();
    let (op, rest) = if let Some(r) = t.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = t.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = t.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = t.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        return Err(err("must start with <, <=, > or >="));
    };
    let rest = rest.trim_start();
    let (sign, rest) = match rest.chars().next() {
        Some(c @ ('+' | '-')) => (Some(c), rest[1..].trim_start()),
        _ => (None, rest),
    };
    let (num, unit) = if let Some(n) = rest.strip_suffix("ms") {
        (n, Unit::Ms)
    } else if let Some(n) = rest.strip_suffix('s') {
        (n, Unit::S)
    } else if let Some(n) = rest.strip_suffix('%') {
        (n, Unit::Percent)
    } else {
        (rest, Unit::None)
    };
    let num = num.trim_end();
    let ok_chars = !num.is_empty()
        && num.chars().all(|c| {
            c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'
        });
    let value: f64 = match num.parse::<f64>() {
        // Same bound as a load threshold's: a limit beyond it limits nothing.
        Ok(v) if ok_chars && v.is_finite() && v.abs() > crate::pipeline::limits::MAX_NUMBER_LIMIT => {
            return Err(err("the number is out of range (at most 1e15)"))
        }
        Ok(v) if ok_chars && v.is_finite() => v,
        _ => return Err(err("expected a number, optionally with a unit ms, s or %")),
    };
    Ok((op, sign, value, unit))
}

fn scale(v: f64, unit: Unit) -> f64 {
    match unit {
        Unit::Ms => v / 1000.0,
        Unit::Percent => v / 100.0,
        Unit::None | Unit::S => v,
    }
}

/// An absolute limit: the measured value must satisfy `value OP limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub op: Op,
    /// In the metric's unit (seconds for latencies, a fraction for ratios).
    pub limit: f64,
    source: String,
}

impl Threshold {
    pub fn parse(text: &str) -> Result<Threshold, LimitError> {
        let (op, sign, value, unit) = split("threshold", text)?;
        let value = if sign == Some('-') { -value } else { value };
        Ok(Threshold {
            op,
            limit: scale(value, unit),
            source: text.trim().to_string(),
        })
    }

    pub fn passes(&self, measured: f64) -> bool {
        self.op.holds(measured, self.limit)
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A limit relative to the same measurement on the version in production.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRule {
    pub op: Op,
    /// Signed change allowed: a fraction when `relative`, else in the metric's unit.
    pub delta: f64,
    pub relative: bool,
    source: String,
}

impl BaselineRule {
    pub fn parse(text: &str) -> Result<BaselineRule, LimitError> {
        let (op, sign, value, unit) = split("baseline", text)?;
        let Some(sign) = sign else {
            return Err(LimitError {
                kind: "baseline",
                text: text.to_string(),
                message: "the change needs a sign: e.g. <=+10% or >=-5%".into(),
            });
        };
        let value = if sign == '-' { -value } else { value };
        Ok(BaselineRule {
            op,
            delta: scale(value, unit),
            relative: unit == Unit::Percent,
            source: text.trim().to_string(),
        })
    }

    /// The value the candidate is compared with, given production's.
    pub fn bound(&self, baseline: f64) -> f64 {
        if self.relative {
            baseline * (1.0 + self.delta)
        } else {
            baseline + self.delta
        }
    }

    pub fn passes(&self, candidate: f64, baseline: f64) -> bool {
        self.op.holds(candidate, self.bound(baseline))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for BaselineRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

// Both (de)serialize as the text the user wrote, so errors point at the YAML string and
// reports show it back unchanged.
macro_rules! serde_as_text {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.source)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_text!(Threshold);
serde_as_text!(BaselineRule);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_convert_units() {
        let t = Threshold::parse("<200ms").unwrap();
        assert_eq!((t.op, t.limit), (Op::Lt, 0.2));
        assert!(t.passes(0.199) && !t.passes(0.2));
        assert_eq!(Threshold::parse("<=0.01").unwrap().limit, 0.01);
        assert_eq!(Threshold::parse("> 150").unwrap().op, Op::Gt);
        assert_eq!(Threshold::parse(">=2s").unwrap().limit, 2.0);
        assert_eq!(Threshold::parse("<1%").unwrap().limit, 0.01);
        assert_eq!(Threshold::parse("<1e-3").unwrap().limit, 0.001);
        assert_eq!(Threshold::parse("<200ms").unwrap().as_str(), "<200ms");
    }

    #[test]
    fn baselines_relative_and_absolute() {
        let r = BaselineRule::parse("<=+10%").unwrap();
        assert!(r.relative);
        assert!((r.bound(0.2) - 0.22).abs() < 1e-12);
        assert!(r.passes(0.219, 0.2) && !r.passes(0.23, 0.2));
        let a = BaselineRule::parse("<=+50ms").unwrap();
        assert!(!a.relative);
        assert!((a.bound(0.1) - 0.15).abs() < 1e-12);
        let d = BaselineRule::parse(">=-5%").unwrap();
        assert!((d.bound(100.0) - 95.0).abs() < 1e-9);
        assert!(d.passes(96.0, 100.0) && !d.passes(94.0, 100.0));
    }

    #[test]
    fn rejects_bad_expressions() {
        for t in [
            "200ms",
            "<",
            "<abc",
            "<200 parsecs",
            "=1",
            "<1ms2",
            "<inf",
            "<NaN",
        ] {
            assert!(Threshold::parse(t).is_err(), "{t}");
        }
        let e = BaselineRule::parse("<=10%").unwrap_err();
        assert!(e.message.contains("sign"), "{e}");
    }

    #[test]
    fn limits_beyond_any_measurement_are_out_of_range() {
        // Finite, but a gate against it would pass everything.
        let e = Threshold::parse(&format!("<{}ms", "9".repeat(305))).unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        assert!(Threshold::parse("<1e15").is_ok());
    }

    #[test]
    fn serde_round_trips_the_text() {
        let t: Threshold = serde_yaml::from_str("'<200ms'").unwrap();
        assert_eq!(serde_yaml::to_string(&t).unwrap().trim(), "<200ms");
        let e = serde_yaml::from_str::<BaselineRule>("'10%'").unwrap_err();
        assert!(e.to_string().contains("bad baseline"), "{e}");
    }
}
