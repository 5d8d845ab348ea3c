//! MCP over stdin/stdout for one agent named by the operator.

use std::sync::Arc;

use rmcp::ServiceExt;

use crate::handler::Handler;
use crate::state::Shared;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("agent `{0}` is not configured under agents:")]
    UnknownAgent(String),
    #[error("MCP over stdio: {0}")]
    Serve(String),
}

/// Serves until the client closes stdin.
pub async fn serve_stdio(shared: Arc<Shared>, agent: &str) -> Result<(), StdioError> {
    if !shared.snapshot().policy.has_agent(agent) {
        return Err(StdioError::UnknownAgent(agent.to_string()));
    }
    let session = new_session_id();
    tracing::info!(target: "airlock::mcp", agent, session = %session, "serving MCP on stdio");
    let handler = Handler::stdio(shared, agent.to_string(), session);
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Serve(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError::Serve(e.to_string()))?;
    Ok(())
}

/// 128 random bits, hex.
pub(crate) fn new_session_id() -> String {
    let mut b = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the system RNG is available");
    b.iter().map(|x| format!("{x:02x}")).collect()
}
