//! One tools/call: canonicalise → decide → approval → call → audit.

use std::time::Instant;

use airlock_policy::{canonical_json, Decision};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audit::{summarize, CallRecord};
use crate::handler::Who;
use crate::state::Shared;
use crate::tools::{ArgError, CallCtx, Progress};

/// The `_meta` key a client puts its stated intent under.
pub const INTENT_META_KEY: &str = "airlock/intent";
/// Longest intent kept in the audit record.
const MAX_INTENT: usize = 1024;
/// Longest result excerpt kept in the audit record.
const MAX_SUMMARY: usize = 512;

fn tool_error(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

pub(crate) async fn run(
    shared: &Shared,
    who: Who,
    req: CallToolRequestParams,
    ctx_intent: Option<String>,
    cancel: CancellationToken,
    progress: Option<Progress>,
) -> CallToolResult {
    let started = Instant::now();
    let snap = shared.snapshot();
    let tool = req.name.to_string();
    let intent = req
        .meta
        .as_ref()
        .and_then(|m| m.get(INTENT_META_KEY))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(ctx_intent)
        .map(|s| summarize(&s, MAX_INTENT));
    let raw_args = Value::Object(req.arguments.unwrap_or_default());
    let metric_tool = if snap.declared.contains(&tool) {
        tool.as_str()
    } else {
        "_unknown"
    };

    let mut rec = CallRecord {
        agent: who.agent.clone(),
        session: who.session.clone(),
        intent,
        tool: tool.clone(),
        args: Value::Null,
        decision: "deny",
        rule: String::new(),
        status: "denied",
        duration: Default::default(),
        summary: String::new(),
        call_hash: None,
    };
    let finish = |mut rec: CallRecord, outcome: &'static str, result: CallToolResult| {
        rec.duration = started.elapsed();
        shared.metrics.call(metric_tool, outcome, rec.duration);
        shared.audit.record(&rec);
        result
    };

    let entry = snap.entries.get(&who.agent).and_then(|m| m.get(&tool));
    let Some(entry) = entry else {
        // Not allowed (or unknown): let the policy word the refusal.
        let d = snap.policy.decide(&who.agent, &tool, &raw_args);
        let reason = match &d {
            Decision::Deny { reason, .. } => reason.clone(),
            // A grant without a served entry cannot happen; refuse anyway.
            _ => format!("tool `{tool}` is not available"),
        };
        rec.args = raw_args;
        rec.rule = d.rule().to_string();
        rec.summary = reason.clone();
        return finish(rec, "denied", tool_error(format!("denied: {reason}")));
    };

    let canonical = match entry.served.canonicalize(&raw_args) {
        Ok(c) => c,
        Err(ArgError::Invalid(e)) => {
            rec.args = raw_args;
            rec.decision = "invalid";
            rec.status = "invalid";
            rec.rule = format!("tools.{tool}.schema");
            rec.summary = e.clone();
            return finish(
                rec,
                "invalid",
                tool_error(format!("invalid arguments: {e}")),
            );
        }
        Err(ArgError::Denied(e)) => {
            rec.args = raw_args;
            rec.rule = format!("tools.{tool}");
            rec.summary = e.clone();
            return finish(rec, "denied", tool_error(format!("denied: {e}")));
        }
    };
    rec.args = canonical.clone();

    let decision = snap.policy.decide(&who.agent, &tool, &canonical);
    rec.decision = decision.label();
    rec.rule = decision.rule().to_string();
    match decision {
        Decision::Allow { .. } => {}
        Decision::Deny { reason, .. } => {
            rec.summary = reason.clone();
            return finish(rec, "denied", tool_error(format!("denied: {reason}")));
        }
        Decision::NeedsApproval { call_hash, .. } => {
            let hex = call_hash.to_hex();
            rec.call_hash = Some(hex.clone());
            let Some(store) = &shared.approvals else {
                let reason = format!(
                    "tool `{tool}` requires an operator's approval, and this server has no approval store configured"
                );
                rec.decision = "deny";
                rec.summary = reason.clone();
                return finish(rec, "denied", tool_error(format!("denied: {reason}")));
            };
            match store.consume(&call_hash, &who.agent) {
                Ok(true) => {
                    rec.decision = "allow";
                    rec.rule = format!("approval {hex}");
                }
                Ok(false) => {
                    let recorded =
                        store.request(&call_hash, &who.agent, &tool, &canonical_json(&canonical));
                    let text = match recorded {
                        Ok(()) => format!(
                            "needs approval: this exact call (hash {hex}) must be approved by an operator \
                             (`airlock approve {hex}`). Tell the user, then retry the identical call once it \
                             is approved; any change to the arguments needs a new approval."
                        ),
                        Err(e @ airlock_policy::ApprovalError::TooManyPending(..)) => {
                            format!("needs approval (hash {hex}), but it was not recorded: {e}")
                        }
                        Err(e) => {
                            tracing::error!(target: "airlock::mcp", error = %e, "recording an approval request failed");
                            format!("needs approval (hash {hex}), but the request could not be recorded; ask the operator")
                        }
                    };
                    rec.status = "pending_approval";
                    rec.summary = text.clone();
                    return finish(rec, "needs_approval", tool_error(text));
                }
                Err(e) => {
                    tracing::error!(target: "airlock::mcp", error = %e, "approval store failed; refusing");
                    rec.decision = "deny";
                    rec.summary = format!("approval store error: {e}");
                    return finish(
                        rec,
                        "denied",
                        tool_error(
                            "denied: the approval state could not be read; try again later".into(),
                        ),
                    );
                }
            }
        }
    }

    let ctx = CallCtx {
        agent: who.agent,
        session: who.session,
        cancel: cancel.clone(),
        progress,
    };
    // A tool that watches `ctx.cancel` itself stops its work there; this
    // arm ends the call for those that do not (dropping their future), so
    // a tool must be safe to drop mid-call.
    let result = tokio::select! {
        r = entry.served.call(&ctx, canonical) => r,
        _ = cancel.cancelled() => Err("cancelled by the client".to_string()),
    };
    match result {
        Ok(out) => {
            rec.status = if out.is_error { "error" } else { "ok" };
            rec.summary = summarize(&out.text, MAX_SUMMARY);
            let outcome = if out.is_error {
                "allowed_error"
            } else {
                "allowed_ok"
            };
            let mut r = if out.is_error {
                CallToolResult::error(vec![ContentBlock::text(out.text)])
            } else {
                CallToolResult::success(vec![ContentBlock::text(out.text)])
            };
            r.structured_content = out.structured;
            finish(rec, outcome, r)
        }
        Err(e) => {
            rec.status = "failed";
            rec.summary = summarize(&e, MAX_SUMMARY);
            finish(rec, "failed", tool_error(format!("tool failed: {e}")))
        }
    }
}
