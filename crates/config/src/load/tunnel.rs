//! `gateway:`, `connector:` and `worker:` — the tunnel ends and the worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::decode::fields;
use super::diag::{list, Pos};
use super::read::{self, open, Cx};
use super::yaml::{Node, Value};
use crate::model::*;
use crate::spec::{self, Ty};

const MAX_ASSERTION_TTL: Duration = Duration::from_secs(300);

/// Tunnel, connector and route names travel in URL paths: 1 to 63 of
/// letters, digits, `_` and `-` (the tunnel's own rule).
fn valid_link_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn link_name(cx: &mut Cx, m: &read::Map, key: &str) -> Option<String> {
    let node = m.node(key, |t| matches!(t, Ty::Str))?;
    let s = read::string(cx, node)?;
    if !valid_link_name(&s) {
        cx.err(
            node.pos,
            format!("`{s}` is not a valid {key} name"),
            "use 1 to 63 letters, digits, `_` or `-`",
        );
        return None;
    }
    Some(s)
}

pub(crate) fn gateway(cx: &mut Cx, node: &Node, at: Pos) -> Option<Gateway> {
    let m = open(cx, node, at, "`gateway`", fields(&spec::GATEWAY), &|_| None)?;
    let listen = m.addr(cx, "listen");
    let tunnel_listen = m.addr(cx, "tunnel_listen");
    let state = match m.node("state", |_| true) {
        Some(n) if matches!(&n.value, Value::Scalar { text, .. } if text.contains("://")) => {
            cx.err(
                n.pos,
                "PostgreSQL gateway state is not supported yet",
                "give the path of a SQLite file, like `/var/lib/airlock/gateway.db`",
            );
            None
        }
        _ => m.path(cx, "state"),
    };
    let tls_cert = m.path(cx, "tls_cert");
    let tls_key = m.path(cx, "tls_key");
    let admin_key = match m.node("admin_key", |_| true) {
        Some(n) => Some(super::agents::agent_key(cx, n)?),
        None => None,
    };
    let admin_listen = m.addr(cx, "admin_listen");
    if let (Some(_), None, Some(n)) = (&admin_listen, &admin_key, m.node("admin_listen", |_| true))
    {
        // An admin API nobody can authenticate to is a mistake; one anybody
        // can use is worse: refuse both.
        cx.err(
            n.pos,
            "`admin_listen` needs `admin_key`",
            "add `admin_key: ${env:AIRLOCK_ADMIN_KEY}` (or `sha256:<64 hex>` of the key)",
        );
    }
    if let (Some(a), Some(n)) = (&admin_listen, m.node("admin_listen", |_| true)) {
        if Some(a) == listen.as_ref() || Some(a) == tunnel_listen.as_ref() {
            cx.err(
                n.pos,
                "`admin_listen` is the same address as `listen` or `tunnel_listen`",
                "give the admin API its own port, e.g. `127.0.0.1:8444`",
            );
        }
    }
    let (ping_interval, ping_timeout) = pings(cx, &m);
    let assertion_ttl = m
        .duration(cx, "assertion_ttl")
        .unwrap_or(Duration::from_secs(60));
    if let Some(n) = m.node("assertion_ttl", |_| true) {
        if assertion_ttl > MAX_ASSERTION_TTL || assertion_ttl.is_zero() {
            cx.err(
                n.pos,
                "`assertion_ttl` must be between 1s and 300s",
                "a short lifetime limits what a stolen assertion is worth; write e.g. `60s`",
            );
        }
    }
    if let (Some(a), Some(b)) = (&listen, &tunnel_listen) {
        if a == b {
            let pos = m.node("tunnel_listen", |_| true).map_or(at, |n| n.pos);
            cx.err(
                pos,
                "`tunnel_listen` is the same address as `listen`",
                "agents and connector links need separate ports, e.g. 8443 and 7443",
            );
        }
    }
    Some(Gateway {
        listen: listen.unwrap_or_else(|| "0.0.0.0:8443".into()),
        tunnel_listen: tunnel_listen.unwrap_or_else(|| "0.0.0.0:7443".into()),
        state: state?.display().to_string(),
        tls_cert: tls_cert?,
        tls_key: tls_key?,
        agent_tls: m.boolean(cx, "agent_tls").unwrap_or(true),
        admin_key,
        admin_listen,
        ping_interval,
        ping_timeout,
        assertion_ttl,
    })
}

/// `ping_interval` and `ping_timeout`, both non-zero.
fn pings(cx: &mut Cx, m: &read::Map) -> (Duration, Duration) {
    let mut get = |key: &str, default: u64| {
        let v = m.duration(cx, key);
        if let (Some(d), Some(n)) = (v, m.node(key, |_| true)) {
            if d.is_zero() {
                cx.err(
                    n.pos,
                    format!("`{key}` must be longer than 0"),
                    "write e.g. `4s` for the interval and `10s` for the timeout",
                );
            }
        }
        v.unwrap_or(Duration::from_secs(default))
    };
    (get("ping_interval", 4), get("ping_timeout", 10))
}

pub(crate) fn connector(cx: &mut Cx, node: &Node, at: Pos) -> Option<Connector> {
    let m = open(
        cx,
        node,
        at,
        "`connector`",
        fields(&spec::CONNECTOR),
        &|_| None,
    )?;
    let gateway = m.addr(cx, "gateway");
    let server_name = m.string(cx, "server_name");
    let tunnel = link_name(cx, &m, "tunnel");
    let name = link_name(cx, &m, "name");
    let token = m.secret(cx, "token");
    let ca = m.path(cx, "ca");
    let client_cert = m.path(cx, "client_cert");
    let client_key = m.path(cx, "client_key");
    let allowed_ips = if m.has("allowed_ips") {
        Some(m.list(cx, "allowed_ips", read::cidr)?)
    } else {
        None
    };
    let proxy = m.url(cx, "proxy");
    if let (Some(p), Some(n)) = (&proxy, m.node("proxy", |_| true)) {
        if p.scheme() != "http" {
            cx.err(
                n.pos,
                "`proxy` must be an `http://` CONNECT proxy",
                "write `http://[user:pass@]host:port`",
            );
        }
    }
    let mut routes = BTreeMap::new();
    for e in m.map(cx, "routes").unwrap_or_default() {
        if !valid_link_name(&e.key) {
            cx.err(
                e.key_pos,
                format!("`{}` is not a valid route name", e.key),
                "use 1 to 63 letters, digits, `_` or `-`",
            );
        } else if let Some(r) = cx.guarded(e.key_pos, &format!("route `{}`", e.key), |cx| {
            route(cx, &e.key, &e.value, e.key_pos)
        }) {
            routes.insert(e.key.clone(), r);
        }
    }
    let identity_key = m.string(cx, "identity_key");
    if identity_key.is_none() && routes.values().any(|r| matches!(r, Route::Builtin { .. })) {
        cx.err(
            at,
            "a `builtin:` route needs `connector.identity_key`",
            "add `identity_key: <base64>`, the key `airlock gateway` prints (or `airlock tunnel identity-key`)",
        );
    }
    let (ping_interval, ping_timeout) = pings(cx, &m);
    Some(Connector {
        gateway: gateway?,
        server_name,
        tunnel: tunnel?,
        name,
        token: token?,
        ca: ca?,
        client_cert: client_cert?,
        client_key: client_key?,
        links: m.u32(cx, "links").unwrap_or(2),
        allowed_ips,
        routes,
        ping_interval,
        ping_timeout,
        proxy: proxy.map(|u| u.to_string()),
        identity_key,
    })
}

fn route(cx: &mut Cx, name: &str, node: &Node, at: Pos) -> Option<Route> {
    let what = format!("route `{name}`");
    let m = open(
        cx,
        node,
        at,
        &what,
        spec::ROUTE_FORMS
            .iter()
            .chain(spec::ROUTE_OPTIONS)
            .collect(),
        &|_| None,
    )?;
    let set: Vec<&str> = spec::ROUTE_FORMS
        .iter()
        .map(|f| f.name)
        .filter(|k| m.has(k))
        .collect();
    if set.len() != 1 {
        let msg = if set.is_empty() {
            format!("{what} sets none of `url`, `command` or `builtin`")
        } else {
            format!("{what} sets {} at once", list(&set))
        };
        cx.err(at, msg, "a route is exactly one of `{ url: http://127.0.0.1:8000/mcp }`, `{ command: [prog, args…] }` or `{ builtin: airlock.yaml }`");
        return None;
    }
    let workdir = route_workdir(cx, &m, &what, set[0] == "builtin");
    match set[0] {
        "url" => {
            let u = m.url(cx, "url")?;
            if u.scheme() != "http" {
                let pos = m.node("url", |_| true).map_or(at, |n| n.pos);
                cx.err(pos, "route URLs are `http://` only", "the connector reaches local MCP servers over plain HTTP; write `http://host:port/path`");
                return None;
            }
            Some(Route::Http { url: u.to_string() })
        }
        "command" => {
            let node = m.node("command", |t| matches!(t, Ty::List(_)))?;
            let items = m.list(cx, "command", read::string)?;
            if items.is_empty() || items[0].is_empty() {
                cx.err(
                    node.pos,
                    format!("{what} has an empty command"),
                    "write `[program, args…]`, like `[npx, -y, some-mcp-server]`",
                );
                return None;
            }
            Some(Route::Stdio { command: items })
        }
        _ => Some(Route::Builtin {
            config: m.path(cx, "builtin")?,
            workdir: workdir?,
        }),
    }
}

/// A route's `workdir`: `builtin:` routes only, an existing directory
/// (relative to the config file's directory). `Some(None)` when not set.
fn route_workdir(cx: &mut Cx, m: &read::Map, what: &str, builtin: bool) -> Option<Option<PathBuf>> {
    let Some(node) = m.node("workdir", |t| matches!(t, Ty::Path)) else {
        return Some(None);
    };
    let dir = read::path(cx, node)?;
    if !builtin {
        cx.err(
            node.pos,
            format!("{what}: `workdir` applies to `builtin:` routes only"),
            "other routes run where their server runs; remove `workdir`",
        );
        return None;
    }
    // Checked here, not when the route first starts, so the error carries
    // the file and line; a typo must not silently fall back to the cwd.
    match std::fs::metadata(&dir) {
        Ok(md) if md.is_dir() => Some(Some(dir)),
        Ok(_) => {
            cx.err(
                node.pos,
                format!("{what}: workdir `{}` is not a directory", dir.display()),
                "give an existing directory (relative paths are relative to the config file's directory)",
            );
            None
        }
        Err(e) => {
            cx.err(
                node.pos,
                format!("{what}: workdir `{}` cannot be used: {e}", dir.display()),
                "create the directory first (relative paths are relative to the config file's directory)",
            );
            None
        }
    }
}

pub(crate) fn worker(cx: &mut Cx, node: &Node, at: Pos) -> Option<Worker> {
    let m = open(cx, node, at, "`worker`", fields(&spec::WORKER), &|_| None)?;
    let api_url = m.url(cx, "api_url");
    let environment_id = m
        .node("environment_id", |t| matches!(t, Ty::Str))
        .and_then(|n| read::name(cx, n));
    let api_key = m.secret(cx, "api_key");
    let workdir = m.path(cx, "workdir");
    Some(Worker {
        api_url: api_url.map_or_else(
            || "https://api.anthropic.com".to_string(),
            |u| u.to_string(),
        ),
        environment_id: environment_id?,
        api_key: api_key?,
        workdir: workdir.unwrap_or_else(|| "/var/lib/airlock/work".into()),
        concurrency: m.u32(cx, "concurrency").unwrap_or(1),
    })
}
