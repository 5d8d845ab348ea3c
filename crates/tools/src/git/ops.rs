//! The blocking gix work behind the three git kinds. Each runs on a
//! blocking thread and checks `stop()` in its loops so a timeout or a
//! cancellation ends it promptly.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gix::bstr::ByteSlice;
use gix::ObjectId;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::{guard, GitOp};
use crate::{ToolError, ToolOutput};

/// Bytes inspected to tell text from binary (as git does: a NUL in the
/// first 8000 bytes means binary).
const SNIFF: usize = 8000;
/// Commits `git.log` examines at most while filtering by path.
const MAX_WALK: usize = 100_000;

pub struct Request {
    pub repo_name: String,
    pub repo_path: PathBuf,
    /// Canonical path, `""` for the root.
    pub path: String,
    pub reference: String,
    pub recursive: bool,
    pub max_entries: u32,
    pub max_file_size: u64,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub cache: RepoCache,
}

impl Request {
    fn stop(&self) -> Result<(), ToolError> {
        if self.cancel.is_cancelled() {
            return Err(ToolError::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Err(ToolError::failed(
                "the repository operation took too long; narrow it (a path, fewer entries)",
            ));
        }
        Ok(())
    }
}

/// Opened repositories by configured name, shared by all calls of a tool.
/// gix re-reads refs and discovers new packs on its own, so a cached handle
/// sees pushes; a repository that fails to open is not cached.
/// Each handle is kept with the git directory's (device, inode) it was
/// opened from: a repository replaced at the same path is opened anew.
pub type RepoCache = Arc<Mutex<HashMap<String, ((u64, u64), gix::ThreadSafeRepository)>>>;

/// What the worker thread running calls is confined to: the git directory
/// (device, inode) of its first call, and whether Landlock holds it there.
#[derive(Default)]
pub struct Confinement {
    dir: Option<(u64, u64)>,
    landlock: bool,
}

pub enum Ran {
    Done(Result<ToolOutput, ToolError>),
    /// The thread is confined to another git directory than the request's.
    Stale,
}

/// The one way into a repository for every git kind, on a worker thread
/// (see `worker`): check the git directory, confine the thread to it (on
/// its first call), open it isolated, then do `op`.
pub fn run(op: GitOp, req: &Request, conf: &mut Confinement) -> Ran {
    let git = match guard::locate(&req.repo_name, &req.repo_path) {
        Ok(g) => g,
        Err(e) => return Ran::Done(Err(e)),
    };
    let id = git.id();
    match conf.dir {
        None => match guard::confine(&req.repo_name, &git) {
            Ok(on) => {
                *conf = Confinement {
                    dir: Some(id),
                    landlock: on,
                }
            }
            Err(e) => return Ran::Done(Err(e)),
        },
        Some(d) if d == id => {}
        Some(_) => return Ran::Stale,
    }
    Ran::Done(run_confined(op, req, &git, conf.landlock))
}

fn run_confined(
    op: GitOp,
    req: &Request,
    git: &guard::GitDir,
    landlock: bool,
) -> Result<ToolOutput, ToolError> {
    guard::check(&req.repo_name, git)?;
    if !landlock {
        // No Landlock: a handle opened earlier may have loaded whatever was
        // there then, so open afresh after checking the whole directory.
        guard::no_links_anywhere(&req.repo_name, git)?;
    }
    let repo = open(req, git, landlock)?;
    match op {
        GitOp::ReadFile => read_file(&repo, req),
        GitOp::ListFiles => list_files(&repo, req),
        GitOp::Log => log(&repo, req),
    }
}

fn open(req: &Request, git: &guard::GitDir, cached: bool) -> Result<gix::Repository, ToolError> {
    let id = git.id();
    if cached {
        if let Some(r) = req.cache.lock().ok().and_then(|c| {
            c.get(&req.repo_name)
                .filter(|(was, _)| *was == id)
                .map(|(_, r)| r.clone())
        }) {
            return Ok(r.to_thread_local());
        }
    }
    // Isolated: no system, global or user git config, no environment
    // overrides, no config includes; the checked git directory as is.
    let opts = gix::open::Options::isolated().open_path_as_is(true);
    let repo = gix::ThreadSafeRepository::open_opts(&git.path, opts).map_err(|e| {
        tracing::warn!(repo = %req.repo_name, path = %git.path.display(), error = %e, "cannot open repository");
        ToolError::failed(format!(
            "repository `{}` is not available right now; tell the operator",
            req.repo_name
        ))
    })?;
    if cached {
        if let Ok(mut c) = req.cache.lock() {
            c.insert(req.repo_name.clone(), (id, repo.clone()));
        }
    }
    Ok(repo.to_thread_local())
}

/// Resolves the (already validated) ref to a commit.
fn commit<'r>(repo: &'r gix::Repository, req: &Request) -> Result<gix::Commit<'r>, ToolError> {
    let not_found = || {
        ToolError::failed(format!(
            "ref `{}` does not exist in repository `{}`; give an existing branch, tag or commit id",
            req.reference, req.repo_name
        ))
    };
    let id = repo
        .rev_parse_single(req.reference.as_str())
        .map_err(|_| not_found())?;
    id.object()
        .map_err(|_| not_found())?
        .peel_to_commit()
        .map_err(|_| ToolError::failed(format!("ref `{}` does not name a commit", req.reference)))
}

fn internal(e: impl std::fmt::Display) -> ToolError {
    tracing::warn!(error = %e, "git read failed");
    ToolError::failed(
        "the repository could not be read (corrupt or changing); try again or tell the operator",
    )
}

fn kind_name(mode: gix::object::tree::EntryMode) -> &'static str {
    if mode.is_tree() {
        "dir"
    } else if mode.is_link() {
        "symlink"
    } else if mode.is_commit() {
        "submodule"
    } else {
        "file"
    }
}

fn read_file(repo: &gix::Repository, req: &Request) -> Result<ToolOutput, ToolError> {
    let commit = commit(repo, req)?;
    let tree = commit.tree().map_err(internal)?;
    let entry = tree
        .lookup_entry(req.path.split('/'))
        .map_err(internal)?
        .ok_or_else(|| {
            ToolError::failed(format!(
                "`{}` does not exist at `{}` in repository `{}`; list files with a git.list_files tool",
                req.path, req.reference, req.repo_name
            ))
        })?;
    let mode = entry.mode();
    let commit_id = commit.id().to_string();
    let base =
        json!({"repo": req.repo_name, "path": req.path, "ref": req.reference, "commit": commit_id});
    let with = |extra: Value| {
        let mut v = base.clone();
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        v
    };
    if mode.is_tree() {
        return Err(ToolError::failed(format!(
            "`{}` is a directory; list it with a git.list_files tool",
            req.path
        )));
    }
    if mode.is_commit() {
        let v = with(
            json!({"type": "submodule", "commit_of_submodule": entry.object_id().to_string()}),
        );
        return Ok(ToolOutput {
            text: format!(
                "`{}` is a submodule at commit {}",
                req.path,
                entry.object_id()
            ),
            structured: Some(v),
            is_error: false,
        });
    }
    let header = repo.find_header(entry.object_id()).map_err(internal)?;
    let size = header.size();
    if mode.is_link() {
        // The target is the blob's content; report it, never resolve it.
        let obj = entry.object().map_err(internal)?;
        let target = String::from_utf8_lossy(&obj.data).into_owned();
        let v = with(json!({"type": "symlink", "target": target}));
        return Ok(ToolOutput {
            text: format!(
                "`{}` is a symbolic link to `{}` (not followed)",
                req.path, target
            ),
            structured: Some(v),
            is_error: false,
        });
    }
    if size > req.max_file_size {
        return Err(ToolError::denied(format!(
            "`{}` is {size} bytes; the limit for this tool is {} bytes",
            req.path, req.max_file_size
        )));
    }
    let obj = entry.object().map_err(internal)?;
    let data: &[u8] = &obj.data;
    let binary = data[..data.len().min(SNIFF)].contains(&0) || std::str::from_utf8(data).is_err();
    if binary {
        let v = with(json!({"type": "file", "binary": true, "size": size}));
        return Ok(ToolOutput {
            text: format!("binary file, {size} bytes"),
            structured: Some(v),
            is_error: false,
        });
    }
    let text = data.to_str_lossy().into_owned();
    let v = with(json!({"type": "file", "binary": false, "size": size, "content": text}));
    Ok(ToolOutput {
        text,
        structured: Some(v),
        is_error: false,
    })
}

fn list_files(repo: &gix::Repository, req: &Request) -> Result<ToolOutput, ToolError> {
    let commit = commit(repo, req)?;
    let root = commit.tree().map_err(internal)?;
    let start: ObjectId = if req.path.is_empty() {
        root.id
    } else {
        let e = root
            .lookup_entry(req.path.split('/'))
            .map_err(internal)?
            .ok_or_else(|| {
                ToolError::failed(format!(
                    "`{}` does not exist at `{}` in repository `{}`",
                    req.path, req.reference, req.repo_name
                ))
            })?;
        if !e.mode().is_tree() {
            return Err(ToolError::failed(format!(
                "`{}` is not a directory; read it with a git.read_file tool",
                req.path
            )));
        }
        e.object_id()
    };
    let max = req.max_entries as usize;
    let mut entries: Vec<Value> = Vec::new();
    let mut truncated = false;
    // Each directory's entries in tree order, then its subdirectories
    // (a stack of (directory prefix, tree id)).
    let mut stack = vec![(req.path.clone(), start)];
    'walk: while let Some((prefix, id)) = stack.pop() {
        req.stop()?;
        let tree = repo.find_tree(id).map_err(internal)?;
        let mut subdirs = Vec::new();
        for e in tree.iter() {
            let e = e.map_err(internal)?;
            let name = e.filename().to_str_lossy();
            let path = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if entries.len() >= max {
                truncated = true;
                break 'walk;
            }
            let mode = e.mode();
            let mut item = json!({"path": path, "type": kind_name(mode)});
            if mode.is_blob() || mode.is_link() {
                if let Ok(h) = repo.find_header(e.object_id()) {
                    item["size"] = h.size().into();
                }
            }
            if mode.is_tree() && req.recursive {
                subdirs.push((path, e.object_id()));
            }
            entries.push(item);
        }
        stack.extend(subdirs.into_iter().rev());
    }
    let mut text = String::new();
    for e in &entries {
        let kind = e["type"].as_str().unwrap_or("");
        let path = e["path"].as_str().unwrap_or("");
        match kind {
            "dir" => text.push_str(&format!("{path}/\n")),
            "file" => text.push_str(&format!("{path} ({} bytes)\n", e["size"])),
            other => text.push_str(&format!("{path} [{other}]\n")),
        }
    }
    if truncated {
        text.push_str(&format!(
            "… truncated at {max} entries; list a subdirectory for more\n"
        ));
    }
    let v = json!({
        "repo": req.repo_name, "path": req.path, "ref": req.reference,
        "commit": commit.id().to_string(), "entries": entries, "truncated": truncated,
    });
    Ok(ToolOutput {
        text,
        structured: Some(v),
        is_error: false,
    })
}

/// Object id of the entry at `path` in the commit's tree (`None` if absent).
fn id_at(
    repo: &gix::Repository,
    commit: ObjectId,
    path: &str,
) -> Result<Option<ObjectId>, ToolError> {
    let c = repo.find_commit(commit).map_err(internal)?;
    let tree = c.tree().map_err(internal)?;
    Ok(tree
        .lookup_entry(path.split('/'))
        .map_err(internal)?
        .map(|e| e.object_id()))
}

fn rfc3339(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn log(repo: &gix::Repository, req: &Request) -> Result<ToolOutput, ToolError> {
    let tip = commit(repo, req)?;
    let max = req.max_entries as usize;
    let walk = repo
        .rev_walk([tip.id])
        .sorting(gix::revision::walk::Sorting::ByCommitTime(
            Default::default(),
        ))
        .all()
        .map_err(internal)?;
    let mut commits = Vec::new();
    let mut truncated = false;
    for (scanned, info) in walk.enumerate() {
        req.stop()?;
        if scanned >= MAX_WALK {
            truncated = true;
            break;
        }
        let info = info.map_err(internal)?;
        if !req.path.is_empty() {
            let here = id_at(repo, info.id, &req.path)?;
            let parents: Vec<ObjectId> = info.parent_ids().map(|p| p.detach()).collect();
            let changed = if parents.is_empty() {
                here.is_some()
            } else {
                // Changed relative to every parent (a merge that takes one
                // side unchanged is not a change, as in `git log PATH`).
                let mut all = true;
                for p in parents {
                    if id_at(repo, p, &req.path)? == here {
                        all = false;
                        break;
                    }
                }
                all
            };
            if !changed {
                continue;
            }
        }
        if commits.len() >= max {
            truncated = true;
            break;
        }
        let c = info.object().map_err(internal)?;
        let author = c.author().map_err(internal)?;
        let summary = c
            .message()
            .map(|m| m.summary().to_str_lossy().into_owned())
            .unwrap_or_default();
        let time = c.time().map(|t| t.seconds).unwrap_or(0);
        commits.push(json!({
            "commit": c.id().to_string(),
            "author": author.name.to_str_lossy(),
            "email": author.email.to_str_lossy(),
            "time": rfc3339(time),
            "summary": summary,
        }));
    }
    let mut text = String::new();
    for c in &commits {
        text.push_str(&format!(
            "{} {} {} {}\n",
            &c["commit"].as_str().unwrap_or("")[..12.min(c["commit"].as_str().unwrap_or("").len())],
            c["time"].as_str().unwrap_or(""),
            c["author"].as_str().unwrap_or(""),
            c["summary"].as_str().unwrap_or(""),
        ));
    }
    if truncated {
        text.push_str(&format!("… more commits exist; at most {max} are shown\n"));
    }
    let mut v = json!({
        "repo": req.repo_name, "ref": req.reference, "commits": commits, "truncated": truncated,
    });
    if !req.path.is_empty() {
        v["path"] = req.path.clone().into();
    }
    Ok(ToolOutput {
        text,
        structured: Some(v),
        is_error: false,
    })
}
