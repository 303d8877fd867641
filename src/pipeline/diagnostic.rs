//! What a user sees when a pipeline file is wrong: one `Diagnostic` per problem, each
//! naming file, line, column and field, so all of them can be fixed in one pass.

use std::fmt;
use std::path::PathBuf;

/// One problem in a pipeline file. Line and column are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field at fault (`stages.test.commands[1]`), or `(file)`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Why a pipeline file could not become a Plan.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot read pipeline file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PipelineError {
    /// The diagnostics of an invalid file (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PipelineError::Invalid(diags) => diags,
            PipelineError::Read { .. } => &[],
        }
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The nearest candidate to a misspelt `word`, if it is close enough that suggesting it
/// helps rather than confuses.
pub(crate) fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    use super::limits::MAX_SUGGEST_LEN;
    // Edit distance costs the product of the lengths: a 100,000-character name would
    // take seconds, and is no typo anyway.
    if word.len() > MAX_SUGGEST_LEN {
        return None;
    }
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word && c.len() <= MAX_SUGGEST_LEN)
        .map(|c| (c, close_enough(&lower, &c.to_ascii_lowercase())))
        .filter_map(|(c, score)| score.map(|s| (c, s)))
        // Highest similarity wins; ties go to the earlier candidate (the documented order).
        .fold(None, |best: Option<(&str, f64)>, (c, s)| match best {
            Some((_, bs)) if bs >= s => best,
            _ => Some((c, s)),
        })
        .map(|(c, _)| c)
}

/// Similarity score when `a` is plausibly a typo of `b`. Edit distance catches short
/// typos (`imgae`); Jaro-Winkler catches truncations (`retry` for `retries`).
fn close_enough(a: &str, b: &str) -> Option<f64> {
    if a == b {
        return Some(2.0);
    }
    let distance = strsim::damerau_levenshtein(a, b);
    let allowed = (a.chars().count().max(b.chars().count()) / 3).max(1);
    let jw = strsim::jaro_winkler(a, b);
    if distance <= allowed || (jw >= 0.88 && a.len() >= 3) {
        Some(jw + 1.0 / (1.0 + distance as f64))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGE_KEYS: &[&str] = &[
        "kind", "needs", "timeout", "retries", "when", "image", "commands", "env", "secrets",
    ];

    #[test]
    fn suggests_close_typos() {
        let near = |w| nearest(w, STAGE_KEYS.iter().copied());
        assert_eq!(near("imgae"), Some("image"));
        assert_eq!(near("comands"), Some("commands"));
        assert_eq!(near("neds"), Some("needs"));
        assert_eq!(near("retires"), Some("retries"));
        assert_eq!(near("time"), Some("timeout"));
        assert_eq!(near("timout"), Some("timeout"));
        assert_eq!(near("Image"), Some("image"));
        assert_eq!(near("secret"), Some("secrets"));
    }

    #[test]
    fn does_not_suggest_unrelated_words() {
        let near = |w| nearest(w, STAGE_KEYS.iter().copied());
        assert_eq!(near("foo"), None);
        assert_eq!(near("artifacts"), None);
        assert_eq!(near("x"), None);
    }

    #[test]
    fn display_puts_hint_on_its_own_line() {
        let d = Diagnostic {
            file: "bad.yml".into(),
            line: 5,
            column: 5,
            field: "stages.build.imgae".into(),
            message: "unknown key".into(),
            hint: Some("did you mean `image`?".into()),
        };
        assert_eq!(
            d.to_string(),
            "bad.yml:5:5: stages.build.imgae: unknown key\n  hint: did you mean `image`?"
        );
    }
}
