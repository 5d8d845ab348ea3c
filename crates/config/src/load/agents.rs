//! `agents:` — keys, allowed tools and constraints, checked against the
//! declared tools: an agent can only be narrowed, never widened.

use std::collections::{BTreeMap, BTreeSet};

use super::decode::fields;
use super::diag::{list, suggest, Pos};
use super::read::{self, open, Cx, Map};
use super::tools::valid_tool_name;
use super::yaml::{Node, Value};
use crate::model::*;
use crate::spec::{self, Ty};

pub(crate) fn agents(
    cx: &mut Cx,
    top: &Map,
    tools: &BTreeMap<String, Tool>,
    declared: &BTreeSet<String>,
) -> BTreeMap<String, Agent> {
    let mut out = BTreeMap::new();
    // A key shared by two agents would make the caller's identity ambiguous.
    let mut key_owner: BTreeMap<String, String> = BTreeMap::new();
    for e in top.map(cx, "agents").unwrap_or_default() {
        if !valid_tool_name(&e.key) {
            cx.err(
                e.key_pos,
                format!("`{}` is not a valid agent name", e.key),
                "use 1 to 64 letters, digits, `_`, `-` or `.`",
            );
            continue;
        }
        let what = format!("agent `{}`", e.key);
        let Some(agent) = cx.guarded(e.key_pos, &what, |cx| {
            agent(cx, &e.key, &e.value, e.key_pos, tools, declared)
        }) else {
            continue;
        };
        for (k, pos) in agent.keys.iter().zip(key_positions(&e.value)) {
            let id = match k {
                AgentKey::Secret(s) => s.to_string(),
                AgentKey::Sha256(h) => format!("sha256:{}", hex(h)),
            };
            match key_owner.get(&id) {
                Some(owner) => cx.err(
                    pos,
                    format!("agent `{}` uses the same key as agent `{owner}`", e.key),
                    "give each agent its own key, so that every call names one agent",
                ),
                None => {
                    key_owner.insert(id, e.key.clone());
                }
            }
        }
        out.insert(e.key.clone(), agent);
    }
    out
}

fn key_positions(agent: &Node) -> Vec<Pos> {
    let Value::Map(entries) = &agent.value else {
        return Vec::new();
    };
    match entries
        .iter()
        .find(|e| e.key == "keys")
        .map(|e| &e.value.value)
    {
        Some(Value::Seq(items)) => items.iter().map(|n| n.pos).collect(),
        _ => Vec::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn agent(
    cx: &mut Cx,
    name: &str,
    node: &Node,
    at: Pos,
    tools: &BTreeMap<String, Tool>,
    declared: &BTreeSet<String>,
) -> Option<Agent> {
    let what = format!("agent `{name}`");
    let m = open(cx, node, at, &what, fields(&spec::AGENT), &|_| None)?;
    let keys = m.list(cx, "keys", agent_key);
    let mut allowed: Vec<String> = Vec::new();
    if let Some(node) = m.node("allowed_tools", |t| matches!(t, Ty::List(_))) {
        for n in read::seq(cx, node).unwrap_or_default() {
            let Some(t) = read::string(cx, n) else {
                continue;
            };
            if allowed.contains(&t) {
                cx.err(
                    n.pos,
                    format!("`{t}` is listed twice in allowed_tools"),
                    "remove the duplicate",
                );
            } else if !declared.contains(&t) {
                cx.err(
                    n.pos,
                    format!("{what} is allowed tool `{t}`, which is not declared under `tools:`"),
                    undeclared_help(&t, declared),
                );
            } else {
                allowed.push(t);
            }
        }
    }
    let mut constraints = BTreeMap::new();
    for e in m.map(cx, "constraints").unwrap_or_default() {
        if !declared.contains(&e.key) {
            cx.err(
                e.key_pos,
                format!(
                    "constraint for tool `{}`, which is not declared under `tools:`",
                    e.key
                ),
                undeclared_help(&e.key, declared),
            );
            continue;
        }
        if !allowed.contains(&e.key) {
            cx.err(
                e.key_pos,
                format!(
                    "constraint for tool `{}`, which {what} is not allowed to call",
                    e.key
                ),
                format!(
                    "add `{}` to allowed_tools, or remove this constraint",
                    e.key
                ),
            );
            continue;
        }
        let Some(tool) = tools.get(&e.key) else {
            continue;
        };
        let what = format!("the constraint on `{}`", e.key);
        if let Some(c) = cx.guarded(e.key_pos, &what, |cx| {
            constraint(cx, &e.key, tool, &e.value, e.key_pos)
        }) {
            constraints.insert(e.key.clone(), c);
        }
    }
    Some(Agent {
        keys: keys?,
        allowed_tools: allowed,
        constraints,
    })
}

fn undeclared_help(t: &str, declared: &BTreeSet<String>) -> String {
    match suggest(t, declared.iter().map(String::as_str)) {
        Some(s) => format!("did you mean `{s}`? declared tools: {}", list(declared)),
        None if declared.is_empty() => "declare the tool under `tools:` first".to_string(),
        None => format!("declare it under `tools:` or use one of {}", list(declared)),
    }
}

pub(crate) fn agent_key(cx: &mut Cx, node: &Node) -> Option<AgentKey> {
    if let Value::Scalar { text, .. } = &node.value {
        if let Some(h) = text.strip_prefix("sha256:") {
            let ok = h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                cx.err(node.pos, "`sha256:` must be followed by 64 hex digits", "write the SHA-256 of the key in hex, e.g. from `printf %s \"$KEY\" | sha256sum`");
                return None;
            }
            let mut out = [0u8; 32];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
            }
            return Some(AgentKey::Sha256(out));
        }
    }
    read::secret(cx, node).map(AgentKey::Secret)
}

/// Which constraint keys apply to which kind of tool.
fn applicable(kind: &ToolKind) -> &'static [&'static str] {
    match kind {
        ToolKind::GitReadFile(_) => &["repos", "max_file_size"],
        ToolKind::GitListFiles(_) | ToolKind::GitLog(_) => &["repos", "max_entries"],
        ToolKind::PostgresQuery(_) => &["max_rows", "timeout"],
        ToolKind::HttpRequest(_) => &["routes", "timeout"],
        ToolKind::AgentBash(_) => &["timeout", "max_output"],
        ToolKind::AgentRead(_) | ToolKind::AgentWrite(_) | ToolKind::AgentEdit(_) => &["max_bytes"],
        ToolKind::AgentGlob(_) => &["max_results"],
        ToolKind::AgentGrep(_) => &["max_output"],
    }
}

fn constraint(cx: &mut Cx, name: &str, tool: &Tool, node: &Node, at: Pos) -> Option<Constraint> {
    let what = format!("the constraint on `{name}`");
    let m = open(cx, node, at, &what, fields(&spec::CONSTRAINT), &|_| None)?;
    let keys = applicable(&tool.kind);
    let mut ok = true;
    if let Value::Map(entries) = &node.value {
        for e in entries
            .iter()
            .filter(|e| spec::CONSTRAINT.fields.iter().any(|f| f.name == e.key))
        {
            if !keys.contains(&e.key.as_str()) {
                ok = false;
                cx.err(
                    e.key_pos,
                    format!(
                        "`{}` does not apply to tool `{name}` (kind `{}`)",
                        e.key,
                        tool.kind.name()
                    ),
                    format!(
                        "constraints on `{}` tools take {}",
                        tool.kind.name(),
                        list(keys)
                    ),
                );
            }
        }
    }
    let mut c = Constraint::default();
    // Each check: the constraint's value may not exceed the tool's own.
    macro_rules! tighten {
        ($field:ident, $get:ident, $own:expr, $show:expr) => {
            if let Some(v) = m.$get(cx, stringify!($field)) {
                let own = $own;
                if v > own {
                    let pos = m.node(stringify!($field), |_| true).map_or(at, |n| n.pos);
                    cx.err(
                        pos,
                        format!(
                            "`{}: {}` loosens tool `{name}`'s own limit of {}",
                            stringify!($field),
                            $show(&v),
                            $show(&own)
                        ),
                        format!(
                            "a constraint may only tighten: use a value ≤ {}, or raise the tool's `{}`",
                            $show(&own),
                            stringify!($field)
                        ),
                    );
                    ok = false;
                }
                c.$field = Some(v);
            }
        };
    }
    let size = |v: &crate::values::ByteSize| v.to_string();
    let num = |v: &u32| v.to_string();
    let dur = |v: &std::time::Duration| humantime(*v);
    match &tool.kind {
        ToolKind::GitReadFile(g) | ToolKind::GitListFiles(g) | ToolKind::GitLog(g) => {
            tighten!(max_file_size, size, g.max_file_size, size);
            tighten!(max_entries, u32, g.max_entries, num);
            if let Some(n) = m.node("repos", |t| matches!(t, Ty::List(_))) {
                let mut repos = Vec::new();
                for item in read::seq(cx, n).unwrap_or_default() {
                    let Some(r) = read::string(cx, item) else {
                        ok = false;
                        continue;
                    };
                    if g.repos.contains_key(&r) {
                        repos.push(r);
                    } else {
                        ok = false;
                        let names = g.repos.keys().map(String::as_str);
                        let help = match suggest(&r, names.clone()) {
                            Some(s) => format!("did you mean `{s}`? `{name}` has {}", list(names)),
                            None => format!("`{name}` has {}", list(names)),
                        };
                        cx.err(
                            item.pos,
                            format!("repository `{r}` is not one of tool `{name}`'s repos"),
                            help,
                        );
                    }
                }
                c.repos = Some(repos);
            }
        }
        ToolKind::PostgresQuery(p) => {
            tighten!(max_rows, u32, p.max_rows, num);
            tighten!(timeout, duration, p.timeout, dur);
        }
        ToolKind::HttpRequest(h) => {
            tighten!(timeout, duration, h.timeout, dur);
            if let Some(n) = m.node("routes", |t| matches!(t, Ty::List(_))) {
                let mut routes = Vec::new();
                for item in read::seq(cx, n).unwrap_or_default() {
                    let Some(r) = read::string(cx, item) else {
                        ok = false;
                        continue;
                    };
                    let found = r.split_once(' ').and_then(|(method, path)| {
                        h.routes
                            .iter()
                            .find(|x| x.method == method && x.path == path.trim())
                    });
                    match found {
                        Some(route) => routes.push(route.clone()),
                        None => {
                            ok = false;
                            let all: Vec<String> = h
                                .routes
                                .iter()
                                .map(|x| format!("{} {}", x.method, x.path))
                                .collect();
                            cx.err(
                                item.pos,
                                format!("route `{r}` is not one of tool `{name}`'s routes"),
                                format!("write `METHOD /path` naming one of {}", list(&all)),
                            );
                        }
                    }
                }
                c.routes = Some(routes);
            }
        }
        ToolKind::AgentBash(b) => {
            tighten!(timeout, duration, b.timeout, dur);
            tighten!(max_output, size, b.max_output, size);
        }
        ToolKind::AgentRead(r) => tighten!(max_bytes, size, r.max_bytes, size),
        ToolKind::AgentWrite(w) => tighten!(max_bytes, size, w.max_bytes, size),
        ToolKind::AgentEdit(e) => tighten!(max_bytes, size, e.max_bytes, size),
        ToolKind::AgentGlob(g) => tighten!(max_results, u32, g.max_results, num),
        ToolKind::AgentGrep(g) => tighten!(max_output, size, g.max_output, size),
    }
    ok.then_some(c)
}

/// `90s`, `1500ms`, `2m`: the shortest exact spelling.
fn humantime(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    for (unit, per) in [("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= per && ms % per == 0 {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}
