//! Errors of the engine seams, worded for the person at the terminal. Every engine kind
//! speaks them; the Docker one fills them from bollard's errors.

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot reach the Docker engine at {endpoint}: {reason}. Is dockerd running? (set DOCKER_HOST or --docker-host to use another engine)")]
    Unreachable { endpoint: String, reason: String },
    #[error("image '{image}' is not on this engine and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("the image build failed: {0}")]
    Build(String),
    #[error("Docker {action} failed: {reason}")]
    Api { action: String, reason: String },
    /// Swarm's update of a live service failed and Swarm rolled it back: the version that
    /// served serves on.
    #[error("Swarm rolled the update of {service} back ({reason}); the version that served keeps serving")]
    RolledBack { service: String, reason: String, notes: Vec<String> },
}
