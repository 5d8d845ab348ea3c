//! `airlock up`: the quick start on one machine: a state directory with a
//! generated PKI, a tunnel and an agent key; the gateway on localhost; a
//! connector serving route `tools` — the built-in `airlock mcp` with the
//! jailed agent toolset in a workspace, trusting the gateway's identity
//! assertions and writing a signed audit log — or the routes given; and the
//! commands to point an agent at it.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_tunnel::connector::{Connector, ConnectorOptions};
use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use airlock_tunnel::state::State;
use anyhow::{bail, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Keeps everything in DIR: a demo PKI, gateway.db, agent-key, airlock.yaml (the policy of route\n\
`tools`; edit it freely), audit/ signed with audit.key (verify with audit.key.pub) and workspace/.\n\
Prints the agent key and a ready `claude mcp add` command; Ctrl-C stops everything.\n\
Example: airlock up, then in another terminal: airlock audit tail -f .airlock/audit"
)]
pub struct Args {
    /// State directory (PKI, gateway state, the local token and key).
    #[arg(long, default_value = ".airlock")]
    dir: PathBuf,
    /// Agent-facing port on 127.0.0.1.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// Serve these routes instead of the built-in `tools` route, as for
    /// `airlock connect` (`NAME=http://…` or `NAME=stdio:PROGRAM ARGS…`).
    #[arg(long = "route")]
    routes: Vec<String>,
    /// The agent toolset's working directory (default: DIR/workspace).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// The policy `airlock up` writes on first start (edit it freely: it is
/// re-read at every start and on SIGHUP by the MCP server).
const DEFAULT_CONFIG: &str = "\
# Written by `airlock up`. The built-in MCP server (route `tools`) reads it.
version: 1
tools:
  bash: { kind: agent.bash, description: \"Run a shell command in the jailed workspace.\" }
  read: { kind: agent.read }
  write: { kind: agent.write }
  edit: { kind: agent.edit }
  glob: { kind: agent.glob }
  grep: { kind: agent.grep }
agents:
  local-agent:
    allowed_tools: [bash, read, write, edit, glob, grep]
audit:
  dir: audit
  signing_key: audit.key
";

const TUNNEL: &str = "local";

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut routes = super::connect::parse_routes(&a.routes)?;
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    let builtin = routes.is_empty();
    let config_path = a.dir.join("airlock.yaml");
    let workdir = a.workdir.clone().unwrap_or_else(|| a.dir.join("workspace"));
    if builtin {
        prepare_builtin(&a.dir, &config_path, &workdir)?;
    }
    let pki = a.dir.join("pki");
    let state_path = a.dir.join("gateway.db");
    let token_file = a.dir.join("tunnel-token");
    let key_file = a.dir.join("agent-key");
    if !state_path.exists() {
        super::tunnel::write_certs(&pki, &["localhost".to_string()])?;
        let ca = std::fs::read(pki.join("tunnel-ca.pem"))?;
        let mut st = State::open(&state_path)?;
        let token = st.create_tunnel(TUNNEL, &[ca])?;
        let (_, key) = st.create_key("local-agent", TUNNEL, &[])?;
        // Kept on disk (mode 0600) so a rerun can print them again; this is
        // a single-machine quick start, not a deployment.
        super::tunnel::write_private(&token_file, token.as_bytes())?;
        super::tunnel::write_private(&key_file, key.as_bytes())?;
    }
    let read = |p: PathBuf| {
        std::fs::read(&p).with_context(|| {
            format!(
                "cannot read {} (delete {} to start over)",
                p.display(),
                a.dir.display()
            )
        })
    };
    let token = String::from_utf8(read(token_file.clone())?)?
        .trim()
        .to_string();
    let key = String::from_utf8(read(key_file.clone())?)?
        .trim()
        .to_string();
    let mut go = GatewayOptions::new(
        state_path.clone(),
        read(pki.join("gateway.pem"))?,
        read(pki.join("gateway.key"))?,
    );
    go.agent_listen = format!("127.0.0.1:{}", a.port);
    go.tunnel_listen = "127.0.0.1:0".into();
    go.agent_tls = false;
    let (ca, cert, ckey) = (
        read(pki.join("gateway-ca.pem"))?,
        read(pki.join("connector.pem"))?,
        read(pki.join("connector.key"))?,
    );
    // Everything in DIR but the policy, the audit log and the workspace:
    // the PKI's private keys, the gateway's state, the tunnel token and
    // the agent key, none of which the agent jails may read.
    let hidden: Vec<PathBuf> = [pki.clone(), state_path.clone(), token_file, key_file]
        .into_iter()
        .chain(["gateway.db-wal", "gateway.db-shm"].map(|f| a.dir.join(f)))
        .collect();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = Gateway::start(go).await.context("starting the gateway")?;
        let mut mcp = None;
        if builtin {
            let (child, url) = start_builtin(
                &config_path,
                Some(&workdir),
                &hidden,
                &gw.public_key.to_base64(),
                TUNNEL,
                "tools",
            )
            .await?;
            routes.insert("tools".into(), airlock_tunnel::connector::RouteTarget::Http(url));
            mcp = Some(child);
        }
        let mut o = ConnectorOptions::new(format!("localhost:{}", gw.tunnel_addr.port()), TUNNEL.into(), token, ca, cert, ckey);
        o.name = "airlock-up".into();
        o.routes = routes.clone();
        let want = o.links as usize;
        let mut c = Connector::start(o).context("starting the connector")?;
        c.wait_links(1).await;
        // One link serves; give the others a moment (a restart often has
        // the second still handshaking) so the count is not misleading,
        // and say "N of M" when they are still not all up.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), c.wait_links(want)).await;
        println!("airlock is up: gateway on http://{} (localhost only), {} of {want} links up.", gw.agent_addr, c.links_up());
        println!("agent key: {key}");
        for name in routes.keys() {
            let url = format!("http://{}/t/{TUNNEL}/{name}", gw.agent_addr);
            println!();
            println!("route `{name}`: {url}");
            println!("  claude mcp add --transport http airlock-{name} {url} --header \"Authorization: Bearer {key}\"");
            println!("  npx @modelcontextprotocol/inspector --cli {url} --transport http --header \"Authorization: Bearer {key}\" --method tools/list");
        }
        println!();
        println!("Ctrl-C stops it.");
        tokio::select! {
            r = c.wait() => { r.context("the connector stopped")?; }
            _ = super::gateway::shutdown_signal() => { c.shutdown().await; }
        }
        gw.shutdown().await;
        if let Some(mut m) = mcp {
            // A graceful stop ends the session jails and closes the audit log.
            if let Some(pid) = m.id() {
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), m.wait()).await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// First start: the default policy, an audit signing key and the workspace.
fn prepare_builtin(
    dir: &std::path::Path,
    config: &std::path::Path,
    workdir: &std::path::Path,
) -> anyhow::Result<()> {
    if !config.exists() {
        std::fs::write(config, DEFAULT_CONFIG)
            .with_context(|| format!("write {}", config.display()))?;
    }
    let key = dir.join("audit.key");
    if !key.exists() {
        airlock_audit::SigningKey::write_new(&key)?;
    }
    if !workdir.exists() {
        std::fs::create_dir_all(workdir)
            .with_context(|| format!("create {}", workdir.display()))?;
        // As root the jail runs as an unprivileged host uid: give it the workspace.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(
                workdir,
                Some(airlock_jail::DEFAULT_HOST_ID),
                Some(airlock_jail::DEFAULT_HOST_ID),
            )
            .with_context(|| format!("chown {}", workdir.display()))?;
        }
    }
    Ok(())
}

/// Starts `airlock mcp` on a loopback port, trusting only the gateway's
/// identity assertions for `tunnel`/`route`, and returns it with its URL.
/// `deny_read`: the caller's own secrets (tunnel token, private keys,
/// state), which the agent jails must not read although the MCP config
/// does not name them.
pub(crate) async fn start_builtin(
    config: &std::path::Path,
    workdir: Option<&std::path::Path>,
    deny_read: &[PathBuf],
    gateway_key: &str,
    tunnel: &str,
    route: &str,
) -> anyhow::Result<(tokio::process::Child, String)> {
    use tokio::io::AsyncBufReadExt;
    let exe = std::env::current_exe().context("locate the airlock binary")?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("mcp").arg("--config").arg(config);
    if let Some(w) = workdir {
        cmd.arg("--workdir").arg(w);
    }
    for p in deny_read {
        cmd.arg("--deny-read").arg(p);
    }
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "--gateway-key",
        gateway_key,
        "--gateway-tunnel",
        tunnel,
        "--gateway-route",
        route,
    ])
    .stdout(std::process::Stdio::piped())
    .kill_on_drop(true);
    // A SIGKILLed `up`/`connect` must not leave its MCP server (and that
    // server's jails) running.
    airlock_tunnel::die_with_parent(&mut cmd);
    let mut child = cmd.spawn().context("start the built-in MCP server")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .context("the built-in MCP server did not start within 30 s")??;
    let Some(url) = first
        .as_deref()
        .and_then(|l| l.strip_prefix("listening on "))
    else {
        bail!(
            "the built-in MCP server did not start (see its errors above); check {}",
            config.display()
        );
    };
    let url = url.trim().to_string();
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}
