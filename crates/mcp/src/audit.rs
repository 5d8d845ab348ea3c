//! One record per tools/call: allowed, denied, failed.

use std::time::Duration;

use serde_json::Value;

/// Everything the audit log keeps about one tools/call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    pub agent: String,
    pub session: Option<String>,
    /// The client's stated intent (`_meta["airlock/intent"]`), capped.
    pub intent: Option<String>,
    pub tool: String,
    /// Canonical arguments when the tool accepted them, else the raw ones.
    pub args: Value,
    /// `allow`, `deny`, `needs_approval`, or `invalid` (arguments refused
    /// before any decision).
    pub decision: &'static str,
    pub rule: String,
    /// `ok`, `error` (the tool returned an error result), `failed` (the
    /// tool could not run), `denied`, `pending_approval`, `invalid`.
    pub status: &'static str,
    pub duration: Duration,
    /// First bytes of the result text or the denial reason.
    pub summary: String,
    pub call_hash: Option<String>,
}

/// A request refused before any tool was involved because the gateway's
/// identity assertion could not be accepted. Plain missing or wrong Bearer
/// keys are not recorded: anyone who can reach the port can send those, and
/// the audit log is not a scanner log. An assertion, by contrast, comes from
/// the gateway after the agent proved its key there, so a refusal means a
/// misconfiguration or an attack worth a durable line.
#[derive(Debug, Clone)]
pub struct AuthRecord {
    /// The agent the assertion names, when it could be read.
    pub agent: Option<String>,
    pub tunnel: Option<String>,
    pub route: Option<String>,
    /// Always `deny` today; kept as a field so records read like call ones.
    pub decision: &'static str,
    /// What refused it, e.g. `gateway_identity.agent_not_configured`.
    pub rule: String,
    pub summary: String,
}

/// Where call records go.
pub trait AuditSink: Send + Sync {
    fn record(&self, rec: &CallRecord);

    /// A refused gateway identity assertion. The default logs it as a
    /// structured event so sinks written before this existed still keep it.
    fn auth(&self, r: &AuthRecord) {
        tracing::info!(
            target: "airlock::audit",
            agent = r.agent.as_deref().unwrap_or(""),
            tunnel = r.tunnel.as_deref().unwrap_or(""),
            route = r.route.as_deref().unwrap_or(""),
            decision = r.decision,
            rule = %r.rule,
            summary = %r.summary,
            "auth"
        );
    }
}

/// Records as structured `tracing` events (target `airlock::audit`), used
/// when no audit log is configured.
pub struct TracingAudit;

impl AuditSink for TracingAudit {
    fn record(&self, r: &CallRecord) {
        tracing::info!(
            target: "airlock::audit",
            agent = %r.agent,
            session = r.session.as_deref().unwrap_or(""),
            intent = r.intent.as_deref().unwrap_or(""),
            tool = %r.tool,
            args = %r.args,
            decision = r.decision,
            rule = %r.rule,
            status = r.status,
            duration_us = r.duration.as_micros() as u64,
            summary = %r.summary,
            call_hash = r.call_hash.as_deref().unwrap_or(""),
            "tools/call"
        );
    }
}

/// The first `max` bytes of `s` (on a char boundary), with a marker when cut.
pub fn summarize(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &s[..end], s.len())
}
