//! The six agent tools: schemas, argument checks, and the shell snippets
//! they run in the session's jail. File tools run in a subshell rooted at
//! the workdir, so a `cd` in bash does not change what a relative path in
//! `read` means.

use std::sync::Arc;
use std::time::Duration;

use airlock_config::{Constraint, ToolKind};
use serde_json::{json, Map, Value};

use super::shell::{b64, quote, unb64};
use super::Sessions;
use crate::tools::{ArgError, CallCtx, Output, Served};

/// File tools get this long (bash has its own timeout).
const FILE_OP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest path or pattern accepted.
const MAX_PATH: usize = 4096;
/// Longest bash command accepted.
const MAX_COMMAND: usize = 100 * 1024;

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Bash {
        timeout: Duration,
        max_output: usize,
    },
    Read {
        max_bytes: usize,
        max_line: usize,
    },
    Write {
        max_bytes: usize,
    },
    Edit {
        max_bytes: usize,
    },
    Glob {
        max_results: usize,
    },
    Grep {
        max_output: usize,
        max_line: usize,
    },
}

fn narrow<T: Ord + Copy>(own: T, c: Option<T>) -> T {
    c.map_or(own, |c| c.min(own))
}

impl Op {
    pub(crate) fn new(kind: &ToolKind, c: Option<&Constraint>) -> Option<Op> {
        let c = c.cloned().unwrap_or_default();
        let bytes = |own: airlock_config::ByteSize, c: Option<airlock_config::ByteSize>| {
            narrow(own, c).bytes() as usize
        };
        Some(match kind {
            ToolKind::AgentBash(b) => Op::Bash {
                timeout: narrow(b.timeout, c.timeout),
                max_output: bytes(b.max_output, c.max_output),
            },
            ToolKind::AgentRead(r) => Op::Read {
                max_bytes: bytes(r.max_bytes, c.max_bytes),
                max_line: 2000,
            },
            ToolKind::AgentWrite(w) => Op::Write {
                max_bytes: bytes(w.max_bytes, c.max_bytes),
            },
            ToolKind::AgentEdit(e) => Op::Edit {
                max_bytes: bytes(e.max_bytes, c.max_bytes),
            },
            ToolKind::AgentGlob(g) => Op::Glob {
                max_results: narrow(g.max_results, c.max_results) as usize,
            },
            ToolKind::AgentGrep(g) => Op::Grep {
                max_output: bytes(g.max_output, c.max_output),
                max_line: g.max_line as usize,
            },
            _ => return None,
        })
    }
}

pub(crate) struct AgentTool {
    pub(crate) op: Op,
    pub(crate) sessions: Arc<Sessions>,
}

/// Checked access to one arguments object.
struct Args<'a>(&'a Map<String, Value>);

impl<'a> Args<'a> {
    fn new(v: &'a Value, allowed: &[&str]) -> Result<Args<'a>, ArgError> {
        let o = v
            .as_object()
            .ok_or_else(|| ArgError::Invalid("arguments must be a JSON object".into()))?;
        if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(ArgError::Invalid(format!(
                "unknown argument `{k}`; allowed: {}",
                allowed.join(", ")
            )));
        }
        Ok(Args(o))
    }
    fn opt_str(&self, k: &str, max: usize) -> Result<Option<&'a str>, ArgError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                if s.len() > max {
                    return Err(ArgError::Invalid(format!(
                        "`{k}` is longer than {max} bytes"
                    )));
                }
                if s.contains('\0') {
                    return Err(ArgError::Invalid(format!("`{k}` contains a NUL byte")));
                }
                Ok(Some(s))
            }
            Some(_) => Err(ArgError::Invalid(format!("`{k}` must be a string"))),
        }
    }
    fn str(&self, k: &str, max: usize) -> Result<&'a str, ArgError> {
        self.opt_str(k, max)?
            .ok_or_else(|| ArgError::Invalid(format!("`{k}` is required")))
    }
    fn path(&self, k: &str) -> Result<Option<String>, ArgError> {
        let Some(p) = self.opt_str(k, MAX_PATH)? else {
            return Ok(None);
        };
        if p.is_empty() {
            return Err(ArgError::Invalid(format!("`{k}` is empty")));
        }
        Ok(Some(tidy_path(p)))
    }
    fn opt_u64(&self, k: &str, max: u64) -> Result<Option<u64>, ArgError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(ArgError::Invalid(format!(
                    "`{k}` must be an integer from 0 to {max}"
                ))),
            },
        }
    }
    fn opt_bool(&self, k: &str) -> Result<Option<bool>, ArgError> {
        match self.0.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ArgError::Invalid(format!("`{k}` must be true or false"))),
        }
    }
}

/// Lexical tidying only (`//` and `/./`); `..` is left for the jail to
/// judge, since only it knows where links lead.
fn tidy_path(p: &str) -> String {
    let abs = p.starts_with('/');
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let joined = parts.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn insert(out: &mut Map<String, Value>, k: &str, v: Option<Value>) {
    if let Some(v) = v {
        out.insert(k.into(), v);
    }
}

/// Text output, `is_error` for a failing status.
fn text_out(text: String, is_error: bool) -> Output {
    Output {
        text,
        structured: None,
        is_error,
    }
}

/// The post-run scan's findings, a line each, to put first in a result
/// (the audit record's summary keeps the start of it).
fn findings_text(ran: &super::shell::Ran) -> String {
    ran.findings
        .iter()
        .map(|f| {
            format!(
                "[airlock: {} {} (a protected file, or setuid/setgid bits, the jail may not create)]\n",
                f.path.display(),
                f.action
            )
        })
        .collect()
}

impl AgentTool {
    async fn exec(
        &self,
        ctx: &CallCtx,
        script: String,
        timeout: Duration,
        cap: usize,
    ) -> Result<(super::shell::Ran, bool), String> {
        // File tools are short and their raw output is encoded: only bash
        // reports progress.
        let progress = match self.op {
            Op::Bash { .. } => ctx.progress.as_ref(),
            _ => None,
        };
        // The post-run scan walks the writable paths: after the tools that
        // write. What a background process plants meanwhile is found by
        // the next of those, or when the session ends.
        let scan = matches!(
            self.op,
            Op::Bash { .. } | Op::Write { .. } | Op::Edit { .. }
        );
        self.sessions
            .exec(ctx, script, timeout, cap, progress, scan)
            .await
    }

    fn workdir(&self) -> String {
        quote(&self.sessions.opts.workdir.to_string_lossy())
    }

    /// Reads a whole file (at most `max` bytes) through the jail.
    async fn slurp(
        &self,
        ctx: &CallCtx,
        path: &str,
        max: usize,
    ) -> Result<Result<Vec<u8>, String>, String> {
        let script = format!(
            "( cd -- {wd} || exit 9; p={p}; if [ -d \"$p\" ]; then echo 'is a directory'; exit 3; fi; \
             if [ ! -e \"$p\" ]; then echo 'no such file'; exit 2; fi; \
             s=$(stat -L -c %s -- \"$p\") || exit 4; if [ \"$s\" -gt {max} ]; then echo \"file is $s bytes, over the {max}-byte limit\"; exit 5; fi; \
             base64 -w0 -- \"$p\" || exit 4 )",
            wd = self.workdir(),
            p = quote(path),
        );
        // Reading plants nothing: no scan (an edit scans after its write).
        let (ran, _) = self
            .sessions
            .exec(
                ctx,
                script,
                FILE_OP_TIMEOUT,
                max * 4 / 3 + 1024,
                None,
                false,
            )
            .await?;
        let out = String::from_utf8_lossy(&ran.output).to_string();
        if ran.status != 0 {
            return Ok(Err(format!("{path}: {}", out.trim())));
        }
        Ok(unb64(out.trim()).ok_or_else(|| format!("{path}: could not read the file")))
    }
}

#[async_trait::async_trait]
impl Served for AgentTool {
    fn input_schema(&self) -> Value {
        let path = |d: &str| json!({"type": "string", "minLength": 1, "maxLength": MAX_PATH, "description": d});
        match &self.op {
            Op::Bash {
                timeout,
                max_output,
            } => json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "minLength": 1, "maxLength": MAX_COMMAND,
                        "description": format!("Command for the session's persistent bash (cwd and variables persist). Output over {max_output} bytes is cut.")},
                    "timeout": {"type": "integer", "minimum": 1, "maximum": timeout.as_secs(),
                        "description": format!("Seconds before the command is killed (default and maximum {}).", timeout.as_secs())}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
            Op::Read { max_bytes, .. } => json!({
                "type": "object",
                "properties": {
                    "file_path": path("File to read; relative paths are relative to the workdir."),
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Most lines to return."}
                },
                "required": ["file_path"],
                "additionalProperties": false,
                "description": format!("Files over {max_bytes} bytes are refused.")
            }),
            Op::Write { max_bytes } => json!({
                "type": "object",
                "properties": {
                    "file_path": path("File to create or replace."),
                    "content": {"type": "string", "maxLength": max_bytes, "description": "The whole new content."}
                },
                "required": ["file_path", "content"],
                "additionalProperties": false
            }),
            Op::Edit { max_bytes } => json!({
                "type": "object",
                "properties": {
                    "file_path": path("File to edit."),
                    "old_string": {"type": "string", "minLength": 1, "maxLength": max_bytes, "description": "Exact text to replace; must occur exactly once unless replace_all."},
                    "new_string": {"type": "string", "maxLength": max_bytes},
                    "replace_all": {"type": "boolean", "default": false}
                },
                "required": ["file_path", "old_string", "new_string"],
                "additionalProperties": false
            }),
            Op::Glob { max_results } => json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "minLength": 1, "maxLength": MAX_PATH, "description": format!("bash glob with ** (globstar), e.g. src/**/*.rs; at most {max_results} results.")},
                    "path": path("Directory to search from (default: the workdir).")
                },
                "required": ["pattern"],
                "additionalProperties": false
            }),
            Op::Grep {
                max_output,
                max_line,
            } => json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "minLength": 1, "maxLength": MAX_PATH, "description": "Extended regular expression (grep -E)."},
                    "path": path("File or directory to search (default: the workdir)."),
                    "glob": {"type": "string", "maxLength": 256, "description": "Only files whose name matches, e.g. *.rs."},
                    "case_insensitive": {"type": "boolean", "default": false}
                },
                "required": ["pattern"],
                "additionalProperties": false,
                "description": format!("Output is capped at {max_output} bytes and lines at {max_line} characters.")
            }),
        }
    }

    fn canonicalize(&self, args: &Value) -> Result<Value, ArgError> {
        let mut out = Map::new();
        match &self.op {
            Op::Bash { timeout, .. } => {
                let a = Args::new(args, &["command", "timeout"])?;
                let cmd = a.str("command", MAX_COMMAND)?;
                if cmd.trim().is_empty() {
                    return Err(ArgError::Invalid("`command` is empty".into()));
                }
                out.insert("command".into(), cmd.into());
                if let Some(t) = a.opt_u64("timeout", timeout.as_secs())? {
                    if t == 0 {
                        return Err(ArgError::Invalid("`timeout` must be at least 1".into()));
                    }
                    out.insert("timeout".into(), t.into());
                }
            }
            Op::Read { .. } => {
                let a = Args::new(args, &["file_path", "offset", "limit"])?;
                insert(&mut out, "file_path", a.path("file_path")?.map(Value::from));
                if !out.contains_key("file_path") {
                    return Err(ArgError::Invalid("`file_path` is required".into()));
                }
                insert(
                    &mut out,
                    "offset",
                    a.opt_u64("offset", u32::MAX as u64)?.map(Value::from),
                );
                insert(
                    &mut out,
                    "limit",
                    a.opt_u64("limit", 100_000)?.map(Value::from),
                );
            }
            Op::Write { max_bytes } => {
                let a = Args::new(args, &["file_path", "content"])?;
                let p = a
                    .path("file_path")?
                    .ok_or_else(|| ArgError::Invalid("`file_path` is required".into()))?;
                let content =
                    a.0.get("content").and_then(Value::as_str).ok_or_else(|| {
                        ArgError::Invalid("`content` (string) is required".into())
                    })?;
                if content.len() > *max_bytes {
                    return Err(ArgError::Invalid(format!(
                        "`content` is {} bytes, over the {max_bytes}-byte limit",
                        content.len()
                    )));
                }
                out.insert("file_path".into(), p.into());
                out.insert("content".into(), content.into());
            }
            Op::Edit { max_bytes } => {
                let a = Args::new(
                    args,
                    &["file_path", "old_string", "new_string", "replace_all"],
                )?;
                let p = a
                    .path("file_path")?
                    .ok_or_else(|| ArgError::Invalid("`file_path` is required".into()))?;
                let old = a
                    .0
                    .get("old_string")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ArgError::Invalid("`old_string` (string) is required".into()))?;
                let new = a
                    .0
                    .get("new_string")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ArgError::Invalid("`new_string` (string) is required".into()))?;
                if old.is_empty() {
                    return Err(ArgError::Invalid("`old_string` is empty".into()));
                }
                if old == new {
                    return Err(ArgError::Invalid(
                        "`old_string` and `new_string` are the same".into(),
                    ));
                }
                if old.len() > *max_bytes || new.len() > *max_bytes {
                    return Err(ArgError::Invalid(format!(
                        "strings over the {max_bytes}-byte limit"
                    )));
                }
                out.insert("file_path".into(), p.into());
                out.insert("old_string".into(), old.into());
                out.insert("new_string".into(), new.into());
                out.insert(
                    "replace_all".into(),
                    a.opt_bool("replace_all")?.unwrap_or(false).into(),
                );
            }
            Op::Glob { .. } => {
                let a = Args::new(args, &["pattern", "path"])?;
                out.insert("pattern".into(), a.str("pattern", MAX_PATH)?.into());
                out.insert(
                    "path".into(),
                    a.path("path")?.unwrap_or_else(|| ".".into()).into(),
                );
            }
            Op::Grep { .. } => {
                let a = Args::new(args, &["pattern", "path", "glob", "case_insensitive"])?;
                out.insert("pattern".into(), a.str("pattern", MAX_PATH)?.into());
                out.insert(
                    "path".into(),
                    a.path("path")?.unwrap_or_else(|| ".".into()).into(),
                );
                insert(&mut out, "glob", a.opt_str("glob", 256)?.map(Value::from));
                out.insert(
                    "case_insensitive".into(),
                    a.opt_bool("case_insensitive")?.unwrap_or(false).into(),
                );
            }
        }
        Ok(Value::Object(out))
    }

    async fn call(&self, ctx: &CallCtx, args: Value) -> Result<Output, String> {
        let s = |k: &str| {
            args.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match &self.op {
            Op::Bash {
                timeout,
                max_output,
            } => {
                let t = args
                    .get("timeout")
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs)
                    .unwrap_or(*timeout)
                    .min(*timeout);
                let (ran, started) = self.exec(ctx, s("command"), t, *max_output).await?;
                let mut text = String::new();
                if started {
                    text.push_str("[new shell: cwd is the workdir]\n");
                }
                // First, so the audit record's summary keeps it.
                text.push_str(&findings_text(&ran));
                text.push_str(&String::from_utf8_lossy(&ran.output));
                if ran.truncated {
                    text.push_str(&format!("\n[output cut at {max_output} bytes]"));
                }
                if ran.status != 0 {
                    text.push_str(&format!("\n[exit status {}]", ran.status));
                }
                Ok(Output {
                    text,
                    structured: Some(
                        json!({"exit_status": ran.status, "truncated": ran.truncated,
                               "planted": ran.findings}),
                    ),
                    is_error: ran.status != 0,
                })
            }
            Op::Read {
                max_bytes,
                max_line,
            } => {
                let path = s("file_path");
                let bytes = match self.slurp(ctx, &path, *max_bytes).await? {
                    Ok(b) => b,
                    Err(e) => return Ok(text_out(e, true)),
                };
                if bytes.iter().take(8192).any(|&b| b == 0) {
                    return Ok(text_out(
                        format!("{path}: binary file ({} bytes), not shown", bytes.len()),
                        true,
                    ));
                }
                let text = String::from_utf8_lossy(&bytes);
                let offset = args
                    .get("offset")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .max(1) as usize;
                let limit = args
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX) as usize;
                let mut out = String::new();
                for (i, line) in text.lines().enumerate().skip(offset - 1).take(limit) {
                    let cut: String = line.chars().take(*max_line).collect();
                    out.push_str(&format!("{:>6}\t{cut}\n", i + 1));
                }
                if out.is_empty() {
                    out = if text.is_empty() {
                        "(empty file)".into()
                    } else {
                        "(no lines in that range)".into()
                    };
                }
                Ok(text_out(out, false))
            }
            Op::Write { .. } => {
                let path = s("file_path");
                let content = s("content");
                let script = format!(
                    "( cd -- {wd} || exit 9; p={p}; d=$(dirname -- \"$p\"); mkdir -p -- \"$d\" && builtin printf %s {c} | base64 -d > \"$p\" )",
                    wd = self.workdir(),
                    p = quote(&path),
                    c = quote(&b64(content.as_bytes())),
                );
                let (ran, _) = self.exec(ctx, script, FILE_OP_TIMEOUT, 16 * 1024).await?;
                if ran.status != 0 {
                    return Ok(text_out(
                        format!(
                            "{path}: not written: {}",
                            String::from_utf8_lossy(&ran.output).trim()
                        ),
                        true,
                    ));
                }
                Ok(text_out(
                    format!(
                        "{}wrote {} bytes to {path}",
                        findings_text(&ran),
                        content.len()
                    ),
                    !ran.findings.is_empty(),
                ))
            }
            Op::Edit { max_bytes } => {
                let path = s("file_path");
                let bytes = match self.slurp(ctx, &path, *max_bytes).await? {
                    Ok(b) => b,
                    Err(e) => return Ok(text_out(e, true)),
                };
                let Ok(text) = String::from_utf8(bytes) else {
                    return Ok(text_out(
                        format!("{path}: not UTF-8 text; cannot edit"),
                        true,
                    ));
                };
                let (old, new) = (s("old_string"), s("new_string"));
                let all = args
                    .get("replace_all")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let n = text.matches(&old).count();
                if n == 0 {
                    return Ok(text_out(format!("{path}: `old_string` not found; read the file and copy the text exactly"), true));
                }
                if n > 1 && !all {
                    return Ok(text_out(format!("{path}: `old_string` occurs {n} times; add context to make it unique, or set replace_all"), true));
                }
                let edited = if all {
                    text.replace(&old, &new)
                } else {
                    text.replacen(&old, &new, 1)
                };
                if edited.len() > *max_bytes {
                    return Ok(text_out(
                        format!("{path}: the result would be over the {max_bytes}-byte limit"),
                        true,
                    ));
                }
                let script = format!(
                    "( cd -- {wd} || exit 9; builtin printf %s {c} | base64 -d > {p} )",
                    wd = self.workdir(),
                    p = quote(&path),
                    c = quote(&b64(edited.as_bytes())),
                );
                let (ran, _) = self.exec(ctx, script, FILE_OP_TIMEOUT, 16 * 1024).await?;
                if ran.status != 0 {
                    return Ok(text_out(
                        format!(
                            "{path}: not written: {}",
                            String::from_utf8_lossy(&ran.output).trim()
                        ),
                        true,
                    ));
                }
                Ok(text_out(
                    format!(
                        "{}{path}: replaced {} occurrence{}",
                        findings_text(&ran),
                        if all { n } else { 1 },
                        if all && n > 1 { "s" } else { "" }
                    ),
                    !ran.findings.is_empty(),
                ))
            }
            Op::Glob { max_results } => {
                let script = format!(
                    "( cd -- {wd} && cd -- {base} || exit 2; shopt -s globstar nullglob; IFS=; pat={pat}; for f in $pat; do builtin printf '%s\\0' \"$f\"; done | head -z -n {lim} )",
                    wd = self.workdir(),
                    base = quote(&s("path")),
                    pat = quote(&s("pattern")),
                    lim = max_results + 1,
                );
                let (ran, _) = self
                    .exec(
                        ctx,
                        script,
                        FILE_OP_TIMEOUT,
                        (max_results + 1) * (MAX_PATH + 1),
                    )
                    .await?;
                if ran.status != 0 {
                    return Ok(text_out(format!("{}: no such directory", s("path")), true));
                }
                let mut names: Vec<String> = ran
                    .output
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(|n| String::from_utf8_lossy(n).to_string())
                    .collect();
                let more = names.len() > *max_results;
                names.truncate(*max_results);
                let mut text = if names.is_empty() {
                    "(no matches)".to_string()
                } else {
                    names.join("\n")
                };
                if more {
                    text.push_str(&format!(
                        "\n[more than {max_results} matches; narrow the pattern]"
                    ));
                }
                Ok(text_out(text, false))
            }
            Op::Grep {
                max_output,
                max_line,
            } => {
                let mut flags = String::from("-rnI -E");
                if args
                    .get("case_insensitive")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    flags.push_str(" -i");
                }
                if let Some(g) = args.get("glob").and_then(Value::as_str) {
                    flags.push_str(&format!(" --include={}", quote(g)));
                }
                let script = format!(
                    "( cd -- {wd} || exit 9; grep {flags} -e {pat} -- {p} 2>&1 )",
                    wd = self.workdir(),
                    pat = quote(&s("pattern")),
                    p = quote(&s("path")),
                );
                let (ran, _) = self.exec(ctx, script, FILE_OP_TIMEOUT, *max_output).await?;
                let raw = String::from_utf8_lossy(&ran.output);
                let mut text: String = raw
                    .lines()
                    .map(|l| {
                        if l.chars().count() > *max_line {
                            let cut: String = l.chars().take(*max_line).collect();
                            format!("{cut} [line cut]")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                match ran.status {
                    0 => {}
                    1 => text = "(no matches)".into(),
                    _ => return Ok(text_out(format!("grep failed: {}", text.trim()), true)),
                }
                if ran.truncated {
                    text.push_str(&format!(
                        "\n[output cut at {max_output} bytes; narrow the search]"
                    ));
                }
                Ok(text_out(text, false))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tidy_path;

    #[test]
    fn paths_are_tidied_lexically_only() {
        assert_eq!(tidy_path("a//b/./c"), "a/b/c");
        assert_eq!(tidy_path("./"), ".");
        assert_eq!(tidy_path("/etc//passwd"), "/etc/passwd");
        assert_eq!(tidy_path("../x"), "../x");
    }
}
