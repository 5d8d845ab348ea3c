//! `airlock run`: one command in the jail, with the egress proxy as its only
//! way out when the rules allow any host.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};

use airlock_config::{parse_duration, Config, HostPattern};
use airlock_jail::{JailSpec, NetworkAccess};
use airlock_proxy::{ProxyCredential, ProxyOptions};
use anyhow::{anyhow, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: the command's; 128+N when signal N ended it; 125 when airlock failed;\n\
126 when the command cannot run, 127 when it is not found.\n\
The jail: new user/mount/pid/net/ipc/uts namespaces, a read-only view of /, a private /tmp,\n\
credentials and key files hidden, protected files read-only, seccomp, landlock, cgroup limits,\n\
no network unless a host is allowed (then only through the egress proxy). See docs/jail.md."
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("airlock run: {e:#}");
            Ok(ExitCode::from(125))
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
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
    let mut spec = JailSpec::new(workdir.clone(), config.sandbox.clone());
    spec.launcher = std::env::current_exe().context("locate the airlock binary")?;

    // The proxy lives in this process, outside the jail; the jail reaches
    // it only through the relay on its own loopback.
    let private = tempdir("airlock-run", 0o700)?;
    let mut proxy = None;
    let mut public_dir = None;
    if !config.sandbox.network.allow.is_empty() {
        let cred = ProxyCredential::generate().context("generate the proxy credential")?;
        let mut opts = ProxyOptions::new(
            config.sandbox.network.clone(),
            config.credentials.clone(),
            cred.clone(),
        );
        opts.session = format!("run-{}", std::process::id());
        if let Some(h) = &audit {
            opts.sink = Some(std::sync::Arc::new(crate::audit_sinks::ProxySink(
                h.clone(),
            )));
        }
        let mut ca_bundle = None;
        if !config.credentials.is_empty() {
            let dir = args.ca_dir.clone().unwrap_or_else(default_ca_dir);
            let ca = airlock_proxy::ca::CertAuthority::load_or_create(&dir)
                .with_context(|| format!("interception CA in {}", dir.display()))?;
            // Not under /tmp: the jail has its own. /var/tmp is visible inside
            // (read-only), and only a public certificate goes there.
            let public = tempdir_in(std::path::Path::new("/var/tmp"), "airlock-run-ca", 0o755)?;
            let bundle = public.join("ca-bundle.pem");
            let system = std::fs::read_to_string(&opts.system_ca_file).unwrap_or_default();
            std::fs::write(&bundle, format!("{system}\n{}", ca.cert_pem()))
                .context("write the CA bundle")?;
            set_mode(&bundle, 0o644)?;
            public_dir = Some(public.clone());
            ca_bundle = Some(bundle);
            opts.ca = Some(std::sync::Arc::new(ca));
        }
        if let Some(f) = &args.upstream_ca {
            opts.upstream_ca_pem = Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("--upstream-ca {}", f.display()))?,
            );
        }
        let sock = private.join("proxy.sock");
        let handle =
            airlock_proxy::start_unix_blocking(&sock, opts).context("start the egress proxy")?;
        spec.network = Some(NetworkAccess {
            proxy_socket: sock,
            user: cred.user.clone(),
            password: cred.password.clone(),
            ca_bundle,
        });
        proxy = Some(handle);
    }

    let signals = block_forwarded_signals();
    let running = airlock_jail::spawn(
        &spec,
        &args.command,
        [Stdio::inherit(), Stdio::inherit(), Stdio::inherit()],
    )?;
    let pid = running.pid() as i32;
    std::thread::spawn(move || forward_signals(signals, pid));
    let outcome = running.wait(Some(timeout))?;

    let records = proxy.map(|p| p.shutdown()).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&private);
    if let Some(p) = &public_dir {
        let _ = std::fs::remove_dir_all(p);
    }
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

fn default_ca_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("airlock/ca")
}

fn tempdir(prefix: &str, mode: u32) -> anyhow::Result<PathBuf> {
    tempdir_in(&std::env::temp_dir(), prefix, mode)
}

fn tempdir_in(base: &std::path::Path, prefix: &str, mode: u32) -> anyhow::Result<PathBuf> {
    let d = base.join(format!("{prefix}-{}-{:x}", std::process::id(), rand_u32()));
    std::fs::create_dir(&d).with_context(|| format!("create {}", d.display()))?;
    set_mode(&d, mode)?;
    Ok(d)
}

fn set_mode(p: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", p.display()))
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("/dev/urandom"),
        &mut b,
    );
    u32::from_ne_bytes(b)
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
