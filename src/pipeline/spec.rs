//! What each stage kind besides `run` asks for, as typed settings read with serde from
//! the located YAML (see `de`), so errors still carry line, column and field path.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::{de, Deserialize, Deserializer, Serialize};

pub use super::de::DurationText;

/// What a stage does, by kind. `Run` uses the stage's `image`, `commands` and `env`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    #[default]
    Run,
    Build(BuildSpec),
    Provision(ProvisionSpec),
    Deploy(DeploySpec),
    Smoke(SmokeSpec),
    Load(LoadSpec),
    Promote(PromoteSpec),
}

/// `kind: promote`: the exact image that passed in one environment (by image id, never
/// rebuilt) deployed to another, only when the gate's verdict passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteSpec {
    pub from: String,
    pub to: String,
    #[serde(default = "default_app")]
    pub app: String,
    /// The port the app listens on.
    pub port: u16,
    /// Host port on 127.0.0.1 where the target environment's app answers.
    #[serde(default)]
    pub publish: Option<u16>,
    /// The target environment's settings for the app.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub health: Option<HealthSpec>,
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub update: Option<UpdateSpec>,
    #[serde(default)]
    pub placement: Vec<String>,
    #[serde(default)]
    pub gate: GateSpec,
    /// After the promotion: APM checks on the target environment over a window; a breach
    /// rolls back to the version that was there before.
    #[serde(default)]
    pub verify: Option<VerifySpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// The checks, their source and window (`apm.window`).
    pub apm: ApmSettings,
}

/// What the gate judges before a promotion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Stages of this run that must have succeeded (smoke, load, any named stage).
    #[serde(default)]
    pub stages: Vec<String>,
    /// Whether the load thresholds of those stages count, one check each.
    #[serde(default = "yes")]
    pub thresholds: bool,
    /// A statistical comparison of two load stages' latency (e.g. the candidate's against
    /// production's, measured the same way).
    #[serde(default)]
    pub latency: Option<LatencyComparison>,
}

impl Default for GateSpec {
    fn default() -> Self {
        GateSpec { stages: Vec::new(), thresholds: true, latency: None }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyComparison {
    /// The load stage that measured the new version.
    pub candidate: String,
    /// The load stage that measured the version it is compared with.
    pub baseline: String,
    /// Confidence of the test (default 0.99).
    #[serde(default)]
    pub confidence: Option<f64>,
    /// p95 increase still accepted as noise (default 0.10 = +10%).
    #[serde(default)]
    pub tolerance: Option<f64>,
}

fn yes() -> bool {
    true
}

/// One entry of the top-level `environments:` key: what holds for every stage that
/// changes that environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentSpec {
    /// Who must approve a promotion into the environment before it happens; none means
    /// promotions go ahead as soon as the gate passes. `approval:` with nothing under it
    /// means the defaults, never "no approval".
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalRule>,
}

/// Reads a key that is present as `Some`, even when empty (then with its defaults).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A promotion into the environment waits (after its run has ended) until enough people
/// holding `role` have approved it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// The least role an approver must hold (higher roles qualify too).
    #[serde(default = "release_manager")]
    pub role: crate::config::Role,
    /// How many different people must approve; at least 1.
    #[serde(default = "one", deserialize_with = "at_least_one")]
    pub count: u32,
    /// Whether the person who started the run is barred from approving it (four eyes).
    #[serde(default = "yes")]
    pub forbid_author: bool,
    /// How long a promotion may wait for approval before it lapses; none means forever.
    #[serde(default)]
    pub expires: Option<DurationText>,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        ApprovalRule { role: release_manager(), count: 1, forbid_author: true, expires: None }
    }
}

fn release_manager() -> crate::config::Role {
    crate::config::Role::ReleaseManager
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(de::Error::custom("must be at least 1")),
        n => Ok(n),
    }
}

/// `kind: build`: an image from a directory of the checked-out commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildSpec {
    /// Directory of the commit holding the build context.
    #[serde(default = "dot")]
    pub context: String,
    /// Relative to the context.
    #[serde(default = "dockerfile")]
    pub dockerfile: String,
    /// e.g. `storefront:${commit.short}`.
    pub tag: String,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Stage of a multi-stage Dockerfile to stop at.
    #[serde(default)]
    pub target: Option<String>,
}

fn dot() -> String {
    ".".into()
}

fn dockerfile() -> String {
    "Dockerfile".into()
}

/// `kind: provision`: an environment's network and service containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvisionSpec {
    pub environment: String,
    #[serde(default)]
    pub services: IndexMap<String, ServiceSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub image: String,
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// `"8080"` (reachable on the environment's network only) or `"18080:8080"` (also
    /// published on the host's loopback).
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub health: Option<HealthSpec>,
}

/// How to tell that a service or a new version is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// Run inside the container; exit 0 means healthy.
    #[serde(default)]
    pub command: Option<CommandSpec>,
    /// HTTP path answered with 2xx means healthy.
    #[serde(default)]
    pub http: Option<String>,
    /// Port for `http` (default: the service's first port, or the deployment's port).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "default_interval")]
    pub interval: DurationText,
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Give up after this long, whatever `retries` says.
    #[serde(default = "default_deadline")]
    pub deadline: DurationText,
}

fn default_interval() -> DurationText {
    DurationText(Duration::from_millis(500))
}

fn default_retries() -> u32 {
    120
}

fn default_deadline() -> DurationText {
    DurationText(Duration::from_secs(60))
}

impl HealthSpec {
    pub fn http(path: &str) -> Self {
        HealthSpec {
            command: None,
            http: Some(path.to_string()),
            port: None,
            interval: default_interval(),
            retries: default_retries(),
            deadline: default_deadline(),
        }
    }
}

/// `kind: deploy`: a new version of an app in an environment, behind a stable alias and
/// published port, replacing the previous version once healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    pub environment: String,
    /// `replace` (default): start, check, go live, retire the old version. `preview`: start
    /// and check only, reachable as the app's preview for smoke and load stages. `promote`:
    /// put the current preview live.
    #[serde(default)]
    pub mode: DeployMode,
    /// The image to run (not for `promote`, which takes the preview's).
    #[serde(default)]
    pub image: Option<String>,
    /// The stable network alias (and name) of the app in the environment.
    #[serde(default = "default_app")]
    pub app: String,
    /// The port the app listens on inside its container (not for `promote`).
    #[serde(default)]
    pub port: Option<u16>,
    /// Host port on 127.0.0.1 where the environment's app answers.
    #[serde(default)]
    pub publish: Option<u16>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub command: Option<CommandSpec>,
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// On a Swarm engine: how many tasks serve the app, how Swarm rolls a new version out
    /// over them, and where they may run. A plain Docker engine runs one container and
    /// refuses more.
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub update: Option<UpdateSpec>,
    #[serde(default)]
    pub placement: Vec<String>,
}

/// The most tasks one app may ask for: a pipeline is not trusted with a cluster's size.
pub const MAX_REPLICAS: u32 = 32;

/// Swarm's own `update_config` (and `rollback_config`, which takes the same settings back
/// down): the pipeline says how a version replaces the last, Swarm does it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// Tasks replaced at once (0: all).
    #[serde(default = "one")]
    pub parallelism: u32,
    /// Between batches.
    #[serde(default = "zero_time")]
    pub delay: DurationText,
    #[serde(default)]
    pub order: UpdateOrder,
    #[serde(default)]
    pub failure_action: FailureAction,
    /// How long each new task is watched for failure after it starts.
    #[serde(default = "five_seconds")]
    pub monitor: DurationText,
    /// The share of tasks that may fail within `monitor` before the update fails.
    #[serde(default)]
    pub max_failure_ratio: f32,
}

impl Default for UpdateSpec {
    fn default() -> Self {
        UpdateSpec {
            parallelism: 1,
            delay: zero_time(),
            order: UpdateOrder::default(),
            failure_action: FailureAction::default(),
            monitor: five_seconds(),
            max_failure_ratio: 0.0,
        }
    }
}

fn zero_time() -> DurationText {
    DurationText(Duration::ZERO)
}

fn five_seconds() -> DurationText {
    DurationText(Duration::from_secs(5))
}

/// Whether a new task starts before the old one stops (no gap) or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateOrder {
    #[default]
    StartFirst,
    StopFirst,
}

/// What Swarm does when an update fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    #[default]
    Rollback,
    Pause,
    Continue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeployMode {
    #[default]
    Replace,
    Preview,
    Promote,
}

/// Which version of an environment's app a smoke or load stage aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    #[default]
    Live,
    Preview,
}

pub fn default_app() -> String {
    "app".into()
}

/// `kind: smoke`: user journeys against an environment's app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmokeSpec {
    pub target: String,
    #[serde(default = "default_app")]
    pub app: String,
    #[serde(default)]
    pub version: Version,
    #[serde(default)]
    pub request_timeout: Option<DurationText>,
    pub journeys: Vec<Journey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journey {
    pub name: String,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    #[serde(default)]
    pub expect: Expect,
    /// name -> JSON pointer into the response; later steps use `{{name}}`.
    #[serde(default)]
    pub capture: BTreeMap<String, String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub body_contains: OneOrMany,
    /// JSON pointer -> expected value.
    #[serde(default)]
    pub json: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub max_latency: Option<DurationText>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `kind: load`: open-model load against an environment's app, judged by thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadSpec {
    pub target: String,
    #[serde(default = "default_app")]
    pub app: String,
    #[serde(default)]
    pub version: Version,
    /// One path to GET, or `requests` for a weighted mix.
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub requests: Vec<LoadRequest>,
    /// Constant arrival rate (`200/s`, `6000/m`), unless `stages` ramp it.
    #[serde(default)]
    pub rate: Option<Rate>,
    #[serde(default)]
    pub duration: Option<DurationText>,
    #[serde(default)]
    pub stages: Vec<RampStage>,
    /// Most requests in flight at once.
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default)]
    pub request_timeout: Option<DurationText>,
    /// k6 syntax: metric -> expressions, e.g. `http_req_duration: ["p(95)<200ms"]`.
    #[serde(default)]
    pub thresholds: IndexMap<String, Vec<String>>,
    /// Stop the load as soon as a threshold has certainly failed.
    #[serde(default)]
    pub abort_on_fail: bool,
    /// APM checks measured over the load (the app's /metrics, or a Prometheus server).
    #[serde(default)]
    pub apm: Option<ApmSettings>,
}

/// The gate's APM settings (see `gate::apm::ApmConfig`), compared by content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApmSettings(pub crate::gate::apm::ApmConfig);

impl PartialEq for ApmSettings {
    fn eq(&self, other: &Self) -> bool {
        serde_json::to_value(&self.0).ok() == serde_json::to_value(&other.0).ok()
    }
}

fn default_connections() -> u32 {
    100
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    #[serde(default = "get")]
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RampStage {
    pub duration: DurationText,
    pub target: Rate,
}

/// Requests per second, written `200/s`, `6000/m` or a bare number (per second).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(into = "String")]
pub struct Rate(pub f64);

impl From<Rate> for String {
    fn from(r: Rate) -> String {
        format!("{}/s", r.0)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let t = text.trim();
        let (number, per) = match t.split_once('/') {
            Some((n, unit)) => (n.trim(), unit.trim()),
            None => (t, "s"),
        };
        let secs = match per {
            "s" | "sec" | "second" => 1.0,
            "m" | "min" | "minute" => 60.0,
            "h" | "hour" => 3600.0,
            _ => return Err(de::Error::custom(format!("\"{text}\" is not a rate (write e.g. `200/s` or `6000/m`)"))),
        };
        match number.parse::<f64>() {
            // The agent plans rate × duration requests: a rate of 1e300/s is no plan.
            Ok(n) if n.is_finite() && n / secs > crate::pipeline::limits::MAX_RATE_PER_SEC => Err(de::Error::custom(format!(
                "\"{}\" is more than the most a load stage sends, {}/s",
                crate::pipeline::limits::excerpt(&text),
                crate::pipeline::limits::MAX_RATE_PER_SEC
            ))),
            Ok(n) if n > 0.0 && n.is_finite() => Ok(Rate(n / secs)),
            _ => Err(de::Error::custom(format!("\"{text}\" is not a rate (write e.g. `200/s` or `6000/m`)"))),
        }
    }
}

/// A command as a list of arguments, or one string run by `sh -c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "Vec<String>", from = "CommandForm")]
pub struct CommandSpec(pub Vec<String>);

impl From<CommandSpec> for Vec<String> {
    fn from(c: CommandSpec) -> Self {
        c.0
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a command string or a list of arguments")]
enum CommandForm {
    Shell(String),
    Argv(Vec<String>),
}

impl From<CommandForm> for CommandSpec {
    fn from(f: CommandForm) -> Self {
        match f {
            CommandForm::Shell(s) => CommandSpec(vec!["/bin/sh".into(), "-c".into(), s]),
            CommandForm::Argv(v) => CommandSpec(v),
        }
    }
}

/// One string or a list of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(into = "Vec<String>", from = "OneOrManyForm")]
pub struct OneOrMany(pub Vec<String>);

impl From<OneOrMany> for Vec<String> {
    fn from(o: OneOrMany) -> Self {
        o.0
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a string or a list of strings")]
enum OneOrManyForm {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrManyForm> for OneOrMany {
    fn from(f: OneOrManyForm) -> Self {
        match f {
            OneOrManyForm::One(s) => OneOrMany(vec![s]),
            OneOrManyForm::Many(v) => OneOrMany(v),
        }
    }
}

/// `"8080"` or `"18080:8080"` (host port on loopback : container port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct PortSpec {
    pub container: u16,
    pub host: Option<u16>,
}

impl From<PortSpec> for String {
    fn from(p: PortSpec) -> String {
        p.to_string()
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            Some(h) => write!(f, "{h}:{}", self.container),
            None => write!(f, "{}", self.container),
        }
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || de::Error::custom(format!("\"{text}\" is not a port (write `8080` or `18080:8080`)"));
        let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p > 0);
        match text.split_once(':') {
            Some((h, c)) => Ok(PortSpec { host: Some(port(h).ok_or_else(bad)?), container: port(c).ok_or_else(bad)? }),
            None => Ok(PortSpec { host: None, container: port(&text).ok_or_else(bad)? }),
        }
    }
}
