//! Structured tunnel events for the audit log: every link event, every
//! agent authentication failure and every routed request. The gateway calls
//! an [`EventSink`] (the CLI wires it to `airlock-audit`); without one, the
//! events still go to the log and link events to the state's history.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TunnelEvent {
    /// A link came up, was replaced, went down, or failed TLS/authentication.
    Link {
        tunnel: String,
        connector: String,
        link: u32,
        event: String,
        peer: String,
        detail: String,
    },
    /// An agent request refused at layer 1. `reason`: `no_key`, `bad_key`
    /// or `out_of_scope`. Never contains the key itself.
    AgentAuthFailed {
        reason: &'static str,
        key_id: Option<String>,
        agent: Option<String>,
        tunnel: Option<String>,
        route: Option<String>,
    },
    /// A same-origin browser request naming a non-loopback `Host` on a
    /// loopback agent listener, refused with 403 before authentication
    /// (DNS rebinding; see origin.rs). `tunnel`/`route` are what the path
    /// named (unauthenticated, so only what the request claimed).
    Rebound {
        tunnel: Option<String>,
        route: Option<String>,
        host: Option<String>,
        origin: Option<String>,
        remote: String,
    },
    /// One request to the admin API: who (the admin key holder at `remote`,
    /// or an unauthenticated caller), what (`action`, `target`) and the
    /// result (`status`, `error`). Never a token, key or the admin key.
    Admin {
        /// `tunnel.create`, `key.revoke`, …; `unauthorized` for a refused caller.
        action: String,
        /// The tunnel or key id acted on, when there is one.
        target: Option<String>,
        remote: String,
        ok: bool,
        status: u16,
        error: Option<String>,
    },
    /// A request sent down a link (or refused for want of one).
    Routed {
        agent: String,
        key_id: String,
        tunnel: String,
        route: String,
        request_id: String,
        http_method: String,
        mcp_method: Option<String>,
        mcp_session: Option<String>,
        status: u16,
        /// Time to the response headers.
        #[serde(with = "micros")]
        duration: Duration,
    },
}

/// Receives every [`TunnelEvent`]; must be cheap or hand off (it runs on
/// the request path).
pub trait EventSink: Send + Sync {
    fn record(&self, event: TunnelEvent);
}

mod micros {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_micros() as u64)
    }
}
