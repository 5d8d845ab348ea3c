//! The one description of every key in `airlock.yaml`. The loader checks
//! keys against it (unknown keys, "did you mean"), `airlock config schema`
//! turns it into JSON Schema and `docs/config.md` is generated from it, so
//! the three cannot disagree.

/// One key of a mapping.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub req: Req,
    pub doc: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Req {
    Required,
    /// Absent means "not set" (no default value).
    Optional,
    /// Absent means this value (as written in the file).
    Default(&'static str),
}

/// What a value must look like.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    /// A whole number in `min..=max`.
    Int {
        min: u64,
        max: u64,
    },
    Bool,
    /// `256KiB`, `64MiB`, `2GiB`, or a byte count.
    Size,
    /// `500ms`, `120s`, `5m`, `1h`, `1m30s`.
    Duration,
    /// `api.github.com`, `*.pypi.org`, `host:port`, IP literals.
    Host,
    /// `10.20.0.0/16`, `fd00::/8`.
    Cidr,
    /// An `http://` or `https://` URL.
    Url,
    /// A template with `${env:NAME}` / `${file:/path}` references.
    Secret,
    /// A file system path; relative paths are relative to the config file's directory.
    Path,
    /// `host:port`.
    Addr,
    Enum(&'static [&'static str]),
    List(&'static Ty),
    /// A mapping from names the user chooses to values.
    Map(&'static Ty),
    Obj(&'static Obj),
    /// A tool: `kind:` picks one of [`TOOL_KINDS`].
    Tool,
    /// A connector route: exactly one of [`ROUTE_FORMS`].
    Route,
    /// An agent key: a secret reference or `sha256:<64 hex>`.
    AgentKey,
    /// `METHOD /path`, naming one of an `http.request` tool's routes.
    RouteRef,
    /// A JSON body schema: a mapping of [`BODY_SCHEMA`] keywords.
    Schema,
    /// Any YAML value, read as JSON (`enum` and `const` values).
    Json,
    /// A number, whole or with a fraction.
    Number,
}

/// A mapping with fixed keys.
#[derive(Debug)]
pub struct Obj {
    /// Path of the mapping in the file, for docs (`sandbox.limits`).
    pub path: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

/// One `kind:` of tool and the keys only it takes.
#[derive(Debug)]
pub struct Kind {
    pub name: &'static str,
    pub doc: &'static str,
    pub fields: &'static [Field],
}

const fn req(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        req: Req::Required,
        doc,
    }
}
const fn opt(name: &'static str, ty: Ty, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        req: Req::Optional,
        doc,
    }
}
const fn def(name: &'static str, ty: Ty, default: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        req: Req::Default(default),
        doc,
    }
}

const U32: Ty = Ty::Int {
    min: 1,
    max: u32::MAX as u64,
};

pub static ROOT: Obj = Obj {
    path: "",
    doc: "The whole file. Only `version` is required.",
    fields: &[
        req(
            "version",
            Ty::Int { min: 1, max: 1 },
            "Format version. Write `1`.",
        ),
        def(
            "sandbox",
            Ty::Obj(&SANDBOX),
            "{}",
            "The jail every command runs in.",
        ),
        def(
            "credentials",
            Ty::List(&Ty::Obj(&CREDENTIAL)),
            "[]",
            "Headers the egress proxy adds to requests for given hosts, outside the jail.",
        ),
        def(
            "tools",
            Ty::Map(&Ty::Tool),
            "{}",
            "Declared tools by name (letters, digits, `_`, `-`, `.`; at most 64 characters).",
        ),
        def(
            "agents",
            Ty::Map(&Ty::Obj(&AGENT)),
            "{}",
            "Agents by name: their keys, the tools they may call and per-tool constraints.",
        ),
        def(
            "audit",
            Ty::Obj(&AUDIT),
            "{}",
            "The tamper-evident audit log.",
        ),
        opt(
            "gateway",
            Ty::Obj(&GATEWAY),
            "The public side of the tunnel (`airlock gateway`).",
        ),
        opt(
            "connector",
            Ty::Obj(&CONNECTOR),
            "The private side of the tunnel (`airlock connect`).",
        ),
        opt(
            "worker",
            Ty::Obj(&WORKER),
            "Reserved for the self-hosted environment worker; not used by this version (`airlock config check` notes it).",
        ),
    ],
};

pub static SANDBOX: Obj = Obj {
    path: "sandbox",
    doc: "The jail every command runs in.",
    fields: &[
        def(
            "filesystem",
            Ty::Obj(&FILESYSTEM),
            "{}",
            "What the jail may read and write.",
        ),
        def(
            "network",
            Ty::Obj(&NETWORK),
            "{}",
            "What the egress proxy lets out.",
        ),
        def(
            "limits",
            Ty::Obj(&LIMITS),
            "{}",
            "Resource limits per command.",
        ),
    ],
};

pub static FILESYSTEM: Obj = Obj {
    path: "sandbox.filesystem",
    doc: "Added to the built-in lists, never replacing them.",
    fields: &[
        def("deny_read", Ty::List(&Ty::Str), "[]", "Paths or globs (`~/`, `**/`) masked inside the jail."),
        def("allow_write", Ty::List(&Ty::Str), "[]", "Paths bound writable; relative ones are relative to the session's workdir (not the config file)."),
        def("deny_write", Ty::List(&Ty::Str), "[]", "Added to the always-protected list: read-only even inside writable paths."),
    ],
};

pub static NETWORK: Obj = Obj {
    path: "sandbox.network",
    doc: "Host rules for the egress proxy. A rule without a port matches ports 80 and 443 only.",
    fields: &[
        def("allow", Ty::List(&Ty::Host), "[]", "Hosts that may be reached: `api.github.com`, `*.pypi.org` (subdomains, not the apex), `registry.npmjs.org:8443`."),
        def("deny", Ty::List(&Ty::Host), "[]", "Hosts that may not be reached; deny wins over allow."),
        def("allow_private", Ty::List(&Ty::Cidr), "[]", "The only way to reach loopback, private or link-local addresses."),
        def("mode", Ty::Enum(&["enforce", "report"]), "enforce", "`enforce` refuses; `report` lets host-rule denials through and records them."),
    ],
};

pub static LIMITS: Obj = Obj {
    path: "sandbox.limits",
    doc: "Limits for each command run in the jail.",
    fields: &[
        def("memory", Ty::Size, "2GiB", "Memory (cgroup) limit."),
        def("pids", U32, "256", "Most processes and threads."),
        def(
            "cpu_seconds",
            Ty::Int {
                min: 1,
                max: u64::MAX,
            },
            "600",
            "CPU time limit in seconds.",
        ),
        def("timeout", Ty::Duration, "120s", "Wall-clock limit."),
        def(
            "output",
            Ty::Size,
            "100KiB",
            "Cap on captured output (stdout and stderr each).",
        ),
        def(
            "tmp_size",
            Ty::Size,
            "512MiB",
            "Size of the jail's private `/tmp`.",
        ),
        def(
            "open_files",
            Ty::Int {
                min: 1,
                max: u64::MAX,
            },
            "1024",
            "Most open file descriptors.",
        ),
        def(
            "file_size",
            Ty::Size,
            "1GiB",
            "Largest file a command may write.",
        ),
    ],
};

pub static CREDENTIAL: Obj = Obj {
    path: "credentials[]",
    doc: "One header injected by the egress proxy into requests for a host.",
    fields: &[
        opt(
            "name",
            Ty::Str,
            "Name used in audit records; default the host.",
        ),
        req("host", Ty::Host, "Host pattern the credential is sent to."),
        req("header", Ty::Str, "Header name, like `Authorization`."),
        req(
            "value",
            Ty::Secret,
            "Header value with at least one secret reference, like `Bearer ${env:GITHUB_TOKEN}`.",
        ),
        def(
            "plain_http",
            Ty::Bool,
            "false",
            "Also inject into plain `http://` requests (the secret crosses the network in clear text). By default only HTTPS, intercepted by the proxy, gets it and a plain-HTTP request to the host is refused.",
        ),
    ],
};

pub static TOOL_COMMON: &[Field] = &[
    req(
        "kind",
        Ty::Enum(&[
            "agent.bash",
            "agent.read",
            "agent.write",
            "agent.edit",
            "agent.glob",
            "agent.grep",
            "git.read_file",
            "git.list_files",
            "git.log",
            "postgres.query",
            "http.request",
        ]),
        "What the tool is; its other keys depend on it.",
    ),
    opt(
        "description",
        Ty::Str,
        "Shown to the agent; defaults to a description of the kind.",
    ),
    def(
        "approval",
        Ty::Enum(&["none", "required"]),
        "none",
        "`required`: each exact call waits for an operator's approval.",
    ),
];

static GIT_FIELDS: &[Field] = &[
    req(
        "repos",
        Ty::Map(&Ty::Path),
        "Repository name (what the agent says) to its path, bare or working tree. At least one.",
    ),
    def("max_file_size", Ty::Size, "1MiB", "Largest file returned."),
    def(
        "max_entries",
        U32,
        "1000",
        "Most entries `git.list_files` / `git.log` return.",
    ),
];

pub static TOOL_KINDS: &[Kind] = &[
    Kind { name: "agent.bash", doc: "Runs a shell command in the jail.", fields: &[
        def("timeout", Ty::Duration, "120s", "Wall-clock limit per command."),
        def("max_output", Ty::Size, "100KiB", "Output returned to the agent."),
    ]},
    Kind { name: "agent.read", doc: "Reads a file in the jail's view.", fields: &[
        def("max_bytes", Ty::Size, "256KiB", "Most bytes returned."),
    ]},
    Kind { name: "agent.write", doc: "Writes a file inside the writable paths.", fields: &[
        def("max_bytes", Ty::Size, "1MiB", "Largest content written."),
    ]},
    Kind { name: "agent.edit", doc: "Replaces text in a file inside the writable paths.", fields: &[
        def("max_bytes", Ty::Size, "1MiB", "Largest file edited."),
    ]},
    Kind { name: "agent.glob", doc: "Lists paths matching a glob.", fields: &[
        def("max_results", U32, "200", "Most paths returned."),
    ]},
    Kind { name: "agent.grep", doc: "Searches file contents.", fields: &[
        def("max_output", Ty::Size, "100KiB", "Output returned to the agent."),
        def("max_line", U32, "2000", "Longest line returned, in characters."),
    ]},
    Kind { name: "git.read_file", doc: "Reads one file at a revision of a declared repository.", fields: GIT_FIELDS },
    Kind { name: "git.list_files", doc: "Lists files at a revision of a declared repository.", fields: GIT_FIELDS },
    Kind { name: "git.log", doc: "Shows commits of a declared repository.", fields: GIT_FIELDS },
    Kind { name: "postgres.query", doc: "Runs one fixed, parameterised SQL statement.", fields: &[
        req("dsn", Ty::Secret, "Connection string with at least one secret reference, like `${env:PG_DSN}`."),
        req("sql", Ty::Str, "The statement; `$1`, `$2`, … are the parameters in order."),
        def("params", Ty::List(&Ty::Obj(&SQL_PARAM)), "[]", "One entry per `$n` placeholder."),
        def("max_rows", U32, "100", "Most rows returned."),
        def("timeout", Ty::Duration, "10s", "Statement timeout."),
    ]},
    Kind { name: "http.request", doc: "Calls one of an allow-list of routes under a base URL.", fields: &[
        req("base_url", Ty::Url, "`http` or `https` URL without query or fragment; route paths are appended to its path."),
        req("routes", Ty::List(&Ty::Obj(&HTTP_ROUTE)), "The routes that may be called. At least one."),
        opt("auth", Ty::Obj(&HTTP_AUTH), "Header added to every call, outside the jail."),
        def("max_response_size", Ty::Size, "1MiB", "Largest response body returned."),
        def("timeout", Ty::Duration, "30s", "Per call."),
    ]},
];

pub static SQL_PARAM: Obj = Obj {
    path: "tools.NAME.params[]",
    doc: "One statement parameter.",
    fields: &[
        req("name", Ty::Str, "Argument name the agent uses."),
        req(
            "type",
            Ty::Enum(&[
                "integer",
                "bigint",
                "float",
                "text",
                "boolean",
                "uuid",
                "timestamp",
                "date",
            ]),
            "SQL type the argument is checked against.",
        ),
        opt("description", Ty::Str, "Shown to the agent."),
    ],
};

pub static HTTP_ROUTE: Obj = Obj {
    path: "tools.NAME.routes[]",
    doc: "One allowed route.",
    fields: &[
        req(
            "method",
            Ty::Enum(&["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]),
            "HTTP method, upper case.",
        ),
        req(
            "path",
            Ty::Str,
            "Path starting with `/`; `{name}` matches one segment.",
        ),
        opt(
            "body",
            Ty::Schema,
            "The JSON body this route takes, as a schema (below); checked before anything is sent. Absent: the route takes no body. `{}` accepts any JSON value. Not allowed on `GET` and `HEAD`.",
        ),
    ],
};

const COUNT: Ty = Ty::Int {
    min: 0,
    max: u32::MAX as u64,
};

/// The JSON Schema keywords a route's `body:` may use (draft 2020-12
/// meanings). Anything else is an error: a keyword airlock does not apply
/// must not look as if it did.
pub static BODY_SCHEMA: Obj = Obj {
    path: "tools.NAME.routes[].body",
    doc: "A JSON Schema subset for a route's body. Keywords that only apply to one type (`properties`, `items`, `maxLength`, `minimum`, …) need `type:` set to that type. Objects are closed: properties not under `properties` are refused unless `additionalProperties: true`. Arrays must say what their `items` are (`items: {}` for any). Bodies nesting deeper than 32 levels are refused whatever the schema.",
    fields: &[
        opt("type", Ty::Enum(crate::body::JsonType::NAMES), "The value's JSON type; `integer` is a number without a fraction. Absent: any type (only with `description`, `enum` or `const`)."),
        opt("description", Ty::Str, "Shown to the agent in the tool's schema."),
        def("properties", Ty::Map(&Ty::Schema), "{}", "`object`: the declared properties and their schemas."),
        def("required", Ty::List(&Ty::Str), "[]", "`object`: properties that must be present."),
        def("additionalProperties", Ty::Bool, "false", "`object`: accept properties not declared (with any value)."),
        opt("items", Ty::Schema, "`array`: **required** with `type: array`; the schema of every item."),
        opt("minItems", COUNT, "`array`: fewest items."),
        opt("maxItems", COUNT, "`array`: most items."),
        opt("minLength", COUNT, "`string`: fewest characters (Unicode code points)."),
        opt("maxLength", COUNT, "`string`: most characters (Unicode code points)."),
        opt("pattern", Ty::Str, "`string`: a regular expression the value must contain a match of (anchor with `^…$`); Rust `regex` syntax, no look-around or back-references."),
        opt("minimum", Ty::Number, "`integer`, `number`: smallest value (inclusive)."),
        opt("maximum", Ty::Number, "`integer`, `number`: largest value (inclusive)."),
        opt("enum", Ty::List(&Ty::Json), "The value must equal one of these, exactly (no case folding or Unicode normalisation); each must be of `type`."),
        opt("const", Ty::Json, "The value must equal this exactly."),
    ],
};

pub static HTTP_AUTH: Obj = Obj {
    path: "tools.NAME.auth",
    doc: "Authentication header for an `http.request` tool.",
    fields: &[
        req("header", Ty::Str, "Header name, like `Authorization`."),
        req(
            "value",
            Ty::Secret,
            "Value with at least one secret reference.",
        ),
    ],
};

pub static AGENT: Obj = Obj {
    path: "agents.NAME",
    doc: "One agent.",
    fields: &[
        def("keys", Ty::List(&Ty::AgentKey), "[]", "Bearer keys for HTTP transports: secret references (`${env:KEY}`) or `sha256:<64 hex>` digests of the key. Stdio names the agent with `--agent`."),
        def("allowed_tools", Ty::List(&Ty::Str), "[]", "Declared tools this agent may list and call; anything else is denied."),
        def("constraints", Ty::Map(&Ty::Obj(&CONSTRAINT)), "{}", "Per tool (which must be in `allowed_tools`): narrowing of the tool's own limits. Only keys that apply to the tool's kind may be set, and each may only tighten."),
    ],
};

pub static CONSTRAINT: Obj = Obj {
    path: "agents.NAME.constraints.TOOL",
    doc: "Narrowing of one tool for one agent.",
    fields: &[
        opt(
            "repos",
            Ty::List(&Ty::Str),
            "git tools: a subset of the tool's repos.",
        ),
        opt(
            "max_file_size",
            Ty::Size,
            "`git.read_file`: at most the tool's `max_file_size`.",
        ),
        opt(
            "max_entries",
            U32,
            "`git.list_files`, `git.log`: at most the tool's `max_entries`.",
        ),
        opt(
            "max_rows",
            U32,
            "`postgres.query`: at most the tool's `max_rows`.",
        ),
        opt(
            "routes",
            Ty::List(&Ty::RouteRef),
            "`http.request`: a subset of the tool's routes, written `METHOD /path`.",
        ),
        opt(
            "timeout",
            Ty::Duration,
            "`agent.bash`, `postgres.query`, `http.request`: at most the tool's `timeout`.",
        ),
        opt(
            "max_output",
            Ty::Size,
            "`agent.bash`, `agent.grep`: at most the tool's `max_output`.",
        ),
        opt(
            "max_bytes",
            Ty::Size,
            "`agent.read`, `agent.write`, `agent.edit`: at most the tool's `max_bytes`.",
        ),
        opt(
            "max_results",
            U32,
            "`agent.glob`: at most the tool's `max_results`.",
        ),
    ],
};

pub static AUDIT: Obj = Obj {
    path: "audit",
    doc: "The tamper-evident audit log.",
    fields: &[
        def(
            "dir",
            Ty::Path,
            "/var/lib/airlock/audit",
            "Directory of the log segments.",
        ),
        def(
            "segment_size",
            Ty::Size,
            "64MiB",
            "Rotate a segment file at this size.",
        ),
        def(
            "checkpoint_every",
            U32,
            "1000",
            "Signed checkpoint every N records…",
        ),
        def(
            "checkpoint_interval",
            Ty::Duration,
            "10s",
            "…or every T, whichever comes first.",
        ),
        opt(
            "signing_key",
            Ty::Path,
            "Ed25519 signing key; must be outside `dir` (and any jail).",
        ),
        def(
            "flush_interval",
            Ty::Duration,
            "5ms",
            "Longest a record nobody waits for stays written but not fsynced; `record_durable` callers and `flush` get their fsync at once. `0s`: fsync every batch.",
        ),
        def(
            "redact_fields",
            Ty::List(&Ty::Str),
            "[]",
            "Extra argument names whose values are always redacted.",
        ),
        def(
            "export",
            Ty::Enum(&["none", "stdout", "syslog"]),
            "none",
            "Also send each record to stdout (JSON lines) or the local syslog.",
        ),
    ],
};

pub static GATEWAY: Obj = Obj {
    path: "gateway",
    doc: "The public side of the tunnel (see docs/tunnel.md).",
    fields: &[
        def("listen", Ty::Addr, "0.0.0.0:8443", "Address agents connect to."),
        def("tunnel_listen", Ty::Addr, "0.0.0.0:7443", "Address connectors dial."),
        req("state", Ty::Path, "SQLite state file (tunnels, hashed tokens, agent keys)."),
        req("tls_cert", Ty::Path, "Gateway certificate chain (PEM), used by links and, unless `agent_tls` is false, the agent listener."),
        req("tls_key", Ty::Path, "Key of `tls_cert` (PEM)."),
        def("agent_tls", Ty::Bool, "true", "Serve agents HTTPS. False only on localhost or behind a TLS-terminating load balancer."),
        opt("admin_key", Ty::AgentKey, "Bearer key for the admin API and `/metrics`: a secret reference (`${env:ADMIN_KEY}`) or `sha256:<64 hex>` of the key. Required with `admin_listen`."),
        opt("admin_listen", Ty::Addr, "Address of the admin API (tunnels and agent keys over HTTP, see docs/tunnel.md). Not set: no admin API. Plain HTTP on a loopback address (write `127.0.0.1:8444`), HTTPS with `tls_cert` on any other."),
        def("ping_interval", Ty::Duration, "4s", "HTTP/2 PING interval on links."),
        def("ping_timeout", Ty::Duration, "10s", "A link whose PING goes unanswered this long is dead."),
        def("assertion_ttl", Ty::Duration, "60s", "Lifetime of identity assertions; at most 300s."),
    ],
};

pub static CONNECTOR: Obj = Obj {
    path: "connector",
    doc: "The private side of the tunnel: dials out to the gateway and serves routes.",
    fields: &[
        req("gateway", Ty::Addr, "Gateway link address, `host:port`."),
        opt("server_name", Ty::Str, "TLS name to verify on the gateway certificate; default the host of `gateway`."),
        req("tunnel", Ty::Str, "Tunnel name (1 to 63 of letters, digits, `_`, `-`), as created with `airlock tunnel create`."),
        opt("name", Ty::Str, "Stable connector name (a reconnect replaces its links); default the hostname."),
        req("token", Ty::Secret, "Tunnel token, as a secret reference."),
        req("ca", Ty::Path, "CA certificate that signed the gateway certificate (pinned; the only trust root)."),
        req("client_cert", Ty::Path, "Connector client certificate (PEM)."),
        req("client_key", Ty::Path, "Key of `client_cert` (PEM)."),
        def("links", Ty::Int { min: 1, max: 16 }, "2", "Independent links to the gateway."),
        opt("allowed_ips", Ty::List(&Ty::Cidr), "Addresses routes may reach. Absent: loopback and private ranges. Present: replaces that default entirely."),
        def("routes", Ty::Map(&Ty::Route), "{}", "Routes by name (1 to 63 of letters, digits, `_`, `-`): what agents reach through this tunnel."),
        def("ping_interval", Ty::Duration, "4s", "HTTP/2 PING interval."),
        def("ping_timeout", Ty::Duration, "10s", "A link whose PING goes unanswered this long is dead."),
        opt("proxy", Ty::Url, "`http://[user:pass@]host:port` CONNECT proxy to reach the gateway; default `$HTTPS_PROXY`."),
        opt("identity_key", Ty::Str, "The gateway's identity-assertion public key (base64, printed by `airlock gateway` and `airlock tunnel identity-key`); `builtin:` routes trust assertions signed by it. Required with a `builtin:` route."),
    ],
};

/// A route sets exactly one of these.
pub static ROUTE_FORMS: &[Field] = &[
    opt(
        "url",
        Ty::Url,
        "An HTTP MCP server (`http://` only), like `http://127.0.0.1:8000/mcp`.",
    ),
    opt(
        "command",
        Ty::List(&Ty::Str),
        "A stdio MCP server the connector spawns: `[program, args…]`.",
    ),
    opt(
        "builtin",
        Ty::Path,
        "The built-in `airlock mcp` with this config file.",
    ),
];

/// Keys a route may set beside its form.
pub static ROUTE_OPTIONS: &[Field] = &[opt(
    "workdir",
    Ty::Path,
    "`builtin:` routes only: the directory the built-in `airlock mcp` works in (its agent tools' workspace); must exist. Default: the connector's working directory.",
)];

pub static WORKER: Obj = Obj {
    path: "worker",
    doc: "Reserved for the Claude Managed Agents self-hosted environment worker; not used by this version. The section is checked so a file written for a later version still loads, but no command reads it.",
    fields: &[
        def(
            "api_url",
            Ty::Url,
            "https://api.anthropic.com",
            "Anthropic's API or an airlock gateway's compatible endpoint.",
        ),
        req("environment_id", Ty::Str, "Environment the worker serves."),
        req("api_key", Ty::Secret, "API key, as a secret reference."),
        def(
            "workdir",
            Ty::Path,
            "/var/lib/airlock/work",
            "Where session workspaces are created.",
        ),
        def(
            "concurrency",
            Ty::Int { min: 1, max: 64 },
            "1",
            "Sessions run at once.",
        ),
    ],
};

impl Ty {
    /// How the type reads in errors and docs.
    pub fn describe(&self) -> String {
        match self {
            Ty::Str => "a string".into(),
            Ty::Int { min, max } if *max == u64::MAX || *max == u32::MAX as u64 => {
                format!("a whole number ≥ {min}")
            }
            Ty::Int { min, max } if min == max => format!("`{min}`"),
            Ty::Int { min, max } => format!("a whole number from {min} to {max}"),
            Ty::Bool => "`true` or `false`".into(),
            Ty::Size => "a size like `256KiB`".into(),
            Ty::Duration => "a duration like `30s`".into(),
            Ty::Host => "a host pattern like `*.example.com:443`".into(),
            Ty::Cidr => "a CIDR like `10.0.0.0/8`".into(),
            Ty::Url => "a URL".into(),
            Ty::Secret => "a secret reference like `${env:NAME}`".into(),
            Ty::Path => "a path".into(),
            Ty::Addr => "an address `host:port`".into(),
            Ty::Enum(v) => format!("one of {}", crate::load::diag_list(v.iter())),
            Ty::List(t) => format!("a list of {}", t.plural()),
            Ty::Map(_) => "a mapping".into(),
            Ty::Obj(_) | Ty::Tool | Ty::Route => "a mapping".into(),
            Ty::AgentKey => "a secret reference or `sha256:<hex>`".into(),
            Ty::RouteRef => "`METHOD /path`".into(),
            Ty::Schema => "a body schema (mapping)".into(),
            Ty::Json => "any value".into(),
            Ty::Number => "a number".into(),
        }
    }

    fn plural(&self) -> String {
        match self {
            Ty::Str => "strings".into(),
            Ty::Host => "host patterns".into(),
            Ty::Cidr => "CIDRs".into(),
            Ty::Obj(_) | Ty::Tool | Ty::Route => "mappings".into(),
            Ty::AgentKey => "keys".into(),
            Ty::RouteRef => "`METHOD /path` strings".into(),
            Ty::Schema => "body schemas".into(),
            Ty::Int { .. } => "numbers".into(),
            other => format!("values ({})", other.describe()),
        }
    }
}

/// The tool kind named `name`.
pub fn kind(name: &str) -> Option<&'static Kind> {
    TOOL_KINDS.iter().find(|k| k.name == name)
}
