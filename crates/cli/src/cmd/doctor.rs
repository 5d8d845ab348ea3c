//! `airlock doctor`: what this kernel offers the jail, and what airlock does with it.

use std::process::ExitCode;

use airlock_jail::probe::{self, State};

#[derive(clap::Args)]
#[command(
    after_help = "Exits 0 when the jail can run here, 1 when a required feature is missing.\n\
Run it as the user that will run airlock: user namespaces and cgroups depend on who asks.\n\
Each line: feature, state (ok, degraded, missing, WARNING; MISSING when the jail needs it), what\n\
the kernel has, then what airlock does with it and, where one exists, the fix."
)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let report = probe::probe();
    let blocking: Vec<_> = report.blocking().map(|f| f.id).collect();
    match args.format {
        Format::Json => {
            let features: Vec<_> = report
                .features
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "id": f.id,
                        "state": f.state.as_str(),
                        "required": f.required,
                        "detail": f.detail,
                        "airlock": f.airlock,
                        "fix": f.fix,
                    })
                })
                .collect();
            let out = serde_json::json!({ "ok": blocking.is_empty(), "features": features });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Human => {
            let width = report
                .features
                .iter()
                .map(|f| f.id.len())
                .max()
                .unwrap_or(0);
            for f in &report.features {
                let mark = match f.state {
                    State::Ok => "ok",
                    State::Degraded => "degraded",
                    State::Warning => "WARNING",
                    State::Missing if f.required => "MISSING",
                    State::Missing => "missing",
                };
                println!("{:<width$}  {:<8}  {}", f.id, mark, f.detail);
                println!("{:<width$}  {:<8}  airlock: {}", "", "", f.airlock);
                if let Some(fix) = &f.fix {
                    println!("{:<width$}  {:<8}  fix: {}", "", "", fix);
                }
            }
            println!();
            if blocking.is_empty() {
                println!("The jail can run here.");
            } else {
                println!(
                    "The jail cannot run here: {} missing. Apply the fixes above.",
                    blocking.join(", ")
                );
            }
        }
    }
    Ok(if blocking.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
