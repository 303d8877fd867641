//! `{{name}}` substitution of values captured by earlier steps of a journey.
//!
//! String values are inserted raw (so `/products/{{id}}` works whether the id was a
//! string or a number); other values as their JSON text. In a JSON request body a string
//! that is *only* a placeholder becomes the captured value itself, so a captured number
//! stays a number (`{"product_id": "{{product_id}}"}` -> `{"product_id": 1}`).

use serde_json::Value;
use std::collections::BTreeMap;

/// Captured values of one journey, by name.
pub type Vars = BTreeMap<String, Value>;

/// Names referenced in `s`, in order (duplicates kept). `{{` without a closing `}}` is text.
pub fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    scan(s, |piece| {
        if let Piece::Var(name) = piece {
            out.push(name);
        }
    });
    out
}

/// Every placeholder name in a JSON value (keys and string leaves).
pub(crate) fn json_placeholders(v: &Value) -> Vec<&str> {
    let mut out = Vec::new();
    walk(v, &mut |s| out.extend(placeholders(s)));
    out
}

fn walk<'a>(v: &'a Value, f: &mut impl FnMut(&'a str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
        Value::Object(map) => map.iter().for_each(|(k, i)| {
            f(k);
            walk(i, f)
        }),
        _ => {}
    }
}

/// A placeholder naming no variable the journey has captured so far.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variable {{{{{0}}}}}")]
pub struct UnknownVariable(pub String);

/// Substitutes every placeholder; an error names the first variable not in `vars`.
pub fn render(s: &str, vars: &Vars) -> Result<String, UnknownVariable> {
    let mut out = String::with_capacity(s.len());
    let mut missing = None;
    scan(s, |piece| match piece {
        Piece::Text(t) => out.push_str(t),
        Piece::Var(name) => match vars.get(name) {
            Some(Value::String(v)) => out.push_str(v),
            Some(v) => out.push_str(&v.to_string()),
            None => {
                missing.get_or_insert_with(|| name.to_string());
            }
        },
    });
    match missing {
        Some(name) => Err(UnknownVariable(name)),
        None => Ok(out),
    }
}

/// Renders a JSON body; see the module docs for the whole-string rule.
pub fn render_json(v: &Value, vars: &Vars) -> Result<Value, UnknownVariable> {
    Ok(match v {
        Value::String(s) => match sole_placeholder(s) {
            Some(name) => vars.get(name).cloned().ok_or_else(|| UnknownVariable(name.to_string()))?,
            None => Value::String(render(s, vars)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| render_json(i, vars)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, i) in map {
                out.insert(render(k, vars)?, render_json(i, vars)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn sole_placeholder(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    let name = inner.trim();
    valid_name(name).then_some(name)
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits `s` into text and well-formed placeholders; anything that does not look like
/// `{{ name }}` (e.g. `{{` in literal JSON or a template language) stays text.
///
/// A placeholder's inside can only hold name characters and blanks, so the search for its
/// `}}` stops at the first other character: searching the rest of the text after every
/// `{{` made `{{{{{{...}}` quadratic.
fn scan<'a>(s: &'a str, mut f: impl FnMut(Piece<'a>)) {
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let inside = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') || c.is_whitespace()))
            .unwrap_or(after.len());
        let close = if after[inside..].starts_with("}}") { inside } else { usize::MAX };
        let name = if close == usize::MAX { "" } else { after[..close].trim() };
        if valid_name(name) {
            if open > 0 {
                f(Piece::Text(&rest[..open]));
            }
            f(Piece::Var(name));
            rest = &after[close + 2..];
        } else {
            // Not a placeholder: emit the `{{` as text and keep scanning after it.
            f(Piece::Text(&rest[..open + 2]));
            rest = after;
        }
    }
    if !rest.is_empty() {
        f(Piece::Text(rest));
    }
}

/// Capture names are identifiers (letters, digits, `_`, `-`, `.`).
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut v = Vars::new();
        v.insert("id".into(), json!(7));
        v.insert("name".into(), json!("mug"));
        v.insert("obj".into(), json!({"a": 1}));
        v
    }

    #[test]
    fn renders_strings_raw_and_others_as_json() {
        assert_eq!(render("/p/{{id}}/{{ name }}?o={{obj}}", &vars()).unwrap(), "/p/7/mug?o={\"a\":1}");
    }

    #[test]
    fn leaves_non_placeholders_alone() {
        assert_eq!(render("{{}} {{ not valid! }} {{open", &vars()).unwrap(), "{{}} {{ not valid! }} {{open");
        assert_eq!(render("{{{{id}}", &vars()).unwrap(), "{{7");
    }

    #[test]
    fn braces_without_a_name_stay_text() {
        // The input that made the old scan quadratic (speed: benches/validate_at_scale).
        let text = format!("{}}}}}", "{{".repeat(2_000));
        assert_eq!(render(&text, &vars()).unwrap(), text);
        assert_eq!(render("{{ id }}{{ a b }}{{id} }}", &vars()).unwrap(), "7{{ a b }}{{id} }}");
    }

    #[test]
    fn reports_missing_variable() {
        assert_eq!(render("/x/{{nope}}", &vars()), Err(UnknownVariable("nope".to_string())));
        assert_eq!(UnknownVariable("nope".into()).to_string(), "unknown variable {{nope}}");
        assert_eq!(placeholders("a{{x}}b{{ y }}"), vec!["x", "y"]);
    }

    #[test]
    fn json_body_keeps_types_for_sole_placeholders() {
        let body = json!({"product_id": "{{id}}", "label": "item {{id}}", "tags": ["{{name}}"]});
        assert_eq!(
            render_json(&body, &vars()).unwrap(),
            json!({"product_id": 7, "label": "item 7", "tags": ["mug"]})
        );
        assert_eq!(json_placeholders(&body), vec!["id", "id", "name"]);
    }
}
