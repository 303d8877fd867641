//! Checks one stage: its name, its kind, and each of its keys. Every key is checked on
//! its own so one bad key never hides another.

use std::collections::BTreeMap;
use std::time::Duration;

use super::context::{Ctx, Draft, Entry, NeedRef};

use super::kind::{Kind, KindError};
use super::kind::COMMON_KEYS;
use super::plan::{StagePlan, When, DEFAULT_TIMEOUT};
use super::spec::Action;
use super::yaml::{Node, Pos};

/// Stage names end up in container names and labels, hence the conservative shape.
const MAX_STAGE_NAME: usize = 63;
/// More retries than this hides a broken stage rather than a flaky one.
const MAX_RETRIES: i64 = 10;

pub(crate) fn check(ctx: &mut Ctx<'_>, stage: &Entry<'_>) -> Draft {
    let field = stage.field.as_str();
    check_name(ctx, stage.name, stage.key.pos(), field);
    let mut plan = StagePlan {
        name: stage.name.to_owned(),
        image: String::new(),
        commands: Vec::new(),
        env: BTreeMap::new(),
        needs: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        retries: 0,
        when: None,
        secrets: Vec::new(),
        action: Action::Run,
        limits: Default::default(),
    };
    let mut draft = Draft {
        plan: plan.clone(),
        needs: None,
        pos: stage.key.pos(),
    };

    let entries = match stage.value {
        Node::Map { entries, .. } => ctx.entries(entries, field, "key"),
        // `build:` with nothing under it: report what it lacks, like any other stage.
        value if value.is_null() => Vec::new(),
        value => {
            ctx.wrong_type(value, field, "a mapping of stage settings")
                .hint("e.g. `build: {image: gantry/busybox, commands: [make]}`");
            return draft;
        }
    };

    let kind = match entries.iter().find(|e| e.name == "kind") {
        None => Some(Kind::Run),
        Some(e) => check_kind(ctx, e),
    };

    // Keys present, or suggested for a misspelt key (so `imgae` does not also produce
    // "image is missing").
    let mut seen = Vec::new();
    for entry in &entries {
        seen.push(entry.name);
        match entry.name {
            "kind" => {}
            // Whether each name is a stage is a whole-pipeline question: see `graph`.
            "needs" => draft.needs = names(ctx, entry),
            "timeout" => plan.timeout = timeout(ctx, entry).unwrap_or(DEFAULT_TIMEOUT),
            "retries" => plan.retries = retries(ctx, entry).unwrap_or(0),
            "when" => plan.when = when(ctx, entry),
            "secrets" => plan.secrets = secrets(ctx, entry),
            "limits" => plan.limits = super::resources::check(ctx, entry),
            // Kind-specific keys: only checked once the kind is known, since an
            // unsupported kind's keys would otherwise all read as unknown.
            key => match kind {
                Some(Kind::Run) if Kind::Run.accepts(key) => run_key(ctx, entry, &mut plan),
                Some(Kind::Run) => seen.extend(ctx.unknown_key(entry, &Kind::Run.all_keys().collect::<Vec<_>>())),
                // Other kinds read their settings all at once, below.
                Some(_) | None => {}
            },
        }
    }

    if let Some(kind) = kind.filter(|k| *k != Kind::Run) {
        plan.action = kind_settings(ctx, stage, kind, &entries).unwrap_or_default();
        draft.plan = plan;
        return draft;
    }

    if let Some(kind) = kind {
        for required in required_keys(kind) {
            if !seen.contains(required) {
                ctx.error(
                    stage.key.pos(),
                    &format!("{field}.{required}"),
                    "required key is missing",
                );
            }
        }
    }
    draft.plan = plan;
    draft
}

fn required_keys(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Run => &["image", "commands"],
        _ => &[],
    }
}

/// Reads the settings of a kind other than `run` with serde (see `de`): every key not
/// common to all stages belongs to the kind's settings struct.
fn kind_settings(ctx: &mut Ctx<'_>, stage: &Entry<'_>, kind: Kind, entries: &[Entry<'_>]) -> Option<Action> {
    use super::de::from_node;
    let own: Vec<(Node, Node)> = entries
        .iter()
        .filter(|e| !COMMON_KEYS.contains(&e.name))
        .map(|e| (e.key.clone(), e.value.clone()))
        .collect();
    let node = Node::Map { entries: own, pos: stage.key.pos() };
    let field = stage.field.as_str();
    let result = match kind {
        Kind::Run => return Some(Action::Run),
        Kind::Build => from_node(&node, field).map(Action::Build),
        Kind::Provision => from_node(&node, field).map(Action::Provision),
        Kind::Deploy => from_node(&node, field).map(Action::Deploy),
        Kind::Smoke => from_node(&node, field).map(Action::Smoke),
        Kind::Load => from_node(&node, field).map(Action::Load),
        Kind::Promote => from_node(&node, field).map(Action::Promote),
    };
    match result {
        Ok(action) => {
            // Image names and tags may use ${commit.short} and friends.
            for e in entries.iter().filter(|e| matches!(e.name, "tag" | "image")) {
                if let Some(text) = e.value.as_text() {
                    ctx.check_vars(e.value, text, &e.field);
                }
            }
            super::kind_check::check(ctx, stage, &action, entries);
            Some(action)
        }
        Err(e) => {
            ctx.de_error(e, stage.key.pos(), field, COMMON_KEYS);
            None
        }
    }
}

/// Keys of the `run` kind.
fn run_key(ctx: &mut Ctx<'_>, entry: &Entry<'_>, plan: &mut StagePlan) {
    match entry.name {
        "image" => plan.image = image(ctx, entry).unwrap_or_default(),
        "commands" => plan.commands = commands(ctx, entry),
        "env" => plan.env = env(ctx, entry),
        _ => {}
    }
}

fn check_name(ctx: &mut Ctx<'_>, name: &str, pos: Pos, field: &str) {
    let bad: Vec<char> = name
        .chars()
        .filter(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .collect();
    if name.is_empty() {
        ctx.error(pos, field, "a stage name must not be empty");
    } else if !bad.is_empty() {
        let shown: String = bad
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        ctx.error(pos, field, format!("stage name `{name}` contains {shown}"))
            .hint("stage names may use letters, digits, `_`, `.` and `-`");
    } else if name.chars().count() > MAX_STAGE_NAME {
        ctx.error(
            pos,
            field,
            format!(
                "stage name is {} characters long; the limit is {MAX_STAGE_NAME}",
                name.len()
            ),
        );
    }
}

fn check_kind(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<Kind> {
    let Some(text) = entry.value.as_str() else {
        ctx.wrong_type(entry.value, &entry.field, "a stage kind such as `run`");
        return None;
    };
    match Kind::parse(text) {
        Ok(kind) => Some(kind),
        Err(KindError::NotYetSupported) => {
            ctx.error(
                entry.value.pos(),
                &entry.field,
                format!("stage kind `{text}` is not supported yet"),
            )
            .hint(format!(
                "stage kinds today: {}",
                Kind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ));
            None
        }
        Err(KindError::Unknown { nearest }) => {
            let hint = match nearest {
                Some(k) => format!("did you mean `{k}`?"),
                None => "the stage kind is `run`".to_owned(),
            };
            ctx.error(
                entry.value.pos(),
                &entry.field,
                format!("unknown stage kind `{text}`"),
            )
            .hint(hint);
            None
        }
    }
}

fn image(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<String> {
    let Some(text) = entry.value.as_text() else {
        ctx.wrong_type(entry.value, &entry.field, "an image name");
        return None;
    };
    if text.trim().is_empty() {
        ctx.error(entry.value.pos(), &entry.field, "must not be empty");
        return None;
    }
    if text.chars().any(char::is_whitespace) {
        ctx.error(
            entry.value.pos(),
            &entry.field,
            format!("`{text}` is not an image name: it contains whitespace"),
        );
    }
    ctx.check_vars(entry.value, text, &entry.field);
    Some(text.to_owned())
}

fn commands(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Vec<String> {
    let Node::Seq { items, .. } = entry.value else {
        let hint = match entry.value.as_text() {
            Some(_) => "put each command on its own `- ` line under `commands:`",
            None => "e.g. `commands: [make test]`",
        };
        ctx.wrong_type(entry.value, &entry.field, "a list of strings")
            .hint(hint);
        return Vec::new();
    };
    if items.is_empty() {
        ctx.error(
            entry.value.pos(),
            &entry.field,
            "must list at least one command",
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{}[{i}]", entry.field);
        match item {
            Node::Map { .. } => {
                // The classic YAML trap: `- echo key: value` parses as a mapping.
                ctx.wrong_type(item, &field, "a string")
                    .hint("a command containing `: ` must be quoted, e.g. - \"echo a: b\"");
            }
            _ => match item.as_text() {
                Some(text) => {
                    ctx.check_vars(item, text, &field);
                    out.push(text.to_owned());
                }
                None => {
                    ctx.wrong_type(item, &field, "a string");
                }
            },
        }
    }
    out
}

fn env(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> BTreeMap<String, String> {
    let Node::Map { entries, .. } = entry.value else {
        ctx.wrong_type(entry.value, &entry.field, "a mapping of names to values")
            .hint("e.g. `env: {GREETING: hello}`");
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for var in ctx.entries(entries, &entry.field, "variable") {
        if !is_env_name(var.name) {
            ctx.error(
                var.key.pos(),
                &var.field,
                format!("`{}` is not a valid variable name", var.name),
            )
            .hint("use letters, digits and `_`, not starting with a digit");
        }
        match var.value {
            // Numbers and booleans are fine: their text is the value the user meant.
            Node::Scalar { .. } if !var.value.is_null() => {
                let text = var.value.as_text().unwrap_or_default();
                ctx.check_vars(var.value, text, &var.field);
                out.insert(var.name.to_owned(), text.to_owned());
            }
            value => {
                let hint = value
                    .is_null()
                    .then(|| "write `\"\"` for an empty value".to_owned());
                ctx.wrong_type(value, &var.field, "a string").hint_opt(hint);
            }
        }
    }
    out
}

/// A list of plain names (`needs`, `secrets`), with each name's position.
fn names(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<Vec<NeedRef>> {
    let Node::Seq { items, .. } = entry.value else {
        let hint = entry
            .value
            .as_text()
            .map(|t| format!("write `{}: [{t}]`", entry.name));
        ctx.wrong_type(entry.value, &entry.field, "a list of names")
            .hint_opt(hint);
        return None;
    };
    let mut out: Vec<NeedRef> = Vec::new();
    // Line of each name listed, by hash: a list of 50,000 names stays linear.
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{}[{i}]", entry.field);
        let Some(name) = item.as_text() else {
            ctx.wrong_type(item, &field, "a name");
            continue;
        };
        if let Some(&line) = seen.get(name) {
            ctx.error(
                item.pos(),
                &field,
                format!("`{name}` is listed twice (first on line {line})"),
            );
            continue;
        }
        seen.insert(name, item.pos().line);
        out.push(NeedRef {
            name: name.to_owned(),
            pos: item.pos(),
            field,
        });
    }
    Some(out)
}

fn secrets(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Vec<String> {
    let Some(names) = names(ctx, entry) else {
        return Vec::new();
    };
    for n in &names {
        if !is_env_name(&n.name) {
            ctx.error(n.pos, &n.field, format!("`{}` is not a valid secret name", n.name))
                .hint("secrets are passed as environment variables: use letters, digits and `_`, not starting with a digit");
        }
    }
    names.into_iter().map(|n| n.name).collect()
}

fn timeout(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<Duration> {
    let Some(text) = entry.value.as_text() else {
        ctx.wrong_type(entry.value, &entry.field, "a duration such as `10m`");
        return None;
    };
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            ctx.error(entry.value.pos(), &entry.field, "must be greater than zero")
                .hint("leave `timeout` out for the default of 1h");
            None
        }
        // A deadline is computed from it at run time, where a huge one would overflow.
        Ok(d) if d > super::limits::MAX_TIMEOUT => {
            let message = super::limits::check_duration(d, super::limits::MAX_TIMEOUT).unwrap_err().to_string();
            ctx.error(entry.value.pos(), &entry.field, message);
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            ctx.error(
                entry.value.pos(),
                &entry.field,
                format!("\"{text}\" is not a duration"),
            )
            .hint("write a number with a unit, e.g. `90s`, `10m` or `1h 30m`");
            None
        }
    }
}

fn retries(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<u32> {
    let value = entry.value;
    let number = match value {
        Node::Scalar {
            text, plain: true, ..
        } => text.parse::<i64>().ok(),
        _ => None,
    };
    match number {
        Some(n) if n < 0 => {
            ctx.error(
                value.pos(),
                &entry.field,
                format!("must not be negative, but is {n}"),
            );
            None
        }
        Some(n) if n > MAX_RETRIES => {
            ctx.error(
                value.pos(),
                &entry.field,
                format!("at most {MAX_RETRIES} retries are allowed, not {n}"),
            );
            None
        }
        Some(n) => u32::try_from(n).ok(),
        None => {
            let expected = format!("a whole number from 0 to {MAX_RETRIES}");
            match value.as_text() {
                Some(text) if value.describe() == "a number" => {
                    ctx.error(
                        value.pos(),
                        &entry.field,
                        format!("must be {expected}, not {text}"),
                    );
                }
                _ => {
                    ctx.wrong_type(value, &entry.field, &expected);
                }
            }
            None
        }
    }
}

fn when(ctx: &mut Ctx<'_>, entry: &Entry<'_>) -> Option<When> {
    const WHEN_KEYS: &[&str] = &["branch"];
    let no_branches = "lists no branches, so the stage would never run";
    let entries = match entry.value {
        Node::Map { entries, .. } => ctx.entries(entries, &entry.field, "key"),
        v if v.is_null() => Vec::new(),
        v => {
            let hint = v
                .as_text()
                .map(|t| format!("write `when: {{branch: {t}}}`"));
            ctx.wrong_type(v, &entry.field, "a mapping like `{branch: [main]}`")
                .hint_opt(hint);
            return None;
        }
    };
    let mut branch = None;
    for e in &entries {
        if e.name == "branch" {
            branch = Some(e);
        } else {
            let _ = ctx.unknown_key(e, WHEN_KEYS);
        }
    }
    let Some(branch) = branch else {
        ctx.error(entry.key.pos(), &entry.field, no_branches)
            .hint("e.g. `when: {branch: [main, \"release/*\"]}`");
        return None;
    };
    let patterns: Vec<(String, Pos, String)> = match branch.value {
        Node::Seq { items, .. } => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let field = format!("{}[{i}]", branch.field);
                match item.as_text() {
                    Some(t) => Some((t.to_owned(), item.pos(), field)),
                    None => {
                        ctx.wrong_type(item, &field, "a branch name or pattern");
                        None
                    }
                }
            })
            .collect(),
        v => match v.as_text() {
            Some(t) => vec![(t.to_owned(), v.pos(), branch.field.clone())],
            None if v.is_null() => Vec::new(),
            None => {
                ctx.wrong_type(v, &branch.field, "a branch pattern or a list of them");
                return None;
            }
        },
    };
    let empty = matches!(branch.value, Node::Seq { items, .. } if items.is_empty());
    if empty || branch.value.is_null() {
        ctx.error(branch.value.pos(), &branch.field, no_branches);
        return None;
    }
    for (pattern, pos, field) in &patterns {
        // Compiled here, as the scheduler will, so that no glob that validated can fail
        // (or panic) when a run is filtered.
        if let Err(e) = super::limits::branch_glob(pattern) {
            let e = match e {
                super::limits::LimitError::BadGlob { reason, .. } => {
                    format!("`{}` is not a valid branch pattern: {reason}", super::limits::excerpt(pattern))
                }
                other => format!("this branch pattern {other}"),
            };
            ctx.error(*pos, field, e);
        }
    }
    Some(When {
        branches: patterns.into_iter().map(|(p, _, _)| p).collect(),
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::is_env_name;

    #[test]
    fn env_names_follow_shell_rules() {
        assert!(is_env_name("API_TOKEN"));
        assert!(is_env_name("_x1"));
        assert!(!is_env_name("1X"));
        assert!(!is_env_name("API-TOKEN"));
        assert!(!is_env_name(""));
    }
}
