//! `airlock run`: one command in the jail, with the egress proxy as its only
//! way out when the rules allow any host.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};

use airlock_config::{parse_duration, Config, HostPattern};
use airlock_jail::JailSpec;
use anyhow::{anyhow, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: the command's; 128+N when signal N ended it; 125 when airlock failed;\n\
126 when the command cannot run, 127 when it is not found.\n\
The jail: new user/mount/pid/net/ipc/uts namespaces, a read-only view of /, a private /tmp,\n\
credentials and key files hidden, protected files read-only, seccomp, landlock, cgroup limits,\n\
no network unless a host is allowed (then only through the egress proxy). See docs/sandbox.md.\n\
Example: airlock run --allow-net pypi.org --timeout 5m --report run.json -- pip download requests"
)]
pub struct Args {
    /// airlock.yaml whose `sandbox` (and `credentials`) apply; flags add to it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory the command runs in; writable. Default: the current directory.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// Another writable path (repeatable).
    #[arg(long = "allow-write", value_name = "PATH")]
    allow_write: Vec<String>,
    /// Another hidden path, or `**/NAME` pattern (repeatable).
    #[arg(long = "deny-read", value_name = "PATH")]
    deny_read: Vec<String>,
    /// Host the command may reach through the egress proxy, `HOST[:PORT]`, `*.` wildcards (repeatable).
    #[arg(long = "allow-net", value_name = "HOST[:PORT]")]
    allow_net: Vec<String>,
    /// Kill the command after this long (e.g. `30s`, `10m`). Default: the config's `sandbox.limits.timeout` (120s).
    #[arg(long)]
    timeout: Option<String>,
    /// Write a JSON summary here: exit, duration, peak memory, limits hit, network denials, planted files removed.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Directory of the HTTPS interception CA (needed when credentials are injected over HTTPS).
    #[arg(long)]
    ca_dir: Option<PathBuf>,
    /// Extra PEM CA file the proxy trusts for upstream TLS (internal CAs).
    #[arg(long)]
    upstream_ca: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The jail's init for `airlock run`, forked first thing in `main` when the
/// first argument is `run`, while this process is single-threaded and holds
/// nothing but its arguments (before argument parsing, logging, the config,
/// the proxy and its threads): it saves executing the airlock binary a
/// second time, and it builds the jail's network namespace meanwhile. If
/// it cannot be forked, `spawn` starts `airlock __jail-init` as usual.
pub fn fork_init() -> Option<airlock_jail::Zygote> {
    if std::env::args_os().nth(1).is_none_or(|a| a != "run") {
        return None;
    }
    airlock_jail::Zygote::fork().ok()
}

pub fn run(args: Args, zygote: Option<airlock_jail::Zygote>) -> anyhow::Result<ExitCode> {
    // `airlock --log-format json run …` comes here without an early init;
    // this process is still single-threaded.
    let zygote = zygote.or_else(|| airlock_jail::Zygote::fork().ok());
    match run_inner(args, zygote) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("airlock run: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn run_inner(args: Args, zygote: Option<airlock_jail::Zygote>) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(p) => super::config::load(p)?,
        None => Config::default(),
    };
    let sb = &mut config.sandbox;
    sb.filesystem
        .allow_write
        .extend(args.allow_write.iter().cloned());
    sb.filesystem
        .deny_read
        .extend(args.deny_read.iter().cloned());
    for h in &args.allow_net {
        let p: HostPattern = h.parse().map_err(|e| anyhow!("--allow-net {h}: {e}"))?;
        sb.network.allow.push(p);
    }
    let timeout = match &args.timeout {
        Some(t) => parse_duration(t).map_err(|e| anyhow!("--timeout {t}: {e}"))?,
        None => sb.limits.timeout,
    };
    let workdir = match &args.workdir {
        Some(w) => w.clone(),
        None => std::env::current_dir().context("current directory")?,
    };
    let audit = match &config.audit {
        Some(_) => Some(crate::audit_sinks::open(&config)?),
        None => None,
    };
    let sandbox = crate::egress::jail_sandbox(&config, args.ca_dir.as_deref());
    let mut spec = JailSpec::new(workdir.clone(), sandbox);
    spec.launcher = std::env::current_exe().context("locate the airlock binary")?;
    map_to_workdir_owner(&mut spec, &workdir);
    // This process exits right after the run (`wait_detached` below).
    spec.detached = true;

    // The proxy lives in this process, outside the jail; the jail reaches
    // it only through the relay on its own loopback. Its credential and
    // files are made now; its socket is bound and it starts on the jail's
    // first connection (which waits in the relay's backlog meanwhile), from
    // the thread that waits for the run: a command that never connects
    // costs no thread and no socket file, and nothing competes with the
    // jail's start-up for the cores.
    let pending = crate::egress::prepare(
        &config,
        &format!("run-{}", std::process::id()),
        audit.as_ref(),
        args.ca_dir.as_deref(),
        args.upstream_ca.as_deref(),
    )?;
    spec.network = pending.as_ref().map(|e| e.access.clone());

    let signals = block_forwarded_signals();
    let spawned = match zygote {
        Some(z) => airlock_jail::spawn_in(z, &spec, &args.command),
        None => airlock_jail::spawn(
            &spec,
            &args.command,
            [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()],
        ),
    };
    let mut running = match spawned {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = pending {
                p.abandon();
            }
            return Err(e.into());
        }
    };
    let egress = Arc::new(Mutex::new(pending.map(Proxy::Pending)));
    let slot = egress.clone();
    let start_proxy: airlock_jail::OnConnect = Box::new(move || {
        let mut g = slot.lock().unwrap_or_else(|e| e.into_inner());
        match g.take() {
            Some(Proxy::Pending(p)) => {
                let e = p.start().map_err(|e| format!("the egress proxy: {e:#}"))?;
                *g = Some(Proxy::Serving(e));
                Ok(())
            }
            other => {
                *g = other;
                Ok(())
            }
        }
    });
    if let Err(start_now) = running.on_first_connection(start_proxy) {
        // The relay already runs: serve from now on. Fail closed: no run
        // without its proxy (and its audit).
        if let Err(e) = start_now() {
            running.signal(libc::SIGKILL);
            let _ = running.wait(None);
            return Err(anyhow!(e));
        }
    }
    if running.forward_signals(FORWARDED).is_err() {
        let pid = running.pid() as i32;
        std::thread::spawn(move || forward_signals(signals, pid));
    }
    // The proxy stops while the jail's own processes exit.
    let (outcome, records) = running.wait_detached(Some(timeout), || {
        let proxy = egress.lock().unwrap_or_else(|e| e.into_inner()).take();
        match proxy {
            Some(Proxy::Serving(e)) => e.finish_exiting(),
            Some(Proxy::Pending(p)) => {
                p.abandon();
                Vec::new()
            }
            None => Vec::new(),
        }
    })?;
    for f in &outcome.findings {
        eprintln!(
            "airlock run: the command planted protected file {} ({})",
            f.path.display(),
            f.action
        );
    }
    if outcome.timed_out {
        eprintln!("airlock run: timed out after {timeout:?}; the command was killed");
    }
    if outcome.oom_killed {
        eprintln!(
            "airlock run: the memory limit ({}) was hit",
            config.sandbox.limits.memory
        );
    }
    if let Some(e) = &outcome.exec_error {
        eprintln!("airlock run: {e}");
    }
    if let Some(h) = &audit {
        let ev = airlock_audit::Event::new(airlock_audit::Kind::JailRun)
            .session(Some(format!("run-{}", std::process::id())))
            .args(serde_json::json!({"argv": args.command, "workdir": workdir}))
            .status(outcome.exit_status().to_string())
            .duration(std::time::Duration::from_millis(outcome.duration_ms))
            .detail(serde_json::to_value(&outcome)?);
        h.record_durable(ev).context("write the audit record")?;
        h.close();
    }
    if let Some(path) = &args.report {
        let denials: Vec<serde_json::Value> = records
            .iter()
            .filter(|r| r.decision != airlock_proxy::Decision::Allow)
            .map(|r| serde_json::json!({"host": r.host, "port": r.port, "rule": r.rule, "reason": r.reason}))
            .collect();
        let mut v = serde_json::to_value(&outcome)?;
        v["exit"] = outcome.exit_status().into();
        v["network_denials"] = denials.into();
        v["connections"] = records.len().into();
        std::fs::write(path, serde_json::to_vec_pretty(&v)?)
            .with_context(|| format!("--report {}", path.display()))?;
    }
    Ok(ExitCode::from(outcome.exit_status().clamp(0, 255) as u8))
}

/// The run's egress proxy: bound, or serving since the first connection.
enum Proxy {
    Pending(crate::egress::Pending),
    Serving(crate::egress::Egress),
}

/// As root, the command runs as the workdir's owner, the same rule
/// `airlock mcp` uses for its session jails, so "writable workdir" holds for
/// the usual case of root running airlock over a user's checkout. A
/// root-owned workdir keeps the default unprivileged uid (the workload never
/// runs as host root), and a one-line warning says why writes will fail and
/// how to fix it. Unprivileged callers always run as themselves (the jail
/// launcher ignores the field for them).
fn map_to_workdir_owner(spec: &mut JailSpec, workdir: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let Ok(m) = std::fs::metadata(workdir) else {
        // The jail reports a missing workdir itself, with its own message.
        return;
    };
    if m.uid() != 0 {
        spec.host_uid = m.uid();
        spec.host_gid = m.gid();
    } else if m.mode() & 0o002 == 0 {
        eprintln!(
            "airlock run: warning: the workdir {} is owned by root and the command runs as uid {} \
(never as host root), so it cannot write there; chown the directory to the user the command \
should run as, or pass --workdir with a directory that user owns",
            workdir.display(),
            spec.host_uid
        );
    }
}

const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

/// Blocks the signals we forward in this thread (and so in every thread
/// spawned after); a dedicated thread takes them with sigwait.
fn block_forwarded_signals() -> libc::sigset_t {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, *s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn forward_signals(set: libc::sigset_t, pid: i32) {
    loop {
        let mut sig = 0;
        if unsafe { libc::sigwait(&set, &mut sig) } == 0 {
            unsafe { libc::kill(pid, sig) };
        }
    }
}
