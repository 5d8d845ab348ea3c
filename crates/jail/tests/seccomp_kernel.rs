//! The jail's seccomp filter on the real kernel: a forked child installs
//! it and makes each denied call class (every call denied outright, the
//! namespace flags of clone, clone3, terminal injection, the refused socket
//! families, setuid/setgid bits through each chmod call and in a creation
//! mode through open, openat, creat, mknod and mknodat, openat2, x32
//! numbers, a foreign architecture, an xattr write), and ordinary calls. A control child
//! without the filter makes the argument-rule and x32 calls too, to show
//! that their errors come from the filter and not from the kernel.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use airlock_jail::seccomp;

struct Probe {
    name: String,
    nr: libc::c_long,
    args: [u64; 6],
}

fn probe(name: &str, nr: libc::c_long, args: [u64; 6]) -> Probe {
    Probe {
        name: name.into(),
        nr,
        args,
    }
}

const X32: libc::c_long = 0x4000_0000;
const SYS_FCHMODAT2: libc::c_long = 452;
const SYS_OPENAT2: libc::c_long = 437;
const HI: u64 = 1 << 32;

/// Runs the probes in a forked child, with or without the jail's filter,
/// and returns each call's result (the value, or -errno).
fn run_probes(filter: bool, probes: &[Probe]) -> Vec<i64> {
    let progs = seccomp::compile().expect("filter compiles");
    let mut results = vec![0i64; probes.len()];
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // The child: only system calls from here (the test harness has
        // other threads, whose locks a fork may have copied held).
        unsafe {
            libc::close(fds[0]);
            // No controlling terminal for vhangup, and its own session.
            libc::setsid();
            if filter && seccomp::apply(&progs).is_err() {
                libc::_exit(100);
            }
            for (i, p) in probes.iter().enumerate() {
                let a = p.args;
                let r = libc::syscall(p.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
                if r == 0 && p.nr == libc::SYS_clone {
                    // A fork-like clone that went through: the copy leaves.
                    libc::_exit(0);
                }
                results[i] = if r < 0 {
                    -i64::from(*libc::__errno_location())
                } else {
                    r
                };
            }
            // Reap any clone that went through.
            while libc::waitpid(-1, std::ptr::null_mut(), libc::__WALL) > 0 {}
            let bytes = results.len() * 8;
            let w = libc::write(fds[1], results.as_ptr().cast(), bytes);
            libc::_exit(if w == bytes as isize { 0 } else { 101 });
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut buf = Vec::new();
    let mut f = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    std::io::Read::read_to_end(&mut f, &mut buf).unwrap();
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "probe child: status {status:#x}"
    );
    assert_eq!(buf.len(), probes.len() * 8);
    buf.chunks(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn errno_name(r: i64) -> String {
    if r >= 0 {
        return format!("ok ({r})");
    }
    std::io::Error::from_raw_os_error(-r as i32).to_string()
}

/// A scratch file, a pipe and the probes whose arguments matter.
struct Fixture {
    _dir: tempfile::TempDir,
    _path: CString,
    _file: std::fs::File,
    _pipe: [OwnedFd; 2],
    _out: Box<[u64; 1]>,
    _names: Vec<CString>,
    _xattr_name: CString,
    /// The calls the filter must refuse because of an argument or x32, and
    /// the errno it gives.
    refused: Vec<(Probe, i32)>,
    /// Calls it must let through (result checked to be no filter errno).
    allowed: Vec<Probe>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = std::fs::File::create(&path).unwrap();
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let p = cpath.as_ptr() as u64;
    let fd = file.as_raw_fd() as u64;
    let mut pfd = [0; 2];
    assert_eq!(unsafe { libc::pipe(pfd.as_mut_ptr()) }, 0);
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(pfd[0]), OwnedFd::from_raw_fd(pfd[1])) };
    let pr = r.as_raw_fd() as u64;
    let byte = b"x".as_ptr() as u64;
    // Where FIONREAD writes its count.
    let mut out = Box::new([0u64; 1]);
    let outp = out.as_mut_ptr() as u64;
    let at = libc::AT_FDCWD as u64;
    let eperm = libc::EPERM;
    let mut refused = Vec::new();
    // clone with each namespace flag, and CLONE_THREAD without
    // CLONE_SIGHAND so that the kernel refuses it (EINVAL) should the
    // filter ever let it through.
    let thread = libc::CLONE_THREAD as u64;
    for (n, f) in [
        ("NEWUSER", libc::CLONE_NEWUSER),
        ("NEWNS", libc::CLONE_NEWNS),
        ("NEWPID", libc::CLONE_NEWPID),
        ("NEWNET", libc::CLONE_NEWNET),
        ("NEWIPC", libc::CLONE_NEWIPC),
        ("NEWUTS", libc::CLONE_NEWUTS),
        ("NEWCGROUP", libc::CLONE_NEWCGROUP),
    ] {
        let f = f as u64 | thread;
        refused.push((
            probe(&format!("clone {n}"), libc::SYS_clone, [f, 0, 0, 0, 0, 0]),
            eperm,
        ));
        refused.push((
            probe(
                &format!("clone {n} high bits"),
                libc::SYS_clone,
                [f | HI, 0, 0, 0, 0, 0],
            ),
            eperm,
        ));
    }
    refused.push((probe("clone3", libc::SYS_clone3, [0; 6]), libc::ENOSYS));
    for (n, cmd) in [("TIOCSTI", libc::TIOCSTI), ("TIOCLINUX", libc::TIOCLINUX)] {
        refused.push((probe(n, libc::SYS_ioctl, [pr, cmd, byte, 0, 0, 0]), eperm));
        refused.push((
            probe(
                &format!("{n} high bits"),
                libc::SYS_ioctl,
                [pr, cmd | HI, byte, 0, 0, 0],
            ),
            eperm,
        ));
    }
    for (n, fam, ty) in [
        ("AF_UNIX", libc::AF_UNIX, libc::SOCK_STREAM),
        ("AF_NETLINK", libc::AF_NETLINK, libc::SOCK_RAW),
        ("AF_PACKET", libc::AF_PACKET, libc::SOCK_RAW),
        ("AF_VSOCK", libc::AF_VSOCK, libc::SOCK_STREAM),
    ] {
        let (fam, ty) = (fam as u64, ty as u64);
        refused.push((probe(n, libc::SYS_socket, [fam, ty, 0, 0, 0, 0]), eperm));
        refused.push((
            probe(
                &format!("{n} high bits"),
                libc::SYS_socket,
                [fam | HI, ty, 0, 0, 0, 0],
            ),
            eperm,
        ));
    }
    for (n, mode) in [
        ("4755", 0o4755),
        ("2755", 0o2755),
        ("6755 high bits", HI | 0o6755),
    ] {
        refused.push((
            probe(
                &format!("chmod {n}"),
                libc::SYS_chmod,
                [p, mode, 0, 0, 0, 0],
            ),
            eperm,
        ));
        refused.push((
            probe(
                &format!("fchmod {n}"),
                libc::SYS_fchmod,
                [fd, mode, 0, 0, 0, 0],
            ),
            eperm,
        ));
        refused.push((
            probe(
                &format!("fchmodat {n}"),
                libc::SYS_fchmodat,
                [at, p, mode, 0, 0, 0],
            ),
            eperm,
        ));
        refused.push((
            probe(
                &format!("fchmodat2 {n}"),
                SYS_FCHMODAT2,
                [at, p, mode, 0, 0, 0],
            ),
            eperm,
        ));
    }
    // Setuid/setgid bits at creation: a new file, an existing one, with and
    // without O_CREAT, with high bits. Without the filter each of these
    // creates or opens the file.
    let xattr_name = CString::new("user.airlock").unwrap();
    let mut names = Vec::new();
    let mut name = |n: &str| {
        let c = CString::new(dir.path().join(n).as_os_str().as_encoded_bytes()).unwrap();
        let ptr = c.as_ptr() as u64;
        names.push(c);
        ptr
    };
    let creat = (libc::O_CREAT | libc::O_WRONLY) as u64;
    let ifreg = u64::from(libc::S_IFREG);
    for (n, mode) in [
        ("4755", 0o4755),
        ("2755", 0o2755),
        ("6755 high bits", HI | 0o6755),
    ] {
        let new = name(&format!("new {n}"));
        let (nod, nodat) = (name(&format!("mknod {n}")), name(&format!("mknodat {n}")));
        for (what, nr, args) in [
            ("open", libc::SYS_open, [new, creat, mode, 0, 0, 0]),
            ("open existing", libc::SYS_open, [p, creat, mode, 0, 0, 0]),
            ("open no O_CREAT", libc::SYS_open, [p, 0, mode, 0, 0, 0]),
            ("openat", libc::SYS_openat, [at, new, creat, mode, 0, 0]),
            ("creat", libc::SYS_creat, [new, mode, 0, 0, 0, 0]),
            ("mknod", libc::SYS_mknod, [nod, ifreg | mode, 0, 0, 0, 0]),
            (
                "mknodat",
                libc::SYS_mknodat,
                [at, nodat, ifreg | mode, 0, 0, 0],
            ),
        ] {
            refused.push((probe(&format!("{what} {n}"), nr, args), eperm));
        }
    }
    // Its mode is in memory the filter cannot read: ENOSYS, so that
    // programs fall back to openat. Without the filter: EFAULT.
    refused.push((
        probe("openat2", SYS_OPENAT2, [at, p, 0, 24, 0, 0]),
        libc::ENOSYS,
    ));
    // An xattr write that the kernel allows the file's owner: refused as on
    // a file system without xattrs.
    let (xn, xval) = (xattr_name.as_ptr() as u64, b"v".as_ptr() as u64);
    refused.push((
        probe(
            "fsetxattr user.*",
            libc::SYS_fsetxattr,
            [fd, xn, xval, 1, 0, 0],
        ),
        libc::EOPNOTSUPP,
    ));
    // x32 numbers, of an ordinary call and of denied ones.
    for (n, nr) in [
        ("x32 getpid", libc::SYS_getpid),
        ("x32 mount", libc::SYS_mount),
        ("x32 bpf", libc::SYS_bpf),
    ] {
        refused.push((probe(n, X32 | nr, [0; 6]), eperm));
    }
    let allowed = vec![
        probe("getppid", libc::SYS_getppid, [0; 6]),
        probe("getpid", libc::SYS_getpid, [0; 6]),
        probe(
            "fork-like clone",
            libc::SYS_clone,
            [libc::SIGCHLD as u64, 0, 0, 0, 0, 0],
        ),
        probe("socket AF_INET", libc::SYS_socket, [2, 1, 0, 0, 0, 0]),
        probe("socket AF_INET6", libc::SYS_socket, [10, 2, 0, 0, 0, 0]),
        probe(
            "ioctl FIONREAD",
            libc::SYS_ioctl,
            [pr, libc::FIONREAD, outp, 0, 0, 0],
        ),
        probe("chmod 0644", libc::SYS_chmod, [p, 0o644, 0, 0, 0, 0]),
        probe(
            "chmod 1755 high bits",
            libc::SYS_chmod,
            [p, HI | 0o1755, 0, 0, 0, 0],
        ),
        probe("fchmod 0600", libc::SYS_fchmod, [fd, 0o600, 0, 0, 0, 0]),
        probe("fchmodat 0640", libc::SYS_fchmodat, [at, p, 0o640, 0, 0, 0]),
        probe("open O_RDONLY", libc::SYS_open, [p, 0, 0, 0, 0, 0]),
        probe(
            "open O_CREAT 0755 high bits",
            libc::SYS_open,
            [name("o"), creat, HI | 0o755, 0, 0, 0],
        ),
        probe(
            "openat O_CREAT 0644",
            libc::SYS_openat,
            [at, name("oa"), creat, 0o644, 0, 0],
        ),
        probe(
            "openat O_TMPFILE 0600",
            libc::SYS_openat,
            [
                at,
                name(""),
                (libc::O_TMPFILE | libc::O_RDWR) as u64,
                0o600,
                0,
                0,
            ],
        ),
        probe(
            "creat 0755",
            libc::SYS_creat,
            [name("c"), 0o755, 0, 0, 0, 0],
        ),
        probe(
            "mknod S_IFREG|0755",
            libc::SYS_mknod,
            [name("m"), ifreg | 0o755, 0, 0, 0, 0],
        ),
        probe(
            "mknodat S_IFIFO|1777",
            libc::SYS_mknodat,
            [at, name("ma"), u64::from(libc::S_IFIFO) | 0o1777, 0, 0, 0],
        ),
        probe(
            "write",
            libc::SYS_write,
            [w.as_raw_fd() as u64, byte, 1, 0, 0, 0],
        ),
    ];
    Fixture {
        _dir: dir,
        _path: cpath,
        _file: file,
        _pipe: [r, w],
        _out: out,
        _names: names,
        _xattr_name: xattr_name,
        refused,
        allowed,
    }
}

#[test]
fn every_denied_call_fails_with_eperm_under_the_filter() {
    // All arguments all ones: should the filter ever let one through, the
    // kernel refuses these arguments (bad flags, addresses, descriptors,
    // magic numbers) rather than act. The xattr writes answer EOPNOTSUPP.
    let eperm = seccomp::denied_names().map(|n| (n, libc::EPERM));
    let xattr = seccomp::xattr_write_names().map(|n| (n, libc::EOPNOTSUPP));
    let want: Vec<(&str, i32)> = eperm.chain(xattr).collect();
    let probes: Vec<Probe> = want
        .iter()
        .map(|(n, _)| probe(n, nr_of(n), [u64::MAX; 6]))
        .collect();
    assert!(probes.len() >= 55);
    assert_eq!(seccomp::xattr_write_names().count(), 4);
    let got = run_probes(true, &probes);
    let wrong: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|((_, e), r)| **r != -i64::from(*e))
        .map(|((n, e), r)| {
            format!(
                "{n}: {}, want {}",
                errno_name(*r),
                errno_name(-i64::from(*e))
            )
        })
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
}

/// The numbers behind the denied names, written out independently of
/// the policy table (x86_64 numbering).
#[cfg(target_arch = "x86_64")]
fn nr_of(name: &str) -> libc::c_long {
    match name {
        "bpf" => 321,
        "perf_event_open" => 298,
        "keyctl" => 250,
        "add_key" => 248,
        "request_key" => 249,
        "ptrace" => 101,
        "process_vm_readv" => 310,
        "process_vm_writev" => 311,
        "kcmp" => 312,
        "pidfd_getfd" => 438,
        "io_uring_setup" => 425,
        "io_uring_enter" => 426,
        "io_uring_register" => 427,
        "userfaultfd" => 323,
        "kexec_load" => 246,
        "kexec_file_load" => 320,
        "init_module" => 175,
        "finit_module" => 313,
        "delete_module" => 176,
        "mount" => 165,
        "umount2" => 166,
        "pivot_root" => 155,
        "chroot" => 161,
        "unshare" => 272,
        "setns" => 308,
        "open_tree" => 428,
        "move_mount" => 429,
        "fsopen" => 430,
        "fsconfig" => 431,
        "fsmount" => 432,
        "fspick" => 433,
        "mount_setattr" => 442,
        "open_by_handle_at" => 304,
        "name_to_handle_at" => 303,
        "reboot" => 169,
        "swapon" => 167,
        "swapoff" => 168,
        "acct" => 163,
        "quotactl" => 179,
        "syslog" => 103,
        "personality" => 135,
        "vhangup" => 153,
        "iopl" => 172,
        "ioperm" => 173,
        "settimeofday" => 164,
        "clock_settime" => 227,
        "clock_adjtime" => 305,
        "adjtimex" => 159,
        "fanotify_init" => 300,
        "lookup_dcookie" => 212,
        "uselib" => 134,
        "setxattr" => 188,
        "lsetxattr" => 189,
        "fsetxattr" => 190,
        "setxattrat" => 463,
        n => panic!("no number written down for {n}"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn nr_of(name: &str) -> libc::c_long {
    panic!("no numbers written down for this architecture ({name})")
}

#[test]
fn argument_rules_and_x32_are_enforced_by_the_filter() {
    let fx = fixture();
    let refused: Vec<Probe> = fx
        .refused
        .iter()
        .map(|(p, _)| probe(&p.name, p.nr, p.args))
        .collect();
    let got = run_probes(true, &refused);
    let control = run_probes(false, &refused);
    let mut wrong = Vec::new();
    for (((p, errno), r), c) in fx.refused.iter().zip(&got).zip(&control) {
        if *r != -i64::from(*errno) {
            wrong.push(format!("{}: {} under the filter", p.name, errno_name(*r)));
        }
        // Without the filter the kernel answers something else: EINVAL
        // for the clones, ENOTTY for a pipe's ioctl, a socket or
        // EAFNOSUPPORT, success for chmod of one's own file, ENOSYS for
        // x32 (disabled here) or the call itself.
        if *c == -i64::from(*errno)
            && !(p.name.starts_with("AF_PACKET") && unsafe { libc::geteuid() } != 0)
        {
            wrong.push(format!(
                "{}: {} without the filter too",
                p.name,
                errno_name(*c)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn ordinary_calls_pass_the_filter() {
    let fx = fixture();
    let got = run_probes(true, &fx.allowed);
    let wrong: Vec<String> = fx
        .allowed
        .iter()
        .zip(&got)
        .filter(|(_, r)| **r < 0)
        .map(|(p, r)| format!("{}: {}", p.name, errno_name(*r)))
        .collect();
    assert!(wrong.is_empty(), "{wrong:?}");
    // getppid answers the test process.
    assert_eq!(got[0], i64::from(std::process::id()));
}

/// A call through the i386 entry (`int 0x80`) carries another
/// architecture token: the process is killed, as its number would name
/// another call.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_foreign_architecture_call_kills_the_process() {
    let progs = seccomp::compile().unwrap();
    let status = |filter: bool| {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            unsafe {
                if filter && seccomp::apply(&progs).is_err() {
                    libc::_exit(100);
                }
                let r: i32;
                // i386 getpid (20).
                core::arch::asm!("int 0x80", inlateout("eax") 20i32 => r, options(nostack));
                libc::_exit(if r == libc::getpid() { 0 } else { 1 });
            }
        }
        let mut st = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        st
    };
    let control = status(false);
    if !(libc::WIFEXITED(control) && libc::WEXITSTATUS(control) == 0) {
        eprintln!("skipped: no i386 syscall entry here (status {control:#x})");
        return;
    }
    let st = status(true);
    assert!(
        libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSYS,
        "status {st:#x}"
    );
}
