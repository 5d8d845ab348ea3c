//! `tools:` — each tool's `kind:` picks the keys it takes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::decode::{fields, header_name};
use super::diag::{list, suggest, Pos};
use super::read::{self, open, Cx, Map};
use super::yaml::{Node, Value};
use crate::model::*;
use crate::spec::{self, Field};
use crate::values::ByteSize;

/// MCP tool names: 1 to 64 of letters, digits, `_`, `-`, `.`.
pub(crate) fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// The decoded tools, and the names of every declared tool (including ones
/// with errors, so agents naming them get no second, misleading error).
pub(crate) fn tools(cx: &mut Cx, top: &Map) -> (BTreeMap<String, Tool>, BTreeSet<String>) {
    let mut out = BTreeMap::new();
    let mut declared = BTreeSet::new();
    for e in top.map(cx, "tools").unwrap_or_default() {
        if !valid_tool_name(&e.key) {
            cx.err(
                e.key_pos,
                format!("`{}` is not a valid tool name", e.key),
                "use 1 to 64 letters, digits, `_`, `-` or `.`",
            );
            continue;
        }
        declared.insert(e.key.clone());
        let what = format!("tool `{}`", e.key);
        if let Some(t) = cx.guarded(e.key_pos, &what, |cx| tool(cx, &e.key, &e.value, e.key_pos)) {
            out.insert(e.key.clone(), t);
        }
    }
    (out, declared)
}

fn tool(cx: &mut Cx, name: &str, node: &Node, at: Pos) -> Option<Tool> {
    let what = format!("tool `{name}`");
    let Value::Map(entries) = &node.value else {
        let found = node.describe();
        cx.err(
            node.pos,
            format!("{what} must be a mapping, found {found}"),
            "write at least `{ kind: agent.read }`; `airlock config example` shows every kind",
        );
        return None;
    };
    let kinds = || spec::TOOL_KINDS.iter().map(|k| k.name);
    let kind = match entries.iter().find(|e| e.key == "kind") {
        None => {
            cx.err(
                at,
                format!("{what} is missing `kind`"),
                format!("add `kind:` with one of {}", list(kinds())),
            );
            return None;
        }
        Some(e) => {
            let text = read::string(cx, &e.value)?;
            match spec::kind(&text) {
                Some(k) => k,
                None => {
                    let help = match suggest(&text, kinds()) {
                        Some(s) => format!("did you mean `{s}`? kinds: {}", list(kinds())),
                        None => format!("write one of {}", list(kinds())),
                    };
                    cx.err(e.value.pos, format!("`{text}` is not a tool kind"), help);
                    return None;
                }
            }
        }
    };
    let mut keys: Vec<&'static Field> = spec::TOOL_COMMON.iter().collect();
    keys.extend(kind.fields.iter());
    let elsewhere = |key: &str| {
        spec::TOOL_KINDS
            .iter()
            .find(|k| k.fields.iter().any(|f| f.name == key))
            .map(|k| {
                format!(
                    "`{key}` is a setting of `{}` tools, not of `{}`",
                    k.name, kind.name
                )
            })
    };
    let m = open(cx, node, at, &what, keys, &elsewhere)?;
    m.entry("kind", |t| matches!(t, spec::Ty::Enum(_))); // read above, from the raw mapping
    let description = m.string(cx, "description");
    let approval = match m.choice(cx, "approval") {
        Some("required") => Approval::Required,
        _ => Approval::None,
    };
    let kind = match kind.name {
        "agent.bash" => {
            let d = AgentBash::default();
            ToolKind::AgentBash(AgentBash {
                timeout: m.duration(cx, "timeout").unwrap_or(d.timeout),
                max_output: m.size(cx, "max_output").unwrap_or(d.max_output),
            })
        }
        "agent.read" => ToolKind::AgentRead(AgentRead {
            max_bytes: m
                .size(cx, "max_bytes")
                .unwrap_or(AgentRead::default().max_bytes),
        }),
        "agent.write" => ToolKind::AgentWrite(AgentWrite {
            max_bytes: m
                .size(cx, "max_bytes")
                .unwrap_or(AgentWrite::default().max_bytes),
        }),
        "agent.edit" => ToolKind::AgentEdit(AgentEdit {
            max_bytes: m
                .size(cx, "max_bytes")
                .unwrap_or(AgentEdit::default().max_bytes),
        }),
        "agent.glob" => ToolKind::AgentGlob(AgentGlob {
            max_results: m
                .u32(cx, "max_results")
                .unwrap_or(AgentGlob::default().max_results),
        }),
        "agent.grep" => {
            let d = AgentGrep::default();
            ToolKind::AgentGrep(AgentGrep {
                max_output: m.size(cx, "max_output").unwrap_or(d.max_output),
                max_line: m.u32(cx, "max_line").unwrap_or(d.max_line),
            })
        }
        "git.read_file" => ToolKind::GitReadFile(git(cx, &m, &what)?),
        "git.list_files" => ToolKind::GitListFiles(git(cx, &m, &what)?),
        "git.log" => ToolKind::GitLog(git(cx, &m, &what)?),
        "postgres.query" => ToolKind::PostgresQuery(postgres(cx, &m)?),
        "http.request" => ToolKind::HttpRequest(http(cx, &m, &what)?),
        other => {
            // The spec lists a kind this decoder does not know: a bug, not user error.
            cx.err(
                at,
                format!("tool kind `{other}` is not implemented"),
                "report this as a bug",
            );
            return None;
        }
    };
    Some(Tool {
        description,
        approval,
        kind,
    })
}

fn git(cx: &mut Cx, m: &Map, what: &str) -> Option<GitRepos> {
    let mut repos = BTreeMap::new();
    let entries = m.map(cx, "repos");
    if let Some(entries) = entries {
        if entries.is_empty() {
            let pos = m.node("repos", |_| true).map_or(m.at, |n| n.pos);
            cx.err(
                pos,
                format!("{what} has no repositories"),
                "add at least one `name: /path/to/repo.git`",
            );
        }
        for e in entries {
            if !valid_tool_name(&e.key) {
                cx.err(
                    e.key_pos,
                    format!("`{}` is not a valid repository name", e.key),
                    "use letters, digits, `_`, `-` or `.`",
                );
            } else if let Some(p) = read::path(cx, &e.value) {
                repos.insert(e.key.clone(), p);
            }
        }
    }
    Some(GitRepos {
        repos,
        max_file_size: m.size(cx, "max_file_size").unwrap_or(ByteSize::mib(1)),
        max_entries: m.u32(cx, "max_entries").unwrap_or(1000),
    })
}

fn postgres(cx: &mut Cx, m: &Map) -> Option<PostgresQuery> {
    let dsn = m.secret(cx, "dsn");
    let sql = m.string(cx, "sql");
    let params = m.list(cx, "params", sql_param);
    if let (Some(sql), Some(params)) = (&sql, &params) {
        let used = placeholders(sql);
        let highest = used.iter().max().copied().unwrap_or(0);
        let sql_pos = m.node("sql", |_| true).map_or(m.at, |n| n.pos);
        if sql.trim().is_empty() {
            cx.err(
                sql_pos,
                "the SQL statement is empty",
                "write the one statement this tool runs",
            );
        } else if highest > params.len() {
            cx.err(
                sql_pos,
                format!(
                    "the statement uses `${highest}` but declares {} param(s)",
                    params.len()
                ),
                "declare one entry under `params:` for each `$n`, in order",
            );
        } else if params.len() > highest {
            let pos = m.node("params", |_| true).map_or(m.at, |n| n.pos);
            cx.err(
                pos,
                format!(
                    "{} param(s) are declared but the statement uses {highest}",
                    params.len()
                ),
                "remove the extra params or use them as `$n` in the statement",
            );
        }
        let mut seen = BTreeSet::new();
        for p in params {
            if !seen.insert(&p.name) {
                cx.err(
                    m.at,
                    format!("param `{}` is declared twice", p.name),
                    "give each param its own name",
                );
            }
        }
    }
    Some(PostgresQuery {
        dsn: dsn?,
        sql: sql?,
        params: params?,
        max_rows: m.u32(cx, "max_rows").unwrap_or(100),
        timeout: m.duration(cx, "timeout").unwrap_or(Duration::from_secs(10)),
    })
}

/// The `$n` placeholders of a statement, outside quoted strings.
fn placeholders(sql: &str) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let b = sql.as_bytes();
    let (mut i, mut quote) = (0, None::<u8>);
    while i < b.len() {
        match (quote, b[i]) {
            (None, q @ (b'\'' | b'"')) => quote = Some(q),
            (Some(q), c) if c == q => quote = None,
            (None, b'$') => {
                let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if let Ok(n) = sql[i + 1..i + 1 + digits].parse::<usize>() {
                    out.insert(n);
                }
                i += digits;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn sql_param(cx: &mut Cx, node: &Node) -> Option<SqlParam> {
    let m = open(
        cx,
        node,
        node.pos,
        "a SQL param",
        fields(&spec::SQL_PARAM),
        &|_| None,
    )?;
    let name = m.node("name", |_| true).and_then(|n| read::name(cx, n));
    let ty = m.choice(cx, "type");
    let description = m.string(cx, "description");
    Some(SqlParam {
        name: name?,
        ty: match ty? {
            "integer" => SqlType::Integer,
            "bigint" => SqlType::BigInt,
            "float" => SqlType::Float,
            "text" => SqlType::Text,
            "boolean" => SqlType::Boolean,
            "uuid" => SqlType::Uuid,
            "timestamp" => SqlType::Timestamp,
            _ => SqlType::Date,
        },
        description,
    })
}

fn http(cx: &mut Cx, m: &Map, what: &str) -> Option<HttpRequest> {
    let base_url = m.url(cx, "base_url");
    if let (Some(u), Some(n)) = (&base_url, m.node("base_url", |_| true)) {
        if u.query().is_some() || u.fragment().is_some() {
            cx.err(
                n.pos,
                "`base_url` has a query or fragment",
                "write the URL without `?…` and `#…`",
            );
        }
        if !u.username().is_empty() || u.password().is_some() {
            cx.err(
                n.pos,
                "`base_url` carries credentials",
                "remove `user:pass@` and use `auth:` with a secret reference",
            );
        }
    }
    let routes = m.list(cx, "routes", route);
    if let Some(routes) = &routes {
        let pos = m.node("routes", |_| true).map_or(m.at, |n| n.pos);
        if routes.is_empty() {
            cx.err(
                pos,
                format!("{what} has no routes"),
                "add at least one `{ method: GET, path: /status }`",
            );
        }
        let mut seen = BTreeSet::new();
        for r in routes {
            if !seen.insert((&r.method, &r.path)) {
                cx.err(
                    pos,
                    format!("route `{} {}` is listed twice", r.method, r.path),
                    "remove the duplicate",
                );
            }
        }
    }
    let auth = match m.entry("auth", |t| matches!(t, spec::Ty::Obj(_))) {
        Some(e) => {
            let a = open(
                cx,
                &e.value,
                e.key_pos,
                "`auth`",
                fields(&spec::HTTP_AUTH),
                &|_| None,
            )?;
            let header = header_name(cx, &a, "header");
            let value = a.secret(cx, "value");
            Some(HttpAuth {
                header: header?,
                value: value?,
            })
        }
        None => None,
    };
    Some(HttpRequest {
        base_url: base_url?,
        routes: routes?,
        auth,
        max_response_size: m.size(cx, "max_response_size").unwrap_or(ByteSize::mib(1)),
        timeout: m.duration(cx, "timeout").unwrap_or(Duration::from_secs(30)),
    })
}

fn route(cx: &mut Cx, node: &Node) -> Option<HttpRoute> {
    let m = open(
        cx,
        node,
        node.pos,
        "a route",
        fields(&spec::HTTP_ROUTE),
        &|_| None,
    )?;
    let method = m.choice(cx, "method");
    let path = m.string(cx, "path");
    if let (Some(p), Some(n)) = (&path, m.node("path", |_| true)) {
        check_route_path(cx, p, n.pos)?;
    }
    let body = match m.entry("body", |t| matches!(t, spec::Ty::Schema)) {
        Some(e) => {
            if let Some(meth @ ("GET" | "HEAD")) = method {
                cx.err(
                    e.key_pos,
                    format!("a `{meth}` route cannot take a body"),
                    "remove `body:`, or use a POST, PUT, PATCH or DELETE route",
                );
                return None;
            }
            Some(super::body::schema(cx, &e.value)?)
        }
        None => None,
    };
    Some(HttpRoute {
        method: method?.to_string(),
        path: path?,
        body,
    })
}

pub(crate) fn check_route_path(cx: &mut Cx, p: &str, pos: Pos) -> Option<()> {
    let bad = !p.starts_with('/')
        || p.contains(['?', '#', '\\', ' '])
        || p.split('/').any(|s| s == ".." || s == ".");
    if bad {
        cx.err(
            pos,
            format!("`{p}` is not a route path"),
            "write an absolute path like `/v1/items/{id}`, without `?`, `#`, spaces or `.`/`..` segments",
        );
        return None;
    }
    Some(())
}
