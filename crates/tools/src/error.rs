//! The one error type of every tool. Messages go to the model verbatim, so
//! each says what was wrong and what to do; none ever holds a secret value.

/// Why a tool call (or building a tool) did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the schema or a limit; fix them and retry.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// Well-formed, but outside what this tool may do (a path escaping the
    /// repository, a route not on the allow-list).
    #[error("denied: {0}")]
    Denied(String),
    /// The tool ran and failed (not found, database error, upstream down).
    #[error("{0}")]
    Failed(String),
    /// The tool's timeout passed.
    #[error("timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// The caller cancelled the request.
    #[error("cancelled")]
    Cancelled,
    /// The tool's configuration cannot be used (reported at load time).
    #[error("configuration: {0}")]
    Config(String),
}

impl ToolError {
    pub(crate) fn invalid(msg: impl Into<String>) -> ToolError {
        ToolError::InvalidArguments(msg.into())
    }
    pub(crate) fn denied(msg: impl Into<String>) -> ToolError {
        ToolError::Denied(msg.into())
    }
    pub(crate) fn failed(msg: impl Into<String>) -> ToolError {
        ToolError::Failed(msg.into())
    }
}
