//! `airlock up`: the quick start on one machine: a state directory with a
//! generated PKI, a tunnel and an agent key; the gateway on localhost; a
//! connector serving the given routes; and the commands to point an agent
//! at it. (The built-in `airlock mcp` route `tools` is wired here once that
//! server exists; until then give a route.)

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_tunnel::connector::{Connector, ConnectorOptions};
use airlock_tunnel::gateway::{Gateway, GatewayOptions};
use airlock_tunnel::state::State;
use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// State directory (PKI, gateway state, the local token and key).
    #[arg(long, default_value = ".airlock")]
    dir: PathBuf,
    /// Agent-facing port on 127.0.0.1.
    #[arg(long, default_value_t = 8765)]
    port: u16,
    /// A route, as for `airlock connect` (`NAME=http://…` or `NAME=stdio:PROGRAM ARGS…`).
    #[arg(long = "route")]
    routes: Vec<String>,
}

const TUNNEL: &str = "local";

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.routes.is_empty() {
        bail!(
            "give at least one route, e.g. `airlock up --route tools=stdio:npx -y @modelcontextprotocol/server-everything` \
             (the built-in airlock mcp route arrives with the MCP server)"
        );
    }
    let routes = super::connect::parse_routes(&a.routes)?;
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
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
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let gw = Gateway::start(go).await.context("starting the gateway")?;
        let mut o = ConnectorOptions::new(format!("localhost:{}", gw.tunnel_addr.port()), TUNNEL.into(), token, ca, cert, ckey);
        o.name = "airlock-up".into();
        o.routes = routes.clone();
        let mut c = Connector::start(o).context("starting the connector")?;
        c.wait_links(1).await;
        println!("airlock is up: gateway on http://{} (localhost only), {} link(s).", gw.agent_addr, c.links_up());
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
        Ok(ExitCode::SUCCESS)
    })
}
