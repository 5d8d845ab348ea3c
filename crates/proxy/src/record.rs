//! One record per connection or request, and where records go.

use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
    /// Denied by host rules, let through because the mode is `report`.
    ReportDeny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Connect,
    Socks5,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The run or session this proxy serves.
    pub session: String,
    pub protocol: Protocol,
    /// Canonical host, or the raw target when it could not be parsed.
    pub host: String,
    pub port: u16,
    pub resolved: Option<SocketAddr>,
    pub decision: Decision,
    /// The rule that decided (`allow: api.github.com`, `deny: …`, `address`, `auth`, `http`).
    pub rule: String,
    pub reason: Option<String>,
    /// Name of the credential injected, never its value.
    pub credential: Option<String>,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration: Duration,
    /// HTTP status (or SOCKS reply code) sent to the client.
    pub status: Option<u16>,
}

/// Where records go besides the run's own list (audit log, tracing).
pub trait RecordSink: Send + Sync + 'static {
    fn record(&self, rec: &ConnectionRecord);
}

/// Logs each record through `tracing`.
#[derive(Debug, Default)]
pub struct TracingSink;

impl RecordSink for TracingSink {
    fn record(&self, r: &ConnectionRecord) {
        tracing::info!(
            session = %r.session,
            protocol = ?r.protocol,
            host = %r.host,
            port = r.port,
            resolved = ?r.resolved,
            decision = ?r.decision,
            rule = %r.rule,
            reason = r.reason.as_deref().unwrap_or(""),
            credential = r.credential.as_deref().unwrap_or(""),
            bytes_up = r.bytes_up,
            bytes_down = r.bytes_down,
            duration_us = r.duration.as_micros() as u64,
            status = r.status.unwrap_or(0),
            "egress"
        );
    }
}
