//! The launcher side: turns a [`JailSpec`] into concrete host paths and an
//! init spec, starts `airlock __jail-init` with it, relays the network, and
//! after the run collects usage, enforces protected files and cleans up.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use airlock_config::Sandbox;
use serde::Serialize;

use crate::cgroup::Cgroup;
use crate::relay::Relay;
use crate::rules;
use crate::spec::{InitReport, InitSpec, Rlimits, RELAY_FD, REPORT_FD, SPEC_FD};

/// Port the egress relay listens on inside the jail (its own loopback) for
/// HTTP and CONNECT (the proxy variables point here).
pub const RELAY_PORT: u16 = 3128;
/// Port of the same relay for SOCKS5 clients (the proxy tells the
/// protocols apart by the first byte).
pub const SOCKS_PORT: u16 = 1080;
/// Host uid/gid a root launcher maps the jail's uid to by default (nobody).
pub const DEFAULT_HOST_ID: u32 = 65534;
/// How long a command gets after SIGTERM before everything is killed.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// Environment variables passed from the host; everything else is dropped.
const ENV_PASS: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "COLORTERM",
    "TZ",
    "NO_COLOR",
    "SHELL",
];

#[derive(Debug, thiserror::Error)]
pub enum JailError {
    #[error("{0}")]
    Config(String),
    #[error("could not start the jail: {0}")]
    Start(String),
    #[error("jail setup failed: {0}")]
    Setup(String),
}

/// How the jail reaches the network: through the egress proxy's Unix
/// socket, relayed from a port on the jail's own loopback.
#[derive(Debug, Clone)]
pub struct NetworkAccess {
    pub proxy_socket: PathBuf,
    /// Per-run proxy credential, put into the proxy URL variables.
    pub user: String,
    pub password: String,
    /// CA bundle (system roots plus the proxy's CA) for intercepted HTTPS.
    pub ca_bundle: Option<PathBuf>,
}

/// Everything one jailed command needs.
#[derive(Debug, Clone)]
pub struct JailSpec {
    pub workdir: PathBuf,
    /// Filesystem lists and limits (`sandbox.network` is the proxy's business).
    pub sandbox: Sandbox,
    /// Variables set inside on top of the pass-through allow-list.
    pub env: Vec<(String, String)>,
    /// `None`: no network at all.
    pub network: Option<NetworkAccess>,
    /// The `airlock` binary (default: this executable).
    pub launcher: PathBuf,
    /// When the launcher is root, the unprivileged host uid/gid the jail
    /// runs as (default 65534). Unprivileged launchers always use their own.
    pub host_uid: u32,
    pub host_gid: u32,
    /// The caller will use [`Running::wait_detached`] (it exits right
    /// after the run): the jail's own processes then exit at idle priority
    /// after reporting, leaving the CPUs to the caller's clean-up.
    pub detached: bool,
}

impl JailSpec {
    pub fn new(workdir: impl Into<PathBuf>, sandbox: Sandbox) -> JailSpec {
        JailSpec {
            workdir: workdir.into(),
            sandbox,
            env: Vec::new(),
            network: None,
            launcher: PathBuf::from("/proc/self/exe"),
            host_uid: DEFAULT_HOST_ID,
            host_gid: DEFAULT_HOST_ID,
            detached: false,
        }
    }
}

/// A protected file the command created or replaced; it was removed.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub path: PathBuf,
    pub action: &'static str,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Exit code when the command exited.
    pub code: Option<i32>,
    /// Signal number when a signal ended it.
    pub signal: Option<i32>,
    /// The command could not be executed (126/127 semantics).
    pub exec_error: Option<String>,
    pub timed_out: bool,
    pub duration_ms: u64,
    pub peak_memory: Option<u64>,
    pub oom_killed: bool,
    pub pids_limited: bool,
    /// Which limits the kernel enforced with a cgroup (else rlimits only).
    pub cgroup: bool,
    pub findings: Vec<Finding>,
    /// The post-run scan stopped early. It walks every entry since the
    /// red-team pass, so this stays false; kept for the report's format.
    pub scan_truncated: bool,
}

impl Outcome {
    /// The status a shell would report: the code, or 128+signal.
    pub fn exit_status(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            _ => 125,
        }
    }
}

/// A started jail. Take the pipes you asked for, then [`Running::wait`].
pub struct Running {
    child: Proc,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    report: std::fs::File,
    cgroup: Option<Cgroup>,
    relay: Option<Relay>,
    /// The relay's listeners, for a detached run, until the first
    /// connection: the waiting thread polls them and starts the relay then.
    idle_relay: Option<IdleRelay>,
    /// Signals to forward to the jail (a signalfd), read by the waiting
    /// thread (see [`Running::forward_signals`]).
    signals: Option<OwnedFd>,
    /// A per-run mount point to remove afterwards (see [`mount_point`]).
    scratch: Option<PathBuf>,
    writable: Vec<PathBuf>,
    name_deny: Vec<String>,
    protected_before: BTreeSet<PathBuf>,
    /// See [`rules::walk`]: setid files changed since are the run's.
    setid_since: i128,
    started: Instant,
    cleaner: Option<Cleaner>,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
}

fn resolve_entry(entry: &str, workdir: &Path) -> PathBuf {
    if let Some(rest) = entry.strip_prefix("~/") {
        return home()
            .unwrap_or_else(|| PathBuf::from("/nonexistent"))
            .join(rest);
    }
    let p = Path::new(entry);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        workdir.join(p)
    }
}

/// `**/NAME` and bare names with `*` are name patterns matched at any depth.
fn as_name_pattern(entry: &str) -> Option<String> {
    if let Some(n) = entry.strip_prefix("**/") {
        return Some(n.to_string());
    }
    (!entry.contains('/') && entry.contains('*')).then(|| entry.to_string())
}

fn canonical_existing(p: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(p).ok()
}

/// Starts `argv` in a jail built from `spec`, with the given stdio: the
/// init is a fresh `LAUNCHER __jail-init` process.
pub fn spawn(spec: &JailSpec, argv: &[String], stdio: [Stdio; 3]) -> Result<Running, JailError> {
    start(spec, argv, Launch::Exec(stdio))
}

/// Starts `argv` in a jail built from `spec` by an init forked earlier
/// with [`Zygote::fork`]; the command shares this process's stdio.
pub fn spawn_in(zygote: Zygote, spec: &JailSpec, argv: &[String]) -> Result<Running, JailError> {
    start(spec, argv, Launch::Zygote(zygote))
}

enum Launch {
    Exec([Stdio; 3]),
    Zygote(Zygote),
}

/// The launcher-side init process, started either way.
enum Proc {
    Std(Child),
    Forked(libc::pid_t),
}

impl Proc {
    fn id(&self) -> u32 {
        match self {
            Proc::Std(c) => c.id(),
            Proc::Forked(p) => *p as u32,
        }
    }
    fn kill(&mut self) {
        match self {
            Proc::Std(c) => {
                let _ = c.kill();
            }
            Proc::Forked(p) => unsafe {
                libc::kill(*p, libc::SIGKILL);
            },
        }
    }
    fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        match self {
            Proc::Std(c) => c.wait(),
            Proc::Forked(p) => wait_pid(*p),
        }
    }
}

fn wait_pid(pid: libc::pid_t) -> std::io::Result<std::process::ExitStatus> {
    let mut st = 0;
    loop {
        if unsafe { libc::waitpid(pid, &mut st, 0) } == pid {
            return Ok(std::os::unix::process::ExitStatusExt::from_raw(st));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A jail init forked from this process while it was still
/// single-threaded, waiting for its spec. It saves `spawn`'s second
/// execution of the (large) airlock binary: `airlock run` forks one before
/// it loads the config or starts the proxy, so the init's copy of memory
/// holds no more than the command line; the environment it inherited is
/// wiped in the child. Dropping an unused one ends it.
pub struct Zygote {
    pid: libc::pid_t,
    spec_w: Option<std::fs::File>,
    report_r: Option<std::fs::File>,
    relay_parent: Option<std::os::unix::net::UnixStream>,
    cleaner: Option<Cleaner>,
    run_name: String,
}

/// A process forked beside the zygote, right after the init (while this
/// process is still small and single-threaded, so forking it is cheap and
/// it may allocate), that can remove the run's cgroup after the jail's own
/// processes have exited, so the launcher need not wait for that (see
/// [`Running::wait_detached`]). It waits for one instruction on a pipe; at
/// end-of-file without one it exits and leaves everything as it is.
struct Cleaner {
    pid: libc::pid_t,
    w: Option<std::fs::File>,
}

impl Cleaner {
    /// Root only: cgroups are only created for a root launcher.
    fn fork() -> Option<Cleaner> {
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let (r, w) = pipe().ok()?;
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return None;
        }
        if pid == 0 {
            drop(w);
            let r = high(r).unwrap_or(-1);
            unsafe {
                // None of the caller's descriptors may stay open here: the
                // command's stdio, and above all the write end of the init's
                // spec pipe, whose end-of-file the init waits for. Closed
                // first, at the launcher's priority: at idle priority this
                // waited for an idle CPU, and on two busy cores the init
                // then waited up to 140 ms for its spec's end (traces).
                if r > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (r - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (r + 1) as u32, u32::MAX, 0u32);
            }
            // Background work from here on: the rest of its set-up (and
            // the copy-on-write faults it takes) must not compete with the
            // launcher and the init, which build the jail meanwhile.
            crate::sys::lower_priority();
            wipe_environment();
            if r >= 0 {
                clean(unsafe { std::fs::File::from_raw_fd(r) });
            }
            unsafe { libc::_exit(0) }
        }
        Some(Cleaner {
            pid,
            w: Some(std::fs::File::from(w)),
        })
    }

    /// Hands over: once `init` has exited, remove `cgroup`, then sweep the
    /// leftovers of killed runs ([`crate::stale::sweep`]; `temp_dir`: the
    /// temp dir's scratch directories too).
    fn remove_after(mut self, init: libc::pid_t, cgroup: &Cgroup, temp_dir: bool) -> bool {
        let mut msg = format!("{init}\n");
        if cgroup.v2_kill_file().is_some() {
            msg.push_str("v2\n");
        } else {
            msg.push_str("v1\n");
        }
        msg.push_str(if temp_dir { "sweep-tmp\n" } else { "sweep\n" });
        for d in cgroup.dirs() {
            msg.push_str(&d.display().to_string());
            msg.push('\n');
        }
        let Some(mut w) = self.w.take() else {
            return false;
        };
        if w.write_all(msg.as_bytes()).is_err() {
            return false;
        }
        // Not reaped: this process exits right after; it is reparented.
        self.pid = 0;
        true
    }
}

impl Drop for Cleaner {
    fn drop(&mut self) {
        if self.pid > 0 {
            // Closing the pipe without an instruction ends it.
            self.w.take();
            let _ = wait_pid(self.pid);
        }
    }
}

/// The cleaner's side: read the instruction, wait for the init, remove.
fn clean(mut r: std::fs::File) {
    let mut msg = String::new();
    if r.read_to_string(&mut msg).is_err() {
        return;
    }
    let mut lines = msg.lines();
    let (Some(pid), Some(kind), Some(sweep)) = (
        lines.next().and_then(|p| p.parse::<i32>().ok()),
        lines.next(),
        lines.next(),
    ) else {
        return;
    };
    let dirs: Vec<PathBuf> = lines.map(PathBuf::from).collect();
    // The instruction is complete only with at least one directory.
    if dirs.is_empty() {
        return;
    }
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if pidfd >= 0 {
        let mut p = libc::pollfd {
            fd: pidfd,
            events: libc::POLLIN,
            revents: 0,
        };
        // The init exits right after the jail's pid 1, which has already
        // reported; a minute only bounds a wedged kernel.
        unsafe { while libc::poll(&mut p, 1, 60_000) < 0 && crate::sys::errno() == libc::EINTR {} }
    }
    // (Without a pidfd the removal below retries while they exit.)
    Cgroup::remove_dirs(kind == "v2", &dirs);
    // The launcher left this to us: at idle priority, after its exit.
    crate::stale::sweep(sweep == "sweep-tmp");
}

impl Zygote {
    /// Forks the init. Refused (use [`spawn`]) once the process runs more
    /// than one thread: a lock another thread held at the fork would stay
    /// held in the child forever.
    pub fn fork() -> Result<Zygote, JailError> {
        let start_err = |e: std::io::Error| JailError::Start(e.to_string());
        let threads = std::fs::read_dir("/proc/self/task")
            .map_err(start_err)?
            .count();
        if threads != 1 {
            return Err(JailError::Start(format!(
                "this process runs {threads} threads; the jail init cannot be forked"
            )));
        }
        let (spec_r, spec_w) = pipe().map_err(start_err)?;
        let (report_r, report_w) = pipe().map_err(start_err)?;
        let (relay_parent, relay_child) =
            std::os::unix::net::UnixStream::pair().map_err(start_err)?;
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(start_err(std::io::Error::last_os_error()));
        }
        if pid == 0 {
            drop((spec_w, report_r, relay_parent));
            let fds = [
                (high(spec_r), SPEC_FD),
                (high(OwnedFd::from(relay_child)), RELAY_FD),
                (high(report_w), REPORT_FD),
            ];
            for (from, to) in fds {
                match from {
                    Ok(from) if unsafe { libc::dup2(from, to) } == to => unsafe {
                        libc::close(from);
                    },
                    _ => unsafe { libc::_exit(125) },
                }
            }
            // Nothing else of the caller's stays open in the init (when it
            // is forked later than first thing, the caller has more).
            let above = SPEC_FD.max(RELAY_FD).max(REPORT_FD) + 1;
            unsafe { libc::syscall(libc::SYS_close_range, above as u32, u32::MAX, 0u32) };
            wipe_environment();
            crate::init::main();
        }
        // Forked while this process is still single-threaded, as the init;
        // where the exit holder runs, it removes the cgroup instead.
        let cleaner = if crate::holder::SUPPORTED {
            None
        } else {
            Cleaner::fork()
        };
        let run_name = next_run_name();
        Ok(Zygote {
            pid,
            spec_w: Some(std::fs::File::from(spec_w)),
            report_r: Some(std::fs::File::from(report_r)),
            relay_parent: Some(relay_parent),
            cleaner,
            run_name,
        })
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        if self.pid > 0 {
            // No spec arrives: the init reads end-of-file and exits.
            self.spec_w.take();
            let _ = wait_pid(self.pid);
        }
    }
}

fn next_run_name() -> String {
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    format!("run-{}-{n}", std::process::id())
}

extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Overwrites the inherited environment strings in place (they are what
/// `/proc/PID/environ` shows) and empties the environment: the launcher's
/// variables may hold secrets, and the init that lives beside the command
/// has no use for them.
fn wipe_environment() {
    unsafe {
        let mut p = environ;
        while !p.is_null() && !(*p).is_null() {
            let len = libc::strlen(*p);
            std::ptr::write_bytes(*p, 0, len);
            p = p.add(1);
        }
        libc::clearenv();
    }
}

fn start(spec: &JailSpec, argv: &[String], launch: Launch) -> Result<Running, JailError> {
    if argv.is_empty() {
        return Err(JailError::Config("no command given".into()));
    }
    let limits = &spec.sandbox.limits;
    let root = unsafe { libc::geteuid() } == 0;
    let run_name = match &launch {
        Launch::Zygote(z) => z.run_name.clone(),
        Launch::Exec(_) => next_run_name(),
    };
    let prepared = prepare(spec, argv, launch, &run_name, root)?;
    // Made here, in line: a thread making it beside the path resolution
    // and the workdir walk waited for a CPU on two cores busy with this
    // process and the init's network namespace (traces: up to 2 ms), while
    // the directories take ~0.15 ms.
    let cgroup = root
        .then(|| Cgroup::make(&run_name))
        .flatten()
        .and_then(|c| c.limit(limits.memory.0, limits.pids));
    prepared.send(spec, cgroup)
}

/// Debug builds only: `AIRLOCK_TEST_SWAP_BEFORE_MOUNT=FROM:ASIDE:LINK`
/// makes the init move FROM aside and link it to LINK between these checks
/// and its mounts (the race tests in crates/cli/tests/redteam_mount_race_cli.rs).
#[cfg(debug_assertions)]
fn test_swap() -> Option<[PathBuf; 3]> {
    let v = std::env::var("AIRLOCK_TEST_SWAP_BEFORE_MOUNT").ok()?;
    let mut it = v.splitn(3, ':').map(PathBuf::from);
    Some([it.next()?, it.next()?, it.next()?])
}

/// What `start` resolves before the cgroup is known.
struct Prepared {
    init: InitSpec,
    launch: Launch,
    scratch: Option<PathBuf>,
    writable: Vec<PathBuf>,
    name_deny: Vec<String>,
    protected: BTreeSet<PathBuf>,
    setid_since: i128,
}

fn prepare(
    spec: &JailSpec,
    argv: &[String],
    launch: Launch,
    run_name: &str,
    root: bool,
) -> Result<Prepared, JailError> {
    let workdir = std::fs::canonicalize(&spec.workdir)
        .map_err(|e| JailError::Config(format!("workdir {}: {e}", spec.workdir.display())))?;
    if !workdir.is_dir() {
        return Err(JailError::Config(format!(
            "workdir {} is not a directory",
            workdir.display()
        )));
    }
    let fs = &spec.sandbox.filesystem;
    let mut writable = vec![workdir.clone()];
    for w in &fs.allow_write {
        let p = resolve_entry(w, &workdir);
        let c = canonical_existing(&p).ok_or_else(|| {
            JailError::Config(format!(
                "allow-write path {} does not exist; create it first",
                p.display()
            ))
        })?;
        if c == Path::new("/") {
            return Err(JailError::Config(
                "allow-write `/` would make the jail pointless".into(),
            ));
        }
        if !writable.contains(&c) {
            writable.push(c);
        }
    }
    // Only now that every writable root is known: an entry that reaches
    // its folder through a symlink inside one of them may have been
    // redirected by an earlier run.
    for w in &fs.allow_write {
        crate::symlinks::refuse_planted(&resolve_entry(w, &workdir), &writable)
            .map_err(JailError::Config)?;
    }

    let mut name_deny: Vec<String> = rules::NAME_DENY.iter().map(|s| s.to_string()).collect();
    let mut masked: BTreeSet<PathBuf> = BTreeSet::new();
    if let Some(h) = home() {
        for d in rules::HOME_DENY {
            // Most are absent: one lstat instead of realpath's walk.
            let p = h.join(d);
            if std::fs::symlink_metadata(&p).is_err() {
                continue;
            }
            if let Some(c) = canonical_existing(&p) {
                masked.insert(c);
            }
        }
    }
    for d in &fs.deny_read {
        match as_name_pattern(d) {
            Some(n) => name_deny.push(n),
            None => {
                if let Some(c) = canonical_existing(&resolve_entry(d, &workdir)) {
                    masked.insert(c);
                }
            }
        }
    }
    // Setuid/setgid files the post-run scan reports are those changed since
    // this walk began.
    let setid_since = rules::change_clock();
    let found = rules::walk(&writable, &name_deny, Some(rules::WALK_LIMIT), None);
    if found.truncated {
        // Files to hide by name could lie past the limit: refuse rather
        // than run with some of them readable.
        return Err(JailError::Config(format!(
            "a writable path holds more than {} entries, or a folder nested deeper than a \
             path can name, so the jail cannot check every file it must hide or protect; \
             choose a narrower workdir or allow-write path",
            rules::WALK_LIMIT
        )));
    }
    masked.extend(found.masked.iter().cloned());
    let mut protected = found.protected.clone();
    // The jail pins a protected symlink itself and never follows it (a
    // link where none was is refused: see `resolve`). What a link inside
    // the writable paths points to is protected too, by its real path.
    for l in &found.protected_links {
        if let Ok(t) = std::fs::canonicalize(l) {
            let inside = writable.iter().any(|w| t.starts_with(w) && t != *w);
            if inside && !writable.iter().any(|w| w.starts_with(&t)) {
                protected.insert(t);
            }
        }
    }
    for d in &fs.deny_write {
        if let Some(c) = canonical_existing(&resolve_entry(d, &workdir)) {
            protected.insert(c);
        }
    }
    // A masked path must not hide the workdir itself.
    if masked.iter().any(|m| workdir.starts_with(m)) {
        return Err(JailError::Config(format!(
            "the workdir {} lies inside a deny-read path; choose another workdir",
            workdir.display()
        )));
    }

    // What each path is now: the init mounts onto the same files only.
    // The walk's entries have theirs; the named ones are few.
    let mut ids = found.ids.clone();
    for c in masked.iter().chain(&protected) {
        if !ids.contains_key(c) {
            if let Ok(m) = std::fs::symlink_metadata(c) {
                ids.insert(c.clone(), crate::spec::FileId::of(&m));
            }
        }
    }

    let (mount_point, scratch) = mount_point(run_name)?;
    let limits = &spec.sandbox.limits;

    let mut env: Vec<(String, String)> = ENV_PASS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .chain(std::env::vars().filter(|(k, _)| k.starts_with("LC_")))
        .collect();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()));
    }
    if let Some(net) = &spec.network {
        let url = format!(
            "http://{}:{}@127.0.0.1:{RELAY_PORT}",
            net.user, net.password
        );
        for k in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            env.push((k.into(), url.clone()));
        }
        env.push(("NO_PROXY".into(), String::new()));
        if let Some(ca) = &net.ca_bundle {
            let ca = ca.display().to_string();
            for k in [
                "SSL_CERT_FILE",
                "NODE_EXTRA_CA_CERTS",
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "GIT_SSL_CAINFO",
            ] {
                env.push((k.into(), ca.clone()));
            }
        }
    }
    env.extend(spec.env.iter().cloned());
    // Later entries win, like `env A=1 A=2`.
    let mut dedup: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        dedup.retain(|(k2, _)| *k2 != k);
        dedup.push((k, v));
    }

    let init = InitSpec {
        argv: argv.to_vec(),
        env: dedup,
        workdir: workdir.clone(),
        scratch: mount_point,
        writable: writable.clone(),
        protected: protected.iter().cloned().collect(),
        protected_links: found.protected_links.iter().cloned().collect(),
        ids,
        masked: masked.into_iter().collect(),
        tmp_size: limits.tmp_size.0,
        rlimits: Rlimits {
            cpu_seconds: limits.cpu_seconds,
            open_files: limits.open_files,
            file_size: limits.file_size.0,
            // Without a cgroup a fork bomb or memory hog would be contained
            // by nothing: fall back to rlimits (weaker, but never none).
            // (Set in `send` once the cgroup is known.)
            nproc: Some(u64::from(limits.pids)),
            data: Some(limits.memory.0),
        },
        host_uid: if root {
            spec.host_uid
        } else {
            unsafe { libc::geteuid() }
        },
        host_gid: if root {
            spec.host_gid
        } else {
            unsafe { libc::getegid() }
        },
        cgroup_procs: Vec::new(),
        relay_ports: match spec.network {
            Some(_) => vec![RELAY_PORT, SOCKS_PORT],
            None => vec![],
        },
        hostname: "airlock".into(),
        background_exit: spec.detached,
        #[cfg(debug_assertions)]
        test_swap: test_swap(),
    };
    Ok(Prepared {
        init,
        launch,
        scratch,
        writable,
        name_deny,
        protected,
        setid_since,
    })
}

impl Prepared {
    /// Completes the spec with the cgroup, hands it to the init and
    /// receives the relay's listeners.
    fn send(self, spec: &JailSpec, cgroup: Option<Cgroup>) -> Result<Running, JailError> {
        let Prepared {
            mut init,
            launch,
            scratch,
            writable,
            name_deny,
            protected,
            setid_since,
        } = self;
        if let Some(c) = &cgroup {
            init.cgroup_procs = c.procs_files();
            init.rlimits.nproc = None;
            init.rlimits.data = None;
        }
        let spec_json = serde_json::to_vec(&init).map_err(|e| JailError::Start(e.to_string()))?;

        let start_err = |e: std::io::Error| JailError::Start(e.to_string());
        let mut cleaner = None;
        let (mut child, spec_w, report_r, relay_parent, stdio) = match launch {
            Launch::Exec(stdio) => match exec_init(&spec.launcher, stdio) {
                Ok((child, spec_w, report_r, relay_parent, stdio)) => {
                    (Proc::Std(child), spec_w, report_r, relay_parent, stdio)
                }
                Err(e) => {
                    cleanup(scratch.as_deref(), cgroup);
                    return Err(JailError::Start(format!(
                        "{}: {e}",
                        spec.launcher.display()
                    )));
                }
            },
            Launch::Zygote(mut z) => {
                let pid = std::mem::take(&mut z.pid);
                cleaner = z.cleaner.take();
                let (Some(spec_w), Some(report_r), Some(relay_parent)) =
                    (z.spec_w.take(), z.report_r.take(), z.relay_parent.take())
                else {
                    cleanup(scratch.as_deref(), cgroup);
                    return Err(start_err(std::io::Error::other(
                        "the init was already used",
                    )));
                };
                (
                    Proc::Forked(pid),
                    spec_w,
                    report_r,
                    relay_parent,
                    (None, None, None),
                )
            }
        };
        let mut report = report_r;
        let mut spec_w = spec_w;
        let _ = spec_w.write_all(&spec_json);
        drop(spec_w);
        // Leftovers of killed runs. A cleaner (root, with a cgroup) sweeps
        // after this process has exited, at idle priority; otherwise a
        // thread, off the critical path now that the init has its spec. An
        // unprivileged launcher makes no cgroups and can remove none of
        // root's, so without a scratch directory it has nothing to sweep.
        let root = unsafe { libc::geteuid() } == 0;
        match (&cleaner, &cgroup) {
            (Some(_), Some(_)) => {}
            // The cgroups' parents only, here: a directory read or two,
            // cheaper than a thread, while the init joins the cgroup.
            (None, Some(c)) if scratch.is_none() => {
                crate::stale::sweep_cgroups(&c.parents());
            }
            _ if root || scratch.is_some() => crate::stale::sweep_once(scratch.is_some()),
            _ => {}
        }

        let mut idle_relay = None;
        let relay = match &spec.network {
            // A detached run's caller waits right away: the waiting thread
            // receives the listeners when the init sends them (this thread
            // does not sleep for them here), polls them and starts the
            // relay on the first connection (which waits in the backlog
            // meanwhile), so a command that never connects costs no thread.
            Some(net) if spec.detached => {
                idle_relay = Some(IdleRelay {
                    source: Some(relay_parent),
                    listeners: Vec::new(),
                    proxy: net.proxy_socket.clone(),
                    on_connect: None,
                });
                None
            }
            Some(net) => {
                let received = crate::relay::receive_listeners(&relay_parent, 2);
                drop(relay_parent);
                match received {
                    Ok(l) => match Relay::start(l, net.proxy_socket.clone()) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            child.kill();
                            let _ = child.wait();
                            cleanup(scratch.as_deref(), cgroup);
                            return Err(JailError::Start(format!("start the network relay: {e}")));
                        }
                    },
                    Err(_) => {
                        // The init failed before listening: its report says why.
                        let _ = child.wait();
                        let mut s = String::new();
                        let _ = report.read_to_string(&mut s);
                        cleanup(scratch.as_deref(), cgroup);
                        return Err(setup_error(&s).unwrap_or_else(|| {
                            JailError::Setup("the jail exited during network setup".into())
                        }));
                    }
                }
            }
            None => None,
        };
        if spec.detached {
            // While the command runs: see `holder`.
            crate::holder::start(child.id() as libc::pid_t);
        }
        let (stdin, stdout, stderr) = stdio;
        Ok(Running {
            stdin,
            stdout,
            stderr,
            child,
            report,
            cgroup,
            relay,
            idle_relay,
            signals: None,
            scratch,
            writable,
            name_deny,
            protected_before: protected,
            setid_since,
            started: Instant::now(),
            cleaner,
        })
    }
}

type StdPipes = (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>);

/// Starts `LAUNCHER __jail-init` with the spec pipe, the relay socket and
/// the report pipe on the fixed descriptor numbers the init expects.
#[allow(clippy::type_complexity)]
fn exec_init(
    launcher: &Path,
    stdio: [Stdio; 3],
) -> std::io::Result<(
    Child,
    std::fs::File,
    std::fs::File,
    std::os::unix::net::UnixStream,
    StdPipes,
)> {
    let (spec_r, spec_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (relay_parent, relay_child) = std::os::unix::net::UnixStream::pair()?;
    let fds = [
        (high(spec_r)?, SPEC_FD),
        (high(OwnedFd::from(relay_child))?, RELAY_FD),
        (high(report_w)?, REPORT_FD),
    ];
    let [stdin, stdout, stderr] = stdio;
    let mut cmd = Command::new(launcher);
    cmd.arg(crate::INIT_ARG)
        .env_clear()
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    unsafe {
        cmd.pre_exec(move || {
            for (from, to) in fds {
                if libc::dup2(from, to) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    for (from, _) in fds {
        unsafe { libc::close(from) };
    }
    let mut child = spawned?;
    let pipes = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    Ok((
        child,
        std::fs::File::from(spec_w),
        std::fs::File::from(report_r),
        relay_parent,
        pipes,
    ))
}

/// Moves a descriptor above the fixed numbers (close-on-exec), so that a
/// dup2 onto 3, 4 or 5 cannot clobber another source descriptor.
fn high(fd: OwnedFd) -> std::io::Result<RawFd> {
    let raw = fd.into_raw_fd();
    let r = unsafe { libc::fcntl(raw, libc::F_DUPFD_CLOEXEC, 10) };
    unsafe { libc::close(raw) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn setup_error(report: &str) -> Option<JailError> {
    report
        .lines()
        .filter_map(|l| serde_json::from_str::<InitReport>(l).ok())
        .find_map(|r| match r {
            InitReport::Error(e) => Some(JailError::Setup(e)),
            _ => None,
        })
}

/// The empty directory the init binds the new root onto. Every run may
/// share one: the binds happen in each jail's own mount namespace, so the
/// host directory stays empty. A directory of our own, reused, saves a
/// mkdir and rmdir per run (slow on a busy ext4 /tmp); when the shared one
/// is not plainly ours (another owner, a symlink, writable by others) the
/// run gets a fresh one of its own, returned second, to be removed.
fn mount_point(run_name: &str) -> Result<(PathBuf, Option<PathBuf>), JailError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let euid = unsafe { libc::geteuid() };
    let shared = std::env::temp_dir().join(format!(".airlock-root-{euid}"));
    let _ = std::fs::DirBuilder::new().mode(0o755).create(&shared);
    if let Ok(m) = std::fs::symlink_metadata(&shared) {
        if m.is_dir() && m.uid() == euid && m.mode() & 0o022 == 0 {
            return Ok((shared, None));
        }
    }
    let own = std::env::temp_dir().join(format!(".airlock-{run_name}"));
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&own)
        .map_err(|e| JailError::Start(format!("create {}: {e}", own.display())))?;
    Ok((own.clone(), Some(own)))
}

fn cleanup(scratch: Option<&Path>, cgroup: Option<Cgroup>) {
    if let Some(s) = scratch {
        let _ = std::fs::remove_dir(s);
    }
    if let Some(c) = cgroup {
        c.remove();
    }
}

impl Running {
    /// The launcher-side pid (signals sent to it reach the command).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Forwards a signal to the command.
    pub fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Forwards `signals` to the command while [`Running::wait`] (or its
    /// variants) waits, without a thread of its own: the waiting thread
    /// also reads a signalfd. The caller must have blocked them in every
    /// thread of the process (they would otherwise take their default
    /// action, or be taken by a thread that does not block them); ones
    /// that arrive before the wait are forwarded when it starts.
    pub fn forward_signals(&mut self, signals: &[i32]) -> std::io::Result<()> {
        let fd = unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, *s);
            }
            libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.signals = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(())
    }

    /// For a detached run ([`JailSpec::detached`]) with network access:
    /// `f` runs on the waiting thread when the command first connects out,
    /// before the relay's thread starts (e.g. to start the proxy then). An
    /// `Err` kills the command and fails the wait with that message.
    /// `Err(f)` when the relay already runs (not detached, or no network):
    /// then nothing waits for a first connection.
    pub fn on_first_connection(&mut self, f: OnConnect) -> Result<(), OnConnect> {
        match &mut self.idle_relay {
            Some(idle) => {
                idle.on_connect = Some(f);
                Ok(())
            }
            None => Err(f),
        }
    }

    /// Waits for the command (killing it after `timeout`), then collects
    /// usage, removes protected files it planted, and cleans up.
    /// The post-run scan for planted protected files, while the jail still
    /// runs: for a long-lived jail (a session's shell), after each command,
    /// so one planted by it (`git init` makes `.git/hooks`) is removed then,
    /// not when the session ends. By name only: setuid/setgid bits, which
    /// seccomp refuses in the first place, are looked for by the full scan
    /// of [`Running::wait`] at the end; that needs an `lstat` of every file
    /// and would more than double the cost of each command's scan.
    pub fn scan(&self) -> Vec<Finding> {
        enforce_protected(
            &self.writable,
            &self.name_deny,
            &self.protected_before,
            None,
        )
        .0
    }

    pub fn wait(self, timeout: Option<Duration>) -> Result<Outcome, JailError> {
        self.wait_with(timeout, || ()).map(|(o, ())| o)
    }

    /// [`Running::wait`], running `during` once the command and everything
    /// it started are dead (the relays stopped), while the jail's own
    /// processes exit: work of the caller's that needs no more than that
    /// (stopping the egress proxy) overlaps the teardown.
    pub fn wait_with<T>(
        self,
        timeout: Option<Duration>,
        during: impl FnOnce() -> T,
    ) -> Result<(Outcome, T), JailError> {
        self.finish(timeout, during, false)
    }

    /// [`Running::wait_with`] for a process that exits right after: once
    /// the jail has reported the command's status (everything inside is
    /// dead), it does not wait for the jail's own processes to exit (their
    /// namespaces' teardown takes a millisecond or two); a forked cleaner
    /// waits for them and removes the cgroup. They are not reaped here:
    /// they are reparented when this process exits, which must be soon.
    pub fn wait_detached<T>(
        self,
        timeout: Option<Duration>,
        during: impl FnOnce() -> T,
    ) -> Result<(Outcome, T), JailError> {
        self.finish(timeout, during, true)
    }

    fn finish<T>(
        mut self,
        timeout: Option<Duration>,
        during: impl FnOnce() -> T,
        detach: bool,
    ) -> Result<(Outcome, T), JailError> {
        let pid = self.child.id() as i32;
        // The run is over at the jail's status line (its pid 1 writes it
        // after killing and reaping every other process of the jail, so
        // nothing inside can act any more) or at end-of-file (the init
        // died or failed). The launcher-side init and pid 1 exit just
        // after; waiting for them first would put two more process exits
        // before the clean-up.
        // Read here, with poll for the timeout: a reader thread would add
        // a wake-up and a hand-off between the status and the clean-up.
        let mut report = Report {
            file: self.report,
            data: Vec::new(),
            pid,
            signals: self.signals.take(),
            idle_relay: self.idle_relay.take(),
            relay: None,
            relay_error: None,
        };
        let mut timed_out = false;
        let deadline = |d: Duration| Instant::now().checked_add(d);
        match timeout {
            None => {
                report.read(None);
            }
            Some(t) => {
                if !report.read(deadline(t)) {
                    timed_out = true;
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                    if !report.read(deadline(KILL_GRACE)) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        report.read(None);
                    }
                }
            }
        }
        let text = String::from_utf8_lossy(&report.data).into_owned();
        let duration_ms = self.started.elapsed().as_millis() as u64;
        let relay_error = report.relay_error.take();
        if let Some(r) = self.relay.take().or(report.relay.take()) {
            if detach {
                // Nothing inside can connect any more, and this process
                // exits soon: waking the relay's thread only to end it
                // would compete with the clean-up for a CPU.
                drop(r);
            } else {
                r.stop();
            }
        }
        // Final now: nothing in the jail can allocate or fork any more.
        let usage = self.cgroup.as_ref().map(|c| c.usage()).unwrap_or_default();
        let status_seen = text
            .lines()
            .any(|l| matches!(serde_json::from_str(l), Ok(InitReport::Status(_))));
        // The init reports a setup error only before the command is
        // executed: nothing of it ran, so it planted nothing. The scan
        // would take files another writer moved meanwhile (the change that
        // made the jail refuse to start) for planted ones and delete them.
        let setup_failed = !status_seen
            && text
                .lines()
                .any(|l| matches!(serde_json::from_str(l), Ok(InitReport::Error(_))));
        let (findings, scan_truncated) = if setup_failed {
            (Vec::new(), false)
        } else {
            enforce_protected(
                &self.writable,
                &self.name_deny,
                &self.protected_before,
                Some(self.setid_since),
            )
        };
        let during = during();
        let had_cgroup = self.cgroup.is_some();
        let detached = detach
            && status_seen
            && match (&self.cgroup, self.cleaner.take()) {
                (None, _) => true,
                (Some(c), Some(cleaner)) => {
                    cleaner.remove_after(self.child.id() as libc::pid_t, c, self.scratch.is_some())
                }
                (Some(c), None) => crate::holder::hand_over(crate::holder::Job {
                    v2: c.v2_kill_file().is_some(),
                    dirs: c.dirs(),
                }),
            };
        let init_signal = if detached {
            // The cleaner removes the cgroup.
            self.cgroup.take();
            cleanup(self.scratch.as_deref(), None);
            None
        } else {
            // The init and pid 1 leave the cgroup when they exit; only then
            // can it be removed.
            let waited = self.child.wait();
            cleanup(self.scratch.as_deref(), self.cgroup.take());
            // A signal that ended the launcher-side init (e.g. SIGKILL from
            // an operator) ended the whole jail with it.
            waited
                .ok()
                .and_then(|st| std::os::unix::process::ExitStatusExt::signal(&st))
        };

        if let Some(e) = relay_error {
            // The command was killed for it: no run without its network path.
            return Err(JailError::Start(e));
        }
        let mut out = Outcome {
            code: None,
            signal: None,
            exec_error: None,
            timed_out,
            duration_ms,
            peak_memory: usage.peak_memory,
            oom_killed: usage.oom_killed,
            pids_limited: usage.pids_limited,
            cgroup: had_cgroup,
            findings,
            scan_truncated,
        };
        let mut status = None;
        for line in text.lines() {
            match serde_json::from_str::<InitReport>(line) {
                Ok(InitReport::Status(s)) => status = Some(s),
                Ok(InitReport::ExecFailed { errno, message }) => {
                    out.code = Some(if errno == libc::ENOENT { 127 } else { 126 });
                    out.exec_error = Some(message);
                }
                Ok(InitReport::Error(e)) if out.exec_error.is_none() => {
                    return Err(JailError::Setup(e))
                }
                _ => {}
            }
        }
        if out.exec_error.is_some() {
            return Ok((out, during));
        }
        match status {
            Some(s) if libc::WIFEXITED(s) => out.code = Some(libc::WEXITSTATUS(s)),
            Some(s) if libc::WIFSIGNALED(s) => out.signal = Some(libc::WTERMSIG(s)),
            _ if timed_out => out.signal = Some(libc::SIGKILL),
            _ if init_signal.is_some() => out.signal = init_signal,
            _ => {
                return Err(JailError::Setup(
                    "the jail ended without reporting the command's status".into(),
                ))
            }
        }
        Ok((out, during))
    }
}

/// The init's report as it arrives, read by the waiting thread, which
/// meanwhile forwards signals and starts an idle relay on its first
/// connection (a run that never connects starts no relay thread, and
/// signals need no thread of their own).
struct Report {
    file: std::fs::File,
    data: Vec<u8>,
    /// Where forwarded signals go (the launcher-side init).
    pid: i32,
    signals: Option<OwnedFd>,
    idle_relay: Option<IdleRelay>,
    relay: Option<Relay>,
    /// The relay or its `on_connect` failed; the command was killed.
    relay_error: Option<String>,
}

/// A detached run's relay listeners before the first connection.
struct IdleRelay {
    /// Where the init sends them, until they are received.
    source: Option<std::os::unix::net::UnixStream>,
    listeners: Vec<std::net::TcpListener>,
    proxy: PathBuf,
    /// Run first, on the waiting thread (the caller starts its proxy).
    on_connect: Option<OnConnect>,
}

/// What a detached run's caller does when the jail first connects out.
pub type OnConnect = Box<dyn FnOnce() -> Result<(), String> + Send>;

impl Report {
    /// Reads up to pid 1's status line, or to end-of-file; `false` when
    /// `deadline` (`None`: none) came first.
    fn read(&mut self, deadline: Option<Instant>) -> bool {
        use std::os::fd::AsRawFd;
        let mut buf = [0u8; 4096];
        loop {
            let ms = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    // Rounded up: never wake before the deadline and spin.
                    left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
                }
                None => -1,
            };
            let pfd = |fd: RawFd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let mut p = vec![pfd(self.file.as_raw_fd())];
            p.extend(self.signals.as_ref().map(|s| pfd(s.as_raw_fd())));
            let sig_at = self.signals.as_ref().map(|_| p.len() - 1);
            let relay_from = p.len();
            if let Some(idle) = &self.idle_relay {
                match &idle.source {
                    Some(src) => p.push(pfd(src.as_raw_fd())),
                    None => p.extend(idle.listeners.iter().map(|l| pfd(l.as_raw_fd()))),
                }
            }
            match unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, ms) } {
                0 => continue,
                r if r < 0 && crate::sys::errno() == libc::EINTR => continue,
                r if r < 0 => {
                    // Cannot wait: read (blocking) rather than spin.
                    p[0].revents = libc::POLLIN;
                }
                _ => {}
            }
            if sig_at.is_some_and(|i| p[i].revents != 0) {
                self.forward_signals();
            }
            if p[relay_from..].iter().any(|x| x.revents != 0) {
                if self.idle_relay.as_ref().is_some_and(|i| i.source.is_some()) {
                    self.receive_relay();
                } else {
                    self.start_relay();
                }
            }
            if p[0].revents == 0 {
                continue;
            }
            match self.file.read(&mut buf) {
                Ok(0) => return true,
                Ok(n) => {
                    let start = self.data.len();
                    self.data.extend_from_slice(&buf[..n]);
                    // Only complete lines count; a status line ends the report.
                    let from = self.data[..start]
                        .iter()
                        .rposition(|b| *b == b'\n')
                        .map_or(0, |i| i + 1);
                    let done = self.data[from..]
                        .split(|b| *b == b'\n')
                        .rev()
                        .skip(1)
                        .any(|l| matches!(serde_json::from_slice(l), Ok(InitReport::Status(_))));
                    if done {
                        return true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }

    /// Sends every pending forwarded signal on to the init.
    fn forward_signals(&mut self) {
        use std::os::fd::AsRawFd;
        let Some(fd) = &self.signals else { return };
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            let n = unsafe {
                libc::read(
                    fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                // EAGAIN: none left (the descriptor is non-blocking).
                return;
            }
            unsafe { libc::kill(self.pid, info.ssi_signo as i32) };
        }
    }

    /// The init has sent the relay's listeners (or failed before: then its
    /// report says why, and there is no relay).
    fn receive_relay(&mut self) {
        let Some(idle) = &mut self.idle_relay else {
            return;
        };
        let Some(src) = idle.source.take() else {
            return;
        };
        match crate::relay::receive_listeners(&src, 2) {
            Ok(l) => idle.listeners = l,
            Err(e) => {
                self.idle_relay = None;
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    // Listening sockets nobody accepts on would leave the
                    // command's connections hanging: fail the run instead.
                    self.relay_error = Some(format!("receive the relay's sockets: {e}"));
                    unsafe { libc::kill(self.pid, libc::SIGKILL) };
                }
            }
        }
    }

    /// The first connection: the caller's `on_connect`, then the relay's
    /// thread, which accepts it. Either failing kills the command (no run
    /// without its network path); the error is returned after its status.
    fn start_relay(&mut self) {
        let Some(idle) = self.idle_relay.take() else {
            return;
        };
        let started = match idle.on_connect {
            Some(f) => f(),
            None => Ok(()),
        }
        .and_then(|()| {
            Relay::start(idle.listeners, idle.proxy)
                .map_err(|e| format!("start the network relay: {e}"))
        });
        match started {
            Ok(r) => self.relay = Some(r),
            Err(e) => {
                self.relay_error = Some(e);
                unsafe { libc::kill(self.pid, libc::SIGKILL) };
            }
        }
    }
}

/// Protected files that appeared during the run (they could not be bound
/// read-only in advance) are removed and reported; setuid/setgid bits that
/// appeared (seccomp stops chmod, but open/mkdir modes can carry them) are
/// cleared and reported.
fn enforce_protected(
    writable: &[PathBuf],
    name_deny: &[String],
    before: &BTreeSet<PathBuf>,
    setid_since: Option<i128>,
) -> (Vec<Finding>, bool) {
    let after = rules::walk(writable, name_deny, None, setid_since);
    let mut findings = Vec::new();
    for p in after.protected.difference(before) {
        // Never by name again: see `planted`.
        let removed = crate::planted::remove(p).is_ok();
        findings.push(Finding {
            path: p.clone(),
            action: if removed {
                "removed"
            } else {
                "found (could not remove)"
            },
        });
    }
    for p in &after.setid {
        let cleared = crate::planted::clear_setid(p).is_ok();
        findings.push(Finding {
            path: p.clone(),
            action: if cleared {
                "setuid/setgid bits cleared"
            } else {
                "setuid/setgid bits found (could not clear)"
            },
        });
    }
    (findings, after.truncated)
}
