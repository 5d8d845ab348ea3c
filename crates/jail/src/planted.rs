//! The post-run scan's repairs: removing a protected file the command
//! planted and clearing setuid/setgid bits it managed to set. Both act on
//! paths inside writable folders, which something still running there (a
//! concurrent jail on the same workdir, a session's background process)
//! can change while airlock, often as root, works on them. A path looked up
//! again by name could by then lead through a symlink to `/root/.bashrc` or
//! `/etc/shadow`. So every step here resolves without following symlinks
//! (see `resolve`) and acts relative to the folder it opened: a link found
//! on the way is left alone and the repair fails, reported as "could not".

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::resolve::{self, Refused};

fn refused(e: Refused) -> io::Error {
    match e {
        Refused::Other(e) => e,
        Refused::Missing => io::Error::from_raw_os_error(libc::ENOENT),
        Refused::Symlink => io::Error::from_raw_os_error(libc::ELOOP),
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// The folder holding `p` (an absolute, canonical path), reached from `/`
/// through no symlink, and `p`'s last name.
fn parent_of(p: &Path) -> io::Result<(OwnedFd, CString)> {
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let root = unsafe { libc::open(c"/".as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    let root = unsafe { OwnedFd::from_raw_fd(check(root)?) };
    let dir = resolve::open_beneath(&root, parent, false).map_err(refused)?;
    let name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok((dir, name))
}

fn lstat_at(dir: &OwnedFd, name: &CStr) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// Removes `p` and, if it is a folder, everything in it. A symlink, at `p`
/// or inside, is removed itself, never followed.
pub fn remove(p: &Path) -> io::Result<()> {
    let (dir, name) = parent_of(p)?;
    remove_at(&dir, &name)
}

/// Deepest folder level [`remove`] goes down to: each level holds a
/// descriptor open, and a planted tree deeper than this (made to exhaust
/// descriptors) is reported as not removed instead.
const MAX_DEPTH: usize = 256;

fn unlink_at(dir: &OwnedFd, name: &CStr, flags: libc::c_int) -> io::Result<()> {
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn open_dir_at(dir: &OwnedFd, name: &CStr) -> io::Result<OwnedFd> {
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes `name` in `dir`, a folder with all it holds. Iterative (a
/// planted tree of any depth cannot exhaust the stack): a stack of the
/// folders being emptied, each with its entries still to remove.
fn remove_at(dir: &OwnedFd, name: &CStr) -> io::Result<()> {
    if !is_dir(&lstat_at(dir, name)?) {
        return unlink_at(dir, name, 0);
    }
    let top = open_dir_at(dir, name)?;
    let pending = entries(&top)?;
    let mut stack = vec![(top, name.to_owned(), pending)];
    loop {
        let depth = stack.len();
        let Some((fd, _, pending)) = stack.last_mut() else {
            return Ok(());
        };
        if let Some(entry) = pending.pop() {
            if !is_dir(&lstat_at(fd, &entry)?) {
                unlink_at(fd, &entry, 0)?;
            } else if depth >= MAX_DEPTH {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            } else {
                let sub = open_dir_at(fd, &entry)?;
                let pending = entries(&sub)?;
                stack.push((sub, entry, pending));
            }
        } else if let Some((_, own, _)) = stack.pop() {
            // Emptied: remove it from the folder above (or `dir`).
            let parent = stack.last().map_or(dir, |(f, _, _)| f);
            unlink_at(parent, &own, libc::AT_REMOVEDIR)?;
        }
    }
}

/// The names in the open folder `dir` (not `.` or `..`).
fn entries(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir takes the descriptor it is given: hand it a copy.
    let copy = check(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    let d = unsafe { libc::fdopendir(copy) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(copy) };
        return Err(e);
    }
    let mut out = Vec::new();
    loop {
        let e = unsafe { libc::readdir64(d) };
        if e.is_null() {
            break;
        }
        let n = unsafe { CStr::from_ptr((*e).d_name.as_ptr()) };
        if n != c"." && n != c".." {
            out.push(n.to_owned());
        }
    }
    unsafe { libc::closedir(d) };
    Ok(out)
}

/// Clears the setuid and setgid bits of the regular file `p`, keeping the
/// rest of its mode as it is now. Anything but a regular file (a symlink
/// put in its place) is left alone.
pub fn clear_setid(p: &Path) -> io::Result<()> {
    let (dir, name) = parent_of(p)?;
    // O_PATH: no read permission needed (a setuid file may have none for
    // its owner, the unprivileged caller), and a FIFO does not block.
    let fd = check(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    let file = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    check(unsafe { libc::fstat(file.as_raw_fd(), &mut st) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mode = st.st_mode & 0o7777 & !(libc::S_ISUID | libc::S_ISGID);
    // fchmod refuses an O_PATH descriptor; its /proc link names the very
    // inode opened, whatever the path has become.
    let link = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    check(unsafe { libc::chmod(link.as_ptr(), mode) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    /// `w/a/.bashrc` planted; `a` then replaced by a link to `outside`,
    /// which holds a `.bashrc` of its own (the host user's, say).
    fn swapped() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let w = t.path().join("w");
        let outside = t.path().join("outside");
        std::fs::create_dir_all(w.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(w.join("a/.bashrc"), "planted").unwrap();
        std::fs::write(outside.join(".bashrc"), "the user's").unwrap();
        std::fs::rename(w.join("a"), t.path().join("a-aside")).unwrap();
        symlink(&outside, w.join("a")).unwrap();
        (t, w, outside)
    }

    #[test]
    fn removal_never_goes_through_a_link_above() {
        let (_t, w, outside) = swapped();
        let p = w.join("a/.bashrc");
        // By name, the path now leads to the user's file.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "the user's");
        let e = remove(&p).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        assert_eq!(
            std::fs::read_to_string(outside.join(".bashrc")).unwrap(),
            "the user's"
        );
    }

    #[test]
    fn a_folder_is_removed_with_its_links_but_not_their_targets() {
        let t = tempfile::tempdir().unwrap();
        let keep = t.path().join("keep");
        std::fs::create_dir(&keep).unwrap();
        std::fs::write(keep.join("file"), "x").unwrap();
        let hooks = t.path().join("w/.git/hooks");
        std::fs::create_dir_all(hooks.join("sub")).unwrap();
        std::fs::write(hooks.join("pre-commit"), "evil").unwrap();
        std::fs::write(hooks.join("sub/x"), "evil").unwrap();
        symlink(&keep, hooks.join("dir-link")).unwrap();
        symlink(keep.join("file"), hooks.join("file-link")).unwrap();
        remove(&hooks).unwrap();
        assert!(!hooks.exists());
        assert_eq!(std::fs::read_to_string(keep.join("file")).unwrap(), "x");
    }

    /// Deeper than the stack of a small thread would allow recursively:
    /// removed; deeper than MAX_DEPTH: refused, nothing outside touched.
    #[test]
    fn deep_trees_are_removed_without_recursion_up_to_the_limit() {
        let t = tempfile::tempdir().unwrap();
        let make = |top: &Path, depth: usize| {
            let mut d = top.to_path_buf();
            std::fs::create_dir(&d).unwrap();
            for _ in 1..depth {
                d.push("a");
                std::fs::create_dir(&d).unwrap();
                std::fs::write(d.join("f"), "x").unwrap();
            }
        };
        let ok = t.path().join("ok");
        make(&ok, MAX_DEPTH);
        let deep = t.path().join("deep");
        make(&deep, MAX_DEPTH + 10);
        let (ok2, deep2) = (ok.clone(), deep.clone());
        let r = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || (remove(&ok2).is_ok(), remove(&deep2).is_err()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(r, (true, true));
        assert!(!ok.exists());
        assert!(deep.exists());
    }

    #[test]
    fn setid_bits_are_cleared_on_the_file_only() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("tool");
        std::fs::write(&f, "x").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o6755)).unwrap();
        clear_setid(&f).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        // No read permission needed.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4111)).unwrap();
        clear_setid(&f).unwrap();
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o111);

        // A symlink in its place (to a file with other bits) is left alone.
        let target = t.path().join("shadow");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = t.path().join("link");
        symlink(&target, &link).unwrap();
        assert!(clear_setid(&link).is_err());
        let (_t2, w, outside) = swapped();
        std::fs::set_permissions(
            outside.join(".bashrc"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(clear_setid(&w.join("a/.bashrc")).is_err());
        for (p, want) in [(&target, 0o640), (&outside.join(".bashrc"), 0o600)] {
            let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, want, "{}", p.display());
        }
    }
}
