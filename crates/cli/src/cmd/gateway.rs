//! `airlock gateway`: the public side of the tunnel.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Gateway state file (SQLite); created with its schema if missing.
    #[arg(long, env = "AIRLOCK_GATEWAY_STATE")]
    state: PathBuf,
    /// Gateway certificate chain (PEM), for links and the agent listener.
    #[arg(long)]
    cert: PathBuf,
    /// Gateway private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// Address agents connect to.
    #[arg(long, default_value = "0.0.0.0:8443")]
    listen: String,
    /// Address connectors dial.
    #[arg(long, default_value = "0.0.0.0:7443")]
    tunnel_listen: String,
    /// Serve agents plain HTTP (only behind a TLS-terminating load balancer, or on localhost).
    #[arg(long)]
    agent_plaintext: bool,
    /// HTTP/2 PING interval on links.
    #[arg(long, value_parser = airlock_config::parse_duration, default_value = "4s")]
    ping_interval: Duration,
    /// A link whose PING is unanswered this long is dead.
    #[arg(long, value_parser = airlock_config::parse_duration, default_value = "10s")]
    ping_timeout: Duration,
    /// Lifetime of identity assertions.
    #[arg(long, value_parser = airlock_config::parse_duration, default_value = "60s")]
    assertion_ttl: Duration,
    /// Bearer key required for /metrics.
    #[arg(long, env = "AIRLOCK_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let mut o = GatewayOptions::new(a.state.clone(), read(&a.cert)?, read(&a.key)?);
    o.agent_listen = a.listen;
    o.tunnel_listen = a.tunnel_listen;
    o.agent_tls = !a.agent_plaintext;
    o.ping_interval = a.ping_interval;
    o.ping_timeout = a.ping_timeout;
    o.assertion_ttl = a.assertion_ttl;
    o.admin_key = a.admin_key;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = Gateway::start(o).await.context("starting the gateway")?;
        let scheme = if a.agent_plaintext { "http" } else { "https" };
        // One machine-readable line so scripts and tests can find the ports.
        println!(
            "airlock gateway: agents {scheme}://{} links {} identity-key {}",
            gw.agent_addr,
            gw.tunnel_addr,
            gw.public_key.to_base64()
        );
        shutdown_signal().await;
        tracing::info!("shutting down");
        gw.shutdown().await;
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

/// The `gateway:` section of airlock.yaml as gateway options (used by
/// `--config` once the config loader lands).
#[allow(dead_code)]
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
        Some(s) => Some(
            s.resolve()
                .context("gateway.admin_key")?
                .expose()
                .to_string(),
        ),
        None => None,
    };
    Ok(o)
}
