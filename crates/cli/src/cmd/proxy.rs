//! `airlock proxy`: the egress proxy on its own, for other sandboxes and containers.

use std::process::ExitCode;

use airlock_config::{Credential, HostPattern, IpNet, Network, NetworkMode, Secret};
use airlock_proxy::{Limits, ProxyCredential, ProxyOptions, TracingSink};
use anyhow::{anyhow, bail, Context};

#[derive(clap::Args)]
#[command(
    after_help = "Clients authenticate with the proxy credential: Proxy-Authorization Basic for HTTP and CONNECT,\n\
username/password for SOCKS5. Without --auth a random credential is generated and printed once.\n\
Example:\n  \
GITHUB_TOKEN=… airlock proxy --allow api.github.com --allow '*.pypi.org' \\\n    \
--inject 'api.github.com=Authorization=Bearer ${env:GITHUB_TOKEN}'\n\
See docs/egress.md for rules, modes and what is refused."
)]
pub struct Args {
    /// Take `sandbox.network` and `credentials` from this airlock.yaml (every
    /// secret reference is resolved at start). `--allow`, `--deny`,
    /// `--allow-private` and `--inject` add to the file's rules; `--mode`
    /// replaces its mode.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Where to listen: `ADDR:PORT` (TCP) or `unix:PATH`.
    #[arg(long, default_value = "127.0.0.1:3128")]
    listen: String,
    /// Allowed host, like `api.github.com`, `*.pypi.org` or `registry.npmjs.org:8443` (repeatable).
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// Denied host; deny wins over allow (repeatable).
    #[arg(long = "deny")]
    deny: Vec<String>,
    /// CIDR of internal addresses that may be reached (repeatable).
    #[arg(long = "allow-private")]
    allow_private: Vec<String>,
    /// `enforce` refuses; `report` lets host-rule denials through and records
    /// them. Default: the file's `sandbox.network.mode`, else `enforce`.
    #[arg(long)]
    mode: Option<String>,
    /// Credential to inject on plain HTTP: `HOST=HEADER=VALUE`, VALUE a template like `Bearer ${env:TOKEN}` (repeatable).
    #[arg(long = "inject")]
    inject: Vec<String>,
    /// Proxy credential `USER:PASSWORD` clients must present.
    #[arg(long, env = "AIRLOCK_PROXY_AUTH", hide_env_values = true)]
    auth: Option<String>,
    /// Per-run upload budget in bytes.
    #[arg(long)]
    max_bytes_up: Option<u64>,
    /// Per-run download budget in bytes.
    #[arg(long)]
    max_bytes_down: Option<u64>,
    /// Request-rate limit (requests per second, burst of one second).
    #[arg(long)]
    rate: Option<u32>,
    /// Do not refuse requests carrying credential values.
    #[arg(long)]
    no_leak_check: bool,
    /// Directory holding the interception CA (`ca.pem`, `ca.key` 0600; created
    /// on first use). Needed for HTTPS credential injection and `--inspect`.
    #[arg(long)]
    ca_dir: Option<std::path::PathBuf>,
    /// Host whose HTTPS is intercepted even without a credential (repeatable).
    #[arg(long = "inspect")]
    inspect: Vec<String>,
    /// Extra PEM CA file trusted for upstream TLS (internal CAs).
    #[arg(long)]
    upstream_ca: Option<std::path::PathBuf>,
}

fn patterns(v: &[String], what: &str) -> anyhow::Result<Vec<HostPattern>> {
    v.iter()
        .map(|s| s.parse().map_err(|e| anyhow!("--{what} {s}: {e}")))
        .collect()
}

/// The file's network rules, credentials and audit log; empty without `--config`.
fn from_config(
    path: Option<&std::path::Path>,
) -> anyhow::Result<(Network, Vec<Credential>, Option<airlock_audit::AuditHandle>)> {
    let Some(path) = path else {
        return Ok((Network::default(), Vec::new(), None));
    };
    let c = super::config::load(path)?;
    // Fail at start, not on the first request, when a credential cannot be read.
    for cr in &c.credentials {
        cr.value.resolve().with_context(|| {
            format!(
                "{}: credential `{}` ({})",
                path.display(),
                cr.name,
                cr.value
            )
        })?;
    }
    let audit = match &c.audit {
        Some(_) => Some(crate::audit_sinks::open(&c)?),
        None => None,
    };
    Ok((c.sandbox.network, c.credentials, audit))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (file_network, file_credentials, audit) = from_config(args.config.as_deref())?;
    let mode = match args.mode.as_deref() {
        None => file_network.mode,
        Some("enforce") => NetworkMode::Enforce,
        Some("report") => NetworkMode::Report,
        Some(m) => bail!("--mode {m}: write `enforce` or `report`"),
    };
    let allow_private = args
        .allow_private
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|e| anyhow!("--allow-private {s}: {e} (write a CIDR like 10.20.0.0/16)"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let network = Network {
        allow: [file_network.allow, patterns(&args.allow, "allow")?].concat(),
        deny: [file_network.deny, patterns(&args.deny, "deny")?].concat(),
        allow_private: [file_network.allow_private, allow_private].concat(),
        mode,
    };
    if network.allow.is_empty() {
        tracing::warn!("no --allow rule: every destination will be refused");
    }
    let mut credentials = file_credentials;
    for spec in &args.inject {
        let mut it = spec.splitn(3, '=');
        let (Some(host), Some(header), Some(value)) = (it.next(), it.next(), it.next()) else {
            bail!("--inject {spec}: write HOST=HEADER=VALUE, like `api.github.com=Authorization=Bearer ${{env:GITHUB_TOKEN}}`");
        };
        credentials.push(Credential {
            name: host.to_string(),
            host: host.parse().map_err(|e| anyhow!("--inject {spec}: {e}"))?,
            header: header.to_string(),
            value: Secret::parse(value).map_err(|e| anyhow!("--inject {spec}: {e}"))?,
            plain_http: false,
        });
    }
    let (client_credential, generated) = match &args.auth {
        Some(a) => {
            let (user, password) = a.split_once(':').context("--auth: write USER:PASSWORD")?;
            (
                ProxyCredential {
                    user: user.into(),
                    password: password.into(),
                },
                false,
            )
        }
        None => (
            ProxyCredential::generate().context("generating a proxy credential")?,
            true,
        ),
    };
    let mut opts = ProxyOptions::new(network, credentials, client_credential.clone());
    opts.session = "airlock-proxy".into();
    opts.limits = Limits {
        bytes_up: args.max_bytes_up,
        bytes_down: args.max_bytes_down,
        requests_per_second: args.rate,
    };
    opts.leak_check = !args.no_leak_check;
    opts.sink = Some(match &audit {
        Some(h) => std::sync::Arc::new(crate::audit_sinks::ProxySink(h.clone())),
        None => std::sync::Arc::new(TracingSink),
    });
    opts.inspect = patterns(&args.inspect, "inspect")?;
    if let Some(dir) = &args.ca_dir {
        let ca = airlock_proxy::ca::CertAuthority::load_or_create(dir)
            .with_context(|| format!("--ca-dir {}", dir.display()))?;
        tracing::info!("interception CA: {}", dir.join("ca.pem").display());
        opts.ca = Some(std::sync::Arc::new(ca));
    }
    if let Some(f) = &args.upstream_ca {
        opts.upstream_ca_pem = Some(
            std::fs::read_to_string(f).with_context(|| format!("--upstream-ca {}", f.display()))?,
        );
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let handle = match args.listen.strip_prefix("unix:") {
            Some(path) => airlock_proxy::start_unix(std::path::Path::new(path), opts).await?,
            None => {
                let addr = args.listen.parse().with_context(|| {
                    format!("--listen {}: write ADDR:PORT or unix:PATH", args.listen)
                })?;
                airlock_proxy::start_tcp(addr, opts).await?
            }
        };
        let at = match (handle.socket_path(), handle.tcp_addr()) {
            (Some(p), _) => format!("unix:{}", p.display()),
            (_, Some(a)) => a.to_string(),
            _ => args.listen.clone(),
        };
        if generated {
            println!("airlock proxy listening on {at}");
            println!(
                "proxy credential: {}:{}",
                client_credential.user, client_credential.password
            );
            if let Some(a) = handle.tcp_addr() {
                println!(
                    "HTTPS_PROXY={}",
                    client_credential.proxy_url(&a.to_string())
                );
            }
        } else {
            tracing::info!("airlock proxy listening on {at}");
        }
        super::gateway::shutdown_signal().await;
        let recs = handle.shutdown().await;
        if let Some(h) = &audit {
            h.close(); // final signed checkpoint
        }
        tracing::info!(records = recs.len(), "airlock proxy stopped");
        Ok::<_, anyhow::Error>(ExitCode::SUCCESS)
    })
}
