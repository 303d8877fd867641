//! bollard's errors turned into the engine seams' `EngineError`.

use crate::engine::EngineError;

/// An API call that failed, worded with the engine's own reason.
pub(crate) fn api(action: impl Into<String>, err: &bollard::errors::Error) -> EngineError {
    EngineError::Api { action: action.into(), reason: reason(err) }
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
