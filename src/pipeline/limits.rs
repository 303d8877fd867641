//! Every bound Gantry puts on untrusted text, in one place: a pipeline file arrives with
//! every push, so reading it must stay fast and small whatever it holds. The README's
//! "Limits" subsection lists these same numbers; change both together.

use std::time::Duration;

/// Largest pipeline file read. Real pipelines are a few KiB; validation is linear, so a
/// file this size still validates in milliseconds.
pub const MAX_PIPELINE_BYTES: usize = 1024 * 1024;
/// Largest operator config file read (trusted, but read by the same parser).
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Deepest nesting of mappings and lists, counted after aliases are expanded (an alias
/// nests its anchor's whole tree where it stands). Pipelines need about 8; the bound keeps
/// every recursive walk of the tree far from the stack's end.
pub const MAX_DEPTH: usize = 64;
/// Most YAML nodes (scalars, lists, mappings) after alias expansion: a few aliases of
/// aliases would otherwise expand to billions of nodes ("billion laughs").
pub const MAX_NODES: usize = 500_000;
/// Most scalar text after alias expansion, in bytes: an alias of a long string repeated
/// is the other way to blow up memory.
pub const MAX_EXPANDED_BYTES: usize = 8 * 1024 * 1024;
/// Longest name (stage, environment, variable, service, key): names appear in
/// messages, container names and labels.
pub const MAX_NAME_LEN: usize = 128;
/// Longest word for which "did you mean" is computed: edit distance costs the product
/// of the lengths, and nobody mistypes a 100-character key.
pub const MAX_SUGGEST_LEN: usize = 32;
/// Longest branch glob (`when.branch`, a project's `branches:`): globs become regexes.
pub const MAX_GLOB_LEN: usize = 256;
/// Longest APM selector (`http_requests_total{code=~"5.."}`), regexes included.
pub const MAX_SELECTOR_LEN: usize = 4096;
/// Longest regex in an APM selector (`code=~"5.."`).
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled size of one regex (regex's own `size_limit`): a short pattern with counted
/// repetitions (`(a{100}){100}`) can still compile to something huge.
pub const MAX_REGEX_COMPILED: usize = 1024 * 1024;
/// Longest stage timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest approval expiry, and the longest of any other duration in a pipeline.
pub const MAX_DURATION: Duration = Duration::from_secs(90 * 24 * 3600);

/// Largest latency limit of a threshold (`p(95)<...`), in ms: a week, the longest timeout.
pub const MAX_DURATION_LIMIT_MS: f64 = MAX_TIMEOUT.as_secs() as f64 * 1000.0;
/// Largest count, byte or rate limit of a threshold: beyond it a limit limits nothing.
pub const MAX_NUMBER_LIMIT: f64 = 1e15;

/// Highest request rate of a load stage (`rate`, ramp `target`), per second.
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// Why a bounded value was refused; the message reads after `field: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("is {len} characters long; at most {max} are allowed")]
    TooLong { len: usize, max: usize },
    #[error("`{pattern}` is not a valid branch pattern: {reason}")]
    BadGlob { pattern: String, reason: String },
    #[error("is not a valid regex: {reason}")]
    BadRegex { reason: String },
}

/// Refuses `text` longer than `max` characters (counted cheaply as bytes first).
pub fn check_len(text: &str, max: usize) -> Result<(), LimitError> {
    if text.len() <= max {
        return Ok(());
    }
    let len = text.chars().count();
    if len > max {
        return Err(LimitError::TooLong { len, max });
    }
    Ok(())
}

/// A branch glob, length-checked and compiled. Compiled through a `GlobSet`, whose build
/// returns an error where `Glob::compile_matcher` would panic (a regex over its size
/// limit), so that a glob that validated can never fail at run time.
pub fn branch_glob(pattern: &str) -> Result<globset::GlobSet, LimitError> {
    check_len(pattern, MAX_GLOB_LEN)?;
    glob(globset::GlobBuilder::new(pattern), pattern)
}

/// Compiles one glob built by `builder` (for callers that set options, such as
/// `.dockerignore`'s `literal_separator`), without the panic of `compile_matcher`.
pub fn glob(builder: globset::GlobBuilder<'_>, pattern: &str) -> Result<globset::GlobSet, LimitError> {
    let bad = |e: globset::Error| LimitError::BadGlob { pattern: pattern.to_owned(), reason: e.kind().to_string() };
    let glob = builder.build().map_err(bad)?;
    globset::GlobSetBuilder::new().add(glob).build().map_err(bad)
}

/// A regex, length-checked and compiled within `MAX_REGEX_COMPILED`.
pub fn regex(pattern: &str) -> Result<regex::Regex, LimitError> {
    check_len(pattern, MAX_REGEX_LEN)?;
    regex::RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_COMPILED)
        .dfa_size_limit(MAX_REGEX_COMPILED)
        .build()
        .map_err(|e| LimitError::BadRegex { reason: e.to_string() })
}

/// At most the first 40 chars of `text`, marked when cut: user text quoted in a
/// message must not make the message as long as the file.
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    const SHOWN: usize = 40;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]).into(),
        None => text.into(),
    }
}

/// Reads at most `max` bytes of the file at `path`, as text: a bigger file is refused
/// without reading it all (it might be a device or a pipe that never ends).
pub fn read_bounded(path: &std::path::Path, max: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(max as u64 + 1).read_to_end(&mut bytes)?;
    if bytes.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {} KiB, the limit", max / 1024),
        ));
    }
    String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A duration above its maximum (maxima are whole days; humantime would write 90 days
/// as "2months 28days 14h...").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at most {max_days} days ({max_days}d), not {}", humantime::format_duration(*given))]
pub struct TooLong {
    pub max_days: u64,
    pub given: Duration,
}

/// Refuses a duration above `max`, in words the user can act on.
pub fn check_duration(d: Duration, max: Duration) -> Result<(), TooLong> {
    if d > max {
        return Err(TooLong { max_days: max.as_secs() / 86_400, given: d });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_glob_is_refused_before_it_is_compiled() {
        let long = "a".repeat(MAX_GLOB_LEN + 1);
        assert_eq!(branch_glob(&long).unwrap_err(), LimitError::TooLong { len: MAX_GLOB_LEN + 1, max: MAX_GLOB_LEN });
        assert!(branch_glob("release/*").unwrap().is_match("release/1.2"));
    }

    #[test]
    fn a_glob_whose_regex_is_too_big_is_an_error_not_a_panic() {
        // Within the length limit for `glob`'s callers that have none of their own.
        // `compile_matcher` panics on this one ("regex compilation shouldn't fail").
        let pattern = "?".repeat(200_000);
        assert!(matches!(glob(globset::GlobBuilder::new(&pattern), &pattern), Err(LimitError::BadGlob { .. })));
    }

    #[test]
    fn a_short_regex_that_compiles_huge_is_refused() {
        assert!(matches!(regex("(a{1000}){1000}"), Err(LimitError::BadRegex { .. })));
        assert!(regex("5..").unwrap().is_match("503"));
        assert!(matches!(regex(&"a".repeat(MAX_REGEX_LEN + 1)), Err(LimitError::TooLong { .. })));
    }

    #[test]
    fn durations_over_the_maximum_are_refused() {
        assert!(check_duration(Duration::from_secs(3600), MAX_TIMEOUT).is_ok());
        let e = check_duration(MAX_TIMEOUT + Duration::from_secs(1), MAX_TIMEOUT).unwrap_err();
        assert!(e.to_string().starts_with("must be at most 7 days (7d)"), "{e}");
    }
}
