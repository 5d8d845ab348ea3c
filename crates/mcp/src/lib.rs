//! airlock-mcp: the policy-enforcing MCP server.
//!
//! Every `tools/call` goes: canonicalise (the tool validates and normalises
//! its arguments) → decide (the pure policy) → approval (for tools that need
//! one) → call → audit. Over HTTP the caller is the agent its Bearer key
//! names; over stdio the agent is fixed by the operator.

pub mod agent;
pub mod audit;
pub mod auth;
mod call;
pub mod declared;
mod handler;
pub mod http;
pub mod metrics;
pub mod state;
pub mod stdio;
pub mod tools;

pub use audit::{AuditSink, AuthRecord, CallRecord, TracingAudit};
pub use call::INTENT_META_KEY;
pub use handler::Caller;
pub use http::{GatewayIdentity, HttpOptions, HttpServer};
pub use state::{BuildError, Shared, SharedOptions, Snapshot};
pub use stdio::serve_stdio;
pub use tools::{ArgError, CallCtx, Catalog, Catalogs, Declared, Output, Progress, Served};
