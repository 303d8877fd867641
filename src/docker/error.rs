//! Errors of the engine boundary, worded for the person at the terminal.

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot reach the Docker engine at {endpoint}: {reason}. Is dockerd running? (set DOCKER_HOST or --docker-host to use another engine)")]
    Unreachable { endpoint: String, reason: String },
    #[error("image '{image}' is not on this engine and could not be pulled: {reason}")]
    ImageUnavailable { image: String, reason: String },
    #[error("the image build failed: {0}")]
    Build(String),
    #[error("Docker {action} failed: {reason}")]
    Api { action: String, reason: String },
}

impl DockerError {
    pub fn api(action: impl Into<String>, err: &bollard::errors::Error) -> Self {
        DockerError::Api { action: action.into(), reason: reason(err) }
    }
}

/// The most useful words in a bollard error: the engine's own message when it sent one,
/// else the innermost cause (e.g. "No such file or directory" for a missing socket).
pub fn reason(err: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match err {
        E::DockerResponseServerError { message, .. } => message.clone(),
        E::DockerContainerWaitError { error, code } => format!("{error} (exit code {code})"),
        other => {
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg = s.to_string();
                source = s.source();
            }
            msg
        }
    }
}

pub fn is_not_found(err: &bollard::errors::Error) -> bool {
    matches!(err, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}
