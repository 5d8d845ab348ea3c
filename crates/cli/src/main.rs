//! The `airlock` binary: parses arguments and wires the parts together.
//! Each subcommand lives in `cmd/<name>.rs`; the work lives in the crates.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod audit_sinks;
mod cmd;
mod early;
mod egress;

/// airlock keeps an AI agent's hands inside your network: every tool call runs
/// in a jail, under your policy, through an egress proxy that holds your
/// secrets, and lands in a tamper-evident audit log.
#[derive(Parser)]
#[command(
    name = "airlock",
    version,
    propagate_version = true,
    after_help = "Try it on one machine: `airlock up` (gateway, connector and the jailed agent toolset\n\
on 127.0.0.1:8765), then `airlock audit tail .airlock/audit`.\n\
Check a policy: `airlock config check FILE`. `airlock COMMAND --help` explains each command;\n\
docs/ holds the reference."
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a config file; print the example or the JSON Schema.
    Config(cmd::config::Args),
    /// Report what this kernel offers the jail, and what airlock will do with it.
    Doctor(cmd::doctor::Args),
    /// Run the tunnel gateway: agents in, connector links in (see docs/tunnel.md).
    Gateway(cmd::gateway::Args),
    /// Run a tunnel connector: dial out to the gateway and serve routes.
    Connect(cmd::connect::Args),
    /// Manage tunnels in the gateway's state file.
    Tunnel(cmd::tunnel::Args),
    /// Manage agent keys in the gateway's state file.
    Key(cmd::key::Args),
    /// Run the egress proxy on its own (HTTP, CONNECT, SOCKS5; see docs/egress.md).
    Proxy(cmd::proxy::Args),
    /// Serve the declared tools over MCP under the policy (stdio or Streamable HTTP; see docs/mcp.md).
    Mcp(cmd::mcp::Args),
    /// Approve one exact tool call that asked for approval.
    Approve(cmd::approve::Args),
    /// Quick start on one machine: gateway, connector and an agent key on localhost.
    Up(cmd::up::Args),
    /// Run one command in the jail (see docs/sandbox.md).
    Run(cmd::run::Args),
    /// Verify, read and key the tamper-evident audit log (see docs/audit.md).
    Audit(cmd::audit::Args),
}

fn main() -> ExitCode {
    // The jail's init: a fresh single-threaded process, before anything else.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == airlock_jail::INIT_ARG)
    {
        airlock_jail::init::main();
    }
    // `airlock run`: the jail's init was forked before `main` (see
    // `early::fork_init`), so that it creates the jail's network namespace,
    // the slowest step of its start, while this process starts its runtime
    // and parses its arguments and config. If that did not happen, now.
    let mut zygote = early::take_zygote().or_else(cmd::run::fork_init);
    if let Some((log_format, args)) = parse_run() {
        init_logging(log_format);
        return finish(cmd::run::run(args, zygote));
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        // Not a run after all: the unused init ends.
        drop(zygote.take());
    }
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Config(args) => cmd::config::run(args),
        Command::Doctor(args) => cmd::doctor::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Connect(args) => cmd::connect::run(args),
        Command::Tunnel(args) => cmd::tunnel::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Up(args) => cmd::up::run(args),
        Command::Run(args) => cmd::run::run(args, zygote.take()),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Mcp(args) => cmd::mcp::run(args),
        Command::Approve(args) => cmd::approve::run(args),
    };
    finish(result)
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("airlock: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `airlock run`'s arguments, parsed without building every other
/// subcommand (that took ~0.2 ms of each jailed command's start). The same
/// definitions as in [`Cli`], minus help and version: anything this parser
/// does not accept (`--help`, `--version`, an error) is left to the full
/// parser, so the output and the errors stay exactly those of [`Cli`].
fn parse_run() -> Option<(LogFormat, cmd::run::Args)> {
    if std::env::args_os().nth(1).is_none_or(|a| a != "run") {
        return None;
    }
    #[derive(Parser)]
    #[command(
        name = "airlock",
        disable_help_flag = true,
        disable_help_subcommand = true
    )]
    struct RunOnly {
        #[arg(long, global = true, value_enum, default_value = "human")]
        log_format: LogFormat,
        #[command(subcommand)]
        command: RunCommand,
    }
    #[derive(Subcommand)]
    enum RunCommand {
        #[command(disable_help_flag = true)]
        Run(cmd::run::Args),
    }
    let RunOnly {
        log_format,
        command: RunCommand::Run(args),
    } = RunOnly::try_parse().ok()?;
    Some((log_format, args))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIRLOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
