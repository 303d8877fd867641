//! Gantry: pipeline file -> validated plan -> scheduler -> engine -> events -> store -> reports.
//! The binary (`main.rs`) is a thin command line over these modules (`cli::main`); the
//! agents' binaries (`src/bin/`) use `smoke` and `load`.
//!
//! Public are the modules the binaries, the integration tests, the benchmarks and the
//! fuzz targets (`fuzz/`) drive;
//! the rest is the crate's own. The arrows run one way, from the bottom up:
//! model types (`commit`, `labels`, `events`, `channel`, `approval::request`) ->
//! `pipeline` -> `engine` (and `docker` behind it) -> `stages` -> `scheduler` -> `runs` ->
//! `store` / `recorder` -> `coordinator` / `server` / `report` -> `cli`.

// --- Model types at the bottom: they depend on nothing of Gantry's above them. ---
/// A commit's metadata, as git gives it and every run records it.
pub mod commit;
/// Every `io.gantry.*` label and every name Gantry gives an engine object.
pub mod labels;
/// What a run emits: events, log lines, stage results.
pub mod events;
/// The channel events and output travel on from a run to its recorder.
pub mod channel;
/// The forges pushes come from.
pub(crate) mod forge;
/// Approvals of gated promotions: the request and decisions (model), and the workflow.
pub(crate) mod approval;

// --- From a pipeline file to a run. ---
/// YAML -> validated `Plan`, with file:line:field diagnostics.
pub mod pipeline;
/// git2: resolve a revision, commit metadata, the commit's tree as a tar.
pub mod git;
/// The operator's config: users, roles, protections, the service's settings.
pub mod config;
/// The operator's rules as one run sees them (protections, limits, agents).
pub mod policy;
pub(crate) mod limits;
pub(crate) mod secrets;
pub(crate) mod mask;
pub(crate) mod agents;

// --- Driving a run. ---
/// The two engine seams (`Steps`, `Environments`), `connect`, and an in-memory fake.
pub mod engine;
/// The Docker implementation of both seams: the only code that speaks bollard.
pub mod docker;
/// One executor per stage kind.
pub mod stages;
/// Runs a plan: DAG order, parallelism, timeouts, retries, cancellation, teardown.
pub mod scheduler;
/// The one way through a run: prepare, start, follow, recover.
pub(crate) mod runs;
pub(crate) mod sweep;

// --- What runs leave, and who reads it. ---
/// sled: runs, events, logs, deployments, approvals.
pub mod store;
/// The one writer of a run's events and output into the store.
pub mod recorder;
/// The gate's judgement: thresholds, APM, statistics, the verdict.
pub mod gate;
/// The smoke agent's library (journeys, probes, reports).
pub mod smoke;
/// The load agent's library (open-model load, HDR histograms, summaries).
pub mod load;
pub(crate) mod report;
pub(crate) mod words;
pub(crate) mod control;
pub(crate) mod coordinator;
/// `gantry serve`: the API, the dashboard, and the webhooks (whose parser the fuzz
/// targets drive).
pub mod server;

/// The command line: clap commands, terminal rendering, friendly errors.
pub mod cli;
