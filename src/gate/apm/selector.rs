//! Series selectors for the scrape provider, in PromQL's syntax:
//! `name`, `name{label="v"}`, with `=`, `!=`, `=~`, `!~`.
//!
//! Regexes are anchored as in Prometheus (`code=~"5.."` must match the whole value), and
//! a label a series lacks matches as the empty string, as in Prometheus.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;

use super::exposition::Sample;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl MatchOp {
    fn text(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: MatchOp,
    pub value: String,
    /// Compiled `^(?:value)$` for the regex operators.
    regex: Option<Regex>,
}

impl Matcher {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.label).map(String::as_str).unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Whether this matcher can only be met by a series that has the label: used to tell a
    /// mistyped label name (no series has it: missing data) from "no such events yet".
    pub fn requires_label(&self) -> bool {
        !self.matches(&BTreeMap::new())
    }
}

/// `metric{matchers}`: a metric name and zero or more label matchers.
#[derive(Debug, Clone)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
    /// The text as written, for messages and serialization.
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector '{source_text}' at column {column}: {message}")]
pub struct SelectorError {
    pub source_text: String,
    pub column: usize,
    pub message: String,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        use crate::pipeline::limits::{self, MAX_SELECTOR_LEN};
        // Before anything is copied or compiled: a 100 MB selector once took 45 s and
        // 10 GB to compile its regex.
        if let Err(e) = limits::check_len(text, MAX_SELECTOR_LEN) {
            return Err(SelectorError { source_text: limits::excerpt(text).into_owned(), column: 1, message: format!("the selector {e}") });
        }
        let mut c = Cursor { text, chars: text.chars().collect(), pos: 0 };
        c.skip();
        let metric = c.ident(true).ok_or_else(|| c.err("expected a metric name"))?;
        c.skip();
        let mut matchers = Vec::new();
        if c.peek() == Some('{') {
            c.pos += 1;
            loop {
                c.skip();
                if c.peek() == Some('}') {
                    c.pos += 1;
                    break;
                }
                matchers.push(c.matcher()?);
                c.skip();
                match c.peek() {
                    Some(',') => c.pos += 1,
                    Some('}') => {}
                    _ => return Err(c.err("expected ',' or '}'")),
                }
            }
            c.skip();
        }
        if c.pos < c.chars.len() {
            return Err(c.err("unexpected text after the selector"));
        }
        Ok(Selector { metric, matchers, source: text.trim().to_string() })
    }

    /// This selector with another metric name: `h{...}` → `h_bucket{...}`.
    pub fn with_metric(&self, metric: &str) -> Selector {
        Selector {
            metric: metric.to_string(),
            matchers: self.matchers.clone(),
            source: self.source.replacen(&self.metric, metric, 1),
        }
    }

    pub fn matches(&self, sample: &Sample) -> bool {
        sample.name == self.metric && self.matches_labels(&sample.labels)
    }

    pub fn matches_labels(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.label, self.op.text(), self.value)
    }
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Where the selector parser is in the text.
struct Cursor<'t> {
    text: &'t str,
    chars: Vec<char>,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn err(&self, message: impl Into<String>) -> SelectorError {
        SelectorError { source_text: self.text.to_string(), column: self.pos + 1, message: message.into() }
    }

    fn skip(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    /// A metric (colons allowed) or label name.
    fn ident(&mut self, metric: bool) -> Option<String> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_ascii_alphabetic() || c == '_' || (metric && c == ':') || (self.pos > start && c.is_ascii_digit());
            if !ok {
                break;
            }
            self.pos += 1;
        }
        (self.pos > start).then(|| self.chars[start..self.pos].iter().collect())
    }

    /// `label op "value"`, its regex compiled (within the limits) for `=~` and `!~`.
    fn matcher(&mut self) -> Result<Matcher, SelectorError> {
        use crate::pipeline::limits;
        let label = self.ident(false).ok_or_else(|| self.err("expected a label name"))?;
        self.skip();
        let op = match (self.peek(), self.chars.get(self.pos + 1)) {
            (Some('='), Some('~')) => MatchOp::Re,
            (Some('!'), Some('=')) => MatchOp::Ne,
            (Some('!'), Some('~')) => MatchOp::NotRe,
            (Some('='), _) => MatchOp::Eq,
            _ => return Err(self.err("expected one of = != =~ !~")),
        };
        self.pos += if op == MatchOp::Eq { 1 } else { 2 };
        self.skip();
        let value = self.quoted()?;
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                limits::regex(&format!("^(?:{value})$"))
                    .map_err(|e| self.err(format!("bad regex '{}': {e}", limits::excerpt(&value))))?,
            ),
            _ => None,
        };
        Ok(Matcher { label, op, value, regex })
    }

    /// A value in single or double quotes, with `\n`, `\t` and quote escapes; other
    /// escapes pass through for the regexes (`\d`, `\.`).
    fn quoted(&mut self) -> Result<String, SelectorError> {
        let quote = match self.peek() {
            Some(q @ ('"' | '\'')) => q,
            _ => return Err(self.err("expected a quoted value")),
        };
        self.pos += 1;
        let mut value = String::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated value")),
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(value);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(self.err("unterminated escape")),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    value.push(c);
                    self.pos += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_matches_all_operators() {
        let s =
            Selector::parse(r#"reqs{code=~"5..", route!="/healthz", method = 'GET', x!~"a|b"}"#)
                .unwrap();
        assert_eq!(s.metric, "reqs");
        assert_eq!(s.matchers.len(), 4);
        assert!(s.matches_labels(&l(&[("code", "503"), ("route", "/"), ("method", "GET")])));
        // Anchored: "5.." does not match "5000" nor "200".
        assert!(!s.matches_labels(&l(&[("code", "5000"), ("route", "/"), ("method", "GET")])));
        assert!(!s.matches_labels(&l(&[("code", "200"), ("route", "/"), ("method", "GET")])));
        assert!(!s.matches_labels(&l(&[
            ("code", "500"),
            ("route", "/healthz"),
            ("method", "GET")
        ])));
        assert!(!s.matches_labels(&l(&[
            ("code", "500"),
            ("route", "/"),
            ("method", "GET"),
            ("x", "a")
        ])));
        assert!(Selector::parse("plain_metric").unwrap().matchers.is_empty());
        assert!(Selector::parse("m{}").unwrap().matchers.is_empty());
    }

    #[test]
    fn absent_label_is_the_empty_string() {
        let ne = Selector::parse(r#"m{a!="x"}"#).unwrap();
        assert!(ne.matches_labels(&l(&[])));
        assert!(!ne.matchers[0].requires_label());
        let eq = Selector::parse(r#"m{a="x"}"#).unwrap();
        assert!(eq.matchers[0].requires_label());
        let empty_ok = Selector::parse(r#"m{a=~"x|"}"#).unwrap();
        assert!(!empty_ok.matchers[0].requires_label());
    }

    #[test]
    fn regex_escapes_survive() {
        let s = Selector::parse(r#"m{route=~"/api/products/\{id\}|/"}"#).unwrap();
        assert!(s.matches_labels(&l(&[("route", "/api/products/{id}")])));
        let d = Selector::parse(r#"m{code=~"5\d\d"}"#).unwrap();
        assert!(d.matches_labels(&l(&[("code", "500")])));
    }

    #[test]
    fn rejects_bad_selectors() {
        for (text, needle) in [
            ("", "metric name"),
            ("m{a}", "one of"),
            ("m{a=x}", "quoted"),
            ("m{a=\"x\"", "','"),
            ("m{a=~\"(\"}", "bad regex"),
            ("m x", "unexpected text"),
            ("m{a=\"x}", "unterminated"),
        ] {
            let e = Selector::parse(text).unwrap_err();
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }
}
