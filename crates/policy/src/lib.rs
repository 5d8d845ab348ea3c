//! airlock-policy: which agent may list and call which tool, with which limits.
//!
//! [`Policy::compile`] turns an [`airlock_config::Config`] into lookup tables
//! once; [`Policy::decide`] is then a pure function of (agent, tool,
//! canonical arguments) that allocates nothing on the allow path. Everything
//! it does not positively allow is denied, with a reason the model can act on.
//!
//! Tools marked `approval: required` decide to [`Decision::NeedsApproval`]
//! with the [`CallHash`] of the exact call; an operator approves that hash
//! with `airlock approve`, which writes to the [`ApprovalStore`] the server
//! consults.

mod approvals;
mod canonical;
mod compile;
mod decision;

pub use approvals::{
    ApprovalError, ApprovalRequest, ApprovalStatus, ApprovalStore, MAX_PENDING_PER_AGENT,
};
pub use canonical::{call_hash, canonical_json, CallHash};
pub use compile::{Grant, Policy, PolicyError};
pub use decision::Decision;
