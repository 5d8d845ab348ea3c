//! Thin, checked wrappers over the raw system calls the init uses. Each
//! error names the call and the path, so a failed setup says what failed.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub type Result<T> = std::result::Result<T, String>;

pub fn cstr(p: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(p.as_ref().as_bytes()).map_err(|_| "path contains a NUL byte".to_string())
}

pub fn check(rc: libc::c_int, what: impl FnOnce() -> String) -> Result<libc::c_int> {
    if rc < 0 {
        Err(format!("{}: {}", what(), io::Error::last_os_error()))
    } else {
        Ok(rc)
    }
}

pub fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let s = src.map(cstr).transpose()?;
    let t = cstr(target)?;
    let f = fstype.map(cstr).transpose()?;
    let d = data.map(cstr).transpose()?;
    let rc = unsafe {
        libc::mount(
            s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            t.as_ptr(),
            f.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            d.as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr() as *const libc::c_void),
        )
    };
    check(rc, || {
        format!(
            "mount {} on {}",
            src.map(|p| p.display().to_string())
                .or(fstype.map(str::to_string))
                .unwrap_or_default(),
            target.display()
        )
    })?;
    Ok(())
}

/// Moves this process to the idle scheduling class (else nice 19): for
/// work nobody waits for, such as the jail's own exit once the launcher
/// has the status, so that it does not take a CPU from the launcher's
/// clean-up. Lowering needs no privilege; a failure changes nothing.
pub fn lower_priority() {
    let p = libc::sched_param { sched_priority: 0 };
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &p) } != 0 {
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    }
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Sets/clears mount attributes on the mount at `target` (and every mount
/// below it when `recursive`), in one call, with no remount races.
pub fn mount_setattr(target: &Path, recursive: bool, set: u64, clr: u64) -> Result<()> {
    let t = cstr(target)?;
    let rc = setattr(
        libc::AT_FDCWD,
        &t,
        libc::AT_NO_AUTOMOUNT,
        recursive,
        set,
        clr,
    );
    check(rc, || format!("mount_setattr {}", target.display()))?;
    Ok(())
}

/// [`mount_setattr`] on the mount `fd` names (an [`open_tree`] clone,
/// attached or not): the same mount whatever happens to the path since.
pub fn mount_setattr_fd(fd: &OwnedFd, recursive: bool, set: u64, clr: u64) -> Result<()> {
    let rc = setattr(
        fd.as_raw_fd(),
        c"",
        libc::AT_EMPTY_PATH,
        recursive,
        set,
        clr,
    );
    check(rc, || "mount_setattr".into())?;
    Ok(())
}

fn setattr(
    dirfd: RawFd,
    path: &CStr,
    flags: libc::c_int,
    recursive: bool,
    set: u64,
    clr: u64,
) -> libc::c_int {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = flags | if recursive { libc::AT_RECURSIVE } else { 0 };
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dirfd,
            path.as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    rc as libc::c_int
}

/// A detached copy (`OPEN_TREE_CLONE`) of the file or directory `fd`
/// names, and of every mount below it when `recursive`: a bind mount not
/// yet attached anywhere, whose attributes can be set before it is visible.
pub fn open_tree(fd: &OwnedFd, recursive: bool) -> io::Result<OwnedFd> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | if recursive {
            libc::AT_RECURSIVE as libc::c_uint
        } else {
            0
        };
    let rc = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

/// Attaches the detached mount `tree` onto the file or directory `target`
/// names (both by descriptor: no path is looked up).
pub fn move_mount(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The path through which mount(2) reaches exactly the inode `fd` names:
/// the magic link is not followed by name but jumps to the open file.
/// (The init's /proc is still the host's when it builds the jail.)
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// fstat of what `fd` names (an `O_PATH` descriptor too).
pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// The file type bits (`S_IFMT`) of what `fd` names.
pub fn file_type(fd: &OwnedFd) -> io::Result<u32> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT)
}

/// Writes a whole small file (proc/cgroup control files).
pub fn write_file(path: &Path, data: &str) -> Result<()> {
    std::fs::write(path, data).map_err(|e| format!("write {}: {e}", path.display()))
}

pub fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
