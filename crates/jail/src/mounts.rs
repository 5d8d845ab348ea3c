//! Builds the jail's filesystem view in a fresh mount namespace and pivots
//! into it: a read-only, nosuid, nodev copy of the host tree; fresh /proc
//! with its dangerous entries covered; a minimal /dev; a private /tmp;
//! writable binds; protected files read-only again; masked paths hidden.

use std::path::{Path, PathBuf};

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
    mount(
        Some(Path::new("/")),
        root,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    mount_setattr(root, true, RO, 0)?;

    // Writable paths first: a path under /tmp is bound into the fresh /tmp
    // afterwards, so keep those for later.
    let (under_tmp, elsewhere): (Vec<&PathBuf>, Vec<&PathBuf>) =
        spec.writable.iter().partition(|p| p.starts_with("/tmp"));
    for p in &elsewhere {
        bind_writable(p, &inside(root, p))?;
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
    for p in &under_tmp {
        let t = inside(root, p);
        std::fs::create_dir_all(&t).map_err(|e| format!("mkdir {}: {e}", t.display()))?;
        bind_writable(p, &t)?;
    }
    // Sockets of host services commonly live here; the jail gets empty ones.
    for d in ["run", "var/run", "dev/shm"] {
        let t = root.join(d);
        if t.is_dir() && !t.is_symlink() {
            mount(
                None,
                &t,
                Some("tmpfs"),
                libc::MS_NOSUID | libc::MS_NODEV,
                Some("size=1m,mode=1777"),
            )?;
        }
    }

    pin_ancestors(
        root,
        &spec.writable,
        spec.protected.iter().chain(&spec.masked),
    )?;
    for p in &spec.protected {
        let t = inside(root, p);
        mount(Some(&t), &t, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount_setattr(&t, true, RO, 0)?;
    }
    for p in &spec.masked {
        mask(&inside(root, p), root)?;
    }

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
    root: &Path,
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
        let t = inside(root, d);
        match std::fs::symlink_metadata(&t) {
            Ok(m) if m.is_dir() => {}
            // Not there (the covered path does not exist yet) or a link:
            // nothing to pin; the post-run scan judges what appears.
            _ => continue,
        }
        mount(Some(&t), &t, None, libc::MS_BIND | libc::MS_REC, None)
            .map_err(|e| format!("{e} (pin {})", d.display()))?;
    }
    Ok(())
}

fn bind_writable(host: &Path, target: &Path) -> Result<()> {
    mount(Some(host), target, None, libc::MS_BIND | libc::MS_REC, None)?;
    mount_setattr(
        target,
        true,
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        MOUNT_ATTR_RDONLY,
    )
    .map_err(|e| format!("{e} (make {} writable)", host.display()))
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
            mask(&p, Path::new("/"))?;
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

/// Hides `p`: an empty read-only tmpfs over a directory, the jail's empty
/// /dev/null-like file over anything else.
fn mask(p: &Path, root: &Path) -> Result<()> {
    // Not visible in the jail at all (e.g. under the host's /tmp): nothing to hide.
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if meta.is_dir() {
        mount(
            None,
            p,
            Some("tmpfs"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            Some("size=4k,mode=000"),
        )
    } else {
        let null = root.join("dev/null");
        let src = if null.exists() {
            null
        } else {
            PathBuf::from("/dev/null")
        };
        mount(Some(&src), p, None, libc::MS_BIND, None)?;
        mount_setattr(p, false, RO | MOUNT_ATTR_NOEXEC, 0)
    }
}
