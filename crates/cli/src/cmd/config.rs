//! `airlock config`: check a config file, print the example or the JSON Schema.

use std::path::PathBuf;
use std::process::ExitCode;

use airlock_config::{load_bytes, LoadOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Validate a config file: every problem with its line, column and fix.
    #[command(
        after_help = "Exits 0 when the file is valid, 1 when it is not, 2 when it cannot be read.\n\
Secret references are resolved (and their values dropped, never printed) unless --no-secrets.\n\
Example: airlock config check --no-secrets airlock.yaml   (in CI, where the secrets are not set)"
    )]
    Check {
        /// The config file (`airlock.yaml`).
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value = "human")]
        format: Format,
        /// Do not resolve `${env:…}` / `${file:…}` references (check their syntax only).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Print a commented example that uses every section and passes `check`.
    #[command(after_help = "Example: airlock config example > airlock.yaml\n\
It references secrets (${env:GITHUB_TOKEN}, …): `check --no-secrets` passes as is; `check` wants them set.")]
    Example,
    /// Print the JSON Schema (draft 2020-12) of the file, for editors.
    #[command(
        after_help = "Example: airlock config schema > airlock.schema.json, then put\n\
`# yaml-language-server: $schema=./airlock.schema.json` at the top of airlock.yaml."
    )]
    Schema,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Human,
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Check {
            file,
            format,
            no_secrets,
        } => Ok(check(&file, format, no_secrets)),
        Command::Example => {
            print!("{}", airlock_config::EXAMPLE);
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&airlock_config::schema::json_schema())?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(file: &std::path::Path, format: Format, no_secrets: bool) -> ExitCode {
    let name = file.display().to_string();
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            match format {
                Format::Human => eprintln!("{name}: error: cannot read the file: {e}"),
                Format::Json => println!(
                    "{}",
                    serde_json::json!({ "valid": false, "file": name, "unreadable": e.to_string() })
                ),
            }
            return ExitCode::from(2);
        }
    };
    let opts = LoadOptions {
        check_secrets: !no_secrets,
    };
    let result = load_bytes(&bytes, &name, opts);
    match (format, &result) {
        (Format::Human, Ok(c)) => println!(
            "{name}: ok ({} tools, {} agents{})",
            c.tools.len(),
            c.agents.len(),
            if no_secrets {
                "; secrets not resolved"
            } else {
                ""
            }
        ),
        (Format::Human, Err(d)) => {
            eprint!("{d}");
            eprintln!("{name}: {} error(s)", d.len());
        }
        (Format::Json, Ok(_)) => {
            println!("{}", airlock_config::Diagnostics::default().to_json())
        }
        (Format::Json, Err(d)) => println!("{}", d.to_json()),
    }
    // A note, not an error: the section is valid, it just does nothing yet,
    // and an operator who wrote it should not think a worker is running.
    if let (Format::Human, Ok(c)) = (format, &result) {
        if c.worker.is_some() {
            eprintln!(
                "{name}: note: the `worker:` section is reserved for the self-hosted environment worker and unused by this version"
            );
        }
    }
    if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Loads a config for a command that runs from it (`--config FILE`). Secret
/// references are resolved by the command, only for the sections it uses.
pub(crate) fn load(path: &std::path::Path) -> anyhow::Result<airlock_config::Config> {
    airlock_config::load_file(path).map_err(|d| {
        anyhow::anyhow!(
            "{} is not a valid config ({} error(s)):\n{}",
            path.display(),
            d.len(),
            d.to_string().trim_end()
        )
    })
}
