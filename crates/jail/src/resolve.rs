//! Opens the places the jail's init mounts on without following symlinks.
//!
//! The launcher decides what to protect, hide and bind by walking the
//! writable paths; the init mounts a moment later. mount(2) given a path
//! follows every symlink in it, so anything else that may write there
//! (another jail, a command of a long-lived session) could, in between,
//! move a checked folder aside and put a symlink in its place: the
//! read-only bind or the mask would land on the link's target and the moved
//! folder would stay writable or readable. The init therefore opens each
//! target here, refusing a symlink in any component, and mounts onto the
//! open descriptor, never onto the path again.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a target could not be opened.
#[derive(Debug)]
pub enum Refused {
    /// A component does not exist (or is not a directory).
    Missing,
    /// A component is a symlink (the last one too, unless allowed).
    Symlink,
    Other(io::Error),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing => f.write_str("it no longer exists"),
            Refused::Symlink => f.write_str("a symlink is in its place or on its path"),
            Refused::Other(e) => write!(f, "{e}"),
        }
    }
}

/// Set once openat2 turned out to be unavailable (ENOSYS, or a seccomp
/// policy of an outer container): the component-wise walk is used instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (a relative path of plain names, as the spec's canonical
/// paths are below `/`) below the directory `base` as an `O_PATH`
/// descriptor. No component may be a symlink; the last one may be only
/// when `link_ok`, and is then opened itself, not its target. Mount points
/// on the way are crossed as a path walk crosses them.
pub fn open_beneath(base: &OwnedFd, rel: &Path, link_ok: bool) -> Result<OwnedFd, Refused> {
    let names = names(rel)?;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        match openat2(base, rel, link_ok) {
            Err(Refused::Other(e))
                if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) =>
            {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            r => return r,
        }
    }
    walk(base, &names, link_ok)
}

fn names(rel: &Path) -> Result<Vec<CString>, Refused> {
    let mut v = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => v.push(
                CString::new(n.as_bytes())
                    .map_err(|_| Refused::Other(io::Error::from_raw_os_error(libc::EINVAL)))?,
            ),
            Component::RootDir | Component::CurDir => {}
            // Canonical paths have none; `..` would step out of `base`.
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Refused::Other(io::Error::from_raw_os_error(libc::EINVAL)))
            }
        }
    }
    Ok(v)
}

fn classify(e: io::Error) -> Refused {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => Refused::Missing,
        Some(libc::ELOOP) => Refused::Symlink,
        _ => Refused::Other(e),
    }
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;

fn openat2(base: &OwnedFd, rel: &Path, link_ok: bool) -> Result<OwnedFd, Refused> {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let c = CString::new(rel.as_os_str().as_bytes())
        .map_err(|_| Refused::Other(io::Error::from_raw_os_error(libc::EINVAL)))?;
    // With O_NOFOLLOW a trailing symlink is opened itself (O_PATH);
    // without it RESOLVE_NO_SYMLINKS refuses it like any other (ELOOP).
    let mut flags = libc::O_PATH | libc::O_CLOEXEC;
    if link_ok {
        flags |= libc::O_NOFOLLOW;
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            base.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if rc < 0 {
        return Err(classify(io::Error::last_os_error()));
    }
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// The same without openat2: one `O_PATH|O_NOFOLLOW` open per component,
/// each relative to the previous one, so no name is looked up twice.
fn walk(base: &OwnedFd, names: &[CString], link_ok: bool) -> Result<OwnedFd, Refused> {
    let mut cur = dup(base)?;
    for (i, n) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let mut flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        if !last {
            flags |= libc::O_DIRECTORY;
        }
        let rc = unsafe { libc::openat(cur.as_raw_fd(), n.as_ptr(), flags) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // O_DIRECTORY on a symlink says ENOTDIR: tell the two apart.
            if e.raw_os_error() == Some(libc::ENOTDIR) && is_link_at(&cur, n) {
                return Err(Refused::Symlink);
            }
            return Err(classify(e));
        }
        let next = unsafe { OwnedFd::from_raw_fd(rc) };
        if last && !link_ok {
            let t = crate::sys::file_type(&next).map_err(Refused::Other)?;
            if t == libc::S_IFLNK {
                return Err(Refused::Symlink);
            }
        }
        cur = next;
    }
    Ok(cur)
}

fn is_link_at(dir: &OwnedFd, name: &CString) -> bool {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, Refused> {
    fd.try_clone().map_err(Refused::Other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn open_dir(p: &Path) -> OwnedFd {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        assert!(fd >= 0);
        unsafe { OwnedFd::from_raw_fd(fd) }
    }

    /// A tree where `a/b` is a real folder, `link` a symlink to it, `a/l`
    /// a symlink to a file, `a/f` a file.
    fn tree() -> (tempfile::TempDir, OwnedFd) {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a/b/c")).unwrap();
        std::fs::write(t.path().join("a/f"), "x").unwrap();
        symlink("a", t.path().join("link")).unwrap();
        symlink("f", t.path().join("a/l")).unwrap();
        let fd = open_dir(t.path());
        (t, fd)
    }

    fn check_all(base: &OwnedFd) {
        let ok = |p: &str, link_ok: bool| open_beneath(base, Path::new(p), link_ok).is_ok();
        assert!(ok("a/b/c", false));
        assert!(ok("/a/b", false));
        assert!(ok("a/f", false));
        assert!(ok("", false));
        // A symlink on the way, or at the end, is refused ...
        for p in ["link/b", "link/b/c", "link", "a/l"] {
            assert!(
                matches!(
                    open_beneath(base, Path::new(p), false),
                    Err(Refused::Symlink)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            open_beneath(base, Path::new("link/b"), true),
            Err(Refused::Symlink)
        ));
        // ... except the last one when allowed: the link itself is opened.
        let l = open_beneath(base, Path::new("a/l"), true).unwrap();
        assert_eq!(crate::sys::file_type(&l).unwrap(), libc::S_IFLNK);
        for p in ["a/nope", "a/f/x", "nope/b"] {
            assert!(
                matches!(
                    open_beneath(base, Path::new(p), false),
                    Err(Refused::Missing)
                ),
                "{p}"
            );
        }
        assert!(matches!(
            open_beneath(base, Path::new("a/../a"), false),
            Err(Refused::Other(_))
        ));
    }

    #[test]
    fn symlinks_are_refused_on_the_way_and_at_the_end() {
        let (_t, base) = tree();
        check_all(&base);
    }

    /// The component-wise walk used where openat2 is missing answers the
    /// same for every case.
    #[test]
    fn the_fallback_walk_answers_the_same() {
        let (_t, base) = tree();
        let w = |p: &str, link_ok: bool| walk(&base, &names(Path::new(p)).unwrap(), link_ok);
        assert!(w("a/b/c", false).is_ok());
        assert!(w("", false).is_ok());
        for p in ["link/b", "link", "a/l"] {
            assert!(matches!(w(p, false), Err(Refused::Symlink)), "{p}");
        }
        assert!(matches!(w("link/b", true), Err(Refused::Symlink)));
        assert_eq!(
            crate::sys::file_type(&w("a/l", true).unwrap()).unwrap(),
            libc::S_IFLNK
        );
        for p in ["a/nope", "a/f/x", "nope/b"] {
            assert!(matches!(w(p, false), Err(Refused::Missing)), "{p}");
        }
        // The same object as openat2 finds.
        let a = open_beneath(&base, Path::new("a/b/c"), false).unwrap();
        let b = w("a/b/c", false).unwrap();
        assert_eq!(ino(&a), ino(&b));
    }

    fn ino(fd: &OwnedFd) -> u64 {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) }, 0);
        st.st_ino
    }
}
