//! What every part of a pipeline file's check shares: where diagnostics are collected and
//! the source they point into (`Ctx`), one key of a mapping (`Entry`), a stage as its check
//! left it (`Draft`), the names in a `needs` list, and suggestions for misspelt words. It
//! depends on none of the checks, so each of them (stages, kinds, environments, the graph)
//! uses it without leaning on the others.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::de::DeError;
use super::diagnostic::{nearest, Diagnostic};
use super::limits::{self, MAX_NAME_LEN};
use super::spec::EnvironmentSpec;
use super::vars::{scan, Piece, KNOWN_VARS};
use super::yaml::{join, Node, Pos, Spans};

/// Where diagnostics are collected, and the source they point into.
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    source: &'a str,
    pub diags: Vec<Diagnostic>,
    /// Names declared under top-level `vars:`, usable as `${var.NAME}`.
    pub declared_vars: Vec<String>,
    /// Environments declared under top-level `environments:`, which stage checks consult
    /// (read before the stages).
    pub environments: BTreeMap<String, EnvironmentSpec>,
    /// Where each scalar's source ends, so `${...}` is searched only in its own text.
    pub spans: Spans,
    /// Line starts and char offsets of `source`, built once: positions are looked up,
    /// never counted from the start of the file again.
    index: Option<SourceIndex>,
    /// Byte offsets of the `${...}` of a scalar already searched, by its start: an alias
    /// copied many times is searched once.
    located: HashMap<usize, Vec<Option<usize>>>,
    /// `var.NAME` of `declared_vars`, rebuilt when that list grows.
    declared: (usize, HashSet<String>),
    /// Comparisons left for "did you mean" over declared variables: with thousands of
    /// variables and thousands of misspelt uses, suggestions would be quadratic.
    suggest_budget: usize,
}

/// Comparisons a file may spend on suggesting declared variables.
const SUGGEST_BUDGET: usize = 20_000;

/// Lets a call site add a hint to the diagnostic it just reported.
pub(crate) struct Reported<'d>(&'d mut Diagnostic);

impl Reported<'_> {
    pub fn hint(self, hint: impl Into<String>) {
        self.0.hint = Some(hint.into());
    }

    pub fn hint_opt(self, hint: Option<String>) {
        self.0.hint = hint;
    }
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a str, source: &'a str) -> Self {
        Ctx {
            file,
            source,
            diags: Vec::new(),
            declared_vars: Vec::new(),
            environments: BTreeMap::new(),
            spans: Spans::new(),
            index: None,
            located: HashMap::new(),
            declared: (0, HashSet::new()),
            suggest_budget: SUGGEST_BUDGET,
        }
    }

    pub fn error(&mut self, pos: Pos, field: &str, message: impl Into<String>) -> Reported<'_> {
        self.diags.push(Diagnostic {
            file: self.file.to_owned(),
            line: pos.line,
            column: pos.column,
            field: if field.is_empty() {
                "(file)".to_owned()
            } else {
                field.to_owned()
            },
            message: message.into(),
            hint: None,
        });
        let last = self.diags.len() - 1;
        Reported(&mut self.diags[last])
    }

    /// "must be a list of strings, not a string".
    pub fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) -> Reported<'_> {
        let message = if node.is_null() {
            format!("must be {expected}, but is empty")
        } else {
            format!("must be {expected}, not {}", node.describe())
        };
        self.error(node.pos(), field, message)
    }

    /// The entries of a mapping with usable keys, first occurrence of each key only;
    /// duplicates and odd keys are reported. `what` names a key in messages ("key").
    pub fn entries<'n>(
        &mut self,
        entries: &'n [(Node, Node)],
        field: &str,
        what: &str,
    ) -> Vec<Entry<'n>> {
        let mut out: Vec<Entry<'n>> = Vec::new();
        // First line of each name: a mapping of 50,000 keys is checked in linear time.
        let mut seen: HashMap<&'n str, usize> = HashMap::new();
        for (key, value) in entries {
            let Some(name) = key.as_text() else {
                let message = match key {
                    Node::Scalar { .. } => format!("{what} name is empty"),
                    other => format!("a {what} must be a plain name, not {}", other.describe()),
                };
                self.error(key.pos(), field, message);
                continue;
            };
            if let Err(e) = limits::check_len(name, MAX_NAME_LEN) {
                let shown = limits::excerpt(name);
                self.error(key.pos(), &join(field, &shown), format!("this {what} name {e}"));
                continue;
            }
            let key_field = join(field, name);
            if let Some(line) = seen.get(name) {
                self.error(
                    key.pos(),
                    &key_field,
                    format!("duplicate {what} `{name}` (first defined on line {line})"),
                );
                continue;
            }
            seen.insert(name, key.pos().line);
            out.push(Entry {
                name,
                key,
                value,
                field: key_field,
            });
        }
        out
    }

    /// Reports a key outside `known`, suggesting the nearest known one, which it returns
    /// so that a "missing" error for that same key can be left out as noise.
    pub fn unknown_key(
        &mut self,
        entry: &Entry<'_>,
        known: &[&'static str],
    ) -> Option<&'static str> {
        let near = suggestion(entry.name, known.iter().copied());
        let hint = near.map(|k| format!("did you mean `{k}`?"));
        self.error(entry.key.pos(), &entry.field, "unknown key")
            .hint_opt(hint);
        near
    }

    /// Reports an error from `de::from_node`, at `pos` and `field` if it has no place of
    /// its own. An unknown key gets the nearest of the accepted ones and `also_known`.
    pub fn de_error(&mut self, e: DeError, pos: Pos, field: &str, also_known: &[&str]) {
        let pos = e.pos.unwrap_or(pos);
        let field = e.field.clone().unwrap_or_else(|| field.to_string());
        if e.is_unknown_key() {
            let key = field.rsplit('.').next().unwrap_or_default();
            let known = e.expected.iter().chain(also_known).copied();
            let hint = suggestion(key, known).map(|k| format!("did you mean `{k}`?"));
            self.error(pos, &field, "unknown key").hint_opt(hint);
        } else {
            self.error(pos, &field, e.message).hint_opt(e.hint);
        }
    }

    /// Reports every `${name}` in `value` that is not a known variable, at its own line.
    pub fn check_vars(&mut self, value: &Node, text: &str, field: &str) {
        let pieces: Vec<(&str, Option<&str>)> = scan(text)
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Var { raw, name, .. } => Some((raw, Some(name))),
                Piece::Unclosed { raw, .. } => Some((raw.get(..2).unwrap_or(raw), None)),
                _ => None,
            })
            .collect();
        if pieces.is_empty() {
            return;
        }
        let raws: Vec<&str> = pieces.iter().map(|(raw, _)| *raw).collect();
        let offsets = self.locate(value.pos().index, &raws);
        if self.declared.0 != self.declared_vars.len() {
            let set = self.declared_vars.iter().map(|v| format!("var.{v}")).collect();
            self.declared = (self.declared_vars.len(), set);
        }
        for ((raw, name), offset) in pieces.into_iter().zip(offsets) {
            let pos = offset.map_or(value.pos(), |off| self.pos_at(off));
            match name {
                Some(name) if KNOWN_VARS.contains(&name) || self.declared.1.contains(name) => {}
                Some(name) => {
                    let cost = KNOWN_VARS.len() + self.declared_vars.len();
                    let near = if self.spend_suggestions(cost) {
                        let declared: Vec<String> = self.declared_vars.iter().map(|v| format!("var.{v}")).collect();
                        let known = KNOWN_VARS.iter().copied().chain(declared.iter().map(String::as_str));
                        suggestion(name, known).map(str::to_owned)
                    } else {
                        None
                    };
                    let hint = match near {
                        Some(near) => format!("did you mean `${{{near}}}`?"),
                        None => format!(
                            "known variables: {}; write `$${{` for a literal `${{`",
                            KNOWN_VARS.join(", ")
                        ),
                    };
                    self.error(pos, field, format!("unknown variable `{}`", limits::excerpt(raw)))
                        .hint(hint);
                }
                None => {
                    self.error(pos, field, "`${` is not closed by `}`")
                        .hint("write `$${` for a literal `${`");
                }
            }
        }
    }

    /// Whether a suggestion among `candidates` names may still be computed: the file's
    /// budget of comparisons is shared by every "did you mean" over user-sized lists.
    pub fn spend_suggestions(&mut self, candidates: usize) -> bool {
        if candidates > self.suggest_budget {
            return false;
        }
        self.suggest_budget -= candidates;
        true
    }

    /// Byte offsets in the source of each of `raws`, in order, within the scalar that
    /// starts at char `start`. Searched only inside the scalar's own span, and given up at
    /// the first miss (an escape such as `"\x24{...}"` has no literal text to find), so
    /// the work is linear in the scalar's length.
    fn locate(&mut self, start: usize, raws: &[&str]) -> Vec<Option<usize>> {
        if let Some(found) = self.located.get(&start).filter(|f| f.len() == raws.len()) {
            return found.clone();
        }
        let Some(&end) = self.spans.get(&start) else {
            return vec![None; raws.len()];
        };
        let index = self.index.get_or_insert_with(|| SourceIndex::new(self.source));
        let mut cursor = index.byte_of_char(self.source, start);
        let end = index.byte_of_char(self.source, end);
        let mut out = Vec::with_capacity(raws.len());
        for raw in raws {
            let at = if cursor <= end { find_unescaped(self.source, cursor, end, raw) } else { None };
            match at {
                Some(at) => cursor = at + raw.len(),
                None => cursor = end + 1,
            }
            out.push(at);
        }
        self.located.insert(start, out.clone());
        out
    }

    fn pos_at(&mut self, byte: usize) -> Pos {
        let index = self.index.get_or_insert_with(|| SourceIndex::new(self.source));
        index.pos_at(self.source, byte)
    }
}

/// The next occurrence of `raw` in `source[from..end]` that is not escaped as `$${`.
fn find_unescaped(source: &str, mut from: usize, end: usize, raw: &str) -> Option<usize> {
    while let Some(found) = source.get(from..end)?.find(raw) {
        let at = from + found;
        if at > 0 && source.as_bytes()[at - 1] == b'$' {
            from = at + 1;
            continue;
        }
        return Some(at);
    }
    None
}

/// Chars between checkpoints of `SourceIndex`.
const CHECKPOINT: usize = 256;

/// Turns byte offsets into line, column and char index (and char index into bytes) in
/// logarithmic time, for files of any size.
struct SourceIndex {
    ascii: bool,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// Byte offset of every `CHECKPOINT`th char (non-ASCII sources only).
    checkpoints: Vec<usize>,
}

impl SourceIndex {
    fn new(source: &str) -> Self {
        let ascii = source.is_ascii();
        let line_starts = std::iter::once(0)
            .chain(source.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i + 1))
            .collect();
        let checkpoints = if ascii {
            Vec::new()
        } else {
            source.char_indices().step_by(CHECKPOINT).map(|(b, _)| b).collect()
        };
        SourceIndex { ascii, line_starts, checkpoints }
    }

    fn byte_of_char(&self, source: &str, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(source.len());
        }
        let k = char_index / CHECKPOINT;
        let Some(&base) = self.checkpoints.get(k) else { return source.len() };
        source[base..].char_indices().nth(char_index - k * CHECKPOINT).map_or(source.len(), |(b, _)| base + b)
    }

    fn char_of_byte(&self, source: &str, byte: usize) -> usize {
        if self.ascii {
            return byte;
        }
        let k = self.checkpoints.partition_point(|&b| b <= byte).saturating_sub(1);
        k * CHECKPOINT + source[self.checkpoints[k]..byte].chars().count()
    }

    fn pos_at(&self, source: &str, byte: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= byte);
        let line_start = self.line_starts[line - 1];
        let index = self.char_of_byte(source, byte);
        Pos { line, column: index - self.char_of_byte(source, line_start) + 1, index }
    }
}

/// One usable key of a mapping and its value.
pub(crate) struct Entry<'n> {
    pub name: &'n str,
    pub key: &'n Node,
    pub value: &'n Node,
    /// Field path of this entry (`stages.build.image`).
    pub field: String,
}

/// Common misspellings and other CI systems' words for our keys, which edit distance
/// alone would not connect (`script` is GitLab's `commands`).
const ALIASES: &[(&str, &str)] = &[
    ("script", "commands"),
    ("scripts", "commands"),
    ("run", "commands"),
    ("steps", "commands"),
    ("cmd", "commands"),
    ("command", "commands"),
    ("depends_on", "needs"),
    ("dependencies", "needs"),
    ("after", "needs"),
    ("requires", "needs"),
    ("environment", "env"),
    ("variables", "env"),
    ("branches", "branch"),
    ("retry", "retries"),
    ("stage", "stages"),
    ("jobs", "stages"),
    ("steps", "stages"),
];

/// The suggestion for a misspelt word among `known`: an alias first, else the nearest.
pub(crate) fn suggestion<'k>(
    word: &str,
    known: impl Iterator<Item = &'k str> + Clone,
) -> Option<&'k str> {
    let alias = ALIASES
        .iter()
        .filter(|(from, _)| from.eq_ignore_ascii_case(word))
        .find_map(|(_, to)| known.clone().find(|k| k == to));
    alias.or_else(|| nearest(word, known))
}


/// A stage as validation left it: its Plan fields (needs resolved later) and its needs
/// as written (`None` when absent).
pub(crate) struct Draft {
    pub plan: super::plan::StagePlan,
    pub needs: Option<Vec<NeedRef>>,
    /// Where the stage's name is written.
    pub pos: Pos,
}


/// One name in a `needs` list, where it was written.
#[derive(Debug, Clone)]
pub(crate) struct NeedRef {
    pub name: String,
    pub pos: Pos,
    pub field: String,
}


/// Environment, service and app names become parts of Docker object names and aliases.
pub(crate) fn object_name(ctx: &mut Ctx<'_>, pos: Pos, field: &str, what: &str, name: &str) {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        ctx.error(pos, field, format!("`{name}` is not a valid {what} name"))
            .hint("use lowercase letters, digits and `-` (at most 40 characters)");
    }
}
