//! A YAML document as a tree that remembers where every node came from. serde stops at the
//! first error and forgets positions; validation needs both all errors and exact positions.

use std::collections::HashMap;

use yaml_rust2::parser::Parser;
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};
use yaml_rust2::Event;

/// A position in the source: 1-based line and column, plus the char index so that text
/// can be searched from a node onward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub index: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        // yaml-rust2 counts lines from 1 and columns from 0.
        Pos {
            line: m.line(),
            column: m.col() + 1,
            index: m.index(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar {
        text: String,
        plain: bool,
        pos: Pos,
    },
    Seq {
        items: Vec<Node>,
        pos: Pos,
    },
    Map {
        entries: Vec<(Node, Node)>,
        pos: Pos,
    },
}

impl Node {
    /// The value of `key` in a mapping node (`None` for a missing key or another node).
    pub fn child(&self, key: &str) -> Option<&Node> {
        self.entry(key).map(|(_, v)| v)
    }

    /// The line `key` is written on in a mapping node.
    pub fn key_line(&self, key: &str) -> Option<usize> {
        self.entry(key).map(|(k, _)| k.pos().line)
    }

    fn entry(&self, key: &str) -> Option<&(Node, Node)> {
        match self {
            Node::Map { entries, .. } => entries.iter().find(|(k, _)| k.as_text() == Some(key)),
            _ => None,
        }
    }

    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. } | Node::Seq { pos, .. } | Node::Map { pos, .. } => *pos,
        }
    }

    /// `~`, `null` or nothing at all, unquoted: YAML's null.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Scalar { text, plain: true, .. }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar that is not null. Numbers and booleans count: their source
    /// text is the string the user meant (`1.50` stays `1.50`).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    /// A scalar that YAML reads as a string (not a number, boolean or null).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar {
                text, plain: false, ..
            } => Some(text),
            Node::Scalar {
                text, plain: true, ..
            } if self.describe() == "a string" => Some(text),
            _ => None,
        }
    }

    /// "a string", "a list", ...: how the user's value reads, for "must be X, not Y".
    pub fn describe(&self) -> &'static str {
        match self {
            Node::Seq { .. } => "a list",
            Node::Map { .. } => "a mapping",
            Node::Scalar { plain: false, .. } => "a string",
            Node::Scalar { .. } if self.is_null() => "empty",
            Node::Scalar { text, .. } => {
                if matches!(
                    text.as_str(),
                    "true" | "True" | "TRUE" | "false" | "False" | "FALSE"
                ) {
                    "a boolean"
                } else if looks_numeric(text) {
                    "a number"
                } else {
                    "a string"
                }
            }
        }
    }
}

fn looks_numeric(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    t.parse::<f64>().is_ok()
        || matches!(t, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN")
        || (t.starts_with("0x") && u64::from_str_radix(&t[2..], 16).is_ok())
        || (t.starts_with("0o") && u64::from_str_radix(&t[2..], 8).is_ok())
}

/// Why the text is not a usable YAML document.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    /// The field being read when it went wrong; empty at the top.
    pub field: String,
    pub message: String,
    /// The YAML itself is malformed (rather than well-formed but not one document).
    pub malformed: bool,
}

use super::limits::{MAX_DEPTH, MAX_EXPANDED_BYTES, MAX_NODES};

/// Parses one YAML document. `Ok(None)` means the file holds no document (empty or only
/// comments).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    parse_with_spans(text).map(|(root, _)| root)
}

/// Where each scalar's source text ends (char index), by the char index where it starts:
/// what lets `${...}` positions be found by searching only the scalar's own text.
pub type Spans = HashMap<usize, usize>;

/// `parse`, plus the source span of every scalar written in the file (not of alias
/// copies, whose text lives at the anchor).
pub fn parse_with_spans(text: &str) -> Result<(Option<Node>, Spans), SyntaxError> {
    let mut b = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        bytes: 0,
        stored: 0,
        spans: HashMap::new(),
        open_scalar: None,
    };
    let root = b.document()?;
    Ok((root, b.spans))
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    /// Each anchor's tree with its size, so that an alias is charged its full expanded
    /// size and height without walking the tree again (a recursive walk of an expanded
    /// tree is exactly what must not happen before its depth is known).
    anchors: HashMap<usize, Anchored>,
    /// Nodes and scalar bytes built so far, aliases counted as expanded.
    nodes: usize,
    bytes: usize,
    /// Nodes held as copies in `anchors`: anchors nested in anchors are each copied, so
    /// the copies need a budget of their own.
    stored: usize,
    spans: Spans,
    /// Start of the last scalar read, whose span ends where the next event starts.
    open_scalar: Option<usize>,
}

struct Anchored {
    node: Node,
    nodes: usize,
    bytes: usize,
    /// Levels of nesting below the node itself (0 for a scalar).
    height: usize,
}

/// A node just built, with its height for the anchor table.
struct Built {
    node: Node,
    height: usize,
}

fn too_big(pos: Pos, field: &str, what: String) -> SyntaxError {
    SyntaxError { pos, field: field.to_owned(), message: what, malformed: false }
}

impl Builder<'_> {
    fn next(&mut self, field: &str) -> Result<(Event, Marker), SyntaxError> {
        let (ev, mark) = self.parser.next_token().map_err(|e| syntax(&e, field))?;
        if let Some(start) = self.open_scalar.take() {
            self.spans.insert(start, mark.index());
        }
        if matches!(ev, Event::Scalar(..)) {
            self.open_scalar = Some(mark.index());
        }
        Ok((ev, mark))
    }

    fn document(&mut self) -> Result<Option<Node>, SyntaxError> {
        let mut root = None;
        loop {
            let (ev, mark) = self.next("")?;
            match ev {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart => {
                    let (ev, mark) = self.next("")?;
                    let node = self.node(ev, mark, "", 0)?.node;
                    if root.is_some() {
                        return Err(SyntaxError {
                            pos: node.pos(),
                            field: String::new(),
                            message: "a pipeline file holds one YAML document, \
                                      but a second one starts here"
                                .into(),
                            malformed: false,
                        });
                    }
                    root = Some(node);
                }
                other => {
                    return Err(SyntaxError {
                        pos: mark.into(),
                        field: String::new(),
                        message: format!("unexpected YAML event {other:?}"),
                        malformed: true,
                    })
                }
            }
        }
    }

    /// Builds the node starting with `ev` at nesting `depth`. Recursion here follows the
    /// nesting as written, which `MAX_DEPTH` bounds before it can go deeper.
    fn node(&mut self, ev: Event, mark: Marker, field: &str, depth: usize) -> Result<Built, SyntaxError> {
        let pos = Pos::from(mark);
        self.nodes += 1;
        if depth > MAX_DEPTH {
            return Err(too_big(pos, field, format!("nesting is deeper than {MAX_DEPTH} levels")));
        }
        if self.nodes > MAX_NODES {
            return Err(too_big(pos, field, format!("the document has more than {MAX_NODES} values (aliases counted as expanded)")));
        }
        let start = (self.nodes - 1, self.bytes);
        let (node, height, anchor) = match ev {
            Event::Scalar(text, style, anchor, _tag) => {
                self.bytes += text.len();
                self.check_bytes(pos, field)?;
                (Node::Scalar { text, plain: style == TScalarStyle::Plain, pos }, 0, anchor)
            }
            Event::Alias(id) => return self.alias(id, pos, field, depth),
            Event::SequenceStart(anchor, _tag) => {
                let (node, height) = self.sequence(pos, field, depth)?;
                (node, height, anchor)
            }
            Event::MappingStart(anchor, _tag) => {
                let (node, height) = self.mapping(pos, field, depth)?;
                (node, height, anchor)
            }
            other => {
                return Err(SyntaxError {
                    pos,
                    field: field.to_owned(),
                    message: format!("unexpected YAML event {other:?}"),
                    malformed: true,
                })
            }
        };
        if anchor > 0 {
            // What this subtree cost, aliases inside it included: what each alias of it
            // will cost again.
            let nodes = self.nodes - start.0;
            let bytes = self.bytes - start.1;
            self.stored += nodes;
            if self.stored > MAX_NODES {
                return Err(too_big(pos, field, format!("anchors hold more than {MAX_NODES} values in all")));
            }
            self.anchors.insert(anchor, Anchored { node: node.clone(), nodes, bytes, height });
        }
        Ok(Built { node, height })
    }

    /// An alias: a copy of its anchor's subtree, counted as if written out again.
    fn alias(&mut self, id: usize, pos: Pos, field: &str, depth: usize) -> Result<Built, SyntaxError> {
        let Some(target) = self.anchors.get(&id) else {
            return Err(SyntaxError {
                pos,
                field: field.to_owned(),
                message: "alias refers to an unknown anchor".into(),
                malformed: true,
            });
        };
        // Checked before the copy is made: the copy is what would be too big.
        if depth + target.height > MAX_DEPTH {
            return Err(too_big(pos, field, format!("this alias nests deeper than {MAX_DEPTH} levels once expanded")));
        }
        self.nodes += target.nodes - 1;
        self.bytes += target.bytes;
        if self.nodes > MAX_NODES {
            return Err(too_big(pos, field, format!("aliases expand the document to more than {MAX_NODES} values")));
        }
        self.check_bytes(pos, field)?;
        let (node, height) = (target.node.clone(), target.height);
        return Ok(Built { node: with_pos(node, pos), height });
    }

    /// A sequence's items, up to its end; returns it and its height.
    fn sequence(&mut self, pos: Pos, field: &str, depth: usize) -> Result<(Node, usize), SyntaxError> {
        let mut items = Vec::new();
        let mut height = 0;
        loop {
            let item_field = format!("{field}[{}]", items.len());
            let (ev, mark) = self.next(&item_field)?;
            if ev == Event::SequenceEnd {
                break;
            }
            let item = self.node(ev, mark, &item_field, depth + 1)?;
            height = height.max(item.height + 1);
            items.push(item.node);
        }
        Ok((Node::Seq { items, pos }, height))
    }

    /// A mapping's entries, up to its end, merge keys applied; returns it and its height.
    fn mapping(&mut self, pos: Pos, field: &str, depth: usize) -> Result<(Node, usize), SyntaxError> {
        let mut entries: Vec<(Node, Node)> = Vec::new();
        let mut height = 0;
        loop {
            // The scanner reads ahead, so a mistake in a value (`image: a: b`)
            // surfaces while looking for the next key: blame the value's key if
            // the error is on the value's line.
            let (ev, mark) = self.next(field).map_err(|mut e| {
                if let Some((k, v)) = entries.last() {
                    if v.pos().line == e.pos.line {
                        e.field = join(field, k.as_text().unwrap_or("?"));
                    }
                }
                e
            })?;
            if ev == Event::MappingEnd {
                break;
            }
            let key = self.node(ev, mark, field, depth + 1)?;
            let key_field = join(field, key.node.as_text().unwrap_or("?"));
            let (ev, mark) = self.next(&key_field)?;
            let value = self.node(ev, mark, &key_field, depth + 1)?;
            height = height.max(key.height + 1).max(value.height + 1);
            let (key, mut value) = (key.node, value.node);
            // `image:` with nothing after it: the parser places the empty value
            // wherever the next token is, often the next line; the key is where
            // the user should look.
            if let Node::Scalar {
                text,
                plain: true,
                pos,
            } = &mut value
            {
                if text.is_empty() {
                    *pos = key.pos();
                }
            }
            entries.push((key, value));
        }
        // A block mapping's start marker lies after its first key; the first key
        // is where the user sees the mapping begin.
        let pos = match entries.first() {
            Some((k, _)) if k.pos().index < pos.index => k.pos(),
            _ => pos,
        };
        Ok((Node::Map { entries: merge_keys(entries), pos }, height))
    }

    fn check_bytes(&self, pos: Pos, field: &str) -> Result<(), SyntaxError> {
        if self.bytes > MAX_EXPANDED_BYTES {
            return Err(too_big(pos, field, format!("the document holds more than {} MiB of text (aliases counted as expanded)", MAX_EXPANDED_BYTES >> 20)));
        }
        Ok(())
    }
}

/// `<<: *defaults` (YAML merge keys) is how pipeline files share stage settings: the
/// merged mapping's entries count unless the mapping sets the same key itself.
fn merge_keys(entries: Vec<(Node, Node)>) -> Vec<(Node, Node)> {
    let is_merge = |k: &Node| matches!(k, Node::Scalar { text, plain: true, .. } if text == "<<");
    if !entries.iter().any(|(k, _)| is_merge(k)) {
        return entries;
    }
    // Keys already present, so that a merge of many keys stays linear.
    let mut taken: std::collections::HashSet<String> = entries
        .iter()
        .filter(|(k, _)| !is_merge(k))
        .filter_map(|(k, _)| k.as_text().map(str::to_owned))
        .collect();
    let mut out: Vec<(Node, Node)> = Vec::new();
    for (k, v) in entries {
        if !is_merge(&k) {
            out.push((k, v));
            continue;
        }
        let sources = match v {
            Node::Seq { items, .. } => items,
            Node::Map { .. } => vec![v],
            // Not mergeable: keep it, so validation reports `<<` as an unknown key.
            other => {
                out.push((k, other));
                continue;
            }
        };
        for source in sources {
            let Node::Map {
                entries: merged, ..
            } = source
            else {
                continue;
            };
            for (mk, mv) in merged {
                let name = mk.as_text().unwrap_or_default().to_owned();
                if taken.insert(name) {
                    out.push((mk, mv));
                }
            }
        }
    }
    out
}

/// An alias node reads as if written where the alias is (its children keep the anchor's
/// positions, which is where their text really is).
fn with_pos(node: Node, at: Pos) -> Node {
    match node {
        Node::Scalar { text, plain, .. } => Node::Scalar {
            text,
            plain,
            pos: at,
        },
        Node::Seq { items, .. } => Node::Seq { items, pos: at },
        Node::Map { entries, .. } => Node::Map { entries, pos: at },
    }
}

/// `parent.key`, or just `key` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn syntax(e: &ScanError, field: &str) -> SyntaxError {
    SyntaxError {
        pos: (*e.marker()).into(),
        field: field.to_owned(),
        message: e.info().to_owned(),
        malformed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_entries(node: &Node) -> &[(Node, Node)] {
        match node {
            Node::Map { entries, .. } => entries,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_are_one_based_and_point_at_keys_and_values() {
        let root = parse("# comment\nname: hello\nstages:\n  build: {image: x}\n")
            .unwrap()
            .unwrap();
        assert_eq!(root.pos().line, 2);
        let entries = map_entries(&root);
        let (k, v) = &entries[0];
        assert_eq!((k.pos().line, k.pos().column), (2, 1));
        assert_eq!((v.pos().line, v.pos().column), (2, 7));
        let stages = map_entries(&entries[1].1);
        assert_eq!((stages[0].0.pos().line, stages[0].0.pos().column), (4, 3));
        assert_eq!((stages[0].1.pos().line, stages[0].1.pos().column), (4, 10));
    }

    #[test]
    fn empty_and_comment_only_files_hold_no_document() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# nothing here\n\n").unwrap(), None);
    }

    #[test]
    fn syntax_error_carries_position_and_field() {
        let err = parse("stages:\n  build:\n    image: a: b\n").unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (3, 13));
        assert_eq!(err.field, "stages.build.image");
    }

    #[test]
    fn merge_keys_fill_in_without_overriding() {
        let root = parse("base: &b {image: x, retries: 1}\nst:\n  <<: *b\n  retries: 2\n")
            .unwrap()
            .unwrap();
        let st = &map_entries(&root)[1].1;
        let keys: Vec<_> = map_entries(st)
            .iter()
            .map(|(k, v)| (k.as_text().unwrap(), v.as_text().unwrap()))
            .collect();
        assert_eq!(keys, vec![("image", "x"), ("retries", "2")]);
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).is_err());
    }

    #[test]
    fn scalars_describe_their_yaml_type() {
        let root = parse("a: 1\nb: true\nc: '1'\nd: ~\ne: hi\nf: 1.5\n")
            .unwrap()
            .unwrap();
        let kinds: Vec<_> = map_entries(&root)
            .iter()
            .map(|(_, v)| v.describe())
            .collect();
        assert_eq!(
            kinds,
            [
                "a number",
                "a boolean",
                "a string",
                "empty",
                "a string",
                "a number"
            ]
        );
    }
}
