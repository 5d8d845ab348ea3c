//! `airlock key …`: agent bearer keys in the gateway's state file.

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Create a key for an agent, scoped to one tunnel (and routes); prints it once.
    Create {
        #[arg(long)]
        agent: String,
        #[arg(long)]
        tunnel: String,
        /// Route the key may use; repeat. None means every route of the tunnel.
        #[arg(long = "route")]
        routes: Vec<String>,
    },
    /// List keys (never their secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; takes effect within a second.
    Revoke { id: String },
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let p = a
        .state
        .as_ref()
        .context("--state FILE (or AIRLOCK_GATEWAY_STATE) is required")?;
    let mut st = State::open(p)?;
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
