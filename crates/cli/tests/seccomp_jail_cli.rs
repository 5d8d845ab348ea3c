//! The seccomp filter as a command inside `airlock run` meets it, for what
//! the escape suite in run_cli.rs does not try: x32 numbers, argument
//! values with high bits set (the kernel acts on the low half, so must the
//! filter), fchmodat2, setuid/setgid bits in a creation mode (open, openat,
//! creat, mknod, mknodat), openat2, and a call through the i386 entry (`int 0x80`),
//! which must kill the command. Both callers (root, unprivileged), as in
//! the escape suite. x86_64 numbers.
#![cfg(target_arch = "x86_64")]

#[macro_use]
mod support;
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    x32_numbers_and_high_bits_are_refused,
    an_i386_call_kills_the_command,
    file_tools_that_set_modes_work_but_not_setuid_ones,
);

/// Runs `script` with python3 in a jail on a fresh workdir.
fn run_py(j: &Jail, script: &str) -> (i32, String, String) {
    let d = workdir();
    let p = d.path().join("probe.py");
    write(&p, script);
    chown_jail(&p);
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/usr/bin/python3", "probe.py"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn x32_numbers_and_high_bits_are_refused(j: &Jail) {
    let (code, out, err) = run_py(
        j,
        r#"
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_ulong  # full 64-bit arguments (ctypes passes a bare int as a C int)
HI = 1 << 32
def sc(name, nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *[L(a) if isinstance(a, int) else a for a in args])
    if r == 0 and nr == 56:
        os._exit(0)  # a clone that was let through: the copy leaves at once
    print("probe", name, "OK" if r != -1 else errno.errorcode.get(ctypes.get_errno()), flush=True)
S = ctypes.c_char_p
X32 = 0x40000000
open("f", "w").close()
fd = os.open("f", os.O_RDONLY)
r, w = os.pipe()
buf = ctypes.create_string_buffer(8)
sc("x32-getpid", X32 | 39)
sc("x32-mount", X32 | 165, S(b"none"), S(b"/tmp"), S(b"tmpfs"), 0, 0)
sc("x32-bpf", X32 | 321, 0, 0, 0)
sc("x32-unshare", X32 | 272, 0x10000000)
sc("ioctl-tiocsti-high-bits", 16, r, HI | 0x5412, buf)
sc("ioctl-tioclinux-high-bits", 16, r, HI | 0x541C, buf)
sc("socket-af-unix-high-bits", 41, HI | 1, 1, 0)
sc("socket-af-netlink-high-bits", 41, HI | 16, 3, 0)
# CLONE_THREAD without CLONE_SIGHAND: the kernel would refuse it (EINVAL).
sc("clone-newuser-high-bits", 56, HI | 0x10000000 | 0x10000, 0, 0, 0, 0)
sc("clone-newnet", 56, 0x40000000 | 0x10000, 0, 0, 0, 0)
sc("fchmodat2-setuid", 452, -100, S(b"f"), 0o4755, 0)
sc("fchmod-setgid-high-bits", 91, fd, HI | 0o2755)
sc("chmod-setuid-high-bits", 90, S(b"f"), HI | 0o4644)
sc("chmod-plain-high-bits", 90, S(b"f"), HI | 0o644)
W = os.O_CREAT | os.O_WRONLY
sc("open-setuid-high-bits", 2, S(b"o1"), W, HI | 0o4755)
sc("openat-setgid", 257, -100, S(b"o2"), W, 0o2755)
sc("openat-no-creat-setuid", 257, -100, S(b"f"), os.O_RDONLY, 0o4000)
sc("creat-setuid", 85, S(b"o3"), 0o4755)
sc("mknod-setgid", 133, S(b"o4"), 0o100000 | 0o2755, 0)
sc("mknodat-setuid-high-bits", 259, -100, S(b"o5"), HI | 0o100000 | 0o4755, 0)
how = (ctypes.c_uint64 * 3)(W, 0o6755, 0)
sc("openat2", 437, -100, S(b"o6"), how, 24)
sc("openat-plain-high-bits", 257, -100, S(b"o7"), W, HI | 0o755)
sc("clone-thread-flags", 56, 0x10000, 0, 0, 0, 0)
sc("getppid", 110)
"#,
    );
    assert_eq!(code, 0, "{out} {err}");
    let got: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|l| l.strip_prefix("probe "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    let want = [
        ("x32-getpid", "EPERM"),
        ("x32-mount", "EPERM"),
        ("x32-bpf", "EPERM"),
        ("x32-unshare", "EPERM"),
        ("ioctl-tiocsti-high-bits", "EPERM"),
        ("ioctl-tioclinux-high-bits", "EPERM"),
        ("socket-af-unix-high-bits", "EPERM"),
        ("socket-af-netlink-high-bits", "EPERM"),
        ("clone-newuser-high-bits", "EPERM"),
        ("clone-newnet", "EPERM"),
        ("fchmodat2-setuid", "EPERM"),
        ("fchmod-setgid-high-bits", "EPERM"),
        ("chmod-setuid-high-bits", "EPERM"),
        // Not refused: the kernel sees mode 0644, and CLONE_THREAD alone
        // reaches the kernel, which refuses it itself.
        ("chmod-plain-high-bits", "OK"),
        // Setuid/setgid bits at creation; openat2, whose mode the filter
        // cannot read, is answered as by a kernel without it.
        ("open-setuid-high-bits", "EPERM"),
        ("openat-setgid", "EPERM"),
        ("openat-no-creat-setuid", "EPERM"),
        ("creat-setuid", "EPERM"),
        ("mknod-setgid", "EPERM"),
        ("mknodat-setuid-high-bits", "EPERM"),
        ("openat2", "ENOSYS"),
        ("openat-plain-high-bits", "OK"),
        ("clone-thread-flags", "EINVAL"),
        ("getppid", "OK"),
    ];
    assert_eq!(got, want, "{out} {err}");
}

fn an_i386_call_kills_the_command(j: &Jail) {
    // `mov eax, 20 (i386 getpid); int 0x80; ret` in an executable page.
    let (code, out, err) = run_py(
        j,
        r#"
import ctypes, mmap
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0xc3]))
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print("before", flush=True)
print("after", f(), flush=True)
"#,
    );
    // Killed by SIGSYS (31): 128 + 31.
    assert_eq!(code, 159, "{out} {err}");
    assert_eq!(out, "before\n", "{err}");
}

/// coreutils writes the mode as an ACL (`system.posix_acl_access`) first
/// and falls back to chmod only when xattrs are unsupported: the filter's
/// EOPNOTSUPP for xattr writes keeps `install -m`, `cp -p` and `cp -a`
/// working (EPERM made each fail), while a setuid mode still fails, at
/// creation or through chmod.
fn file_tools_that_set_modes_work_but_not_setuid_ones(j: &Jail) {
    let d = workdir();
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args([
            "--",
            "/bin/sh",
            "-c",
            "install -m 750 /bin/true i; echo install=$?; cp -p /bin/true p; echo cp-p=$?; \
             cp -a /bin/true a; echo cp-a=$?; install -m 4755 /bin/true s 2>&1; echo install-4755=$?; \
             mkdir m && install -m 2755 -d m/g 2>&1; echo install-d-2755=$?; \
             tar cf t.tar i && mkdir x && tar xf t.tar -C x; echo tar=$?; stat -c '%n %a' i p a s x/i",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    for want in [
        "install=0",
        "cp-p=0",
        "cp-a=0",
        "Operation not permitted",
        "install-4755=1",
        "install-d-2755=1",
        "tar=0",
        "i 750",
        "p 755",
        "a 755",
        "s 600",
        "x/i 750",
    ] {
        assert!(out.contains(want), "no {want:?} in {out} {err}");
    }
}
