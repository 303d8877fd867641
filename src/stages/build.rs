//! The `build` stage kind: an image from a directory of the checked-out commit, built by the
//! engine's builder from a tar of that directory (`.dockerignore` honoured), output streamed
//! into the stage's log, the image id recorded.

use std::collections::HashMap;
use std::io::Read;

use bytes::Bytes;
use globset::GlobSet;

use super::RunContext;
use crate::engine::{BuildRequest, EngineError};
use crate::events::{AttemptOutcome, EventKind, StageResult, Stream};
use crate::labels::{PROJECT_LABEL, RUN_LABEL};
use crate::pipeline::spec::BuildSpec;
use crate::pipeline::{interpolate, StagePlan};

pub async fn attempt(ctx: &RunContext, stage: &StagePlan, spec: &BuildSpec, attempt: u32) -> AttemptOutcome {
    let tag = interpolate(&spec.tag, &ctx.vars);
    if let Err(refused) = may_tag(ctx, &tag).await {
        let message = refused.to_string();
        ctx.note(&stage.name, attempt, message.clone());
        return AttemptOutcome::Refused { message };
    }
    let context = match context_tar(&ctx.workspace, &spec.context, &spec.dockerfile) {
        Ok(c) => c,
        Err(e) => return AttemptOutcome::Error { message: e.to_string() },
    };
    ctx.note(&stage.name, attempt, format!("building {tag} from {} ({} KiB of context)", spec.context, context.len() / 1024));
    let request = BuildRequest {
        tag: tag.clone(),
        dockerfile: spec.dockerfile.clone(),
        build_args: spec.build_args.iter().map(|(k, v)| (k.clone(), interpolate(v, &ctx.vars))).collect(),
        target: spec.target.clone(),
        labels: HashMap::from([
            (RUN_LABEL.to_string(), ctx.run_id.clone()),
            (crate::labels::COMMIT_LABEL.to_string(), ctx.commit.sha.clone()),
            // Build labels given through the API override the Dockerfile's own LABELs.
            (PROJECT_LABEL.to_string(), ctx.policy.project.clone()),
        ]),
        limits: Some(ctx.limits(stage)),
    };
    let name = stage.name.clone();
    let output = |line: &str| ctx.emit.output_now(&name, attempt, Stream::Stdout, ctx.masker.mask(line));
    let built = tokio::select! {
        built = ctx.steps.build_image(context, &request, &output) => built,
        _ = ctx.cancel.cancelled() => return AttemptOutcome::Cancelled,
    };
    match built {
        Ok(image_id) => {
            ctx.note(&stage.name, attempt, format!("built {tag} ({image_id})"));
            ctx.emit.event(EventKind::StageResult { stage: stage.name.clone(), result: StageResult::Image { tag, image_id } });
            AttemptOutcome::Succeeded
        }
        Err(EngineError::Build(message)) => {
            AttemptOutcome::Error { message: ctx.masker.mask(&format!("the build of {tag} failed: {message}")) }
        }
        Err(e) => ctx.error(e),
    }
}

/// Whether this run's build may put `tag` on its image: never into Gantry's namespace
/// (checked again here because a variable can put it there), never over another
/// project's image. An image without the label (built outside Gantry) is not guarded.
async fn may_tag(ctx: &RunContext, tag: &str) -> Result<(), TagRefused> {
    if crate::agents::is_reserved(tag) {
        return Err(TagRefused::Reserved { tag: tag.to_string(), namespace: crate::agents::RESERVED_NAMESPACE });
    }
    let project = &ctx.policy.project;
    let facts = ctx.steps.image_facts(tag).await?;
    match facts.as_ref().and_then(|f| f.labels.get(PROJECT_LABEL)) {
        Some(owner) if owner != project => {
            Err(TagRefused::OtherProject { tag: tag.to_string(), owner: owner.clone(), project: project.clone() })
        }
        _ => Ok(()),
    }
}

/// Why a build may not put its tag on the image it builds.
#[derive(Debug, thiserror::Error)]
enum TagRefused {
    #[error("refused: the build's tag {tag} is in the {namespace} namespace, which is reserved for Gantry's own images (scripts/setup builds them); tag the image under another name")]
    Reserved { tag: String, namespace: &'static str },
    #[error("refused: {tag} was built by project {owner}'s pipeline; project {project} may not overwrite another project's image (use a tag of its own, e.g. {project}/...)")]
    OtherProject { tag: String, owner: String, project: String },
    #[error("{0}")]
    Engine(#[from] EngineError),
}

/// Why a build context could not be made from the checkout.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("cannot read the checkout: {0}")]
    Checkout(std::io::Error),
    #[error("the build context `{0}` does not exist in this commit")]
    NoContext(String),
    #[error("there is no `{dockerfile}` in the build context `{dir}`")]
    NoDockerfile { dockerfile: String, dir: String },
    #[error("cannot pack the build context: {0}")]
    Pack(std::io::Error),
}

/// The build context: the entries of the workspace archive under `dir`, re-rooted, minus
/// what `.dockerignore` excludes (the Dockerfile and `.dockerignore` are always sent, as
/// the Docker CLI does: the builder needs them).
pub fn context_tar(workspace: &[u8], dir: &str, dockerfile: &str) -> Result<Bytes, ContextError> {
    let prefix = match dir.trim_matches('/') {
        "" | "." => String::new(),
        d => format!("{}/", d.trim_start_matches("./")),
    };
    let mut files: Vec<(String, tar::Header, Vec<u8>)> = Vec::new();
    let mut archive = tar::Archive::new(workspace);
    for entry in archive.entries().map_err(ContextError::Checkout)? {
        let mut entry = entry.map_err(ContextError::Checkout)?;
        let path = entry.path().map_err(ContextError::Checkout)?.to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(ContextError::Checkout)?;
        files.push((rel.to_string(), entry.header().clone(), data));
    }
    if files.is_empty() {
        return Err(ContextError::NoContext(dir.to_string()));
    }
    if !files.iter().any(|(p, _, _)| p.trim_end_matches('/') == dockerfile) {
        return Err(ContextError::NoDockerfile { dockerfile: dockerfile.to_string(), dir: dir.to_string() });
    }
    let ignore = files
        .iter()
        .find(|(p, _, _)| p == ".dockerignore")
        .map(|(_, _, data)| DockerIgnore::parse(&String::from_utf8_lossy(data)))
        .unwrap_or_default();
    let mut builder = tar::Builder::new(Vec::new());
    for (path, mut header, data) in files {
        let name = path.trim_end_matches('/');
        if name != dockerfile && name != ".dockerignore" && ignore.excludes(name) {
            continue;
        }
        builder.append_data(&mut header, &path, data.as_slice()).map_err(ContextError::Pack)?;
    }
    Ok(Bytes::from(builder.into_inner().map_err(ContextError::Pack)?))
}

/// `.dockerignore` rules: globs relative to the context root, `!` re-includes, the last
/// matching rule wins, and a rule matching a directory covers everything under it.
#[derive(Default)]
struct DockerIgnore {
    rules: Vec<(GlobSet, bool)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> Self {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|line| {
                let (exclude, pattern) = match line.strip_prefix('!') {
                    Some(p) => (false, p.trim()),
                    None => (true, line),
                };
                let pattern = pattern.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
                // The file comes with the commit: compiled without `compile_matcher`'s panic
                // on a pattern too big for its regex (such a rule is skipped, like a bad one).
                let mut builder = globset::GlobBuilder::new(pattern);
                builder.literal_separator(true);
                let glob = crate::pipeline::limits::glob(builder, pattern).ok()?;
                Some((glob, exclude))
            })
            .collect();
        DockerIgnore { rules }
    }

    fn excludes(&self, path: &str) -> bool {
        let mut excluded = false;
        for (glob, exclude) in &self.rules {
            // A path is covered when it or one of its parent directories matches.
            let mut candidate = Some(path);
            while let Some(p) = candidate {
                if glob.is_match(p) {
                    excluded = *exclude;
                    break;
                }
                candidate = p.rsplit_once('/').map(|(parent, _)| parent);
            }
        }
        excluded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[(&str, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, content.as_bytes()).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn context_is_the_directory_rerooted_minus_dockerignore() {
        let ws = workspace(&[
            ("app/Dockerfile", "FROM scratch"),
            ("app/.dockerignore", "target\n*.log\n!keep.log\n"),
            ("app/src/main.rs", "fn main(){}"),
            ("app/target/debug/big", "x"),
            ("app/a.log", "x"),
            ("app/keep.log", "x"),
            ("other/file", "x"),
        ]);
        let got = names(&context_tar(&ws, "app", "Dockerfile").unwrap());
        assert_eq!(got, vec!["Dockerfile", ".dockerignore", "src/main.rs", "keep.log"]);
    }

    #[test]
    fn missing_context_or_dockerfile_is_a_clear_error() {
        let ws = workspace(&[("app/Dockerfile", "FROM scratch")]);
        assert_eq!(context_tar(&ws, "nope", "Dockerfile").unwrap_err().to_string(), "the build context `nope` does not exist in this commit");
        assert_eq!(context_tar(&ws, "app", "Containerfile").unwrap_err().to_string(), "there is no `Containerfile` in the build context `app`");
    }
}
