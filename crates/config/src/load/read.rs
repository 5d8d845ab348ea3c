//! Reading typed values out of the node tree. Each reader reports its own
//! errors (with position and fix) and returns `None` on a bad value, so the
//! decoder carries on and collects every problem in one pass.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use super::diag::{list, suggest, Diagnostics, Pos};
use super::yaml::{Entry, Node, Value};
use crate::secret::{resolve_ref, Secret};
use crate::spec::{Field, Req, Ty};
use crate::values::{parse_duration, ByteSize, HostPattern, IpNet};

/// Decoding context: where errors go and how paths and secrets are handled.
pub(crate) struct Cx<'f> {
    pub file: &'f str,
    /// Directory relative paths in the file are resolved against.
    pub base: PathBuf,
    pub check_secrets: bool,
    pub diags: Diagnostics,
    /// Keys that were valid but that no decoder read (see `Map`'s `Drop`).
    pub unread: Rc<RefCell<Vec<(Pos, String)>>>,
}

impl Cx<'_> {
    /// Runs a decoder that may fail; a failure it did not report becomes an
    /// error here, so nothing in the file is ever dropped silently.
    pub fn guarded<T>(
        &mut self,
        pos: Pos,
        what: &str,
        f: impl FnOnce(&mut Self) -> Option<T>,
    ) -> Option<T> {
        let before = self.diags.len();
        let out = f(self);
        if out.is_none() && self.diags.len() == before {
            self.err(
                pos,
                format!("{what} could not be read"),
                "this is a bug in airlock's config loader; please report it with the file",
            );
        }
        out
    }

    pub fn err(&mut self, pos: Pos, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(self.file, pos, message.into(), help.into());
    }

    fn wrong_type(&mut self, node: &Node, expected: &str) {
        let found = node.describe();
        self.err(
            node.pos,
            format!("expected {expected}, found {found}"),
            format!("write {expected} here"),
        );
    }
}

/// A mapping with known keys, checked against its spec when opened.
pub(crate) struct Map<'n> {
    pub at: Pos,
    fields: Vec<&'static Field>,
    entries: Vec<&'n Entry>,
    /// Keys a decoder asked for; a key present in the file but never asked
    /// for would be silently ignored, so `Drop` reports it.
    read: RefCell<Vec<&'static str>>,
    unread: Rc<RefCell<Vec<(Pos, String)>>>,
}

impl Drop for Map<'_> {
    fn drop(&mut self) {
        let read = self.read.borrow();
        let mut unread = self.unread.borrow_mut();
        for e in &self.entries {
            if !read.contains(&e.key.as_str()) {
                unread.push((e.key_pos, e.key.clone()));
            }
        }
    }
}

/// Opens `node` as a mapping with `fields`. `what` names it in messages
/// (`sandbox.limits`, "tool `x`"); `at` is where missing keys are reported.
/// Null is an empty mapping. Unknown keys are reported with a suggestion;
/// `elsewhere` may say where an unknown key does belong.
pub(crate) fn open<'n>(
    cx: &mut Cx,
    node: &'n Node,
    at: Pos,
    what: &str,
    fields: Vec<&'static Field>,
    elsewhere: &dyn Fn(&str) -> Option<String>,
) -> Option<Map<'n>> {
    let entries: &[Entry] = match &node.value {
        Value::Map(e) => e,
        _ if node.is_null() => &[],
        _ => {
            let found = node.describe();
            cx.err(
                node.pos,
                format!("{what} must be a mapping of keys, found {found}"),
                format!("valid keys: {}", list(fields.iter().map(|f| f.name))),
            );
            return None;
        }
    };
    let mut known = Vec::new();
    for e in entries {
        if fields.iter().any(|f| f.name == e.key) {
            known.push(e);
            continue;
        }
        let valid = list(fields.iter().map(|f| f.name));
        let help = match (
            suggest(&e.key, fields.iter().map(|f| f.name)),
            elsewhere(&e.key),
        ) {
            (Some(s), _) => format!("did you mean `{s}`? valid keys in {what}: {valid}"),
            (None, Some(note)) => format!("{note}; valid keys in {what}: {valid}"),
            (None, None) if e.key == "<<" => format!(
                "YAML merge keys are not supported; write the keys out. Valid keys in {what}: {valid}"
            ),
            (None, None) => format!("valid keys in {what}: {valid}"),
        };
        cx.err(
            e.key_pos,
            format!("unknown key `{}` in {what}", e.key),
            help,
        );
    }
    for f in &fields {
        if f.req == Req::Required && !entries.iter().any(|e| e.key == f.name) {
            cx.err(
                at,
                format!("{what} is missing `{}`", f.name),
                format!("add `{}:` ({}): {}", f.name, f.ty.describe(), f.doc),
            );
        }
    }
    Some(Map {
        at,
        fields,
        entries: known,
        read: RefCell::new(Vec::new()),
        unread: cx.unread.clone(),
    })
}

impl<'n> Map<'n> {
    /// The entry for `key`. `key` must be one of the spec's fields of type
    /// `ty`: the decoder and the spec are checked against each other here.
    pub fn entry(&self, key: &str, ty: fn(&Ty) -> bool) -> Option<&'n Entry> {
        let field = self.fields.iter().find(|f| f.name == key);
        debug_assert!(
            field.is_some_and(|f| ty(&f.ty)),
            "decoder reads `{key}` with a type the spec does not give it"
        );
        if let Some(f) = field {
            self.read.borrow_mut().push(f.name);
        }
        self.entries.iter().copied().find(|e| e.key == key)
    }

    pub fn node(&self, key: &str, ty: fn(&Ty) -> bool) -> Option<&'n Node> {
        self.entry(key, ty).map(|e| &e.value)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }

    pub fn string(&self, cx: &mut Cx, key: &str) -> Option<String> {
        self.node(key, |t| matches!(t, Ty::Str))
            .and_then(|n| string(cx, n))
    }
    pub fn int(&self, cx: &mut Cx, key: &str) -> Option<u64> {
        let f = self.fields.iter().find(|f| f.name == key)?;
        let Ty::Int { min, max } = f.ty else {
            debug_assert!(false, "`{key}` is not an Int in the spec");
            return None;
        };
        self.node(key, |_| true).and_then(|n| int(cx, n, min, max))
    }
    pub fn u32(&self, cx: &mut Cx, key: &str) -> Option<u32> {
        self.int(cx, key)
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
    }
    pub fn boolean(&self, cx: &mut Cx, key: &str) -> Option<bool> {
        self.node(key, |t| matches!(t, Ty::Bool))
            .and_then(|n| boolean(cx, n))
    }
    pub fn size(&self, cx: &mut Cx, key: &str) -> Option<ByteSize> {
        self.node(key, |t| matches!(t, Ty::Size))
            .and_then(|n| size(cx, n))
    }
    pub fn duration(&self, cx: &mut Cx, key: &str) -> Option<Duration> {
        self.node(key, |t| matches!(t, Ty::Duration))
            .and_then(|n| duration(cx, n))
    }
    pub fn host(&self, cx: &mut Cx, key: &str) -> Option<HostPattern> {
        self.node(key, |t| matches!(t, Ty::Host))
            .and_then(|n| host(cx, n))
    }
    pub fn url(&self, cx: &mut Cx, key: &str) -> Option<url::Url> {
        self.node(key, |t| matches!(t, Ty::Url))
            .and_then(|n| url(cx, n))
    }
    pub fn secret(&self, cx: &mut Cx, key: &str) -> Option<Secret> {
        self.node(key, |t| matches!(t, Ty::Secret))
            .and_then(|n| secret(cx, n))
    }
    pub fn path(&self, cx: &mut Cx, key: &str) -> Option<PathBuf> {
        self.node(key, |t| matches!(t, Ty::Path))
            .and_then(|n| path(cx, n))
    }
    pub fn addr(&self, cx: &mut Cx, key: &str) -> Option<String> {
        self.node(key, |t| matches!(t, Ty::Addr))
            .and_then(|n| addr(cx, n))
    }
    /// One of the spec's enum values.
    pub fn choice(&self, cx: &mut Cx, key: &str) -> Option<&'static str> {
        let f = self.fields.iter().find(|f| f.name == key)?;
        let Ty::Enum(values) = f.ty else {
            debug_assert!(false, "`{key}` is not an Enum in the spec");
            return None;
        };
        self.node(key, |_| true).and_then(|n| choice(cx, n, values))
    }
    /// A list whose items are read by `item`: empty when absent, `None`
    /// when it or an item is bad (and reported).
    pub fn list<T>(
        &self,
        cx: &mut Cx,
        key: &str,
        mut item: impl FnMut(&mut Cx, &'n Node) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Some(node) = self.node(key, |t| matches!(t, Ty::List(_))) else {
            return Some(Vec::new());
        };
        let items = seq(cx, node)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for n in items {
            match item(cx, n) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
    /// The entries of a free-form mapping (`tools:`, `repos:`).
    pub fn map(&self, cx: &mut Cx, key: &str) -> Option<&'n [Entry]> {
        let node = self.node(key, |t| matches!(t, Ty::Map(_)))?;
        entries(cx, node)
    }
}

pub(crate) fn scalar<'n>(cx: &mut Cx, node: &'n Node, expected: &str) -> Option<(&'n str, bool)> {
    match &node.value {
        Value::Scalar { text, plain } if !node.is_null() => Some((text, *plain)),
        _ => {
            cx.wrong_type(node, expected);
            None
        }
    }
}

pub(crate) fn string(cx: &mut Cx, node: &Node) -> Option<String> {
    scalar(cx, node, "a string").map(|(s, _)| s.to_string())
}

/// A string that names something (no empty names, no surrounding spaces).
pub(crate) fn name(cx: &mut Cx, node: &Node) -> Option<String> {
    let s = string(cx, node)?;
    if s.trim().is_empty() {
        cx.err(
            node.pos,
            "an empty value",
            "write a value here, or remove the entry",
        );
        return None;
    }
    if s.trim() != s {
        cx.err(
            node.pos,
            format!("`{s}` has leading or trailing spaces"),
            "remove the spaces (quote the value if it must contain them inside)",
        );
        return None;
    }
    Some(s)
}

pub(crate) fn int(cx: &mut Cx, node: &Node, min: u64, max: u64) -> Option<u64> {
    let expected = Ty::Int { min, max }.describe();
    let (text, plain) = scalar(cx, node, &expected)?;
    let value = if plain {
        text.parse::<u64>().ok()
    } else {
        None
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Some(v),
        Some(v) => {
            let bound = if v < min {
                format!("less than {min}")
            } else {
                format!("more than {max}")
            };
            cx.err(
                node.pos,
                format!("`{v}` is {bound}"),
                format!("write {expected}"),
            );
            None
        }
        None => {
            cx.wrong_type(node, &expected);
            None
        }
    }
}

pub(crate) fn boolean(cx: &mut Cx, node: &Node) -> Option<bool> {
    match scalar(cx, node, "`true` or `false`")? {
        ("true" | "True" | "TRUE", true) => Some(true),
        ("false" | "False" | "FALSE", true) => Some(false),
        _ => {
            cx.wrong_type(node, "`true` or `false`");
            None
        }
    }
}

/// Text of a scalar for value types with their own syntax (sizes, hosts…).
fn text<'n>(cx: &mut Cx, node: &'n Node, ty: Ty) -> Option<&'n str> {
    scalar(cx, node, &ty.describe()).map(|(s, _)| s)
}

pub(crate) fn size(cx: &mut Cx, node: &Node) -> Option<ByteSize> {
    let s = text(cx, node, Ty::Size)?;
    s.parse::<ByteSize>()
        .map_err(|e| {
            let (msg, help) = split(&e);
            cx.err(
                node.pos,
                msg,
                help.unwrap_or("write a size like `256KiB`, `64MiB` or `2GiB`"),
            );
        })
        .ok()
}

pub(crate) fn duration(cx: &mut Cx, node: &Node) -> Option<Duration> {
    let s = text(cx, node, Ty::Duration)?;
    parse_duration(s)
        .map_err(|e| {
            let (msg, help) = split(&e);
            cx.err(
                node.pos,
                msg,
                help.unwrap_or("write a duration like `500ms`, `30s`, `5m` or `1h`"),
            );
        })
        .ok()
}

pub(crate) fn host(cx: &mut Cx, node: &Node) -> Option<HostPattern> {
    let s = text(cx, node, Ty::Host)?;
    s.parse::<HostPattern>()
        .map_err(|e| {
            let (msg, help) = split(&e);
            cx.err(
                node.pos,
                msg,
                help.unwrap_or(
                    "write a host like `api.github.com`, `*.pypi.org` or `registry.npmjs.org:8443`",
                ),
            );
        })
        .ok()
}

pub(crate) fn cidr(cx: &mut Cx, node: &Node) -> Option<IpNet> {
    let s = text(cx, node, Ty::Cidr)?;
    match s.parse::<IpNet>() {
        Ok(net) if net.trunc() == net => Some(net),
        Ok(net) => {
            cx.err(
                node.pos,
                format!("`{s}` has host bits set after the prefix"),
                format!("write the network address, `{}`", net.trunc()),
            );
            None
        }
        Err(_) => {
            let help = if s.parse::<std::net::IpAddr>().is_ok() {
                format!(
                    "add a prefix length, like `{s}/32` for one IPv4 address or `/128` for IPv6"
                )
            } else {
                "write a CIDR like `10.20.0.0/16` or `fd00::/8`".to_string()
            };
            cx.err(node.pos, format!("`{s}` is not a CIDR"), help);
            None
        }
    }
}

pub(crate) fn url(cx: &mut Cx, node: &Node) -> Option<url::Url> {
    let s = text(cx, node, Ty::Url)?;
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
        Ok(u) => {
            let msg = if matches!(u.scheme(), "http" | "https") {
                format!("`{s}` has no host")
            } else {
                format!("`{s}` is a `{}:` URL, not http or https", u.scheme())
            };
            cx.err(
                node.pos,
                msg,
                "write an `http://` or `https://` URL with a host",
            );
            None
        }
        Err(e) => {
            cx.err(
                node.pos,
                format!("`{s}` is not a URL ({e})"),
                "write a full URL like `https://api.example.com/v1`",
            );
            None
        }
    }
}

/// A secret template with at least one reference. The text of a secret is
/// never echoed: a value in clear would otherwise land in the error output.
pub(crate) fn secret(cx: &mut Cx, node: &Node) -> Option<Secret> {
    let text = match &node.value {
        Value::Scalar { text, .. } if !node.is_null() => text,
        Value::Seq(_) | Value::Map(_) | Value::Scalar { .. } => {
            let found = if node.is_null() {
                "nothing (null)"
            } else if matches!(node.value, Value::Seq(_)) {
                "a list"
            } else {
                "a mapping"
            };
            cx.err(
                node.pos,
                format!("expected a secret reference, found {found}"),
                "write a reference like `${env:NAME}` or `${file:/run/secrets/name}`",
            );
            return None;
        }
    };
    let s = match Secret::parse(text) {
        Ok(s) => s,
        Err(e) => {
            let e = e.to_string();
            let (msg, help) = split(&e);
            cx.err(
                node.pos,
                format!("bad secret reference: {msg}"),
                help.unwrap_or("write `${env:NAME}` or `${file:/absolute/path}`"),
            );
            return None;
        }
    };
    if !s.has_refs() {
        cx.err(
            node.pos,
            "a secret is written in clear in the file (its value is not shown here)",
            "move the value to an environment variable or a file and write `${env:NAME}` or `${file:/path}`; the config holds references only",
        );
        return None;
    }
    if cx.check_secrets {
        for r in s.refs() {
            if let Err(e) = resolve_ref(&r) {
                let e = e.to_string();
                let (msg, _) = split(&e);
                let fix = match r {
                    crate::secret::SecretRef::Env(_) => {
                        "export the variable before starting airlock"
                    }
                    crate::secret::SecretRef::File(_) => {
                        "create the file (readable by airlock) before starting airlock"
                    }
                };
                cx.err(
                    node.pos,
                    format!("cannot resolve secret {r}: {msg}"),
                    format!("{fix}, or check with `--no-secrets` to check the syntax only"),
                );
            }
        }
    }
    Some(s)
}

pub(crate) fn path(cx: &mut Cx, node: &Node) -> Option<PathBuf> {
    let s = text(cx, node, Ty::Path)?;
    if s.is_empty() {
        cx.err(node.pos, "an empty path", "write a path");
        return None;
    }
    if s.starts_with('~') {
        cx.err(
            node.pos,
            format!("`{s}`: `~` is not expanded in this path"),
            "write the full path, or one relative to the config file's directory",
        );
        return None;
    }
    Some(cx.base.join(s))
}

pub(crate) fn addr(cx: &mut Cx, node: &Node) -> Option<String> {
    let s = text(cx, node, Ty::Addr)?;
    let ok = s
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if ok {
        Some(s.to_string())
    } else {
        cx.err(
            node.pos,
            format!("`{s}` is not an address `host:port`"),
            "write a host and port, like `0.0.0.0:8443` or `gateway.example.com:7443` (IPv6 as `[::]:8443`)",
        );
        None
    }
}

pub(crate) fn choice(
    cx: &mut Cx,
    node: &Node,
    values: &'static [&'static str],
) -> Option<&'static str> {
    let s = text(cx, node, Ty::Enum(values))?;
    if let Some(v) = values.iter().find(|v| **v == s) {
        return Some(v);
    }
    let help = match suggest(s, values.iter().copied()) {
        Some(v) => format!("did you mean `{v}`? write one of {}", list(values)),
        None => format!("write one of {}", list(values)),
    };
    cx.err(node.pos, format!("`{s}` is not a valid value here"), help);
    None
}

pub(crate) fn seq<'n>(cx: &mut Cx, node: &'n Node) -> Option<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ if node.is_null() => Some(&[]),
        _ => {
            cx.wrong_type(node, "a list (`[a, b]` or one `- item` per line)");
            None
        }
    }
}

pub(crate) fn entries<'n>(cx: &mut Cx, node: &'n Node) -> Option<&'n [Entry]> {
    match &node.value {
        Value::Map(e) => Some(e),
        _ if node.is_null() => Some(&[]),
        _ => {
            cx.wrong_type(node, "a mapping of names to values");
            None
        }
    }
}

/// Value-type errors read "what; how to fix": split them into message and help.
fn split(e: &str) -> (String, Option<&str>) {
    match e.split_once("; ") {
        Some((m, h)) => (m.to_string(), Some(h)),
        None => (e.to_string(), None),
    }
}
