//! `airlock audit`: verify, read and key the tamper-evident audit log.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use airlock_audit::query::{self, Filter};
use airlock_audit::verify::{verify, Verdict};
use airlock_audit::{PublicKey, SigningKey};
use anyhow::{anyhow, Context};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Check every record and checkpoint; name the first that is wrong.
    #[command(
        after_help = "Exit status: 0 every record is covered by a valid signed checkpoint;\n\
1 tampered (modified, deleted, inserted, reordered or forged: the first bad position is named);\n\
2 nothing wrong, but some records are unproven (after the last checkpoint, or checkpoints unsigned)."
    )]
    Verify {
        /// The audit directory (`audit.dir`).
        dir: PathBuf,
        /// Public key to pin: `ed25519:<hex>` or the `.pub` file `keygen` wrote.
        #[arg(long)]
        key: Option<String>,
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
    },
    /// Print the last records; with -f keep printing new ones.
    #[command(after_help = "Example: airlock audit tail -f /var/lib/airlock/audit\n\
Table columns: SEQ TIME KIND AGENT TOOL DEC(ision) STATUS DETAIL (result, reason or egress host:port;\n\
control characters escaped, cut at 80 characters); --format jsonl prints the records as stored.")]
    Tail {
        /// The audit directory (`audit.dir`).
        dir: PathBuf,
        /// How many records.
        #[arg(short = 'n', long, default_value = "20")]
        lines: usize,
        /// Keep running and print records as they are appended.
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutFormat,
    },
    /// Search records (filters combine with AND).
    #[command(after_help = "Examples:\n  \
airlock audit query /var/lib/airlock/audit --since 2h --agent ci-agent --decision deny\n  \
airlock audit query /var/lib/airlock/audit --kind egress --format jsonl | jq .egress")]
    Query {
        /// The audit directory (`audit.dir`).
        dir: PathBuf,
        /// From: RFC 3339 (`2026-11-23T07:00:00Z`), a date, or ago (`15m`, `2h`, `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Until (exclusive), same forms.
        #[arg(long)]
        until: Option<String>,
        /// Agent name (`who.agent`).
        #[arg(long)]
        agent: Option<String>,
        /// Session id (`who.session`).
        #[arg(long)]
        session: Option<String>,
        /// Tool name.
        #[arg(long)]
        tool: Option<String>,
        /// Record kind (checkpoint and recovery need --all too).
        #[arg(long, value_parser = [
            "tool_call", "policy_decision", "egress", "jail_run", "tunnel", "auth", "system",
            "checkpoint", "recovery",
        ])]
        kind: Option<String>,
        /// `allow` or `deny`.
        #[arg(long)]
        decision: Option<String>,
        /// Outcome as recorded, like `ok` or `denied` (exact match).
        #[arg(long)]
        status: Option<String>,
        /// Most records to print.
        #[arg(long)]
        limit: Option<usize>,
        /// Include checkpoint and recovery records.
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: OutFormat,
    },
    /// Write a new checkpoint signing key (0600) and its public key (FILE.pub).
    Keygen {
        /// Where to write the key: outside the audit directory and outside any jail.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutFormat {
    Table,
    Jsonl,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Cmd::Verify { dir, key, format } => {
            let key = key.map(|k| PublicKey::parse_or_read(&k)).transpose()?;
            if !dir.is_dir() {
                return Err(anyhow!("{} is not a directory", dir.display()));
            }
            let r = verify(&dir, key.as_ref())?;
            match format {
                Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
                Format::Human => {
                    let v = match r.verdict {
                        Verdict::Ok => "OK",
                        Verdict::Unproven => "UNPROVEN",
                        Verdict::Tampered => "TAMPERED",
                    };
                    println!(
                        "{v}: {} records, {} checkpoints, proven through seq {}, {} unproven",
                        r.records,
                        r.checkpoints,
                        r.proven_through
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        r.unproven
                    );
                    if let Some(p) = &r.problem {
                        println!(
                            "first problem at {} (seq {}): {}",
                            p.at,
                            p.seq.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                            p.message
                        );
                    }
                    for n in &r.notes {
                        println!("note: {n}");
                    }
                }
            }
            Ok(ExitCode::from(match r.verdict {
                Verdict::Ok => 0,
                Verdict::Tampered => 1,
                Verdict::Unproven => 2,
            }))
        }
        Cmd::Tail {
            dir,
            lines,
            follow,
            format,
        } => {
            let mut last: std::collections::VecDeque<serde_json::Value> = Default::default();
            let mut pos = query::end(&dir)?;
            let mut max_seq = 0;
            query::scan(&dir, &Filter::default(), |v, _| {
                max_seq = v["seq"].as_u64().unwrap_or(max_seq);
                last.push_back(v.clone());
                if last.len() > lines {
                    last.pop_front();
                }
                true
            })?;
            let mut out = std::io::stdout().lock();
            if matches!(format, OutFormat::Table) {
                header(&mut out)?;
            }
            for v in &last {
                print_record(&mut out, v, format)?;
            }
            out.flush()?;
            drop(out);
            if follow {
                // Only bytes appended after `pos` are read on each poll; the
                // sequence number skips what the first read already printed.
                let filter = Filter::default();
                loop {
                    std::thread::sleep(std::time::Duration::from_millis(250));
                    let mut out = std::io::stdout().lock();
                    pos = query::follow(&dir, pos, |v| {
                        let s = v["seq"].as_u64().unwrap_or(0);
                        if s > max_seq && filter.matches(v) {
                            max_seq = s;
                            let _ = print_record(&mut out, v, format);
                        }
                    })?;
                    out.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Query {
            dir,
            since,
            until,
            agent,
            session,
            tool,
            kind,
            decision,
            status,
            limit,
            all,
            format,
        } => {
            let t = |s: Option<String>, what: &str| -> anyhow::Result<Option<u128>> {
                s.map(|s| query::parse_time(&s).ok_or_else(|| anyhow!("--{what} {s}: write RFC 3339 (2026-11-23T07:00:00Z), a date, or an age like 15m, 2h, 7d"))).transpose()
            };
            if let Some(d) = &decision {
                if d != "allow" && d != "deny" {
                    return Err(anyhow!("--decision {d}: write `allow` or `deny`"));
                }
            }
            let f = Filter {
                since_ns: t(since, "since")?,
                until_ns: t(until, "until")?,
                agent,
                session,
                tool,
                kind,
                decision,
                status,
                all,
            };
            let mut out = std::io::stdout().lock();
            if matches!(format, OutFormat::Table) {
                header(&mut out)?;
            }
            let mut n = 0usize;
            let limit = limit.unwrap_or(usize::MAX);
            query::scan(&dir, &f, |v, raw| {
                n += 1;
                let r = match format {
                    OutFormat::Jsonl => out.write_all(raw).and_then(|_| out.write_all(b"\n")),
                    OutFormat::Table => print_record(&mut out, v, format),
                };
                r.is_ok() && n < limit
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen { out } => {
            let (k, pubpath) =
                SigningKey::write_new(&out).with_context(|| format!("--out {}", out.display()))?;
            println!("signing key: {} (0600; set audit.signing_key to it; keep it outside the audit directory and any jail)", out.display());
            println!(
                "public key:  {} ({})",
                pubpath.display(),
                k.public().to_text()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn header(out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{:>8}  {:<26}  {:<15}  {:<14}  {:<18}  {:<6}  {:<10}  DETAIL",
        "SEQ", "TIME", "KIND", "AGENT", "TOOL", "DEC", "STATUS"
    )
}

fn print_record(
    out: &mut impl Write,
    v: &serde_json::Value,
    format: OutFormat,
) -> std::io::Result<()> {
    if matches!(format, OutFormat::Jsonl) {
        return writeln!(out, "{}", serde_json::to_string(v).unwrap_or_default());
    }
    let s = |x: &serde_json::Value| one_line(x.as_str().unwrap_or("-"));
    let dec = match v["decision"]["allowed"].as_bool() {
        Some(true) => "allow",
        Some(false) => "deny",
        None => "-",
    };
    let detail = if v["egress"].is_object() {
        format!("{}:{}", s(&v["egress"]["host"]), v["egress"]["port"])
    } else if let Some(r) = v["decision"]["reason"].as_str() {
        one_line(r)
    } else {
        s(&v["result"])
    };
    let detail: String = detail.chars().take(80).collect();
    writeln!(
        out,
        "{:>8}  {:<26}  {:<15}  {:<14}  {:<18}  {:<6}  {:<10}  {}",
        // A `Value` ignores width when displayed; a string pads.
        v["seq"].to_string(),
        s(&v["time"]),
        s(&v["kind"]),
        s(&v["who"]["agent"]),
        s(&v["tool"]),
        dec,
        s(&v["status"]),
        detail
    )
}

/// A field for one table row. Results and reasons carry what a jailed
/// command printed, so newlines would break the row and terminal escape
/// sequences (ESC, CSI, BEL …) would reach the operator's terminal: every
/// control character is shown escaped (`\n`, `\u{1b}`) instead.
fn one_line(x: &str) -> String {
    let mut out = String::with_capacity(x.len());
    for c in x.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_row_is_one_line_without_control_characters() {
        let v = serde_json::json!({
            "seq": 7,
            "time": "2026-11-23T10:00:00Z",
            "kind": "tool_call",
            "who": {"agent": "a\u{1b}]0;x\u{7}"},
            "tool": "bash",
            "status": "ok",
            "result": "line one\nline two\u{1b}[31mred\r",
        });
        let mut out = Vec::new();
        print_record(&mut out, &v, OutFormat::Table).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches('\n').count(), 1, "{out:?}");
        assert!(!out.trim_end().chars().any(char::is_control), "{out:?}");
        assert!(out.starts_with("       7  "), "{out:?}");
        assert!(
            out.contains("line one\\nline two\\u{1b}[31mred\\r"),
            "{out:?}"
        );
    }
}
