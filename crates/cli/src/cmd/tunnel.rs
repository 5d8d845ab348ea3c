//! `airlock tunnel …`: tunnels in the gateway's state file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::certs::Ca;
use airlock_tunnel::state::State;
use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Gateway state file (SQLite).
    #[arg(long, env = "AIRLOCK_GATEWAY_STATE", global = true)]
    state: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Create a tunnel with the CA that signs its connectors' certificates; prints the token once.
    Create {
        name: String,
        /// CA certificate (PEM); give twice to register two during a rotation.
        #[arg(long = "ca", required = true)]
        cas: Vec<PathBuf>,
    },
    /// List tunnels.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show one tunnel and its recent link history.
    Show { name: String },
    /// Issue a new token; the old one keeps working for --grace. Links stay up.
    RotateToken {
        name: String,
        #[arg(long, value_parser = airlock_config::parse_duration, default_value = "1h")]
        grace: Duration,
    },
    /// Register a second CA (rotation); at most two are active.
    AddCa {
        name: String,
        #[arg(long)]
        ca: PathBuf,
    },
    /// Retire every CA of the tunnel except the newest.
    RetireOldCas { name: String },
    /// Archive a tunnel: links are dropped, its keys revoked, its name kept.
    Archive { name: String },
    /// Print the gateway's Ed25519 identity-assertion public key (for `airlock mcp`).
    IdentityKey,
    /// Generate a CA, a gateway server certificate and a connector client
    /// certificate into DIR (for trying airlock out; bring your own PKI in production).
    Certs {
        dir: PathBuf,
        /// DNS names or IPs for the gateway certificate.
        #[arg(long = "gateway-name", default_value = "localhost")]
        names: Vec<String>,
    },
}

fn open(state: &Option<PathBuf>) -> anyhow::Result<State> {
    let p = state
        .as_ref()
        .context("--state FILE (or AIRLOCK_GATEWAY_STATE) is required")?;
    Ok(State::open(p)?)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Cmd::Create { name, cas } => {
            let pems = cas
                .iter()
                .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let token = open(&a.state)?.create_tunnel(&name, &pems)?;
            println!("tunnel `{name}` created.");
            println!("token (shown once; give it to the connector as AIRLOCK_TUNNEL_TOKEN):");
            println!("{token}");
        }
        Cmd::List { json } => {
            let t = open(&a.state)?.list_tunnels()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&t)?);
            } else {
                println!(
                    "{:<24} {:<9} {:>3} {:>6}",
                    "NAME", "STATUS", "CAS", "TOKENS"
                );
                for t in t {
                    let s = if t.archived_at.is_some() {
                        "archived"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<24} {:<9} {:>3} {:>6}",
                        t.name, s, t.active_cas, t.tokens
                    );
                }
            }
        }
        Cmd::Show { name } => {
            let st = open(&a.state)?;
            let t = st
                .list_tunnels()?
                .into_iter()
                .find(|t| t.name == name)
                .with_context(|| format!("no tunnel `{name}`"))?;
            let hist = st.link_history(&name, 20)?;
            let out = serde_json::json!({ "tunnel": t, "recent_link_events": hist });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::RotateToken { name, grace } => {
            let token = open(&a.state)?.rotate_token(&name, grace)?;
            println!("new token for `{name}` (shown once); the previous one stops working for new links in {grace:?}:");
            println!("{token}");
        }
        Cmd::AddCa { name, ca } => {
            let pem =
                std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
            open(&a.state)?.add_ca(&name, &pem)?;
            println!("CA added to `{name}`.");
        }
        Cmd::RetireOldCas { name } => {
            let n = open(&a.state)?.retire_old_cas(&name)?;
            println!("{n} CA(s) retired for `{name}`.");
        }
        Cmd::Archive { name } => {
            open(&a.state)?.archive_tunnel(&name)?;
            println!("tunnel `{name}` archived; its links drop within a second and its keys are revoked.");
        }
        Cmd::IdentityKey => {
            println!(
                "{}",
                open(&a.state)?.signing_key()?.public_key().to_base64()
            );
        }
        Cmd::Certs { dir, names } => {
            write_certs(&dir, &names)?;
            println!("wrote gateway-ca.pem, gateway.pem, gateway.key, tunnel-ca.pem, connector.pem, connector.key to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a gateway CA + server cert and a tunnel CA + client cert.
pub fn write_certs(dir: &Path, names: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let gw = Ca::generate("airlock gateway CA")?;
    let tun = Ca::generate("airlock tunnel CA")?;
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let server = gw.issue_server(&names)?;
    let client = tun.issue_client("airlock-connector")?;
    let files = [
        ("gateway-ca.pem", gw.pem().cert),
        ("gateway.pem", server.cert),
        ("gateway.key", server.key),
        ("tunnel-ca.pem", tun.pem().cert),
        ("connector.pem", client.cert),
        ("connector.key", client.key),
    ];
    for (f, body) in files {
        write_private(&dir.join(f), body.as_bytes())?;
    }
    Ok(())
}

pub(crate) fn write_private(p: &Path, b: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(p)
        .with_context(|| format!("cannot write {}", p.display()))?;
    f.write_all(b)?;
    Ok(())
}
