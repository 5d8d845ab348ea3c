//! The jail's init: `airlock __jail-init`, a fresh single-threaded process
//! the launcher starts with the spec on fd 3, or the same code in a process
//! `airlock run` forked early ([`crate::Zygote`]). It builds the jail and
//! runs the command in three processes:
//!
//! * **A** (host pid namespace): creates the network, ipc and uts
//!   namespaces (a user namespace first only when not root) and brings up
//!   loopback while the launcher is still preparing the spec; then joins the
//!   cgroup, sets rlimits, creates the pid and cgroup namespaces, hands the
//!   relay socket out, maps the jail's uid for **B** when running as root,
//!   forwards signals to B.
//! * **B** (pid 1 inside): builds the filesystem view and pivots into it,
//!   then (when root) enters its own user namespace so the workload never
//!   holds a host-root uid, forks C, forwards signals, reaps orphans and
//!   reports C's wait status. When B exits the kernel kills everything left.
//! * **C** (the workload): new session, capabilities dropped,
//!   no_new_privs, landlock, seccomp, then execve.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};

use crate::spec::{InitReport, InitSpec, JAIL_GID, JAIL_UID, RELAY_FD, REPORT_FD, SPEC_FD};
use crate::sys::{self, check, write_file, Result};
use crate::{landlock_rules, mounts, seccomp};

const FORWARDED: &[i32] = &[
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCONT,
    libc::SIGALRM,
];

/// Entry point of `airlock __jail-init` (and of the init a
/// [`crate::Zygote`] forks). Never returns.
pub fn main() -> ! {
    unsafe {
        let fl = libc::fcntl(REPORT_FD, libc::F_GETFD);
        libc::fcntl(REPORT_FD, libc::F_SETFD, fl | libc::FD_CLOEXEC);
    }
    match run_a() {
        Ok(()) => unsafe { libc::_exit(0) },
        Err(e) => {
            report(&InitReport::Error(e));
            unsafe { libc::_exit(125) }
        }
    }
}

fn report(r: &InitReport) {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(REPORT_FD) });
    let _ = f.write_all(&line);
}

fn read_spec() -> Result<InitSpec> {
    let mut f = unsafe { std::fs::File::from_raw_fd(SPEC_FD) };
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| format!("read the jail spec: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("parse the jail spec: {e}"))
}

fn run_a() -> Result<()> {
    // First what does not depend on the spec, while the launcher is still
    // resolving it (a forked init starts before the config is even read):
    // the user namespace (unprivileged), then the network, ipc and uts
    // namespaces, the network's setup being the costliest step here.
    let root = unsafe { libc::geteuid() } == 0;
    let launcher = unsafe { libc::getppid() };
    if !root {
        // Unprivileged: the user namespace comes first, mapping our own uid.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        unshare(libc::CLONE_NEWUSER)?;
        write_file(Path::new("/proc/self/setgroups"), "deny")?;
        write_file(
            Path::new("/proc/self/uid_map"),
            &format!("{JAIL_UID} {uid} 1"),
        )?;
        write_file(
            Path::new("/proc/self/gid_map"),
            &format!("{JAIL_GID} {gid} 1"),
        )?;
    }
    // Not before the maps above: it makes /proc/self root-owned.
    unsafe {
        check(libc::prctl(libc::PR_SET_DUMPABLE, 0), || {
            "PR_SET_DUMPABLE".into()
        })?;
    }
    unshare(libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS)?;
    loopback_up()?;
    // The filters do not depend on the spec either; B and C inherit them.
    let filters = seccomp::compile()?;

    let spec = read_spec()?;
    // "0" is the writer itself; see `Cgroup::procs_files` for why v1 uses
    // `tasks` (this process is still single-threaded here, and forks every
    // other process of the jail later).
    for procs in &spec.cgroup_procs {
        write_file(procs, "0")?;
    }
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL), || {
            "PR_SET_PDEATHSIG".into()
        })?;
        // A launcher that died before the line above sends no signal.
        if libc::getppid() != launcher {
            return Err("the launcher is gone".into());
        }
    }
    set_rlimits(&spec)?;
    if !root {
        // Inside the new user namespace: the kernel counts processes per
        // user namespace, so this counts the jail's processes alone (in
        // the host's namespace it would also cap every other process of
        // the caller's uid).
        set_nproc(&spec)?;
    }
    // After joining the cgroup: the cgroup namespace is rooted at the
    // run's own group. The mount namespace is B's alone (B's pivot_root
    // must not move A).
    unshare(libc::CLONE_NEWPID | libc::CLONE_NEWCGROUP)?;
    if spec.relay_ports.is_empty() {
        unsafe { libc::close(RELAY_FD) };
    } else {
        send_relay_listeners(&spec.relay_ports)?;
    }

    let (ready_r, ready_w) = pipe()?;
    let (mapped_r, mapped_w) = pipe()?;
    block_signals()?;
    let b = unsafe { libc::fork() };
    if b < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if b == 0 {
        unsafe {
            libc::close(ready_r);
            libc::close(mapped_w);
        }
        let code = match run_b(&spec, root, ready_w, mapped_r, &filters) {
            Ok(()) => 0,
            Err(e) => {
                report(&InitReport::Error(e));
                125
            }
        };
        unsafe { libc::_exit(code) }
    }
    unsafe {
        libc::close(ready_w);
        libc::close(mapped_r);
    }
    if root {
        // B has entered its own user namespace: map the jail uid/gid to an
        // unprivileged host uid. Only a process outside may write this.
        let mut byte = [0u8; 1];
        let n = unsafe { libc::read(ready_r, byte.as_mut_ptr().cast(), 1) };
        if n == 1 {
            let p = PathBuf::from(format!("/proc/{b}"));
            write_file(&p.join("setgroups"), "deny")?;
            write_file(
                &p.join("uid_map"),
                &format!("{JAIL_UID} {} 1", spec.host_uid),
            )?;
            write_file(
                &p.join("gid_map"),
                &format!("{JAIL_GID} {} 1", spec.host_gid),
            )?;
            let _ = unsafe { libc::write(mapped_w, b"m".as_ptr().cast(), 1) };
        }
    }
    unsafe {
        libc::close(ready_r);
        libc::close(mapped_w);
        // B has the command's stdio; this process never writes to it, and
        // holding it would keep the caller's pipes open until our exit.
        close_stdio();
    }
    supervise(b, false);
    if spec.background_exit {
        sys::lower_priority();
    }
    Ok(())
}

fn run_b(
    spec: &InitSpec,
    root: bool,
    ready_w: i32,
    mapped_r: i32,
    filters: &[seccomp::BpfProgram],
) -> Result<()> {
    unsafe {
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL), || {
            "PR_SET_PDEATHSIG".into()
        })?;
        let h = spec.hostname.as_bytes();
        check(libc::sethostname(h.as_ptr().cast(), h.len()), || {
            "sethostname".into()
        })?;
    }
    unshare(libc::CLONE_NEWNS)?;
    mounts::build_root(spec)?;
    if root {
        unsafe {
            check(libc::setgroups(0, std::ptr::null()), || "setgroups".into())?;
        }
        unshare(libc::CLONE_NEWUSER)?;
        // As for the unprivileged caller in A: inside the new user
        // namespace, so only this jail's processes count, not every
        // process of the host uid the jail is mapped to.
        set_nproc(spec)?;
        let _ = unsafe { libc::write(ready_w, b"r".as_ptr().cast(), 1) };
        let mut byte = [0u8; 1];
        let n = unsafe { libc::read(mapped_r, byte.as_mut_ptr().cast(), 1) };
        if n != 1 {
            return Err("the launcher did not map the jail's uid".into());
        }
    }
    unsafe {
        libc::close(ready_w);
        libc::close(mapped_r);
        check(libc::setresgid(JAIL_GID, JAIL_GID, JAIL_GID), || {
            "setresgid".into()
        })?;
        check(libc::setresuid(JAIL_UID, JAIL_UID, JAIL_UID), || {
            "setresuid".into()
        })?;
        // Changing credentials cleared the parent-death signal: re-arm it,
        // so a SIGKILL to the launcher-side init still ends the whole jail.
        check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL), || {
            "PR_SET_PDEATHSIG".into()
        })?;
    }
    let c = spawn_c(spec, filters)?;
    let status = supervise(c, true);
    // Whatever the command left running dies now, not at this process's
    // exit: the status line then tells the launcher that nothing inside
    // can act any more (it scans for planted files and tears down on it).
    kill_all_and_reap();
    // Our exit (tearing down the mount namespace) comes after the status:
    // the caller's end of the command's stdio must not wait for it.
    close_stdio();
    report(&InitReport::Status(status));
    if spec.background_exit {
        // The mount namespace's teardown comes with this process's exit.
        sys::lower_priority();
    }
    Ok(())
}

/// As the pid namespace's init: SIGKILLs every other process in it and
/// reaps until none is left. kill(-1) reaches all of them (all run as the
/// jail's uid, descendants whose parent died are reparented to us, and a
/// process with SIGKILL pending cannot fork), so once wait reports no
/// children the namespace holds this process alone.
fn kill_all_and_reap() {
    loop {
        unsafe { libc::kill(-1, libc::SIGKILL) };
        let mut st = 0;
        let r = unsafe { libc::waitpid(-1, &mut st, 0) };
        if r < 0 && sys::errno() == libc::ECHILD {
            return;
        }
    }
}

/// What C's entry point gets from B.
struct CArgs<'a> {
    spec: &'a InitSpec,
    filters: &'a [seccomp::BpfProgram],
}

extern "C" fn c_main(arg: *mut libc::c_void) -> libc::c_int {
    let a = unsafe { &*(arg as *const CArgs) };
    let e = run_c(a.spec, a.filters);
    report(&e);
    let code = match e {
        InitReport::ExecFailed { errno, .. } if errno == libc::ENOENT => 127,
        InitReport::ExecFailed { .. } => 126,
        _ => 125,
    };
    unsafe { libc::_exit(code) }
}

/// Starts C the way posix_spawn does: in B's memory (`CLONE_VM`), on a
/// stack of its own, with B suspended until C has executed the command or
/// exited (`CLONE_VFORK`). No page tables are copied, no copy-on-write
/// faults follow in either process, and C finds B's code already mapped;
/// with B stopped and single-threaded, C may allocate and run ordinary
/// code. Everything C changes that it must not share is per task without
/// `CLONE_FILES`, `CLONE_FS`, `CLONE_SIGHAND` or `CLONE_THREAD`: its
/// descriptor table, working directory, signal dispositions and mask,
/// session, credentials and capabilities, no_new_privs, landlock domain and
/// seccomp filters; at execve it leaves B's memory for the command's own.
fn spawn_c(spec: &InitSpec, filters: &[seccomp::BpfProgram]) -> Result<libc::pid_t> {
    const STACK: usize = 1 << 20;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
    unsafe {
        let stack = libc::mmap(
            std::ptr::null_mut(),
            STACK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if stack == libc::MAP_FAILED {
            return Err(format!("C's stack: {}", std::io::Error::last_os_error()));
        }
        // A guard page: an overflow faults instead of writing B's memory.
        if libc::mprotect(stack, page, libc::PROT_NONE) != 0 {
            let e = std::io::Error::last_os_error();
            libc::munmap(stack, STACK);
            return Err(format!("C's stack guard: {e}"));
        }
        let args = CArgs { spec, filters };
        let top = stack.cast::<u8>().add(STACK).cast::<libc::c_void>();
        let c = libc::clone(
            c_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const CArgs as *mut libc::c_void,
        );
        let err = std::io::Error::last_os_error();
        // C has executed the command or exited: its stack is free.
        libc::munmap(stack, STACK);
        if c < 0 {
            return Err(format!("clone: {err}"));
        }
        Ok(c)
    }
}

/// Prepares the workload and executes it; returns only on failure.
fn run_c(spec: &InitSpec, filters: &[seccomp::BpfProgram]) -> InitReport {
    let err = InitReport::Error;
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        // SIGPIPE too: the Rust runtime ignores it in this process, and an
        // ignored signal stays ignored across execve (`yes | head` would
        // then print "Broken pipe" errors instead of ending quietly).
        for s in FORWARDED
            .iter()
            .chain([libc::SIGCHLD, libc::SIGPIPE].iter())
        {
            libc::signal(*s, libc::SIG_DFL);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::setsid();
    }
    if let Err(e) = std::env::set_current_dir(&spec.workdir) {
        return err(format!(
            "cannot enter the workdir {}: {e}",
            spec.workdir.display()
        ));
    }
    if let Err(e) = drop_capabilities() {
        return err(e);
    }
    if let Err(e) = landlock_rules::apply(&spec.writable) {
        return err(e);
    }
    if let Err(e) = seccomp::apply(filters) {
        return err(e);
    }
    // Every inherited descriptor above stderr closes at exec.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
    }
    exec(spec)
}

fn exec(spec: &InitSpec) -> InitReport {
    let Some(cmd) = spec.argv.first() else {
        return InitReport::Error("no command given".into());
    };
    let path_var = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or("/usr/bin:/bin");
    let candidates: Vec<PathBuf> = if cmd.contains('/') {
        vec![PathBuf::from(cmd)]
    } else {
        path_var
            .split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(cmd))
            .collect()
    };
    let to_c = |s: &str| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = spec.argv.iter().map(|a| to_c(a)).collect();
    let envp: Vec<CString> = spec
        .env
        .iter()
        .map(|(k, v)| to_c(&format!("{k}={v}")))
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|c| c.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let mut last = libc::ENOENT;
    for c in candidates {
        let Ok(p) = sys::cstr(&c) else { continue };
        unsafe { libc::execve(p.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        let e = sys::errno();
        // Like a shell: "not found" unless some candidate existed; a PATH
        // directory the jail may not search counts as not there.
        let unsearchable = e == libc::EACCES
            && !cmd.contains('/')
            && c.parent()
                .and_then(|d| sys::cstr(d).ok())
                .is_some_and(|d| unsafe { libc::access(d.as_ptr(), libc::X_OK) } != 0);
        if e != libc::ENOENT && e != libc::ENOTDIR && !unsearchable {
            last = e;
        }
    }
    InitReport::ExecFailed {
        errno: last,
        message: format!("{cmd}: {}", std::io::Error::from_raw_os_error(last)),
    }
}

fn drop_capabilities() -> Result<()> {
    unsafe {
        // Capabilities are numbered 0..=cap_last_cap: EINVAL ends them.
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && sys::errno() == libc::EINVAL
            {
                break;
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        let h = Header {
            version: 0x2008_0522,
            pid: 0,
        };
        let d = [
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            Data {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check(
            libc::syscall(libc::SYS_capset, &h as *const Header, d.as_ptr()) as i32,
            || "capset".into(),
        )?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), || {
            "PR_SET_NO_NEW_PRIVS".into()
        })?;
    }
    Ok(())
}

fn set_rlimits(spec: &InitSpec) -> Result<()> {
    let set = |res, v: u64, name: &str| -> Result<()> {
        let l = libc::rlimit {
            rlim_cur: v,
            rlim_max: v,
        };
        check(unsafe { libc::setrlimit(res, &l) }, || {
            format!("setrlimit {name}")
        })
        .map(|_| ())
    };
    set(libc::RLIMIT_CORE, 0, "CORE")?;
    set(libc::RLIMIT_CPU, spec.rlimits.cpu_seconds, "CPU")?;
    set(libc::RLIMIT_NOFILE, spec.rlimits.open_files, "NOFILE")?;
    set(libc::RLIMIT_FSIZE, spec.rlimits.file_size, "FSIZE")?;
    if let Some(n) = spec.rlimits.data {
        set(libc::RLIMIT_DATA, n, "DATA")?;
    }
    Ok(())
}

fn set_nproc(spec: &InitSpec) -> Result<()> {
    if let Some(n) = spec.rlimits.nproc {
        let l = libc::rlimit {
            rlim_cur: n,
            rlim_max: n,
        };
        check(unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &l) }, || {
            "setrlimit NPROC".into()
        })?;
    }
    Ok(())
}

fn unshare(flags: libc::c_int) -> Result<()> {
    check(unsafe { libc::unshare(flags) }, || {
        format!("unshare({flags:#x})")
    })
    .map(|_| ())
}

fn pipe() -> Result<(i32, i32)> {
    let mut fds = [0; 2];
    check(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        || "pipe".into(),
    )?;
    Ok((fds[0], fds[1]))
}

extern "C" fn noop(_: libc::c_int) {}

/// Handlers (so pid 1 accepts the signals at all) that are never run: the
/// signals stay blocked and are taken with sigwaitinfo.
fn block_signals() -> Result<()> {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain([libc::SIGCHLD].iter()) {
            libc::signal(*s, noop as *const () as libc::sighandler_t);
            libc::sigaddset(&mut set, *s);
        }
        check(
            libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
            || "sigprocmask".into(),
        )?;
    }
    Ok(())
}

/// Forwards signals to `child` until it exits; as pid 1 also reaps
/// orphans. Returns the child's raw wait status.
fn supervise(child: libc::pid_t, reap_all: bool) -> i32 {
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED.iter().chain([libc::SIGCHLD].iter()) {
            libc::sigaddset(&mut set, *s);
        }
        loop {
            // Reap first: the child may have exited before we got here.
            loop {
                let mut st = 0;
                let who = if reap_all { -1 } else { child };
                let r = libc::waitpid(who, &mut st, libc::WNOHANG);
                if r == child {
                    return st;
                }
                if r <= 0 {
                    break;
                }
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(child, sig);
            }
        }
    }
}

fn loopback_up() -> Result<()> {
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    unsafe {
        let s = check(
            libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0),
            || "socket".into(),
        )?;
        let mut req = IfReq {
            name: [0; 16],
            flags: 0,
            _pad: [0; 22],
        };
        req.name[..2].copy_from_slice(b"lo");
        check(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req), || {
            "SIOCGIFFLAGS lo".into()
        })?;
        req.flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(s, libc::SIOCSIFFLAGS, &req), || {
            "bring up lo".into()
        })?;
        libc::close(s);
    }
    Ok(())
}

/// Listens on the jail's loopback and sends the sockets to the launcher,
/// which relays each connection to the egress proxy from outside.
fn send_relay_listeners(ports: &[u16]) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut listeners = Vec::new();
    for &port in ports {
        listeners.push(
            std::net::TcpListener::bind(("127.0.0.1", port))
                .map_err(|e| format!("listen on the jail's 127.0.0.1:{port}: {e}"))?,
        );
    }
    let fds: Vec<i32> = listeners.iter().map(|l| l.as_raw_fd()).collect();
    let bytes = std::mem::size_of_val(fds.as_slice()) as u32;
    unsafe {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(bytes) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(bytes) as usize;
        std::ptr::copy_nonoverlapping(
            fds.as_ptr() as *const u8,
            libc::CMSG_DATA(c),
            bytes as usize,
        );
        check(libc::sendmsg(RELAY_FD, &msg, 0) as i32, || {
            "send the relay sockets".into()
        })?;
        libc::close(RELAY_FD);
    }
    Ok(())
}

/// Closes descriptors 0-2 in one call (close_range, Linux 5.9), one by one
/// where the kernel lacks it.
fn close_stdio() {
    if unsafe { libc::syscall(libc::SYS_close_range, 0u32, 2u32, 0u32) } != 0 {
        for fd in 0..3 {
            unsafe { libc::close(fd) };
        }
    }
}
