//! `git.read_file`, `git.list_files`, `git.log`: read-only access to
//! configured repositories (bare or working) through gix. Everything is read
//! from the object database — never from a working tree on disk — so a
//! symlink in the tree is data to report, not a path to follow, and nothing
//! outside the repository is reachable: `guard` refuses git directories
//! that redirect elsewhere and confines each call's thread to its own.

mod guard;
mod names;
mod ops;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use airlock_config::GitRepos;
use serde_json::{json, Value};

use crate::args::{clip, Args};
use crate::{CallContext, Limits, ToolError, ToolImpl, ToolOutput};

pub use names::{canonical_path, canonical_ref, MAX_PATH, MAX_REF};

/// Which of the three git kinds a [`GitTool`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitOp {
    ReadFile,
    ListFiles,
    Log,
}

/// One declared git tool.
pub struct GitTool {
    name: String,
    op: GitOp,
    repos: BTreeMap<String, PathBuf>,
    cache: ops::RepoCache,
    workers: worker::Workers,
}

impl GitTool {
    pub fn new(name: &str, op: GitOp, config: &GitRepos) -> GitTool {
        GitTool {
            name: name.to_string(),
            op,
            repos: config.repos.clone(),
            cache: Default::default(),
            workers: Default::default(),
        }
    }

    fn known_args(&self) -> &'static [&'static str] {
        match self.op {
            GitOp::ReadFile => &["repo", "path", "ref"],
            GitOp::ListFiles => &["repo", "path", "ref", "recursive"],
            GitOp::Log => &["repo", "path", "ref", "max_entries"],
        }
    }
}

/// Checks the repo name against what this agent may use; the error lists
/// the valid names so the model can correct itself.
fn check_repo(name: &str, limits: &Limits) -> Result<String, ToolError> {
    if limits.repos.iter().any(|r| r == name) {
        Ok(name.to_string())
    } else {
        Err(ToolError::invalid(format!(
            "unknown repository `{}`; valid repositories: {}",
            clip(name, 80),
            if limits.repos.is_empty() {
                "(none)".to_string()
            } else {
                limits.repos.join(", ")
            }
        )))
    }
}

#[async_trait::async_trait]
impl ToolImpl for GitTool {
    fn input_schema(&self, limits: &Limits) -> Value {
        let mut props = serde_json::Map::new();
        props.insert(
            "repo".into(),
            json!({"type": "string", "enum": limits.repos, "description": "Repository name"}),
        );
        let path_doc = match self.op {
            GitOp::ReadFile => "File path relative to the repository root, like `src/main.rs`",
            GitOp::ListFiles => {
                "Directory relative to the repository root; empty or absent for the root"
            }
            GitOp::Log => "Only commits that change this file or directory (optional)",
        };
        props.insert(
            "path".into(),
            json!({"type": "string", "maxLength": MAX_PATH, "description": path_doc}),
        );
        props.insert(
            "ref".into(),
            json!({"type": "string", "maxLength": MAX_REF, "pattern": "^[A-Za-z0-9_][A-Za-z0-9._/-]*$",
                   "description": "Branch, tag or commit id; default HEAD"}),
        );
        match self.op {
            GitOp::ListFiles => {
                props.insert(
                    "recursive".into(),
                    json!({"type": "boolean", "default": false,
                           "description": format!("List the whole subtree (at most {} entries)", limits.max_entries)}),
                );
            }
            GitOp::Log => {
                props.insert(
                    "max_entries".into(),
                    json!({"type": "integer", "minimum": 1, "maximum": limits.max_entries.max(1),
                           "description": "Most commits to return"}),
                );
            }
            GitOp::ReadFile => {}
        }
        let required: Vec<&str> = match self.op {
            GitOp::ReadFile => vec!["repo", "path"],
            _ => vec!["repo"],
        };
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        })
    }

    fn canonicalize(&self, args: &Value, limits: &Limits) -> Result<Value, ToolError> {
        let a = Args::new(args, self.known_args())?;
        let repo = check_repo(a.str("repo", 256)?, limits)?;
        let path = match self.op {
            GitOp::ReadFile => Some(canonical_path(a.str("path", MAX_PATH)?, false)?),
            _ => match a.opt_str("path", MAX_PATH)? {
                Some(p) => Some(canonical_path(p, true)?),
                None => None,
            },
        };
        let reference = canonical_ref(a.opt_str("ref", MAX_REF)?.unwrap_or("HEAD"))?;
        let mut out = serde_json::Map::new();
        out.insert("repo".into(), repo.into());
        if let Some(p) = path.filter(|p| !(p.is_empty() && self.op == GitOp::Log)) {
            out.insert("path".into(), p.into());
        }
        out.insert("ref".into(), reference.into());
        match self.op {
            GitOp::ListFiles => {
                let recursive = match a.get("recursive") {
                    None => false,
                    Some(Value::Bool(b)) => *b,
                    Some(_) => return Err(ToolError::invalid("`recursive` must be true or false")),
                };
                out.insert("recursive".into(), recursive.into());
            }
            GitOp::Log => {
                let n = a
                    .opt_u32("max_entries", limits.max_entries.max(1))?
                    .unwrap_or(limits.max_entries);
                out.insert("max_entries".into(), n.into());
            }
            GitOp::ReadFile => {}
        }
        Ok(Value::Object(out))
    }

    async fn call(
        &self,
        ctx: &CallContext,
        args: Value,
        limits: &Limits,
    ) -> Result<ToolOutput, ToolError> {
        let args = self.canonicalize(&args, limits)?;
        let repo_name = args["repo"].as_str().unwrap_or_default().to_string();
        let Some(repo_path) = self.repos.get(&repo_name).cloned() else {
            return Err(ToolError::invalid(format!(
                "unknown repository `{repo_name}`"
            )));
        };
        let req = ops::Request {
            repo_name,
            repo_path,
            path: args
                .get("path")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            reference: args["ref"].as_str().unwrap_or("HEAD").to_string(),
            recursive: args
                .get("recursive")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_entries: args
                .get("max_entries")
                .and_then(Value::as_u64)
                .map_or(limits.max_entries, |n| n as u32),
            max_file_size: limits.max_file_size,
            deadline: Instant::now() + limits.timeout,
            cancel: ctx.cancel.clone(),
            cache: self.cache.clone(),
        };
        self.workers
            .call(&self.name, self.op, req, limits.timeout, &ctx.cancel)
            .await
    }
}
