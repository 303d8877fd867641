//! k6-syntax thresholds (`http_req_duration: ["p(95)<200ms"]`), parsed with typed errors
//! that point at a byte column, and evaluated against a load run's `LoadSummary`.
//!
//! Grammar of one expression: `aggregation op limit`, spaces allowed between the parts.
//! - aggregation: `avg | min | med | max | p(N)` for trends, `rate` for rates,
//!   `count | rate` for counters (as in k6);
//! - op: `< <= > >= == !=`;
//! - limit: a number; for durations an optional unit `us`/`µs`, `ms`, `s` or `m`, and no unit
//!   means milliseconds (k6's rule).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::load::LoadSummary;

/// The metrics a load run measures, named as k6 names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    HttpReqDuration,
    HttpReqFailed,
    HttpReqs,
    DataReceived,
    DataSent,
    DroppedIterations,
}

/// k6's metric types: which aggregations a metric has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Trend,
    Rate,
    Counter,
}

impl MetricKind {
    fn name(self) -> &'static str {
        match self {
            MetricKind::Trend => "a trend",
            MetricKind::Rate => "a rate",
            MetricKind::Counter => "a counter",
        }
    }
    fn aggregations(self) -> &'static str {
        match self {
            MetricKind::Trend => "avg, min, med, max or p(N)",
            MetricKind::Rate => "rate",
            MetricKind::Counter => "count or rate",
        }
    }
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::HttpReqDuration,
        Metric::HttpReqFailed,
        Metric::HttpReqs,
        Metric::DataReceived,
        Metric::DataSent,
        Metric::DroppedIterations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::HttpReqDuration => "http_req_duration",
            Metric::HttpReqFailed => "http_req_failed",
            Metric::HttpReqs => "http_reqs",
            Metric::DataReceived => "data_received",
            Metric::DataSent => "data_sent",
            Metric::DroppedIterations => "dropped_iterations",
        }
    }

    pub fn kind(self) -> MetricKind {
        match self {
            Metric::HttpReqDuration => MetricKind::Trend,
            Metric::HttpReqFailed => MetricKind::Rate,
            _ => MetricKind::Counter,
        }
    }

    /// Parses a metric name; an unknown one gets the nearest known name as a suggestion.
    pub fn parse(name: &str) -> Result<Metric, ThresholdError> {
        let trimmed = name.trim();
        if let Some(m) = Metric::ALL.into_iter().find(|m| m.name() == trimmed) {
            return Ok(m);
        }
        if let Some(brace) = trimmed.find('{') {
            return Err(ThresholdError::TaggedMetric { name: trimmed.to_string(), column: brace });
        }
        let suggestion = Metric::ALL
            .into_iter()
            .map(|m| (strsim::levenshtein(trimmed, m.name()), m.name()))
            .min()
            .filter(|(distance, _)| *distance <= 4)
            .map(|(_, n)| n);
        Err(ThresholdError::UnknownMetric { name: trimmed.to_string(), suggestion })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    Avg,
    Min,
    Med,
    Max,
    /// p(N), 0 <= N <= 100.
    Percentile(f64),
    Rate,
    Count,
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Avg => f.write_str("avg"),
            Aggregation::Min => f.write_str("min"),
            Aggregation::Med => f.write_str("med"),
            Aggregation::Max => f.write_str("max"),
            Aggregation::Percentile(p) => write!(f, "p({p})"),
            Aggregation::Rate => f.write_str("rate"),
            Aggregation::Count => f.write_str("count"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }

    pub fn holds(self, measured: f64, limit: f64) -> bool {
        match self {
            Op::Lt => measured < limit,
            Op::Le => measured <= limit,
            Op::Gt => measured > limit,
            Op::Ge => measured >= limit,
            Op::Eq => measured == limit,
            Op::Ne => measured != limit,
        }
    }
}

/// The unit a measured value and its limit are expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    #[serde(rename = "ms")]
    Ms,
    /// A fraction in 0..=1 (http_req_failed).
    #[serde(rename = "ratio")]
    Ratio,
    #[serde(rename = "count")]
    Count,
    #[serde(rename = "/s")]
    PerSecond,
    #[serde(rename = "B")]
    Bytes,
    #[serde(rename = "B/s")]
    BytesPerSecond,
}

impl Unit {
    /// `12.345ms`, `0.0125 (1.25%)`, `200.0/s`...
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Ms => format!("{}ms", trim_float(v)),
            Unit::Ratio => format!("{} ({}%)", trim_float(v), trim_float(v * 100.0)),
            Unit::Count => trim_float(v),
            Unit::PerSecond => format!("{}/s", trim_float(v)),
            Unit::Bytes => format!("{}B", trim_float(v)),
            Unit::BytesPerSecond => format!("{}B/s", trim_float(v)),
        }
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// One parsed threshold. `limit` is in `unit()`: milliseconds for durations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub metric: Metric,
    pub aggregation: Aggregation,
    pub op: Op,
    pub limit: f64,
    /// The expression as written, for messages.
    pub expression: String,
}

/// What went wrong in a threshold, with `column`: the 0-based byte offset of the problem
/// inside the expression string (add it to where the string's text starts in the file).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThresholdError {
    #[error("unknown metric `{name}`{}; known metrics: {}", suggestion.map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(), known_metrics())]
    UnknownMetric { name: String, suggestion: Option<&'static str> },
    #[error("`{name}`: tag filters on metrics are not supported; use the plain metric name")]
    TaggedMetric { name: String, column: usize },
    #[error("the threshold expression is empty; write e.g. `p(95)<200ms`")]
    Empty { column: usize },
    #[error("`{found}` is not an aggregation of {metric} ({}); use {}", metric.kind().name(), metric.kind().aggregations())]
    UnknownAggregation { metric: Metric, found: String, column: usize },
    #[error("`{found}` is not a percentile; write p(N) with a number N, like p(95) or p(99.9)")]
    BadPercentile { found: String, column: usize },
    #[error("percentile {value} is out of range; p(N) takes 0 <= N <= 100")]
    PercentileOutOfRange { value: String, column: usize },
    #[error("expected an operator (<, <=, >, >=, ==, !=) after `{after}`{}", if found.is_empty() { String::new() } else { format!(", found `{found}`") })]
    MissingOperator { after: String, found: String, column: usize },
    #[error("missing the limit after `{op}`")]
    MissingLimit { op: &'static str, column: usize },
    #[error("`{found}` is not a duration; write a number with an optional unit us, ms, s or m (no unit means ms), like 200ms or 1.5s")]
    NotADuration { found: String, column: usize },
    #[error("`{found}` is not a number{hint}")]
    NotANumber { found: String, hint: &'static str, column: usize },
    #[error("`{found}` is out of range; a limit is at most {max}")]
    OutOfRange { found: String, max: &'static str, column: usize },
}

fn known_metrics() -> String {
    Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

impl ThresholdError {
    /// 0-based byte offset within the expression; `None` when the problem is the metric
    /// name (the map key), not the expression.
    pub fn column(&self) -> Option<usize> {
        match self {
            ThresholdError::UnknownMetric { .. } => None,
            ThresholdError::TaggedMetric { column, .. }
            | ThresholdError::Empty { column }
            | ThresholdError::UnknownAggregation { column, .. }
            | ThresholdError::BadPercentile { column, .. }
            | ThresholdError::PercentileOutOfRange { column, .. }
            | ThresholdError::MissingOperator { column, .. }
            | ThresholdError::MissingLimit { column, .. }
            | ThresholdError::NotADuration { column, .. }
            | ThresholdError::NotANumber { column, .. }
            | ThresholdError::OutOfRange { column, .. } => Some(*column),
        }
    }

    /// True when the problem is in the metric name (the key) rather than the expression.
    pub fn in_metric_name(&self) -> bool {
        matches!(self, ThresholdError::UnknownMetric { .. } | ThresholdError::TaggedMetric { .. })
    }
}

/// A threshold error located in a `{metric: [expressions]}` map.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("thresholds.{metric}{}: {error}", index.map(|i| format!("[{i}]")).unwrap_or_default())]
pub struct ThresholdSetError {
    pub metric: String,
    /// Which expression of the list; `None` when the metric name itself is wrong.
    pub index: Option<usize>,
    pub error: ThresholdError,
}

/// A cursor over the expression that remembers byte offsets for errors.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        let rest = &self.s[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.find(|c: char| !f(c)).unwrap_or(rest.len());
        self.pos += n;
        &rest[..n]
    }
}

impl Threshold {
    /// Parses one expression of `metric`.
    pub fn parse(metric: &str, expression: &str) -> Result<Threshold, ThresholdError> {
        let metric = Metric::parse(metric)?;
        let mut c = Cursor { s: expression, pos: 0 };
        c.skip_ws();
        if c.rest().is_empty() {
            return Err(ThresholdError::Empty { column: 0 });
        }
        let aggregation = parse_aggregation(metric, &mut c)?;
        let after_end = c.pos;
        c.skip_ws();
        let op_col = c.pos;
        let op = parse_op(&mut c).ok_or_else(|| ThresholdError::MissingOperator {
            after: expression[..after_end].trim().to_string(),
            found: c.rest().chars().take_while(|ch| !ch.is_alphanumeric() && !ch.is_whitespace()).collect::<String>(),
            column: op_col,
        })?;
        c.skip_ws();
        let value_col = c.pos;
        let text = c.rest().trim_end();
        if text.is_empty() {
            return Err(ThresholdError::MissingLimit { op: op.as_str(), column: value_col });
        }
        let limit = match metric.kind() {
            MetricKind::Trend => parse_duration_ms(text).ok_or_else(|| ThresholdError::NotADuration { found: text.to_string(), column: value_col })?,
            _ => parse_number(text).ok_or_else(|| ThresholdError::NotANumber {
                found: text.to_string(),
                hint: if text.ends_with('%') { " (rates are fractions: 1% is 0.01)" } else { "" },
                column: value_col,
            })?,
        };
        // A limit of 9...9 (305 digits) minutes is finite as written but infinite in
        // milliseconds, and would pass every run: out of range, not "no limit".
        let (max, max_text) = match metric.kind() {
            MetricKind::Trend => (MAX_DURATION_LIMIT_MS, "7 days (604800000ms)"),
            _ => (MAX_NUMBER_LIMIT, "1e15"),
        };
        if !(limit.abs() <= max) {
            let found = crate::pipeline::limits::excerpt(text).into_owned();
            return Err(ThresholdError::OutOfRange { found, max: max_text, column: value_col });
        }
        Ok(Threshold { metric, aggregation, op, limit, expression: expression.to_string() })
    }

    /// The unit of `limit` and of the value it is compared with.
    pub fn unit(&self) -> Unit {
        match (self.metric, self.aggregation) {
            (Metric::HttpReqDuration, _) => Unit::Ms,
            (Metric::HttpReqFailed, _) => Unit::Ratio,
            (Metric::DataReceived | Metric::DataSent, Aggregation::Rate) => Unit::BytesPerSecond,
            (Metric::DataReceived | Metric::DataSent, _) => Unit::Bytes,
            (_, Aggregation::Rate) => Unit::PerSecond,
            _ => Unit::Count,
        }
    }
}

/// Parses a whole `{metric: [expressions]}` map (as in a pipeline's `thresholds:`).
pub fn parse_set<I, K, V, S>(map: I) -> Result<Vec<Threshold>, ThresholdSetError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    for (metric, expressions) in map {
        let metric = metric.as_ref();
        Metric::parse(metric).map_err(|error| ThresholdSetError { metric: metric.to_string(), index: None, error })?;
        for (index, expr) in expressions.into_iter().enumerate() {
            let t = Threshold::parse(metric, expr.as_ref())
                .map_err(|error| ThresholdSetError { metric: metric.to_string(), index: Some(index), error })?;
            out.push(t);
        }
    }
    Ok(out)
}

fn parse_aggregation(metric: Metric, c: &mut Cursor) -> Result<Aggregation, ThresholdError> {
    let start = c.pos;
    let word = c.take_while(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    let aggregation = match word {
        "p" if c.rest().starts_with('(') => {
            c.pos += 1;
            let inner_start = c.pos;
            let Some(close) = c.rest().find(')') else {
                return Err(ThresholdError::BadPercentile { found: c.s[start..].trim_end().to_string(), column: start });
            };
            let inner = &c.s[inner_start..inner_start + close];
            c.pos = inner_start + close + 1;
            let n = parse_number(inner.trim()).ok_or_else(|| ThresholdError::BadPercentile {
                found: c.s[start..c.pos].to_string(),
                column: start,
            })?;
            if !(0.0..=100.0).contains(&n) {
                return Err(ThresholdError::PercentileOutOfRange { value: inner.trim().to_string(), column: inner_start });
            }
            Aggregation::Percentile(n)
        }
        "p" => return Err(ThresholdError::BadPercentile { found: word.to_string(), column: start }),
        "avg" => Aggregation::Avg,
        "min" => Aggregation::Min,
        "med" => Aggregation::Med,
        "max" => Aggregation::Max,
        "rate" => Aggregation::Rate,
        "count" => Aggregation::Count,
        _ => {
            let found = if word.is_empty() { c.rest().chars().next().map(String::from).unwrap_or_default() } else { word.to_string() };
            return Err(ThresholdError::UnknownAggregation { metric, found, column: start });
        }
    };
    let allowed = match metric.kind() {
        MetricKind::Trend => !matches!(aggregation, Aggregation::Rate | Aggregation::Count),
        MetricKind::Rate => aggregation == Aggregation::Rate,
        MetricKind::Counter => matches!(aggregation, Aggregation::Rate | Aggregation::Count),
    };
    if !allowed {
        return Err(ThresholdError::UnknownAggregation { metric, found: c.s[start..c.pos].to_string(), column: start });
    }
    Ok(aggregation)
}

fn parse_op(c: &mut Cursor) -> Option<Op> {
    // Two-character operators first, so `<=` is not read as `<` then `=`.
    const OPS: [(&str, Op); 6] = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("!=", Op::Ne), ("<", Op::Lt), (">", Op::Gt)];
    let (text, op) = OPS.into_iter().find(|(text, _)| c.rest().starts_with(text))?;
    c.pos += text.len();
    Some(op)
}

use crate::pipeline::limits::{MAX_DURATION_LIMIT_MS, MAX_NUMBER_LIMIT};

/// A plain decimal number (no sign tricks, no `inf`/`nan`, which `f64::from_str` accepts).
fn parse_number(s: &str) -> Option<f64> {
    let ok = !s.is_empty()
        && s.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
        && s.chars().any(|c| c.is_ascii_digit());
    ok.then(|| s.parse::<f64>().ok()).flatten().filter(|v| v.is_finite())
}

/// `200`, `200ms`, `1.5s`, `250us`, `250µs`, `1m` → milliseconds.
fn parse_duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let factor = match unit.trim_start() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "us" | "µs" => 0.001,
        "m" => 60_000.0,
        _ => return None,
    };
    parse_number(number).map(|v| v * factor).filter(|v| *v >= 0.0)
}

/// The outcome of one threshold against one summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdResult {
    pub metric: Metric,
    pub expression: String,
    /// `None` when there was nothing to measure (no requests), which fails the threshold:
    /// a gate must not pass on an empty run.
    pub measured: Option<f64>,
    pub limit: f64,
    pub unit: Unit,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl fmt::Display for ThresholdResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed { "pass" } else { "FAIL" };
        let measured = self.measured.map_or_else(|| "no data".to_string(), |v| self.unit.format(v));
        write!(f, "{verdict} {}: {} (measured {measured}, limit {})", self.metric, self.expression, self.unit.format(self.limit))?;
        if let Some(note) = &self.note {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

/// Evaluates every threshold; percentiles come from the summary's decoded HDR histogram,
/// so `p(97.5)` is as exact as `p(95)`.
pub fn evaluate(summary: &LoadSummary, thresholds: &[Threshold]) -> Vec<ThresholdResult> {
    let needs_histogram = thresholds.iter().any(|t| t.metric == Metric::HttpReqDuration);
    let histogram = needs_histogram.then(|| summary.decode_histogram());
    let secs = summary.elapsed_ms as f64 / 1000.0;
    let per_second = |n: u64| (secs > 0.0).then(|| n as f64 / secs);
    thresholds
        .iter()
        .map(|t| {
            let (measured, note) = match (t.metric, t.aggregation) {
                (Metric::HttpReqDuration, agg) => match histogram.as_ref().expect("decoded above") {
                    Err(e) => (None, Some(e.to_string())),
                    Ok(h) if h.is_empty() => (None, Some("no latency samples".to_string())),
                    Ok(h) => {
                        let us = match agg {
                            Aggregation::Avg => h.mean(),
                            Aggregation::Min => h.min() as f64,
                            Aggregation::Max => h.max() as f64,
                            Aggregation::Med => h.value_at_quantile(0.5) as f64,
                            Aggregation::Percentile(p) => h.value_at_quantile(p / 100.0) as f64,
                            Aggregation::Rate | Aggregation::Count => unreachable!("rejected by the parser"),
                        };
                        (Some(us / 1000.0), None)
                    }
                },
                (Metric::HttpReqFailed, _) if summary.requests == 0 => (None, Some("no requests".to_string())),
                (Metric::HttpReqFailed, _) => (Some(summary.failed as f64 / summary.requests as f64), None),
                (m, Aggregation::Count) => (Some(counter(summary, m) as f64), None),
                (m, _) => (per_second(counter(summary, m)), None),
            };
            ThresholdResult {
                metric: t.metric,
                expression: t.expression.clone(),
                passed: measured.is_some_and(|v| t.op.holds(v, t.limit)),
                measured,
                limit: t.limit,
                unit: t.unit(),
                note,
            }
        })
        .collect()
}

fn counter(summary: &LoadSummary, metric: Metric) -> u64 {
    match metric {
        Metric::HttpReqs => summary.requests,
        Metric::DataReceived => summary.bytes_received,
        Metric::DataSent => summary.bytes_sent,
        Metric::DroppedIterations => summary.dropped,
        Metric::HttpReqDuration | Metric::HttpReqFailed => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::stats::{Outcome, Stats};
    use std::time::Duration;

    fn parse(metric: &str, expr: &str) -> Threshold {
        Threshold::parse(metric, expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }
    fn err(metric: &str, expr: &str) -> ThresholdError {
        Threshold::parse(metric, expr).unwrap_err()
    }

    #[test]
    fn parses_k6_expressions() {
        let t = parse("http_req_duration", "p(95)<200ms");
        assert_eq!((t.aggregation, t.op, t.limit), (Aggregation::Percentile(95.0), Op::Lt, 200.0));
        assert_eq!(parse("http_req_duration", "p(99.9) < 2s").limit, 2000.0);
        assert_eq!(parse("http_req_duration", "avg<100ms").aggregation, Aggregation::Avg);
        let t = parse("http_req_duration", "med<=50");
        assert_eq!((t.aggregation, t.op, t.limit), (Aggregation::Med, Op::Le, 50.0));
        assert_eq!(parse("http_req_duration", "max<2s").limit, 2000.0);
        assert_eq!(parse("http_req_duration", "min>=250us").limit, 0.25);
        assert_eq!(parse("http_req_duration", "min>=250µs").limit, 0.25);
        let t = parse("http_req_failed", "rate<0.01");
        assert_eq!((t.aggregation, t.limit, t.unit()), (Aggregation::Rate, 0.01, Unit::Ratio));
        let t = parse("http_reqs", "rate>150");
        assert_eq!((t.op, t.unit()), (Op::Gt, Unit::PerSecond));
        let t = parse("http_reqs", "count>=1000");
        assert_eq!((t.aggregation, t.op, t.limit), (Aggregation::Count, Op::Ge, 1000.0));
        assert_eq!(parse("http_reqs", "count==3").op, Op::Eq);
        assert_eq!(parse("http_reqs", "count != 3").op, Op::Ne);
        assert_eq!(parse("dropped_iterations", "count==0").unit(), Unit::Count);
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = err("http_req_duration", "p(95)<200parsecs");
        assert_eq!(e.column(), Some(6));
        assert!(e.to_string().starts_with("`200parsecs` is not a duration"), "{e}");

        let e = err("http_req_duration", "p(101)<1");
        assert!(matches!(e, ThresholdError::PercentileOutOfRange { column: 2, .. }), "{e:?}");
        assert!(e.to_string().contains("out of range"));

        let e = err("http_req_duration", "rate<0.1");
        assert!(matches!(e, ThresholdError::UnknownAggregation { column: 0, .. }), "{e:?}");
        assert!(e.to_string().contains("not an aggregation of http_req_duration (a trend)"), "{e}");

        let e = err("http_req_failed", "p(95)<1");
        assert!(e.to_string().contains("use rate"), "{e}");

        let e = err("http_req_duraton", "p(95)<1");
        assert_eq!(e.column(), None);
        assert!(e.to_string().contains("did you mean `http_req_duration`?"), "{e}");
        assert!(err("nonsense_metric_xyz", "p(95)<1").to_string().starts_with("unknown metric `nonsense_metric_xyz`; known"));

        let e = err("http_req_duration", "p(95) 200");
        assert!(matches!(e, ThresholdError::MissingOperator { column: 6, .. }), "{e:?}");
        let e = err("http_req_duration", "p(95)=200");
        assert!(e.to_string().contains("found `=`"), "{e}");
        assert!(matches!(err("http_req_duration", "p(95)<"), ThresholdError::MissingLimit { column: 6, .. }));
        assert!(matches!(err("http_req_duration", "  "), ThresholdError::Empty { .. }));
        assert!(matches!(err("http_req_duration", "p(x)<1"), ThresholdError::BadPercentile { column: 0, .. }));
        assert!(matches!(err("http_req_duration", "p(95<1"), ThresholdError::BadPercentile { .. }));
        let e = err("http_req_failed", "rate<1%");
        assert!(e.to_string().contains("1% is 0.01"), "{e}");
        assert!(matches!(err("http_reqs", "count>lots"), ThresholdError::NotANumber { column: 6, .. }));
        assert!(matches!(err("http_req_duration", "max<inf"), ThresholdError::NotADuration { .. }));
        assert!(matches!(err("http_req_duration{status:200}", "max<1"), ThresholdError::TaggedMetric { .. }));
    }

    #[test]
    fn parse_set_locates_errors() {
        let ok = parse_set([("http_req_duration", vec!["p(95)<200ms", "p(99)<500ms"]), ("http_req_failed", vec!["rate<0.01"])]).unwrap();
        assert_eq!(ok.len(), 3);
        let e = parse_set([("http_req_duration", vec!["p(95)<200ms", "p(99)<5parsecs"])]).unwrap_err();
        assert_eq!((e.index, e.error.column()), (Some(1), Some(6)));
        assert!(e.to_string().starts_with("thresholds.http_req_duration[1]: `5parsecs`"), "{e}");
        let e = parse_set([("http_req_durations", Vec::<&str>::new())]).unwrap_err();
        assert_eq!(e.index, None);
    }

    /// 1000 requests at 1..=1000 ms, 10 of them failed (status 500), over 10 s.
    fn known_summary() -> LoadSummary {
        let mut s = Stats::default();
        for ms in 1..=1000u64 {
            let status = if ms % 100 == 0 { 500 } else { 200 };
            s.record(Outcome::Response { status, bytes: 100 }, Duration::from_millis(ms), 50);
        }
        LoadSummary::from_stats(&s, Duration::from_secs(10), true)
    }

    fn verdicts(summary: &LoadSummary, set: &[(&str, &str)]) -> Vec<bool> {
        let ts: Vec<Threshold> = set.iter().map(|(m, e)| parse(m, e)).collect();
        evaluate(summary, &ts).into_iter().map(|r| r.passed).collect()
    }

    #[test]
    fn evaluates_against_the_histogram() {
        let s = known_summary();
        // HDR with 3 digits: values are exact to within 0.1%.
        let ts = [parse("http_req_duration", "p(95)<200ms")];
        let r = &evaluate(&s, &ts)[0];
        let p95 = r.measured.unwrap();
        assert!((p95 - 950.0).abs() <= 1.0, "{p95}");
        assert!(!r.passed);
        assert!(r.to_string().starts_with("FAIL http_req_duration: p(95)<200ms (measured 95"), "{r}");
        assert_eq!(
            verdicts(&s, &[
                ("http_req_duration", "p(95)<960"),
                ("http_req_duration", "p(95)<940"),
                ("http_req_duration", "p(50)<=501"),
                ("http_req_duration", "med<490"),
                ("http_req_duration", "avg<501"),
                ("http_req_duration", "avg>499"),
                ("http_req_duration", "max<1.001s"),
                ("http_req_duration", "min>=1ms"),
                ("http_req_duration", "p(99.9)>=998"),
                ("http_req_duration", "p(97.5)<976"),
            ]),
            [true, false, true, false, true, true, true, true, true, true]
        );
        assert_eq!(
            verdicts(&s, &[
                ("http_req_failed", "rate<0.01"),
                ("http_req_failed", "rate<=0.01"),
                ("http_reqs", "count==1000"),
                ("http_reqs", "rate>=100"),
                ("http_reqs", "rate>100"),
                ("data_received", "count==100000"),
                ("data_sent", "rate==5000"),
                ("dropped_iterations", "count==0"),
            ]),
            [false, true, true, true, false, true, true, true]
        );
    }

    #[test]
    fn an_empty_run_fails_its_thresholds() {
        let s = LoadSummary::from_stats(&Stats::default(), Duration::from_secs(1), true);
        let ts = [parse("http_req_duration", "p(95)<200ms"), parse("http_req_failed", "rate<0.01"), parse("http_reqs", "count>=0")];
        let r = evaluate(&s, &ts);
        assert_eq!(r.iter().map(|r| r.passed).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(r[0].note.as_deref(), Some("no latency samples"));
    }
}
