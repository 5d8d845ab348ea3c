//! The typed model of `airlock.yaml`: what every other crate reads.
//!
//! These types hold *validated* values only; the loader (see `load`) builds
//! them from YAML and reports every problem with its file, line and column.
//! Secrets are [`Secret`] references, resolved only where they are used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::body::BodySchema;
use crate::secret::{Secret, SecretRef};
use crate::values::{ByteSize, HostPattern, IpNet};

/// The whole file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Format version; only `1` exists.
    pub version: u32,
    pub sandbox: Sandbox,
    pub credentials: Vec<Credential>,
    /// Declared tools by name, in name order.
    pub tools: BTreeMap<String, Tool>,
    /// Agents by name.
    pub agents: BTreeMap<String, Agent>,
    /// Absent: nothing is written to an audit log (records still go to the
    /// process log). Every command that takes `--config` writes here.
    pub audit: Option<Audit>,
    pub gateway: Option<Gateway>,
    pub connector: Option<Connector>,
    pub worker: Option<Worker>,
}

/// `sandbox:` — the jail every command runs in.
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    pub filesystem: Filesystem,
    pub network: Network,
    pub limits: Limits,
}

/// `sandbox.filesystem:` — added to the built-in lists, never replacing them.
#[derive(Debug, Clone, Default)]
pub struct Filesystem {
    /// Paths or globs (`~/`, `**/`) that are masked inside the jail.
    pub deny_read: Vec<String>,
    /// Paths bound writable; relative ones are relative to the workdir.
    pub allow_write: Vec<String>,
    /// Added to the always-protected list (read-only even inside writable paths).
    pub deny_write: Vec<String>,
}

/// `sandbox.network:` — what the egress proxy lets out.
#[derive(Debug, Clone, Default)]
pub struct Network {
    pub allow: Vec<HostPattern>,
    /// Deny wins over allow.
    pub deny: Vec<HostPattern>,
    /// The only way to reach loopback, private or link-local addresses.
    pub allow_private: Vec<IpNet>,
    pub mode: NetworkMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// Deny what the rules do not allow.
    #[default]
    Enforce,
    /// Allow, but record what enforce would have denied.
    Report,
}

/// `sandbox.limits:` — per command run in the jail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory: ByteSize,
    pub pids: u32,
    pub cpu_seconds: u64,
    pub timeout: Duration,
    /// Cap on captured output (stdout and stderr each).
    pub output: ByteSize,
    /// Size of the jail's private `/tmp`.
    pub tmp_size: ByteSize,
    pub open_files: u64,
    /// Largest file a command may write.
    pub file_size: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: ByteSize::gib(2),
            pids: 256,
            cpu_seconds: 600,
            timeout: Duration::from_secs(120),
            output: ByteSize::kib(100),
            tmp_size: ByteSize::mib(512),
            open_files: 1024,
            file_size: ByteSize::gib(1),
        }
    }
}

/// `credentials:` — injected by the egress proxy, outside the jail.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Name used in audit records (defaults to the host).
    pub name: String,
    pub host: HostPattern,
    pub header: String,
    /// Template such as `Bearer ${env:GITHUB_TOKEN}`.
    pub value: Secret,
    /// Also inject into plain-HTTP requests. Off by default: the secret
    /// would cross the network in clear text, so a plain-HTTP request to
    /// the host is refused and only intercepted TLS gets the header.
    pub plain_http: bool,
}

/// One entry of `tools:`.
#[derive(Debug, Clone)]
pub struct Tool {
    pub description: Option<String>,
    pub approval: Approval,
    pub kind: ToolKind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Approval {
    #[default]
    None,
    /// Each exact call must be approved by an operator (`airlock approve`).
    Required,
}

/// The `kind:` of a tool and its own settings.
#[derive(Debug, Clone)]
pub enum ToolKind {
    AgentBash(AgentBash),
    AgentRead(AgentRead),
    AgentWrite(AgentWrite),
    AgentEdit(AgentEdit),
    AgentGlob(AgentGlob),
    AgentGrep(AgentGrep),
    GitReadFile(GitRepos),
    GitListFiles(GitRepos),
    GitLog(GitRepos),
    PostgresQuery(PostgresQuery),
    HttpRequest(HttpRequest),
}

impl ToolKind {
    /// The `kind:` string as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            ToolKind::AgentBash(_) => "agent.bash",
            ToolKind::AgentRead(_) => "agent.read",
            ToolKind::AgentWrite(_) => "agent.write",
            ToolKind::AgentEdit(_) => "agent.edit",
            ToolKind::AgentGlob(_) => "agent.glob",
            ToolKind::AgentGrep(_) => "agent.grep",
            ToolKind::GitReadFile(_) => "git.read_file",
            ToolKind::GitListFiles(_) => "git.list_files",
            ToolKind::GitLog(_) => "git.log",
            ToolKind::PostgresQuery(_) => "postgres.query",
            ToolKind::HttpRequest(_) => "http.request",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBash {
    pub timeout: Duration,
    pub max_output: ByteSize,
}
impl Default for AgentBash {
    fn default() -> Self {
        AgentBash {
            timeout: Duration::from_secs(120),
            max_output: ByteSize::kib(100),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRead {
    pub max_bytes: ByteSize,
}
impl Default for AgentRead {
    fn default() -> Self {
        AgentRead {
            max_bytes: ByteSize::kib(256),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentWrite {
    pub max_bytes: ByteSize,
}
impl Default for AgentWrite {
    fn default() -> Self {
        AgentWrite {
            max_bytes: ByteSize::mib(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEdit {
    pub max_bytes: ByteSize,
}
impl Default for AgentEdit {
    fn default() -> Self {
        AgentEdit {
            max_bytes: ByteSize::mib(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentGlob {
    pub max_results: u32,
}
impl Default for AgentGlob {
    fn default() -> Self {
        AgentGlob { max_results: 200 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentGrep {
    pub max_output: ByteSize,
    pub max_line: u32,
}
impl Default for AgentGrep {
    fn default() -> Self {
        AgentGrep {
            max_output: ByteSize::kib(100),
            max_line: 2000,
        }
    }
}

/// `git.read_file`, `git.list_files`, `git.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRepos {
    /// Repository name (what the agent says) to path (bare or working tree).
    pub repos: BTreeMap<String, PathBuf>,
    pub max_file_size: ByteSize,
    /// Most entries `git.list_files` / `git.log` return.
    pub max_entries: u32,
}

/// `postgres.query`: one fixed, parameterised statement.
#[derive(Debug, Clone)]
pub struct PostgresQuery {
    pub dsn: Secret,
    pub sql: String,
    pub params: Vec<SqlParam>,
    pub max_rows: u32,
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlParam {
    pub name: String,
    pub ty: SqlType,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Integer,
    BigInt,
    Float,
    Text,
    Boolean,
    Uuid,
    Timestamp,
    Date,
}

/// `http.request`: a base URL and an allow-list of routes.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `http` or `https` URL; route paths are appended to its path.
    pub base_url: url::Url,
    pub routes: Vec<HttpRoute>,
    pub auth: Option<HttpAuth>,
    pub max_response_size: ByteSize,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HttpRoute {
    /// Upper-case HTTP method.
    pub method: String,
    /// Path pattern; `{name}` matches one segment.
    pub path: String,
    /// The JSON body this route takes. `None`: the route takes no body at
    /// all (fail closed); `body: {}` in the file accepts any JSON value.
    pub body: Option<BodySchema>,
}

/// A route is named by `METHOD /path` (unique within a tool, which the
/// loader checks); its body schema is an attribute of that route. So two
/// values are the same route when method and path agree: a constraint's
/// `"POST /deploy"` names the tool's `POST /deploy` route, body and all.
impl PartialEq for HttpRoute {
    fn eq(&self, other: &Self) -> bool {
        self.method == other.method && self.path == other.path
    }
}
impl Eq for HttpRoute {}

impl HttpRoute {
    /// Whether a request (`method`, canonical `path`) is this route. The
    /// policy and the `http.request` tool both decide with this.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.method.eq_ignore_ascii_case(method) && route_path_matches(&self.path, path)
    }
}

/// Whether a canonical `path` matches a route `pattern`: a `{name}` segment
/// matches exactly one non-empty segment, every other segment must be equal.
pub fn route_path_matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(pp), Some(ss)) => {
                let wildcard = pp.len() > 2 && pp.starts_with('{') && pp.ends_with('}');
                if wildcard {
                    if ss.is_empty() {
                        return false;
                    }
                } else if pp != ss {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpAuth {
    pub header: String,
    pub value: Secret,
}

/// One entry of `agents:`.
#[derive(Debug, Clone, Default)]
pub struct Agent {
    /// Bearer keys for HTTP transports.
    pub keys: Vec<AgentKey>,
    pub allowed_tools: Vec<String>,
    /// Per-tool narrowing of the tool's own limits.
    pub constraints: BTreeMap<String, Constraint>,
}

#[derive(Debug, Clone)]
pub enum AgentKey {
    /// `${env:…}` / `${file:…}` reference to the key itself.
    Secret(Secret),
    /// `sha256:<64 hex>` of the key, for files that must not reference it.
    Sha256([u8; 32]),
}

/// Narrowing of one tool for one agent; only the fields that apply to the
/// tool's kind may be set, and each may only tighten the tool's own value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Constraint {
    /// git tools: subset of the tool's repos.
    pub repos: Option<Vec<String>>,
    pub max_file_size: Option<ByteSize>,
    pub max_entries: Option<u32>,
    /// postgres.query
    pub max_rows: Option<u32>,
    /// http.request: subset of the tool's routes (`METHOD /path`).
    pub routes: Option<Vec<HttpRoute>>,
    /// agent tools and timeouts
    pub timeout: Option<Duration>,
    pub max_output: Option<ByteSize>,
    pub max_bytes: Option<ByteSize>,
    pub max_results: Option<u32>,
}

/// `audit:`
#[derive(Debug, Clone)]
pub struct Audit {
    pub dir: PathBuf,
    /// Rotate a segment file when it reaches this size.
    pub segment_size: ByteSize,
    /// Signed checkpoint every N records …
    pub checkpoint_every: u32,
    /// … or every T, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Ed25519 signing key; must live outside the audit dir and any jail.
    pub signing_key: Option<PathBuf>,
    /// Longest a record nobody waits for stays written but not fsynced.
    pub flush_interval: Duration,
    /// Extra field names whose values are always redacted.
    pub redact_fields: Vec<String>,
    pub export: AuditExport,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            dir: PathBuf::from("/var/lib/airlock/audit"),
            segment_size: ByteSize::mib(64),
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(10),
            signing_key: None,
            flush_interval: Duration::from_millis(5),
            redact_fields: Vec::new(),
            export: AuditExport::None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuditExport {
    #[default]
    None,
    /// One JSON line per record on stdout.
    Stdout,
    /// RFC 5424-framed JSON to the local syslog socket.
    Syslog,
}

/// `gateway:` — the public side of the tunnel (see docs/tunnel.md).
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Address agents connect to. Default `0.0.0.0:8443`.
    pub listen: String,
    /// Address connectors dial. Default `0.0.0.0:7443`.
    pub tunnel_listen: String,
    /// SQLite file (PostgreSQL DSNs are planned, not supported yet).
    pub state: String,
    /// Gateway certificate chain and key (PEM): links always use them; the
    /// agent listener too unless `agent_tls` is false.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Serve agents HTTPS (default true). False only on localhost or behind
    /// a TLS-terminating load balancer.
    pub agent_tls: bool,
    /// Bearer key for the admin API and `/metrics`: a secret reference or
    /// the key's SHA-256 (the same two forms as agent keys).
    pub admin_key: Option<AgentKey>,
    /// Admin API address; `None`: no admin API. Loopback: plain HTTP;
    /// anything else: HTTPS with `tls_cert`.
    pub admin_listen: Option<String>,
    /// HTTP/2 PING interval on links. Default 4s (with the 10s timeout: a dead path is found within 14s).
    pub ping_interval: Duration,
    /// A link whose PING goes unanswered this long is dead. Default 10s.
    pub ping_timeout: Duration,
    /// Lifetime of identity assertions. Default 60s, at most 300s.
    pub assertion_ttl: Duration,
}

/// `connector:` — the private side of the tunnel.
#[derive(Debug, Clone)]
pub struct Connector {
    /// Gateway link address, `host:port`.
    pub gateway: String,
    /// TLS name to verify on the gateway certificate; default the host of `gateway`.
    pub server_name: Option<String>,
    pub tunnel: String,
    /// Stable connector name (a reconnect replaces the links registered
    /// under it). Default: the hostname.
    pub name: Option<String>,
    pub token: Secret,
    /// CA that signed the gateway certificate (pinned; the only trust root).
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Independent links. Default 2.
    pub links: u32,
    /// Addresses routes may reach. Absent: loopback + RFC 1918 (+ ::1,
    /// fc00::/7). Present: replaces that default entirely.
    pub allowed_ips: Option<Vec<IpNet>>,
    pub routes: BTreeMap<String, Route>,
    /// HTTP/2 PING interval. Default 4s.
    pub ping_interval: Duration,
    /// Default 10s.
    pub ping_timeout: Duration,
    /// `http://[user:pass@]host:port` CONNECT proxy; default `$HTTPS_PROXY`.
    pub proxy: Option<String>,
    /// The gateway's identity-assertion public key (base64, as printed by
    /// `airlock gateway` and `airlock tunnel identity-key`): `builtin:`
    /// routes trust assertions signed by it. Required when a route is `builtin:`.
    pub identity_key: Option<String>,
}

/// One connector route (`routes: { NAME: {url: ...} | {command: [...]} | {builtin: FILE} }`).
#[derive(Debug, Clone)]
pub enum Route {
    /// `url: http://127.0.0.1:8000/mcp` — an HTTP MCP server (http:// only).
    Http { url: String },
    /// `command: [prog, args...]` — a stdio MCP server the connector spawns.
    Stdio { command: Vec<String> },
    /// `builtin: FILE` — the built-in `airlock mcp` with that config file,
    /// working in `workdir` (checked to be a directory at load), else in
    /// the connector's working directory.
    Builtin {
        config: PathBuf,
        workdir: Option<PathBuf>,
    },
}

/// `worker:` — the self-hosted environment worker.
#[derive(Debug, Clone)]
pub struct Worker {
    pub api_url: String,
    pub environment_id: String,
    pub api_key: Secret,
    pub workdir: PathBuf,
    pub concurrency: u32,
}

impl Config {
    /// Every secret reference in the file, with the name audit records show
    /// for it. The one walker over the model's secrets: a field holding a
    /// [`Secret`] that is missing here is neither redacted nor hidden from
    /// jails, so a new one must be added.
    pub fn secrets(&self) -> Vec<(String, &Secret)> {
        let mut v: Vec<(String, &Secret)> = Vec::new();
        for cr in &self.credentials {
            v.push((cr.name.clone(), &cr.value));
        }
        for (name, t) in &self.tools {
            match &t.kind {
                ToolKind::PostgresQuery(p) => v.push((format!("{name}.dsn"), &p.dsn)),
                ToolKind::HttpRequest(h) => {
                    if let Some(a) = &h.auth {
                        v.push((format!("{name}.auth"), &a.value));
                    }
                }
                // No secrets in these; listed so a new kind is a compile error here.
                ToolKind::AgentBash(_)
                | ToolKind::AgentRead(_)
                | ToolKind::AgentWrite(_)
                | ToolKind::AgentEdit(_)
                | ToolKind::AgentGlob(_)
                | ToolKind::AgentGrep(_)
                | ToolKind::GitReadFile(_)
                | ToolKind::GitListFiles(_)
                | ToolKind::GitLog(_) => {}
            }
        }
        for (name, a) in &self.agents {
            for k in &a.keys {
                if let AgentKey::Secret(s) = k {
                    v.push((format!("agent-key-{name}"), s));
                }
            }
        }
        if let Some(g) = &self.gateway {
            if let Some(AgentKey::Secret(k)) = &g.admin_key {
                v.push(("gateway-admin-key".into(), k));
            }
        }
        if let Some(cn) = &self.connector {
            v.push(("tunnel-token".into(), &cn.token));
        }
        if let Some(w) = &self.worker {
            v.push(("worker-api-key".into(), &w.api_key));
        }
        v
    }

    /// Every file a `${file:PATH}` reference in the config names, each once:
    /// the files airlock reads secrets from, which no jail may read.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for (_, s) in self.secrets() {
            for r in s.refs() {
                if let SecretRef::File(p) = r {
                    if !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
        }
        out
    }

    /// The private keys the config names (audit signing key, gateway TLS
    /// key, connector client key): secrets read from files that are not
    /// written as `${file:}` references.
    pub fn key_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(k) = self.audit.as_ref().and_then(|a| a.signing_key.as_ref()) {
            out.push(k.clone());
        }
        if let Some(g) = &self.gateway {
            out.push(g.tls_key.clone());
        }
        if let Some(c) = &self.connector {
            out.push(c.client_key.clone());
        }
        out
    }

    /// Every file no jail built from this config may read: the secret files
    /// and the private key files.
    pub fn hidden_files(&self) -> Vec<PathBuf> {
        let mut v = self.secret_files();
        for k in self.key_files() {
            if !v.contains(&k) {
                v.push(k);
            }
        }
        v
    }

    /// The `sandbox:` section as every jail built from this config gets it:
    /// the file's deny-read list plus every secret file, every private key
    /// file and each of `also_hidden` (the interception CA's directory).
    /// Masks are mounted after the writable binds, so these stay hidden
    /// inside an allow-write path too.
    pub fn jail_sandbox<P: Into<PathBuf>>(
        &self,
        also_hidden: impl IntoIterator<Item = P>,
    ) -> Sandbox {
        let mut sb = self.sandbox.clone();
        let hidden = self
            .hidden_files()
            .into_iter()
            .chain(also_hidden.into_iter().map(Into::into));
        for p in hidden {
            // The jail reads a relative entry against the workdir, but these
            // were given against this process's directory (`--ca-dir ca`).
            let p = std::path::absolute(&p).unwrap_or(p);
            let s = p.to_string_lossy().into_owned();
            if !sb.filesystem.deny_read.contains(&s) {
                sb.filesystem.deny_read.push(s);
            }
        }
        sb
    }
}
