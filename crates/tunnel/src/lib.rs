//! The outbound-only MCP tunnel (see docs/tunnel.md).
//!
//! * [`connector`]: dials N links to the gateway (TCP, optional HTTP CONNECT
//!   proxy, TLS 1.3 with client certificate, then the token in a handshake
//!   frame) and serves HTTP/2 on each, forwarding each stream to a configured
//!   route on an allowed address.
//! * [`gateway`]: accepts links (mTLS against the tunnel's registered CAs +
//!   token) and agent requests (`/t/TUNNEL/ROUTE/PATH`, bearer key), and
//!   sends each agent request as one HTTP/2 stream down a live link with a
//!   signed identity assertion.
//! * [`state`]: the gateway's SQLite state. [`certs`]: CA/cert helpers.

pub use gateway::admin;
pub mod certs;
pub mod connector;
pub mod events;
pub mod gateway;
pub mod link;
mod metrics;
mod origin;
pub mod paths;
pub mod state;
mod stdio;
pub use stdio::die_with_parent;
pub mod tls;
mod upstream;
mod wake;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type used on every hop.
pub type Body = BoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("certificate generation: {0}")]
    Cert(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("link protocol: {0}")]
    Protocol(String),
    #[error("gateway state: {0}")]
    State(String),
    #[error("configuration: {0}")]
    Config(String),
    /// An error the admin API answered (its message as is).
    #[error("{0}")]
    Admin(String),
    // Transparent: the I/O error's own text once, not again as its source.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
}

pub(crate) fn full(b: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(b.into())
        .map_err(|e| match e {})
        .boxed()
}

pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

/// Hop-by-hop and framing headers that never cross a hop.
pub(crate) fn is_hop_header(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// Constant-time equality (lengths are not secret here: hashes, keys).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
