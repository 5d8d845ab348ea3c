//! What this kernel offers the jail, probed live (for `airlock doctor` and
//! for the launcher's choice between cgroup v1 and v2, landlock ABIs, …).
//!
//! Each probe asks the kernel directly (a syscall in a throwaway child, a
//! file under /proc or /sys); nothing is inferred from version numbers.

use std::fs;
use std::path::Path;

/// How usable one kernel feature is for the jail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Present and usable as airlock wants it.
    Ok,
    /// Usable, but weaker than the best case (airlock adapts and says how).
    Degraded,
    /// Absent.
    Missing,
    /// A host setting that weakens isolation for everyone on the machine.
    Warning,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Degraded => "degraded",
            State::Missing => "missing",
            State::Warning => "warning",
        }
    }
}

/// One line of the doctor's report.
#[derive(Debug, Clone)]
pub struct Feature {
    /// Stable identifier, e.g. `user_namespaces`.
    pub id: &'static str,
    pub state: State,
    /// What the kernel said.
    pub detail: String,
    /// What airlock does with it.
    pub airlock: String,
    /// The jail refuses to start without it.
    pub required: bool,
    /// What an operator can change, when the state is not `Ok`.
    pub fix: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    pub features: Vec<Feature>,
}

impl Report {
    /// Required features that are missing: the jail cannot run here.
    pub fn blocking(&self) -> impl Iterator<Item = &Feature> {
        self.features
            .iter()
            .filter(|f| f.required && f.state == State::Missing)
    }

    pub fn get(&self, id: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.id == id)
    }
}

/// Runs every probe.
pub fn probe() -> Report {
    let ns = namespaces();
    let mut features = vec![
        user_namespaces(ns),
        namespace_feature(
            ns,
            libc::CLONE_NEWNS,
            "mount_namespace",
            "read-only root view built with pivot_root; deny-read masks and allow-write binds",
        ),
        namespace_feature(
            ns,
            libc::CLONE_NEWNET,
            "network_namespace",
            "the jail has loopback only; traffic leaves through the egress proxy's Unix socket",
        ),
        namespace_feature(
            ns,
            libc::CLONE_NEWPID,
            "pid_namespace",
            "the command cannot see or signal host processes; a timeout kills the whole namespace",
        ),
        namespace_feature(ns, libc::CLONE_NEWIPC, "ipc_namespace", "private System V IPC and POSIX queues"),
        namespace_feature(ns, libc::CLONE_NEWUTS, "uts_namespace", "private host name"),
        landlock(),
        seccomp(),
        seccomp_user_notif(),
        cgroups(),
        overlayfs(),
        sysctl_flag(
            "dmesg_restrict",
            "/proc/sys/kernel/dmesg_restrict",
            true,
            "kernel log readable only with CAP_SYSLOG, which the jail never has",
            "the kernel log (addresses, other tenants' messages) is readable by any user; \
             the jail also blocks syslog(2) with seccomp",
            "sysctl -w kernel.dmesg_restrict=1",
        ),
        sysctl_flag(
            "legacy_tiocsti",
            "/proc/sys/dev/tty/legacy_tiocsti",
            false,
            "TIOCSTI terminal injection is disabled by the kernel",
            "TIOCSTI can push keystrokes into a terminal; the jail blocks it with seccomp and setsid",
            "sysctl -w dev.tty.legacy_tiocsti=0",
        ),
    ];
    features.retain(|f| !f.detail.is_empty());
    Report { features }
}

/// Which namespace flags a fresh child of this process may unshare, each on
/// its own (inside a new user namespace when we are not root).
#[derive(Debug, Clone, Copy)]
struct NsProbe {
    user: Result<(), i32>,
    others: [(libc::c_int, Result<(), i32>); 5],
}

fn namespaces() -> NsProbe {
    let user = try_unshare(libc::CLONE_NEWUSER);
    let base = if user.is_ok() { libc::CLONE_NEWUSER } else { 0 };
    let flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
    ];
    let others = flags.map(|f| (f, try_unshare(base | f)));
    NsProbe { user, others }
}

/// Forks a child that calls `unshare(flags)` and reports the errno. The
/// child only makes raw syscalls before `_exit`, so forking from a
/// multi-threaded process is safe.
fn try_unshare(flags: libc::c_int) -> Result<(), i32> {
    // SAFETY: the child runs only async-signal-safe calls (unshare, _exit).
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return Err(*libc::__errno_location());
        }
        if pid == 0 {
            let rc = libc::unshare(flags);
            let code = if rc == 0 {
                0
            } else {
                (*libc::__errno_location()).clamp(1, 255)
            };
            libc::_exit(code);
        }
        let mut status = 0;
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                return Err(libc::ECHILD);
            }
        }
        match libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)) {
            Some(0) => Ok(()),
            Some(e) => Err(e),
            None => Err(libc::ECHILD),
        }
    }
}

fn errno_text(e: i32) -> String {
    std::io::Error::from_raw_os_error(e).to_string()
}

fn read_trim(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn user_namespaces(ns: NsProbe) -> Feature {
    let max = read_trim("/proc/sys/user/max_user_namespaces");
    let apparmor = read_trim("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
    let debian_knob = read_trim("/proc/sys/kernel/unprivileged_userns_clone");
    let mut detail = match ns.user {
        Ok(()) => "can be created by this user".to_string(),
        Err(e) => format!("cannot be created by this user: {}", errno_text(e)),
    };
    if let Some(m) = &max {
        detail.push_str(&format!("; user.max_user_namespaces={m}"));
    }
    let mut fix = None;
    if ns.user.is_err() {
        fix = Some(if apparmor.as_deref() == Some("1") {
            "Ubuntu's AppArmor restricts unprivileged user namespaces: add an AppArmor profile \
             granting `userns` to the airlock binary (see docs/sandbox.md), or set \
             kernel.apparmor_restrict_unprivileged_userns=0"
                .to_string()
        } else if debian_knob.as_deref() == Some("0") {
            "set kernel.unprivileged_userns_clone=1 (sysctl)".to_string()
        } else if max.as_deref() == Some("0") {
            "set user.max_user_namespaces to a positive number, e.g. 15000 (sysctl)".to_string()
        } else {
            "enable CONFIG_USER_NS in the kernel, or run airlock where user namespaces are allowed"
                .to_string()
        });
    }
    if apparmor.as_deref() == Some("1") {
        detail.push_str("; AppArmor restricts unprivileged user namespaces");
    }
    Feature {
        id: "user_namespaces",
        state: if ns.user.is_ok() {
            State::Ok
        } else {
            State::Missing
        },
        detail,
        airlock: "the command runs as a non-root uid in its own user namespace, \
                  mapped to an unprivileged host uid"
            .into(),
        required: true,
        fix,
    }
}

fn namespace_feature(ns: NsProbe, flag: libc::c_int, id: &'static str, airlock: &str) -> Feature {
    let result = ns
        .others
        .iter()
        .find(|(f, _)| *f == flag)
        .map(|(_, r)| *r)
        .unwrap_or(Err(libc::EINVAL));
    let (state, detail, fix) = match result {
        Ok(()) => (State::Ok, "available".to_string(), None),
        Err(e) => (
            State::Missing,
            format!("unshare failed: {}", errno_text(e)),
            Some(if ns.user.is_err() {
                "enable user namespaces first (see user_namespaces)".to_string()
            } else {
                "enable this namespace type in the kernel (CONFIG_*_NS) or the container runtime's seccomp profile".to_string()
            }),
        ),
    };
    Feature {
        id,
        state,
        detail,
        airlock: airlock.into(),
        required: true,
        fix,
    }
}

/// Landlock ABI version, via `landlock_create_ruleset(NULL, 0, VERSION)`.
pub fn landlock_abi() -> Result<i64, i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attr and size 0 the kernel only returns the ABI.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::ENOSYS))
    } else {
        Ok(rc)
    }
}

fn landlock() -> Feature {
    let airlock = "a second filesystem layer mirroring the mounts (best effort by ABI)";
    match landlock_abi() {
        Ok(abi) => Feature {
            id: "landlock",
            state: if abi >= 3 { State::Ok } else { State::Degraded },
            detail: format!("ABI {abi}"),
            airlock: if abi >= 3 {
                airlock.into()
            } else {
                format!("{airlock}; ABI {abi} cannot restrict truncate, so only mounts guard it")
            },
            required: false,
            fix: (abi < 3).then(|| "a kernel of 6.2 or newer gives landlock ABI 3".to_string()),
        },
        Err(e) => Feature {
            id: "landlock",
            state: State::Missing,
            detail: match e {
                libc::EOPNOTSUPP => "built in but disabled at boot".into(),
                _ => format!("not available: {}", errno_text(e)),
            },
            airlock: "skipped; the mount namespace alone enforces the filesystem rules".into(),
            required: false,
            fix: Some("boot with `lsm=landlock,…` (CONFIG_SECURITY_LANDLOCK=y)".into()),
        },
    }
}

fn seccomp_actions() -> Option<String> {
    read_trim("/proc/sys/kernel/seccomp/actions_avail")
}

fn seccomp() -> Feature {
    // PR_GET_SECCOMP answers EINVAL when the kernel has no seccomp at all.
    // SAFETY: a read-only prctl.
    let rc = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    let has_filter = rc >= 0 && seccomp_actions().is_some();
    Feature {
        id: "seccomp_filter",
        state: if has_filter {
            State::Ok
        } else {
            State::Missing
        },
        detail: if has_filter {
            format!("actions: {}", seccomp_actions().unwrap_or_default())
        } else {
            "no seccomp filter mode in this kernel".into()
        },
        airlock: "blocks Unix sockets, io_uring, ptrace, namespace and mount calls, bpf, perf, \
                  keyctl, TIOCSTI, setuid bits and file capabilities"
            .into(),
        required: true,
        fix: (!has_filter).then(|| "enable CONFIG_SECCOMP_FILTER in the kernel".into()),
    }
}

fn seccomp_user_notif() -> Feature {
    let ok = seccomp_actions().is_some_and(|a| a.split_whitespace().any(|x| x == "user_notif"));
    Feature {
        id: "seccomp_user_notif",
        state: if ok { State::Ok } else { State::Degraded },
        detail: if ok {
            "available".into()
        } else {
            "not offered by this kernel".into()
        },
        airlock: if ok {
            "available for reporting denied calls to the supervisor".into()
        } else {
            "denied calls fail with EPERM without a report".into()
        },
        required: false,
        fix: None,
    }
}

/// Where the jail can put its cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// A v2 hierarchy at this path with memory, pids and cpu enabled.
    V2(std::path::PathBuf),
    /// v1 controllers, each with its own mount.
    V1 {
        memory: Option<std::path::PathBuf>,
        pids: Option<std::path::PathBuf>,
        cpu: Option<std::path::PathBuf>,
    },
    None,
}

/// Finds the cgroup hierarchy that has the memory, pids and cpu controllers:
/// a pure v2 mount, the `unified` part of a hybrid layout, or v1 controllers.
pub fn cgroup_layout() -> CgroupLayout {
    standard_cgroup_layout().unwrap_or_else(mounted_cgroup_layout)
}

/// [`cgroup_layout`] for the usual place, `/sys/fs/cgroup`, from a few
/// `statfs` calls: a v2 mount there with the three controllers, or a tmpfs
/// whose `memory`, `pids` and `cpu` are v1 cgroup mounts. `None` for
/// anything else; then the mount table decides. (Reading the mount table
/// makes the kernel print every mount: the costlier way, on a jail's start
/// path.) A directory that is a cgroup mount of another controller than
/// its name says fails safe: its limit files are missing, the run's
/// cgroup cannot be made and rlimits apply.
fn standard_cgroup_layout() -> Option<CgroupLayout> {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let fs_type = |p: &Path| -> Option<i64> {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: statfs(2) on a valid C string and a zeroed buffer.
        (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
    };
    let root = Path::new("/sys/fs/cgroup");
    match fs_type(root)? {
        CGROUP2_SUPER_MAGIC => {
            let ctl = read_trim(root.join("cgroup.controllers"))?;
            let has = |c: &str| ctl.split_whitespace().any(|x| x == c);
            (has("memory") && has("pids") && has("cpu")).then(|| CgroupLayout::V2(root.into()))
        }
        TMPFS_MAGIC => {
            let v1 = |name: &str| {
                let d = root.join(name);
                (fs_type(&d)? == CGROUP_SUPER_MAGIC).then_some(d)
            };
            Some(CgroupLayout::V1 {
                memory: Some(v1("memory")?),
                pids: Some(v1("pids")?),
                cpu: Some(v1("cpu")?),
            })
        }
        _ => None,
    }
}

/// [`cgroup_layout`] from the mount table.
fn mounted_cgroup_layout() -> CgroupLayout {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut v1 = (None, None, None);
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (_, Some(dir), Some(fstype), Some(opts)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let dir = std::path::PathBuf::from(dir.replace("\\040", " "));
        if fstype == "cgroup2" {
            let ctl = read_trim(dir.join("cgroup.controllers")).unwrap_or_default();
            let has = |c: &str| ctl.split_whitespace().any(|x| x == c);
            if has("memory") && has("pids") && has("cpu") {
                return CgroupLayout::V2(dir);
            }
        } else if fstype == "cgroup" {
            let opts: Vec<&str> = opts.split(',').collect();
            if opts.contains(&"memory") {
                v1.0 = Some(dir.clone());
            }
            if opts.contains(&"pids") {
                v1.1 = Some(dir.clone());
            }
            if opts.contains(&"cpu") {
                v1.2 = Some(dir);
            }
        }
    }
    match v1 {
        (None, None, None) => CgroupLayout::None,
        (memory, pids, cpu) => CgroupLayout::V1 { memory, pids, cpu },
    }
}

fn cgroups() -> Feature {
    // What launch.rs sets: CPU, file size and open files always; process
    // count and data size only when the run gets no cgroup.
    let rlimits = "rlimits on CPU time, file size and open files always apply; \
         a run without a cgroup gets RLIMIT_NPROC (limits.pids) and RLIMIT_DATA (limits.memory) instead";
    let writable = |p: &Path| {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
        // SAFETY: access(2) on a valid C string.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    };
    match cgroup_layout() {
        CgroupLayout::V2(dir) => {
            let w = writable(&dir);
            Feature {
                id: "cgroups",
                state: if w { State::Ok } else { State::Degraded },
                detail: format!(
                    "v2 at {} with memory, pids, cpu{}",
                    dir.display(),
                    if w {
                        ""
                    } else {
                        " (not writable by this user)"
                    }
                ),
                airlock: if w {
                    format!("a cgroup per run limits memory, pids and cpu; {rlimits}")
                } else {
                    format!("no cgroup limits without a delegated subtree; {rlimits}")
                },
                required: false,
                fix: (!w).then(|| {
                    "run airlock as a systemd service with Delegate=yes, or as root".into()
                }),
            }
        }
        CgroupLayout::V1 { memory, pids, cpu } => {
            let have: Vec<&str> = [("memory", &memory), ("pids", &pids), ("cpu", &cpu)]
                .iter()
                .filter(|(_, p)| p.as_deref().is_some_and(writable))
                .map(|(n, _)| *n)
                .collect();
            let all = have.len() == 3;
            Feature {
                id: "cgroups",
                state: if all { State::Ok } else { State::Degraded },
                detail: format!(
                    "v1 (hybrid or legacy layout); writable controllers: {}",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
                airlock: format!("a v1 cgroup per run for {}; {rlimits}",
                    if have.is_empty() { "nothing".to_string() } else { have.join(", ") }),
                required: false,
                fix: (!all).then(|| {
                    "boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2, or run airlock as root".into()
                }),
            }
        }
        CgroupLayout::None => Feature {
            id: "cgroups",
            state: State::Missing,
            detail: "no cgroup hierarchy with memory, pids or cpu is mounted".into(),
            airlock: format!("no cgroup limits; {rlimits}"),
            required: false,
            fix: Some("mount cgroup2 at /sys/fs/cgroup".into()),
        },
    }
}

fn overlayfs() -> Feature {
    let ok = fs::read_to_string("/proc/filesystems")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().last() == Some("overlay"))
        })
        .unwrap_or(false);
    Feature {
        id: "overlayfs",
        state: if ok { State::Ok } else { State::Degraded },
        detail: if ok {
            "available".into()
        } else {
            "not registered in /proc/filesystems".into()
        },
        airlock: "not needed: the jail uses bind mounts; noted for copy-on-write workdirs".into(),
        required: false,
        fix: None,
    }
}

fn sysctl_flag(
    id: &'static str,
    path: &str,
    want_on: bool,
    good: &str,
    bad: &str,
    fix: &str,
) -> Feature {
    let Some(v) = read_trim(path) else {
        return Feature {
            id,
            state: State::Ok,
            detail: format!(
                "{} absent (this kernel has no such setting)",
                path.trim_start_matches("/proc/sys/")
            ),
            airlock: good.into(),
            required: false,
            fix: None,
        };
    };
    let on = v != "0";
    let fine = on == want_on;
    Feature {
        id,
        state: if fine { State::Ok } else { State::Warning },
        detail: format!(
            "{}={v}",
            path.trim_start_matches("/proc/sys/").replace('/', ".")
        ),
        airlock: if fine { good.into() } else { bad.into() },
        required: false,
        fix: (!fine).then(|| fix.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statfs shortcut finds what the mount table says, where it
    /// applies (paths compared canonically: `cpu` may be a symlink to
    /// `cpu,cpuacct`).
    #[test]
    fn standard_cgroup_layout_agrees_with_the_mount_table() {
        let canon = |l: CgroupLayout| match l {
            CgroupLayout::V2(d) => CgroupLayout::V2(fs::canonicalize(&d).unwrap_or(d)),
            CgroupLayout::V1 { memory, pids, cpu } => {
                let c =
                    |d: Option<std::path::PathBuf>| d.map(|d| fs::canonicalize(&d).unwrap_or(d));
                CgroupLayout::V1 {
                    memory: c(memory),
                    pids: c(pids),
                    cpu: c(cpu),
                }
            }
            CgroupLayout::None => CgroupLayout::None,
        };
        match standard_cgroup_layout() {
            Some(fast) => assert_eq!(canon(fast), canon(mounted_cgroup_layout())),
            None => eprintln!("SKIPPED: no standard cgroup layout at /sys/fs/cgroup"),
        }
    }

    #[test]
    fn every_feature_is_reported_once() {
        let r = probe();
        for id in [
            "user_namespaces",
            "mount_namespace",
            "network_namespace",
            "pid_namespace",
            "ipc_namespace",
            "uts_namespace",
            "landlock",
            "seccomp_filter",
            "seccomp_user_notif",
            "cgroups",
            "overlayfs",
            "dmesg_restrict",
            "legacy_tiocsti",
        ] {
            assert_eq!(r.features.iter().filter(|f| f.id == id).count(), 1, "{id}");
        }
        for f in &r.features {
            assert!(
                f.state == State::Ok || f.fix.is_some() || !f.required,
                "{f:?}"
            );
        }
    }

    #[test]
    fn unshare_probe_reports_errno_for_bad_flags() {
        // An invalid flag combination must come back as an error, not success.
        assert!(try_unshare(-1).is_err());
        assert!(try_unshare(0).is_ok());
    }
}
