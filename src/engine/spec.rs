//! The values that cross the engine seams: what a step is, what limits it runs under, what
//! comes back out of it. Plain data, nothing engine-specific.

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::EngineError;

/// What a container may use of the host, enforced by the engine's cgroups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResourceLimits {
    /// Bytes of memory, swap included: past it the kernel's OOM killer ends a process.
    pub memory: u64,
    /// CPU time as a number of CPUs (1.5: one and a half cores' worth per period).
    pub cpus: f64,
    /// Processes and threads at once: a fork bomb stops here.
    pub pids: i64,
}

/// How much of the kernel a container's processes may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confinement {
    /// The pipeline's code (stages, services, app versions): Docker's default capabilities
    /// less NET_RAW (raw sockets: spoofing on the run's network), MKNOD (device nodes) and
    /// AUDIT_WRITE, which no build or test tool needs.
    #[default]
    Workload,
    /// Gantry's own agents: no capabilities at all, a read-only root filesystem, user 65534;
    /// the only writable place is the spec's scratch volume.
    Agent,
}

/// Capabilities a workload container loses from Docker's default set.
pub const WORKLOAD_CAP_DROP: &[&str] = &["NET_RAW", "MKNOD", "AUDIT_WRITE"];
/// The user agents run as (nobody), whatever their image says.
pub const AGENT_USER: &str = "65534:65534";

/// How a stopped step ended, beyond its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExitState {
    /// The kernel's OOM killer ended a process of the step (its memory limit).
    pub oom_killed: bool,
    /// The memory limit it ran under, in bytes, if it had one.
    pub memory_limit: Option<u64>,
}

/// An image as an inspect shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageFacts {
    pub id: String,
    pub labels: HashMap<String, String>,
}

/// One container of a run or an environment: an attempt of a stage, a probe, an agent,
/// a service, an app version. The engine decides how it is made real.
#[derive(Debug, Clone, Default)]
pub struct StepSpec {
    pub name: String,
    pub image: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub labels: HashMap<String, String>,
    pub network: Option<String>,
    pub aliases: Vec<String>,
    /// Named volumes to mount: (volume name, path in the container).
    pub volumes: Vec<(String, String)>,
    /// Ports published on the host's loopback: (host port, container port).
    pub published: Vec<(u16, u16)>,
    /// Memory, CPU and process limits; `None` only for containers that never start.
    pub limits: Option<ResourceLimits>,
    pub confinement: Confinement,
    /// A path given an anonymous volume (labelled as the container is, removed with it):
    /// where a read-only agent receives its spec and writes its result.
    pub scratch: Option<String>,
    /// Started ahead of its turn (`Steps::start_held`): the step's stdin is the gate its
    /// command waits on, as `HOLD_GATE` does at the head of a shell script.
    pub held: bool,
}

/// The first line of a held step's shell script: it waits for the engine to say `go` on
/// its stdin (`Release::go`), and ends without running anything if the gate closes
/// instead (the release dropped, or Gantry gone); then stdin is /dev/null, as for a step
/// that was never held.
pub const HOLD_GATE: &str = "read -r gantry_go && [ \"$gantry_go\" = go ] || exit 125; exec </dev/null\n";

/// Opens a held step's gate; dropping it closes the gate, and the step ends unrun.
pub struct Release(tokio::sync::oneshot::Sender<()>);

impl Release {
    pub fn new() -> (Release, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (Release(tx), rx)
    }

    pub fn go(self) {
        let _ = self.0.send(());
    }
}

/// What to build: the context is a tar archive; the rest mirrors `docker build`.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub tag: String,
    pub dockerfile: String,
    pub build_args: HashMap<String, String>,
    pub target: Option<String>,
    pub labels: HashMap<String, String>,
    /// Memory and CPU of the builder's intermediate containers (the classic builder takes
    /// no process limit).
    pub limits: Option<ResourceLimits>,
}

/// A piece of a step's output, as the engine delivers it (not line-aligned).
#[derive(Debug, Clone)]
pub enum OutputChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// A step's output until it ends.
pub type Output = BoxStream<'static, Result<OutputChunk, EngineError>>;

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub containers: u32,
    pub networks: u32,
    pub volumes: u32,
}

impl SweepReport {
    pub fn is_empty(&self) -> bool {
        self.containers + self.networks + self.volumes == 0
    }
}
