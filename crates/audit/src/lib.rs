//! airlock-audit: the tamper-evident audit log every part writes through.
//!
//! * [`Event`] — what happened, built with setters (`Event::new(Kind::ToolCall).agent(..).tool(..).args(..)`).
//! * [`open`] → [`AuditHandle`] — cheap to clone; `record` queues, `record_durable` returns once fsynced.
//! * Records are redacted ([`redact`]) before they are queued, written as canonical JSON lines
//!   ([`canonical`]), chained by SHA-256, and covered by Ed25519-signed checkpoints.
//! * [`verify::verify`] names the first bad record; [`query::scan`] reads them back.

pub mod canonical;
mod event;
pub mod keys;
mod log;
pub mod query;
pub mod redact;
mod segments;
pub mod time;
pub mod verify;

pub use event::{Decision, Egress, Event, Kind, Who};
pub use keys::{PublicKey, SigningKey};
pub use log::{open, AuditHandle, LogOptions, GENESIS};

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error("audit log: {0}")]
    Io(String),
    #[error("audit key: {0}")]
    Key(String),
    #[error("audit log corrupted: {0}")]
    Corrupt(String),
    #[error("the audit log is closed")]
    Closed,
}
