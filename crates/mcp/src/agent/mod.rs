//! The agent toolset — `agent.bash`, `read`, `write`, `edit`, `glob`,
//! `grep` — run inside one jail per MCP session.
//!
//! Each session (an `Mcp-Session-Id`, a stdio connection, or, for stateless
//! 2026-07-28 requests, the agent itself) gets one jail running one
//! persistent bash with the configured workdir; every tool of the session
//! runs as commands in that shell, so the jail's confinement (read-only
//! view, deny-read masks, writable workdir only, protected files, landlock,
//! seccomp, no network) covers the file tools exactly as it covers bash.
//! Nothing here touches the host filesystem directly.

mod ops;
pub mod shell;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_config::{Constraint, Sandbox, Tool, ToolKind};
use airlock_jail::JailSpec;

use crate::tools::{Catalog, Declared, Progress, Served};
use shell::{Ran, Shell, ShellError};

/// Where and how session jails run.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The directory every session works in (writable inside the jail).
    pub workdir: PathBuf,
    /// `sandbox:` of the config: masks, writable paths, limits.
    pub sandbox: Sandbox,
    /// The `airlock` binary that acts as the jail's init (default: this
    /// executable).
    pub launcher: Option<PathBuf>,
    /// Live session jails at most; a new session beyond it is refused.
    pub max_sessions: usize,
    /// Live session jails per agent; a new one displaces that agent's
    /// least recently used idle session.
    pub max_sessions_per_agent: usize,
    /// A session jail unused this long is stopped.
    pub idle_timeout: Duration,
    /// The egress proxy the jails reach the network through; `None`: no
    /// network at all.
    pub network: Option<airlock_jail::NetworkAccess>,
}

/// The catalog of `agent.*` kinds.
pub struct AgentTools {
    sessions: Arc<Sessions>,
}

impl AgentTools {
    pub fn new(opts: AgentOptions) -> Result<AgentTools, String> {
        let meta = std::fs::metadata(&opts.workdir)
            .map_err(|e| format!("agent workdir {}: {e}", opts.workdir.display()))?;
        if !meta.is_dir() {
            return Err(format!(
                "agent workdir {} is not a directory",
                opts.workdir.display()
            ));
        }
        Ok(AgentTools {
            sessions: Arc::new(Sessions {
                opts,
                hidden: Mutex::new(Vec::new()),
                map: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Masks `paths` too in every session jail from now on (the secret
    /// files a reloaded config names). When one is new, the live sessions
    /// are stopped, as each finishes its call: their jails were built
    /// without it. Returns how many were stopped.
    pub fn hide(&self, paths: &[PathBuf]) -> usize {
        let mut added = false;
        {
            let mut hidden = self
                .sessions
                .hidden
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for p in paths {
                let s = std::path::absolute(p)
                    .unwrap_or_else(|_| p.clone())
                    .to_string_lossy()
                    .into_owned();
                if !self.sessions.opts.sandbox.filesystem.deny_read.contains(&s)
                    && !hidden.contains(&s)
                {
                    hidden.push(s);
                    added = true;
                }
            }
        }
        if !added {
            return 0;
        }
        let live: Vec<_> = self
            .sessions
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        let n = live.len();
        for (_, s) in live {
            close_when_idle(s);
        }
        n
    }

    /// Stops every session jail (on shutdown).
    pub fn close_all(&self) {
        let all: Vec<_> = self
            .sessions
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (_, s) in all {
            if let Ok(mut g) = s.shell.try_lock() {
                if let Some(sh) = g.take() {
                    sh.close();
                }
            }
        }
    }
}

impl Catalog for AgentTools {
    fn build(&self, _name: &str, tool: &Tool) -> Result<Option<Arc<dyn Declared>>, String> {
        let agent_kind = matches!(
            tool.kind,
            ToolKind::AgentBash(_)
                | ToolKind::AgentRead(_)
                | ToolKind::AgentWrite(_)
                | ToolKind::AgentEdit(_)
                | ToolKind::AgentGlob(_)
                | ToolKind::AgentGrep(_)
        );
        Ok(agent_kind.then(|| Arc::new(AgentDeclared(self.sessions.clone())) as Arc<dyn Declared>))
    }

    fn session_ended(&self, agent: &str, session: &str) {
        let key = format!("{agent}\0{session}");
        let gone = self
            .sessions
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if let Some(s) = gone {
            close_when_idle(s);
        }
    }
}

/// Closes a session's shell once no call is using it (off the runtime).
fn close_when_idle(s: Arc<SessionJail>) {
    let shell = s.shell.clone();
    let close = async move {
        let mut g = shell.lock_owned().await;
        if let Some(sh) = g.take() {
            let _ = tokio::task::spawn_blocking(move || sh.close()).await;
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(close);
        }
        Err(_) => {
            if let Ok(mut g) = s.shell.try_lock() {
                if let Some(sh) = g.take() {
                    sh.close();
                }
            }
        }
    }
}

struct AgentDeclared(Arc<Sessions>);

impl Declared for AgentDeclared {
    fn serve(
        &self,
        tool: &Tool,
        constraint: Option<&Constraint>,
    ) -> Result<Arc<dyn Served>, String> {
        let op = ops::Op::new(&tool.kind, constraint).ok_or("not an agent tool")?;
        Ok(Arc::new(ops::AgentTool {
            op,
            sessions: self.0.clone(),
        }))
    }
}

struct SessionJail {
    shell: Arc<tokio::sync::Mutex<Option<Shell>>>,
    last_used: Mutex<Instant>,
}

pub(crate) struct Sessions {
    opts: AgentOptions,
    /// Masked besides `opts.sandbox`'s deny-read list ([`AgentTools::hide`]).
    hidden: Mutex<Vec<String>>,
    map: Mutex<HashMap<String, Arc<SessionJail>>>,
}

impl Sessions {
    fn spec(&self) -> JailSpec {
        let mut sandbox = self.opts.sandbox.clone();
        sandbox.filesystem.deny_read.extend(
            self.hidden
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .cloned(),
        );
        let mut spec = JailSpec::new(self.opts.workdir.clone(), sandbox);
        spec.network = self.opts.network.clone();
        if let Some(l) = &self.opts.launcher {
            spec.launcher = l.clone();
        }
        // The jail's files belong to the workdir's owner, unless that is
        // root (the jail never maps to host root).
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(&self.opts.workdir) {
            if m.uid() != 0 {
                spec.host_uid = m.uid();
                spec.host_gid = m.gid();
            }
        }
        spec
    }

    fn session(&self, agent: &str, session: Option<&str>) -> Result<Arc<SessionJail>, String> {
        let key = format!("{agent}\0{}", session.unwrap_or("(stateless)"));
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Stop jails idle past the timeout (those not busy right now).
        let idle: Vec<String> = map
            .iter()
            .filter(|(_, s)| {
                now.duration_since(*s.last_used.lock().unwrap_or_else(|e| e.into_inner()))
                    > self.opts.idle_timeout
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(s) = map.remove(&k) {
                if let Ok(mut g) = s.shell.clone().try_lock_owned() {
                    if let Some(sh) = g.take() {
                        std::thread::spawn(move || sh.close());
                    }
                }
            }
        }
        if let Some(s) = map.get(&key) {
            *s.last_used.lock().unwrap_or_else(|e| e.into_inner()) = now;
            return Ok(s.clone());
        }
        // One agent opening many sessions only ever displaces its own
        // least recently used one, never another agent's.
        let prefix = format!("{agent}\0");
        let mine: Vec<(String, Instant)> = map
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, s)| {
                (
                    k.clone(),
                    *s.last_used.lock().unwrap_or_else(|e| e.into_inner()),
                )
            })
            .collect();
        if mine.len() >= self.opts.max_sessions_per_agent {
            let mut mine = mine;
            mine.sort_by_key(|(_, t)| *t);
            let evict = mine
                .iter()
                .find(|(k, _)| map.get(k).is_some_and(|s| s.shell.try_lock().is_ok()));
            match evict {
                Some((k, _)) => {
                    if let Some(s) = map.remove(k) {
                        close_when_idle(s);
                    }
                }
                None => {
                    return Err(format!(
                        "agent `{agent}` already has {} busy sessions; try again when one finishes",
                        mine.len()
                    ))
                }
            }
        }
        if map.len() >= self.opts.max_sessions {
            return Err(format!(
                "too many live agent sessions ({}); try again when one ends",
                self.opts.max_sessions
            ));
        }
        let s = Arc::new(SessionJail {
            shell: Arc::new(tokio::sync::Mutex::new(None)),
            last_used: Mutex::new(now),
        });
        map.insert(key, s.clone());
        Ok(s)
    }

    /// Runs `script` in the session's shell, starting one if needed.
    /// Returns whether a new shell was started for this call. With
    /// `progress`, the command's output so far is reported as it arrives;
    /// with `scan`, the jail's post-run scan follows the command.
    pub(crate) async fn exec(
        &self,
        ctx: &crate::tools::CallCtx,
        script: String,
        timeout: Duration,
        cap: usize,
        progress: Option<&Progress>,
        scan: bool,
    ) -> Result<(Ran, bool), String> {
        let sj = self.session(&ctx.agent, ctx.session.as_deref())?;
        let mut guard = sj.shell.clone().lock_owned().await;
        // A shell killed after its last command returned (its call was
        // dropped as it finished) cannot be reused.
        if guard.as_ref().is_some_and(Shell::killed) {
            if let Some(sh) = guard.take() {
                tokio::task::spawn_blocking(move || drop(sh));
            }
        }
        let mut started = false;
        if guard.is_none() {
            let spec = self.spec();
            let sh = tokio::task::spawn_blocking(move || Shell::start(&spec))
                .await
                .map_err(|e| format!("starting the jail: {e}"))?
                .map_err(|e| e.to_string())?;
            *guard = Some(sh);
            started = true;
        }
        let killer = guard.as_ref().map(Shell::killer).ok_or("no shell")?;
        // If this future is dropped mid-command (the caller gave up on it),
        // the command must not run on unobserved holding the session.
        let mut kill_on_drop = KillOnDrop(Some(killer.clone()));
        let k2 = killer.clone();
        let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(Seen::default());
        let watching = progress.is_some();
        let mut task = tokio::task::spawn_blocking(move || {
            let mut on_output = |total: usize, chunk: &[u8]| {
                if watching {
                    // Only news wakes the reporter (a chunk that is all
                    // marker adds nothing).
                    seen_tx.send_if_modified(|s| s.update(total, chunk));
                }
            };
            let r = guard.as_mut().map(|sh| {
                sh.run(&script, cap, &k2, &mut on_output).map(|mut ran| {
                    // What this command (or one still running in the
                    // background) planted goes now, not at the session's end.
                    if scan {
                        ran.findings = sh.scan();
                    }
                    ran
                })
            });
            // Killed or broken: drop (kill and reap) it here, off the runtime.
            if k2.fired() || !matches!(r, Some(Ok(_))) {
                guard.take();
            }
            (guard, r)
        });
        let begun = Instant::now();
        let mut last_sent = begun;
        let mut pending = false;
        let mut seen_open = watching;
        let mut why: Option<ShellError> = None;
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let joined = loop {
            tokio::select! {
                j = &mut task => break j,
                _ = &mut deadline => {
                    why = Some(ShellError::Timeout(timeout));
                    killer.kill();
                    break (&mut task).await;
                }
                _ = ctx.cancel.cancelled() => {
                    why = Some(ShellError::Cancelled);
                    killer.kill();
                    break (&mut task).await;
                }
                r = seen_rx.changed(), if seen_open => {
                    if r.is_err() {
                        seen_open = false;
                    } else {
                        pending = true;
                    }
                }
                // Output is reported at most every PROGRESS_GAP, and a
                // silent command still gets a heartbeat (clients reset their
                // request timeouts on progress).
                _ = tokio::time::sleep_until((last_sent + PROGRESS_GAP).into()), if watching && pending => {
                    pending = false;
                    last_sent = Instant::now();
                    if let Some(p) = progress {
                        let s = seen_rx.borrow_and_update().clone();
                        p.report(secs(begun), None, s.message(begun)).await;
                    }
                }
                _ = tokio::time::sleep_until((last_sent + HEARTBEAT).into()), if watching && !pending => {
                    last_sent = Instant::now();
                    if let Some(p) = progress {
                        let s = seen_rx.borrow().clone();
                        p.report(secs(begun), None, s.message(begun)).await;
                    }
                }
            }
        };
        kill_on_drop.0 = None;
        let (_guard, result) = joined.map_err(|e| format!("shell task: {e}"))?;
        match (why, result) {
            (None, Some(Ok(ran))) => {
                if !ran.findings.is_empty() {
                    tracing::warn!(target: "airlock::mcp", agent = %ctx.agent, findings = ?ran.findings, "the session's jail planted protected files; removed");
                }
                if let Some(p) = progress {
                    let t = secs(begun);
                    // Past the cap only the running count knows the size.
                    let bytes = if ran.truncated {
                        seen_rx.borrow().bytes.max(ran.output.len())
                    } else {
                        ran.output.len()
                    };
                    let msg = format!(
                        "exit status {}, {bytes} bytes of output, {t:.1}s",
                        ran.status
                    );
                    // Done: progress equals total.
                    p.report(t, Some(t), msg).await;
                }
                Ok((ran, started))
            }
            (why, result) => {
                let err = match (why, result) {
                    (Some(w), _) => w,
                    (None, Some(Err(e))) => e,
                    _ => ShellError::Exited,
                };
                if let (Some(p), ShellError::Timeout(_)) = (progress, &err) {
                    p.report(secs(begun), None, format!("killed: {err}")).await;
                }
                Err(err.to_string())
            }
        }
    }
}

/// Least time between two output-driven progress notifications.
const PROGRESS_GAP: Duration = Duration::from_millis(100);
/// A command that prints nothing still reports this often.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Longest last-line excerpt in a progress message.
const MAX_LINE: usize = 120;

/// Seconds since `t`, to the millisecond: the `progress` value of a
/// command (it grows with every notification, as the spec wants; there is
/// no total until the command ends).
fn secs(t: Instant) -> f64 {
    (t.elapsed().as_millis() as f64) / 1000.0
}

/// What a running command has printed so far, as far as progress tells.
#[derive(Debug, Clone, Default)]
struct Seen {
    bytes: usize,
    /// The last non-empty line (printable characters only, cut).
    line: String,
}

impl Seen {
    /// Whether anything changed.
    fn update(&mut self, total: usize, chunk: &[u8]) -> bool {
        if total == self.bytes {
            return false;
        }
        self.bytes = total;
        let last = chunk
            .split(|&b| b == b'\n' || b == b'\r')
            .rev()
            .find(|l| l.iter().any(|b| !b.is_ascii_whitespace()));
        if let Some(l) = last {
            // Terminal escapes and other controls stay out of the message.
            let text: String = String::from_utf8_lossy(l)
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_LINE)
                .collect();
            self.line = text.trim().to_string();
        }
        true
    }

    fn message(&self, begun: Instant) -> String {
        let t = secs(begun);
        if self.line.is_empty() {
            format!("running {t:.1}s, {} bytes of output", self.bytes)
        } else {
            format!(
                "running {t:.1}s, {} bytes of output; last line: {}",
                self.bytes, self.line
            )
        }
    }
}

/// Fires a killer when dropped armed.
struct KillOnDrop(Option<shell::Killer>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(k) = self.0.take() {
            k.kill();
        }
    }
}
