//! airlock-tools: the declared MCP tool kinds — `git.read_file`,
//! `git.list_files`, `git.log`, `postgres.query` and `http.request`.
//!
//! The contract with the MCP server is small:
//! 1. [`build_tool`] turns one `tools:` entry into a [`ToolImpl`] once, at
//!    (re)load; connection pools and clients live inside it.
//! 2. For each agent the server computes [`Limits::effective`] from the tool
//!    and that agent's constraint (limits only ever narrow).
//! 3. Per call: [`ToolImpl::canonicalize`] validates the raw arguments
//!    against the schema [`ToolImpl::input_schema`] advertises and normalises
//!    them (repo names, paths, HTTP paths); the policy decides on that
//!    canonical value; then [`ToolImpl::call`] runs exactly that value.
//!
//! Errors ([`ToolError`]) are written for the model: they say what was wrong
//! and what to do, and never contain a secret value.

mod args;
mod error;
pub mod git;
pub mod http;
mod limits;
pub mod postgres;

use airlock_config::{Tool, ToolKind};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use error::ToolError;
pub use limits::Limits;

/// Who is calling, and how to stop. `cancel` is cancelled when the client
/// cancels the request or goes away; tools stop promptly and return
/// [`ToolError::Cancelled`].
#[derive(Debug, Clone)]
pub struct CallContext {
    pub agent: String,
    /// MCP session id, `None` for stateless requests.
    pub session: Option<String>,
    pub cancel: CancellationToken,
}

/// What a successful call produced. `text` is what the model reads;
/// `structured` is the same result as JSON (MCP `structuredContent`).
/// `is_error` marks a result the remote side reported as a failure (an HTTP
/// 5xx, say) that is still worth showing verbatim.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    pub text: String,
    pub structured: Option<Value>,
    pub is_error: bool,
}

impl ToolOutput {
    /// A result whose text is the pretty-printed JSON value.
    pub fn json(value: Value) -> ToolOutput {
        ToolOutput {
            text: serde_json::to_string_pretty(&value).unwrap_or_default(),
            structured: Some(value),
            is_error: false,
        }
    }
}

/// One declared tool kind. Implementations are shared by every agent
/// allowed to call the tool; everything agent-specific comes in `limits`.
#[async_trait::async_trait]
pub trait ToolImpl: Send + Sync {
    /// JSON Schema (draft 2020-12) of the arguments as this agent may send
    /// them (e.g. `repo` enumerates only the repos `limits` allows).
    fn input_schema(&self, limits: &Limits) -> Value;

    /// Validates `args` against [`ToolImpl::input_schema`] and returns the
    /// canonical arguments the policy decides on and [`ToolImpl::call`]
    /// runs. Never touches the network or a database; may read a
    /// repository's refs.
    fn canonicalize(&self, args: &Value, limits: &Limits) -> Result<Value, ToolError>;

    /// Runs one call with canonical arguments. Re-validates them (a caller
    /// that skipped [`ToolImpl::canonicalize`] gets no more than it would
    /// have), enforces `limits` and stops on `ctx.cancel`.
    async fn call(
        &self,
        ctx: &CallContext,
        args: Value,
        limits: &Limits,
    ) -> Result<ToolOutput, ToolError>;
}

/// Builds the implementation of one `tools:` entry (call it at load and on
/// reload). `Ok(None)` for the `agent.*` kinds, which are served elsewhere.
/// Fails ([`ToolError::Config`]) only on settings no call could use (an
/// empty statement, duplicate parameter names, a bad base URL or header
/// name). Nothing external is touched here: repositories are opened and the
/// DSN resolved at the first call, so a repository or database that is
/// down at load time does not stop the server.
pub fn build_tool(name: &str, tool: &Tool) -> Result<Option<Box<dyn ToolImpl>>, ToolError> {
    let built: Box<dyn ToolImpl> = match &tool.kind {
        ToolKind::GitReadFile(c) => Box::new(git::GitTool::new(name, git::GitOp::ReadFile, c)),
        ToolKind::GitListFiles(c) => Box::new(git::GitTool::new(name, git::GitOp::ListFiles, c)),
        ToolKind::GitLog(c) => Box::new(git::GitTool::new(name, git::GitOp::Log, c)),
        ToolKind::HttpRequest(c) => Box::new(http::HttpTool::new(name, c)?),
        ToolKind::PostgresQuery(c) => Box::new(postgres::PostgresTool::new(name, c)?),
        ToolKind::AgentBash(_)
        | ToolKind::AgentRead(_)
        | ToolKind::AgentWrite(_)
        | ToolKind::AgentEdit(_)
        | ToolKind::AgentGlob(_)
        | ToolKind::AgentGrep(_) => return Ok(None),
    };
    Ok(Some(built))
}
