//! Secret masking for streamed output. Values are replaced by `***` even when a value
//! arrives split across chunks or spans several lines: text that could still be the start
//! of a secret is held back until the next chunk decides it.

/// The replacement for every secret value.
pub const MASK: &str = "***";

#[derive(Debug, Clone, Default)]
pub struct Masker {
    secrets: Vec<String>,
}

impl Masker {
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = values.into_iter().map(Into::into).filter(|s| !s.is_empty()).collect();
        // Also mask each line of a multi-line secret by itself: a program may print them
        // with other text between (or with \r\n line ends).
        let lines: Vec<String> = secrets
            .iter()
            .filter(|s| s.contains('\n'))
            .flat_map(|s| s.lines().map(|l| l.trim_end_matches('\r').to_string()).collect::<Vec<_>>())
            .filter(|l| l.trim().len() >= 4)
            .collect();
        secrets.extend(lines);
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        secrets.dedup();
        Masker { secrets }
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Masks every whole occurrence in `text`.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    /// A streaming masker for one output stream.
    pub fn stream(&self) -> MaskedStream<'_> {
        MaskedStream { masker: self, pending: String::new(), partial_utf8: Vec::new() }
    }

    /// How many trailing bytes of `text` could be the beginning of a secret.
    fn held_suffix(&self, text: &str) -> usize {
        let mut hold = 0;
        for s in &self.secrets {
            let max = (s.len() - 1).min(text.len());
            for k in (hold + 1..=max).rev() {
                let start = text.len() - k;
                if text.is_char_boundary(start) && s.as_bytes().starts_with(&text.as_bytes()[start..]) {
                    hold = k;
                    break;
                }
            }
        }
        hold
    }
}

/// Turns chunks of one stream into masked, complete lines.
pub struct MaskedStream<'a> {
    masker: &'a Masker,
    pending: String,
    /// The bytes of a UTF-8 character cut in two by a chunk boundary.
    partial_utf8: Vec<u8>,
}

/// A line longer than this is emitted in pieces rather than held forever.
const MAX_LINE: usize = 64 * 1024;

impl MaskedStream<'_> {
    /// Feeds a chunk; returns the complete lines (without their `\n`) that are now safe.
    pub fn push(&mut self, chunk: &str) -> Vec<String> {
        self.pending.push_str(chunk);
        self.pending = self.masker.mask(&self.pending);
        let safe = self.pending.len() - self.masker.held_suffix(&self.pending);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.pending[start..safe].find('\n') {
            let line = &self.pending[start..start + nl];
            lines.push(line.strip_suffix('\r').unwrap_or(line).to_string());
            start += nl + 1;
        }
        if safe - start > MAX_LINE {
            let mut cut = safe;
            while !self.pending.is_char_boundary(cut) {
                cut -= 1;
            }
            lines.push(self.pending[start..cut].to_string());
            start = cut;
        }
        self.pending.drain(..start);
        lines
    }

    /// Feeds raw bytes (as they come from a container), keeping a character split across
    /// chunks whole; invalid UTF-8 becomes U+FFFD.
    pub fn push_bytes(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut bytes = std::mem::take(&mut self.partial_utf8);
        bytes.extend_from_slice(chunk);
        let valid_up_to = match std::str::from_utf8(&bytes) {
            Ok(_) => bytes.len(),
            // An incomplete character at the very end: keep it for the next chunk.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => bytes.len(),
        };
        self.partial_utf8 = bytes.split_off(valid_up_to);
        self.push(&String::from_utf8_lossy(&bytes))
    }

    /// End of stream: whatever is left, masked, as a final line.
    pub fn finish(&mut self) -> Option<String> {
        let tail = std::mem::take(&mut self.partial_utf8);
        self.pending.push_str(&String::from_utf8_lossy(&tail));
        let rest = self.masker.mask(&std::mem::take(&mut self.pending));
        (!rest.is_empty()).then_some(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(masker: &Masker, chunks: &[&str]) -> Vec<String> {
        let mut s = masker.stream();
        let mut out: Vec<String> = chunks.iter().flat_map(|c| s.push(c)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn whole_secret_is_masked() {
        let m = Masker::new(["hunter2"]);
        assert_eq!(run(&m, &["token=hunter2 ok\n"]), vec!["token=*** ok"]);
    }

    #[test]
    fn secret_split_across_chunks_is_masked() {
        let m = Masker::new(["s3cr3t-value"]);
        assert_eq!(run(&m, &["a s3cr", "3t-va", "lue b\n"]), vec!["a *** b"]);
    }

    #[test]
    fn multi_line_secret_is_masked_whole_and_by_line() {
        let m = Masker::new(["-----BEGIN KEY-----\nabcdef123\n-----END KEY-----"]);
        // Whole in one chunk: one mask.
        assert_eq!(run(&m, &["x -----BEGIN KEY-----\nabcdef123\n-----END KEY----- y\n"]), vec!["x *** y"]);
        // Line by line: each line is masked as it comes; nothing of it gets out.
        let out = run(&m, &["x -----BEGIN KEY-----\n", "abcdef123\n", "-----END KEY----- y\n"]);
        assert_eq!(out, vec!["x ***", "***", "*** y"]);
        let out = run(&m, &["line: abcdef123\n"]);
        assert_eq!(out, vec!["line: ***"]);
    }

    #[test]
    fn text_that_only_starts_like_a_secret_is_released() {
        let m = Masker::new(["password"]);
        assert_eq!(run(&m, &["pass", "port\n"]), vec!["passport"]);
        assert_eq!(run(&m, &["pass"]), vec!["pass"]);
    }

    #[test]
    fn crlf_and_unterminated_last_line() {
        let m = Masker::new(["k"]);
        assert_eq!(run(&m, &["a\r\nb"]), vec!["a", "b"]);
    }

    #[test]
    fn utf8_character_split_across_chunks_survives() {
        let m = Masker::new(["zz"]);
        let mut s = m.stream();
        let bytes = "ünïcode\n".as_bytes();
        let mut out = s.push_bytes(&bytes[..1]);
        out.extend(s.push_bytes(&bytes[1..]));
        assert_eq!(out, vec!["ünïcode"]);
    }

    #[test]
    fn no_secrets_passes_lines_through() {
        let m = Masker::new(Vec::<String>::new());
        assert!(m.is_empty());
        assert_eq!(run(&m, &["one\ntwo\n"]), vec!["one", "two"]);
    }
}
