//! The threads git calls run on. Each is confined by Landlock to the git
//! directory of the first repository it reads (see `guard`), so it is not
//! a thread of the shared blocking pool; it is kept for the next call on
//! the same repository, since making a thread and its domain costs about
//! 100 µs, most of a small call. A kept thread whose repository's git
//! directory has been replaced since (another directory now) cannot serve
//! it and is dropped.

use std::collections::HashMap;
use std::sync::{mpsc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::ops::{self, Confinement, Ran, Request};
use super::GitOp;
use crate::{ToolError, ToolOutput};

/// Idle threads kept per repository (per tool).
const MAX_IDLE: usize = 4;

struct Job {
    op: GitOp,
    req: Request,
    reply: tokio::sync::oneshot::Sender<Outcome>,
}

enum Outcome {
    Done(Result<ToolOutput, ToolError>),
    /// Confined to another git directory; the request comes back.
    Stale(Request),
}

struct Worker {
    jobs: mpsc::Sender<Job>,
}

fn spawn() -> Result<Worker, ToolError> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("airlock-git".into())
        .spawn(move || {
            let mut confinement = Confinement::default();
            // Ends when the Worker is dropped (not kept, or its call timed
            // out or was cancelled and the caller went away).
            while let Ok(job) = rx.recv() {
                let out = match ops::run(job.op, &job.req, &mut confinement) {
                    Ran::Done(r) => Outcome::Done(r),
                    Ran::Stale => Outcome::Stale(job.req),
                };
                let stale = matches!(out, Outcome::Stale(_));
                let _ = job.reply.send(out);
                if stale {
                    return;
                }
            }
        })
        .map_err(|e| {
            tracing::error!(error = %e, "cannot start a git worker");
            ToolError::failed("internal error while reading the repository")
        })?;
    Ok(Worker { jobs: tx })
}

/// Kept threads by repository name.
#[derive(Default)]
pub struct Workers {
    idle: Mutex<HashMap<String, Vec<Worker>>>,
}

impl Workers {
    fn take(&self, repo: &str) -> Option<Worker> {
        self.idle.lock().ok()?.get_mut(repo)?.pop()
    }

    fn keep(&self, repo: &str, w: Worker) {
        if let Ok(mut idle) = self.idle.lock() {
            let v = idle.entry(repo.to_string()).or_default();
            if v.len() < MAX_IDLE {
                v.push(w);
            }
        }
    }

    fn drop_all(&self, repo: &str) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.remove(repo);
        }
    }

    /// Runs `op` on a kept or new thread; ends at `timeout` or `cancel`
    /// (the thread stops at its next check, see `Request::stop`).
    pub async fn call(
        &self,
        tool: &str,
        op: GitOp,
        mut req: Request,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<ToolOutput, ToolError> {
        let repo = req.repo_name.clone();
        let sleep = tokio::time::sleep(timeout);
        tokio::pin!(sleep);
        loop {
            let (worker, fresh) = match self.take(&repo) {
                Some(w) => (w, false),
                None => (spawn()?, true),
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            if let Err(mpsc::SendError(job)) = worker.jobs.send(Job { op, req, reply: tx }) {
                // The thread is gone (it panicked on an earlier call).
                req = job.req;
                continue;
            }
            tokio::select! {
                r = rx => match r {
                    Ok(Outcome::Done(r)) => {
                        self.keep(&repo, worker);
                        return r;
                    }
                    Ok(Outcome::Stale(back)) if !fresh => {
                        // The git directory was replaced: every kept thread
                        // of this repository is confined to the old one.
                        self.drop_all(&repo);
                        req = back;
                    }
                    Ok(Outcome::Stale(_)) | Err(_) => {
                        tracing::error!(tool, "git worker failed");
                        return Err(ToolError::failed("internal error while reading the repository"));
                    }
                },
                _ = cancel.cancelled() => return Err(ToolError::Cancelled),
                _ = &mut sleep => return Err(ToolError::Timeout(timeout)),
            }
        }
    }
}
