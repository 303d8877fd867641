//! `runs_on:` and `retry_on_engine_loss:`, the pipeline's asks of the engine pool. Labels
//! only choose among the engines the operator listed (a pipeline cannot name a host).

use super::context::{object_name, Ctx, Entry};
use super::plan::Placement;
use super::yaml::Node;

/// `runs_on: [big, gpu]`: every label must be on the engine a run is placed on.
pub(crate) fn runs_on(ctx: &mut Ctx<'_>, entry: &Entry<'_>, into: &mut Placement) {
    let items: Vec<&Node> = match entry.value {
        Node::Seq { items, .. } => items.iter().collect(),
        single if single.as_str().is_some() => vec![single],
        other => {
            ctx.wrong_type(other, &entry.field, "a list of engine labels").hint("e.g. `runs_on: [big]`");
            return;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("{}[{i}]", entry.field);
        match item.as_str() {
            Some(label) => {
                object_name(ctx, item.pos(), &field, "engine label", label);
                if !into.runs_on.iter().any(|l| l == label) {
                    into.runs_on.push(label.to_owned());
                }
            }
            None => {
                ctx.wrong_type(item, &field, "an engine label (a string)");
            }
        }
    }
}

/// `retry_on_engine_loss: true`: a run whose engine stops answering is run once more on
/// another engine (its stages must be safe to repeat).
pub(crate) fn retry_on_engine_loss(ctx: &mut Ctx<'_>, entry: &Entry<'_>, into: &mut Placement) {
    match entry.value.as_text() {
        Some("true" | "True" | "TRUE") if entry.value.describe() == "a boolean" => into.retry_on_engine_loss = true,
        Some("false" | "False" | "FALSE") if entry.value.describe() == "a boolean" => into.retry_on_engine_loss = false,
        _ => {
            ctx.wrong_type(entry.value, &entry.field, "true or false");
        }
    }
}

#[cfg(test)]
mod tests {
    fn parse(top: &str) -> Result<crate::pipeline::Plan, String> {
        let text = format!("name: p\n{top}stages:\n  a: {{image: gantry/busybox, commands: [\"true\"]}}\n");
        crate::pipeline::parse("gantry.yml", &text).map_err(|e| e.to_string())
    }

    #[test]
    fn runs_on_and_retry_are_read_and_wrong_values_name_their_line_and_field() {
        let plan = parse("runs_on: [big, gpu, big]\nretry_on_engine_loss: true\n").unwrap();
        assert_eq!(plan.placement.runs_on, ["big", "gpu"]);
        assert!(plan.placement.retry_on_engine_loss);
        assert_eq!(parse("runs_on: big\n").unwrap().placement.runs_on, ["big"]);
        assert!(parse("").unwrap().placement.is_default());
        let err = parse("runs_on: [Big Box]\n").unwrap_err();
        assert!(err.contains("gantry.yml:2") && err.contains("runs_on[0]") && err.contains("not a valid engine label"), "{err}");
        let err = parse("retry_on_engine_loss: \"yes\"\n").unwrap_err();
        assert!(err.contains("gantry.yml:2") && err.contains("retry_on_engine_loss") && err.contains("true or false"), "{err}");
        let err = parse("runs_on: {big: 1}\n").unwrap_err();
        assert!(err.contains("a list of engine labels"), "{err}");
    }
}
