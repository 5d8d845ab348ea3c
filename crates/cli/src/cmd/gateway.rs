//! `airlock gateway`: the public side of the tunnel.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use anyhow::Context;

#[derive(clap::Args)]
#[command(
    // The flags clap marks required are required only without --config; say so
    // in the usage line, which is also what a missing-flag error prints.
    override_usage = "airlock gateway --config FILE [OPTIONS]\n       \
airlock gateway --state FILE --cert PEM --key PEM [OPTIONS]",
    after_help = "With --config, settings come from the file's `gateway:` section; flags given as well override it.\n\
Example (after `airlock tunnel certs ./pki` and `airlock tunnel create`):\n  \
airlock gateway --state gateway.db --cert ./pki/gateway.pem --key ./pki/gateway.key\n\
Agents then call https://HOST:8443/t/TUNNEL/ROUTE with `Authorization: Bearer alk_…`."
)]
pub struct Args {
    /// airlock.yaml with a `gateway:` section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Gateway state file (SQLite); created with its schema if missing.
    #[arg(
        long,
        env = "AIRLOCK_GATEWAY_STATE",
        required_unless_present = "config"
    )]
    state: Option<PathBuf>,
    /// Gateway certificate chain (PEM), for links and the agent listener.
    #[arg(long, required_unless_present = "config")]
    cert: Option<PathBuf>,
    /// Gateway private key (PEM).
    #[arg(long, required_unless_present = "config")]
    key: Option<PathBuf>,
    /// Address agents connect to [default: 0.0.0.0:8443].
    #[arg(long)]
    listen: Option<String>,
    /// Address connectors dial [default: 0.0.0.0:7443].
    #[arg(long)]
    tunnel_listen: Option<String>,
    /// Serve agents plain HTTP (only behind a TLS-terminating load balancer, or on localhost).
    #[arg(long)]
    agent_plaintext: bool,
    /// HTTP/2 PING interval on links [default: 4s].
    #[arg(long, value_parser = airlock_config::parse_duration)]
    ping_interval: Option<Duration>,
    /// A link whose PING is unanswered this long is dead [default: 10s].
    #[arg(long, value_parser = airlock_config::parse_duration)]
    ping_timeout: Option<Duration>,
    /// Lifetime of identity assertions [default: 60s, at most 300s].
    #[arg(long, value_parser = airlock_config::parse_duration)]
    assertion_ttl: Option<Duration>,
    /// Bearer key for the admin API and /metrics (overrides gateway.admin_key).
    #[arg(long, env = "AIRLOCK_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// Serve the admin API (tunnels and keys over HTTP) on ADDR [default
    /// when given without a value: 127.0.0.1:8444]. Plain HTTP on loopback,
    /// HTTPS with --cert on any other address. Needs an admin key.
    #[arg(long, num_args = 0..=1, default_missing_value = "127.0.0.1:8444", value_name = "ADDR")]
    admin_listen: Option<String>,
}

/// The file's `gateway:` section, or the defaults, with the flags applied.
fn settings(
    a: &Args,
    file: Option<&airlock_config::Config>,
) -> anyhow::Result<airlock_config::Gateway> {
    let mut g = match (&a.config, file) {
        (Some(path), Some(c)) => c
            .gateway
            .clone()
            .with_context(|| format!("{} has no `gateway:` section", path.display()))?,
        _ => airlock_config::Gateway {
            listen: "0.0.0.0:8443".into(),
            tunnel_listen: "0.0.0.0:7443".into(),
            state: String::new(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            agent_tls: true,
            admin_key: None,
            admin_listen: None,
            ping_interval: Duration::from_secs(4),
            ping_timeout: Duration::from_secs(10),
            assertion_ttl: Duration::from_secs(60),
        },
    };
    if let Some(s) = &a.state {
        g.state = s.display().to_string();
    }
    if let Some(c) = &a.cert {
        g.tls_cert = c.clone();
    }
    if let Some(k) = &a.key {
        g.tls_key = k.clone();
    }
    if let Some(l) = &a.listen {
        g.listen = l.clone();
    }
    if let Some(l) = &a.tunnel_listen {
        g.tunnel_listen = l.clone();
    }
    if let Some(l) = &a.admin_listen {
        g.admin_listen = Some(l.clone());
    }
    if a.agent_plaintext {
        g.agent_tls = false;
    }
    g.ping_interval = a.ping_interval.unwrap_or(g.ping_interval);
    g.ping_timeout = a.ping_timeout.unwrap_or(g.ping_timeout);
    g.assertion_ttl = a.assertion_ttl.unwrap_or(g.assertion_ttl);
    Ok(g)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    // The file is read once: for the gateway section and the audit log.
    let file = a.config.as_deref().map(super::config::load).transpose()?;
    let mut o = options_from_config(&settings(&a, file.as_ref())?)?;
    let mut audit = None;
    if let Some(c) = file.as_ref().filter(|c| c.audit.is_some()) {
        let h = crate::audit_sinks::open(c)?;
        o.events = Some(std::sync::Arc::new(crate::audit_sinks::TunnelSink(
            h.clone(),
        )));
        audit = Some(h);
    }
    if let Some(k) = &a.admin_key {
        o.admin_key = Some(airlock_tunnel::admin::AdminKey::from_key(k));
    }
    if o.admin_listen.is_some() && o.admin_key.is_none() {
        anyhow::bail!(
            "the admin API needs an admin key: set gateway.admin_key in the config or AIRLOCK_ADMIN_KEY"
        );
    }
    let agent_tls = o.agent_tls;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = Gateway::start(o).await.context("starting the gateway")?;
        let scheme = if agent_tls { "https" } else { "http" };
        // One machine-readable line so scripts and tests can find the ports.
        let admin = match gw.admin_addr {
            Some(a) if a.ip().is_loopback() => format!(" admin http://{a}"),
            Some(a) => format!(" admin https://{a}"),
            None => String::new(),
        };
        println!(
            "airlock gateway: agents {scheme}://{} links {} identity-key {}{admin}",
            gw.agent_addr,
            gw.tunnel_addr,
            gw.public_key.to_base64()
        );
        shutdown_signal().await;
        tracing::info!("shutting down");
        gw.shutdown().await;
        if let Some(h) = &audit {
            h.close(); // final signed checkpoint
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// The `gateway:` section of airlock.yaml (merged with the flags) as gateway options.
pub(crate) fn options_from_config(g: &airlock_config::Gateway) -> anyhow::Result<GatewayOptions> {
    if g.state.starts_with("postgres://") || g.state.starts_with("postgresql://") {
        anyhow::bail!(
            "gateway.state: PostgreSQL state is not supported yet; give a SQLite file path"
        );
    }
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let mut o = GatewayOptions::new(
        PathBuf::from(&g.state),
        read(&g.tls_cert)?,
        read(&g.tls_key)?,
    );
    o.agent_listen = g.listen.clone();
    o.tunnel_listen = g.tunnel_listen.clone();
    o.agent_tls = g.agent_tls;
    o.ping_interval = g.ping_interval;
    o.ping_timeout = g.ping_timeout;
    o.assertion_ttl = g.assertion_ttl.min(airlock_identity::MAX_TTL);
    o.admin_key = match &g.admin_key {
        Some(airlock_config::AgentKey::Secret(s)) => {
            Some(airlock_tunnel::admin::AdminKey::from_key(
                s.resolve().context("gateway.admin_key")?.expose().trim(),
            ))
        }
        Some(airlock_config::AgentKey::Sha256(h)) => {
            Some(airlock_tunnel::admin::AdminKey::from_sha256(*h))
        }
        None => None,
    };
    o.admin_listen = g.admin_listen.clone();
    Ok(o)
}
