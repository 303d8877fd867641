//! A strict parser of the Prometheus text exposition format (0.0.4).
//!
//! Written here rather than taken from `prometheus-parse`: that crate finds the label block
//! with `\{[^}]+\}` and splits it on `,` and `=`, so a label value holding `}` (the demo's
//! `route="/api/products/{id}"`), `,` or an escaped quote is silently mangled, and a line it
//! cannot read is skipped. A gate must not judge on mangled or dropped samples, so every
//! malformed line here is an error with its line and column.
//!
//! Histograms and summaries need no special casing: their `_bucket`/`_sum`/`_count` and
//! quantile lines are ordinary samples whose labels include `le`/`quantile`.

use std::collections::BTreeMap;

use serde::Serialize;

/// One line of data: a series (name + labels) and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub name: String,
    /// Sorted by label name, so two scrapes' series compare equal whatever the order.
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    /// Milliseconds since the epoch, when the exposer gave one.
    pub timestamp_ms: Option<i64>,
}

/// Where and why a page is not valid exposition text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// Parses a whole page. `# TYPE`/`# HELP` and other comments are checked only as far as
/// they matter: a sample line must be well-formed, a comment can say anything.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut p = LineParser {
            chars: line.chars().collect(),
            pos: 0,
            line: i + 1,
        };
        samples.push(p.sample()?);
    }
    Ok(samples)
}

struct LineParser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl LineParser {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            line: self.line,
            column: self.pos + 1,
            message: message.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_blanks(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn sample(&mut self) -> Result<Sample, ParseError> {
        self.skip_blanks();
        let name = self.ident(true)?;
        let gap = self.skip_blanks();
        let (labels, gap) = if self.peek() == Some('{') {
            self.pos += 1;
            let labels = self.labels()?;
            (labels, self.skip_blanks())
        } else {
            (BTreeMap::new(), gap)
        };
        if gap == 0 {
            return self.err("expected a space before the value");
        }
        let value_at = self.pos;
        let value_text = self.word();
        let value = match parse_value(&value_text) {
            Some(v) => v,
            None => {
                self.pos = value_at;
                if value_text.parse::<f64>().is_ok_and(f64::is_infinite) {
                    return self.err(format!("'{value_text}' is out of range for a 64-bit number; only +Inf and -Inf are infinite"));
                }
                return self.err(format!("'{value_text}' is not a number"));
            }
        };
        let mut timestamp_ms = None;
        if self.skip_blanks() > 0 && self.peek().is_some() {
            let ts_at = self.pos;
            let ts_text = self.word();
            match ts_text.parse::<i64>() {
                Ok(ts) => timestamp_ms = Some(ts),
                Err(_) => {
                    self.pos = ts_at;
                    return self.err(format!("'{ts_text}' is not a timestamp (integer ms)"));
                }
            }
            self.skip_blanks();
        }
        if self.peek().is_some() {
            return self.err("unexpected text after the sample");
        }
        Ok(Sample {
            name,
            labels,
            value,
            timestamp_ms,
        })
    }

    /// A metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) or, without colons, a label name.
    fn ident(&mut self, metric: bool) -> Result<String, ParseError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic()
                || c == '_'
                || (metric && c == ':')
                || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            let what = if metric {
                "a metric name"
            } else {
                "a label name"
            };
            return self.err(format!("expected {what}"));
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    /// After `{`: `name="value"` pairs separated by commas (a trailing comma is allowed),
    /// up to and including `}`.
    fn labels(&mut self) -> Result<BTreeMap<String, String>, ParseError> {
        let mut labels = BTreeMap::new();
        loop {
            self.skip_blanks();
            if self.peek() == Some('}') {
                self.pos += 1;
                return Ok(labels);
            }
            let name_at = self.pos;
            let name = self.ident(false)?;
            self.skip_blanks();
            if self.peek() != Some('=') {
                return self.err("expected '=' after the label name");
            }
            self.pos += 1;
            self.skip_blanks();
            let value = self.quoted()?;
            if labels.insert(name.clone(), value).is_some() {
                self.pos = name_at;
                return self.err(format!("label '{name}' appears twice"));
            }
            self.skip_blanks();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                Some(_) => return self.err("expected ',' or '}' after a label"),
                None => return self.err("unterminated label set (no '}')"),
            }
        }
    }

    /// A double-quoted label value with the format's three escapes: `\\`, `\"`, `\n`.
    fn quoted(&mut self) -> Result<String, ParseError> {
        if self.peek() != Some('"') {
            return self.err("expected '\"' to open the label value");
        }
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return self.err("unterminated label value (no closing '\"')"),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('\\') => out.push('\\'),
                        Some('"') => out.push('"'),
                        Some('n') => out.push('\n'),
                        Some(c) => {
                            return self.err(format!("unknown escape '\\{c}' in a label value"))
                        }
                        None => return self.err("unterminated escape in a label value"),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn word(&mut self) -> String {
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c != ' ' && c != '\t') {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }
}

/// Go's float syntax as exposers write it: decimals, exponents, `NaN`, `+Inf`, `-Inf`.
/// Rust's parser takes all of these (case-insensitively), but also `infinity`; that is
/// harmless. Hex floats and `_` separators are rejected by both. A literal too big for
/// an f64 (`1e400`) is an error, not infinity: Rust would round it to `inf`, and a
/// gate would then compare against a value nobody exposed.
pub(crate) fn parse_value(s: &str) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let v = s.parse::<f64>().ok()?;
    if v.is_infinite() {
        let word = s.strip_prefix(['+', '-']).unwrap_or(s);
        if !word.eq_ignore_ascii_case("inf") && !word.eq_ignore_ascii_case("infinity") {
            return None;
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_histogram_lines_with_braces_in_label_values() {
        let text = "# HELP h Time.\n# TYPE h histogram\n\
            h_bucket{route=\"/api/products/{id}\",method=\"GET\",le=\"0.1\"} 3\n\
            h_bucket{route=\"/api/products/{id}\",method=\"GET\",le=\"+Inf\"} 4\n\
            h_sum{route=\"/api/products/{id}\",method=\"GET\"} 0.31\n\
            h_count{route=\"/api/products/{id}\",method=\"GET\"} 4\n";
        let s = parse_exposition(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "h_bucket");
        assert_eq!(
            s[0].labels,
            labels(&[
                ("route", "/api/products/{id}"),
                ("method", "GET"),
                ("le", "0.1")
            ])
        );
        assert_eq!(s[1].labels["le"], "+Inf");
        assert_eq!(s[2].value, 0.31);
    }

    #[test]
    fn unescapes_label_values_and_reads_special_values_and_timestamps() {
        let text = r#"m{a="x\"y\\z\nw",b="a,b=c",c=""} NaN
m{a="1"} +Inf 1700000000000
m{a="2",} -Inf
plain 1.5e3
  spaced  {  a = "v" }   7   
"#;
        let s = parse_exposition(text).unwrap();
        assert_eq!(s[0].labels["a"], "x\"y\\z\nw");
        assert_eq!(s[0].labels["b"], "a,b=c");
        assert_eq!(s[0].labels["c"], "");
        assert!(s[0].value.is_nan());
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[1].timestamp_ms, Some(1_700_000_000_000));
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[3].value, 1500.0);
        assert!(s[3].labels.is_empty());
        assert_eq!(s[4].name, "spaced");
        assert_eq!(s[4].labels["a"], "v");
        assert_eq!(s[4].value, 7.0);
    }

    #[test]
    fn rejects_malformed_lines_with_their_position() {
        let cases = [
            ("ok 1\nbad{a=\"x} 1\n", 2, "unterminated label value"),
            ("m{a=x} 1", 1, "expected '\"'"),
            ("m{a=\"1\",a=\"2\"} 1", 1, "appears twice"),
            ("m{a=\"\\t\"} 1", 1, "unknown escape"),
            ("m one", 1, "not a number"),
            // Rounded to infinity by Rust's parser, which would make a gate judge on a
            // value nobody exposed.
            ("m 1e400", 1, "out of range"),
            ("m -1e400", 1, "out of range"),
            ("m 1 12.5", 1, "not a timestamp"),
            ("m 1 2 3", 1, "unexpected text"),
            ("m{a=\"1\"}1", 1, "expected a space"),
            ("9m 1", 1, "expected a metric name"),
            ("m{a=\"1\" b=\"2\"} 1", 1, "expected ',' or '}'"),
        ];
        for (text, line, needle) in cases {
            let e = parse_exposition(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
        let e = parse_exposition("m one").unwrap_err();
        assert_eq!(e.column, 3);
    }
}
