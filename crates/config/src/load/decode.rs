//! The top of the file and the simple sections: sandbox, credentials, audit.

use super::read::{self, open, Cx, Map};
use super::yaml::Node;
use super::{agents, tools, tunnel};
use crate::model::*;
use crate::spec::{self, Field};

pub(crate) fn fields(obj: &'static spec::Obj) -> Vec<&'static Field> {
    obj.fields.iter().collect()
}

/// Says which section an unknown top-level key belongs in, for keys users
/// often put at the wrong level.
fn misplaced(key: &str) -> Option<String> {
    let home = [
        (&spec::SANDBOX, "sandbox"),
        (&spec::FILESYSTEM, "sandbox.filesystem"),
        (&spec::NETWORK, "sandbox.network"),
        (&spec::LIMITS, "sandbox.limits"),
        (&spec::AUDIT, "audit"),
    ];
    home.iter()
        .find(|(obj, _)| obj.fields.iter().any(|f| f.name == key))
        .map(|(_, path)| format!("`{key}` belongs under `{path}`"))
}

pub(crate) fn config(cx: &mut Cx, root: &Node) -> Option<Config> {
    if root.is_null() {
        cx.err(
            root.pos,
            "the file is empty",
            "start with `version: 1`; `airlock config example` prints a complete, commented file",
        );
        return None;
    }
    let m = open(
        cx,
        root,
        root.pos,
        "the top level",
        fields(&spec::ROOT),
        &misplaced,
    )?;
    let version = version(cx, &m);
    let sandbox = sub(cx, &m, "sandbox", sandbox);
    let credentials = m
        .list(cx, "credentials", |cx, n| {
            cx.guarded(n.pos, "a credential", |cx| credential(cx, n))
        })
        .unwrap_or_default();
    duplicate_credentials(cx, &m, &credentials);
    let (tools, declared) = tools::tools(cx, &m);
    let agents = agents::agents(cx, &m, &tools, &declared);
    // Absent: no audit log.
    let audit = m
        .entry("audit", |t| matches!(t, spec::Ty::Obj(_)))
        .and_then(|e| cx.guarded(e.key_pos, "`audit`", |cx| audit(cx, &e.value, e.key_pos)));
    let gateway = m.entry("gateway", |_| true).and_then(|e| {
        cx.guarded(e.key_pos, "`gateway`", |cx| {
            tunnel::gateway(cx, &e.value, e.key_pos)
        })
    });
    let connector = m.entry("connector", |_| true).and_then(|e| {
        cx.guarded(e.key_pos, "`connector`", |cx| {
            tunnel::connector(cx, &e.value, e.key_pos)
        })
    });
    let worker = m.entry("worker", |_| true).and_then(|e| {
        cx.guarded(e.key_pos, "`worker`", |cx| {
            tunnel::worker(cx, &e.value, e.key_pos)
        })
    });
    Some(Config {
        version: version?,
        sandbox: sandbox.unwrap_or_default(),
        credentials,
        tools,
        agents,
        audit,
        gateway,
        connector,
        worker,
    })
}

/// Decodes an optional sub-mapping with `f`, or its default when absent.
fn sub<T: Default>(
    cx: &mut Cx,
    m: &Map,
    key: &str,
    f: impl FnOnce(&mut Cx, &Node, super::diag::Pos) -> Option<T>,
) -> Option<T> {
    match m.entry(key, |t| matches!(t, spec::Ty::Obj(_))) {
        Some(e) => cx.guarded(e.key_pos, &format!("`{key}`"), |cx| {
            f(cx, &e.value, e.key_pos)
        }),
        None => Some(T::default()),
    }
}

fn sandbox(cx: &mut Cx, node: &Node, at: super::diag::Pos) -> Option<Sandbox> {
    let m = open(cx, node, at, "`sandbox`", fields(&spec::SANDBOX), &|_| None)?;
    Some(Sandbox {
        filesystem: sub(cx, &m, "filesystem", filesystem).unwrap_or_default(),
        network: sub(cx, &m, "network", network).unwrap_or_default(),
        limits: sub(cx, &m, "limits", limits).unwrap_or_default(),
    })
}

fn filesystem(cx: &mut Cx, node: &Node, at: super::diag::Pos) -> Option<Filesystem> {
    let m = open(
        cx,
        node,
        at,
        "`sandbox.filesystem`",
        fields(&spec::FILESYSTEM),
        &|_| None,
    )?;
    let strings = |cx: &mut Cx, key| m.list(cx, key, read::name).unwrap_or_default();
    Some(Filesystem {
        deny_read: strings(cx, "deny_read"),
        allow_write: strings(cx, "allow_write"),
        deny_write: strings(cx, "deny_write"),
    })
}

fn network(cx: &mut Cx, node: &Node, at: super::diag::Pos) -> Option<Network> {
    let m = open(
        cx,
        node,
        at,
        "`sandbox.network`",
        fields(&spec::NETWORK),
        &|_| None,
    )?;
    Some(Network {
        allow: m.list(cx, "allow", read::host).unwrap_or_default(),
        deny: m.list(cx, "deny", read::host).unwrap_or_default(),
        allow_private: m.list(cx, "allow_private", read::cidr).unwrap_or_default(),
        mode: match m.choice(cx, "mode") {
            Some("report") => NetworkMode::Report,
            _ => NetworkMode::Enforce,
        },
    })
}

fn limits(cx: &mut Cx, node: &Node, at: super::diag::Pos) -> Option<Limits> {
    let m = open(
        cx,
        node,
        at,
        "`sandbox.limits`",
        fields(&spec::LIMITS),
        &|_| None,
    )?;
    let d = Limits::default();
    Some(Limits {
        memory: m.size(cx, "memory").unwrap_or(d.memory),
        pids: m.u32(cx, "pids").unwrap_or(d.pids),
        cpu_seconds: m.int(cx, "cpu_seconds").unwrap_or(d.cpu_seconds),
        timeout: m.duration(cx, "timeout").unwrap_or(d.timeout),
        output: m.size(cx, "output").unwrap_or(d.output),
        tmp_size: m.size(cx, "tmp_size").unwrap_or(d.tmp_size),
        open_files: m.int(cx, "open_files").unwrap_or(d.open_files),
        file_size: m.size(cx, "file_size").unwrap_or(d.file_size),
    })
}

/// An HTTP header name (RFC 9110 token).
pub(crate) fn header_name(cx: &mut Cx, m: &Map, key: &str) -> Option<String> {
    let node = m.node(key, |t| matches!(t, spec::Ty::Str))?;
    let h = read::string(cx, node)?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if h.is_empty() || !h.bytes().all(token) {
        cx.err(
            node.pos,
            format!("`{h}` is not an HTTP header name"),
            "write a header name like `Authorization` or `X-Api-Key` (letters, digits and `-`)",
        );
        return None;
    }
    Some(h)
}

fn credential(cx: &mut Cx, node: &Node) -> Option<Credential> {
    let m = open(
        cx,
        node,
        node.pos,
        "a credential",
        fields(&spec::CREDENTIAL),
        &|_| None,
    )?;
    let name = m.string(cx, "name");
    let host = m.host(cx, "host");
    let header = header_name(cx, &m, "header");
    let value = m.secret(cx, "value");
    let plain_http = m.boolean(cx, "plain_http").unwrap_or(false);
    let host = host?;
    Some(Credential {
        name: name.unwrap_or_else(|| host.to_string()),
        host,
        header: header?,
        value: value?,
        plain_http,
    })
}

fn audit(cx: &mut Cx, node: &Node, at: super::diag::Pos) -> Option<Audit> {
    let m = open(cx, node, at, "`audit`", fields(&spec::AUDIT), &|_| None)?;
    let d = Audit::default();
    let dir = m.path(cx, "dir").unwrap_or(d.dir);
    let signing_key = m.path(cx, "signing_key");
    if let (Some(key), Some(n)) = (&signing_key, m.node("signing_key", |_| true)) {
        if key.starts_with(&dir) {
            cx.err(
                n.pos,
                "the audit signing key is inside the audit directory",
                "keep the key outside `audit.dir`, so that whoever can rewrite the log cannot also re-sign it",
            );
        }
    }
    Some(Audit {
        dir,
        segment_size: m.size(cx, "segment_size").unwrap_or(d.segment_size),
        checkpoint_every: m.u32(cx, "checkpoint_every").unwrap_or(d.checkpoint_every),
        checkpoint_interval: m
            .duration(cx, "checkpoint_interval")
            .unwrap_or(d.checkpoint_interval),
        signing_key,
        flush_interval: m.duration(cx, "flush_interval").unwrap_or(d.flush_interval),
        redact_fields: m.list(cx, "redact_fields", read::name).unwrap_or_default(),
        export: match m.choice(cx, "export") {
            Some("stdout") => AuditExport::Stdout,
            Some("syslog") => AuditExport::Syslog,
            _ => AuditExport::None,
        },
    })
}

/// `version: 1`, with a message that says what other numbers mean.
fn version(cx: &mut Cx, m: &Map) -> Option<u32> {
    let node = m.node("version", |t| matches!(t, spec::Ty::Int { .. }))?;
    match &node.value {
        super::yaml::Value::Scalar { text, plain: true } if text.parse::<u64>().is_ok() => {
            if text.parse::<u64>() == Ok(1) {
                Some(1)
            } else {
                cx.err(
                    node.pos,
                    format!("unsupported config version {text}"),
                    "this airlock reads `version: 1`; a newer file needs a newer airlock",
                );
                None
            }
        }
        _ => {
            let found = node.describe();
            cx.err(
                node.pos,
                format!("expected the version number, found {found}"),
                "write `version: 1`",
            );
            None
        }
    }
}

/// Two credentials for the same host and header would make the injected
/// value depend on rule order.
fn duplicate_credentials(cx: &mut Cx, m: &Map, creds: &[Credential]) {
    let Some(super::yaml::Value::Seq(items)) = m.node("credentials", |_| true).map(|n| &n.value)
    else {
        return;
    };
    for (i, c) in creds.iter().enumerate() {
        let first = creds[..i]
            .iter()
            .position(|p| p.host == c.host && p.header.eq_ignore_ascii_case(&c.header));
        if let (Some(first), Some(node)) = (first, items.get(i)) {
            cx.err(
                node.pos,
                format!(
                    "a second credential for host `{}` and header `{}` (the first is entry {})",
                    c.host,
                    c.header,
                    first + 1
                ),
                "keep one credential per host and header",
            );
        }
    }
}
