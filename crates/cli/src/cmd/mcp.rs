//! `airlock mcp`: the policy-enforcing MCP server (see docs/mcp.md).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use super::config::load;
use airlock_config::{Approval, Config, Secret};
use airlock_mcp::agent::{AgentOptions, AgentTools};
use airlock_mcp::{Catalogs, HttpOptions, HttpServer, Shared, SharedOptions, TracingAudit};
use anyhow::{anyhow, bail, Context};

#[derive(clap::Args)]
#[command(
    after_help = "HTTP clients authenticate with `Authorization: Bearer KEY`; agents.NAME.keys maps keys to agents.\n\
SIGHUP reloads the config file; a file that does not load or compile leaves the running policy in place.\n\
Examples:\n  \
airlock mcp --config airlock.yaml --listen 127.0.0.1:8080\n  \
airlock mcp --config airlock.yaml --stdio --agent dev\n  \
claude mcp add airlock -- airlock mcp --config /etc/airlock/airlock.yaml --stdio --agent dev\n\
See docs/mcp.md."
)]
#[command(group(clap::ArgGroup::new("transport").required(true).args(["stdio", "listen"])))]
pub struct Args {
    /// The airlock.yaml holding tools and agents.
    #[arg(long)]
    config: PathBuf,
    /// Serve MCP on stdin/stdout for the agent named by --agent.
    #[arg(long, requires = "agent")]
    stdio: bool,
    /// The agent a stdio session acts as.
    #[arg(long)]
    agent: Option<String>,
    /// Serve Streamable HTTP on ADDR:PORT (endpoint /mcp, plus /healthz and /metrics).
    #[arg(long, conflicts_with = "agent")]
    listen: Option<String>,
    /// Approval state file shared with `airlock approve`. Default:
    /// `$AIRLOCK_STATE_DIR/approvals.db`, else `/var/lib/airlock/approvals.db`.
    #[arg(long, env = "AIRLOCK_APPROVALS")]
    approvals: Option<PathBuf>,
    /// Host header accepted on /mcp besides localhost, 127.0.0.1 and ::1 (repeatable).
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Browser Origin allowed to call /mcp, like `https://app.example.com` (repeatable;
    /// loopback origins are allowed too when listening on loopback).
    /// Requests with any other Origin get 403; requests without one are unaffected.
    #[arg(long = "allowed-origin")]
    allowed_origins: Vec<String>,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 4 << 20)]
    max_body: usize,
    /// Directory the agent.* tools work in (each session gets its own jail
    /// with this workdir). Default: the current directory.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Secret reference (`${env:NAME}` or `${file:/path}`) of the Bearer key /metrics requires.
    #[arg(long)]
    metrics_key: Option<String>,
    /// Trust the tunnel gateway's identity assertions (`Airlock-Identity`
    /// header) signed by this key, as printed by `airlock tunnel identity-key`
    /// (base64). A present but invalid assertion is always refused.
    #[arg(long)]
    gateway_key: Option<String>,
    /// With --gateway-key: accept only assertions for this tunnel.
    #[arg(long, requires = "gateway_key")]
    gateway_tunnel: Option<String>,
    /// With --gateway-key: accept only assertions for this route.
    #[arg(long, requires = "gateway_key")]
    gateway_route: Option<String>,
    /// A file or directory no agent jail may read, besides the config's own
    /// secret and key files (repeatable). `airlock connect` and `airlock up`
    /// pass their tunnel token, private keys and state this way to the
    /// built-in server of a `builtin:` route.
    #[arg(long = "deny-read", value_name = "PATH")]
    deny_read: Vec<PathBuf>,
}

/// The approval file: the flag, else `$AIRLOCK_STATE_DIR/approvals.db`,
/// else `/var/lib/airlock/approvals.db`.
pub fn approvals_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    let dir = std::env::var_os("AIRLOCK_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/airlock"));
    dir.join("approvals.db")
}

/// The tool kinds this binary can serve: the declared kinds, and the
/// agent toolset in per-session jails.
fn catalogs(
    config: &Config,
    workdir: Option<&Path>,
    deny_read: &[PathBuf],
    network: Option<airlock_jail::NetworkAccess>,
) -> anyhow::Result<(Catalogs, Arc<AgentTools>)> {
    let workdir = match workdir {
        Some(w) => w.to_path_buf(),
        None => std::env::current_dir().context("the current directory (the default --workdir)")?,
    };
    let mut sandbox = crate::egress::jail_sandbox(config, None);
    for p in deny_read {
        // Absolute: the jail would read a relative entry against the workdir.
        let p = std::path::absolute(p).with_context(|| format!("--deny-read {}", p.display()))?;
        let p = p.to_string_lossy().into_owned();
        if !sandbox.filesystem.deny_read.contains(&p) {
            sandbox.filesystem.deny_read.push(p);
        }
    }
    let agent = AgentTools::new(AgentOptions {
        workdir: std::fs::canonicalize(&workdir)
            .with_context(|| format!("--workdir {}", workdir.display()))?,
        sandbox,
        launcher: None,
        max_sessions: 64,
        max_sessions_per_agent: 8,
        idle_timeout: std::time::Duration::from_secs(30 * 60),
        network,
    })
    .map_err(|e| anyhow!(e))?;
    let agent = Arc::new(agent);
    let catalogs = Catalogs(vec![
        Arc::new(airlock_mcp::declared::DeclaredTools),
        agent.clone(),
    ]);
    Ok((catalogs, agent))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = load(&args.config)?;
    let needs_approvals = config
        .tools
        .values()
        .any(|t| t.approval == Approval::Required);
    let approvals = (needs_approvals || args.approvals.is_some())
        .then(|| approvals_path(args.approvals.as_deref()));
    let audit_log = match &config.audit {
        Some(_) => Some(crate::audit_sinks::open(&config)?),
        None => None,
    };
    // The agent jails' only way out: the egress proxy, in this process.
    let egress = crate::egress::start(&config, "airlock-mcp", audit_log.as_ref(), None, None)?;
    let (catalogs, agent_tools) = catalogs(
        &config,
        args.workdir.as_deref(),
        &args.deny_read,
        egress.as_ref().map(|e| e.access.clone()),
    )?;
    let shared = Shared::new(
        &config,
        catalogs,
        SharedOptions {
            approvals,
            audit: match &audit_log {
                Some(h) => Arc::new(crate::audit_sinks::McpSink(h.clone())),
                None => Arc::new(TracingAudit),
            },
            http_keys: !args.stdio,
        },
    )
    .map_err(|e| anyhow!("{}: {e}", args.config.display()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async move {
        spawn_reload(shared.clone(), agent_tools.clone(), args.config.clone())?;
        if args.stdio {
            let agent = args.agent.as_deref().unwrap_or_default();
            let served = airlock_mcp::serve_stdio(shared, agent).await;
            tokio::task::spawn_blocking(move || agent_tools.close_all()).await?;
            served?;
            return Ok(ExitCode::SUCCESS);
        }
        let listen = args.listen.as_deref().unwrap_or_default();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("--listen {listen}: cannot bind"))?;
        let mut allowed_hosts = HttpOptions::default().allowed_hosts;
        allowed_hosts.extend(args.allowed_hosts.iter().cloned());
        let metrics_key = match &args.metrics_key {
            None => None,
            Some(r) => {
                let s = Secret::parse(r).map_err(|e| anyhow!("--metrics-key: {e}"))?;
                if !s.has_refs() {
                    bail!("--metrics-key: write a reference like ${{env:NAME}}, not the key itself");
                }
                let v = s.resolve().map_err(|e| anyhow!("--metrics-key: {e}"))?;
                Some(v.expose().to_string())
            }
        };
        let gateway_identity = match &args.gateway_key {
            None => None,
            Some(k) => {
                let key = airlock_identity::PublicKey::from_base64(k.trim())
                    .map_err(|e| anyhow!("--gateway-key: {e}"))?;
                Some(Arc::new(airlock_mcp::GatewayIdentity {
                    verifier: airlock_identity::Verifier::new(vec![key]),
                    tunnel: args.gateway_tunnel.clone(),
                    route: args.gateway_route.clone(),
                }))
            }
        };
        let opts = HttpOptions {
            gateway_identity,
            allowed_hosts,
            allowed_origins: args.allowed_origins.clone(),
            // A loopback listener serves pages on this machine only.
            allow_loopback_origins: listener.local_addr()?.ip().is_loopback(),
            max_body: args.max_body,
            metrics_key,
            ..HttpOptions::default()
        };
        let server = HttpServer::start(shared, listener, opts)?;
        // The bound address on stdout, for scripts and tests using port 0.
        println!("listening on http://{}/mcp", server.local_addr);
        tracing::info!(target: "airlock::mcp", addr = %server.local_addr, "serving MCP over Streamable HTTP");
        wait_for_stop().await;
        tracing::info!(target: "airlock::mcp", "shutting down");
        server.shutdown().await;
        // Session jails end with the server (their protected-file scan runs now).
        tokio::task::spawn_blocking(move || agent_tools.close_all()).await?;
        Ok(ExitCode::SUCCESS)
    });
    // Outside the runtime: the proxy has its own. Then the final checkpoint.
    if let Some(e) = egress {
        e.finish();
    }
    if let Some(h) = &audit_log {
        h.close();
    }
    result
}

async fn wait_for_stop() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// SIGHUP: load, compile and swap the whole policy, or keep the old one.
fn spawn_reload(
    shared: Arc<Shared>,
    agent_tools: Arc<AgentTools>,
    path: PathBuf,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let result = load(&path).and_then(|c| {
                // Secret files the new config names are masked in the
                // session jails before its tools can use them; live
                // sessions built without those masks are stopped.
                let stopped = agent_tools.hide(&c.hidden_files());
                if stopped > 0 {
                    tracing::info!(target: "airlock::mcp", sessions = stopped, "the reloaded config names new secret files; live agent sessions stopped");
                }
                shared.reload(&c).map_err(anyhow::Error::from)
            });
            match result {
                Ok(()) => {
                    tracing::info!(target: "airlock::mcp", file = %path.display(), "config reloaded")
                }
                Err(e) => {
                    tracing::error!(target: "airlock::mcp", file = %path.display(), error = %format!("{e:#}"), "reload refused; the previous policy stays in force")
                }
            }
        }
    });
    Ok(())
}
