//! `airlock key …`: agent bearer keys, in the gateway's state file or
//! through its admin API (`--gateway URL`); the same output either way.

use std::process::ExitCode;

use super::tunnel::{Admin, Target, TARGET_HELP};

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
    /// Create a key for an agent, scoped to one tunnel (and routes); prints it once.
    #[command(
        after_help = "Example: airlock key create --agent ci-agent --tunnel corp --route tools\n\
The agent sends it as `Authorization: Bearer alk_…` to https://GATEWAY/t/corp/tools."
    )]
    Create {
        /// Agent name; `airlock mcp` behind the tunnel sees it in the identity
        /// assertion and looks it up in the config's `agents:`.
        #[arg(long)]
        agent: String,
        /// Tunnel the key is valid for.
        #[arg(long)]
        tunnel: String,
        /// Route the key may use; repeat. None means every route of the tunnel.
        #[arg(long = "route")]
        routes: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id: through --gateway at once, on the state file
    /// within a second.
    Revoke {
        /// Key id, as `key create` and `key list` print it (not the key itself).
        id: String,
    },
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut st = Admin::open(&a.target)?;
    match a.cmd {
        Cmd::Create {
            agent,
            tunnel,
            routes,
        } => {
            let (id, key) = st.create_key(&agent, &tunnel, &routes)?;
            println!("key {id} for agent `{agent}` on tunnel `{tunnel}` (shown once):");
            println!("{key}");
        }
        Cmd::List { json } => {
            let keys = st.list_keys()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<14} {:<20} {:<20} {:<20} STATUS",
                    "ID", "AGENT", "TUNNEL", "ROUTES"
                );
                for k in keys {
                    let routes = if k.routes.is_empty() {
                        "*".to_string()
                    } else {
                        k.routes.join(",")
                    };
                    let s = if k.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<14} {:<20} {:<20} {:<20} {s}",
                        k.id, k.agent, k.tunnel, routes
                    );
                }
            }
        }
        Cmd::Revoke { id } => {
            st.revoke_key(&id)?;
            println!("key {id} revoked.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
