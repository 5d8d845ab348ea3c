//! Builds the jail's filesystem view in a fresh mount namespace and pivots
//! into it: a read-only, nosuid, nodev copy of the host tree; fresh /proc
//! with its dangerous entries covered; a minimal /dev; a private /tmp;
//! writable binds; protected files read-only again; masked paths hidden.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::resolve::{self, Refused};
use crate::spec::InitSpec;
use crate::sys::{self, mount, mount_setattr, Result};
use crate::sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

const RO: u64 = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

/// /proc entries that reveal or change the host: covered read-only or hidden.
const PROC_RO: &[&str] = &["sys", "irq", "bus", "fs", "sysrq-trigger"];
const PROC_HIDDEN: &[&str] = &[
    "kcore",
    "kmsg",
    "kallsyms",
    "timer_list",
    "keys",
    "key-users",
    "sched_debug",
    "latency_stats",
    "acpi",
    "scsi",
];
const DEV_NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn inside(root: &Path, host: &Path) -> PathBuf {
    root.join(host.strip_prefix("/").unwrap_or(host))
}

pub fn build_root(spec: &InitSpec) -> Result<()> {
    let root = spec.scratch.as_path();
    // Nothing we do here may propagate back to the host.
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;
    // The writable trees are copied from the host's tree before the jail's
    // own mounts exist. A copy taken later of a folder that holds the
    // scratch directory (`--allow-write /tmp`, a workdir holding $TMPDIR)
    // would carry the jail's root into the jail, at a moment its masks are
    // not yet applied: every hidden file readable under
    // `/tmp/.airlock-root-UID/`. The copies keep the host's own flags: a
    // read-only mount inside a writable path stays read-only.
    let host = open_dir(Path::new("/"))?;
    let mut writable = Vec::with_capacity(spec.writable.len());
    for p in &spec.writable {
        writable.push((p, writable_copy(p, &target(&host, p, "writable path")?)?));
    }
    drop(host);
    mount(
        Some(Path::new("/")),
        root,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    mount_setattr(root, true, RO, 0)?;
    // Every target below is opened from here, never looked up by path
    // again (see `resolve`). The scratch directory is the launcher's own.
    let base = open_dir(root)?;

    // Writable paths first: a path under /tmp is bound into the fresh /tmp
    // afterwards, so keep those for later.
    let (under_tmp, elsewhere): (Vec<_>, Vec<_>) = writable
        .into_iter()
        .partition(|(p, _)| p.starts_with("/tmp"));
    for (p, copy) in elsewhere {
        attach(p, copy, &target(&base, p, "writable path")?)?;
    }

    mount_proc(&root.join("proc"))?;
    mount_dev(&root.join("dev"))?;
    let tmp_opts = format!("size={},mode=1777", spec.tmp_size.max(4096));
    mount(
        None,
        &root.join("tmp"),
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some(&tmp_opts),
    )
    .map_err(|e| format!("{e} (the jail's /tmp)"))?;
    for (p, copy) in under_tmp {
        let t = inside(root, p);
        // In the fresh /tmp, which nothing else can reach.
        std::fs::create_dir_all(&t).map_err(|e| format!("mkdir {}: {e}", t.display()))?;
        attach(p, copy, &target(&base, p, "writable path")?)?;
    }
    // Sockets of host services commonly live here; the jail gets empty ones.
    // Opened like the targets below: `/var/run` is usually a symlink (to
    // /run, covered already), and a writable `/var` would be the agent's.
    for d in ["run", "var/run", "dev/shm"] {
        let Ok(t) = resolve::open_beneath(&base, Path::new(d), false) else {
            continue;
        };
        if sys::file_type(&t).is_ok_and(|k| k == libc::S_IFDIR) {
            mount(
                None,
                &sys::fd_path(&t),
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some("size=1m,mode=1777"),
            )
            .map_err(|e| format!("{e} (the jail's /{d})"))?;
        }
    }

    #[cfg(debug_assertions)]
    if let Some([from, aside, link]) = &spec.test_swap {
        test_swap(from, aside, link)?;
    }
    pin_ancestors(
        &base,
        &spec.writable,
        spec.protected.iter().chain(&spec.masked),
    )?;
    for p in &spec.protected {
        // Only a link the launcher found is opened as a link (pinned
        // itself, never followed); a link anywhere else is refused.
        let link_ok = spec.protected_links.contains(p);
        let t = match resolve::open_beneath(&base, p, link_ok) {
            Ok(t) => t,
            // Outside the writable paths the tree is read-only already.
            Err(Refused::Missing) if !in_writable(p, &spec.writable) => continue,
            Err(e) => return Err(refused(p, "protected path", e)),
        };
        same_file(p, "protected path", &t, spec)?;
        let tree = sys::open_tree(&t, true)
            .map_err(|e| format!("open_tree {}: {e} (protect)", p.display()))?;
        // Read-only before it is attached: never writable for an instant.
        sys::mount_setattr_fd(&tree, true, RO, 0)
            .map_err(|e| format!("{e} (protect {})", p.display()))?;
        sys::move_mount(&tree, &t)
            .map_err(|e| format!("move_mount onto {}: {e} (protect)", p.display()))?;
    }
    let null = resolve::open_beneath(&base, Path::new("dev/null"), false)
        .map_err(|e| format!("the jail's /dev/null: {e}"))?;
    for p in &spec.masked {
        // Below another mask: already hidden (and not visible to open).
        if spec.masked.iter().any(|m| m != p && p.starts_with(m)) {
            continue;
        }
        let t = match resolve::open_beneath(&base, p, false) {
            Ok(t) => t,
            // Not visible in the jail at all (e.g. under the host's /tmp,
            // which the jail replaces): nothing to hide. Inside a writable
            // path the launcher saw it a moment ago: gone now means moved
            // (perhaps to a name the jail can read), so refuse.
            Err(Refused::Missing) if !in_writable(p, &spec.writable) => continue,
            Err(e) => return Err(refused(p, "deny-read path", e)),
        };
        let kind = same_file(p, "deny-read path", &t, spec)?;
        mask(p, kind, &t, &null)?;
    }
    drop((base, null));

    // Enter the new root; the old one is detached and unreachable.
    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    let dot = sys::cstr(".")?;
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) };
    sys::check(rc as i32, || "pivot_root".into())?;
    let rc = unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) };
    sys::check(rc, || "detach the old root".into())?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;
    Ok(())
}

/// Checks the opened `t` is the file the launcher saw at `p` (a folder
/// moved aside and a fresh one of the same name put in its place has no
/// symlink for the open to refuse). Returns its type (`S_IFMT`).
fn same_file(p: &Path, what: &str, t: &OwnedFd, spec: &InitSpec) -> Result<u32> {
    let st = sys::fstat(t).map_err(|e| format!("stat {}: {e}", p.display()))?;
    if let Some(id) = spec.ids.get(p) {
        if (id.dev, id.ino) != (st.st_dev, st.st_ino) {
            return Err(format!(
                "{what} {} changed after the launcher checked it (another file is in its \
                 place): another process writing there, or an attack; refusing to build \
                 the jail on it",
                p.display()
            ));
        }
    }
    Ok(st.st_mode & libc::S_IFMT)
}

fn in_writable(p: &Path, writable: &[PathBuf]) -> bool {
    writable.iter().any(|w| p.starts_with(w))
}

/// The one-line reason a run is refused: a target changed between the
/// launcher's check and the mount.
fn refused(p: &Path, what: &str, e: Refused) -> String {
    match e {
        Refused::Other(e) => format!("open the {what} {}: {e}", p.display()),
        e => format!(
            "{what} {} changed after the launcher checked it ({e}): another process \
             writing there, or an attack; refusing to build the jail on it",
            p.display()
        ),
    }
}

/// Opens `p` (canonical, existing: a writable root) below `base`; it must
/// be there and reached without a symlink.
fn target(base: &OwnedFd, p: &Path, what: &str) -> Result<OwnedFd> {
    resolve::open_beneath(base, p, false).map_err(|e| refused(p, what, e))
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    let c = sys::cstr(p)?;
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    sys::check(fd, || format!("open {}", p.display()))?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Test hook, compiled into debug builds only: what a concurrent writer
/// does between the launcher's check and the mounts. `from` is moved to
/// `aside` and a symlink to `link` takes its place (nothing if `link` is
/// empty, a fresh empty folder or file for `@dir` / `@file`).
#[cfg(debug_assertions)]
fn test_swap(from: &Path, aside: &Path, link: &Path) -> Result<()> {
    std::fs::rename(from, aside).map_err(|e| format!("test swap: rename: {e}"))?;
    let made = match link.to_str() {
        Some("") => return Ok(()),
        Some("@dir") => std::fs::create_dir(from),
        Some("@file") => std::fs::write(from, b""),
        _ => std::os::unix::fs::symlink(link, from),
    };
    made.map_err(|e| format!("test swap: {e}"))
}

/// Binds onto itself every directory strictly between a writable root and a
/// protected or masked path. The protected file and the mask are mount
/// points, so they cannot be renamed, but their parents could: the mount
/// moved with the folder (`mv config config2`), the next run rebuilt the
/// jail from paths and found nothing to cover at the old one, and a file
/// written at the old path passed for the original. A mount point cannot be
/// renamed, replaced by a rename or removed (EBUSY), so with every folder on
/// the chain a mount point the path keeps naming what was covered. Outside
/// the writable roots the tree is read-only and nothing moves. Ancestors
/// shared by several paths are bound once; parents are bound before their
/// children, recursively so that writable binds below them stay visible.
fn pin_ancestors<'a>(
    base: &OwnedFd,
    writable: &[PathBuf],
    covered: impl Iterator<Item = &'a PathBuf>,
) -> Result<()> {
    let mut pins = std::collections::BTreeSet::new();
    for p in covered {
        for w in writable.iter().filter(|w| p.starts_with(w)) {
            let mut a = p.parent();
            while let Some(d) = a {
                if d == w.as_path() || !d.starts_with(w) {
                    break;
                }
                pins.insert(d.to_path_buf());
                a = d.parent();
            }
        }
    }
    // A BTreeSet of paths orders every folder before what lies below it.
    for d in &pins {
        let t = match resolve::open_beneath(base, d, false) {
            Ok(t) => t,
            // Gone: the protected or masked path below it is judged when
            // it is opened (inside a writable path: refused).
            Err(Refused::Missing) => continue,
            Err(e) => return Err(refused(d, "folder", e)),
        };
        // A pin needs no attributes: mount(2) onto the open folder itself.
        let fd = sys::fd_path(&t);
        mount(Some(&fd), &fd, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| format!("{e} (pin {})", d.display()))?;
    }
    Ok(())
}

/// A detached copy of the host's tree at `src` and of every mount below
/// it, nosuid and nodev, otherwise as the host has it (writable where the
/// host's mount is).
fn writable_copy(host: &Path, src: &OwnedFd) -> Result<OwnedFd> {
    let tree = sys::open_tree(src, true)
        .map_err(|e| format!("open_tree {}: {e} (make it writable)", host.display()))?;
    sys::mount_setattr_fd(&tree, true, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0)
        .map_err(|e| format!("{e} (make {} writable)", host.display()))?;
    Ok(tree)
}

/// Attaches the copy of `host` onto `target`.
fn attach(host: &Path, copy: OwnedFd, target: &OwnedFd) -> Result<()> {
    sys::move_mount(&copy, target)
        .map_err(|e| format!("move_mount onto {}: {e} (make it writable)", host.display()))
}

fn mount_proc(t: &Path) -> Result<()> {
    mount(
        None,
        t,
        Some("proc"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some("hidepid=invisible"),
    )
    .or_else(|_| {
        mount(
            None,
            t,
            Some("proc"),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            None,
        )
    })?;
    for e in PROC_RO {
        let p = t.join(e);
        if p.exists() {
            mount(Some(&p), &p, None, libc::MS_BIND | libc::MS_REC, None)?;
            mount_setattr(&p, true, RO | MOUNT_ATTR_NOEXEC, 0)?;
        }
    }
    for e in PROC_HIDDEN {
        let p = t.join(e);
        if p.exists() {
            hide_proc_entry(&p, Path::new("/dev/null"))?;
        }
    }
    Ok(())
}

fn mount_dev(t: &Path) -> Result<()> {
    mount(
        None,
        t,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("size=64k,mode=755"),
    )?;
    for n in DEV_NODES {
        let host = Path::new("/dev").join(n);
        let node = t.join(n);
        if !host.exists() {
            continue;
        }
        std::fs::write(&node, b"").map_err(|e| format!("create {}: {e}", node.display()))?;
        mount(Some(&host), &node, None, libc::MS_BIND, None)?;
        mount_setattr(&node, false, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0)?;
    }
    let pts = t.join("pts");
    std::fs::create_dir(&pts).map_err(|e| format!("mkdir {}: {e}", pts.display()))?;
    if mount(
        None,
        &pts,
        Some("devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=620"),
    )
    .is_ok()
    {
        let _ = std::os::unix::fs::symlink("pts/ptmx", t.join("ptmx"));
    }
    std::fs::create_dir(t.join("shm")).map_err(|e| format!("mkdir /dev/shm: {e}"))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(target, t.join(name));
    }
    mount_setattr(t, false, MOUNT_ATTR_RDONLY, 0)
}

/// Hides /proc entries (the jail's own, fresh /proc).
fn hide_proc_entry(p: &Path, null: &Path) -> Result<()> {
    if p.is_dir() {
        mount(
            None,
            p,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=4k,mode=000"),
        )
    } else {
        mount(Some(null), p, None, libc::MS_BIND, None)?;
        mount_setattr(p, false, RO | MOUNT_ATTR_NOEXEC, 0)
    }
}

/// Hides the opened `t` (the deny-read path `p`): an empty read-only tmpfs
/// over a directory, the jail's /dev/null (read-only) over anything else.
fn mask(p: &Path, kind: u32, t: &OwnedFd, null: &OwnedFd) -> Result<()> {
    if kind == libc::S_IFDIR {
        mount(
            None,
            &sys::fd_path(t),
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=4k,mode=000"),
        )
        .map_err(|e| format!("{e} (hide {})", p.display()))
    } else {
        let tree = sys::open_tree(null, false).map_err(|e| format!("open_tree /dev/null: {e}"))?;
        sys::mount_setattr_fd(&tree, false, RO | MOUNT_ATTR_NOEXEC, 0)?;
        sys::move_mount(&tree, t)
            .map_err(|e| format!("move_mount onto {}: {e} (hide)", p.display()))
    }
}
