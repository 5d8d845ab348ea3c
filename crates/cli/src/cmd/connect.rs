//! `airlock connect`: the private side; dials out to the gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::connector::{Connector, ConnectorOptions, RouteTarget};
use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// Gateway link address, `host:port`.
    #[arg(long)]
    gateway: String,
    /// Tunnel name.
    #[arg(long)]
    tunnel: String,
    /// Tunnel token (prefer the environment variable or --token-file).
    #[arg(
        long,
        env = "AIRLOCK_TUNNEL_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_file"
    )]
    token: Option<String>,
    /// File holding the tunnel token; re-read on every reconnect, so a
    /// rotated token is picked up without a restart (certificates too).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// CA that signed the gateway's certificate (pinned).
    #[arg(long)]
    ca: PathBuf,
    /// This connector's client certificate (PEM).
    #[arg(long)]
    cert: PathBuf,
    /// This connector's private key (PEM).
    #[arg(long)]
    key: PathBuf,
    /// A route: `NAME=http://HOST:PORT/PATH`, or `NAME=stdio:PROGRAM ARG...`
    /// (a stdio MCP server to spawn; split on whitespace); repeat for more.
    #[arg(long = "route", required = true)]
    routes: Vec<String>,
    /// Addresses routes may reach (CIDR); repeat. Replaces the default
    /// (loopback and RFC 1918).
    #[arg(long = "allowed-ip")]
    allowed_ips: Vec<String>,
    /// Number of independent links.
    #[arg(long, default_value_t = 2)]
    links: u32,
    /// Stable connector name (default: hostname).
    #[arg(long)]
    name: Option<String>,
    /// TLS server name to verify (default: the gateway host).
    #[arg(long)]
    server_name: Option<String>,
    /// HTTP/2 PING interval.
    #[arg(long, value_parser = airlock_config::parse_duration, default_value = "4s")]
    ping_interval: Duration,
    /// A link whose PING is unanswered this long is dead.
    #[arg(long, value_parser = airlock_config::parse_duration, default_value = "10s")]
    ping_timeout: Duration,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => String::from_utf8_lossy(&read(f)?).trim().to_string(),
        (None, None) => anyhow::bail!("give --token-file FILE or AIRLOCK_TUNNEL_TOKEN"),
    };
    let reload = airlock_tunnel::connector::CredentialFiles {
        token: a.token_file.clone(),
        ca: a.ca.clone(),
        cert: a.cert.clone(),
        key: a.key.clone(),
    };
    let mut o = ConnectorOptions::new(
        a.gateway,
        a.tunnel,
        token,
        read(&a.ca)?,
        read(&a.cert)?,
        read(&a.key)?,
    );
    o.reload = Some(reload);
    o.links = a.links;
    o.server_name = a.server_name;
    o.ping_interval = a.ping_interval;
    o.ping_timeout = a.ping_timeout;
    if let Some(n) = a.name {
        o.name = n;
    }
    o.routes = parse_routes(&a.routes)?;
    if !a.allowed_ips.is_empty() {
        o.allowed_ips = a
            .allowed_ips
            .iter()
            .map(|s| {
                s.parse()
                    .with_context(|| format!("--allowed-ip `{s}` is not a CIDR (e.g. 10.0.0.0/8)"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    o.proxy = ["HTTPS_PROXY", "https_proxy"]
        .iter()
        .find_map(|k| std::env::var(k).ok())
        .filter(|s| !s.is_empty());
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let mut c = Connector::start(o).context("starting the connector")?;
        tokio::select! {
            r = c.wait() => {
                r.context("the connector stopped")?;
                Ok(ExitCode::SUCCESS)
            }
            _ = super::gateway::shutdown_signal() => {
                tracing::info!("draining links");
                c.shutdown().await;
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}

pub(crate) fn parse_routes(specs: &[String]) -> anyhow::Result<BTreeMap<String, RouteTarget>> {
    let mut m = BTreeMap::new();
    for s in specs {
        let Some((name, url)) = s.split_once('=') else {
            bail!("--route `{s}` must be NAME=http://HOST:PORT/PATH");
        };
        if !airlock_tunnel::paths::valid_name(name) {
            bail!("route name `{name}` must be 1-63 of [A-Za-z0-9_-]");
        }
        let target = match url.strip_prefix("stdio:") {
            Some(cmd) => {
                let argv: Vec<String> = cmd.split_whitespace().map(String::from).collect();
                if argv.is_empty() {
                    bail!("--route `{s}`: stdio: needs a command");
                }
                RouteTarget::Stdio(argv)
            }
            None => RouteTarget::Http(url.to_string()),
        };
        if m.insert(name.to_string(), target).is_some() {
            bail!("route `{name}` is given twice");
        }
    }
    Ok(m)
}

/// The `connector:` section of airlock.yaml as connector options (used by
/// `--config` once the config loader lands).
#[allow(dead_code)]
pub(crate) fn options_from_config(
    c: &airlock_config::Connector,
) -> anyhow::Result<ConnectorOptions> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let token = c
        .token
        .resolve()
        .context("connector.token")?
        .expose()
        .to_string();
    let mut o = ConnectorOptions::new(
        c.gateway.clone(),
        c.tunnel.clone(),
        token,
        read(&c.ca)?,
        read(&c.client_cert)?,
        read(&c.client_key)?,
    );
    o.reload = Some(airlock_tunnel::connector::CredentialFiles {
        token: None,
        ca: c.ca.clone(),
        cert: c.client_cert.clone(),
        key: c.client_key.clone(),
    });
    o.server_name = c.server_name.clone();
    if let Some(n) = &c.name {
        o.name = n.clone();
    }
    o.links = c.links;
    if let Some(ips) = &c.allowed_ips {
        o.allowed_ips = ips.clone();
    }
    o.ping_interval = c.ping_interval;
    o.ping_timeout = c.ping_timeout;
    o.proxy = c
        .proxy
        .clone()
        .or_else(|| std::env::var("HTTPS_PROXY").ok().filter(|s| !s.is_empty()));
    for (name, r) in &c.routes {
        let t = match r {
            airlock_config::Route::Http { url } => RouteTarget::Http(url.clone()),
            airlock_config::Route::Stdio { command } => RouteTarget::Stdio(command.clone()),
            airlock_config::Route::Builtin { .. } => {
                anyhow::bail!(
                    "connector.routes.{name}: the built-in airlock mcp route is not available yet"
                )
            }
        };
        o.routes.insert(name.clone(), t);
    }
    Ok(o)
}
