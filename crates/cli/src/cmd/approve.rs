//! `airlock approve`: approve one exact tool call an agent asked for.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use airlock_policy::{ApprovalStatus, ApprovalStore, CallHash};
use anyhow::{anyhow, bail};

#[derive(clap::Args)]
#[command(
    after_help = "A tool with `approval: required` answers a call with its hash until an operator approves\n\
that exact call (same tool, same canonical arguments, same agent). An approval is used once.\n\
Examples:\n  \
airlock approve --list\n  \
airlock approve 3f1c…e9 --ttl 15m --by alice"
)]
pub struct Args {
    /// The call hash the agent was given (64 hex digits).
    #[arg(required_unless_present = "list")]
    hash: Option<String>,
    /// List requests and their status instead.
    #[arg(long, conflicts_with = "hash")]
    list: bool,
    /// How long the approval stays usable, like 15m or 2h.
    #[arg(long, default_value = "1h")]
    ttl: String,
    /// Who approves, for the record (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// Approval state file (the server's --approvals). Default:
    /// `$AIRLOCK_STATE_DIR/approvals.db`, else `/var/lib/airlock/approvals.db`.
    #[arg(long, env = "AIRLOCK_APPROVALS")]
    approvals: Option<PathBuf>,
}

fn status(s: ApprovalStatus) -> &'static str {
    match s {
        ApprovalStatus::Pending => "pending",
        ApprovalStatus::Approved => "approved",
        ApprovalStatus::Used => "used",
        ApprovalStatus::Expired => "expired",
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let path = super::mcp::approvals_path(args.approvals.as_deref());
    if !path.exists() {
        bail!("{}: no approval state here yet (has the server recorded a request? pass --approvals FILE)", path.display());
    }
    let store = ApprovalStore::open(&path)?;
    let mut out = std::io::stdout().lock();
    if args.list {
        let all = store.list()?;
        let pending = all
            .iter()
            .filter(|r| matches!(r.status, ApprovalStatus::Pending))
            .count();
        for r in all {
            writeln!(
                out,
                "{}  {:<8}  agent={}  tool={}  args={}",
                r.hash,
                status(r.status),
                r.agent,
                r.tool,
                r.args
            )?;
        }
        // Silence would leave the operator wondering whether the file is the
        // server's; stderr, so the rows on stdout stay the only thing a
        // script parses.
        if pending == 0 {
            eprintln!("no pending approval requests ({})", path.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let hex = args.hash.as_deref().unwrap_or_default();
    let hash = CallHash::from_hex(hex)
        .ok_or_else(|| anyhow!("`{hex}` is not a call hash (64 hex digits)"))?;
    let ttl: Duration = airlock_config::parse_duration(&args.ttl)
        .map_err(|e| anyhow!("--ttl {}: {e}", args.ttl))?;
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    for r in store.approve(&hash, &by, ttl)? {
        writeln!(
            out,
            "approved {} for {}: agent={} tool={} args={}",
            r.hash, args.ttl, r.agent, r.tool, r.args
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
