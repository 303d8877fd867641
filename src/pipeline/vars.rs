//! `${...}` variables in image, commands and env values. Validation only checks names;
//! the Plan keeps the raw text and the scheduler interpolates real values at run time.

use std::collections::BTreeMap;

/// The variable names a pipeline may use.
pub const KNOWN_VARS: &[&str] = &[
    "commit.sha",
    "commit.short",
    "commit.branch",
    "run.id",
    "pipeline.name",
];

/// Values for one run, by variable name (`commit.sha` -> `4f2a...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(BTreeMap<String, String>);

impl Vars {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Builder form of `insert`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Every name and value (to keep a run's values for later, e.g. with an approval).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Vars(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Replaces `${name}` with its value and `$${` with a literal `${`. A variable with no
/// value in `vars` (e.g. `commit.branch` on a detached commit) is left as written, so the
/// gap is visible rather than silently empty. A lone `$` (shell `$HOME`, `$$`) is untouched.
pub fn interpolate(text: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in scan(text) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Escaped => out.push_str("${"),
            Piece::Var { name, raw, .. } => out.push_str(vars.get(name).unwrap_or(raw)),
            Piece::Unclosed { raw, .. } => out.push_str(raw),
        }
    }
    out
}

/// `interpolate` for text a shell runs (`commands`): every value goes in as one shell
/// word, quoted unless it is made of characters the shell gives no meaning to. A branch
/// named `release/$(env|base64>&2)` is echoed, never run. Values may come from outside
/// the pipeline file (branch, `--var`), so they are data.
pub fn interpolate_for_shell(text: &str, vars: &Vars) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in scan(text) {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Escaped => out.push_str("${"),
            Piece::Var { name, raw, .. } => match vars.get(name) {
                Some(value) => out.push_str(&shell_quote(value)),
                None => out.push_str(raw),
            },
            Piece::Unclosed { raw, .. } => out.push_str(raw),
        }
    }
    out
}

/// One POSIX shell word with exactly `value`'s text: left as it is when every character
/// is plain, else in single quotes (a `'` inside written `'\''`).
pub fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// A piece of text as the interpolator sees it. Byte offsets are into the scanned text.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    /// `$${`
    Escaped,
    /// `${name}`
    Var {
        name: &'a str,
        raw: &'a str,
        offset: usize,
    },
    /// `${` with no closing `}`
    Unclosed {
        raw: &'a str,
        offset: usize,
    },
}

pub(crate) fn scan(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut plain_from = 0;
    let mut i = 0;
    while let Some(found) = text[i..].find('$') {
        let at = i + found;
        let rest = &text[at..];
        if rest.starts_with("$${") {
            pieces.push(Piece::Text(&text[plain_from..at]));
            pieces.push(Piece::Escaped);
            i = at + 3;
            plain_from = i;
        } else if rest.starts_with("${") {
            // Gantry's variables are namespaced with a dot; `${HOME}` is the shell's.
            if let Some(end) = rest.find('}').filter(|&end| !rest[2..end].contains('.')) {
                i = at + end + 1;
                continue;
            }
            pieces.push(Piece::Text(&text[plain_from..at]));
            match rest.find('}') {
                Some(end) => {
                    pieces.push(Piece::Var {
                        name: &rest[2..end],
                        raw: &rest[..=end],
                        offset: at,
                    });
                    i = at + end + 1;
                }
                None => {
                    pieces.push(Piece::Unclosed {
                        raw: rest,
                        offset: at,
                    });
                    i = text.len();
                }
            }
            plain_from = i;
        } else {
            i = at + 1;
        }
    }
    pieces.push(Piece::Text(&text[plain_from..]));
    pieces.retain(|p| *p != Piece::Text(""));
    pieces
}

#[cfg(test)]
mod shell_tests {
    use super::*;

    #[test]
    fn values_in_commands_are_one_shell_word_whatever_they_hold() {
        let vars = Vars::new().with("commit.branch", "release/$(env|base64>&2)").with("commit.short", "abc123").with("var.x", "it's");
        assert_eq!(interpolate_for_shell("echo ${commit.short} on ${commit.branch}", &vars), "echo abc123 on 'release/$(env|base64>&2)'");
        assert_eq!(interpolate_for_shell("echo ${var.x}", &vars), "echo 'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("feature/a-1.2"), "feature/a-1.2");
        // Gaps stay visible, as in interpolate.
        assert_eq!(interpolate_for_shell("${run.id}", &Vars::new()), "${run.id}");
    }

    /// The quoting holds in a real shell: what comes out is exactly what went in.
    #[test]
    fn a_real_shell_prints_the_value_literally() {
        for value in ["release/$(echo pwned)", "a'b\"c`id`", "x; rm -rf /", "$HOME", "multi\nline", "-n"] {
            let vars = Vars::new().with("commit.branch", value);
            let script = interpolate_for_shell("printf '%s' ${commit.branch}", &vars);
            let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), value, "{script}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars::new()
            .with("commit.sha", "4f2a9c0e1b")
            .with("commit.short", "4f2a9c0")
            .with("pipeline.name", "hello")
    }

    #[test]
    fn replaces_known_variables() {
        assert_eq!(
            interpolate("app:${commit.short} for ${pipeline.name}", &vars()),
            "app:4f2a9c0 for hello"
        );
    }

    #[test]
    fn double_dollar_brace_is_a_literal() {
        assert_eq!(
            interpolate("echo $${HOME} ${commit.short}", &vars()),
            "echo ${HOME} 4f2a9c0"
        );
    }

    #[test]
    fn shell_braced_variables_are_left_to_the_shell() {
        assert_eq!(
            interpolate("echo ${HOME} ${commit.short} ${GREETING:-hi}", &vars()),
            "echo ${HOME} 4f2a9c0 ${GREETING:-hi}"
        );
    }

    #[test]
    fn shell_dollars_are_untouched() {
        assert_eq!(
            interpolate("echo $HOME $$ $1 a$", &vars()),
            "echo $HOME $$ $1 a$"
        );
    }

    #[test]
    fn missing_values_and_unclosed_braces_stay_as_written() {
        assert_eq!(
            interpolate("${commit.branch}-${run.id", &vars()),
            "${commit.branch}-${run.id"
        );
    }

    #[test]
    fn non_ascii_text_around_variables_is_kept() {
        assert_eq!(
            interpolate("héllo ${commit.short} ✓", &vars()),
            "héllo 4f2a9c0 ✓"
        );
    }

    #[test]
    fn scan_reports_variable_offsets() {
        let pieces = scan("a ${x.y} $${y}");
        assert_eq!(
            pieces,
            vec![
                Piece::Text("a "),
                Piece::Var {
                    name: "x.y",
                    raw: "${x.y}",
                    offset: 2
                },
                Piece::Text(" "),
                Piece::Escaped,
                Piece::Text("y}"),
            ]
        );
    }
}
