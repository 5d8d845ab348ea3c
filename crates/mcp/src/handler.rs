//! The rmcp `ServerHandler`: one instance per MCP session (2025-11-25 and
//! stdio) or per request (stateless 2026-07-28).

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::state::Shared;

/// The authenticated caller, put into the HTTP request's extensions by the
/// HTTP layer after the Bearer key checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent: String,
}

pub struct Handler {
    pub(crate) shared: Arc<Shared>,
    /// stdio: the agent named on the command line, and the connection's id.
    fixed: Option<(String, String)>,
    /// The agent that opened this session; every later request of the
    /// session must come from the same agent.
    session_agent: OnceLock<String>,
    /// The session id this handler served, for the end-of-session hook.
    session_id: OnceLock<String>,
}

impl Drop for Handler {
    /// rmcp drops the handler when its session ends (DELETE, expiry,
    /// shutdown, stdio EOF); per-session resources (jails) go with it.
    fn drop(&mut self) {
        let agent = self
            .fixed
            .as_ref()
            .map(|(a, _)| a)
            .or(self.session_agent.get());
        let session = self
            .fixed
            .as_ref()
            .map(|(_, s)| s)
            .or(self.session_id.get());
        if let (Some(agent), Some(session)) = (agent, session) {
            self.shared.session_ended(agent, session);
        }
    }
}

pub(crate) struct Who {
    pub agent: String,
    pub session: Option<String>,
}

impl Handler {
    pub fn http(shared: Arc<Shared>) -> Handler {
        Handler {
            shared,
            fixed: None,
            session_agent: OnceLock::new(),
            session_id: OnceLock::new(),
        }
    }

    pub fn stdio(shared: Arc<Shared>, agent: String, session: String) -> Handler {
        Handler {
            shared,
            fixed: Some((agent, session)),
            session_agent: OnceLock::new(),
            session_id: OnceLock::new(),
        }
    }

    /// Who sent this request. Fails closed: no identity, or an identity
    /// other than the session's, is an error.
    pub(crate) fn who(&self, ctx: &RequestContext<RoleServer>) -> Result<Who, McpError> {
        if let Some((agent, session)) = &self.fixed {
            return Ok(Who {
                agent: agent.clone(),
                session: Some(session.clone()),
            });
        }
        let parts = ctx.extensions.get::<http::request::Parts>();
        let caller = parts.and_then(|p| p.extensions.get::<Caller>());
        let Some(caller) = caller else {
            return Err(McpError::invalid_request(
                "no authenticated agent on this request",
                None,
            ));
        };
        let session = parts
            .and_then(|p| p.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bound = self.session_agent.get_or_init(|| caller.agent.clone());
        if let Some(sid) = &session {
            let _ = self.session_id.set(sid.clone());
        }
        if *bound != caller.agent {
            tracing::warn!(target: "airlock::mcp", session = session.as_deref().unwrap_or(""), owner = %bound, caller = %caller.agent, "session used with another agent's key; refused");
            return Err(McpError::invalid_request(
                "this MCP session belongs to another agent; start your own session",
                None,
            ));
        }
        Ok(Who {
            agent: caller.agent.clone(),
            session,
        })
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("airlock", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Tools run under the operator's airlock policy. A refused call returns a tool error \
                 saying why; tools marked for approval return a call hash an operator must approve.",
            )
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        self.who(&context)?;
        context.peer.set_peer_info(request.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let who = self.who(&context)?;
        let snap = self.shared.snapshot();
        let tools = snap
            .listings
            .get(&who.agent)
            .map(|l| l.as_ref().clone())
            .unwrap_or_default();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let who = self.who(&context)?;
        // rmcp moves the request's `_meta` into the context.
        let intent = context
            .meta
            .get(crate::call::INTENT_META_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        // The token is usually in the context's meta; a transport that left
        // it in the params still counts.
        let token = context
            .meta
            .get_progress_token()
            .or_else(|| request.meta.as_ref().and_then(|m| m.get_progress_token()));
        let progress = token.map(|t| crate::tools::Progress::new(context.peer.clone(), t));
        Ok(crate::call::run(
            &self.shared,
            who,
            request,
            intent,
            context.ct.clone(),
            progress,
        )
        .await
        .into())
    }
}
