//! The outcome of one decision.

use std::sync::Arc;

use crate::canonical::CallHash;

/// What the policy says about one call. `rule` names the part of the config
/// that decided, for the audit record and for the operator reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        rule: Arc<str>,
    },
    Deny {
        rule: Arc<str>,
        /// Written for the model: what was refused and what it can do instead.
        reason: String,
    },
    /// The tool requires an operator's approval of this exact call.
    NeedsApproval {
        rule: Arc<str>,
        call_hash: CallHash,
    },
}

impl Decision {
    pub fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule }
            | Decision::Deny { rule, .. }
            | Decision::NeedsApproval { rule, .. } => rule,
        }
    }

    /// `allow`, `deny` or `needs_approval`: the audit record's decision field.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::NeedsApproval { .. } => "needs_approval",
        }
    }
}
