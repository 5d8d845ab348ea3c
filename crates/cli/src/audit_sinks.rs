//! Adapters from each part's record type to the audit log: the egress
//! proxy's connection records, the gateway's tunnel events and the MCP
//! server's tool calls all become [`airlock_audit::Event`]s. The parts stay
//! independent of the audit crate; this binary wires them together.

use airlock_audit::{AuditHandle, Egress, Event, Kind, LogOptions};
use airlock_config::{Audit, Config};
use anyhow::Context;

/// Opens the log the config's `audit:` section describes (callers check it
/// is present), registering every secret the config resolves so its value
/// is redacted wherever it appears.
pub fn open(config: &Config) -> anyhow::Result<AuditHandle> {
    let default = Audit::default();
    let section = config.audit.as_ref().unwrap_or(&default);
    let h = airlock_audit::open(section, LogOptions::default())
        .with_context(|| format!("open the audit log in {}", section.dir.display()))?;
    for (name, secret) in config.secrets() {
        for r in secret.refs() {
            if let Ok(v) = airlock_config::secret::resolve_ref(&r) {
                h.add_known_secret(&name, &v);
            }
        }
        if let Ok(v) = secret.resolve() {
            h.add_known_secret(&name, v.expose());
        }
    }
    Ok(h)
}

/// Egress connection records.
pub struct ProxySink(pub AuditHandle);

impl airlock_proxy::RecordSink for ProxySink {
    fn record(&self, r: &airlock_proxy::ConnectionRecord) {
        let allowed = r.decision != airlock_proxy::Decision::Deny;
        let status = match r.decision {
            airlock_proxy::Decision::Allow => "allowed",
            airlock_proxy::Decision::Deny => "denied",
            airlock_proxy::Decision::ReportDeny => "would_deny",
        };
        let ev = Event::new(Kind::Egress)
            .session(Some(r.session.clone()))
            .decision(allowed, r.rule.clone(), r.reason.clone())
            .status(status)
            .duration(r.duration)
            .egress(Egress {
                host: r.host.clone(),
                port: r.port,
                addr: r.resolved.map(|a| a.to_string()),
                bytes_up: r.bytes_up,
                bytes_down: r.bytes_down,
                credential: r.credential.clone(),
            })
            .detail(serde_json::json!({"protocol": format!("{:?}", r.protocol).to_lowercase(), "http_status": r.status}));
        if let Err(e) = self.0.record(ev) {
            tracing::error!("audit: {e}");
        }
    }
}

/// Tunnel link events, agent authentication failures and routed requests.
pub struct TunnelSink(pub AuditHandle);

impl airlock_tunnel::events::EventSink for TunnelSink {
    fn record(&self, e: airlock_tunnel::events::TunnelEvent) {
        use airlock_tunnel::events::TunnelEvent as T;
        let ev = match &e {
            T::Link { tunnel, event, .. } => Event::new(Kind::Tunnel)
                .tunnel(tunnel.clone())
                .status(event.clone()),
            T::AgentAuthFailed {
                reason,
                agent,
                tunnel,
                ..
            } => {
                let mut ev = Event::new(Kind::Auth)
                    .decision(false, "gateway.agent_key", Some(reason.to_string()))
                    .status("denied");
                if let Some(a) = agent {
                    ev = ev.agent(a.clone());
                }
                if let Some(t) = tunnel {
                    ev = ev.tunnel(t.clone());
                }
                ev
            }
            T::Rebound { tunnel, .. } => {
                let mut ev = Event::new(Kind::Auth)
                    .decision(false, "gateway.origin", Some("dns_rebinding".into()))
                    .status("denied");
                if let Some(t) = tunnel {
                    ev = ev.tunnel(t.clone());
                }
                ev
            }
            T::Admin {
                action,
                target,
                ok,
                status,
                error,
                ..
            } => {
                if action == "unauthorized" {
                    Event::new(Kind::Auth)
                        .decision(false, "gateway.admin_key", Some("bad_admin_key".into()))
                        .status("denied")
                } else {
                    // The admin key is one shared credential: the holder is
                    // "admin"; `detail.remote` says from where.
                    let mut ev = Event::new(Kind::System)
                        .who(airlock_audit::Who {
                            user: Some("admin".into()),
                            ..Default::default()
                        })
                        .tool(format!("admin.{action}"))
                        .decision(true, "gateway.admin_key", None)
                        .status(if *ok {
                            "ok".to_string()
                        } else {
                            status.to_string()
                        });
                    if let Some(t) = target.as_ref().filter(|_| action.starts_with("tunnel.")) {
                        ev = ev.tunnel(t.clone());
                    }
                    if let Some(e) = error {
                        ev = ev.result(e.clone());
                    }
                    ev
                }
            }
            T::Routed {
                agent,
                tunnel,
                mcp_session,
                status,
                duration,
                ..
            } => Event::new(Kind::Tunnel)
                .agent(agent.clone())
                .tunnel(tunnel.clone())
                .session(mcp_session.clone())
                .status(status.to_string())
                .duration(*duration),
        };
        let detail = serde_json::to_value(&e).unwrap_or_default();
        if let Err(err) = self.0.record(ev.detail(detail)) {
            tracing::error!("audit: {err}");
        }
    }
}

/// MCP tool calls: allowed, denied, failed.
pub struct McpSink(pub AuditHandle);

impl airlock_mcp::AuditSink for McpSink {
    fn record(&self, r: &airlock_mcp::CallRecord) {
        let allowed = r.decision == "allow";
        let mut ev = Event::new(Kind::ToolCall)
            .agent(r.agent.clone())
            .session(r.session.clone())
            .intent(r.intent.clone())
            .tool(r.tool.clone())
            .args(r.args.clone())
            .decision(
                allowed,
                r.rule.clone(),
                (!allowed).then(|| r.summary.clone()),
            )
            .status(r.status)
            .duration(r.duration)
            .result(r.summary.clone());
        if let Some(h) = &r.call_hash {
            ev = ev.detail(serde_json::json!({"call_hash": h}));
        }
        if let Err(e) = self.0.record(ev) {
            tracing::error!("audit: {e}");
        }
    }

    fn auth(&self, r: &airlock_mcp::AuthRecord) {
        let mut ev = Event::new(Kind::Auth)
            .decision(false, r.rule.clone(), Some(r.summary.clone()))
            .status("denied");
        if let Some(a) = &r.agent {
            ev = ev.agent(a.clone());
        }
        if let Some(t) = &r.tunnel {
            ev = ev.tunnel(t.clone());
        }
        if let Some(route) = &r.route {
            ev = ev.detail(serde_json::json!({"route": route}));
        }
        if let Err(e) = self.0.record(ev) {
            tracing::error!("audit: {e}");
        }
    }
}
