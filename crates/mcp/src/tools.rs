//! How the server sees a tool: built once per declared tool by a
//! [`Catalog`], then served to each agent with that agent's constraint
//! applied. The declared kinds (git, postgres, http) come from
//! `airlock-tools`; the agent toolset plugs in through the same traits.

use std::sync::{Arc, Mutex};

use airlock_config::{Constraint, Tool};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::Peer;
use rmcp::RoleServer;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Who is calling, on which channel, and how to stop.
#[derive(Debug, Clone)]
pub struct CallCtx {
    pub agent: String,
    /// The MCP session (2025-11-25 `Mcp-Session-Id`, or the stdio
    /// connection); `None` for stateless 2026-07-28 requests.
    pub session: Option<String>,
    /// Cancelled when the client cancels or goes away.
    pub cancel: CancellationToken,
    /// Where `notifications/progress` go; `None` when the request carried
    /// no `_meta.progressToken` (then nothing is sent).
    pub progress: Option<Progress>,
}

/// The progress channel of one `tools/call`: the client's token and the
/// connection (stdio, session stream or the request's own SSE response)
/// the notifications travel on.
#[derive(Clone)]
pub struct Progress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
    /// The last value sent: the spec wants `progress` to increase with every
    /// notification, so a report that would not is dropped.
    last: Arc<Mutex<Option<f64>>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("token", &self.token)
            .finish()
    }
}

impl Progress {
    pub(crate) fn new(peer: Peer<RoleServer>, token: ProgressToken) -> Progress {
        Progress {
            peer,
            token,
            last: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends one `notifications/progress`. Best effort: a client that went
    /// away is noticed through cancellation, not here, so a failed send is
    /// only logged.
    pub async fn report(&self, progress: f64, total: Option<f64>, message: impl Into<String>) {
        let (progress, total) = {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            let Some(next) = next_progress(*last, progress, total) else {
                return;
            };
            *last = Some(next.0);
            next
        };
        let mut p =
            ProgressNotificationParam::new(self.token.clone(), progress).with_message(message);
        if let Some(t) = total.filter(|t| t.is_finite()) {
            p = p.with_total(t);
        }
        if let Err(e) = self.peer.notify_progress(p).await {
            tracing::debug!(target: "airlock::mcp", error = %e, "progress notification not delivered");
        }
    }
}

/// What to send after `last`: progress must increase with every
/// notification, so a report that does not is dropped, except the final one
/// (it has a total): timed in milliseconds, it can fall in the same one as
/// the last output report, and is then sent a millisecond later instead.
fn next_progress(
    last: Option<f64>,
    progress: f64,
    total: Option<f64>,
) -> Option<(f64, Option<f64>)> {
    if !progress.is_finite() {
        return None;
    }
    match last {
        Some(l) if progress <= l && total.is_some() => Some((l + 0.001, Some(l + 0.001))),
        Some(l) if progress <= l => None,
        _ => Some((progress, total)),
    }
}

#[cfg(test)]
mod progress_tests {
    use super::next_progress;

    #[test]
    fn progress_only_increases_and_the_final_report_is_never_dropped() {
        assert_eq!(next_progress(None, 1.0, None), Some((1.0, None)));
        assert_eq!(next_progress(Some(1.0), 2.0, None), Some((2.0, None)));
        assert_eq!(next_progress(Some(2.0), 2.0, None), None);
        assert_eq!(next_progress(Some(2.0), 1.5, None), None);
        assert_eq!(
            next_progress(Some(2.0), 3.0, Some(3.0)),
            Some((3.0, Some(3.0)))
        );
        // The final report in the same millisecond as the last one.
        let (p, t) = next_progress(Some(2.514), 2.514, Some(2.514)).unwrap();
        assert!(p > 2.514 && t == Some(p));
        assert_eq!(next_progress(None, f64::NAN, Some(1.0)), None);
    }
}

/// What a call produced. `is_error` results are tool errors the model sees.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub text: String,
    pub structured: Option<Value>,
    pub is_error: bool,
}

/// Why arguments were refused before the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// Not what the schema asks for: fix and retry.
    Invalid(String),
    /// Well-formed but outside what the tool may do (a path escaping its
    /// root, a route not on the list): audited as a denial.
    Denied(String),
}

/// One tool as one agent sees it: schema, canonicaliser and call, with the
/// agent's effective limits already applied.
#[async_trait::async_trait]
pub trait Served: Send + Sync {
    /// JSON Schema of the arguments, for tools/list.
    fn input_schema(&self) -> Value;
    /// Validates and normalises the arguments before the decision; the
    /// error is shown to the model, so it says what to fix.
    fn canonicalize(&self, args: &Value) -> Result<Value, ArgError>;
    /// Runs the call. `Err` is a failure of the tool (shown to the model as
    /// a tool error and audited as failed).
    async fn call(&self, ctx: &CallCtx, args: Value) -> Result<Output, String>;
}

/// A declared tool, shared by every agent allowed to call it (connection
/// pools and the like live here).
pub trait Declared: Send + Sync {
    /// The tool narrowed by one agent's constraint.
    fn serve(
        &self,
        tool: &Tool,
        constraint: Option<&Constraint>,
    ) -> Result<Arc<dyn Served>, String>;
}

/// Builds declared tools from their config.
pub trait Catalog: Send + Sync {
    /// `Ok(None)` means this catalog does not know the kind.
    fn build(&self, name: &str, tool: &Tool) -> Result<Option<Arc<dyn Declared>>, String>;

    /// An MCP session ended (DELETE, expiry, stdio EOF): release what the
    /// catalog holds for it.
    fn session_ended(&self, _agent: &str, _session: &str) {}
}

/// Tries each catalog in turn; a kind no catalog builds is a config error
/// (fail closed: a declared tool the server cannot run is never listed).
pub struct Catalogs(pub Vec<Arc<dyn Catalog>>);

impl Catalogs {
    pub fn build(&self, name: &str, tool: &Tool) -> Result<Arc<dyn Declared>, String> {
        for c in &self.0 {
            if let Some(d) = c.build(name, tool)? {
                return Ok(d);
            }
        }
        Err(format!(
            "tools.{name}: kind `{}` is not available in this build",
            tool.kind.name()
        ))
    }

    pub fn session_ended(&self, agent: &str, session: &str) {
        for c in &self.0 {
            c.session_ended(agent, session);
        }
    }
}
