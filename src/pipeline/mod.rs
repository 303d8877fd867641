//! Pipeline files: the YAML model, validation with file:line:column:field errors, and
//! interpolation of `${...}` variables. Produces the typed `Plan` the scheduler runs.
//!
//! Flow: `yaml` (text -> located tree) -> `check`/`stage` (every key, every error;
//! `environments` first) -> `graph` (needs, cycles, order) -> `Plan`.

mod check;
mod context;
mod de;
mod diagnostic;
mod environments;
mod graph;
mod kind;
mod kind_check;
pub mod limits;
pub mod resources;
pub mod spec;
pub mod plan;
mod placement;
mod stage;
mod summary;
mod vars;
pub(crate) mod yaml;

use std::path::Path;

pub use diagnostic::{Diagnostic, PipelineError};
pub use kind::{Kind, PLANNED_KINDS};
pub use plan::{Plan, StagePlan, When, DEFAULT_TIMEOUT};
pub use summary::plan_summary;
pub use environments::describe as describe_approval;
pub use vars::{interpolate, interpolate_for_shell, shell_quote, Vars, KNOWN_VARS};

/// Reads and validates the pipeline file at `path`; messages name it as given.
pub fn load(path: &Path) -> Result<Plan, PipelineError> {
    let text = limits::read_bounded(path, limits::MAX_PIPELINE_BYTES).map_err(|source| PipelineError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&path.display().to_string(), &text)
}

/// Validates pipeline `text`; `file` is the name diagnostics use.
pub fn parse(file: &str, text: &str) -> Result<Plan, PipelineError> {
    let mut ctx = context::Ctx::new(file, text);
    // Checked before parsing, so that no work at all is done for an oversized file
    // (callers that got the text from elsewhere than `load`, such as a push, rely on it).
    if text.len() > limits::MAX_PIPELINE_BYTES {
        ctx.error(yaml::Pos { line: 1, column: 1, index: 0 }, "", format!(
            "the file is {} KiB; pipeline files may be at most {} KiB",
            text.len().div_ceil(1024),
            limits::MAX_PIPELINE_BYTES / 1024
        ));
        return Err(PipelineError::Invalid(ctx.diags));
    }
    match yaml::parse_with_spans(text).map(|(root, spans)| {
        ctx.spans = spans;
        root
    }) {
        Err(e) if !e.malformed => {
            ctx.error(e.pos, &e.field, e.message);
        }
        Err(mut e) => {
            let line = text.lines().nth(e.pos.line.saturating_sub(1)).unwrap_or("");
            if e.message.contains("did not find expected key") {
                // The scanner notices a mis-indented key only at its end; the fix is at
                // the line's indentation.
                e.pos.column = line.chars().take_while(|c| *c == ' ').count() + 1;
            }
            if e.message.contains("tabs") {
                if let Some(tab) = line.chars().position(|c| c == '\t') {
                    e.pos.column = tab + 1;
                }
            }
            let hint = syntax_hint(&e.message, text, e.pos.line);
            ctx.error(e.pos, &e.field, format!("YAML syntax error: {}", e.message))
                .hint_opt(hint);
        }
        Ok(root) => {
            if let Some(plan) = check::check(&mut ctx, root.as_ref()) {
                return Ok(plan);
            }
        }
    }
    let mut diags = ctx.diags;
    // The user reads top to bottom; the walk's order is an implementation detail.
    diags.sort_by_key(|d| (d.line, d.column));
    diags.dedup();
    Err(PipelineError::Invalid(diags))
}

/// The likely fix for the YAML mistakes people actually make.
fn syntax_hint(message: &str, text: &str, line: usize) -> Option<String> {
    let near = |l: usize| text.lines().nth(l.saturating_sub(1)).unwrap_or("");
    if near(line).contains('\t') || (line > 1 && near(line - 1).starts_with('\t')) {
        Some("YAML indentation must use spaces, not tabs".into())
    } else if message.contains("recursion limit exceeded") {
        Some(format!("lists and mappings may nest at most {} levels deep", limits::MAX_DEPTH))
    } else if message.contains("mapping values are not allowed") {
        Some("a value containing `: ` must be quoted, e.g. \"echo a: b\"".into())
    } else if message.contains("did not find expected key")
        || message.contains("did not find expected '-'")
    {
        Some("check the indentation of this line against the lines above".into())
    } else {
        None
    }
}
