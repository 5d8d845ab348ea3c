//! `airlock connect`: the private side; dials out to the gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::connector::{Connector, ConnectorOptions, RouteTarget};
use anyhow::{bail, Context};

#[derive(clap::Args)]
#[command(
    // The flags clap marks required are required only without --config; say so
    // in the usage line, which is also what a missing-flag error prints.
    override_usage = "airlock connect --config FILE [OPTIONS]\n       \
airlock connect --gateway HOST:PORT --tunnel NAME --ca PEM --cert PEM --key PEM\n               \
--token-file FILE (or --token T, or $AIRLOCK_TUNNEL_TOKEN) --route NAME=URL... [OPTIONS]",
    after_help = "With --config, settings come from the file's `connector:` section; flags given as well override it\n\
(--route adds routes or replaces same-named ones; --allowed-ip replaces the list).\n\
Example:\n  \
airlock connect --gateway gateway.example.com:7443 --tunnel corp \\\n    \
--token-file /etc/airlock/tunnel-token \\\n    \
--ca ./pki/gateway-ca.pem --cert ./pki/connector.pem --key ./pki/connector.key \\\n    \
--route tools=http://127.0.0.1:8000/mcp"
)]
pub struct Args {
    /// airlock.yaml with a `connector:` section.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Gateway link address, `host:port`.
    #[arg(long, required_unless_present = "config")]
    gateway: Option<String>,
    /// Tunnel name.
    #[arg(long, required_unless_present = "config")]
    tunnel: Option<String>,
    /// Tunnel token (prefer the environment variable or --token-file).
    #[arg(
        long,
        env = "AIRLOCK_TUNNEL_TOKEN",
        hide_env_values = true,
        required_unless_present_any = ["token_file", "config"]
    )]
    token: Option<String>,
    /// File holding the tunnel token; re-read on every reconnect, so a
    /// rotated token is picked up without a restart (certificates too).
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// CA that signed the gateway's certificate (pinned).
    #[arg(long, required_unless_present = "config")]
    ca: Option<PathBuf>,
    /// This connector's client certificate (PEM).
    #[arg(long, required_unless_present = "config")]
    cert: Option<PathBuf>,
    /// This connector's private key (PEM).
    #[arg(long, required_unless_present = "config")]
    key: Option<PathBuf>,
    /// A route: `NAME=http://HOST:PORT/PATH`, or `NAME=stdio:PROGRAM ARG...`
    /// (a stdio MCP server to spawn; split on whitespace); repeat for more.
    #[arg(long = "route", required_unless_present = "config")]
    routes: Vec<String>,
    /// Addresses routes may reach (CIDR); repeat. Replaces the default
    /// (loopback and RFC 1918).
    #[arg(long = "allowed-ip")]
    allowed_ips: Vec<String>,
    /// Number of independent links [default: 2].
    #[arg(long)]
    links: Option<u32>,
    /// Stable connector name (default: hostname).
    #[arg(long)]
    name: Option<String>,
    /// TLS server name to verify (default: the gateway host).
    #[arg(long)]
    server_name: Option<String>,
    /// HTTP/2 PING interval [default: 4s].
    #[arg(long, value_parser = airlock_config::parse_duration)]
    ping_interval: Option<Duration>,
    /// A link whose PING is unanswered this long is dead [default: 10s].
    #[arg(long, value_parser = airlock_config::parse_duration)]
    ping_timeout: Option<Duration>,
}

/// The file's `connector:` section, or the defaults, with the flags applied
/// (routes from flags are added by `run`).
fn settings(a: &Args) -> anyhow::Result<airlock_config::Connector> {
    let mut c = match &a.config {
        Some(path) => super::config::load(path)?
            .connector
            .with_context(|| format!("{} has no `connector:` section", path.display()))?,
        None => airlock_config::Connector {
            gateway: String::new(),
            server_name: None,
            tunnel: String::new(),
            name: None,
            // Only read when neither --token nor --token-file is given.
            token: airlock_config::Secret::parse("${env:AIRLOCK_TUNNEL_TOKEN}")?,
            ca: PathBuf::new(),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
            links: 2,
            allowed_ips: None,
            routes: BTreeMap::new(),
            ping_interval: Duration::from_secs(4),
            ping_timeout: Duration::from_secs(10),
            proxy: None,
            identity_key: None,
        },
    };
    if let Some(g) = &a.gateway {
        c.gateway = g.clone();
    }
    if let Some(t) = &a.tunnel {
        c.tunnel = t.clone();
    }
    if let Some(p) = &a.ca {
        c.ca = p.clone();
    }
    if let Some(p) = &a.cert {
        c.client_cert = p.clone();
    }
    if let Some(p) = &a.key {
        c.client_key = p.clone();
    }
    if !a.allowed_ips.is_empty() {
        let ips = a
            .allowed_ips
            .iter()
            .map(|s| {
                s.parse()
                    .with_context(|| format!("--allowed-ip `{s}` is not a CIDR (e.g. 10.0.0.0/8)"))
            })
            .collect::<anyhow::Result<_>>()?;
        c.allowed_ips = Some(ips);
    }
    c.links = a.links.unwrap_or(c.links);
    c.name = a.name.clone().or(c.name);
    c.server_name = a.server_name.clone().or(c.server_name);
    c.ping_interval = a.ping_interval.unwrap_or(c.ping_interval);
    c.ping_timeout = a.ping_timeout.unwrap_or(c.ping_timeout);
    Ok(c)
}

/// The files holding this connector's secrets, which the agent jails of a
/// `builtin:` route must not read whatever its MCP config names: the
/// client key, the token file or the token's `${file:}` references, and
/// every secret and key file of the connector's own config.
fn connector_secrets(a: &Args, c: &airlock_config::Connector) -> anyhow::Result<Vec<PathBuf>> {
    let mut v = vec![c.client_key.clone()];
    v.extend(a.token_file.clone());
    v.extend(c.token.refs().filter_map(|r| match r {
        airlock_config::SecretRef::File(p) => Some(p),
        _ => None,
    }));
    if let Some(path) = &a.config {
        v.extend(super::config::load(path)?.hidden_files());
    }
    v.retain(|p| !p.as_os_str().is_empty());
    Ok(v)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let c = settings(&a)?;
    let token = match (&a.token, &a.token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(
            String::from_utf8_lossy(
                &std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?,
            )
            .trim()
            .to_string(),
        ),
        (None, None) => None,
    };
    let mut o = options_from_config(&c, token)?;
    if let Some(reload) = o.reload.as_mut() {
        // A token given on the command line is not re-read from the file's reference.
        if a.token.is_some() {
            reload.token = None;
        }
        if let Some(f) = &a.token_file {
            reload.token = Some(f.clone());
        }
    }
    o.routes.extend(parse_routes(&a.routes)?);
    // (route, config file, workdir): the config loader has already checked
    // that a given workdir is a directory.
    type Builtin = (String, PathBuf, Option<PathBuf>);
    let builtins: Vec<Builtin> = c
        .routes
        .iter()
        .filter_map(|(n, r)| match r {
            airlock_config::Route::Builtin { config, workdir } => {
                Some((n.clone(), config.clone(), workdir.clone()))
            }
            _ => None,
        })
        .collect();
    if o.routes.is_empty() && builtins.is_empty() {
        bail!("no routes: give --route NAME=URL or `connector.routes` in the config");
    }
    let hidden = connector_secrets(&a, &c)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        // Each `builtin:` route is an `airlock mcp` on a loopback port that
        // trusts only the gateway's identity assertions for this tunnel and route.
        let mut servers = Vec::new();
        for (name, config, workdir) in &builtins {
            let key = c
                .identity_key
                .as_deref()
                .context("a `builtin:` route needs connector.identity_key")?;
            let (child, url) =
                super::up::start_builtin(config, workdir.as_deref(), &hidden, key, &c.tunnel, name)
                    .await?;
            o.routes.insert(name.clone(), RouteTarget::Http(url));
            servers.push(child);
        }
        let mut c = Connector::start(o).context("starting the connector")?;
        let ended = tokio::select! {
            r = c.wait() => r.context("the connector stopped"),
            _ = super::gateway::shutdown_signal() => {
                tracing::info!("draining links");
                c.shutdown().await;
                Ok(())
            }
        };
        // A graceful stop for the built-in servers: their session jails end
        // and their audit logs get a final checkpoint.
        for mut s in servers {
            if let Some(pid) = s.id() {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), s.wait()).await;
        }
        ended.map(|_| ExitCode::SUCCESS)
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

/// The `connector:` section of airlock.yaml (merged with the flags) as
/// connector options. `token` is the token when a flag gave it; otherwise
/// the section's reference is resolved, and a token that is one
/// `${file:…}` reference is re-read on every reconnect (rotation).
pub(crate) fn options_from_config(
    c: &airlock_config::Connector,
    token: Option<String>,
) -> anyhow::Result<ConnectorOptions> {
    let read =
        |p: &PathBuf| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let token_file = match c.token.refs().collect::<Vec<_>>().as_slice() {
        [airlock_config::SecretRef::File(p)]
            if c.token.to_string() == format!("${{file:{}}}", p.display()) =>
        {
            Some(p.clone())
        }
        _ => None,
    };
    let token = match token {
        Some(t) => t,
        None => c
            .token
            .resolve()
            .with_context(|| format!("connector.token ({})", c.token))?
            .expose()
            .trim()
            .to_string(),
    };
    let mut o = ConnectorOptions::new(
        c.gateway.clone(),
        c.tunnel.clone(),
        token,
        read(&c.ca)?,
        read(&c.client_cert)?,
        read(&c.client_key)?,
    );
    o.reload = Some(airlock_tunnel::connector::CredentialFiles {
        token: token_file,
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
    o.proxy = c.proxy.clone().or_else(|| {
        ["HTTPS_PROXY", "https_proxy"]
            .iter()
            .find_map(|k| std::env::var(k).ok())
            .filter(|s| !s.is_empty())
    });
    for (name, r) in &c.routes {
        let t = match r {
            airlock_config::Route::Http { url } => RouteTarget::Http(url.clone()),
            airlock_config::Route::Stdio { command } => RouteTarget::Stdio(command.clone()),
            // Started by `run`, which then routes to its loopback URL.
            airlock_config::Route::Builtin { .. } => continue,
        };
        o.routes.insert(name.clone(), t);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: Args,
    }

    fn secrets_of(argv: &[&str]) -> Vec<PathBuf> {
        let a = Cli::try_parse_from(std::iter::once("connect").chain(argv.iter().copied()))
            .unwrap()
            .a;
        let c = settings(&a).unwrap();
        connector_secrets(&a, &c).unwrap()
    }

    #[test]
    fn the_builtin_route_hides_the_connector_s_key_and_token_files() {
        let flags = [
            "--gateway",
            "g:1",
            "--tunnel",
            "t",
            "--ca",
            "/p/ca.pem",
            "--cert",
            "/p/c.pem",
            "--key",
            "/p/c.key",
            "--route",
            "r=http://127.0.0.1:1/",
        ];
        let got = secrets_of(&[&flags[..], &["--token-file", "/p/token"]].concat());
        assert!(
            got.contains(&"/p/c.key".into()) && got.contains(&"/p/token".into()),
            "{got:?}"
        );
        // Certificates are public: not hidden (the jail may verify with them).
        assert!(!got.contains(&"/p/c.pem".into()), "{got:?}");

        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("connector.yaml");
        std::fs::write(
            &cfg,
            "version: 1\nconnector:\n  gateway: g:1\n  tunnel: t\n  token: \"${file:/s/tunnel-token}\"\n  ca: /s/ca.pem\n  client_cert: /s/c.pem\n  client_key: /s/c.key\n  routes:\n    r: { url: \"http://127.0.0.1:1/\" }\n",
        )
        .unwrap();
        let got = secrets_of(&["--config", cfg.to_str().unwrap()]);
        assert!(
            got.contains(&"/s/c.key".into()) && got.contains(&"/s/tunnel-token".into()),
            "{got:?}"
        );
    }
}
