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

/// Where call records go.
pub trait AuditSink: Send + Sync {
    fn record(&self, rec: &CallRecord);
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
