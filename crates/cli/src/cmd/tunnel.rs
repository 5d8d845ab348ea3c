//! `airlock tunnel …`: tunnels, in the gateway's state file or through its
//! admin API (`--gateway URL`). Both paths print exactly the same output.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use airlock_tunnel::certs::Ca;
use airlock_tunnel::state::{KeyInfo, State, TunnelInfo};
use anyhow::Context;
use serde_json::{json, Value};

/// Where `airlock tunnel` and `airlock key` act: the state file, or a
/// running gateway's admin API.
#[derive(clap::Args)]
pub(crate) struct Target {
    /// Gateway state file (SQLite), acted on directly. Safe while a gateway
    /// runs on it (SQLite locking, WAL); the gateway sees changes within a second.
    #[arg(long, env = "AIRLOCK_GATEWAY_STATE", global = true)]
    state: Option<PathBuf>,
    /// Act through a running gateway's admin API instead of the state file
    /// (`http://127.0.0.1:8444`, or `https://HOST:PORT` with --gateway-ca);
    /// changes take effect on the gateway at once, and are audited there.
    #[arg(long, env = "AIRLOCK_ADMIN_URL", global = true, value_name = "URL")]
    gateway: Option<String>,
    /// Environment variable holding the admin key for --gateway.
    #[arg(
        long,
        global = true,
        default_value = "AIRLOCK_ADMIN_KEY",
        value_name = "VAR"
    )]
    admin_key_env: String,
    /// CA that signed the gateway's certificate, for an https:// --gateway.
    #[arg(long, global = true, value_name = "FILE")]
    gateway_ca: Option<PathBuf>,
}

pub(crate) const TARGET_HELP: &str = "Without --gateway, the command acts on the state file (--state or AIRLOCK_GATEWAY_STATE) \
directly; with --gateway URL it asks that gateway's admin API (admin key from AIRLOCK_ADMIN_KEY, or the variable \
--admin-key-env names). The output is the same either way.";

/// One backend for every tunnel and key command.
pub(crate) enum Admin {
    File(State),
    Api {
        client: airlock_tunnel::admin::Client,
        rt: tokio::runtime::Runtime,
    },
}

impl Admin {
    pub(crate) fn open(t: &Target) -> anyhow::Result<Admin> {
        let Some(url) = &t.gateway else {
            let p = t.state.as_ref().context(
                "--state FILE (or AIRLOCK_GATEWAY_STATE) is required, or --gateway URL for a gateway's admin API",
            )?;
            return Ok(Admin::File(State::open(p)?));
        };
        let key = std::env::var(&t.admin_key_env).map_err(|_| {
            anyhow::anyhow!(
                "--gateway needs the admin key in ${} (set it, or name another variable with --admin-key-env)",
                t.admin_key_env
            )
        })?;
        let ca = match &t.gateway_ca {
            Some(p) => {
                Some(std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?)
            }
            None => None,
        };
        let client =
            airlock_tunnel::admin::Client::new(url, key.trim().to_string(), ca.as_deref())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Admin::Api { client, rt })
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let Admin::Api { client, rt } = self else {
            unreachable!("call is only used on the API backend")
        };
        let r = if method == "GET" {
            rt.block_on(client.get(path))
        } else {
            rt.block_on(client.post(path, body.unwrap_or(Value::Null)))
        };
        Ok(r?)
    }

    fn api_str(v: &Value, key: &str) -> anyhow::Result<String> {
        v.get(key)
            .and_then(Value::as_str)
            .map(String::from)
            .with_context(|| format!("the admin API's answer lacks `{key}`"))
    }

    pub(crate) fn create_tunnel(&mut self, name: &str, pems: &[Vec<u8>]) -> anyhow::Result<String> {
        match self {
            Admin::File(st) => Ok(st.create_tunnel(name, pems)?),
            Admin::Api { .. } => {
                let cas: Vec<String> = pems
                    .iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect();
                let v = self.call(
                    "POST",
                    "/v1/tunnels",
                    Some(json!({"name": name, "cas": cas})),
                )?;
                Self::api_str(&v, "token")
            }
        }
    }

    pub(crate) fn list_tunnels(&self) -> anyhow::Result<Vec<TunnelInfo>> {
        match self {
            Admin::File(st) => Ok(st.list_tunnels()?),
            Admin::Api { .. } => Ok(serde_json::from_value(self.call(
                "GET",
                "/v1/tunnels",
                None,
            )?)?),
        }
    }

    /// `{"tunnel": …, "recent_link_events": […]}`.
    pub(crate) fn show_tunnel(&self, name: &str) -> anyhow::Result<Value> {
        match self {
            Admin::File(st) => {
                let t = st
                    .list_tunnels()?
                    .into_iter()
                    .find(|t| t.name == name)
                    .with_context(|| format!("no tunnel `{name}`"))?;
                let hist = st.link_history(name, 20)?;
                Ok(json!({ "tunnel": t, "recent_link_events": hist }))
            }
            Admin::Api { .. } => {
                if !airlock_tunnel::paths::valid_name(name) {
                    anyhow::bail!("no tunnel `{name}`");
                }
                self.call("GET", &format!("/v1/tunnels/{name}"), None)
            }
        }
    }

    pub(crate) fn rotate_token(&mut self, name: &str, grace: Duration) -> anyhow::Result<String> {
        match self {
            Admin::File(st) => Ok(st.rotate_token(name, grace)?),
            Admin::Api { .. } => {
                let v = self.call(
                    "POST",
                    &format!("/v1/tunnels/{}/rotate-token", path_name(name)?),
                    Some(json!({"grace_seconds": grace.as_secs()})),
                )?;
                Self::api_str(&v, "token")
            }
        }
    }

    pub(crate) fn add_ca(&mut self, name: &str, pem: &[u8]) -> anyhow::Result<()> {
        match self {
            Admin::File(st) => Ok(st.add_ca(name, pem)?),
            Admin::Api { .. } => {
                let ca = String::from_utf8_lossy(pem).into_owned();
                self.call(
                    "POST",
                    &format!("/v1/tunnels/{}/cas", path_name(name)?),
                    Some(json!({ "ca": ca })),
                )?;
                Ok(())
            }
        }
    }

    pub(crate) fn retire_old_cas(&mut self, name: &str) -> anyhow::Result<usize> {
        match self {
            Admin::File(st) => Ok(st.retire_old_cas(name)?),
            Admin::Api { .. } => {
                let v = self.call(
                    "POST",
                    &format!("/v1/tunnels/{}/retire-old-cas", path_name(name)?),
                    None,
                )?;
                let n = v.get("retired").and_then(Value::as_u64);
                Ok(n.context("the admin API's answer lacks `retired`")? as usize)
            }
        }
    }

    pub(crate) fn archive(&mut self, name: &str) -> anyhow::Result<()> {
        match self {
            Admin::File(st) => Ok(st.archive_tunnel(name)?),
            Admin::Api { .. } => {
                self.call(
                    "POST",
                    &format!("/v1/tunnels/{}/archive", path_name(name)?),
                    None,
                )?;
                Ok(())
            }
        }
    }

    pub(crate) fn identity_key(&mut self) -> anyhow::Result<String> {
        match self {
            Admin::File(st) => Ok(st.signing_key()?.public_key().to_base64()),
            Admin::Api { .. } => {
                let v = self.call("GET", "/v1/identity-key", None)?;
                Self::api_str(&v, "identity_key")
            }
        }
    }

    pub(crate) fn create_key(
        &mut self,
        agent: &str,
        tunnel: &str,
        routes: &[String],
    ) -> anyhow::Result<(String, String)> {
        match self {
            Admin::File(st) => Ok(st.create_key(agent, tunnel, routes)?),
            Admin::Api { .. } => {
                let v = self.call(
                    "POST",
                    "/v1/keys",
                    Some(json!({"agent": agent, "tunnel": tunnel, "routes": routes})),
                )?;
                Ok((Self::api_str(&v, "id")?, Self::api_str(&v, "key")?))
            }
        }
    }

    pub(crate) fn list_keys(&self) -> anyhow::Result<Vec<KeyInfo>> {
        match self {
            Admin::File(st) => Ok(st.list_keys()?),
            Admin::Api { .. } => Ok(serde_json::from_value(self.call("GET", "/v1/keys", None)?)?),
        }
    }

    pub(crate) fn revoke_key(&mut self, id: &str) -> anyhow::Result<()> {
        match self {
            Admin::File(st) => Ok(st.revoke_key(id)?),
            Admin::Api { .. } => {
                if !airlock_tunnel::paths::valid_name(id) {
                    anyhow::bail!(
                        "gateway state: no unrevoked key with id `{id}` (see `airlock key list`)"
                    );
                }
                self.call("POST", &format!("/v1/keys/{id}/revoke"), None)?;
                Ok(())
            }
        }
    }
}

/// A tunnel name that can go into a URL path; anything else cannot name a
/// tunnel, which is what the state file would say too.
fn path_name(name: &str) -> anyhow::Result<&str> {
    if airlock_tunnel::paths::valid_name(name) {
        Ok(name)
    } else {
        anyhow::bail!("gateway state: no active tunnel named `{name}` (see `airlock tunnel list`)")
    }
}

#[derive(clap::Args)]
#[command(after_help = TARGET_HELP)]
pub struct Args {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Create a tunnel with the CA that signs its connectors' certificates; prints the token once.
    #[command(
        after_help = "Example: airlock tunnel create corp --ca ./pki/tunnel-ca.pem\n\
Give the token to the connector (AIRLOCK_TUNNEL_TOKEN, --token-file, or connector.token)."
    )]
    Create {
        /// Tunnel name: 1 to 63 letters, digits, `_`, `-`; part of the agent URL `/t/NAME/ROUTE`.
        name: String,
        /// CA certificate (PEM); give twice to register two during a rotation.
        #[arg(long = "ca", required = true)]
        cas: Vec<PathBuf>,
    },
    /// List tunnels.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one tunnel and its recent link history (JSON).
    Show {
        /// Tunnel name.
        name: String,
    },
    /// Issue a new token; the old one keeps working for --grace. Links stay up.
    #[command(after_help = "Example: airlock tunnel rotate-token corp --grace 30m\n\
A connector using --token-file picks up the new token at its next reconnect; deploy it within the grace.")]
    RotateToken {
        /// Tunnel name.
        name: String,
        /// How long the previous token still opens new links, like `30m` or `2h`.
        #[arg(long, value_parser = airlock_config::parse_duration, default_value = "1h")]
        grace: Duration,
    },
    /// Register a second CA (rotation); at most two are active.
    #[command(
        after_help = "CA rotation: airlock tunnel add-ca corp --ca new-ca.pem; reissue connector certificates\n\
from the new CA and restart connectors; then airlock tunnel retire-old-cas corp."
    )]
    AddCa {
        /// Tunnel name.
        name: String,
        /// The new CA certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
    },
    /// Retire every CA of the tunnel except the newest.
    RetireOldCas {
        /// Tunnel name.
        name: String,
    },
    /// Archive a tunnel: links are dropped, its keys revoked, its name kept.
    Archive {
        /// Tunnel name.
        name: String,
    },
    /// Print the gateway's Ed25519 identity-assertion public key (for `airlock mcp`).
    IdentityKey,
    /// Generate a CA, a gateway server certificate and a connector client
    /// certificate into DIR (for trying airlock out; bring your own PKI in production).
    #[command(
        after_help = "Example: airlock tunnel certs ./pki --gateway-name gateway.example.com\n\
Writes gateway-ca.pem (the connector's --ca), gateway.pem/.key (the gateway's --cert/--key),\n\
tunnel-ca.pem (for `tunnel create --ca`) and connector.pem/.key (the connector's --cert/--key).\n\
Needs neither --state nor --gateway."
    )]
    Certs {
        /// Directory to write into (created if missing).
        dir: PathBuf,
        /// DNS name or IP for the gateway certificate (repeatable).
        #[arg(long = "gateway-name", default_value = "localhost")]
        names: Vec<String>,
    },
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let open = || Admin::open(&a.target);
    match a.cmd {
        Cmd::Create { name, cas } => {
            let pems = cas
                .iter()
                .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let token = open()?.create_tunnel(&name, &pems)?;
            println!("tunnel `{name}` created.");
            println!("token (shown once; give it to the connector as AIRLOCK_TUNNEL_TOKEN):");
            println!("{token}");
        }
        Cmd::List { json } => {
            let t = open()?.list_tunnels()?;
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
            let out = open()?.show_tunnel(&name)?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Cmd::RotateToken { name, grace } => {
            let token = open()?.rotate_token(&name, grace)?;
            println!("new token for `{name}` (shown once); the previous one stops working for new links in {grace:?}:");
            println!("{token}");
        }
        Cmd::AddCa { name, ca } => {
            let pem =
                std::fs::read(&ca).with_context(|| format!("cannot read {}", ca.display()))?;
            open()?.add_ca(&name, &pem)?;
            println!("CA added to `{name}`.");
        }
        Cmd::RetireOldCas { name } => {
            let n = open()?.retire_old_cas(&name)?;
            println!("{n} CA(s) retired for `{name}`.");
        }
        Cmd::Archive { name } => {
            open()?.archive(&name)?;
            println!("tunnel `{name}` archived; its links drop within a second and its keys are revoked.");
        }
        Cmd::IdentityKey => {
            println!("{}", open()?.identity_key()?);
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
